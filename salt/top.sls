# `salt '*' state.highstate` applies wgmesh everywhere: on hosts that are not
# part of the network (no hub, gateway or LAN-router role) it applies nothing.
base:
  '*':
    - wgmesh
