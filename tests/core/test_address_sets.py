"""The iptables backend's long allow-lists as ipsets (wgmesh_core.addresssets): one hash:net set
and one rule where a hub of many developers had a rule per address, the same verdict for every
packet, members changed in place, and nobody cut who keeps access. firewalld keeps its rules (in
sub-chains). tests/lab/test_address_sets.py runs the same commands on the kernel's iptables and
ipset."""
from __future__ import annotations

import itertools

import netaddr
import pytest

from wgmesh_core import addresssets, firewall
from wgmesh_core.addresssets import DEVELOPERS_SET, AddressSet
from wgmesh_core.firewall import ChainRules, address_sets, iptables_change, removal, rules
from wgmesh_core.plan import Access, Firewall
from wgmesh_core.render import host_files

from .conftest import TODAY
from .test_firewall_groups import crowd, hub, ungrouped, verdict
from ..firewall_listings import listing, set_listing

LANS = {"a": "192.168.201.0/24", "c": "192.168.200.0/24"}


@pytest.fixture
def iptables_data(data):
    data["firewall"] = "iptables"
    return data


def in_sync(fw, members=None) -> tuple[str, str, str]:
    return listing(fw, "filter"), listing(fw, "nat"), set_listing(fw, members)


def test_an_iptables_hub_over_the_limit_matches_sets_and_firewalld_keeps_its_rules(iptables_data):
    at_limit = hub(iptables_data, crowd(firewall.GROUP_ABOVE - 2))      # e, f and the crowd: 256 developers
    assert address_sets(at_limit) == ()
    # no list is over the limit, but the chain is: its rules of one address each go in sub-chains
    assert "-s 10.70.0.4/32 -i wg0 -o wg0 -j WGMESH-DEVELOPERS" in ChainRules(rules(at_limit)).of("filter", "WGMESH-FWD-10.70.0")
    z = hub(iptables_data, crowd(600))
    chains, sets = ChainRules(rules(z)), {s.name: s.members for s in address_sets(z)}
    assert chains.ours == list(firewall.CHAINS)                     # no sub-chain
    assert chains.of("filter", firewall.FORWARD) == [
        firewall.REPLY,
        "-i wg0 -o wg0 -m set --match-set wgmesh-developers src -j WGMESH-DEVELOPERS",
        *(f"-d {destination} -i wg0 -o wg0 -m set --match-set wgmesh-to-{destination.replace('/', '-')} src "
          f"-m conntrack --ctstate NEW -j ACCEPT"
          for destination in (LANS["a"], "10.70.0.2/32", LANS["c"], "10.70.0.3/32")),
        "-j DROP"]
    assert chains.of("filter", firewall.DEVELOPERS) == ["-m set --match-set wgmesh-developers dst -j ACCEPT"]
    # the developers' addresses as `ipset save` prints them; a developer with access to a's LAN is in its set
    assert len(sets[DEVELOPERS_SET]) == 602 and "10.70.1.77" in sets[DEVELOPERS_SET]
    assert all(len(name) <= 31 for name in sets)                    # ipset's limit
    accesses = {(a.source, a.destination) for a in z.forward}
    for name, destination in (("wgmesh-to-192.168.201.0-24", LANS["a"]), ("wgmesh-to-10.70.0.3-32", "10.70.0.3/32")):
        assert sets[name] and {(f"{m}/32", destination) for m in sets[name]} <= accesses
        assert {(s, d) for s, d in accesses if d == destination} == {(f"{m}/32", destination) for m in sets[name]}
    # firewalld's direct rules cannot match an ipset of its nftables backend: it keeps sub-chains
    firewalld_hub = hub({**iptables_data, "firewall": "firewalld"}, crowd(600))
    assert address_sets(firewalld_hub) == () and len(ChainRules(rules(firewalld_hub)).ours) > len(firewall.CHAINS)


def test_sets_change_no_verdict(iptables_data):
    """Every NEW packet between developers, gateways and LANs through the hub gets the verdict of
    one rule per address."""
    z = hub(iptables_data, crowd(600))
    packed, flat = ChainRules(rules(z)), ungrouped(z)
    sets = {s.name: s.members for s in address_sets(z)}
    assert sets and all("--match-set" not in args for in_chain in flat.values() for args in in_chain)
    hosts = ["10.70.0.2", "10.70.0.3", "10.70.0.4", "10.70.0.5", "10.70.1.0", "10.70.1.1", "10.70.1.2",
             "10.70.1.3", "10.70.2.77", "10.70.3.87", "10.70.3.88", "10.70.9.9", "192.168.201.10", "192.168.200.244"]
    verdicts = {}
    for source, destination in itertools.permutations(hosts, 2):
        packet = {"-s": netaddr.IPAddress(source), "-d": netaddr.IPAddress(destination), "-i": "wg0", "-o": "wg0"}
        verdicts[source, destination] = verdict(packed, firewall.FORWARD, packet, sets)
        assert verdicts[source, destination] == verdict(flat, firewall.FORWARD, packet), (source, destination)
    assert verdicts["10.70.1.0", "192.168.201.10"] == "ACCEPT" and verdicts["10.70.1.1", "192.168.201.10"] == "DROP"
    assert verdicts["10.70.1.0", "10.70.3.87"] == "ACCEPT" and verdicts["10.70.9.9", "10.70.1.0"] == "DROP"


def test_each_set_rule_stands_for_the_rules_of_one_address_it_replaced(iptables_data):
    z = hub(iptables_data, crowd(600))
    flat = {args for in_chain in ungrouped(z).values() for args in in_chain}
    members = {s.name: s.members for s in address_sets(z)}
    set_rules = [args for in_chain in ChainRules(rules(z)).values() for args in in_chain if "--match-set" in args]
    expanded = [one for args in set_rules for one in firewall.expanded(args, members)]
    assert len(expanded) == sum(len(m) for m in members.values()) + len(members[DEVELOPERS_SET])   # src and dst
    assert set(expanded) <= flat
    assert firewall.expanded("-s 10.0.0.1/32 -j ACCEPT", members) == ["-s 10.0.0.1/32 -j ACCEPT"]
    # a member goes where `iptables -S` puts its flag: a destination after a source, before the interfaces
    assert firewall.expanded("-s 10.0.0.0/8 -i wg0 -o eth1 -m set --match-set x dst -j ACCEPT", {"x": ["10.1.0.0/16"]}) \
        == ["-s 10.0.0.0/8 -d 10.1.0.0/16 -i wg0 -o eth1 -j ACCEPT"]
    # every rule matching a set is an allow rule, where the rules of one address it replaced were
    assert all(r.priority == firewall.ALLOW for r in rules(z) if "--match-set" in r.args)


def test_growing_into_sets_and_back_cuts_only_who_lost_access(iptables_data):
    small, large = hub(iptables_data, crowd(20)), hub(iptables_data, crowd(600))
    grown = iptables_change(large, *in_sync(small))
    kinds = [c.argv[:3] for c in grown.commands]
    # the sets first (the rules use them), then the rules
    assert kinds[:2] == [addresssets.RESTORE, ("iptables-restore", "-w", "--noflush")]
    made = grown.commands[0].stdin.splitlines()
    assert "create wgmesh-developers hash:net family inet maxelem 1048576" in made
    assert made.index("create wgmesh-developers hash:net family inet maxelem 1048576") < made.index(
        "add wgmesh-developers 10.70.3.87")
    assert "ipset: set wgmesh-developers" in grown.missing and "ipset wgmesh-developers: 10.70.3.87" in grown.missing
    assert grown.cuts == []                                 # the rules became sets: nobody lost access
    shrunk = iptables_change(small, *in_sync(large))
    assert [c.argv[:2] for c in shrunk.commands[-5:]] == [("ipset", "destroy")] * 5    # once no rule uses them
    assert shrunk.commands[0].argv[0] == "iptables-restore"
    assert "ipset: set wgmesh-developers" in shrunk.extra
    cut_addresses = {str(cut.source or cut.destination) for cut in shrunk.cuts}
    assert cut_addresses == {f"{netaddr.IPAddress('10.70.1.0') + i}/32" for i in range(20, 600)}


def test_one_developer_leaving_is_one_member_removed_and_cut(iptables_data):
    developers = crowd(600)
    before = hub(iptables_data, developers)
    # d78 (10.70.1.78) may reach LAN a and gateway a itself
    after = hub(iptables_data, {name: d for name, d in developers.items() if name != "d78"})
    change = iptables_change(after, *in_sync(before))
    assert [c.argv for c in change.commands] == [addresssets.RESTORE]        # no rule changes
    assert change.commands[0].stdin.splitlines() == ["del wgmesh-developers 10.70.1.78",
                                                     "del wgmesh-to-192.168.201.0-24 10.70.1.78",
                                                     "del wgmesh-to-10.70.0.2-32 10.70.1.78"]
    assert change.extra == ["ipset wgmesh-developers: 10.70.1.78", "ipset wgmesh-to-192.168.201.0-24: 10.70.1.78",
                            "ipset wgmesh-to-10.70.0.2-32: 10.70.1.78"]
    assert {(str(c.source), str(c.destination)) for c in change.cuts} == {
        ("10.70.1.78/32", "None"), ("None", "10.70.1.78/32"), ("10.70.1.78/32", LANS["a"]),
        ("10.70.1.78/32", "10.70.0.2/32")}
    # and back: one member added to each, nothing cut
    back = iptables_change(before, *in_sync(after))
    assert back.commands[0].stdin.splitlines() == ["add wgmesh-developers 10.70.1.78",
                                                   "add wgmesh-to-192.168.201.0-24 10.70.1.78",
                                                   "add wgmesh-to-10.70.0.2-32 10.70.1.78"]
    assert back.cuts == [] and not iptables_change(before, *in_sync(before))


def test_a_member_added_or_removed_by_hand_is_drift(iptables_data):
    z = hub(iptables_data, crowd(600))
    members = {DEVELOPERS_SET: [*address_sets(z)[0].members[1:], "10.99.0.0/16"]}
    change = iptables_change(z, *in_sync(z, members))
    assert change.missing == [f"ipset {DEVELOPERS_SET}: 10.70.0.4"] and change.extra == [f"ipset {DEVELOPERS_SET}: 10.99.0.0/16"]
    # removed before the rules' change, added after it (here there is none between)
    assert [(c.argv, c.stdin) for c in change.commands] == [(addresssets.RESTORE, f"del {DEVELOPERS_SET} 10.99.0.0/16\n"),
                                                            (addresssets.RESTORE, f"add {DEVELOPERS_SET} 10.70.0.4\n")]
    # the hand-made member's connections are cut as the rules of one address would have been
    assert {str(c.source) for c in change.cuts} >= {"10.99.0.0/16"}


def test_a_set_of_wgmeshs_name_but_another_type_is_refused(iptables_data):
    z = hub(iptables_data, crowd(600))
    text = set_listing(z).replace(f"create {DEVELOPERS_SET} hash:net", f"create {DEVELOPERS_SET} hash:ip")
    with pytest.raises(ValueError, match=f"ipset {DEVELOPERS_SET} exists as hash:ip, not hash:net"):
        iptables_change(z, listing(z, "filter"), listing(z, "nat"), text)


def test_a_source_a_set_cannot_hold_keeps_its_rule():
    forward = tuple(Access(f"10.0.{i // 256}.{i % 256}/32", "192.168.1.0/24") for i in range(300))
    fw = Firewall("iptables", "wg0", "eth1", forward=forward + (Access("0.0.0.0/0", "192.168.1.0/24"),
                                                                Access("10.0.0.5/32", "192.168.1.0/24"),
                                                                Access(None, "192.168.1.0/24")))
    (only,) = address_sets(fw)
    assert len(only.members) == 300 and only.members[:2] == ("10.0.0.0", "10.0.0.1")     # the repeat once
    allows = [r.args for r in rules(fw) if r.priority == firewall.ALLOW]
    assert allows == ["-s 0.0.0.0/0 -d 192.168.1.0/24 -i wg0 -o eth1 -m conntrack --ctstate NEW -j ACCEPT",
                      "-d 192.168.1.0/24 -i wg0 -o eth1 -m conntrack --ctstate NEW -j ACCEPT",     # from anyone
                      "-d 192.168.1.0/24 -i wg0 -o eth1 -m set --match-set wgmesh-to-192.168.1.0-24 src "
                      "-m conntrack --ctstate NEW -j ACCEPT"]
    assert addresssets.member("10.1.2.3/24") == "10.1.2.0/24" and addresssets.member("0.0.0.0/0") is None
    # as `ipset save` prints them: an address alone, however it was written
    assert addresssets.member("10.0.0.5/32") == addresssets.member("10.0.0.5") == "10.0.0.5"
    assert addresssets.member("fd00::/64") is None and addresssets.member("") is None       # no IPv4 network


def test_the_listing_keeps_wgmeshs_sets_only_and_reads_no_member_without_its_set():
    text = ("create docker hash:ip family inet\nadd docker 172.17.0.2\nadd wgmesh-orphan 10.0.0.1\n"
            "create wgmesh-input hash:net family inet hashsize 1024 maxelem 1048576\nadd wgmesh-input 10.0.0.0/24\n")
    assert addresssets.parse_listing(text) == {"wgmesh-input": ("hash:net", ["10.0.0.0/24"])}


def test_the_boot_files_restore_the_sets_before_the_rules(iptables_data):
    from wgmesh_core.plan import host_config
    from wgmesh_core.validate import load_network
    from . import article_texts as art
    large = load_network({**iptables_data, "developers": {**iptables_data["developers"], **crowd(600)}})
    files = {f.path: f.content for f in host_files(host_config(large, "z", TODAY, art.PUBLIC_KEYS, art.PSKS))}
    sets_file, unit = files["/etc/wgmesh/ipsets"], files["/etc/systemd/system/wgmesh-firewall.service"]
    lines = sets_file.splitlines()
    assert lines[0].startswith("# Managed by wgmesh") and lines[1:4] == [
        "create wgmesh-developers hash:net family inet maxelem 1048576",
        "create wgmesh-developers~ hash:net family inet maxelem 1048576", "flush wgmesh-developers~"]
    assert lines.index("swap wgmesh-developers~ wgmesh-developers") > lines.index("add wgmesh-developers~ 10.70.3.87")
    exec_lines = [line for line in unit.splitlines() if line.startswith("ExecStart")]
    assert exec_lines[0] == "ExecStartPre=ipset -exist restore -file /etc/wgmesh/ipsets"
    assert exec_lines[-1].startswith("ExecStart=iptables-restore")
    # a short allow-list: the file holds no set and the unit does not run ipset (it may not be installed)
    small = {f.path: f.content for f in host_files(host_config(load_network(iptables_data), "z", TODAY,
                                                                art.PUBLIC_KEYS, art.PSKS))}
    assert "create" not in small["/etc/wgmesh/ipsets"] and "ipset" not in small[
        "/etc/systemd/system/wgmesh-firewall.service"]


def test_a_host_that_loses_its_role_loses_its_sets_after_its_chains(iptables_data):
    z = hub(iptables_data, crowd(600))
    found, commands = removal(*in_sync(z))
    assert [f for f in found if f.startswith("ipset/")] == [f"ipset/{s.name}" for s in address_sets(z)]
    assert "ipset/docker-hosts" not in found                        # another program's set
    destroys = [i for i, c in enumerate(commands) if c.argv[:2] == ("ipset", "destroy")]
    assert destroys == list(range(len(commands) - len(address_sets(z)), len(commands)))


def test_a_gateways_long_input_list_is_a_set():
    fw = Firewall("iptables", "wg0", "eth1", local=tuple(f"10.0.{i // 256}.{i % 256}/32" for i in range(300)))
    assert [s.name for s in address_sets(fw)] == [addresssets.INPUT_SET]
    assert [(r.priority, r.args) for r in rules(fw) if r.chain == firewall.INPUT] == [
        (firewall.REPLIES, firewall.REPLY),
        (firewall.ALLOW, "-m set --match-set wgmesh-input src -m conntrack --ctstate NEW -j ACCEPT"),
        (firewall.LAST, "-j DROP")]
    assert AddressSet("x", ()) == AddressSet("x", ())


def test_while_the_change_is_under_way_nothing_is_more_open_than_before_or_after():
    """One push moves developers in and out of a set the rules use and narrows a rule of one
    address: the members leave before the rules' change and arrive after it, so that no moment
    admits both the newcomer and what the narrowed rule admitted."""
    crowd_of = [f"10.0.{i // 256}.{i % 256}/32" for i in range(300)]

    def gateway(sources, short):
        forward = [Access(source, "192.168.1.0/24") for source in sources]
        return Firewall("iptables", "wg0", "eth1", forward=tuple(forward + [Access(s, "192.168.2.0/24") for s in short]))
    before = gateway(crowd_of, ["10.9.0.1/32", "10.9.0.2/32"])
    after = gateway(crowd_of[1:] + ["10.0.9.9/32"], ["10.9.0.1/32"])
    change = iptables_change(after, *in_sync(before))
    assert [c.argv for c in change.commands] == [addresssets.RESTORE, ("iptables-restore", "-w", "--noflush"),
                                                 addresssets.RESTORE]
    first, rules_change, last = (c.stdin.splitlines() for c in change.commands)
    assert first == ["del wgmesh-to-192.168.1.0-24 10.0.0.0"] and last == ["add wgmesh-to-192.168.1.0-24 10.0.9.9"]
    assert rules_change == ["*filter", "-D WGMESH-FORWARD -s 10.9.0.2/32 -d 192.168.2.0/24 -i wg0 -o eth1 "
                            "-m conntrack --ctstate NEW -j ACCEPT", "COMMIT", "*nat", "COMMIT"]


@pytest.mark.parametrize("bad", ["10.0.0.1\ncreate evil hash:net/32", "10.0.0.1 nomatch/32"])
def test_a_member_that_is_not_one_word_of_one_line_is_refused(bad):
    """Members reach `ipset restore` as lines: whatever validation let through, a newline or a
    space in one is refused where the set is made, as a rule's is."""
    sources = [f"10.0.{i // 256}.{i % 256}/32" for i in range(300)] + [bad]
    fw = Firewall("iptables", "wg0", "eth1", forward=tuple(Access(s, "192.168.1.0/24") for s in sources))
    with pytest.raises(ValueError, match="refusing") as refused:
        address_sets(fw)
    assert repr(bad[:-3]) in str(refused.value)          # the member named


def test_a_member_flagged_by_hand_is_drift_and_replaced_by_the_plain_member(iptables_data):
    """`ipset add wgmesh-developers 10.70.0.4 nomatch` excludes 10.70.0.4: the listing keeps the
    flag, so the planned member reads as missing and the flagged entry as extra; the entry is
    deleted by its address before the rules' change and added back plain after it. Nobody's
    connections are cut: that address is admitted again."""
    z = hub(iptables_data, crowd(600))
    planned = address_sets(z)[0].members
    flagged = {DEVELOPERS_SET: [f"{planned[0]} nomatch", *planned[1:]]}
    assert addresssets.parse_listing(set_listing(z, flagged))[DEVELOPERS_SET][1][0] == "10.70.0.4 nomatch"
    change = iptables_change(z, *in_sync(z, flagged))
    assert change.missing == [f"ipset {DEVELOPERS_SET}: 10.70.0.4"]
    assert change.extra == [f"ipset {DEVELOPERS_SET}: 10.70.0.4 nomatch"]
    assert [(c.argv, c.stdin) for c in change.commands] == [(addresssets.RESTORE, f"del {DEVELOPERS_SET} 10.70.0.4\n"),
                                                            (addresssets.RESTORE, f"add {DEVELOPERS_SET} 10.70.0.4\n")]
    assert change.cuts == []
    assert addresssets.admitted("10.70.0.4 nomatch") is None
    assert addresssets.admitted("10.70.0.4 comment hand") == "10.70.0.4"


def test_a_listed_entry_is_its_address_and_its_nomatch_flag_whatever_values_follow_it():
    """Entries as the real ipset lists them (tests/lab/test_address_set_listing.py runs it): the
    values of counters, timeouts, comments and skbinfo are no part of the member; a comment's
    words are not flags; an option of no known form stays, as drift."""
    text = "".join(f"{line}\n" for line in (
        f"create {DEVELOPERS_SET} hash:net family inet hashsize 1024 maxelem 1048576 counters comment skbinfo",
        f"add {DEVELOPERS_SET} 10.70.0.4 packets 0 bytes 0",
        f"add {DEVELOPERS_SET} 10.70.0.5 timeout 0 packets 5 bytes 500 comment \"a nomatch b\" skbmark 0x1 "
        "skbprio 1:2 skbqueue 3",
        f"add {DEVELOPERS_SET} 10.70.0.6 nomatch packets 0 bytes 0",
        f"add {DEVELOPERS_SET} 10.70.0.7 comment \"unclosed",
        f"add {DEVELOPERS_SET} 10.70.0.8 somethingnew other",
        f"add {DEVELOPERS_SET} 10.70.0.9 packets 0 bytes 0 nomatch",     # (ipset lists the flag first; a file may not)
        f"add {DEVELOPERS_SET} 10.70.0.0/30",
    ))
    assert addresssets.parse_listing(text)[DEVELOPERS_SET][1] == [
        "10.70.0.4", "10.70.0.5", "10.70.0.6 nomatch", '10.70.0.7 comment "unclosed',
        "10.70.0.8 somethingnew other", "10.70.0.9 nomatch", "10.70.0.0/30"]
    assert [addresssets.admitted(m) for m in ("10.70.0.5", "10.70.0.6 nomatch", "10.70.0.8 somethingnew")] == [
        "10.70.0.5", None, "10.70.0.8"]
