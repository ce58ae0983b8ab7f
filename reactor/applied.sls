{#- A push was applied (`wgmesh/applied`, fired by the gate): the reactor's process loads and
    plans the network now deployed (runner wgmesh.warm), so that the next push's gate, forked
    from this process, plans only its new revision. The master's own event only: one a minion
    sends carries its `id`. #}
{%- if not data.get('id') %}
wgmesh-keep-the-deployed-network-planned:
  runner.wgmesh.warm: []
{%- endif %}
