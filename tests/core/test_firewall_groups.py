"""A hub of many developers: the allow rules of its long chains in sub-chains, one per /24
(firewall.GROUPED), with the same verdict for every packet and changes made without cutting
anybody who keeps access. The lab runs the same on real iptables and firewalld
(tests/lab/test_firewall.py::test_a_crowd_of_developers_is_grouped_by_24_on_the_real_firewall).
"""
from __future__ import annotations

import base64
import hashlib
import itertools
import shlex
import xml.etree.ElementTree as ElementTree

import netaddr
import pytest
from hypothesis import given, strategies as st

from wgmesh_core import firewall
from wgmesh_core.firewall import ChainRules, firewalld_change, iptables_change, rules
from wgmesh_core.plan import host_config
from wgmesh_core.render import host_files
from wgmesh_core.validate import load_network

from . import article_texts as art
from .conftest import TODAY
from ..firewall_listings import firewalld_live, listing

ACCESS = ("all", "none", ["a"], ["c"])


def crowd(count: int, first: str = "10.70.1.0") -> dict:
    """``count`` developers from ``first`` on, their LAN access taking turns."""
    start = netaddr.IPAddress(first)
    return {f"d{i}": {"address": str(start + i), "lan_access": ACCESS[i % len(ACCESS)],
                      "public_key": base64.b64encode(hashlib.sha256(b"d%d" % i).digest()).decode()}
            for i in range(count)}


def hub(data, developers: dict):
    spec = load_network({**data, "developers": {**data["developers"], **developers}})
    return host_config(spec, "z", TODAY, art.PUBLIC_KEYS, art.PSKS).firewall


def verdict(chains: ChainRules, chain: str, packet: dict, sets: dict = None):
    """What iptables does with a NEW packet (``packet``: -s/-d addresses, -i/-o interfaces) in
    ``chain``: "ACCEPT", "DROP", or None when it returns; every option wgmesh writes is matched
    (``sets``: {name: members} of the ipsets a rule may match)."""
    for args in chains.of("filter", chain):
        words = args.split()
        if "--match-set" in words:
            at = words.index("--match-set")
            name, direction = words[at + 1], words[at + 2]
            if not any(packet["-s" if direction == "src" else "-d"] in netaddr.IPNetwork(m) for m in sets[name]):
                continue
            words = words[:at - 2] + words[at + 3:]
        options = dict(zip(words[::2], words[1::2]))
        assert len(words) % 2 == 0 and set(options) <= {"-s", "-d", "-i", "-o", "-m", "--ctstate", "-j"}, args
        if any(flag in options and packet[flag] not in netaddr.IPNetwork(options[flag]) for flag in ("-s", "-d")):
            continue
        if any(flag in options and packet[flag] != options[flag] for flag in ("-i", "-o")):
            continue
        if "NEW" not in options.get("--ctstate", "NEW"):
            continue
        target = options["-j"]
        outcome = target if target in ("ACCEPT", "DROP", "MASQUERADE") else verdict(chains, target, packet, sets)
        if outcome:
            return outcome
    return None


def ungrouped(fw) -> ChainRules:
    """``fw``'s chains as they would be without sub-chains."""
    limit = firewall.GROUP_ABOVE
    try:
        firewall.GROUP_ABOVE = 10 ** 9
        return ChainRules(rules(fw))
    finally:
        firewall.GROUP_ABOVE = limit


def test_a_chain_over_the_limit_is_grouped_by_24_and_not_one_rule_more(data):
    # WGMESH-DEVELOPERS holds a rule per developer: e, f and the crowd
    at_limit, over = (ChainRules(rules(hub(data, crowd(n)))).ours for n in (firewall.GROUP_ABOVE - 2, firewall.GROUP_ABOVE - 1))
    assert not any(chain.startswith("WGMESH-DEV-") for _, chain in at_limit)
    assert [chain for _, chain in over if chain.startswith("WGMESH-DEV-")] == ["WGMESH-DEV-10.70.0", "WGMESH-DEV-10.70.1"]
    assert ChainRules(rules(hub(data, crowd(20)))).ours == list(firewall.CHAINS)
    z = hub(data, crowd(600))
    chains = ChainRules(rules(z))
    sub_chains = [chain for _, chain in chains.ours[len(firewall.CHAINS):]]
    assert sub_chains == ["WGMESH-FWD-10.70.0", "WGMESH-FWD-10.70.1", "WGMESH-FWD-10.70.2", "WGMESH-FWD-10.70.3",
                          "WGMESH-DEV-10.70.0", "WGMESH-DEV-10.70.1", "WGMESH-DEV-10.70.2", "WGMESH-DEV-10.70.3"]
    assert all(len(chain) <= 28 for chain in sub_chains)                       # iptables' limit
    assert chains.of("filter", firewall.FORWARD) == [
        firewall.REPLY, *(f"-s 10.70.{n}.0/24 -j WGMESH-FWD-10.70.{n}" for n in range(4)), "-j DROP"]
    assert chains.of("filter", firewall.DEVELOPERS) == [f"-d 10.70.{n}.0/24 -j WGMESH-DEV-10.70.{n}" for n in range(4)]
    # every rule of the ungrouped hub is in exactly one sub-chain, that of its address's /24
    for chain, (flag, prefix) in firewall.GROUPED.items():
        allows = [args for args in ungrouped(z).of("filter", chain) if args not in (firewall.REPLY, "-j DROP")]
        grouped = {args: sub for (_, sub), rule_args in chains.items() if sub.startswith(prefix) for args in rule_args}
        assert sorted(grouped) == sorted(allows) and len(grouped) > firewall.GROUP_ABOVE
        for args, sub in grouped.items():
            address = args.split()[args.split().index(flag) + 1]
            assert sub == prefix + address.rsplit(".", 1)[0], args


def test_grouping_changes_no_verdict(data):
    """Every NEW packet between developers, gateways and LANs through the hub gets the verdict of
    the ungrouped chains."""
    z = hub(data, crowd(600))
    grouped, flat = ChainRules(rules(z)), ungrouped(z)
    assert grouped != flat
    hosts = ["10.70.0.2", "10.70.0.3", "10.70.0.4", "10.70.0.5", "10.70.1.0", "10.70.1.1", "10.70.1.2",
             "10.70.1.3", "10.70.2.77", "10.70.3.87", "10.70.3.88", "10.70.9.9", "192.168.201.10", "192.168.200.244"]
    verdicts = {}
    for source, destination in itertools.permutations(hosts, 2):
        packet = {"-s": netaddr.IPAddress(source), "-d": netaddr.IPAddress(destination), "-i": "wg0", "-o": "wg0"}
        verdicts[source, destination] = verdict(grouped, firewall.FORWARD, packet)
        assert verdicts[source, destination] == verdict(flat, firewall.FORWARD, packet), (source, destination)
    # the sample is not trivial: both verdicts occur, within a /24 and across
    assert verdicts["10.70.1.0", "192.168.201.10"] == "ACCEPT" and verdicts["10.70.1.1", "192.168.201.10"] == "DROP"
    assert verdicts["10.70.1.0", "10.70.3.87"] == "ACCEPT" and verdicts["10.70.0.2", "10.70.1.0"] == "DROP"


def test_growing_into_groups_and_back_moves_rules_without_cutting_anyone(data):
    small, large = hub(data, crowd(20)), hub(data, crowd(600))
    grown = iptables_change(large, listing(small, "filter"), listing(small, "nat"))
    restore = grown.commands[0].stdin
    assert ":WGMESH-FWD-10.70.2 - [0:0]" in restore and "-A WGMESH-DEV-10.70.3 -d 10.70.3.87/32 -j ACCEPT" in restore
    assert grown.cuts == []                     # the rules moved: nobody lost access
    shrunk = iptables_change(small, listing(large, "filter"), listing(large, "nat"))
    restore = shrunk.commands[0].stdin.splitlines()
    filter_end = restore.index("COMMIT")
    gone = [f"WGMESH-{kind}-10.70.{n}" for kind in ("FWD", "DEV") for n in range(4)]
    assert restore[filter_end - 2 * len(gone):filter_end] == [f"-F {c}" for c in gone] + [f"-X {c}" for c in gone]
    assert "filter: chain WGMESH-FWD-10.70.3" in shrunk.extra
    # the developers 20..599 did lose access: theirs are the only cuts
    cut_addresses = {str(cut.source or cut.destination) for cut in shrunk.cuts}
    assert cut_addresses == {f"{netaddr.IPAddress('10.70.1.0') + i}/32" for i in range(20, 600)}


def test_one_developer_leaving_a_group_is_cut_alone_and_an_emptied_group_goes(data):
    developers = crowd(600)
    before = hub(data, developers)
    live_filter, live_nat = listing(before, "filter"), listing(before, "nat")
    without_one = hub(data, {name: d for name, d in developers.items() if name != "d77"})    # 10.70.1.77
    change = iptables_change(without_one, live_filter, live_nat)
    assert [line for line in change.commands[0].stdin.splitlines() if line[:2] in ("-D", "-I", "-F", "-X", ":W")] == [
        "-D WGMESH-FWD-10.70.1 -s 10.70.1.77/32 -i wg0 -o wg0 -j WGMESH-DEVELOPERS",
        "-D WGMESH-DEV-10.70.1 -d 10.70.1.77/32 -j ACCEPT"]
    assert {(str(c.source), str(c.destination)) for c in change.cuts} == {("10.70.1.77/32", "None"),
                                                                           ("None", "10.70.1.77/32")}
    # the /24 10.70.3.0 holds d512..d599: without them its sub-chains and jumps go, no /24-wide cut
    emptied = hub(data, {name: d for name, d in developers.items() if int(name[1:]) < 512})
    change = iptables_change(emptied, live_filter, live_nat)
    lines = change.commands[0].stdin.splitlines()
    assert "-D WGMESH-FORWARD -s 10.70.3.0/24 -j WGMESH-FWD-10.70.3" in lines
    assert lines.index("-D WGMESH-FORWARD -s 10.70.3.0/24 -j WGMESH-FWD-10.70.3") < lines.index("-X WGMESH-FWD-10.70.3")
    assert not any(cut.source is not None and cut.source.prefixlen == 24 for cut in change.cuts)
    assert len(change.cuts) > 88 and all((cut.source or cut.destination).prefixlen == 32 for cut in change.cuts)


def test_firewalld_adds_a_sub_chain_before_its_rules_and_removes_it_after_them(data):
    developers = crowd(600)
    before = hub(data, developers)
    newcomer = {"d8": {**developers["d8"], "address": "10.70.4.1"}}     # a /24 of its own; lan_access all
    after = hub(data, {**developers, **newcomer})
    change = firewalld_change(after, firewalld_live(before))
    argv = [" ".join(c.argv[1:]) for c in change.commands]
    add_chain = argv.index("--direct --add-chain ipv4 filter WGMESH-FWD-10.70.4")
    assert add_chain < argv.index("--direct --add-rule ipv4 filter WGMESH-FWD-10.70.4 2 "
                                  "-s 10.70.4.1/32 -d 192.168.201.0/24 -i wg0 -o wg0 -m conntrack --ctstate NEW -j ACCEPT")
    assert "--direct --add-rule ipv4 filter WGMESH-FORWARD 2 -s 10.70.4.0/24 -j WGMESH-FWD-10.70.4" in argv
    assert [(str(c.source), str(c.destination)) for c in change.cuts if str(c.source) == "10.70.1.8/32"]
    back = firewalld_change(before, firewalld_live(after))
    argv = [" ".join(c.argv[1:]) for c in back.commands]
    removals = [i for i, a in enumerate(argv) if a.startswith("--direct --remove-chain")]
    assert [argv[i] for i in removals] == ["--direct --remove-chain ipv4 filter WGMESH-FWD-10.70.4",
                                           "--direct --remove-chain ipv4 filter WGMESH-DEV-10.70.4"]
    assert min(removals) > max(i for i, a in enumerate(argv) if a.startswith("--direct --remove-rule"))


def test_direct_xml_declares_the_sub_chains_and_removal_takes_them(data):
    config = host_config(load_network({**data, "developers": {**data["developers"], **crowd(600)}}), "z", TODAY,
                         art.PUBLIC_KEYS, art.PSKS)
    direct = next(f for f in host_files(config) if f.path == firewall.DIRECT_FILE)
    root = ElementTree.fromstring(direct.content)
    declared = [(c.get("table"), c.get("chain")) for c in root.iter("chain")]
    used = {(r.get("table"), r.get("chain")) for r in root.iter("rule")} - set(firewall.BUILT_IN)
    assert declared[:len(firewall.CHAINS)] == list(firewall.CHAINS) and used <= set(declared)
    assert ("filter", "WGMESH-DEV-10.70.2") in declared
    found, commands = firewall.removal(listing(config.firewall, "filter"), listing(config.firewall, "nat"))
    assert "filter/WGMESH-FWD-10.70.3" in found
    argv = [" ".join(c.argv[3:]) for c in commands]
    assert argv.index("filter -X WGMESH-FWD-10.70.3") > argv.index("filter -F WGMESH-FORWARD")


@pytest.mark.parametrize("args, jump", [
    ("-s 10.70.3.0/24 -j WGMESH-FWD-10.70.3", True), ("-d 10.70.3.0/24 -j WGMESH-DEV-10.70.3", True),
    ("-s 10.70.0.4/32 -i wg0 -o wg0 -j WGMESH-DEVELOPERS", False), ("-d 10.70.0.4/32 -j ACCEPT", False),
    ("-j WGMESH-FWD-", True), ("WGMESH-FWD-1", False)])
def test_a_group_jump_is_told_from_an_allow_rule(args, jump):
    assert firewall.is_group_jump(args) is jump


@pytest.mark.parametrize("args, flag, block", [
    ("-s 10.70.3.9/32 -i wg0 -o wg0 -j WGMESH-DEVELOPERS", "-s", "10.70.3"), ("-d 10.70.3.9/32 -j ACCEPT", "-d", "10.70.3"),
    ("-s 10.70.3.0/24 -d 192.168.1.0/24 -j ACCEPT", "-s", "10.70.3"), ("-s 10.70.3.8/29 -j ACCEPT", "-s", "10.70.3"),
    ("-s 10.70.0.0/23 -j ACCEPT", "-s", None),          # two /24s: no sub-chain holds it
    ("-s 10.70.0.0/16 -d 10.70.0.4/32 -j ACCEPT", "-s", None), ("-d 10.70.0.4/32 -j ACCEPT", "-s", None)])
def test_only_a_rule_within_one_24_is_grouped(args, flag, block):
    assert firewall._blocks([firewall.Rule("filter", firewall.FORWARD, firewall.ALLOW, args)], flag) == [block]


@given(st.text(alphabet=" \t\r\n\x0b\x0c\xa0\x85-/.#aZ09'\"\\", max_size=40))
def test_a_listing_line_is_split_as_shlex_splits_it(line):
    """firewall.shell_words, shlex.split's shortcut for the 50,000 lines of a hub's direct rules, splits
    every line as shlex does (the whitespace it knows and no other, quotes and escapes by shlex)."""
    try:
        expected = shlex.split(line)
    except ValueError:          # an unclosed quote or a trailing escape: refused the same way
        with pytest.raises(ValueError):
            firewall.shell_words(line)
        return
    assert firewall.shell_words(line) == expected
