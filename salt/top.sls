{#- wgmesh goes only to the minions its pillar names (hub, gateways, LAN routers; members.jinja):
    every other minion gets nothing from it, so it needs none of wgmesh's Python dependencies and
    its highstate is never broken by wgmesh. Merge these lines into your own top file. #}
{%- from 'wgmesh/members.jinja' import members with context %}
{%- if members %}
base:
  {{ members | unique | join(',') | tojson }}:
    - match: list
    - wgmesh
{%- else %}
base: {}
{%- endif %}
