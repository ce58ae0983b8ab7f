"""Jinja2 templates of every file wgmesh writes (kept in Python so Salt's
module sync carries them to minions with the code)."""

NETDEV = """\
# Managed by wgmesh (Salt): local edits are reverted. Peers are applied live with wg syncconf;
# this file is what systemd-networkd builds the interface from at boot.
[NetDev]
Name={{ c.interface }}
Kind=wireguard
MTUBytes={{ c.mtu }}

[WireGuard]
ListenPort={{ c.listen_port }}
PrivateKeyFile={{ private_key_file }}
{% for p in c.peers %}
# {{ p.kind }} {{ p.name }}
[WireGuardPeer]
PublicKey={{ p.public_key }}
{% if p.preshared_key %}PresharedKey={{ p.preshared_key }}
{% endif %}{% if p.endpoint %}Endpoint={{ p.endpoint }}
{% endif %}{% for ip in p.allowed_ips %}AllowedIPs={{ ip }}
{% endfor %}{% if p.keepalive %}PersistentKeepalive={{ p.keepalive }}
{% endif %}{% endfor %}"""

NETWORK = """\
# Managed by wgmesh (Salt): local edits are reverted.
[Match]
Name={{ c.interface }}

[Network]
Address={{ c.address }}
{% for route in c.interface_routes %}
[Route]
Destination={{ route }}
{% endfor %}"""

# One [Peer] section in wg-quick / wg(8) syntax (included by both files below,
# with the peer as ``p``: an include writes its text as is, where a macro's
# multi-line result would be an output value, and values are single lines).
WG_PEER = """\

[Peer]
PublicKey = {{ p.public_key }}
{% if p.preshared_key %}PresharedKey = {{ p.preshared_key }}
{% endif %}{% if p.endpoint %}Endpoint = {{ p.endpoint }}
{% endif %}AllowedIPs = {{ p.allowed_ips | join(", ") }}
{% if p.keepalive %}PersistentKeepalive = {{ p.keepalive }}
{% endif %}"""

# wg-quick: the private key stays in its own file, set by PostUp, so this file
# never carries it; the live sync renders the full wg(8) form instead.
WG_QUICK = """\
# Managed by wgmesh (Salt): local edits are reverted.
[Interface]
Address = {{ c.address }}
ListenPort = {{ c.listen_port }}
MTU = {{ c.mtu }}
PostUp = wg set %i private-key {{ private_key_file }}
{% for p in c.peers %}
# {{ p.kind }} {{ p.name }}{% include "wg_peer" %}{% endfor %}"""

# wg(8) setconf/syncconf form: always carries PrivateKey and ListenPort, since
# syncconf zeroes whatever its input leaves out.
WG_SETCONF = """\
[Interface]
PrivateKey = {{ private_key }}
ListenPort = {{ c.listen_port }}
{% for p in c.peers %}{% include "wg_peer" %}{% endfor %}"""

SYSCTL = """\
# Managed by wgmesh (Salt): this host forwards between the tunnel and its networks.
net.ipv4.ip_forward = 1
"""

DIRECT_XML = """\
<?xml version="1.0" encoding="utf-8"?>
<direct>
  <rule ipv="ipv4" table="filter" chain="FORWARD" priority="1">-m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT</rule>
{% for source in fw.allow_sources %}  <rule ipv="ipv4" table="filter" chain="FORWARD" priority="2">-s {{ source }} -m conntrack --ctstate NEW -j ACCEPT</rule>
{% endfor %}  <rule ipv="ipv4" table="filter" chain="FORWARD" priority="10">-j DROP</rule>
{% if fw.masquerade %}  <rule ipv="ipv4" table="nat" chain="POSTROUTING" priority="0">-s {{ fw.masquerade[0] }} -d {{ fw.masquerade[1] }} -o {{ fw.masquerade[2] }} -j MASQUERADE</rule>
{% endif %}</direct>
"""

# iptables-restore --noflush input: declaring the chains flushes and refills
# them in one transaction; rules are written as `iptables -S` prints them so
# drift is a plain comparison.
IPTABLES = """\
*filter
:{{ chains.forward }} - [0:0]
-A {{ chains.forward }} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
{% for source in fw.allow_sources %}-A {{ chains.forward }} -s {{ source }} -m conntrack --ctstate NEW -j ACCEPT
{% endfor %}-A {{ chains.forward }} -j DROP
COMMIT
*nat
:{{ chains.nat }} - [0:0]
{% if fw.masquerade %}-A {{ chains.nat }} -s {{ fw.masquerade[0] }} -d {{ fw.masquerade[1] }} -o {{ fw.masquerade[2] }} -j MASQUERADE
{% endif %}COMMIT
"""

CLIENT = """\
# wgmesh client config for developer {{ name }} ({{ spec.network }} via hub {{ spec.hub.minion }}).
# Import it in the WireGuard app once your private key is in place (`wgmesh join` does that).
[Interface]
{% if private_key %}PrivateKey = {{ private_key }}
{% else %}# PrivateKey = <your private key: it never leaves your machine>
{% endif %}ListenPort = {{ spec.listen_port }}
Address = {{ dev.address }}/{{ spec.network.prefixlen }}
MTU = {{ spec.mtu }}

[Peer]
PublicKey = {{ hub_public_key or "<hub public key: not yet known to the master>" }}
{% if psk %}PresharedKey = {{ psk }}
{% endif %}Endpoint = {{ endpoint }}
{% for line in note_lines %}# {{ line }}
{% endfor %}{% for ip in routes.allowed_ips %}AllowedIPs = {{ ip }}
{% endfor %}PersistentKeepalive = {{ spec.keepalive }}
"""
