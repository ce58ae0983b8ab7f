"""The article's configuration files and keys, copied verbatim from
/work/shared/reference/000_2f2c11d02094e472.txt (lines ~70-330).

Kept inside the test tree so the tests do not depend on the reference folder.
Comments in the article's files (Chinese remarks) are kept where they were:
the comparison ignores comment lines, as the brief asks.
"""

HUB_PUBLIC = "CmmeC0yqofMMZhEGHuK5dd2Mxyxe7tA8wSniDWiI5V0="
PUBLIC_KEYS = {
    "z": HUB_PUBLIC,
    "a": "u4vkZywF9hZcy5QUhcbOCjD2EZ7GL2yXgoAH+IoIbHE=",
    "c": "/d8UR69JrdjxC2Fo9hvfZaoSC35LSGNLJ5mqjEyWjRo=",
    "e": "0VooFEp8ZdpZp3P7BPa2W3piw+eu/6cyUGpSUWZp4HA=",
    "f": "MyeHCD9sVXMXPgyEY79Yif8QskCjqm+SoJqmLXHN1RM=",
}
PRIVATE_KEYS = {
    "z": "qJwN1zu5alr89c6k18U4SUwZXnUgVhr/tvSgLM7rmHQ=",
    "a": "gNCkDUdQ3yBynzEST9XOd31NsPluF3Q7aeFu82QsV04=",
    "c": "SF6RqNRo1c9vwFVteFonRwpbU1Ee1zsKp6v9c8pXwnA=",
    "e": "WMWozvjIgpA2h75juoku2btWxbJ54i4Yt0A0RhpW7V8=",
    "f": "mOUA5x3hfa4D3zwC1HpivQYH2f/z6Ltdpm4YeEQSFXg=",
}
# Preshared key of each hub<->node pair.
PSKS = {
    "a": "IBAsO/DwbautQjq/Gksv3lFJZwnUXvkMR3GyxeelS4o=",
    "c": "YdpxayZdKMeoHzo9fVvBSWoDTn1c++r5awhm28Is9Ic=",
    "e": "KKQGN01IkZ1kJD2fAxtDZ6k5VFAI2fMca2q+SV7OrGE=",
    "f": "pXt2C8EeBPF+y7izRv40GwYpEtaF625PRlp9kcTSzIM=",
}

CLIENT_E = """\
[Interface]
PrivateKey = WMWozvjIgpA2h75juoku2btWxbJ54i4Yt0A0RhpW7V8=
ListenPort = 51820
Address = 10.70.0.4/16
MTU = 1280

[Peer]
PublicKey = CmmeC0yqofMMZhEGHuK5dd2Mxyxe7tA8wSniDWiI5V0=
PresharedKey = KKQGN01IkZ1kJD2fAxtDZ6k5VFAI2fMca2q+SV7OrGE=
Endpoint = 39.101.166.124:51820
AllowedIPs = 10.70.0.0/16
AllowedIPs = 192.168.200.0/24
AllowedIPs = 192.168.201.0/24
PersistentKeepalive = 15
"""

CLIENT_F = """\
[Interface]
PrivateKey = mOUA5x3hfa4D3zwC1HpivQYH2f/z6Ltdpm4YeEQSFXg=
ListenPort = 51820
Address = 10.70.0.5/16
MTU = 1280

[Peer]
PublicKey = CmmeC0yqofMMZhEGHuK5dd2Mxyxe7tA8wSniDWiI5V0=
PresharedKey = pXt2C8EeBPF+y7izRv40GwYpEtaF625PRlp9kcTSzIM=
Endpoint = 39.101.166.124:51820
AllowedIPs = 10.70.0.0/16
AllowedIPs = 192.168.200.0/24
AllowedIPs = 192.168.201.0/24
PersistentKeepalive = 15
"""

HUB_NETDEV = """\
[NetDev]
Name=wg0
Kind=wireguard
MTUBytes=1280

[WireGuard]
ListenPort=51820
PrivateKey=qJwN1zu5alr89c6k18U4SUwZXnUgVhr/tvSgLM7rmHQ=

# LAN1 WireGuard Client
[WireGuardPeer]
PublicKey=u4vkZywF9hZcy5QUhcbOCjD2EZ7GL2yXgoAH+IoIbHE=
PresharedKey=IBAsO/DwbautQjq/Gksv3lFJZwnUXvkMR3GyxeelS4o=
AllowedIPs=10.70.0.2/32
AllowedIPs=192.168.201.0/24
PersistentKeepalive=15

# LAN2 WireGuard Client
[WireGuardPeer]
PublicKey=/d8UR69JrdjxC2Fo9hvfZaoSC35LSGNLJ5mqjEyWjRo=
PresharedKey=YdpxayZdKMeoHzo9fVvBSWoDTn1c++r5awhm28Is9Ic=
AllowedIPs=10.70.0.3/32
AllowedIPs=192.168.200.0/24
PersistentKeepalive=15

# Remote Developer e
[WireGuardPeer]
PublicKey=0VooFEp8ZdpZp3P7BPa2W3piw+eu/6cyUGpSUWZp4HA=
# 公网服务器上的 PresharedKey 需要跟客户端保持一致
PresharedKey=KKQGN01IkZ1kJD2fAxtDZ6k5VFAI2fMca2q+SV7OrGE=
AllowedIPs=10.70.0.4/32
PersistentKeepalive=15

# Remote Developer f
[WireGuardPeer]
PublicKey=MyeHCD9sVXMXPgyEY79Yif8QskCjqm+SoJqmLXHN1RM=
# 公网服务器上的 PresharedKey 需要跟客户端保持一致
PresharedKey=pXt2C8EeBPF+y7izRv40GwYpEtaF625PRlp9kcTSzIM=
AllowedIPs=10.70.0.5/32
PersistentKeepalive=15
"""

HUB_NETWORK = """\
[Match]
Name=wg0

[Network]
Address=10.70.0.1/16

[Route]
Destination=192.168.200.0/24

[Route]
Destination=192.168.201.0/24
"""

A_NETDEV = """\
[NetDev]
Name=wg0
Kind=wireguard
MTUBytes=1280

[WireGuard]
ListenPort=51820
PrivateKey=gNCkDUdQ3yBynzEST9XOd31NsPluF3Q7aeFu82QsV04=

[WireGuardPeer]
PublicKey=CmmeC0yqofMMZhEGHuK5dd2Mxyxe7tA8wSniDWiI5V0=
PresharedKey=IBAsO/DwbautQjq/Gksv3lFJZwnUXvkMR3GyxeelS4o=
Endpoint=39.101.166.124:51820
AllowedIPs=10.70.0.0/16
PersistentKeepalive=15
"""

A_NETWORK = """\
[Match]
Name=wg0

[Network]
Address=10.70.0.2/16
"""

C_NETDEV = """\
[NetDev]
Name=wg0
Kind=wireguard
MTUBytes=1280

[WireGuard]
ListenPort=51820
PrivateKey=SF6RqNRo1c9vwFVteFonRwpbU1Ee1zsKp6v9c8pXwnA=

[WireGuardPeer]
PublicKey=CmmeC0yqofMMZhEGHuK5dd2Mxyxe7tA8wSniDWiI5V0=
PresharedKey=YdpxayZdKMeoHzo9fVvBSWoDTn1c++r5awhm28Is9Ic=
Endpoint=39.101.166.124:51820
AllowedIPs=10.70.0.0/16
PersistentKeepalive=15
"""

C_NETWORK = """\
[Match]
Name=wg0

[Network]
Address=10.70.0.3/16
"""

SYSCTL_COMMAND = "echo -e 'net.ipv4.ip_forward = 1' > /etc/sysctl.d/10-ip-forward.conf"

IPTABLES_ALLOW = [
    "iptables -t filter -I FORWARD 1 -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT",
    "iptables -t filter -I FORWARD 2 -s 10.70.0.3/32 -m conntrack --ctstate NEW -j ACCEPT",
    "iptables -t filter -I FORWARD 2 -s 10.70.0.4/32 -m conntrack --ctstate NEW -j ACCEPT",
    "iptables -t filter -I FORWARD 10 -j DROP",
]

DIRECT_XML = """\
<?xml version="1.0" encoding="utf-8"?>
<direct>
  <rule ipv="ipv4" table="filter" chain="FORWARD" priority="1">-m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT</rule>
  <rule ipv="ipv4" table="filter" chain="FORWARD" priority="2">-s 10.70.0.3/32 -m conntrack --ctstate NEW -j ACCEPT</rule>
  <rule ipv="ipv4" table="filter" chain="FORWARD" priority="2">-s 10.70.0.4/32 -m conntrack --ctstate NEW -j ACCEPT</rule>
  <rule ipv="ipv4" table="filter" chain="FORWARD" priority="10">-j DROP</rule>
</direct>"""

MASQUERADE_COMMAND = "iptables -t nat -A POSTROUTING -s 10.70.0.0/16 -d 192.168.200.0/24 -o eth2 -j MASQUERADE"
