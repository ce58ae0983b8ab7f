"""Address sets (ipset) for the iptables backend's long allow-lists.

A hub of 10,000 developers has about 50,000 allow rules that differ only in one address. With
the iptables backend, each such list longer than ``firewall.GROUP_ABOVE`` becomes one ``hash:net``
set and one rule matching it (``-m set --match-set NAME src``): a packet costs one hash lookup
instead of a walk through a chain, `iptables -S` lists a few rules instead of 50,000, and a
developer more is one ``ipset add`` instead of rule edits. The sets are named after what they
hold (``wgmesh-developers``, ``wgmesh-input``, ``wgmesh-to-<destination>``).

firewalld's direct rules keep one rule per address, in sub-chains: its nftables backend keeps
its own sets in nftables, where a direct (iptables) rule cannot refer to them.

This module knows the sets' text: members as `ipset save` prints them, its listing parsed, the
`ipset restore` input changing live sets in place, and the boot file replacing them whole. It
runs nothing; the Salt adapter runs `ipset`.
"""
from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Iterable, Optional

import netaddr

PREFIX = "wgmesh-"              # every set named so is wgmesh's
TYPE = "hash:net"
#: fixed, so that a set's parameters never change while rules use it (a hash set's memory grows
#: with its members, not with this limit)
MAX_MEMBERS = 1048576
CREATE_OPTIONS = f"family inet maxelem {MAX_MEMBERS}"
RESTORE = ("ipset", "-exist", "restore")     # -exist: a set or member already there is no error
LISTING = ("ipset", "save")
DEVELOPERS_SET, INPUT_SET = "wgmesh-developers", "wgmesh-input"


@dataclass(frozen=True)
class AddressSet:
    name: str
    members: tuple[str, ...]     # as `ipset save` prints them: an address alone for a /32


TO_PREFIX = f"{PREFIX}to-"


def to_destination(destination: str) -> str:
    """The name of the set of sources allowed to ``destination`` (at most 28 of ipset's 31 characters)."""
    return f"{TO_PREFIX}{destination.replace('/', '-')}"


def member(network: str) -> Optional[str]:
    """A source or destination as `ipset save` prints it; None when a ``hash:net`` set cannot hold
    it (a /0, or not a network at all), so that it stays a rule of its own, checked as every rule is."""
    if network.endswith("/32"):       # the plan's own "<address>/32": as it is (10,000 of them)
        return network[:-3]
    try:
        net = netaddr.IPNetwork(network, version=4)
    except (netaddr.AddrFormatError, ValueError, TypeError):
        return None
    if net.prefixlen == 0:
        return None
    return str(net.ip) if net.prefixlen == 32 else str(net.cidr)


def as_network(set_member: str) -> str:
    """A member as rules write it (``-s 10.0.0.5/32``)."""
    return set_member if "/" in set_member else f"{set_member}/32"


def match(name: str, direction: str) -> str:
    """The match of a rule using set ``name`` for its source (``src``) or destination (``dst``),
    as `iptables -S` prints it."""
    return f"-m set --match-set {name} {direction}"


#: options `ipset save` lists after an entry with a value each: what a set created with counters,
#: timeouts, comments or skbinfo lists for every entry, wgmesh's own included (its own sets have
#: none, but a set of its name re-created by hand may)
VALUED_OPTIONS = frozenset({"timeout", "packets", "bytes", "comment", "skbmark", "skbprio", "skbqueue"})
NOMATCH = "nomatch"


def parse_listing(text: str) -> dict[str, tuple[str, list[str]]]:
    """`ipset save` -> {name: (type, [members])} of wgmesh's sets; other programs' are left out.
    A member is what decides a match: its entry, and `` nomatch`` when it is flagged so (it then
    excludes its addresses: never the plain member the plan wants); the values of counters,
    timeouts and comments are left out. An option of no known form stays in the text, as drift."""
    sets: dict = {}
    for line in text.splitlines():
        words = line.split(maxsplit=3)
        if len(words) >= 3 and words[1].startswith(PREFIX):
            if words[0] == "create":
                sets[words[1]] = (words[2], [])
            elif words[0] == "add" and words[1] in sets:
                sets[words[1]][1].append(_member_of(words[2], words[3]) if len(words) > 3 else words[2])
    return sets


def _member_of(entry: str, options: str) -> str:
    try:
        words = shlex.split(options)         # a comment is quoted, and may hold any word
    except ValueError:                       # an unclosed quote: no form ipset writes
        return f"{entry} {options}"
    flags, index = [], 0
    while index < len(words):
        if words[index] in VALUED_OPTIONS:
            index += 2
            continue
        flags.append(words[index])
        index += 1
    return " ".join([entry, *flags])


def admitted(listed: str) -> Optional[str]:
    """The entry a member (``parse_listing``) lets through, or None for a ``nomatch`` one, which
    excludes its addresses from the set."""
    entry, *flags = listed.split()
    return None if NOMATCH in flags else entry


@dataclass
class SetChange:
    """How wgmesh's live sets differ from the plan. The fix runs around the rules' own change
    (one atomic `iptables-restore`), so that while it is under way nothing is more open than
    before or than after: ``before_rules`` removes members and makes (and fills) the new sets, which
    no rule uses yet; ``after_rules`` adds members to the sets the rules used already."""
    missing: list                  # "ipset: set NAME" and "ipset NAME: MEMBER", wanted and not live
    extra: list                    # the same, live and not wanted
    before_rules: Optional[str]    # `ipset -exist restore` input
    after_rules: Optional[str]     # the same
    stale: list                    # wgmesh's sets no longer wanted: destroyed once no rule uses them
    removed: dict                  # {name: [members]} no longer in a set that stays, whose connections are cut


def set_change(wanted: Iterable[AddressSet], live: dict) -> SetChange:
    """How wgmesh's live sets (``parse_listing``) differ from ``wanted``, and the fix. A live set
    of another type cannot be changed in place while rules use it: refused (ValueError)."""
    wanted = {s.name: s for s in wanted}
    change = SetChange([], [], None, None, [name for name in live if name not in wanted], {})
    before, after = [], []
    for name, wanted_set in wanted.items():
        if name not in live:
            change.missing.append(f"ipset: set {name}")
            before.append(f"create {name} {TYPE} {CREATE_OPTIONS}")
            have = set()
        else:
            kind, members = live[name]
            if kind != TYPE:
                raise ValueError(f"wgmesh: ipset {name} exists as {kind}, not {TYPE} (made by hand?): rules may "
                                 f"use it, so wgmesh does not replace it; destroy or rename it")
            have = set(members)
        want = set(wanted_set.members)
        gone, new = sorted(have - want), [m for m in wanted_set.members if m not in have]
        change.extra += [f"ipset {name}: {m}" for m in gone]
        change.missing += [f"ipset {name}: {m}" for m in new]
        before += [f"del {name} {m.split()[0]}" for m in gone]      # an entry is deleted by itself, options aside
        (after if name in live else before).extend(f"add {name} {m}" for m in new)
        cut = [entry for entry in map(admitted, gone) if entry is not None and entry not in want]
        if cut:
            change.removed[name] = cut
    change.extra += [f"ipset: set {name}" for name in change.stale]    # (its rules go too: they are cut)
    change.before_rules = "".join(f"{line}\n" for line in before) or None
    change.after_rules = "".join(f"{line}\n" for line in after) or None
    return change


def boot_restore(sets: Iterable[AddressSet]) -> str:
    """`ipset -exist restore` input making each set hold exactly its members: filled under a
    temporary name, then swapped in, so that a restart of the boot unit never leaves one empty."""
    lines = []
    for s in sets:
        filling = f"{s.name}~"
        lines += [f"create {s.name} {TYPE} {CREATE_OPTIONS}", f"create {filling} {TYPE} {CREATE_OPTIONS}",
                  f"flush {filling}", *(f"add {filling} {m}" for m in s.members),
                  f"swap {filling} {s.name}", f"destroy {filling}"]
    return "".join(f"{line}\n" for line in lines)
