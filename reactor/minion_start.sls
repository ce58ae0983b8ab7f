{#- A minion that was down while the network changed converges as soon as it is back.
    On a minion that is not a wgmesh host the state applies nothing. #}
wgmesh-converge-returning-minion:
  local.state.apply:
    - tgt: {{ data['id'] | tojson }}
    - args:
      - mods: wgmesh
