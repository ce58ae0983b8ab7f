#!yaml
# The wgmesh network is one pillar value, `wgmesh`, split in two files so
# that onboarding a developer is a one-entry change in developers.sls.
# developers.sls comes last: before merging each file, Salt copies the pillar
# merged so far, so a file after it would copy every developer (about 0.1 s
# of every pillar compile on the master at 10,000 developers).
base:
  '*':
    - wgmesh.network
    - wgmesh.mine
    - wgmesh.developers
