"""A host's firewall: the rules its plan calls for, the live rules compared both ways (missing
and extra), and the commands that make them match.

One rule list serves both backends. Rules are written exactly as ``iptables -S`` prints them,
so live and wanted rules compare as text:

- ``iptables``: wgmesh's chains are replaced in one ``iptables-restore --noflush`` transaction
  and jumped to first from the built-in chains;
- ``firewalld``: the same rules are direct rules (``direct.xml``), and the tunnel sits in zone
  ``wgmesh`` (target ACCEPT) so firewalld hands its traffic to them: with firewalld's nftables
  backend a direct ACCEPT does not bypass firewalld's own input and forward filtering, which
  would otherwise reject what the allow-list admits. Differences are applied at runtime, one
  rule at a time; firewalld is reloaded (which drops other programs' runtime-only rules) only
  when it lacks the zone or the WireGuard port policy, its kernel rules differ from its record,
  or more than ``RELOAD_ABOVE_CHANGES`` direct rules change and its files already hold them.

A chain with more than ``GROUP_ABOVE`` allow rules (a hub of many developers) has them in
sub-chains, one per /24 of the address they match, jumped to from the chain: a packet walks two
short chains instead of one long one, and firewalld, which loads a chain's direct rules in time
quadratic in their number, loads 40 chains of 256 where it would take 10 s for one of 10,000.

Every rule matches the tunnel (``-i``/``-o`` wg0): forwarding that neither enters nor leaves it
(Docker or libvirt bridges) never reaches wgmesh's chains. When rules go away, the connections
they admitted are cut as well: their conntrack entries are deleted, so the next packet is NEW
and meets the DROP. Nothing here runs a command; the Salt adapter runs the listings and the
commands named here.
"""
from __future__ import annotations

import difflib
import re
import shlex
from collections import Counter, namedtuple
from dataclasses import dataclass, field
from functools import lru_cache, partial
from itertools import groupby, repeat
from operator import itemgetter
from typing import Callable, Collection, Optional

import netaddr

from . import addresssets
from .addresssets import AddressSet
from .plan import Firewall

FORWARD, INPUT, DEVELOPERS, NAT = "WGMESH-FORWARD", "WGMESH-INPUT", "WGMESH-DEVELOPERS", "WGMESH-POSTROUTING"
#: (table, chain) of the chains wgmesh owns on every hub and gateway (maybe empty), so a setting
#: switched off leaves no stale rule behind; a large host adds the sub-chains of ``GROUPED``.
CHAINS = (("filter", FORWARD), ("filter", INPUT), ("filter", DEVELOPERS), ("nat", NAT))
OURS = "WGMESH-"        # every chain named so is wgmesh's (its sub-chains included)
#: a chain with more allow rules than this gets them in sub-chains of one /24 each
GROUP_ABOVE = 256
#: chain -> (the flag whose address groups its allow rules, the prefix of its sub-chains' names);
#: iptables allows 28 characters: "WGMESH-FWD-" and a /24's three octets fit
GROUPED = {FORWARD: ("-s", "WGMESH-FWD-"), DEVELOPERS: ("-d", "WGMESH-DEV-")}
_GROUP_PREFIXES = tuple(prefix for _, prefix in GROUPED.values())
BUILT_IN = (("filter", "FORWARD"), ("filter", "INPUT"), ("nat", "POSTROUTING"))
ZONE = "wgmesh"
POLICY = "wgmesh-wireguard"
ZONE_FILE = f"/etc/firewalld/zones/{ZONE}.xml"
POLICY_FILE = f"/etc/firewalld/policies/{POLICY}.xml"
DIRECT_FILE = "/etc/firewalld/direct.xml"

# firewalld places direct rules by priority: the jumps, then replies, allows, the final DROP.
JUMP, REPLIES, ALLOW, LAST = 0, 1, 2, 10
REPLY = "-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"
NEW = "-m conntrack --ctstate NEW -j ACCEPT"


class Rule(namedtuple("Rule", "table chain priority args")):
    """One rule; ``args`` as `iptables -S` prints them after "-A <chain>". A tuple: a hub has about
    five per developer, made together by ``_rules_of`` once their arguments are checked together."""
    __slots__ = ()

    def __new__(cls, table: str, chain: str, priority: int, args: str):
        _check_printable((args,))
        return super().__new__(cls, table, chain, priority, args)

    @property
    def direct(self) -> str:
        """The rule as `firewall-cmd --direct --get-all-rules` prints it."""
        return f"ipv4 {self.table} {self.chain} {self.priority} {self.args}"

    def __str__(self):
        return f"{self.table}: -A {self.chain} {self.args}"


def _check_printable(arguments) -> None:
    """The arguments reach a command line and direct.xml: each one printable line, whatever
    validation let through (all at once: a string is printable when each of its parts is)."""
    if not "".join(arguments).isprintable():
        bad = next(args for args in arguments if not args.isprintable())
        raise ValueError(f"wgmesh: refusing a firewall rule holding a newline or control character: {bad!r}")


_MAKE_RULE = partial(tuple.__new__, Rule)
_CHAIN_OF = itemgetter(0, 1)     # a rule's (table, chain)


def _rules_of(table: str, chain: str, priority: int, arguments: list) -> list[Rule]:
    """``[Rule(table, chain, priority, args) for args in arguments]``, checked at once and made
    without a Python call per rule (a hub of 10,000 developers has about 50,000)."""
    _check_printable(arguments)
    return list(map(_MAKE_RULE, zip(repeat(table), repeat(chain), repeat(priority), arguments)))


@dataclass(frozen=True)
class Command:
    argv: tuple
    stdin: Optional[str] = None
    check: bool = True          # False: a non-zero exit is expected (conntrack with nothing to delete)


@dataclass
class FirewallChange:
    """How the live firewall differs from the plan, and the commands that fix it."""
    missing: list = field(default_factory=list)   # wanted, not live
    extra: list = field(default_factory=list)     # live, not wanted
    other: list = field(default_factory=list)     # other differences (jump order, zone, reload reasons)
    commands: list = field(default_factory=list)  # Command, in order
    cuts: list = field(default_factory=list)      # Cut: connections to cut after the commands
    reload: bool = False                          # commands are a firewalld reload: list again after it

    def __bool__(self):
        return bool(self.missing or self.extra or self.other)

    def as_dict(self) -> dict:
        return {key: value for key, value in (("missing", self.missing), ("extra", self.extra),
                                              ("other", self.other)) if value}


# --- what the plan calls for ---------------------------------------------------------------

def _match(source=None, destination=None, in_if=None, out_if=None) -> str:
    """Match options in `iptables -S` order."""
    words = []
    for flag, value in (("-s", source), ("-d", destination), ("-i", in_if), ("-o", out_if)):
        if value:
            words += [flag, value]
    return " ".join(words)


def _forward_match(source, destination, interfaces: str) -> str:
    """``_match(source, destination, in_if, out_if)`` given ``interfaces``, ``_match`` of the two
    interfaces: the same for all of a hub's rules (about five per developer), matched once."""
    addresses = f"-s {source} -d {destination}" if source and destination else _match(source, destination)
    return f"{addresses} {interfaces}" if addresses and interfaces else addresses or interfaces


def rules(fw: Firewall) -> tuple[Rule, ...]:
    """Every rule of this host, jumps from the built-in chains included, in chain order."""
    return _kept_rules(fw, GROUP_ABOVE)


def rules_once(fw: Firewall) -> tuple[Rule, ...]:
    """``rules(fw)`` made anew and not kept, for a reader that lets them go once it has used them
    (a hub's direct.xml: at 50,000 developers 250,000 rules, about 25 MB while its text is made)."""
    return _made_rules(fw, GROUP_ABOVE)


def chain_rules(fw: Firewall) -> ChainRules:
    """``ChainRules(rules(fw))``: the same object for the same firewall (not to be changed)."""
    return _kept_chain_rules(fw, GROUP_ABOVE)


def address_sets(fw: Firewall) -> tuple[AddressSet, ...]:
    """The ipsets ``rules(fw)`` match (the iptables backend's allow-lists longer than
    ``GROUP_ABOVE``; see ``addresssets``), in the order the rules use them."""
    return _kept_sets(fw, GROUP_ABOVE)


def _made_sets(fw: Firewall, group_above: int) -> tuple[AddressSet, ...]:
    if fw.backend != "iptables":
        return ()
    by_destination: dict = {}
    for a in fw.forward:
        if a.source is not None and a.destination is not None:
            by_destination.setdefault(a.destination, []).append(a.source)
    lists = [(addresssets.DEVELOPERS_SET, fw.developers), (addresssets.INPUT_SET, fw.local or ()),
             *((addresssets.to_destination(destination), sources) for destination, sources in by_destination.items())]
    sets = []
    for name, networks in lists:
        members = tuple(dict.fromkeys(m for m in map(addresssets.member, networks) if m is not None))
        if len(members) > group_above:
            # members reach `ipset restore` one per line, after the set's name: one word each
            _check_printable(members)
            if any(" " in member for member in members):
                raise ValueError(f"wgmesh: refusing an ipset member holding a space: "
                                 f"{next(m for m in members if ' ' in m)!r}")
            sets.append(AddressSet(name, members))
    return tuple(sets)


def _made_rules(fw: Firewall, group_above: int) -> tuple[Rule, ...]:
    tunnel = fw.interface
    sets = {s.name for s in _kept_sets(fw, group_above)}
    in_set = addresssets.member     # an address a set holds (None: it cannot, and keeps its rule)
    out = [Rule("filter", "FORWARD", JUMP, f"-i {tunnel} -j {FORWARD}"),
           Rule("filter", "FORWARD", JUMP, f"-o {tunnel} -j {FORWARD}"),
           Rule("filter", "INPUT", JUMP, f"-i {tunnel} -j {INPUT}"),
           Rule("nat", "POSTROUTING", JUMP, f"-j {NAT}"),
           Rule("filter", FORWARD, REPLIES, REPLY)]
    developers = addresssets.DEVELOPERS_SET in sets
    # (without sets, as with firewalld, every address keeps its rule: no check per address)
    alone = [dev for dev in fw.developers if not in_set(dev)] if developers else fw.developers
    out += _rules_of("filter", FORWARD, ALLOW, [f"{_match(dev, None, tunnel, tunnel)} -j {DEVELOPERS}" for dev in alone])
    if developers:
        out.append(Rule("filter", FORWARD, ALLOW, f"{_match(None, None, tunnel, tunnel)} "
                        f"{addresssets.match(addresssets.DEVELOPERS_SET, 'src')} -j {DEVELOPERS}"))
    interfaces = _match(None, None, tunnel, fw.out_interface)
    allowed, matched = _forward_allows(fw.forward, interfaces, sets)
    out += _rules_of("filter", FORWARD, ALLOW, allowed + matched)
    out.append(Rule("filter", FORWARD, LAST, "-j DROP"))
    out += _rules_of("filter", DEVELOPERS, ALLOW, [f"-d {dev} -j ACCEPT" for dev in alone])
    if developers:
        out.append(Rule("filter", DEVELOPERS, ALLOW, f"{addresssets.match(addresssets.DEVELOPERS_SET, 'dst')} -j ACCEPT"))
    if fw.local is not None:        # None: the host itself is open to the whole VPN
        local = addresssets.INPUT_SET in sets
        sources = [source for source in fw.local if not in_set(source)] if local else fw.local
        out.append(Rule("filter", INPUT, REPLIES, REPLY))
        out += _rules_of("filter", INPUT, ALLOW, [f"-s {source} {NEW}" for source in sources])
        if local:
            out.append(Rule("filter", INPUT, ALLOW, f"{addresssets.match(addresssets.INPUT_SET, 'src')} {NEW}"))
        out.append(Rule("filter", INPUT, LAST, "-j DROP"))
    if fw.masquerade:
        source, destination, out_if = fw.masquerade
        out.append(Rule("nat", NAT, ALLOW, f"{_match(source, destination, None, out_if)} -j MASQUERADE"))
    return tuple(_grouped(out, group_above))


def _forward_allows(forward, interfaces: str, sets: set) -> tuple[list[str], list[str]]:
    """(the forward allow rules of one access each, the rules matching a destination's set of
    sources, one per destination) for ``forward``; ``sets``: the names of the host's sets."""
    if not any(name.startswith(addresssets.TO_PREFIX) for name in sets):
        return [f"{_forward_match(a.source, a.destination, interfaces)} {NEW}" for a in forward], []
    allowed, matched = [], {}       # matched: {set name: its rule}
    names = {d: addresssets.to_destination(d) for d in {a.destination for a in forward} if d is not None}
    for a in forward:
        name = names.get(a.destination) if a.source else None
        if name in sets and addresssets.member(a.source):
            if name not in matched:     # one rule per set (made once, not once per source)
                matched[name] = (f"{_forward_match(None, a.destination, interfaces)} "
                                 f"{addresssets.match(name, 'src')} {NEW}")
        else:
            allowed.append(f"{_forward_match(a.source, a.destination, interfaces)} {NEW}")
    return allowed, list(matched.values())


def _blocks(in_chain: list[Rule], flag: str) -> list[Optional[str]]:
    """Of each allow rule, the /24 (its first three octets) holding the address ``flag`` matches,
    when that is one address or a network of at most a /24; else (and for other rules) None."""
    search, blocks = _WORD_AFTER[flag].search, []
    for rule in in_chain:
        found = search(rule.args) if rule.priority == ALLOW else None
        if found is None:
            blocks.append(None)
            continue
        address, _, length = found[1].partition("/")
        blocks.append(address.rsplit(".", 1)[0] if int(length or 32) >= 24 else None)
    return blocks


#: the word after a grouped chain's flag where the flag is first a word of the arguments
_WORD_AFTER = {flag: re.compile(rf"(?<!\S){re.escape(flag)}\s+(\S+)") for flag, _ in GROUPED.values()}


def _grouped(host_rules: list[Rule], group_above: int) -> list[Rule]:
    """``host_rules`` with the allow rules of each chain of ``GROUPED`` holding more than
    ``group_above`` of them moved to sub-chains, one per /24, and a jump to each in their place
    (before the chain's DROP). The allow rules only accept, so their order does not matter."""
    by_chain: dict = {}
    for key, run in groupby(host_rules, key=_CHAIN_OF):   # (a chain's rules come in a few runs)
        by_chain.setdefault(key, []).extend(run)
    out = []
    for (table, chain), in_chain in by_chain.items():
        flag, prefix = GROUPED.get(chain, (None, None))
        if flag is None:
            out += in_chain
            continue
        blocks = _blocks(in_chain, flag)
        if sum(block is not None for block in blocks) <= group_above:
            out += in_chain
            continue
        groups: dict = {}
        kept = []
        for rule, block in zip(in_chain, blocks):
            (groups.setdefault(block, []) if block else kept).append(rule)
        at = next((i for i, rule in enumerate(kept) if rule.priority > ALLOW), len(kept))
        out += kept[:at] + [Rule(table, chain, ALLOW, f"{flag} {block}.0/24 -j {prefix}{block}") for block in groups]
        out += kept[at:]
        for block, members in groups.items():    # the same rules, checked already: made without a call each
            out += map(_MAKE_RULE, zip(repeat(table), repeat(f"{prefix}{block}"), (rule.priority for rule in members),
                                       (rule.args for rule in members)))
    return out


def is_group_jump(args: str) -> bool:
    """Whether a rule (``iptables -S`` arguments) only jumps to a sub-chain: its rules, not it,
    admit connections."""
    words = args.split()
    return len(words) > 1 and words[-2] == "-j" and words[-1].startswith(_GROUP_PREFIXES)


class ChainRules(dict):
    """{(table, chain): [rule arguments, in order]} of a host's rules (``rules(fw)``), computed
    once for all chains and every file and comparison that needs them (a hub of 10,000
    developers has about 50,000 rules)."""

    def __init__(self, host_rules: list[Rule]):
        super().__init__()
        self.priority = {}      # (table, chain, arguments) -> priority
        for rule in host_rules:
            self.setdefault((rule.table, rule.chain), []).append(rule.args)
            self.priority[rule.table, rule.chain, rule.args] = rule.priority

    def of(self, table: str, chain: str) -> list[str]:
        return self.get((table, chain), [])

    @property
    def ours(self) -> list[tuple[str, str]]:
        """(table, chain) of every chain of wgmesh's this host has: ``CHAINS``, then its sub-chains."""
        return _ours(self)


def _ours(chains) -> list[tuple[str, str]]:
    return [*CHAINS, *(key for key in chains if key not in CHAINS and key[1].startswith(OURS))]


# rules() and chain_rules() keep their last answer: a state run asks both for the host's files
# and again for the comparison with the live rules (a hub of 10,000 developers: about 0.2 s each).
# A firewall is frozen, so an equal one has the same rules (for the same grouping limit, which
# tests change). Both answers are read-only.
_kept_rules = lru_cache(maxsize=1)(_made_rules)
_kept_sets = lru_cache(maxsize=1)(_made_sets)


@lru_cache(maxsize=1)
def _kept_chain_rules(fw: Firewall, group_above: int) -> ChainRules:
    return ChainRules(_kept_rules(fw, group_above))


def chains_of(host_rules: list[Rule]) -> list[tuple[str, str]]:
    """``ChainRules(host_rules).ours``, from the rules' chains alone."""
    return _ours(dict.fromkeys(map(_CHAIN_OF, host_rules)))


def _restore_input(chains: ChainRules, body: Callable[[str, list], list], stale: list = ()) -> str:
    """`iptables-restore` input, one transaction per table: ``body(table, wgmesh's chains in it)``
    gives each table's lines; the ``stale`` (table, chain)s are flushed and deleted after them."""
    lines = []
    for table in ("filter", "nat"):
        gone = [chain for t, chain in stale if t == table]
        lines += [f"*{table}", *body(table, [chain for t, chain in chains.ours if t == table]),
                  *(f"-F {chain}" for chain in gone), *(f"-X {chain}" for chain in gone), "COMMIT"]
    return "\n".join(lines) + "\n"


def iptables_restore(fw: Firewall, chains: Optional[ChainRules] = None, stale: list = ()) -> str:
    """`iptables-restore --noflush` input: declaring wgmesh's chains flushes and refills them
    in one transaction per table (``stale`` chains deleted); other chains are left alone."""
    chains = chain_rules(fw) if chains is None else chains
    return _restore_input(chains, lambda table, ours: [f":{chain} - [0:0]" for chain in ours]
                          + [f"-A {chain} {args}" for chain in ours for args in chains.of(table, chain)], stale)


def boot_restore(fw: Firewall, chains: Optional[ChainRules] = None) -> str:
    """What `wgmesh-firewall.service` loads at boot (the iptables backend): wgmesh's chains as
    `iptables_restore`, then the jumps to them, the filter ones inserted first. The unit deletes
    the jumps before (ExecStartPre), so a restart of it does not add them twice."""
    chains = chain_rules(fw) if chains is None else chains
    lines = iptables_restore(fw, chains).splitlines()
    for table, builtin in BUILT_IN:
        jumps = chains.of(table, builtin)
        at = lines.index("COMMIT", lines.index(f"*{table}"))
        if table == "filter":
            lines[at:at] = [f"-I {builtin} {position} {args}" for position, args in enumerate(jumps, start=1)]
        else:
            lines[at:at] = [f"-A {builtin} {args}" for args in jumps]
    return "\n".join(lines) + "\n"


def jumps(fw: Firewall, chains: Optional[ChainRules] = None) -> list[tuple[str, str, str]]:
    """(table, built-in chain, arguments) of every jump into wgmesh's chains."""
    chains = chain_rules(fw) if chains is None else chains
    return [(table, builtin, args) for table, builtin in BUILT_IN for args in chains.of(table, builtin)]


# --- reading live state ----------------------------------------------------------------------

def parse_listing(text: str) -> dict:
    """`iptables -S` of one table -> {chain: [rule arguments]} (chains without rules included)."""
    chains: dict = {}
    for line in text.splitlines():
        words = line.split(" ", 2)
        if words[0] == "-N" and len(words) > 1:
            chains.setdefault(words[1], [])
        elif words[0] == "-P" and len(words) > 1:
            chains.setdefault(words[1], [])
        elif words[0] == "-A" and len(words) == 3:
            chains.setdefault(words[1], []).append(words[2])
    return chains


def shell_words(line: str) -> list[str]:
    """``shlex.split(line)``: a line without quotes or backslashes (every rule wgmesh writes) split
    on shlex's whitespace directly, as shlex takes 40 us a line (a hub lists 50,000)."""
    if "'" in line or '"' in line or "\\" in line:
        return shlex.split(line)
    return [word for word in line.replace("\t", " ").replace("\r", " ").replace("\n", " ").split(" ") if word]


def parse_direct_rules(text: str) -> list[str]:
    """`firewall-cmd --direct --get-all-rules` -> its lines, in wgmesh's spacing."""
    return [" ".join(shell_words(line)) for line in text.splitlines() if line.strip()]


def parse_info(text: Optional[str]) -> Optional[dict]:
    """`firewall-cmd --info-zone=X` / `--info-policy=X` -> {key: value}; None: unknown to firewalld."""
    if text is None:
        return None
    info = {}
    for line in text.splitlines()[1:]:
        key, sep, value = line.strip().partition(":")
        if sep:
            info[key.strip()] = value.strip()
    return info


# --- conntrack: cutting what removed rules admitted -----------------------------------------

CONNTRACK_BATCH = ("conntrack", "-R", "-")      # one deletion per line of its input
CONNTRACK_LISTING = ("conntrack", "-L")


@dataclass(frozen=True)
class Cut:
    """The connections a removed allow rule admitted: those whose original direction is from
    ``source`` and/or to ``destination`` (networks; None: any)."""
    source: Optional[netaddr.IPNetwork]
    destination: Optional[netaddr.IPNetwork]

    @property
    def deletion(self) -> str:
        """The `conntrack` arguments deleting them."""
        words = ["-D"]
        for flag, net, mask in (("-s", self.source, "--mask-src"), ("-d", self.destination, "--mask-dst")):
            if net is not None:
                words += [flag, str(net.network)] + ([mask, str(net.netmask)] if net.prefixlen < 32 else [])
        return " ".join(words)

    def admits(self, source: int, destination: int) -> bool:
        return all(net is None or net.first <= address <= net.last
                   for net, address in ((self.source, source), (self.destination, destination)))


def cut_connections(removed: list[str], kept: Collection[str] = ()) -> list[Cut]:
    """What each removed allow rule (``iptables -S`` arguments) admitted, to be cut; not for a
    rule ``kept`` (wanted in another chain: moved to or from a sub-chain), nor for a jump to a
    sub-chain (its rules, removed with it, say what to cut).

    Replies are accepted by conntrack state (ESTABLISHED), so without this a revoked peer's
    open connections would outlive its rule. A rule without a source or destination is not
    scoped to anyone: its connections cannot be told apart and are left.
    """
    cuts = []
    for args in removed:
        words = args.split()
        if words[-1] == "DROP" or args in kept or is_group_jump(args):
            continue
        source, destination = (netaddr.IPNetwork(words[words.index(flag) + 1]) if flag in words else None
                               for flag in ("-s", "-d"))
        if source is not None or destination is not None:
            cuts.append(Cut(source, destination))
    return list(dict.fromkeys(cuts))


def _flows(listing: str) -> list[tuple[int, int]]:
    """(source, destination) of each flow's original direction in `conntrack -L`."""
    flows = []
    for line in listing.splitlines():
        words = line.split()
        source = next((w[4:] for w in words if w.startswith("src=")), None)
        destination = next((w[4:] for w in words if w.startswith("dst=")), None)
        if source and destination and netaddr.valid_ipv4(source) and netaddr.valid_ipv4(destination):
            flows.append((int(netaddr.IPAddress(source)), int(netaddr.IPAddress(destination))))
    return flows


def cut_commands(cuts: list[Cut], listing: Optional[str] = None) -> list[Command]:
    """The deletions for ``cuts`` as one ``conntrack -R -``; given the flows (`conntrack -L`),
    only the cuts that find one. Each deletion walks the whole conntrack table (about 15 ms: one
    walk over every network namespace's flows), and revoking 10,000 developers took minutes of them."""
    if listing is not None and cuts:
        flows = _flows(listing)
        by_source, by_destination = {}, {}
        for flow in flows:
            by_source.setdefault(flow[0], []).append(flow)
            by_destination.setdefault(flow[1], []).append(flow)

        def candidates(cut):      # an exact address narrows the search to its flows
            if cut.source is not None and cut.source.size == 1:
                return by_source.get(cut.source.first, [])
            if cut.destination is not None and cut.destination.size == 1:
                return by_destination.get(cut.destination.first, [])
            return flows
        cuts = [cut for cut in cuts if any(cut.admits(*flow) for flow in candidates(cut))]
    if not cuts:
        return []
    # a deletion that finds nothing is not an error in a batch; check=False for older conntracks
    return [Command(CONNTRACK_BATCH, stdin="".join(f"{cut.deletion}\n" for cut in cuts), check=False)]


def _counted_difference(want: list[str], have: list[str]) -> tuple[list[str], list[str]]:
    missing, extra = Counter(want) - Counter(have), Counter(have) - Counter(want)
    return list(missing.elements()), list(extra.elements())


def _in_priority_order(priority: dict, table: str, chain: str, have: list[str]) -> bool:
    """Whether live rules (same as wanted, maybe reordered) keep replies first and the DROP last
    (``priority``: {(table, chain, arguments): priority} of the plan's rules)."""
    ranks = [priority[table, chain, args] for args in have]
    return ranks == sorted(ranks)


# --- backend iptables -----------------------------------------------------------------------

def chain_edits(chain: str, have: list[str], want: list[str]) -> list[str]:
    """`iptables-restore` lines turning the rules ``have`` of ``chain`` into ``want`` in place:
    each rule that goes deleted by its arguments, each that comes inserted at its position. The
    chain's other rules stay as they are (at 10,000 developers a hub's chains hold 20,000 rules,
    and one developer more changes two). The edits run from the end of the chain backwards, so
    every position counts in the chain as it is at that moment; ``have`` must not repeat a rule
    (a deletion by arguments takes the first match)."""
    lines = []
    for tag, i1, i2, j1, j2 in reversed(difflib.SequenceMatcher(None, have, want, autojunk=False).get_opcodes()):
        if tag != "equal":
            lines += [f"-D {chain} {args}" for args in have[i1:i2]]
            lines += [f"-I {chain} {i1 + 1 + k} {args}" for k, args in enumerate(want[j1:j2])]
    return lines


def _repeats(rules) -> bool:
    return len(set(rules)) < len(rules)


def _restore_edits(chains: ChainRules, live: dict, stale: list = ()) -> Optional[str]:
    """`iptables-restore --noflush` input changing only what differs in wgmesh's chains: the
    missing ones declared and filled, the others edited in place, the ``stale`` ones deleted; or
    None when a chain repeats a rule (then they are declared and refilled whole)."""
    if any(_repeats(live[table].get(chain, ())) for table, chain in chains.ours):
        return None

    def body(table, ours):
        new = [chain for chain in ours if chain not in live[table]]
        return ([f":{chain} - [0:0]" for chain in new]
                + [f"-A {chain} {args}" for chain in new for args in chains.of(table, chain)]
                + [line for chain in ours if chain in live[table]
                   for line in chain_edits(chain, live[table][chain], chains.of(table, chain))])
    return _restore_input(chains, body, stale)


def _stale(chains: ChainRules, live: dict) -> list[tuple[str, str]]:
    """(table, chain) of wgmesh's chains that are live but no longer wanted (a /24's sub-chain
    whose developers all left, or every sub-chain when the host shrank below ``GROUP_ABOVE``)."""
    wanted = set(chains.ours)
    return [(table, chain) for table in ("filter", "nat") for chain in _live_ours(live, table)
            if (table, chain) not in wanted]


def _live_ours(live: dict, table: str) -> list[str]:
    """wgmesh's chains in a table's listing: its fixed ones first (in ``CHAINS``' order), then
    every other chain named ``WGMESH-...`` (sub-chains) as listed."""
    fixed = [chain for t, chain in CHAINS if t == table and chain in live[table]]
    return fixed + [chain for chain in live[table] if chain.startswith(OURS) and chain not in fixed]


def _wanted_args(chains: ChainRules) -> set[str]:
    return {args for in_chain in chains.values() for args in in_chain}


def iptables_change(fw: Firewall, filter_listing: str, nat_listing: str, set_listing: str = "") -> FirewallChange:
    """Compare `iptables -S`, `iptables -t nat -S` and `ipset save` with the plan; the fix is the
    sets' members that go removed (and new sets made), one restore editing wgmesh's chains in place
    (or refilling them whole, when one is missing or repeats a rule), the members that come added,
    the jumps put back first, and the sets no rule uses any more destroyed."""
    live = {"filter": parse_listing(filter_listing), "nat": parse_listing(nat_listing)}
    live_sets = addresssets.parse_listing(set_listing)
    chains = chain_rules(fw)
    stale = _stale(chains, live)
    change = FirewallChange()
    for table, chain in stale:
        change.extra += [f"{table}: chain {chain}"] + [f"{table}: -A {chain} {args}" for args in live[table][chain]]
    for table, chain in chains.ours:
        want, have = chains.of(table, chain), live[table].get(chain)
        if have is None:
            change.missing.append(f"{table}: chain {chain}")
            have = []
        missing, extra = _counted_difference(want, have)
        change.missing += [f"{table}: -A {chain} {args}" for args in missing]
        change.extra += [f"{table}: -A {chain} {args}" for args in extra]
        if not missing and not extra and have != want:
            change.other.append(f"{table}: {chain} rules out of order")
    rules_differ = bool(change)
    sets = addresssets.set_change(address_sets(fw), live_sets)
    change.missing += sets.missing
    change.extra += sets.extra
    if sets.before_rules:       # members removed, new sets made: the rules below may use them
        change.commands.append(Command(addresssets.RESTORE, stdin=sets.before_rules))
    if rules_differ:
        restore = _restore_edits(chains, live, stale) or iptables_restore(fw, chains, stale)
        change.commands.append(Command(("iptables-restore", "-w", "--noflush"), stdin=restore))
    if sets.after_rules:        # members added to the sets the rules used already
        change.commands.append(Command(addresssets.RESTORE, stdin=sets.after_rules))
    if change:
        removed_rules = [line.split(" ", 3)[3] for line in change.extra if " -A " in line]
        change.cuts = _set_cuts(fw, chains, removed_rules, live_sets, sets.removed)
    for table, chain in BUILT_IN:
        want, have = chains.of(table, chain), live[table].get(chain, [])
        # filter: first, so no rule inserted above can bypass the allow-list; nat: present.
        in_place = have[:len(want)] == want if table == "filter" else all(w in have for w in want)
        if in_place:
            continue
        change.other.append(f"{table}: {chain} jump{'s' if len(want) > 1 else ''} to wgmesh "
                            + ("first" if table == "filter" else "missing"))
        for args in have:
            if args in want:
                change.commands.append(Command(("iptables", "-w", "-t", table, "-D", chain, *args.split())))
        for position, args in enumerate(want, start=1):
            change.commands.append(Command(("iptables", "-w", "-t", table, "-I", chain, str(position), *args.split())))
    # last: a set is destroyed once no rule of wgmesh's uses it
    change.commands += [Command(("ipset", "destroy", name)) for name in sets.stale]
    return change


_SET_MATCH = re.compile(r"-m set --match-set (\S+) (src|dst) ")


def expanded(args: str, members: dict) -> list[str]:
    """A rule matching a set (``args`` as `iptables -S` prints them) as the rules of one address
    each that it stands for, over ``members`` ({set name: [members]}), in the words those rules
    would have; a rule matching no set, as it is. What a removed set rule or member admitted is
    cut as if those rules were removed, and not where such a rule stays wanted."""
    found = _SET_MATCH.search(args)
    if found is None:
        return [args]
    name, direction = found.groups()
    words = (args[:found.start()] + args[found.end():]).split()
    # in `iptables -S` order the source comes first, then the destination, then the rest
    at = 2 if direction == "dst" and words[:1] == ["-s"] else 0
    flag = "-s" if direction == "src" else "-d"
    return [" ".join([*words[:at], flag, addresssets.as_network(member), *words[at:]]) for member in members.get(name, ())]


def _set_cuts(fw: Firewall, chains: ChainRules, removed_rules: list[str], live_sets: dict,
              removed_members: dict) -> list[Cut]:
    """``cut_connections`` of the removed rules and set members, each set rule standing for its
    members' rules: a removed set rule for the members it had, a set rule kept for its removed
    members; none for what a wanted rule or set still admits."""
    live_members = {name: [m for m in map(addresssets.admitted, members) if m is not None]
                    for name, (_, members) in live_sets.items()}
    removed = [one for args in removed_rules for one in expanded(args, live_members)]
    set_rules = [args for in_chain in chains.values() for args in in_chain if "--match-set" in args]
    removed += [one for args in set_rules for one in expanded(args, removed_members)]
    if not removed:
        return []
    wanted_members = {s.name: s.members for s in address_sets(fw)}
    kept = _wanted_args(chains) | {one for args in set_rules for one in expanded(args, wanted_members)}
    return cut_connections(removed, kept)


def removal(filter_listing: str, nat_listing: str, set_listing: str = "") -> tuple[list[str], list[Command]]:
    """(chains and sets found, commands) taking wgmesh's chains (every chain named ``WGMESH-...``)
    out of iptables, with every rule that jumps to them (a host that lost its role): jumps first,
    then the chains are flushed (so none refers to another) and deleted, then wgmesh's ipsets."""
    live = {"filter": parse_listing(filter_listing), "nat": parse_listing(nat_listing)}
    found, commands = [], []
    for table in ("filter", "nat"):
        ours = _live_ours(live, table)
        found += [f"{table}/{chain}" for chain in ours]
        for chain, rules in live[table].items():
            commands += [Command(("iptables", "-w", "-t", table, "-D", chain, *args.split()))
                         for args in rules if chain not in ours and args.split()[-1] in ours]
        commands += [Command(("iptables", "-w", "-t", table, "-F", chain)) for chain in ours]
        commands += [Command(("iptables", "-w", "-t", table, "-X", chain)) for chain in ours]
    sets, destroys = sets_removal(set_listing)
    return found + sets, commands + destroys


def sets_removal(set_listing: str, check: bool = True) -> tuple[list[str], list[Command]]:
    """(sets found, commands) destroying wgmesh's ipsets in ``set_listing`` (`ipset save`): the
    last step of ``removal``, and what a host switched to firewalld runs after firewalld's change
    (the kernel refuses to destroy a set a rule still uses: ``check=False`` leaves it to the next run)."""
    sets = list(addresssets.parse_listing(set_listing))
    return [f"ipset/{name}" for name in sets], [Command(("ipset", "destroy", name), check=check) for name in sets]


# --- backend firewalld ------------------------------------------------------------------------

@dataclass(frozen=True)
class FirewalldLive:
    """What the adapter read from a running firewalld (see ``FIREWALLD_LISTINGS``)."""
    zone: Optional[str]          # `firewall-cmd --info-zone=wgmesh`; None when firewalld has no such zone
    policy: Optional[str]        # `firewall-cmd --info-policy=wgmesh-wireguard`; None when absent
    chains: str                  # `firewall-cmd --direct --get-all-chains`
    rules: str                   # `firewall-cmd --direct --get-all-rules`
    kernel_filter: str           # `iptables -S`: what the kernel holds, whatever firewalld recorded
    kernel_nat: str              # `iptables -t nat -S`


FIREWALLD_LISTINGS = {
    "zone": ("firewall-cmd", f"--info-zone={ZONE}"),
    "policy": ("firewall-cmd", f"--info-policy={POLICY}"),
    "chains": ("firewall-cmd", "--direct", "--get-all-chains"),
    "rules": ("firewall-cmd", "--direct", "--get-all-rules"),
    "kernel_filter": ("iptables", "-w", "-S"),
    "kernel_nat": ("iptables", "-w", "-t", "nat", "-S"),
}


def _firewall_cmd(*args) -> Command:
    return Command(("firewall-cmd", *args))


def _zone_change(fw: Firewall, zone: Optional[dict], change: FirewallChange) -> None:
    """The tunnel, and only it, in zone wgmesh with target ACCEPT."""
    if zone is None or zone.get("target") != "ACCEPT":
        change.other.append(f"firewalld: zone {ZONE} " + ("missing" if zone is None else f"target {zone.get('target')}"))
        change.reload = True
        return
    interfaces, sources = zone.get("interfaces", "").split(), zone.get("sources", "").split()
    if fw.interface not in interfaces:
        change.missing.append(f"firewalld: {fw.interface} in zone {ZONE}")
        change.commands.append(_firewall_cmd(f"--zone={ZONE}", f"--change-interface={fw.interface}"))
    # Anything else in this zone would bypass firewalld with nothing of wgmesh's to stop it.
    for interface in interfaces:
        if interface != fw.interface:
            change.extra.append(f"firewalld: {interface} in zone {ZONE}")
            change.commands.append(_firewall_cmd(f"--zone={ZONE}", f"--remove-interface={interface}"))
    for source in sources:
        change.extra.append(f"firewalld: source {source} in zone {ZONE}")
        change.commands.append(_firewall_cmd(f"--zone={ZONE}", f"--remove-source={source}"))


def _policy_change(fw: Firewall, policy: Optional[dict], change: FirewallChange) -> None:
    wanted = {"ingress-zones": "ANY", "egress-zones": "HOST", "ports": f"{fw.listen_port}/udp"}
    if policy is None or any(policy.get(key) != value for key, value in wanted.items()):
        change.other.append(f"firewalld: policy {POLICY} " + ("missing" if policy is None else "differs"))
        change.reload = True


# firewalld changes its runtime one direct rule per D-Bus call (and iptables process): a change
# larger than this goes in as a reload, which loads the permanent direct.xml in one batch
RELOAD_ABOVE_CHANGES = 200


def firewalld_change(fw: Firewall, live: FirewalldLive,
                     permanent_current: Callable[[], bool] = lambda: False) -> FirewallChange:
    """Compare firewalld's runtime (zone, policy, direct chains and rules) and the kernel with the plan.

    ``permanent_current()``: whether firewalld's permanent files already hold the plan (the state
    run wrote them), so that a reload puts exactly the plan live; asked only about a change of more
    than ``RELOAD_ABOVE_CHANGES`` direct rules and chains (rendering the files costs at that
    size), which is then made that way."""
    change = FirewallChange()
    _zone_change(fw, parse_info(live.zone), change)
    _policy_change(fw, parse_info(live.policy), change)
    wanted = rules(fw)
    chains = chain_rules(fw)
    wanted_chains = [f"ipv4 {table} {chain}" for table, chain in chains.ours]
    missing_chains, extra_chains = _counted_difference(wanted_chains, parse_direct_rules(live.chains))
    missing, extra = _counted_difference([r.direct for r in wanted], parse_direct_rules(live.rules))
    change.missing += [f"firewalld: chain {c}" for c in missing_chains] + [f"firewalld: {r}" for r in missing]
    change.extra += [f"firewalld: chain {c}" for c in extra_chains] + [f"firewalld: {r}" for r in extra]
    if not (missing or extra or missing_chains or extra_chains):
        kernel = _kernel_difference(chains, parse_listing(live.kernel_filter), parse_listing(live.kernel_nat))
        if kernel:
            # firewalld's record is right but the kernel is not (rules changed behind its back):
            # only a reload makes firewalld write its rules again.
            change.other.append(f"kernel differs from firewalld's direct rules: {'; '.join(kernel)}")
            change.reload = True
    size = len(missing) + len(extra) + len(missing_chains) + len(extra_chains)
    if not change.reload and size > RELOAD_ABOVE_CHANGES and permanent_current():
        change.other.append(f"{size} direct rules and chains to change: reloading firewalld's permanent "
                            f"configuration (one batch) instead of {size} single changes")
        change.reload = True
    change.cuts = cut_connections([" ".join(shell_words(r)[4:]) for r in extra], _wanted_args(chains))
    if change.reload:
        change.commands = [_firewall_cmd("--reload")]
        return change
    change.commands += [_firewall_cmd("--direct", "--add-chain", *c.split()) for c in missing_chains]
    # Remove before adding: while the change is under way, nothing is more open than before or after.
    change.commands += [_firewall_cmd("--direct", "--remove-rule", *shell_words(r)) for r in extra]
    change.commands += [_firewall_cmd("--direct", "--add-rule", *shell_words(r)) for r in missing]
    change.commands += [_firewall_cmd("--direct", "--remove-chain", *c.split()) for c in extra_chains]
    return change


def _kernel_difference(chains: ChainRules, filter_chains: dict, nat_chains: dict) -> list[str]:
    """What the kernel lacks or holds beyond the plan in wgmesh's chains, and missing jumps.

    firewalld puts direct rules of a built-in chain in it (nftables backend) or in
    ``<chain>_direct`` (iptables backend), and orders them by priority.
    """
    live = {"filter": filter_chains, "nat": nat_chains}
    problems = []
    for table, chain in chains.ours:
        want, have = chains.of(table, chain), live[table].get(chain, [])
        missing, extra = _counted_difference(want, have)
        problems += [f"missing {table}: -A {chain} {args}" for args in missing]
        problems += [f"extra {table}: -A {chain} {args}" for args in extra]
        if not missing and not extra and not _in_priority_order(chains.priority, table, chain, have):
            problems.append(f"{table}: {chain} out of order")
    for table, chain in BUILT_IN:
        have = live[table].get(chain, []) + live[table].get(f"{chain}_direct", [])
        problems += [f"missing {table}: -A {chain} {args}" for args in chains.of(table, chain) if args not in have]
    return problems

