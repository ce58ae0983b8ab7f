{#- What this host's backend and firewall need installed, running and enabled at boot (map.jinja:
    defaults.yaml, per OS family, overridable in the minion's config). Included by init.sls, so
    its states run before the key, the files, the firewall and the tunnel. #}
{%- from 'wgmesh/map.jinja' import wgmesh_formula with context %}
{%- set cfg = salt['wgmesh.setup']() %}
{%- if cfg.role in ('hub', 'gateway') %}
{%-   set backend = wgmesh_formula.backends.get(cfg.backend) %}
{%-   if not backend %}
{{- raise('wgmesh: backend ' ~ cfg.backend ~ ' is not available on ' ~ grains.get('os') ~ ' (see salt/wgmesh/osfamilymap.yaml): set backend: wgquick for ' ~ grains.id ~ ' in the wgmesh pillar') }}
{%-   endif %}
{%-   set firewall = wgmesh_formula.firewalls.get(cfg.firewall.backend, {}) if cfg.firewall else {} %}
{%-   set pkgs = backend.get('pkgs', []) + firewall.get('pkgs', []) %}
{%-   set running = backend.get('running', []) + firewall.get('running', []) %}
{%-   if wgmesh_formula.manage_packages and pkgs %}

wgmesh-packages:
  pkg.installed:
    - pkgs: {{ pkgs | unique | list | tojson }}
{%-   endif %}
{%-   if wgmesh_formula.manage_services %}
{%-     for service in running | unique %}

wgmesh-service-{{ service }}:
  service.running:
    - name: {{ service }}
    - enable: True
{%-       if wgmesh_formula.manage_packages and pkgs %}
    - require:
      - pkg: wgmesh-packages
{%-       endif %}
{%-     endfor %}
{%-     for unit in backend.get('enabled', []) %}

wgmesh-boot-{{ unit | replace('{interface}', cfg.interface) }}:
  service.enabled:
    - name: {{ unit | replace('{interface}', cfg.interface) }}
{%-       if wgmesh_formula.manage_packages and pkgs %}
    - require:
      - pkg: wgmesh-packages
{%-       endif %}
{%-     endfor %}
{#-     A backend switch: the other backends' boot units would bring the interface up twice. #}
{%-     for name, other in wgmesh_formula.backends.items() if name != cfg.backend and other %}
{%-       for unit in other.get('enabled', []) if unit not in backend.get('enabled', []) %}

wgmesh-boot-off-{{ unit | replace('{interface}', cfg.interface) }}:
  service.disabled:
    - name: {{ unit | replace('{interface}', cfg.interface) }}
{%-       endfor %}
{%-     endfor %}
{%-   endif %}
{%- endif %}
