#!yaml
# The wgmesh network is one pillar value, `wgmesh`, split in two files so
# that onboarding a developer is a one-entry change in developers.sls.
base:
  '*':
    - wgmesh.network
    - wgmesh.developers
    - wgmesh.mine
