#!yaml
# The article's network (see README "Pillar reference" for every key and its default).
# Hosts are named by Salt minion id. Private keys are not here: each host makes
# its own at first apply, and public keys travel by the Salt mine.
wgmesh:
  network: 10.70.0.0/16          # the VPN; every address below is inside it
  interface: wg0                 # default wg0
  listen_port: 51820             # default 51820
  mtu: 1280                      # default 1280
  keepalive: 15                  # PersistentKeepalive, default 15
  backend: networkd              # networkd (default) | wgquick
  firewall: firewalld            # firewalld (default) | iptables
  schedule:
    drift_minutes: 30            # scheduled re-apply that corrects drift; 0 turns it off

  hub:
    minion: z
    address: 10.70.0.1
    endpoint: 39.101.166.124:51820   # public address the gateways and developers dial
    keepalive: 15                    # the article's hub keeps its peers alive too; default 0 (off):
                                     # a public hub needs none, and on a large hub it costs CPU

  gateways:
    a:                               # Shenzhen office, LAN1
      address: 10.70.0.2
      lan: 192.168.201.0/24
      lan_address: 192.168.201.247
      lan_interface: eth1
      lan_mode: route                # LAN1's router takes "10.70.0.0/16 via 192.168.201.247"
      lan_router: r1                 # minion that carries that route (omit: printed as an instruction)
    c:                               # Beijing office, LAN2
      address: 10.70.0.3
      lan: 192.168.200.0/24
      lan_address: 192.168.200.248
      lan_interface: eth2
      lan_mode: masquerade           # LAN2's router cannot take a static route: c NATs into the LAN
      lan_access: [a]                # c (10.70.0.3) may open connections into LAN1, as in the article
