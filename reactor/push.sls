{#- A push to the pillar repository: gate the new revision and converge the affected hosts.
    Fired as `wgmesh/push` by reactor/hooks/post-receive, or as
    `salt/netapi/hook/wgmesh/push` by salt-api's webhook (GitLab/GitHub push payload).
    Reactor SLS has no ordering, so all the work is one runner call: it validates,
    deploys, then applies the hub before the gateways. #}
{%- set new = data.get('new') or (data.get('post') or {}).get('after') %}
wgmesh-gate-and-converge:
  runner.wgmesh.on_push:
    - args:
      - new: {{ new | tojson }}
