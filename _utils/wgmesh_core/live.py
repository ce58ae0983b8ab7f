"""Comparing a host's live state with its desired state (pure functions on command output).

The Salt adapters run `wg show <if> dump`; these functions say what differs, so the
same logic serves the live sync, `test=True` and the drift reports (the firewall's
comparison is in ``firewall``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, NamedTuple, Optional

from .model import NetworkSpec
from .plan import HostConfig


class LivePeer(NamedTuple):
    """A peer as `wg show <if> dump` lists it. A tuple: a hub lists one per developer, made in C
    (a frozen dataclass of eight fields took about 30 ms more for 10,000)."""
    public_key: str
    preshared_key: Optional[str]
    endpoint: Optional[str]
    allowed_ips: frozenset
    latest_handshake: int     # unix time, 0 = never
    rx_bytes: int
    tx_bytes: int
    keepalive: int


@dataclass
class LiveInterface:
    private_key: str
    public_key: str
    listen_port: int
    peers: dict = field(default_factory=dict)   # public key -> LivePeer


def parse_wg_dump(text: str) -> LiveInterface:
    """Parse `wg show <interface> dump` (tab separated; first line is the interface); ValueError
    naming the line that is not what wg writes (an empty or cut output)."""
    lines = [line.split("\t") for line in text.strip().splitlines()]
    if not lines:
        raise ValueError("empty wg dump")
    try:
        private_key, public_key, port = lines[0][:3]
        live = LiveInterface(private_key, public_key, int(port))
    except ValueError:
        raise ValueError(f"line 1 is not an interface's (private key, public key, port): "
                         f"{len(lines[0])} fields") from None
    for number, cols in enumerate(lines[1:], 2):
        try:
            key, psk, endpoint, allowed, handshake, rx, tx, keepalive = cols[:8]
            live.peers[key] = LivePeer(
                key, None if psk == "(none)" else psk, None if endpoint == "(none)" else endpoint,
                frozenset() if allowed == "(none)" else frozenset(allowed.split(",")),
                int(handshake), int(rx), int(tx), 0 if keepalive == "off" else int(keepalive))
        except ValueError:
            raise ValueError(f"line {number} is not a peer's 8 fields: {len(cols)} fields, or a count "
                             "that is no number") from None
    return live


@dataclass
class PeerDiff:
    added: list = field(default_factory=list)     # peer names
    removed: list = field(default_factory=list)   # public keys (unknown to the plan: foreign or revoked)
    updated: list = field(default_factory=list)   # peer names
    interface: list = field(default_factory=list)  # "listen_port", "private_key"

    def __bool__(self):
        return bool(self.added or self.removed or self.updated or self.interface)

    def as_dict(self) -> dict:
        return {k: v for k, v in vars(self).items() if v}


def known_keys(spec: NetworkSpec, config: HostConfig, host_keys: Iterable[str] = (),
               installed: Optional[dict] = None) -> frozenset:
    """Public keys whose owner is known, so a live peer holding one is never taken for a pending peer.

    Every developer key in the pillar (revoked and expired ones too), every host key published
    or pinned, and the keys this host installed earlier (``installed``: key -> peer name) for
    peers that are not pending now: a deleted developer, a re-keyed peer.
    """
    keys = {dev.public_key for dev in spec.developers.values()} | set(host_keys)
    keys |= {key for key, name in (installed or {}).items() if name not in config.pending}
    return frozenset(keys)


def _endpoint_differs(planned: str, current: Optional[str], resolve) -> bool:
    """Whether the live endpoint (``ip:port``, or ``[ip]:port`` for IPv6) is not the planned
    ``host:port``. A DNS name is compared through ``resolve(name)`` (its IPv4 and IPv6
    addresses: wg takes the resolver's first answer, of either family); without a resolver, or
    when it resolves to nothing, the live endpoint is kept (wg resolves names only when set)."""
    host, _, port = planned.rpartition(":")
    if current is None:
        return True
    live_host, _, live_port = current.rpartition(":")
    live_host = live_host.removeprefix("[").removesuffix("]")
    if live_port != port:
        return True
    if host.replace(".", "").isdigit():
        return live_host != host
    addresses = resolve(host) if resolve else set()
    return bool(addresses) and live_host not in addresses


def peer_diff(config: HostConfig, live: LiveInterface, private_key_public: Optional[str] = None,
              known: frozenset = frozenset(), resolve=None) -> PeerDiff:
    """What `wg syncconf` would change on the live interface to reach ``config``.

    Revocation is never blocked by a pending peer: a live peer that is not planned is removed,
    unless it is a pending peer's known key (its preshared key has not arrived: kept as it is),
    or its key is not in ``known`` while some pending peer's key is unknown (it may be that
    peer's). A revoked, expired or deleted developer's key is known, so it always goes.
    """
    diff = PeerDiff()
    if live.listen_port != config.listen_port:
        diff.interface.append("listen_port")
    if private_key_public is not None and live.public_key != private_key_public:
        diff.interface.append("private_key")
    desired = {p.public_key: p for p in config.peers}
    held = set(config.pending_keys)
    for key, peer in desired.items():
        current = live.peers.get(key)
        if current is None:
            diff.added.append(peer.name)
            continue
        endpoint_differs = peer.endpoint is not None and _endpoint_differs(peer.endpoint, current.endpoint, resolve)
        if (current.allowed_ips != frozenset(peer.allowed_ips)
                or current.preshared_key != peer.preshared_key
                or current.keepalive != peer.keepalive
                or endpoint_differs):
            diff.updated.append(peer.name)
    diff.removed = [key for key in live.peers if key not in desired and key not in held
                    and not (config.waiting_for_key and key not in known)]
    return diff


def wg_interface_args(config: HostConfig, diff: PeerDiff) -> list[str]:
    """`wg set` arguments giving the interface the planned port and private key, whichever of the
    two ``diff`` names: the key is read from standard input, never from a file. `wg set` leaves
    the peers alone, where `wg syncconf` would drop those the plan keeps live without planning
    them (a pending peer, a key held while waiting for one)."""
    args = ["set", config.interface]
    if "listen_port" in diff.interface:
        args += ["listen-port", str(config.listen_port)]
    if "private_key" in diff.interface:
        args += ["private-key", "/dev/stdin"]
    return args


def wg_remove_args(config: HostConfig, keys: Iterable[str]) -> list[str]:
    """`wg set` arguments removing the peers of ``keys``."""
    args = ["set", config.interface]
    for key in keys:
        args += ["peer", key, "remove"]
    return args


def changed_peers(config: HostConfig, diff: PeerDiff) -> list:
    """The planned peers ``diff`` adds or updates (``render.wg_addconf`` writes them for `wg
    addconf`), and only those.

    `wg addconf` and `wg set` change the named peers only, where `wg syncconf` also re-sends the
    listen port, which makes a userspace implementation (wireguard-go) rebind its socket and drop
    packets of the peers that did not change."""
    by_name = {p.name: p for p in config.peers}
    return [by_name[name] for name in diff.added + diff.updated]
