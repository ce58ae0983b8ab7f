#!yaml
# A twin test network (tests/lab/test_twin.py): three offices with different LANs and modes.
wgmesh:
  network: 10.80.0.0/16
  listen_port: 51900
  hub:
    minion: hub
    address: 10.80.0.1
    endpoint: vpn.example.com:51900
  gateways:
    sz:                          # route mode, the LAN router is a minion (Salt adds the route)
      address: 10.80.0.2
      lan: 10.20.0.0/24
      lan_address: 10.20.0.5
      lan_interface: eth0
      lan_router: sz-rt
    bj:                          # route mode, a /22, the router's admin adds the route
      address: 10.80.0.3
      lan: 172.20.8.0/22
      lan_address: 172.20.9.1
      lan_interface: lan0
    hk:                          # masquerade, wgmesh's iptables chains, may reach sz's LAN
      address: 10.80.0.4
      lan: 192.168.50.0/24
      lan_address: 192.168.50.2
      lan_interface: enp3s0
      lan_mode: masquerade
      lan_access: [sz]
      firewall: iptables
