{#- A push to the pillar repository: gate the branch's tip and converge the affected hosts.
    Fired as `wgmesh/push` by reactor/hooks/post-receive (salt-run event.send on the master),
    or as `salt/netapi/hook/wgmesh/push` by salt-api's webhook, which must carry the shared
    secret (checked by the runner, in constant time, before anything is fetched). The event's
    data is not trusted: the runner fetches the branch itself and deploys only its tip, only if
    valid and descending from what is deployed. Events sent by minions (they carry an `id`) are
    ignored. Reactor SLS has no ordering, so all the work is one runner call, and that call
    starts the gate in a process of its own (`salt-run --async` style) so that a long apply does
    not hold one of the reactor's `reactor_worker_threads`. #}
{%- if not data.get('id') and tag.startswith('salt/netapi/hook/') %}
wgmesh-webhook-gate-and-converge:
  runner.wgmesh.on_webhook:
    - args:
      - headers: {{ data.get('headers', {}) | tojson }}
      - body: {{ data.get('body', '') | tojson }}
{%- elif not data.get('id') %}
wgmesh-gate-and-converge:
  runner.wgmesh.on_push_async:
    - args:
      - allow_rewind: False
{%- endif %}
