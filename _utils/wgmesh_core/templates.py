"""Jinja2 templates of every file wgmesh writes (kept in Python so Salt's
module sync carries them to minions with the code)."""

NETDEV = """\
# Managed by wgmesh (Salt): local edits are reverted. Peers are applied live with wg(8), the changed ones only;
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
# multi-line result would be an output value, and values are single lines;
# render.py inlines it as text before Jinja compiles them).
WG_PEER = """\

[Peer]
PublicKey = {{ p.public_key }}
{% if p.preshared_key %}PresharedKey = {{ p.preshared_key }}
{% endif %}{% if p.endpoint %}Endpoint = {{ p.endpoint }}
{% endif %}AllowedIPs = {{ p.allowed_ips | join(", ") }}
{% if p.keepalive %}PersistentKeepalive = {{ p.keepalive }}
{% endif %}"""

# wg-quick: the private key stays in its own file, set by PostUp, so this file
# never carries it; the live sync renders the full wg(8) form instead.  Table = off:
# wg-quick would fork `ip` for every peer's AllowedIPs (minutes for a hub of 10,000
# developers); the address's own route carries the VPN, PostUp adds the LANs.
WG_QUICK = """\
# Managed by wgmesh (Salt): local edits are reverted.
[Interface]
Address = {{ c.address }}
ListenPort = {{ c.listen_port }}
MTU = {{ c.mtu }}
Table = off
PostUp = wg set %i private-key {{ private_key_file }}
{% for route in c.interface_routes %}PostUp = ip route replace {{ route }} dev %i
{% endfor %}{% for p in c.peers %}
# {{ p.kind }} {{ p.name }}{% include "wg_peer" %}{% endfor %}"""

# wg(8) setconf/syncconf form: always carries PrivateKey and ListenPort, since
# syncconf zeroes whatever its input leaves out.
WG_SETCONF = """\
[Interface]
PrivateKey = {{ private_key }}
ListenPort = {{ c.listen_port }}
{% for p in c.peers %}{% include "wg_peer" %}{% endfor %}"""

# wg(8) addconf form of the peers a live change adds or updates, fed to `wg addconf IF
# /dev/stdin` (their preshared keys never touch a file). A [Peer] of addconf replaces that
# peer's AllowedIPs; its preshared key (the zero key: none) and keepalive are always written,
# so a value the peer no longer has is cleared. Its Endpoint, when it has none, stays as it is
# (a roaming developer's).
WG_ADDCONF = """\
{% for p in peers %}[Peer]
PublicKey = {{ p.public_key }}
PresharedKey = {{ p.preshared_key or no_preshared_key }}
{% if p.endpoint %}Endpoint = {{ p.endpoint }}
{% endif %}AllowedIPs = {{ p.allowed_ips | join(", ") }}
PersistentKeepalive = {{ p.keepalive or "off" }}

{% endfor %}"""

SYSCTL = """\
# Managed by wgmesh (Salt): this host forwards between the tunnel and its networks.
net.ipv4.ip_forward = 1
"""

SYSCTL_RP_FILTER = """\
# Managed by wgmesh (Salt): strict reverse-path filtering on the tunnel (the kernel applies
# the larger of this and net.ipv4.conf.all.rp_filter).
net.ipv4.conf.{{ interface }}.rp_filter = 1
"""

# firewalld's permanent direct rules: wgmesh's chains and the rules of firewall.rules(), by priority.
DIRECT_XML = """\
<?xml version="1.0" encoding="utf-8"?>
<!-- Managed by wgmesh (Salt): local edits are reverted. -->
<direct>
{% for chain in chains %}  <chain ipv="ipv4" table="{{ chain[0] }}" chain="{{ chain[1] }}"/>
{% endfor %}{% for rule in rules %}  {{ rule }}
{% endfor %}</direct>
"""

# The tunnel's zone: firewalld accepts its traffic and wgmesh's direct rules decide.
FIREWALLD_ZONE = """\
<?xml version="1.0" encoding="utf-8"?>
<!-- Managed by wgmesh (Salt): local edits are reverted. -->
<zone target="ACCEPT">
  <short>{{ zone }}</short>
  <description>The WireGuard tunnel of wgmesh. firewalld lets its traffic through; wgmesh's direct rules admit only replies and the allow-list, and drop the rest.</description>
  <interface name="{{ fw.interface }}"/>
</zone>
"""

# The WireGuard port, open whatever zone the host's other interfaces are in: the hub is dialled
# by everyone; a gateway then takes the hub's packets even after their connection state is lost
# (a conntrack flush), instead of rejecting them until its next keepalive goes out.
FIREWALLD_POLICY = """\
<?xml version="1.0" encoding="utf-8"?>
<!-- Managed by wgmesh (Salt): local edits are reverted. -->
<policy target="CONTINUE" priority="-100">
  <short>{{ policy }}</short>
  <description>WireGuard peers reach this host's WireGuard port.</description>
  <ingress-zone name="ANY"/>
  <egress-zone name="HOST"/>
  <port port="{{ fw.listen_port }}" protocol="udp"/>
</policy>
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
{% elif spec.preshared_keys %}PresharedKey = <preshared key: from the master, salt-run wgmesh.client_config>
{% endif %}Endpoint = {{ endpoint }}
{% for line in note_lines %}# {{ line }}
{% endfor %}{% for ip in routes.allowed_ips %}AllowedIPs = {{ ip }}
{% endfor %}PersistentKeepalive = {{ spec.keepalive }}
"""

FIREWALL_UNIT = """\
# Managed by wgmesh (Salt): local edits are reverted.
# The iptables backend's rules at boot, before any interface comes up (the tunnel's included):
# iptables keeps nothing across a reboot, and wgmesh's next apply is minutes away.
[Unit]
Description=wgmesh firewall rules for {{ fw.interface }} (iptables backend)
DefaultDependencies=no
Wants=network-pre.target
Before=network-pre.target shutdown.target
Conflicts=shutdown.target

[Service]
Type=oneshot
RemainAfterExit=yes
{% if sets_file %}ExecStartPre=ipset -exist restore -file {{ sets_file }}
{% endif %}{% for table, builtin, args in jumps %}ExecStartPre=-iptables -w -t {{ table }} -D {{ builtin }} {{ args }}
{% endfor %}ExecStart=iptables-restore -w --noflush {{ rules_file }}

[Install]
WantedBy=sysinit.target
"""

ROUTES_UNIT = """\
# Managed by wgmesh (Salt): local edits are reverted.
# This LAN router's route to the VPN at boot: `ip route` keeps nothing across a reboot, and
# wgmesh's next apply is minutes away.
[Unit]
Description=wgmesh: the VPN via the LAN's WireGuard gateway
Wants=network-online.target
After=network-online.target

[Service]
Type=oneshot
RemainAfterExit=yes
{% for route in routes %}ExecStart=ip route replace {{ route[0] }} via {{ route[1] }}
{% endfor %}# the LAN link may be configured after network-online.target (the gateway not yet on-link)
Restart=on-failure
RestartSec=5

[Install]
WantedBy=multi-user.target
"""
