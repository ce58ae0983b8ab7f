"""What each host should have: the desired state derived from a valid network.

``host_config`` is the single derivation used by rendering, by the live sync
on minions, by ``wgmesh plan`` and by the GitOps reactor's choice of affected
hosts.  Nothing here touches a host.
"""
from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass, field, replace
from operator import itemgetter
from typing import NamedTuple, Optional

import netaddr

from .keys import derive_psk
from .model import Developer, Gateway, NetworkSpec

RFC1918 = [netaddr.IPNetwork(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")]


@dataclass(frozen=True, slots=True)   # a hub holds one per developer
class Peer:
    name: str                 # gateway minion id or developer name
    kind: str                 # "hub" | "gateway" | "developer"
    public_key: Optional[str]  # None: not known yet (gateway whose key is not in the mine)
    allowed_ips: tuple[str, ...]
    endpoint: Optional[str] = None
    keepalive: int = 0
    preshared_key: Optional[str] = None


class Access(NamedTuple):
    """New connections from ``source`` (a VPN /32; None: any) to ``destination`` may pass. A tuple:
    a hub holds about five per developer, made, hashed and compared in C (a frozen dataclass
    takes about 60 ms more for a hub of 10,000 developers)."""
    source: Optional[str]
    destination: str          # a LAN, or a gateway's VPN /32


@dataclass(frozen=True)
class Firewall:
    """What a hub's or gateway's firewall lets through the tunnel (rules: ``firewall.rules``)."""
    backend: str                          # "firewalld" | "iptables"
    interface: str                        # the tunnel
    out_interface: str                    # where allowed traffic leaves: the LAN interface, or the tunnel (hub)
    forward: tuple[Access, ...] = ()      # forwarded NEW connections allowed in; the rest is dropped
    local: Optional[tuple[str, ...]] = None   # sources that may reach this host through the tunnel (None: any)
    developers: tuple[str, ...] = ()      # hub: developer /32s that may reach each other
    masquerade: Optional[tuple[str, str, str]] = None   # (source, destination, out interface)
    listen_port: int = 51820              # the WireGuard port firewalld must let in

    @property
    def allow_sources(self) -> tuple[str, ...]:
        """The sources allowed into a gateway's LAN, in order."""
        return tuple(dict.fromkeys(a.source for a in self.forward))

    def allow_list(self) -> list[str]:
        """The allow-list as a reviewer reads it: a gateway's sources, the hub's source -> destination."""
        if self.out_interface != self.interface:
            return list(self.allow_sources)
        return [f"{a.source or 'any'} -> {a.destination}" for a in self.forward]


@dataclass
class HostConfig:
    host: str
    role: str                          # "hub" | "gateway" | "lan_router" | "none"
    interface: str = ""
    backend: str = ""
    address: str = ""                  # with the VPN prefix length, e.g. 10.70.0.1/16
    listen_port: int = 0
    mtu: int = 0
    peers: list[Peer] = field(default_factory=list)
    interface_routes: list[str] = field(default_factory=list)   # routed into the tunnel (hub: the LANs)
    forwarding: bool = False
    firewall: Optional[Firewall] = None
    static_routes: list[tuple[str, str]] = field(default_factory=list)  # (destination, via) on a LAN router
    pending: list[str] = field(default_factory=list)   # peers left out until their keys are known
    pending_keys: list[str] = field(default_factory=list)  # known keys of pending peers (their PSK is missing)
    left_out: dict = field(default_factory=dict)       # peer -> why it is left out (a misbehaving key)
    strict_rp_filter: bool = False     # reverse-path filtering on the tunnel (hub: a peer cannot spoof a source)

    @property
    def waiting_for_key(self) -> bool:
        """Some pending peer's public key is unknown: a live peer nobody can name may be it."""
        return len(self.pending) > len(self.pending_keys)


def endpoint_with_port(spec: NetworkSpec) -> str:
    endpoint = spec.hub.endpoint
    return endpoint if ":" in endpoint else f"{endpoint}:{spec.listen_port}"


def active_developers(spec: NetworkSpec, today: datetime.date) -> dict[str, Developer]:
    return {name: dev for name, dev in spec.developers.items() if spec.is_active(dev, today)}


def active_gateways(spec: NetworkSpec) -> dict[str, Gateway]:
    return {gid: gw for gid, gw in spec.gateways.items() if not gw.revoked}


def reachable_gateways(spec: NetworkSpec, lan_access, gateways: Optional[dict] = None) -> list[str]:
    """The gateway ids whose LAN a peer with this ``lan_access`` may open connections into
    (``gateways``: ``active_gateways(spec)``, when the caller has it already)."""
    gateways = active_gateways(spec) if gateways is None else gateways
    if lan_access == "all":
        return list(gateways)
    if lan_access == "none":
        return []
    return [gid for gid in lan_access if gid in gateways]


def _vpn_address(spec: NetworkSpec, address) -> str:
    return f"{address}/{spec.network.prefixlen}"


def hub_config(spec: NetworkSpec, today: datetime.date, public_keys: dict, psks: dict, refused: dict,
               sources_of: Optional[dict] = None) -> HostConfig:
    config = replace(
        host_setup(spec, spec.hub.minion), address=_vpn_address(spec, spec.hub.address),
        listen_port=spec.listen_port, mtu=spec.mtu, forwarding=True, strict_rp_filter=True)
    host_of_key = {key: host for host, key in public_keys.items() if host == spec.hub.minion or host in spec.gateways}
    for gid, gw in active_gateways(spec).items():
        # The LAN stays routed into the tunnel even while the gateway's peer is pending.
        config.interface_routes.append(str(gw.lan))
        if gid in refused:
            config.left_out[gid] = refused[gid]
            continue
        if _missing_keys(spec, config, gid, public_keys.get(gid), psks):
            continue
        config.peers.append(Peer(gid, "gateway", public_keys[gid], (f"{gw.address}/32", str(gw.lan)),
                                 keepalive=spec.hub.keepalive, preshared_key=psks.get(gid)))
    for name, dev in active_developers(spec, today).items():
        if dev.public_key in host_of_key:
            config.left_out[name] = f"its public key is the key of host {host_of_key[dev.public_key]}"
            continue
        if _missing_keys(spec, config, name, dev.public_key, psks):
            continue
        config.peers.append(developer_peer(spec, name, dev, psks.get(name)))
    config.interface_routes.sort(key=lambda n: netaddr.IPNetwork(n))
    config.firewall = hub_firewall(spec, today, sources_of)
    return config


def developer_peer(spec: NetworkSpec, name: str, dev: Developer, psk: Optional[str]) -> Peer:
    """Developer ``name``'s peer on the hub (a hub planned in full, or the gate's hand-off)."""
    return Peer(name, "developer", dev.public_key, (f"{dev.address}/32",), keepalive=spec.hub.keepalive,
                preshared_key=psk)


def hub_firewall(spec: NetworkSpec, today: datetime.date, sources_of: Optional[dict] = None) -> Firewall:
    """The hub forwards only what the gateways would admit (and developer <-> developer, when on)."""
    forward = []
    sources_of = lan_sources(spec, today) if sources_of is None else sources_of
    for gid, gw in active_gateways(spec).items():
        sources, lan = sources_of[gid], str(gw.lan)
        forward += [Access(source, lan) for source in sources]
        local = gateway_access_sources(spec, sources)
        itself = f"{gw.address}/32"      # one string for all its rules (50,000 developers: 100,000 rules)
        forward += [Access(source, itself) for source in ([None] if local is None else local)]
    developers = _by_address(active_developers(spec, today).values()) if spec.developer_to_developer else []
    return Firewall(backend=spec.hub.firewall or spec.firewall, interface=spec.interface,
                    out_interface=spec.interface, forward=tuple(forward),
                    developers=tuple(f"{address}/32" for address in developers), listen_port=spec.listen_port)


def _by_address(peers) -> list:
    """The peers' addresses in address order (all IPv4: their integers order them as netaddr does)."""
    return sorted((peer.address for peer in peers), key=int)


def gateway_access_sources(spec: NetworkSpec, lan_sources: list[str]) -> Optional[list[str]]:
    """Who may reach a gateway itself through the tunnel (None: any VPN peer)."""
    return {"lan_access": list(lan_sources), "vpn": None, "none": []}[spec.gateway_access]


def gateway_config(spec: NetworkSpec, gid: str, today: datetime.date, public_keys: dict, psks: dict,
                   refused: dict, sources_of: Optional[dict] = None) -> HostConfig:
    gw = spec.gateways[gid]
    config = replace(
        host_setup(spec, gid), address=_vpn_address(spec, gw.address),
        listen_port=spec.listen_port, mtu=spec.mtu, forwarding=True)
    hub_key = public_keys.get(spec.hub.minion)
    if spec.hub.minion in refused:
        config.left_out[spec.hub.minion] = refused[spec.hub.minion]
    elif not _missing_keys(spec, config, spec.hub.minion, hub_key, psks, psk_name=gid):
        config.peers.append(Peer(spec.hub.minion, "hub", hub_key, (str(spec.network),),
                                 endpoint=endpoint_with_port(spec), keepalive=spec.keepalive,
                                 preshared_key=psks.get(gid)))
    sources = allowed_sources(spec, gid, today) if sources_of is None else sources_of.get(gid, [])
    local = gateway_access_sources(spec, sources)
    lan = str(gw.lan)       # one string for all its rules
    config.firewall = Firewall(
        backend=gw.firewall or spec.firewall, interface=spec.interface, out_interface=gw.lan_interface,
        forward=tuple(Access(source, lan) for source in sources),
        local=None if local is None else tuple(local),
        masquerade=(str(spec.network), str(gw.lan), gw.lan_interface) if gw.lan_mode == "masquerade" else None,
        listen_port=spec.listen_port)
    return config


def _missing_keys(spec, config, peer, public_key, psks, psk_name=None) -> bool:
    """True (and ``peer`` noted as pending) when its public key or required preshared key is unknown.

    A pending peer is left out of the plan but never removed from, or stripped on, the
    live interface: a key that did not arrive (mine, ext_pillar) must not cut a tunnel.
    """
    if public_key is None or (spec.preshared_keys and psks.get(psk_name or peer) is None):
        config.pending.append(peer)
        if public_key is not None:
            config.pending_keys.append(public_key)
        return True
    return False


def allowed_sources(spec: NetworkSpec, gid: str, today: datetime.date) -> list[str]:
    """VPN /32s that may open new connections into gateway ``gid``'s LAN (never the hub)."""
    return lan_sources(spec, today, only=gid).get(gid, [])


def lan_sources(spec: NetworkSpec, today: datetime.date, only: Optional[str] = None) -> dict[str, list[str]]:
    """``allowed_sources`` of every active gateway (or of gateway ``only``), in one pass over the peers."""
    gateways = active_gateways(spec)
    found: dict[str, list] = {gid: [] for gid in gateways if only is None or gid == only}

    def admit(peer, own_lan=None):
        access, source = peer.lan_access, (int(peer.address), f"{peer.address}/32")   # one string for every LAN
        for gid in found if access == "all" else () if access == "none" else dict.fromkeys(access):
            if gid in found and gid != own_lan:
                found[gid].append(source)
    for gid, gateway in gateways.items():
        admit(gateway, own_lan=gid)
    for developer in active_developers(spec, today).values():
        admit(developer)
    # sorted by the addresses' integers: all IPv4, they order them as netaddr does
    return {gid: [text for _, text in sorted(sources, key=itemgetter(0))] for gid, sources in found.items()}


def lan_router_config(spec: NetworkSpec, router: str) -> HostConfig:
    config = host_setup(spec, router)
    for gw in active_gateways(spec).values():
        if gw.lan_router == router and gw.lan_mode == "route":
            config.static_routes.append((str(spec.network), str(gw.lan_address)))
    return config


def host_config(spec: NetworkSpec, host: str, today: datetime.date, public_keys: Optional[dict] = None,
                psks: Optional[dict] = None, refused: Optional[dict] = None,
                sources_of: Optional[dict] = None) -> HostConfig:
    """The desired state of minion ``host``.

    ``public_keys``: minion id -> public key of the hub and gateways (checked and pinned:
    ``hostkeys.resolve_host_keys``); ``psks``: peer name -> preshared key of that peer's pair
    with the hub; ``refused``: host -> why its published key is not used (it is left out);
    ``sources_of``: ``lan_sources(spec, today)``, when the caller plans several hosts of the network.
    """
    public_keys = public_keys or {}
    refused = refused or {}
    psks = (psks or {}) if spec.preshared_keys else {}
    role = host_setup(spec, host).role
    if role == "hub":
        return hub_config(spec, today, public_keys, psks, refused, sources_of)
    if role == "gateway":
        return gateway_config(spec, host, today, public_keys, psks, refused, sources_of)
    if role == "lan_router":
        return lan_router_config(spec, host)
    return HostConfig(host=host, role="none")


def host_setup(spec: NetworkSpec, host: str) -> HostConfig:
    """A host's role, and a hub's or gateway's interface and backend: all its key file and
    services depend on, without planning its peers (a hub's are every developer)."""
    if host == spec.hub.minion:
        return HostConfig(host=host, role="hub", interface=spec.interface, backend=spec.hub.backend or spec.backend)
    gateways = active_gateways(spec)
    if host in gateways:
        return HostConfig(host=host, role="gateway", interface=spec.interface,
                          backend=gateways[host].backend or spec.backend)
    if any(gw.lan_router == host for gw in gateways.values()):
        return HostConfig(host=host, role="lan_router")
    return HostConfig(host=host, role="none")


def static_route_instructions(spec: NetworkSpec) -> list[str]:
    """What the admin of each route-mode LAN's router must run, when wgmesh does not manage it."""
    lines = []
    for gid, gw in active_gateways(spec).items():
        if gw.lan_mode == "route":
            where = f"on {gw.lan_router} (managed by wgmesh)" if gw.lan_router else f"on the default router of {gw.lan}"
            lines.append(f"{gid}: ip route add {spec.network} via {gw.lan_address}   # {where}")
    return lines


# --- developer clients ------------------------------------------------------

@dataclass(frozen=True)
class ClientRoutes:
    allowed_ips: tuple[str, ...]
    note: str


def client_routes(spec: NetworkSpec, developer: str) -> ClientRoutes:
    """AllowedIPs of a developer's client, with the article's route-conflict fix.

    In the office, the laptop has an on-link route for its LAN; a wg route for
    the same /24 makes LAN traffic hairpin through the hub.  A covering prefix
    shorter than every LAN loses to the on-link route by longest-prefix match
    and still carries the LANs when away.  The widest private block that holds
    the reachable LANs (192.168.0.0/16 for the article, so a new LAN needs no
    re-import) is used when it swallows neither the VPN network nor a LAN the
    developer may not reach, else the narrowest such supernet; Windows weighs
    interface metrics over prefix length, so it gets the exact LANs.
    """
    dev = spec.developers[developer]
    gateways = active_gateways(spec)
    lans = [gateways[gid].lan for gid in reachable_gateways(spec, dev.lan_access)]
    exact = tuple([str(spec.network)] + [str(lan) for lan in sorted(lans)])
    if not lans:
        return ClientRoutes((str(spec.network),), "no LAN access: only the VPN network is routed")
    if dev.platform == "windows":
        return ClientRoutes(exact, (
            "Windows: exact LAN prefixes. Windows picks routes by interface metric as well as prefix "
            "length, so the covering-prefix fix for a laptop sitting inside one of these LANs does not "
            "work there; disconnect the tunnel while in the office."))
    forbidden = [spec.network] + [gw.lan for gid, gw in gateways.items() if gw.lan not in lans]
    # the hub's own address: routed into the tunnel, the tunnel's packets would loop into it
    forbidden += [netaddr.IPNetwork(f"{address}/32") for address in [endpoint_address(spec.hub.endpoint)] if address]
    # Cover each private block's LANs separately: a prefix spanning two blocks
    # would route public address space into the tunnel.
    groups: dict = {}
    for lan in lans:
        block = next((b for b in RFC1918 if lan in b), lan)
        groups.setdefault(block, []).append(lan)
    prefixes, exact_lans = [], []
    for block, members in groups.items():
        cover = _covering_prefix(block, members, forbidden)
        if cover is None:
            exact_lans += members
        else:
            prefixes.append(cover)
    allowed = tuple([str(spec.network)] + [str(p) for p in sorted(prefixes + exact_lans)])
    if not prefixes:
        return ClientRoutes(exact, "no covering prefix avoids the VPN network and the LANs this developer "
                                   "may not reach: exact LANs")
    covered = ", ".join(str(lan) for lan in sorted(lans) if any(lan in p for p in prefixes))
    return ClientRoutes(allowed, (
        f"{', '.join(str(p) for p in sorted(prefixes))} covers {covered}: inside one of those LANs its "
        "on-link route is more specific and wins, so LAN traffic stays off the tunnel"))


def endpoint_address(endpoint: str) -> Optional[netaddr.IPAddress]:
    """The IPv4 address of a ``host[:port]`` endpoint, None when its host is a name (or not valid)."""
    try:
        return netaddr.IPAddress(str(ipaddress.IPv4Address(endpoint.rpartition(":")[0] or endpoint)))
    except ValueError:   # ipaddress refuses leading zeros, which inet_aton would read as octal
        return None


def _covering_prefix(block, lans, forbidden):
    """The widest acceptable prefix inside private ``block`` covering ``lans``, or None."""
    def acceptable(candidate):
        return (candidate in block
                and all(candidate.prefixlen < lan.prefixlen for lan in lans)
                and not any(candidate.first <= f.last and f.first <= candidate.last for f in forbidden))
    span = netaddr.spanning_cidr(lans) if len(lans) > 1 else lans[0]
    candidates = [block, span]
    if span.prefixlen > 0:
        candidates.append(span.supernet(span.prefixlen - 1)[0])
    return next((c.cidr for c in candidates if acceptable(c)), None)


# --- what changed between two networks ---------------------------------------

def managed_hosts(spec: NetworkSpec) -> list[str]:
    hosts = [spec.hub.minion] + list(spec.gateways)
    hosts += [gw.lan_router for gw in spec.gateways.values() if gw.lan_router]
    return list(dict.fromkeys(hosts))


def preshared_keys_for(spec: NetworkSpec, host: str, master_secret: bytes, epoch: int = 0) -> dict:
    """The preshared keys minion ``host`` needs: all hub<->peer keys for the hub, its own for a gateway.

    Developers' keys are bound to their public key, so a re-keyed developer gets a new one.
    """
    if host == spec.hub.minion:
        return {peer: peer_psk(spec, peer, master_secret, epoch) for peer in [*spec.gateways, *spec.developers]}
    if host in spec.gateways:
        return {host: peer_psk(spec, host, master_secret, epoch)}
    return {}


def peer_psk(spec: NetworkSpec, peer: str, master_secret: bytes, epoch: int = 0) -> str:
    """The hub<->``peer`` preshared key (peer: a gateway minion id or a developer name)."""
    developer = spec.developers.get(peer)
    return derive_psk(master_secret, peer, developer.public_key if developer else "", epoch)
