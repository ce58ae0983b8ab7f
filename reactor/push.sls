{#- A push to the pillar repository: gate the branch's tip and converge the affected hosts.
    Fired as `wgmesh/push` by reactor/hooks/post-receive (salt-run event.send on the master),
    or as `salt/netapi/hook/wgmesh/push` by salt-api's webhook. The event's data is not
    trusted: the runner fetches the branch itself and deploys only its tip, only if valid
    and descending from what is deployed. Events sent by minions (they carry an `id`) are
    ignored. Reactor SLS has no ordering, so all the work is one runner call. #}
{%- if not data.get('id') %}
wgmesh-gate-and-converge:
  runner.wgmesh.on_push:
    - args:
      - allow_rewind: False
{%- endif %}
