"""The lab's address plan: hosts, segments, interfaces, routes, derived from a wgmesh network.

Pure data, no side effects.  ``derive(spec, named)`` lays out the network a pillar describes
(lab/README.md shows the article's as a table):

- the "internet", one flat segment 203.0.113.0/24 (TEST-NET-3): the hub plays the pillar's
  public endpoint at .1, the salt-master is .10, gateway i's LAN router has its WAN side at
  .20+i, developer j's home NAT router at .30+j (later if there are more than ten gateways).
  Every internet host has an on-link default route and no route to a private range, so the
  private LANs are only reachable from the inside (dial-out through MASQUERADE);
- each gateway's LAN (segment ``lan<i>``): the gateway at its ``lan_address`` on its
  ``lan_interface``, the LAN router at the LAN's first address (its last when the first is
  taken), named ``lan_router`` when a minion carries the static route, else ``r<i>``, and one
  LAN host, named after the first host ``tests.yaml`` names in that LAN (else ``h<i>``),
  holding every address the tests name there;
- each developer's laptop at .100 of its own home /24 (172.16.5.0/24 on, skipping any prefix
  the network uses) behind its home NAT router ``n<name>``.

The article's pillar (``pillar/`` of the repository) gives the plan the lab's tests know
(z, r1, a, b, r2, c, d, ne, e, nf, f); the module's ``HOSTS``, ``SEGMENTS``... are that plan,
derived on first use.
"""
from __future__ import annotations

import functools
import ipaddress
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Mapping

INTERNET = "203.0.113.0/24"
MASTER_IP = "203.0.113.10"
HUB_IP = "203.0.113.1"
HOMES = ipaddress.ip_network("172.16.0.0/12")
FIRST_HOME = 5                 # the first home is 172.16.5.0/24 (the article's e)
LAB_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,19}$")
RESERVED = {"master", "sw"}    # the salt-master's host and the switch namespace


@dataclass(frozen=True)
class Iface:
    name: str        # interface name inside the host
    segment: str     # key of the plan's segments
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
    aliases: tuple[str, ...] = field(default=())   # more CIDRs on the first interface

    @property
    def primary_ip(self) -> str:
        return self.ifaces[0].ip

    @property
    def ips(self) -> tuple[str, ...]:
        return tuple(i.ip for i in self.ifaces) + tuple(a.split("/")[0] for a in self.aliases)

    @classmethod
    def from_dict(cls, data: dict) -> "HostPlan":
        data = dict(data, ifaces=tuple(Iface(**i) for i in data["ifaces"]))
        for key in ("router_nat", "extra_routes", "aliases"):
            if data.get(key) is not None:
                data[key] = tuple(data[key])
        return cls(**data)


@dataclass(frozen=True)
class AddressPlan:
    hosts: dict            # host name -> HostPlan, in setup order
    segments: dict         # segment -> (bridge name in the switch namespace, prefix)
    minions: dict          # minion id -> host (the hub, the gateways, LAN routers that are minions)
    laptops: dict          # developer -> host
    lans: dict             # gateway id -> (segment, LAN router host, LAN host)
    master_ip: str = MASTER_IP
    hub_ip: str = HUB_IP

    def addresses(self) -> dict[str, str]:
        """``host:if`` -> address, for the status matrix and name lookups."""
        return {f"{h.name}:{i.name}": i.ip for h in self.hosts.values() for i in h.ifaces}

    def owner_of(self, ip: str) -> str | None:
        """Host owning a static plan address (None for VPN or unknown addresses)."""
        return next((h.name for h in self.hosts.values() if ip in h.ips), None)

    def etc_hosts(self, host: str) -> str:
        lines = ["127.0.0.1\tlocalhost", f"127.0.1.1\t{host}", "::1\tlocalhost ip6-localhost ip6-loopback"]
        for h in self.hosts.values():
            if h.name != host:
                alias = "\tsalt" if h.name == "master" else ""
                lines.append(f"{h.primary_ip}\t{h.name}{alias}")
        return "\n".join(lines) + "\n"

    def office_address(self, gid: str) -> str:
        """A free address of gateway ``gid``'s LAN for a laptop that joins that office."""
        segment, _router, _host = self.lans[gid]
        prefix = ipaddress.ip_network(self.segments[segment][1])
        taken = {h_ip for h in self.hosts.values() for h_ip in h.ips}
        for candidate in (27, *range(28, prefix.num_addresses - 1)):
            address = str(prefix.network_address + candidate)
            if candidate < prefix.num_addresses - 1 and address not in taken:
                return f"{address}/{prefix.prefixlen}"
        raise ValueError(f"no free address in {prefix}")

    def to_dict(self) -> dict:
        return {"hosts": [asdict(h) for h in self.hosts.values()], "segments": self.segments,
                "minions": self.minions, "laptops": self.laptops, "lans": self.lans,
                "master_ip": self.master_ip, "hub_ip": self.hub_ip}

    @classmethod
    def from_dict(cls, data: dict) -> "AddressPlan":
        hosts = {h["name"]: HostPlan.from_dict(h) for h in data["hosts"]}
        return cls(hosts, {k: tuple(v) for k, v in data["segments"].items()}, data["minions"], data["laptops"],
                   {k: tuple(v) for k, v in data["lans"].items()}, data["master_ip"], data["hub_ip"])


def _router(name, role, wan_ip, lan_seg, lan_ip, lan_prefix):
    return HostPlan(name, role, (Iface("eth0", "inet", f"{wan_ip}/24"), Iface("eth1", lan_seg, lan_ip)),
                    default_dev="eth0", router_nat=("eth0", lan_prefix), forwarding=True)


class _Names:
    """Lab host names: the pillar's own where they are short and plain, else generated ones."""

    def __init__(self):
        self.taken = set(RESERVED)

    def take(self, wanted: str, fallback: str) -> str:
        name = wanted if LAB_NAME.match(wanted) and wanted not in self.taken else fallback
        base, n = name, 2
        while name in self.taken:
            name, n = f"{base}{n}", n + 1
        self.taken.add(name)
        return name


def _homes(used: list) -> Iterable[ipaddress.IPv4Network]:
    for n, home in enumerate(HOMES.subnets(new_prefix=24)):
        if n >= FIRST_HOME and not any(home.overlaps(prefix) for prefix in used):
            yield home


def derive(spec, named: Mapping[str, str] = (), addresses: Iterable[str] = ()) -> AddressPlan:
    """The address plan of network ``spec`` (a ``wgmesh_core.model.NetworkSpec``).  ``named``:
    the LAN hosts tests.yaml names (name -> address); ``addresses``: other LAN addresses tests
    name.  Both become addresses of their LAN's host."""
    names = _Names()
    hub = names.take(spec.hub.minion, "hub")
    hosts = [HostPlan("master", "salt-master (internet)", (Iface("eth0", "inet", f"{MASTER_IP}/24"),),
                      default_dev="eth0"),
             HostPlan(hub, f"hub {spec.hub.minion}, public (pillar: {spec.hub.endpoint})",
                      (Iface("eth0", "inet", f"{HUB_IP}/24"),), default_dev="eth0")]
    segments = {"inet": ("br-inet", INTERNET)}
    minions, laptops, lans = {spec.hub.minion: hub}, {}, {}
    wanted = {str(a): n for n, a in dict(named).items()}     # named hosts first: they name the LAN host
    wanted.update({str(a): None for a in addresses if str(a) not in wanted})
    for i, (gid, gw) in enumerate(spec.gateways.items(), start=1):
        lan = ipaddress.ip_network(str(gw.lan))
        mine = {a: n for a, n in wanted.items() if ipaddress.ip_address(a) in lan and a != str(gw.lan_address)}
        router_ip = next(str(a) for a in (lan.network_address + 1, lan.broadcast_address - 1)
                         if str(a) != str(gw.lan_address) and str(a) not in mine)
        mine.pop(router_ip, None)
        if not mine:
            mine = {next(str(lan.network_address + n) for n in (10, 11, 12)
                         if str(lan.network_address + n) not in (router_ip, str(gw.lan_address))): None}
        segment, length = f"lan{i}", lan.prefixlen
        segments[segment] = (f"br-lan{i}", str(lan))
        router = names.take(gw.lan_router or f"r{i}", f"r{i}")
        gateway = names.take(gid, f"gw{i}")
        lan_host = names.take(next((n for n in mine.values() if n), f"h{i}"), f"h{i}")
        first, *more = mine
        hosts += [_router(router, f"LAN router + NAT of {gid}", f"203.0.113.{20 + i}", segment,
                          f"{router_ip}/{length}", str(lan)),
                  HostPlan(gateway, f"gateway {gid} ({gw.lan_mode})",
                           (Iface(gw.lan_interface, segment, f"{gw.lan_address}/{length}"),), gateway=router_ip),
                  HostPlan(lan_host, f"host in the LAN of {gid}", (Iface("eth0", segment, f"{first}/{length}"),),
                           gateway=router_ip, aliases=tuple(f"{a}/{length}" for a in more))]
        minions[gid] = gateway
        if gw.lan_router:
            minions[gw.lan_router] = router
        lans[gid] = (segment, router, lan_host)
    homes = _homes([ipaddress.ip_network(str(spec.network))] + [ipaddress.ip_network(str(g.lan))
                                                                  for g in spec.gateways.values()])
    first_home_wan = max(30, 20 + len(spec.gateways))
    for j, developer in enumerate(spec.developers, start=1):
        if first_home_wan + j > 254:
            raise ValueError(f"the lab's internet holds at most {254 - first_home_wan} developers")
        home = next(homes)
        laptop = names.take(developer, f"dev{j}")
        nat = names.take(f"n{laptop}", f"n{j}")
        segment = f"home_{laptop}"
        bridge = f"br-home-{laptop}" if len(f"br-home-{laptop}") <= 15 else f"br-home{j}"
        segments[segment] = (bridge, str(home))
        hosts += [_router(nat, f"{developer}'s home NAT router", f"203.0.113.{first_home_wan + j}", segment,
                          f"{home.network_address + 1}/24", str(home)),
                  HostPlan(laptop, f"developer {developer}'s laptop",
                           (Iface("eth0", segment, f"{home.network_address + 100}/24"),),
                           gateway=str(home.network_address + 1))]
        laptops[developer] = laptop
    return AddressPlan({h.name: h for h in hosts}, segments, minions, laptops, lans)


# --- the article's network: the plan of the repository's example pillar -----------------------

REPO = Path(__file__).resolve().parent.parent
ARTICLE_PILLAR = REPO / "pillar"


def read_pillar(root) -> tuple:
    """(NetworkSpec, tests.yaml data or None) of a pillar directory, compiled by Salt as the
    master would (``wgmesh validate`` reads it the same way)."""
    from wgmesh_core.validate import load_network
    from wgmesh_salt import read_document
    document = read_document(Path(root), ())
    return load_network(document.network), document.tree.tests


def named_hosts(tests) -> dict:
    return {str(k): str(v) for k, v in ((tests or {}).get("hosts") or {}).items()}


@functools.lru_cache(maxsize=None)
def article() -> AddressPlan:
    spec, tests = read_pillar(ARTICLE_PILLAR)
    return derive(spec, named_hosts(tests))


def __getattr__(name):
    """``HOSTS``, ``SEGMENTS``, ``LAN1``... of the article's plan, derived on first use."""
    values = {
        "HOSTS": lambda p: p.hosts, "SEGMENTS": lambda p: p.segments,
        "LAN1": lambda p: p.segments["lan1"][1], "LAN2": lambda p: p.segments["lan2"][1],
        # the article's route-conflict case: e in the LAN2 office
        "OFFICE_LINK": lambda p: dict(host="e", segment="lan2", ifname="eth1", address=p.office_address("c")),
    }
    if name in values:
        return values[name](article())
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def addresses() -> dict[str, str]:
    return article().addresses()


def owner_of(ip: str) -> str | None:
    return article().owner_of(ip)


def etc_hosts(host: str) -> str:
    return article().etc_hosts(host)
