"""What a change to the network does to each host: the plan a reviewer reads,
and the list of affected hosts the GitOps reactor converges (one computation
for both).

Both revisions are planned with the same stand-in keys (public keys and
preshared keys named after their host), so only changes made in the pillar
show: a developer's new public key changes the hub's peer, nothing else.
"""
from __future__ import annotations

import datetime
import difflib
from dataclasses import dataclass, field
from typing import Optional

from .model import NetworkSpec
from .plan import HostConfig, active_developers, host_config, managed_hosts
from .render import client_config, host_files


@dataclass
class HostChange:
    host: str
    role: str
    peers_added: list = field(default_factory=list)
    peers_removed: list = field(default_factory=list)
    peers_changed: list = field(default_factory=list)
    allow_added: list = field(default_factory=list)     # gateway allow-list (VPN sources)
    allow_removed: list = field(default_factory=list)
    routes_added: list = field(default_factory=list)
    routes_removed: list = field(default_factory=list)
    # gateway MASQUERADE rules: with the iptables backend they live in no file, so no diff shows them
    masquerade_added: list = field(default_factory=list)
    masquerade_removed: list = field(default_factory=list)
    file_diffs: dict = field(default_factory=dict)      # path -> unified diff

    @property
    def changed(self) -> bool:
        return bool(self.file_diffs or self.peers_added or self.peers_removed or self.peers_changed
                    or self.allow_added or self.allow_removed or self.routes_added or self.routes_removed
                    or self.masquerade_added or self.masquerade_removed)

    def summary(self) -> str:
        parts = []
        for label, items in (("+peer", self.peers_added), ("-peer", self.peers_removed),
                             ("~peer", self.peers_changed), ("+allow", self.allow_added),
                             ("-allow", self.allow_removed), ("+route", self.routes_added),
                             ("-route", self.routes_removed), ("+masquerade", self.masquerade_added),
                             ("-masquerade", self.masquerade_removed)):
            parts += [f"{label} {item}" for item in items]
        if not self.changed:
            return "unchanged"
        return ", ".join(parts) or "files change"


@dataclass
class NetworkPlan:
    hosts: list            # HostChange for every host of either revision, hub first
    clients_changed: list  # developer names whose client config changed (they must re-import)
    clients_removed: list  # developers revoked, expired or deleted
    expiring: dict         # developer -> expiry date, for active developers with one

    @property
    def affected(self) -> list:
        """Hosts to converge, hub first, then gateways, then LAN routers."""
        return [h.host for h in self.hosts if h.changed]


def stand_in_keys(spec: Optional[NetworkSpec]) -> tuple[dict, dict]:
    if spec is None:
        return {}, {}
    public = {host: f"<public key of {host}>" for host in managed_hosts(spec)}
    # the epoch is part of the stand-in, so rotating every key plans every host and client
    epoch = spec.preshared_key_epoch
    psks = {peer: f"<psk of {peer}, epoch {epoch}>" for peer in [*spec.gateways, *spec.developers]}
    return public, psks


def _config(spec, host, today) -> Optional[HostConfig]:
    if spec is None:
        return None
    public, psks = stand_in_keys(spec)
    return host_config(spec, host, today, public, psks)


def _peer_map(config):
    return {p.name: p for p in config.peers} if config else {}


def _files(config) -> dict:
    return {f.path: f.content for f in host_files(config)} if config else {}


def _unified(path, old, new) -> str:
    return "".join(difflib.unified_diff(old.splitlines(True), new.splitlines(True),
                                        f"a{path}", f"b{path}"))


def _allow_list(config) -> set:
    return set(config.firewall.allow_sources) if config and config.firewall else set()


def _routes(config) -> set:
    if config is None:
        return set()
    return set(config.interface_routes) | {f"{dst} via {via}" for dst, via in config.static_routes}


def _masquerade(config) -> set:
    masquerade = config.firewall.masquerade if config and config.firewall else None
    return {"-s {} -d {} -o {}".format(*masquerade)} if masquerade else set()


def _added_removed(old: set, new: set) -> tuple[list, list]:
    return sorted(new - old), sorted(old - new)


def host_change(old: Optional[NetworkSpec], new: Optional[NetworkSpec], host: str, today) -> HostChange:
    before, after = _config(old, host, today), _config(new, host, today)
    change = HostChange(host, (after or before).role)
    old_peers, new_peers = _peer_map(before), _peer_map(after)
    change.peers_added = [n for n in new_peers if n not in old_peers]
    change.peers_removed = [n for n in old_peers if n not in new_peers]
    change.peers_changed = [n for n in new_peers if n in old_peers and new_peers[n] != old_peers[n]]
    change.allow_added, change.allow_removed = _added_removed(_allow_list(before), _allow_list(after))
    change.routes_added, change.routes_removed = _added_removed(_routes(before), _routes(after))
    change.masquerade_added, change.masquerade_removed = _added_removed(_masquerade(before), _masquerade(after))
    old_files, new_files = _files(before), _files(after)
    for path in sorted(set(old_files) | set(new_files)):
        diff = _unified(path, old_files.get(path, ""), new_files.get(path, ""))
        if diff:
            change.file_diffs[path] = diff
    return change


def _clients(spec, today) -> dict:
    """Each active developer's client config without its comments: what the WireGuard app imports."""
    if spec is None:
        return {}
    public, _ = stand_in_keys(spec)
    hub_key = public[spec.hub.minion]
    configs = {name: client_config(spec, name, hub_public_key=hub_key,
                                   psk=f"<psk of {name}, epoch {spec.preshared_key_epoch}>")
               for name in active_developers(spec, today)}
    return {name: [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
            for name, text in configs.items()}


def plan_change(old: Optional[NetworkSpec], new: NetworkSpec, today: Optional[datetime.date] = None) -> NetworkPlan:
    """Per-host changes from ``old`` (None: nothing deployed yet) to ``new``."""
    today = today or datetime.date.today()
    hosts = list(dict.fromkeys(managed_hosts(new) + (managed_hosts(old) if old else [])))
    changes = [host_change(old, new, host, today) for host in hosts]
    order = {"hub": 0, "gateway": 1, "lan_router": 2, "none": 3}
    changes.sort(key=lambda c: order[c.role])
    old_clients, new_clients = _clients(old, today), _clients(new, today)
    expiring = {name: dev.expires for name, dev in active_developers(new, today).items() if dev.expires}
    return NetworkPlan(
        hosts=changes,
        clients_changed=[n for n in new_clients if old_clients.get(n) != new_clients[n]],
        clients_removed=[n for n in old_clients if n not in new_clients],
        expiring=expiring)
