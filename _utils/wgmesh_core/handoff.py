"""The gate's hand-off of a hub's developer peers: the peers a push adds, re-keys or revokes on
the hub, planned on the master and sent to the hub in its job, so that the hub sets them with one
`wg set` (no pillar compile, no plan, no `wg show` of every peer first) and a new developer's
first packet passes one job after the gate's decision.

The master plans the hub with the keys it serves it (pinned host keys, preshared keys derived
from its secret); the hand-off is only for developer peers, and only where the firewall may
follow the peers (``diff.peers_before_firewall``). It holds preshared keys: the Salt adapter
seals it for the hub's minion key before it leaves the master (job arguments are stored in the
job cache and fired on the event bus), and the hub checks every value here before any reaches
`wg`. The state run follows as always and converges whatever the hand-off did not.
"""
from __future__ import annotations

import datetime
import re
from dataclasses import dataclass, field
from typing import Callable, Optional

from .keys import key_problem
from .live import PeerDiff
from .model import INTERFACE_PATTERN, NAME_PATTERN, NetworkSpec, parse_network
from .plan import HostConfig, Peer, active_developers, developer_peer

#: developer peers handed off at most; a larger change goes through ``wgmesh.update_live``
MAX_PEERS = 1000


@dataclass
class PeerHandoff:
    minion: str                 # the hub this is for
    interface: str
    peers: list = field(default_factory=list)       # Peer: developers to set (new or changed)
    removed: list = field(default_factory=list)     # public keys to remove

    def as_document(self) -> dict:
        """Plain data (what is sealed for the hub)."""
        return {"minion": self.minion, "interface": self.interface, "removed": list(self.removed),
                "peers": [[p.name, p.public_key, list(p.allowed_ips), p.keepalive, p.preshared_key]
                          for p in self.peers]}

    def diff(self) -> tuple[HostConfig, PeerDiff]:
        """The (config, diff) ``Tunnel.set_peers`` applies."""
        config = HostConfig(self.minion, "hub", interface=self.interface, peers=list(self.peers))
        return config, PeerDiff(added=[p.name for p in self.peers], removed=list(self.removed))


def hub_handoff(names: tuple, before: HostConfig, spec: NetworkSpec, today: datetime.date, host_keys: dict,
                psk: Callable[[str], Optional[str]]) -> Optional[PeerHandoff]:
    """The hand-off of the hub's peer changes ``names`` = (added, removed, changed) (the gate's
    ``HostChange`` for the hub, planned ``before`` -> ``spec``), with the peers planned as the
    hub's own plan would (``plan.hub_config``): ``host_keys`` are the keys the master serves it
    (hub and gateways), ``psk(name)`` a developer's preshared key. Only the named developers are
    planned (the hub's whole plan at 10,000 developers takes about 0.2 s). None when a change is
    not a developer's, one the hub's plan leaves out (a key that is a host's, a missing preshared
    key), too large, or none of the hub's peers changes (a ``lan_access`` change: its firewall
    only): the hub then plans it itself (``wgmesh.update_live``)."""
    added, removed, changed = names
    old = {p.name: p for p in before.peers}
    if len(added) + len(removed) + len(changed) > MAX_PEERS \
            or not all(n in old and old[n].kind == "developer" for n in [*removed, *changed]):
        return None
    active, taken = active_developers(spec, today), set(host_keys.values())
    handoff = PeerHandoff(spec.hub.minion, spec.interface)
    for name in [*added, *changed]:
        dev, key = active.get(name), psk(name)
        if dev is None or dev.public_key in taken or (spec.preshared_keys and key is None):
            return None
        handoff.peers.append(developer_peer(spec, name, dev, key))
    kept = taken | {dev.public_key for dev in active.values()}     # a key another peer holds now
    gone = [old[n].public_key for n in [*removed, *changed]]
    handoff.removed = [key for key in dict.fromkeys(gone) if key not in kept]
    return handoff if handoff.peers or handoff.removed else None


def read_handoff(document, minion: str) -> PeerHandoff:
    """The hand-off in ``document`` (``PeerHandoff.as_document``), every value checked before it
    may reach a `wg` command line; ValueError naming the first bad one."""
    if not isinstance(document, dict) or set(document) != {"minion", "interface", "removed", "peers"}:
        raise ValueError("not a wgmesh peer hand-off")
    if document["minion"] != minion:
        raise ValueError(f"a peer hand-off for {document['minion']!r}, not for {minion!r}")
    interface = document["interface"]
    if not isinstance(interface, str) or not re.fullmatch(INTERFACE_PATTERN, interface):
        raise ValueError(f"peer hand-off: bad interface name {interface!r:.40}")
    removed, peers = document["removed"], document["peers"]
    if not isinstance(removed, list) or not isinstance(peers, list) or len(removed) + len(peers) > 2 * MAX_PEERS:
        raise ValueError("peer hand-off: bad or too many peers")
    for key in removed:
        _check(key_problem(key), "removed peer")
    return PeerHandoff(minion, interface, [_peer(entry) for entry in peers], list(removed))


def _peer(entry) -> Peer:
    if not (isinstance(entry, list) and len(entry) == 5):
        raise ValueError("peer hand-off: a peer is not [name, key, allowed IPs, keepalive, preshared key]")
    name, public_key, allowed_ips, keepalive, psk = entry
    if not isinstance(name, str) or not re.fullmatch(NAME_PATTERN, name):
        raise ValueError(f"peer hand-off: bad peer name {name!r:.40}")
    _check(key_problem(public_key), f"peer {name}")
    if psk is not None:
        _check(key_problem(psk, secret=True), f"peer {name}'s preshared key")
    if not isinstance(keepalive, int) or isinstance(keepalive, bool) or not 0 <= keepalive <= 65535:
        raise ValueError(f"peer hand-off: peer {name}: bad keepalive {keepalive!r:.20}")
    if not isinstance(allowed_ips, list) or not allowed_ips or not all(map(_is_ipv4_network, allowed_ips)):
        raise ValueError(f"peer hand-off: peer {name}: bad allowed IPs {allowed_ips!r:.80}")
    return Peer(name, "developer", public_key, tuple(allowed_ips), keepalive=keepalive, preshared_key=psk)


def _is_ipv4_network(value) -> bool:
    """``value`` is an IPv4 network as the pillar's (``model.parse_network``), written as netaddr
    writes it (``10.70.0.9/32``)."""
    try:
        return str(parse_network(value)) == value
    except ValueError:
        return False


def _check(problem: Optional[str], what: str) -> None:
    if problem:
        raise ValueError(f"peer hand-off: {what}: {problem}")
