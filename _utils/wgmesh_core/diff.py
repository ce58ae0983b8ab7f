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
import functools
import re
from dataclasses import dataclass, field, replace
from typing import Optional

import netaddr

from .model import NetworkSpec
from .plan import HostConfig, active_developers, active_gateways, host_config, lan_sources, managed_hosts
from .render import FILE_GROUPS, client_config, host_file_group, host_files


# The fast path is for the common change: a few developers added, revoked or re-keyed. A bulk
# change (hundreds of developers imported at once) is left to the state run alone, which writes
# the files and applies the firewall in one batch (iptables-restore, a firewalld reload).
LIVE_FIRST_MAX_CHANGES = 50


@dataclass
class HostChange:
    host: str
    role: str
    peers_added: list = field(default_factory=list)
    peers_removed: list = field(default_factory=list)
    peers_changed: list = field(default_factory=list)
    allow_added: list = field(default_factory=list)     # allow-list (gateway: VPN sources; hub: source -> destination)
    allow_removed: list = field(default_factory=list)
    routes_added: list = field(default_factory=list)
    routes_removed: list = field(default_factory=list)
    # gateway MASQUERADE rules: with the iptables backend they live in no file, so no diff shows them
    masquerade_added: list = field(default_factory=list)
    masquerade_removed: list = field(default_factory=list)
    file_diffs: dict = field(default_factory=dict)      # path -> unified diff
    same_setup: bool = False    # hub or gateway in both revisions, same interface and backends
    config_differs: bool = False   # planned without file diffs: the host's configs differ
    peers_first: bool = False   # its new peers may go live before its firewall (``peers_before_firewall``)

    @property
    def live_first(self) -> bool:
        """The gate's fast path: ``wgmesh.update_live`` can put this host's change (peers, its
        interface's addressing, firewall rules) live ahead of the full state run, which still
        follows for the files. Not for a host that is new, loses its role or changes backend:
        only the state run can set those up; nor for a bulk change (``LIVE_FIRST_MAX_CHANGES``)."""
        return self.changed and self.same_setup and self.size <= LIVE_FIRST_MAX_CHANGES

    @property
    def size(self) -> int:
        """How many peers, allow-list entries, routes and MASQUERADE rules change."""
        return sum(len(items) for items in (
            self.peers_added, self.peers_removed, self.peers_changed, self.allow_added, self.allow_removed,
            self.routes_added, self.routes_removed, self.masquerade_added, self.masquerade_removed))

    @property
    def changed(self) -> bool:
        return bool(self.file_diffs or self.config_differs or self.size)

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
    removed: list = field(default_factory=list)         # hosts that lose their role: wgmesh.absent
    manual_actions: list = field(default_factory=list)  # what only a person can do (see manual_actions)

    @property
    def affected(self) -> list:
        """Hosts whose desired state changes, hub first, then gateways, then LAN routers."""
        return [h.host for h in self.hosts if h.changed]

    @property
    def to_apply(self) -> list:
        """Affected hosts that keep a role: ``state.apply wgmesh``; the removed get ``wgmesh.absent``."""
        return [host for host in self.affected if host not in self.removed]

    @property
    def live_first(self) -> list:
        """Affected hosts whose change the gate puts live before their state run (fast path)."""
        return [h.host for h in self.hosts if h.live_first]

    @property
    def peers_first(self) -> list:
        """Of ``live_first``, the hosts whose fast path may set the peers before the firewall."""
        return [h.host for h in self.hosts if h.live_first and h.peers_first]


def stand_in_keys(spec: Optional[NetworkSpec]) -> tuple[dict, dict]:
    if spec is None:
        return {}, {}
    public = {host: f"<public key of {host}>" for host in managed_hosts(spec)}
    # the epoch is part of the stand-in, so rotating every key plans every host and client
    epoch = spec.preshared_key_epoch
    psks = {peer: f"<psk of {peer}, epoch {epoch}>" for peer in [*spec.gateways, *spec.developers]}
    return public, psks


class StandInConfigs(dict):
    """host -> its config planned with the stand-in keys, for one network and date, each host
    planned once when first asked for: the plan and the reachability matrix read the same
    configs (a hub of 10,000 developers costs about 0.15 s to plan). Readers must not change them.
    The hub and the gateways share one pass over the developers for their allow-lists."""

    def __init__(self, spec: NetworkSpec, today: datetime.date):
        super().__init__()
        self.spec, self.today = spec, today
        self._keys = stand_in_keys(spec)

    @functools.cached_property
    def sources_of(self) -> dict:
        return lan_sources(self.spec, self.today)

    def __missing__(self, host: str) -> HostConfig:
        config = self[host] = host_config(self.spec, host, self.today, *self._keys, sources_of=self.sources_of)
        return config

    def serves(self, spec: Optional[NetworkSpec], today: datetime.date) -> bool:
        return spec is self.spec and today == self.today


def stand_in_configs(spec: Optional[NetworkSpec], today: datetime.date,
                     given: Optional[StandInConfigs] = None) -> Optional[StandInConfigs]:
    """``given`` when it holds ``spec``'s configs for ``today``, else new ones (None for no network)."""
    if spec is None:
        return None
    return given if given is not None and given.serves(spec, today) else StandInConfigs(spec, today)


def _config(configs: Optional[StandInConfigs], host) -> Optional[HostConfig]:
    return None if configs is None else configs[host]


def _peer_map(config):
    return {p.name: p for p in config.peers} if config else {}


def _with_files(config) -> Optional[HostConfig]:
    """``config``, or None for a host that has no files (no role; a LAN router without routes)."""
    if config is None or config.role in ("hub", "gateway") or host_files(config):
        return config
    return None


def _files(config, group: str) -> dict:
    return {f.path: f.content for f in host_file_group(config, group)} if config else {}


CONTEXT_LINES = 3     # difflib's default
_HUNK = re.compile(r"^@@ -(\d+)(,\d+)? \+(\d+)(,\d+)? @@$")


def _common_ends(a: list, b: list) -> tuple[int, int]:
    """(lines equal at the start, lines equal at the end after those) of two lists."""
    head = 0
    for x, y in zip(a, b):
        if x != y:
            break
        head += 1
    tail, most = 0, min(len(a), len(b)) - head
    while tail < most and a[-1 - tail] == b[-1 - tail]:
        tail += 1
    return head, tail


def _window_by_lines(old: str, new: str) -> tuple[int, list, list]:
    """(lines left out at the start, the lines of each text between their common first and last
    lines, less the context) from both texts' lines."""
    a, b = old.splitlines(True), new.splitlines(True)
    head, tail = _common_ends(a, b)
    skip, cut = max(0, head - CONTEXT_LINES), max(0, tail - CONTEXT_LINES)
    return skip, a[skip:len(a) - cut], b[skip:len(b) - cut]


# str.splitlines breaks lines there too; the non-ASCII ones can only be in a text that is not ASCII
_ASCII_BREAKS, _OTHER_BREAKS = "\r\x0b\x0c\x1c\x1d\x1e", "\x85\u2028\u2029"
_CHUNK = 1 << 16


def _agreeing(a: str, b: str, limit: int, from_end: bool = False) -> int:
    """How many characters ``a`` and ``b`` agree on from their start (or end), at most ``limit``;
    compared a chunk at a time, so neither text is copied whole (a hub's files of 50,000
    developers take tens of megabytes)."""
    def part(text, done, length):    # ``length`` characters after the ``done`` that agree
        return text[done:done + length] if not from_end else text[len(text) - done - length:len(text) - done]
    done = 0
    while done < limit:
        step = min(_CHUNK, limit - done)
        if part(a, done, step) == part(b, done, step):
            done += step
            continue
        low, high = 0, step     # low characters more agree, high do not
        while high - low > 1:
            middle = (low + high) // 2
            low, high = (middle, high) if part(a, done, middle) == part(b, done, middle) else (low, middle)
        return done + low
    return limit


def _lines_back(text: str, at: int, lines: int) -> int:
    """Where the line ``lines`` lines before the one starting at ``at`` starts."""
    for _ in range(lines):
        at = text.rfind("\n", 0, at - 1) + 1
    return at


def _lines_on(text: str, at: int, lines: int) -> int:
    """Where ``lines`` lines from the one starting at ``at`` end."""
    for _ in range(lines):
        found = text.find("\n", at)
        at = len(text) if found < 0 else found + 1
    return at


def _window_by_text(old: str, new: str) -> tuple[int, list, list]:
    """``_window_by_lines`` of two different texts whose only line break is ``\n``, finding
    their common first and last lines in the texts themselves: only the window is split."""
    shortest = min(len(old), len(new))
    head_end = old.rfind("\n", 0, _agreeing(old, new, shortest)) + 1   # after the last line both start with
    head = old.count("\n", 0, head_end)
    same_end = _agreeing(old, new, shortest - head_end, from_end=True)
    if all(same_end == len(text) - head_end or text[-same_end - 1] == "\n" for text in (old, new)):
        tail_length = same_end      # starts a line in both
    else:
        found = old.find("\n", len(old) - same_end)
        tail_length = 0 if found < 0 else len(old) - found - 1
    tail = old.count("\n", len(old) - tail_length) + (tail_length > 0 and not old.endswith("\n"))
    skip, cut = max(0, head - CONTEXT_LINES), max(0, tail - CONTEXT_LINES)
    start = _lines_back(old, head_end, head - skip)
    a = old[start:_lines_on(old, len(old) - tail_length, tail - cut)].splitlines(True)
    return skip, a, _lines_sharing(new, start, _lines_on(new, len(new) - tail_length, tail - cut), a)


def _lines_sharing(text: str, start: int, end: int, known: list) -> list:
    """``text[start:end].splitlines(True)``, split a chunk at a time, each line equal to one of
    ``known`` being that string: the two windows of a large file are mostly the same lines, held
    once (a hub's direct.xml of 50,000 developers: 200,000 lines, 30 MB)."""
    same, lines = {line: line for line in known}, []
    while start < end:
        stop = text.rfind("\n", start, min(end, start + _CHUNK)) + 1 or text.find("\n", start, end) + 1 or end
        lines += [same.get(line, line) for line in text[start:stop].splitlines(True)]
        start = stop
    return lines


def unified(path, old, new) -> str:
    """difflib's unified diff of two texts. Only the part between their common first and last
    lines (less the context) is matched: a hub's file of 10,000 peers with one more costs what
    its change costs, not a quadratic search; the hunk lines are numbered as in the whole texts."""
    return "" if old == new else _window_diff(path, *_window(old, new))


def _window(old: str, new: str) -> tuple[int, list, list]:
    """(lines left out at the start, each text's lines between their common first and last lines,
    less the context) of two different texts."""
    by_lines = _other_breaks(old) or _other_breaks(new)
    return (_window_by_lines if by_lines else _window_by_text)(old, new)


def _other_breaks(text: str) -> bool:
    """Whether ``text`` breaks lines elsewhere than at ``\n``: one substring search per break
    (a regular expression's search of a hub's direct.xml took 30 times longer)."""
    return (any(mark in text for mark in _ASCII_BREAKS)
            or (not text.isascii() and any(mark in text for mark in _OTHER_BREAKS)))


def _window_diff(path, skip: int, a: list, b: list) -> str:
    lines = difflib.unified_diff(a, b, f"a{path}", f"b{path}", n=CONTEXT_LINES)
    if skip:
        lines = (_HUNK.sub(lambda m: f"@@ -{int(m[1]) + skip}{m[2] or ''} +{int(m[3]) + skip}{m[4] or ''} @@",
                           line.rstrip("\n")) + "\n" if line.startswith("@@ -") else line for line in lines)
    return "".join(lines)


def _allow_list(config) -> set:
    return set(config.firewall.allow_list()) if config and config.firewall else set()


def _routes(config) -> set:
    if config is None:
        return set()
    return set(config.interface_routes) | {f"{dst} via {via}" for dst, via in config.static_routes}


def _masquerade(config) -> set:
    masquerade = config.firewall.masquerade if config and config.firewall else None
    return {"-s {} -d {} -o {}".format(*masquerade)} if masquerade else set()


def _added_removed(old: set, new: set) -> tuple[list, list]:
    return sorted(new - old), sorted(old - new)


def _setup(config) -> Optional[tuple]:
    """What only a state run sets up on a host: its role, interface and backends."""
    if config is None or config.role not in ("hub", "gateway"):
        return None
    return config.role, config.interface, config.backend, config.firewall and config.firewall.backend


def peers_before_firewall(before: Optional[HostConfig], after: Optional[HostConfig]) -> bool:
    """Whether ``after``'s peers may go live before its firewall does: the firewall change takes
    no access away from an address a peer of ``after`` routes. A new peer's forwarded traffic
    meanwhile meets the old firewall's final DROP (its access only comes later); a revoked
    peer's rules may stay a moment, as nothing routes its address any more (WireGuard takes a
    packet from a peer only from that peer's allowed IPs), and its tunnel is cut sooner. When
    a source that stays routed loses access (a narrower ``lan_access``, an address handed to
    another developer), the firewall goes first, as in the state run."""
    if before is None or after is None or before.firewall is None or after.firewall is None:
        return False
    old, new = before.firewall, after.firewall
    sources_apart = dict(forward=(), developers=(), local=())
    if replace(old, **sources_apart) != replace(new, **sources_apart) or (old.local is None) > (new.local is None):
        return False        # another setting, or the host itself closed to the VPN
    taken = set()       # (each compared first: most stay the same, and a hub's hold 10,000 entries)
    if old.forward != new.forward:
        taken |= {access.source for access in set(old.forward) - set(new.forward)}
    if old.developers != new.developers:
        taken |= set(old.developers) - set(new.developers)
    if old.local != new.local:
        taken |= set(old.local or ()) - set(new.local or ())
    return not taken or not _routed_by(taken, after.peers)


def _routed_by(sources: set, peers: list) -> bool:
    """Whether a peer of ``peers`` routes an address among ``sources`` (VPN /32s; None: any)."""
    routed = {ip for peer in peers for ip in peer.allowed_ips}
    if None in sources or sources & routed:
        return True
    wide = [netaddr.IPNetwork(ip) for ip in routed if not ip.endswith("/32")]   # LANs; a gateway's whole VPN
    for source in sources:
        if not source.endswith("/32"):
            return True        # not a single address: not worth the walk over every peer
        if any(netaddr.IPAddress(source[:-3]) in network for network in wide):
            return True
    return False


def host_change(old: Optional[NetworkSpec], new: Optional[NetworkSpec], host: str, today,
                configs: tuple = (None, None), diffs: bool = True) -> HostChange:
    """``configs``: the stand-in configs of ``old`` and ``new`` planned already (``StandInConfigs``).
    Without ``diffs`` (the gate) no file is rendered: a host's files are rendered from its config
    alone, so they differ only where the configs do."""
    before = _config(stand_in_configs(old, today, configs[0]), host)
    after = _config(stand_in_configs(new, today, configs[1]), host)
    change = HostChange(host, (after or before).role)
    change.same_setup = _setup(before) is not None and _setup(before) == _setup(after)
    old_peers, new_peers = _peer_map(before), _peer_map(after)
    change.peers_added = [n for n in new_peers if n not in old_peers]
    change.peers_removed = [n for n in old_peers if n not in new_peers]
    change.peers_changed = [n for n in new_peers if n in old_peers and new_peers[n] != old_peers[n]]
    change.allow_added, change.allow_removed = _added_removed(_allow_list(before), _allow_list(after))
    change.routes_added, change.routes_removed = _added_removed(_routes(before), _routes(after))
    change.masquerade_added, change.masquerade_removed = _added_removed(_masquerade(before), _masquerade(after))
    change.peers_first = peers_before_firewall(before, after)
    if not diffs:
        change.config_differs = _with_files(before) != _with_files(after)
        return change
    if before == after:     # the same files, no diff: rendered once, for what rendering refuses
        for group in FILE_GROUPS:
            _files(after, group)
        return change
    diffs = {}
    for group in FILE_GROUPS:     # one group of files of each revision at a time
        old_files, new_files = _files(before, group), _files(after, group)
        # the smallest first, each pair let go once diffed: the largest (a hub's direct.xml) is diffed alone
        for path in sorted(set(old_files) | set(new_files),
                           key=lambda p: len(old_files.get(p, "")) + len(new_files.get(p, ""))):
            old, new = old_files.pop(path, ""), new_files.pop(path, "")
            window = None if old == new else _window(old, new)
            del old, new    # (``unified``) let go before difflib builds its tables: 50,000 developers, 36 MB each
            diffs[path] = "" if window is None else _window_diff(path, *window)
    change.file_diffs = {path: diffs[path] for path in sorted(diffs) if diffs[path]}
    return change


def _client_lines(spec, name) -> list:
    """A developer's client config without its comments: what the WireGuard app imports."""
    hub_key = stand_in_keys(spec)[0][spec.hub.minion]
    text = client_config(spec, name, hub_public_key=hub_key, psk=f"<psk of {name}, epoch {spec.preshared_key_epoch}>")
    return [line for line in text.splitlines() if line.strip() and not line.startswith("#")]


def _same_but_developers(old: NetworkSpec, new: NetworkSpec) -> bool:
    return all(getattr(old, name) == getattr(new, name) for name in type(new).model_fields if name != "developers")


def clients_changed(old: Optional[NetworkSpec], new: NetworkSpec, today) -> list:
    """Active developers of ``new`` whose client config differs from ``old``'s (new ones too).

    A client config is made from the network's settings, the gateways and the developer's own
    entry only: while the rest of the network is the same, only developers whose entry changed
    are rendered (twice) and compared."""
    old_active = active_developers(old, today) if old else {}
    same_rest = old is not None and _same_but_developers(old, new)
    return [name for name, dev in active_developers(new, today).items()
            if name not in old_active
            or ((not same_rest or old_active[name] != dev) and _client_lines(old, name) != _client_lines(new, name))]


def planned_hosts(old: Optional[NetworkSpec], new: NetworkSpec) -> list:
    """The hosts ``plan_change`` plans, in its order: the managed hosts of ``new``, then those of ``old``."""
    return list(dict.fromkeys(managed_hosts(new) + (managed_hosts(old) if old else [])))


def plan_change(old: Optional[NetworkSpec], new: NetworkSpec, today: Optional[datetime.date] = None,
                configs: tuple = (None, None), diffs: bool = True, planned: Optional[dict] = None) -> NetworkPlan:
    """Per-host changes from ``old`` (None: nothing deployed yet) to ``new``; ``configs``: the
    revisions' ``StandInConfigs`` to plan into (and share with ``reach_diff``), else new ones.
    ``diffs=False``: no file diffs, only which hosts change and how (what the gate needs).
    ``planned``: {host: its ``host_change``} made already with the same arguments (the gate
    plans the hub's first, to hand its peers off before the rest is planned)."""
    today = today or datetime.date.today()
    configs = (stand_in_configs(old, today, configs[0]), stand_in_configs(new, today, configs[1]))
    hosts = planned_hosts(old, new)
    planned = planned or {}
    changes = [planned[host] if host in planned else host_change(old, new, host, today, configs, diffs)
               for host in hosts]
    order = {"hub": 0, "gateway": 1, "lan_router": 2, "none": 3}
    changes.sort(key=lambda c: order[c.role])
    new_active = active_developers(new, today)
    expiring = {name: dev.expires for name, dev in new_active.items() if dev.expires}
    changed = clients_changed(old, new, today)
    return NetworkPlan(
        hosts=changes,
        clients_changed=changed,
        clients_removed=[n for n in (active_developers(old, today) if old else {}) if n not in new_active],
        expiring=expiring,
        removed=[c.host for c in changes if c.role == "none" and old is not None
                 and configs[0][c.host].role != "none"],
        manual_actions=manual_actions(old, new, changed))


def unmanaged_routes(spec: Optional[NetworkSpec]) -> dict:
    """gateway -> (VPN, its LAN address, its LAN): the static route a LAN router no minion runs must carry."""
    if spec is None:
        return {}
    return {gid: (str(spec.network), str(gw.lan_address), str(gw.lan))
            for gid, gw in active_gateways(spec).items() if gw.lan_mode == "route" and not gw.lan_router}


def manual_actions(old: Optional[NetworkSpec], new: NetworkSpec, clients_changed: list) -> list:
    """What a push cannot do and a person must: routes on LAN routers wgmesh does not manage
    (a gateway switched from masquerade to route, a new route-mode LAN, a router no longer
    managed), routes to remove where they are no longer wanted, and client configs their
    owners must re-import (with how to reach them)."""
    actions = []
    before, after = unmanaged_routes(old), unmanaged_routes(new)
    for gid, (network, via, lan) in after.items():
        if before.get(gid) != (network, via, lan):
            actions.append(f"on the router of LAN {lan} (gateway {gid}, not a wgmesh minion): "
                           f"ip route replace {network} via {via}")
    for gid, (network, via, lan) in before.items():
        if gid not in after or after[gid][:2] != (network, via):
            actions.append(f"on the router of LAN {lan} (gateway {gid}): ip route del {network} via {via} "
                           "(no longer needed)")
    for name in clients_changed:
        contact = new.developers[name].contact
        actions.append(f"developer {name}{f' ({contact})' if contact else ''}: re-import the client config "
                       f"(salt-run wgmesh.client_config {name})")
    return actions
