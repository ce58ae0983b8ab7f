"""What the network lets through: the static reachability of one address from another.

``Reachability(spec, today)`` predicts, for a source and a destination, whether a new
connection gets there and its replies get back, which way (through the tunnel or on-link),
and why.  Every check reads the plan's own derived data (``plan.host_config`` of the hub,
the gateways and the LAN routers, ``plan.client_routes``), so the prediction follows what
wgmesh renders: AllowedIPs on both ends of each hop (WireGuard drops a packet whose source
is not in its peer's AllowedIPs, so the reply would have no way back either), the hub's
routes, the hub's and each gateway's firewall (new connections forwarded only from allowed VPN
sources into the LANs and to the gateways themselves, developer to developer when on; replies
pass as ESTABLISHED), MASQUERADE or the LAN router's static route, revocation and expiry as
of ``today``.  A developer sitting in an office LAN reaches it on-link when its tunnel's
route for that LAN is less specific than the LAN's own (the route-conflict fix).

Built once per network and date (linear in the developers); each prediction then costs a
few lookups.  A live twin asks the same object what it predicts (``predict``) and compares
it with what it measures.
"""
from __future__ import annotations

import copy
import datetime
import functools
import socket
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Optional

import netaddr

from .model import NetworkSpec
from .plan import HostConfig, active_gateways, client_routes, reachable_gateways

if TYPE_CHECKING:
    from .diff import StandInConfigs

TUNNEL, ON_LINK = "tunnel", "on-link"


@dataclass(frozen=True)
class Endpoint:
    """One end of a connection, resolved against the network."""
    kind: str                      # "hub" | "gateway" | "developer" | "lan" (a LAN host) | "vpn" (unassigned)
    name: str                      # host or developer name, named LAN host, or the address as written
    address: netaddr.IPAddress     # the address it sends from, or is reached at
    gateway: Optional[str] = None  # gateway: its id; lan: the gateway of its LAN
    at: Optional[str] = None       # developer: the gateway whose office LAN it sits in

    @property
    def label(self) -> str:
        return f"{self.name} (in {self.at}'s LAN)" if self.at else self.name

    def __str__(self) -> str:
        return self.label


@dataclass(frozen=True)
class Prediction:
    reach: bool
    via: Optional[str]              # TUNNEL | ON_LINK when it reaches
    reason: str                     # blocked: the first check that fails; reach: the way it goes
    path: tuple[str, ...] = ()      # hops walked, source first
    seen_as: Optional[str] = None   # the source address the destination sees, when a gateway masquerades
    assumes: tuple[str, ...] = ()   # what it relies on outside wgmesh (a route on an unmanaged router)

    @property
    def outcome(self) -> str:
        return f"reach via {self.via}" if self.reach else "blocked"


class _Blocked(Exception):
    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass
class _Walk:
    """A connection being followed hop by hop."""
    source: Endpoint
    destination: Endpoint
    path: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    assumes: list = field(default_factory=list)
    seen_as: Optional[str] = None

    def arrive(self, hop: str) -> None:
        if self.path[-1:] != [hop]:
            self.path.append(hop)


def _prefix(text) -> tuple[int, int]:
    """(network as an int, prefix length) of ``a.b.c.d/n`` or of an address (/32)."""
    address, _, length = str(text).partition("/")
    return int.from_bytes(socket.inet_aton(address), "big"), int(length or 32)


def _mask(length: int) -> int:
    return (0xFFFFFFFF << (32 - length)) & 0xFFFFFFFF


class _Prefixes:
    """A set of prefixes with a longest-prefix match: one dict lookup per prefix length."""

    def __init__(self, entries):
        """``entries``: (prefix, value) pairs; the first value given for a prefix stays."""
        self._by_length: dict[int, dict[int, object]] = {}
        for prefix, value in entries:
            network, length = _prefix(prefix)
            self._by_length.setdefault(length, {}).setdefault(network, value)
        self._lengths = sorted(self._by_length, reverse=True)

    def lookup(self, address):
        value = int(address)
        for length in self._lengths:
            found = self._by_length[length].get(value & _mask(length))
            if found is not None:
                return found
        return None

    def covering(self, address) -> list:
        """Every prefix holding ``address``, longest first, as netaddr networks."""
        value = int(address)
        return [netaddr.IPNetwork((value & _mask(length), length)) for length in self._lengths
                if (value & _mask(length)) in self._by_length[length]]


@dataclass
class _Derived:
    """What the plan derives for one date: the configs the predictions read."""
    hub: HostConfig
    gateways: dict             # gateway id -> HostConfig (active gateways)
    routers: dict              # LAN router minion id -> HostConfig
    hub_peers: _Prefixes       # the hub's peers by their AllowedIPs
    hub_routes: list           # what the hub routes into the tunnel (netaddr networks)
    allowed: dict              # gateway id -> frozenset of VPN /32s its allow-list admits
    local: dict                # gateway id -> frozenset of VPN /32s that may reach it (None: any)
    hub_forward: dict          # VPN /32 (None: any) -> _Prefixes of where the hub forwards its new connections
    hub_developers: frozenset  # developer addresses (ints) the hub forwards to each other (developer_to_developer)
    tunnel_sources: dict       # gateway id -> _Prefixes of the sources its hub peer accepts
    client_routes: dict = field(default_factory=dict)   # developer -> (AllowedIPs strings, _Prefixes)

    @classmethod
    def of(cls, configs: StandInConfigs) -> "_Derived":
        """From the configs planned with stand-in keys: every key known, this is about
        reachability, not key delivery."""
        spec = configs.spec
        hub = configs[spec.hub.minion]
        gateways = {gid: configs[gid] for gid in active_gateways(spec)}
        routers = {gw.lan_router: configs[gw.lan_router] for gw in active_gateways(spec).values() if gw.lan_router}
        return cls(hub, gateways, routers,
                   hub_peers=_Prefixes((ip, peer) for peer in hub.peers for ip in peer.allowed_ips),
                   hub_routes=[spec.network] + [netaddr.IPNetwork(r) for r in hub.interface_routes],
                   allowed={gid: frozenset(c.firewall.allow_sources) for gid, c in gateways.items()},
                   local={gid: None if c.firewall.local is None else frozenset(c.firewall.local)
                          for gid, c in gateways.items()},
                   hub_forward=_hub_forward(hub),
                   hub_developers=frozenset(_prefix(d)[0] for d in hub.firewall.developers),
                   tunnel_sources={gid: _Prefixes((ip, True) for p in c.peers for ip in p.allowed_ips)
                                   for gid, c in gateways.items()})


def _hub_forward(hub: HostConfig) -> dict:
    """The hub's allow-lists as source -> destinations it forwards new connections to (developer
    to developer is ``hub_developers``: a list per developer would be quadratic)."""
    destinations: dict = {}
    for access in hub.firewall.forward:
        destinations.setdefault(access.source, []).append(access.destination)
    tables: dict = {}     # sources with the same destinations (most developers) share one read-only table
    for found in destinations.values():
        if tuple(found) not in tables:
            tables[tuple(found)] = _Prefixes((d, True) for d in found)
    return {source: tables[tuple(found)] for source, found in destinations.items()}


class Reachability:
    """Predictions for one network as of one date (see the module docstring).

    Names resolve at once; the plan's configs are derived on the first prediction.  ``as_of``
    gives the same network on a later date without deriving it again."""

    def __init__(self, spec: NetworkSpec, today: datetime.date, configs: Optional[StandInConfigs] = None):
        """``configs``: the network's stand-in configs for ``today`` when planned already (the plan's)."""
        self.spec, self.today = spec, today
        self._configs = configs
        self._owners: dict[int, tuple[str, str]] = {int(spec.hub.address): ("hub", spec.hub.minion)}
        self._owners.update({int(gw.address): ("gateway", gid) for gid, gw in spec.gateways.items()})
        self._owners.update({int(dev.address): ("developer", name) for name, dev in spec.developers.items()})
        self._lans = _Prefixes((gw.lan, gid) for gid, gw in spec.gateways.items())
        self._gone: frozenset = frozenset()    # developers the derived configs hold but who expired since

    @functools.cached_property
    def _plan(self) -> _Derived:
        from .diff import stand_in_configs   # and the renderer: a network without intent tests needs neither
        return _Derived.of(stand_in_configs(self.spec, self.today, self._configs))

    @property
    def hub(self) -> HostConfig:
        return self._plan.hub

    @property
    def gateways(self) -> dict:
        return self._plan.gateways

    @property
    def routers(self) -> dict:
        return self._plan.routers

    def as_of(self, day: datetime.date) -> "Reachability":
        """The same network on ``day``.  A later day only takes developers out (their expiry), so
        the configs derived for today serve it with those developers left out; an earlier day is
        derived afresh."""
        if day == self.today:
            return self
        if day < self.today:
            return Reachability(self.spec, day)
        later = copy.copy(self)      # shares the derived configs (computed first) and the name tables
        later._plan, later.today = self._plan, day
        later._gone = self._gone | {name for name, dev in self.spec.developers.items()
                                    if self.spec.is_active(dev, self.today) and not self.spec.is_active(dev, day)}
        return later

    def _hub_peer(self, address):
        peer = self._plan.hub_peers.lookup(address)
        return None if peer is not None and peer.name in self._gone else peer

    def _admits(self, gid: str, source) -> bool:
        owner = self._owners.get(int(source), (None, None))[1]
        return f"{source}/32" in self._plan.allowed[gid] and owner not in self._gone

    def _hub_forwards(self, source, destination) -> bool:
        """Whether the hub's firewall forwards a new connection (its allow-lists, developer to developer)."""
        if {self._owners.get(int(a), (None, None))[1] for a in (source, destination)} & self._gone:
            return False
        developers = self._plan.hub_developers
        if int(source) in developers and int(destination) in developers:
            return True
        rules = [self._plan.hub_forward.get(key) for key in (f"{source}/32", None)]
        return any(found is not None and found.lookup(destination) for found in rules)

    # --- naming --------------------------------------------------------------------------

    def endpoint(self, ref: str, hosts: Optional[dict] = None) -> Endpoint:
        """The endpoint a test names: the hub, a gateway or a developer by name, a named LAN
        host (``hosts``: name -> address), or an address in the VPN or in a gateway's LAN.
        ValueError says why ``ref`` is none of them."""
        spec, hosts = self.spec, hosts or {}
        if ref == spec.hub.minion:
            return Endpoint("hub", ref, spec.hub.address)
        if ref in spec.gateways:
            return Endpoint("gateway", ref, spec.gateways[ref].address, gateway=ref)
        if ref in spec.developers:
            return Endpoint("developer", ref, spec.developers[ref].address)
        if ref in hosts:
            return self._at_address(netaddr.IPAddress(hosts[ref]), ref)
        if netaddr.valid_ipv4(ref, flags=netaddr.INET_PTON):
            return self._at_address(netaddr.IPAddress(ref), ref)
        raise ValueError(f"{ref!r} is neither the hub, a gateway, a developer, a named LAN host nor an address")

    def in_office(self, developer: Endpoint, gid: str) -> Endpoint:
        """``developer`` sitting in gateway ``gid``'s LAN (its laptop on the office network)."""
        if developer.kind != "developer":
            raise ValueError(f"places a developer in an office LAN, and {developer.name} is not a developer")
        if gid not in self.spec.gateways:
            raise ValueError(f"{gid!r} is not a gateway (it names the gateway whose LAN {developer.name} sits in)")
        return Endpoint("developer", developer.name, developer.address, at=gid)

    def _at_address(self, address: netaddr.IPAddress, label: str) -> Endpoint:
        owner = self._owners.get(int(address))
        if owner:
            kind, name = owner
            return Endpoint(kind, name, address, gateway=name if kind == "gateway" else None)
        gid = self._lans.lookup(address)
        if gid is not None:
            kind = "gateway" if address == self.spec.gateways[gid].lan_address else "lan"
            return Endpoint(kind, label, address, gateway=gid)
        if address in self.spec.network:
            return Endpoint("vpn", label, address)
        raise ValueError(f"{address} is outside the VPN network {self.spec.network} and every gateway's LAN: "
                         "wgmesh has no say over it")

    def lan_host(self, gid: str) -> Endpoint:
        """A stand-in host of gateway ``gid``'s LAN: its first address that is not the gateway's."""
        gw = self.spec.gateways[gid]
        address = next(a for a in (gw.lan.network + 1, gw.lan.network + 2) if a != gw.lan_address)
        return Endpoint("lan", f"LAN of {gid}", address, gateway=gid)

    # --- prediction ------------------------------------------------------------------------

    def predict(self, source: Endpoint, destination: Endpoint) -> Prediction:
        """Whether a new connection from ``source`` reaches ``destination`` and its replies come back."""
        walk = _Walk(source, destination, [source.name])
        try:
            via = self._leave(walk)
        except _Blocked as blocked:
            return Prediction(False, None, blocked.reason, tuple(walk.path))
        walk.arrive(destination.name)
        if walk.seen_as:
            walk.notes.append(f"{destination.name} sees {walk.seen_as} ({walk.path[-2]} masquerades)")
        reason = f"reaches via {via}: {' -> '.join(walk.path)}" + "".join(f"; {note}" for note in walk.notes)
        return Prediction(True, via, reason, tuple(walk.path), walk.seen_as, tuple(walk.assumes))

    def _leave(self, walk: _Walk) -> str:
        """The first hop, by the source's kind; returns TUNNEL or ON_LINK."""
        leave = {"developer": self._from_developer, "hub": self._from_hub, "gateway": self._from_gateway,
                 "lan": self._from_lan}.get(walk.source.kind)
        if leave is None:
            raise _Blocked(f"{walk.source.address} belongs to no host or developer: nothing sends from it")
        return leave(walk)

    def _from_developer(self, walk: _Walk) -> str:
        name, dst = walk.source.name, walk.destination.address
        routes, table = self._client(name)
        if walk.source.at is not None and dst in self.spec.gateways[walk.source.at].lan:
            lan = self.spec.gateways[walk.source.at].lan
            covering = table.covering(dst)
            if all(net.prefixlen < lan.prefixlen for net in covering):
                walk.notes.append(f"{name} sits in {lan}; " + (
                    f"its tunnel's {', '.join(map(str, covering))} is shorter, so the LAN's own route wins"
                    if covering else "its tunnel does not route that LAN"))
                return ON_LINK
            walk.notes.append(f"{name}'s tunnel routes {lan} as specifically as the office link does: LAN traffic "
                              "hairpins through the hub (the route conflict)")
        dev = self.spec.developers[name]
        if dev.revoked:
            raise _Blocked(f"developer {name} is revoked: the hub has no peer for it")
        if dev.expires is not None and dev.expires < self.today:
            raise _Blocked(f"developer {name} expired on {dev.expires} (as of {self.today}): the hub has no peer for it")
        if table.lookup(dst) is None:
            raise _Blocked(self._not_routed(name, dst, routes))
        self._through_hub(walk, sender=name)
        return TUNNEL

    def _not_routed(self, name: str, dst, routes) -> str:
        """Why a developer's client keeps ``dst`` out of its tunnel, said the way a reviewer thinks
        of it (the gateway's allow-list and the developer's lan_access) when that is the cause."""
        not_routed = f"{name}'s client does not route {dst} into the tunnel (AllowedIPs {', '.join(routes)})"
        gid = self._lans.lookup(dst)
        if gid is None or gid not in self.gateways or self._admits(gid, self.spec.developers[name].address):
            return not_routed
        access = self.spec.developers[name].lan_access
        text = access if isinstance(access, str) else "[" + ", ".join(access) + "]"
        return f"blocked by gateway {gid}'s allow-list: {name}'s lan_access {text} does not include {gid}, so {not_routed}"

    def _from_hub(self, walk: _Walk) -> str:
        if walk.destination.address != self.spec.hub.address:
            self._hub_to_peer(walk)
        return TUNNEL

    def _from_gateway(self, walk: _Walk) -> str:
        gid, dst = walk.source.gateway, walk.destination.address
        gw = self.spec.gateways[gid]
        if dst in (gw.address, gw.lan_address) or dst in gw.lan:
            walk.notes.append(f"{dst} is {gid}'s own address" if dst in (gw.address, gw.lan_address)
                              else f"{gid} is in {gw.lan}")
            return ON_LINK
        if gw.revoked:
            raise _Blocked(f"gateway {gid} is revoked: the hub has no peer for it")
        config = self.gateways[gid]
        routed = [self.spec.network] + [netaddr.IPNetwork(r) for r in config.interface_routes]
        if not any(dst in net for net in routed):
            raise _Blocked(f"gateway {gid} has no route for {dst} into the tunnel (it routes only "
                           f"{', '.join(map(str, routed))}){self._gateway_access_note(gid, dst)}")
        if self._plan.tunnel_sources[gid].lookup(dst) is None:
            raise _Blocked(f"gateway {gid}'s hub peer does not carry {dst}")
        self._through_hub(walk, sender=gid)
        return TUNNEL

    def _gateway_access_note(self, gid, address) -> str:
        target = self._lans.lookup(address)
        if target is None or target not in reachable_gateways(self.spec, self.spec.gateways[gid].lan_access):
            return ""
        return (f"; its lan_access admits {gid}'s VPN address into {target}'s LAN, but nothing routes "
                f"{gid}'s own traffic there")

    def _from_lan(self, walk: _Walk) -> str:
        gid, dst = walk.source.gateway, walk.destination.address
        gw = self.spec.gateways[gid]
        if dst in gw.lan:
            walk.notes.append(f"both in {gw.lan}")
            return ON_LINK
        if gw.revoked:
            raise _Blocked(f"gateway {gid} is revoked: nothing routes {gw.lan} into the VPN")
        if dst not in self.spec.network:
            raise _Blocked(f"the router of {gw.lan} has no route for {dst}: wgmesh routes only {self.spec.network} "
                           "into a LAN, never one LAN into another")
        self._lan_router_route(walk, gid, "its router")
        walk.arrive(gid)
        if dst == gw.address:
            walk.notes.append(f"through the LAN's router, never the tunnel")
            return ON_LINK
        self._gateway_forward(walk, gid, into_lan=False)
        self._through_hub(walk, sender=gid)
        return TUNNEL

    def _lan_router_route(self, walk: _Walk, gid: str, router: str) -> None:
        """The LAN's router must send the VPN to the gateway: a static route (masquerade mode has none)."""
        gw, vpn = self.spec.gateways[gid], self.spec.network
        if gw.lan_mode == "masquerade":
            raise _Blocked(f"{gw.lan} is in masquerade mode: {router} has no route for {vpn}, so its hosts "
                           "cannot open connections into the VPN")
        managed = self.routers.get(gw.lan_router)
        if managed is not None and (str(vpn), str(gw.lan_address)) in managed.static_routes:
            return
        walk.assumes.append(f"the router of {gw.lan} routes {vpn} via {gw.lan_address}: wgmesh does not "
                            "manage it, its admin must add that route")

    # --- the hub and the far end ----------------------------------------------------------------

    def _through_hub(self, walk: _Walk, sender: str) -> None:
        """The hub accepts the packet only when the sending peer's AllowedIPs hold its source, and
        forwards it only when its firewall allows it."""
        hub, source = self.spec.hub.minion, walk.source.address
        peer = self._hub_peer(source)
        if peer is None or peer.name != sender:
            raise _Blocked(f"hub {hub} drops it: {source} is not in the AllowedIPs of its peer {sender}")
        walk.arrive(hub)
        if walk.destination.address != self.spec.hub.address:
            self._hub_to_peer(walk, forwarded=True)

    def _hub_to_peer(self, walk: _Walk, forwarded: bool = False) -> None:
        hub, dst, src = self.spec.hub.minion, walk.destination.address, walk.source.address
        walk.arrive(hub)
        if not any(dst in net for net in self._plan.hub_routes):
            raise _Blocked(f"hub {hub} has no route for {dst} into the tunnel")
        peer = self._hub_peer(dst)
        if peer is None:
            raise _Blocked(f"hub {hub} has no peer for {dst} ({self._why_no_peer(dst)})")
        if forwarded and not self._hub_forwards(src, dst):
            d2d = " and between developers" if self.spec.developer_to_developer else ""
            raise _Blocked(f"blocked by hub {hub}'s firewall: it forwards new connections only as the gateways' "
                           f"allow-lists admit them{d2d}, and none admits {src} to {dst}")
        if peer.kind == "developer":
            routes, table = self._client(peer.name)
            if table.lookup(src) is None:
                raise _Blocked(f"developer {peer.name}'s client drops it: {src} is not in its AllowedIPs "
                               f"({', '.join(routes)})")
            return
        gid, config = peer.name, self.gateways[peer.name]
        if self._plan.tunnel_sources[gid].lookup(src) is None:
            accepted = [ip for p in config.peers for ip in p.allowed_ips]
            raise _Blocked(f"gateway {gid} drops it: its tunnel accepts sources in {', '.join(accepted)} only")
        walk.arrive(gid)
        gw = self.spec.gateways[gid]
        if dst in (gw.address, gw.lan_address):
            local = self._plan.local[gid]
            owner = self._owners.get(int(src), (None, None))[1]
            if local is not None and (f"{src}/32" not in local or owner in self._gone):
                raise _Blocked(f"blocked by gateway {gid}'s firewall: through the tunnel, only the peers allowed "
                               f"into {gw.lan} may open connections to {gid} itself")
            return
        self._gateway_forward(walk, gid, into_lan=True)
        if config.firewall.masquerade:
            walk.seen_as = str(gw.lan_address)
        else:
            self._lan_router_route(walk, gid, "the router its replies go to")

    def _gateway_forward(self, walk: _Walk, gid: str, into_lan: bool) -> None:
        """The gateway's hardening: a new forwarded connection passes only from an allowed VPN source."""
        source = walk.source.address
        if self._admits(gid, source):
            return
        lan = self.spec.gateways[gid].lan
        if not into_lan:
            raise _Blocked(f"blocked by gateway {gid}'s hardening: it forwards new connections only from the VPN "
                           f"addresses of its allow-list, so hosts of {lan} cannot open connections into the tunnel")
        who = ("the hub is never allowed" if walk.source.kind == "hub"
               else f"{source} may not open connections into {lan}")
        raise _Blocked(f"blocked by gateway {gid}'s allow-list ({who})")

    def _why_no_peer(self, address) -> str:
        kind, name = self._owners.get(int(address), (None, None))
        if kind is None:
            gid = self._lans.lookup(address)
            if gid is not None and self.spec.gateways[gid].revoked:
                return f"gateway {gid} is revoked"
            return "no host or developer has this address"
        if kind == "developer":
            dev = self.spec.developers[name]
            if dev.revoked:
                return f"developer {name} is revoked"
            if dev.expires is not None and dev.expires < self.today:
                return f"developer {name} expired on {dev.expires}"
        if kind == "gateway" and self.spec.gateways[name].revoked:
            return f"gateway {name} is revoked"
        return f"{kind} {name} has no peer entry"

    def client_allowed_ips(self, developer: str) -> tuple[str, ...]:
        """A developer's client AllowedIPs (``plan.client_routes``)."""
        return self._client(developer)[0]

    def _client(self, developer: str) -> tuple:
        found = self._plan.client_routes.get(developer)
        if found is None:
            routes = client_routes(self.spec, developer).allowed_ips
            found = self._plan.client_routes[developer] = (routes, _Prefixes((r, True) for r in routes))
        return found
