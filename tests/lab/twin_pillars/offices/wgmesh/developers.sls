#!yaml
wgmesh:
  developers:
    alice:                       # one LAN only
      address: 10.80.0.10
      public_key: BIcFM56M3C1EHz/wSzN0tfGkv4w6WQ0vXuBcGkE4ej0=
      lan_access: [bj]
    bob:                         # Windows: exact LAN prefixes
      address: 10.80.0.11
      public_key: BGqB8mY/UV87JPydGElmwoq8XkD0aFfzO70CFcs1pHM=
      lan_access: all
      platform: windows
    carol:                       # the VPN only
      address: 10.80.0.12
      public_key: yeWMzdMHBkJAsrfyEUJZoe06cWBTJGjq+OAZcFTARSQ=
    dave:                        # revoked
      address: 10.80.0.13
      public_key: ryglKGsoOmYZpEqG7JRPEGLo7r/HJYFe/JIpRtKfzVs=
      lan_access: all
      revoked: true
