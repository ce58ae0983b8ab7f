#!yaml
# The hub and gateways publish their public keys in the Salt mine.
mine_functions:
  wgmesh_public_key:
    mine_function: wgmesh.public_key
