#!yaml
# One entry per developer: name, VPN address, public key (never the private key).
# Optional: lan_access (all | none | [gateway ids]; default none), expires
# (YYYY-MM-DD, last day of access), platform (linux | macos | windows | ios |
# android; default linux), revoked (true cuts the developer off), contact.
wgmesh:
  developers:
    e:
      address: 10.70.0.4
      public_key: 0VooFEp8ZdpZp3P7BPa2W3piw+eu/6cyUGpSUWZp4HA=
      lan_access: all
      platform: macos
    f:
      address: 10.70.0.5
      public_key: MyeHCD9sVXMXPgyEY79Yif8QskCjqm+SoJqmLXHN1RM=
      lan_access: all
