#!yaml
# A twin test network (tests/lab/test_twin.py): wg-quick and wgmesh's iptables chains, masquerade
# into both LANs, no developer-to-developer forwarding, the gateways open to every VPN peer.
wgmesh:
  network: 10.99.0.0/24
  backend: wgquick
  firewall: iptables
  developer_to_developer: false
  gateway_access: vpn
  hub:
    minion: core
    address: 10.99.0.254
    endpoint: 198.51.100.20
  gateways:
    lab:
      address: 10.99.0.1
      lan: 192.168.7.0/24
      lan_address: 192.168.7.1
      lan_mode: masquerade
    plant:
      address: 10.99.0.2
      lan: 10.40.0.0/16
      lan_address: 10.40.3.3
      lan_mode: masquerade
      lan_access: all
