"""Which public key the hub and each gateway are planned with.

Hosts publish their public keys (the Salt mine, or the ``wgmesh_host_keys``
pillar for hosts outside it).  A published value goes into other hosts'
config files, so it is checked here, where it is used: it must be a WireGuard
key (``keys.key_problem``), and no other peer's key.  With a pin store (the
master's ``wgmesh_secrets`` ext_pillar keeps one), the first key a host
publishes is pinned, and a different one later is refused until an operator
accepts it (``salt-run wgmesh.accept_key HOST``).  A refused host is left out
of its peers' plans with the reason; it never fails anyone's apply.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from .keys import key_problem
from .model import NetworkSpec

MINE_FUNCTION = "wgmesh_public_key"    # the mine function (pillar/wgmesh/mine.sls) hosts publish with


@dataclass
class HostKeys:
    accepted: dict = field(default_factory=dict)   # host -> the key its peers are planned with
    refused: dict = field(default_factory=dict)    # host -> why its published key is not used
    new_pins: dict = field(default_factory=dict)   # host -> key pinned now (first publish)
    seen: set = field(default_factory=set)         # every well-formed key published or pinned

    def as_pillar(self) -> dict:
        return {"accepted": dict(self.accepted), "refused": dict(self.refused)}


def keyed_hosts(spec: NetworkSpec) -> list[str]:
    """The hosts that have a WireGuard key: the hub and every gateway (revoked ones too: their
    keys stay known, so a live peer holding one is recognised as theirs)."""
    return [spec.hub.minion, *spec.gateways]


def accept_problem(spec: NetworkSpec, host: str, key: str, pins: dict) -> Optional[str]:
    """Why ``key`` cannot be pinned for ``host`` (not a key, a developer's, another host's pin)."""
    problem = key_problem(key)
    if problem:
        return f"its published public key is not a WireGuard key: {problem}"
    for name, dev in spec.developers.items():
        if dev.public_key == key:
            return f"it published the public key of developers.{name}"
    for other, pinned in pins.items():
        if other != host and pinned == key:
            return f"it published the public key of {other}"
    return None


def resolve_host_keys(spec: NetworkSpec, published: dict, pins: Optional[dict] = None) -> HostKeys:
    """Check every published host key; with ``pins`` (host -> pinned key), pin first publishes
    and refuse changed keys.  ``pins=None``: no pin store (masterless), keys are only checked."""
    result = HostKeys()
    pinning = pins is not None
    pins = dict(pins or {})
    hosts = keyed_hosts(spec)
    result.seen = {key for key in pins.values() if key_problem(key) is None}
    candidates = {}
    for host in hosts:
        key = published.get(host)
        if key is None:
            if host in pins:                     # the mine forgot it: the pinned key stands
                result.accepted[host] = pins[host]
            continue
        problem = key_problem(key)
        if problem:
            result.refused[host] = f"its published public key is not a WireGuard key: {problem}"
        elif host in pins and key != pins[host]:
            result.seen.add(key)
            result.refused[host] = (f"it published the public key {key}, not its pinned key {pins[host]}: "
                                    f"an operator accepts it with `salt-run wgmesh.accept_key {host}`")
        else:
            result.seen.add(key)
            candidates[host] = key
    for host, key in candidates.items():
        twins = [other for other, twin in candidates.items() if twin == key and other != host]
        problem = None if host in pins else accept_problem(spec, host, key, pins)
        if problem is None and twins and host not in pins:
            problem = f"it published the same public key as {', '.join(twins)}"
        if problem:
            result.refused[host] = problem
            continue
        result.accepted[host] = key
        if pinning and host not in pins:
            result.new_pins[host] = key
    return result


def served_host_keys(spec: NetworkSpec, served) -> HostKeys:
    """The keys the master served (``wgmesh_keys`` pillar), checked again where they are used
    (as pins: the master already settled which of two claims to a key came first)."""
    if not isinstance(served, dict) or not isinstance(served.get("accepted"), dict):
        return HostKeys(refused={host: "the master served no usable wgmesh_keys" for host in keyed_hosts(spec)})
    result = resolve_host_keys(spec, served["accepted"], pins=served["accepted"])
    for host, why in (served.get("refused") or {}).items():
        if host in keyed_hosts(spec) and host not in result.accepted:
            result.refused[host] = str(why)
    return result


def published_host_keys(spec: NetworkSpec, mine_of, pillar_keys=None) -> dict:
    """host -> the value it published: the ``wgmesh_host_keys`` pillar, then the Salt mine
    (``mine_of(minion)``: that minion's mine data, as the master caches it).  Unchecked."""
    published = dict(pillar_keys) if isinstance(pillar_keys, dict) else {}
    for host in keyed_hosts(spec):
        mined = (mine_of(host) or {}).get(MINE_FUNCTION)
        if isinstance(mined, dict) and "__data__" in mined:    # a mine entry stored with an ACL
            mined = mined["__data__"]
        if mined:
            published[host] = mined
    return published


def pin_host_keys(spec: NetworkSpec, published: dict, store: dict) -> tuple[HostKeys, dict]:
    """Resolve against the pin store's content (``pins.updating_pins``), pinning first publishes
    and recording refusals in it; returns the keys and the refusals that are new since the last
    call (host -> why), for the ``wgmesh/key/changed`` event."""
    resolved = resolve_host_keys(spec, published, store["pinned"])
    store["pinned"].update(resolved.new_pins)
    news = {host: why for host, why in resolved.refused.items() if store["refused"].get(host) != why}
    store["refused"] = dict(resolved.refused)
    return resolved, news
