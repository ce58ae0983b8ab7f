"""The lab's address plan: hosts, segments, interfaces, routes.

Pure data, no side effects.  See lab/README.md for the same plan as a table.

The "internet" is one flat segment, 203.0.113.0/24 (TEST-NET-3).  z plays the
article's public hub 39.101.166.124, master is the salt-master, and the WAN
sides of the four NAT routers (r1, r2, ne, nf) sit on the same segment.  Every
internet host has an on-link default route (``default dev eth0``); nothing on
the internet segment has a route to a private range, so the private LANs are
only reachable from the inside (dial-out through MASQUERADE).
"""
from __future__ import annotations

from dataclasses import dataclass, field

INTERNET = "203.0.113.0/24"
LAN1 = "192.168.201.0/24"
LAN2 = "192.168.200.0/24"
HOME_E = "172.16.5.0/24"
HOME_F = "172.16.6.0/24"

#: segment name -> (bridge name in the switch namespace, prefix)
SEGMENTS: dict[str, tuple[str, str]] = {
    "inet": ("br-inet", INTERNET),
    "lan1": ("br-lan1", LAN1),
    "lan2": ("br-lan2", LAN2),
    "home_e": ("br-home-e", HOME_E),
    "home_f": ("br-home-f", HOME_F),
}


@dataclass(frozen=True)
class Iface:
    name: str        # interface name inside the host
    segment: str     # key of SEGMENTS
    address: str     # CIDR, e.g. "192.168.201.247/24"

    @property
    def ip(self) -> str:
        return self.address.split("/")[0]


@dataclass(frozen=True)
class HostPlan:
    name: str
    role: str
    ifaces: tuple[Iface, ...]
    gateway: str | None = None          # "via" address of the default route
    default_dev: str | None = None      # on-link default route (internet hosts)
    router_nat: tuple[str, str] | None = None   # (wan if, lan prefix) -> MASQUERADE
    forwarding: bool = False            # ip_forward set by the lab (routers only)
    extra_routes: tuple[str, ...] = field(default=())

    @property
    def primary_ip(self) -> str:
        return self.ifaces[0].ip


def _router(name, role, wan_ip, lan_seg, lan_ip, lan_prefix):
    return HostPlan(
        name, role,
        (Iface("eth0", "inet", f"{wan_ip}/24"), Iface("eth1", lan_seg, lan_ip)),
        default_dev="eth0", router_nat=("eth0", lan_prefix), forwarding=True)


#: Host order is also the order of setup and of the status matrix.
HOSTS: dict[str, HostPlan] = {h.name: h for h in (
    HostPlan("master", "salt-master (internet)",
             (Iface("eth0", "inet", "203.0.113.10/24"),), default_dev="eth0"),
    HostPlan("z", "hub, public address (article: 39.101.166.124)",
             (Iface("eth0", "inet", "203.0.113.1/24"),), default_dev="eth0"),
    _router("r1", "LAN1 router + NAT", "203.0.113.21", "lan1", "192.168.201.1/24", LAN1),
    HostPlan("a", "LAN1 gateway (VPN node)",
             (Iface("eth1", "lan1", "192.168.201.247/24"),), gateway="192.168.201.1"),
    HostPlan("b", "LAN1 device",
             (Iface("eth0", "lan1", "192.168.201.10/24"),), gateway="192.168.201.1"),
    _router("r2", "LAN2 router + NAT", "203.0.113.22", "lan2", "192.168.200.1/24", LAN2),
    HostPlan("c", "LAN2 gateway (VPN node)",
             (Iface("eth2", "lan2", "192.168.200.248/24"),), gateway="192.168.200.1"),
    HostPlan("d", "LAN2 device",
             (Iface("eth0", "lan2", "192.168.200.244/24"),), gateway="192.168.200.1"),
    _router("ne", "e's home NAT router", "203.0.113.31", "home_e", "172.16.5.1/24", HOME_E),
    HostPlan("e", "developer laptop (Guangzhou)",
             (Iface("eth0", "home_e", "172.16.5.100/24"),), gateway="172.16.5.1"),
    _router("nf", "f's home NAT router", "203.0.113.32", "home_f", "172.16.6.1/24", HOME_F),
    HostPlan("f", "developer laptop (Shanghai)",
             (Iface("eth0", "home_f", "172.16.6.100/24"),), gateway="172.16.6.1"),
)}

MASTER_IP = "203.0.113.10"
HUB_IP = "203.0.113.1"

#: the article's route-conflict case: e in the LAN2 office
OFFICE_LINK = dict(host="e", segment="lan2", ifname="eth1", address="192.168.200.27/24")

#: host -> {name: address} for the status matrix / name lookups
def addresses() -> dict[str, str]:
    out = {}
    for h in HOSTS.values():
        for i in h.ifaces:
            out[f"{h.name}:{i.name}"] = i.ip
    return out


def owner_of(ip: str) -> str | None:
    """Host owning a static plan address (None for VPN or unknown addresses)."""
    for h in HOSTS.values():
        for i in h.ifaces:
            if i.ip == ip:
                return h.name
    return None


def etc_hosts(host: str) -> str:
    lines = ["127.0.0.1\tlocalhost", f"127.0.1.1\t{host}",
             "::1\tlocalhost ip6-localhost ip6-loopback"]
    for h in HOSTS.values():
        if h.name != host:
            alias = "\tsalt" if h.name == "master" else ""
            lines.append(f"{h.primary_ip}\t{h.name}{alias}")
    return "\n".join(lines) + "\n"
