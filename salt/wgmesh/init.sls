{#- wgmesh: converge this minion's part of the WireGuard network.
    The role (hub, gateway, LAN router) comes from the `wgmesh` pillar; an
    invalid pillar fails the render here, so nothing at all is applied. #}
{%- if 'wgmesh.role' not in salt %}
{{- raise('wgmesh: the wgmesh module does not load on ' ~ grains.id ~ ': ' ~ (salt.missing_modules.get('wgmesh')
           or 'install saltext-wgmesh (salt-pip) or run saltutil.sync_all')) }}
{%- endif %}
include:
  - wgmesh.install
{%- set setup = salt['wgmesh.setup']() %}
{%- set role = setup.role %}
{%- set interface = setup.interface %}
{%- set files = salt['wgmesh.staged_files']() if role != 'none' else [] %}
{%- if role in ('hub', 'gateway') %}

wgmesh-private-key:
  wgmesh.private_key:
    - name: {{ interface }}

wgmesh-publish-public-key:
  module.run:
    - mine.update: []
    - onchanges:
      - wgmesh: wgmesh-private-key
{%- endif %}

{#- The host's files: its tunnel, sysctl and firewall files (hub, gateway), its boot units
    (the iptables backend's rules, a LAN router's routes), copied from the copies wgmesh staged
    on the minion: a hub's files of thousands of peers never go through the compiled state. #}
{%- for file in files %}

wgmesh-file-{{ file.path }}:
  file.managed:
    - name: {{ file.path }}
    - source: {{ file.source | tojson }}
    - user: root
    - group: {{ file.group }}
    - mode: '{{ file.mode }}'
    - makedirs: True
    - show_changes: {{ file.show_changes }}
{%- endfor %}

{%- from 'wgmesh/map.jinja' import wgmesh_formula with context %}
{%- if wgmesh_formula.manage_services %}
{%-   for file in files if file.path.startswith('/etc/systemd/system/') %}

{#- A boot unit wgmesh writes: enabled, not started (the states below put the same rules and
    routes live, and check them). #}
wgmesh-boot-unit-{{ file.path.split('/')[-1] }}:
  service.enabled:
    - name: {{ file.path.split('/')[-1] }}
    - require:
      - file: wgmesh-file-{{ file.path }}
{%-   endfor %}
{%- endif %}
{%- if role in ('hub', 'gateway') %}

wgmesh-ip-forward:
  sysctl.present:
    - name: net.ipv4.ip_forward
    - value: 1
    - config: /etc/sysctl.d/10-ip-forward.conf
    - require:
      - file: wgmesh-file-/etc/sysctl.d/10-ip-forward.conf

wgmesh-tunnel:
  wgmesh.tunnel:
    - name: {{ interface }}
    - require:
      - wgmesh: wgmesh-private-key
{%- for file in files %}
      - file: wgmesh-file-{{ file.path }}
{%- endfor %}

{#- The hardening goes live before forwarding and the tunnel: if it cannot, neither starts. #}
wgmesh-firewall:
  wgmesh.firewall:
    - name: {{ interface }}
    - require:
{%- for file in files %}
      - file: wgmesh-file-{{ file.path }}
{%- endfor %}
    - require_in:
      - sysctl: wgmesh-ip-forward
      - wgmesh: wgmesh-tunnel
{%- elif role == 'lan_router' %}

wgmesh-lan-routes:
  wgmesh.lan_routes:
    - name: {{ interface }}
{%- endif %}
{%- if role == 'none' %}
{#- A host the pillar no longer gives a role (revoked, replaced), applied directly (the gate, or
    the minion-start reactor when it was down then): take down what wgmesh left there. #}

wgmesh-absent:
  wgmesh.absent:
    - name: {{ interface }}
{%- endif %}
{%- if role != 'none' %}
{#- Drift correction: a schedule set from pillar (wgmesh:schedule:drift_minutes). #}
{%- if setup.drift_minutes > 0 %}

wgmesh-drift-schedule:
  schedule.present:
    - name: wgmesh-converge
    - function: wgmesh.converge
    - minutes: {{ setup.drift_minutes }}
    {#- salt-call --local has no minion daemon to hand the job to: write the schedule file #}
    - offline: {{ opts.get('file_client') == 'local' }}
{%- else %}

wgmesh-drift-schedule:
  schedule.absent:
    - name: wgmesh-converge
    - offline: {{ opts.get('file_client') == 'local' }}
{%- endif %}
{%- endif %}
