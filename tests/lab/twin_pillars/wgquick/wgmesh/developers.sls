#!yaml
wgmesh:
  developers:
    erin:
      address: 10.99.0.10
      public_key: anP/FhHKXWjsxxUsyrUPvSAbQ1uJ2cFPJy8863HAW3M=
      lan_access: [plant]
      platform: macos
    frank:
      address: 10.99.0.11
      public_key: lnS/xOO4MF5toBTwvIMi/aA9Pf44azZNgTA+tgvdG0U=
      lan_access: all
      platform: windows
