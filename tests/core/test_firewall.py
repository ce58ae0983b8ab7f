"""firewall.py: the rules each host's plan calls for, the comparison with live rules both ways,
and the commands (iptables, firewall-cmd, conntrack) that fix the difference.

Live listings here are written the way `iptables -S` and `firewall-cmd` print them; the lab
tests (tests/lab/test_firewall.py) run the same code against real iptables and firewalld.
"""
from __future__ import annotations

import base64
import hashlib
import dataclasses
import xml.etree.ElementTree as ElementTree

import pytest

from wgmesh_core import firewall
from wgmesh_core.firewall import Command, firewalld_change, iptables_change, rules
from wgmesh_core.plan import host_config
from wgmesh_core.render import host_files
from wgmesh_core.validate import load_network

from . import article_texts as art
from .conftest import TODAY
from ..firewall_listings import firewalld_live, listing

K, P = art.PUBLIC_KEYS, art.PSKS
NEW = "-m conntrack --ctstate NEW -j ACCEPT"


def fw_of(spec, host):
    return host_config(spec, host, TODAY, K, P).firewall


def chain(fw, table, name):
    return [r.args for r in rules(fw) if (r.table, r.chain) == (table, name)]


# --- what each host gets --------------------------------------------------------------------

def test_gateway_forwards_only_allowed_sources_from_the_tunnel_into_its_lan(spec):
    a = fw_of(spec, "a")
    assert chain(a, "filter", "FORWARD") == ["-i wg0 -j WGMESH-FORWARD", "-o wg0 -j WGMESH-FORWARD"]
    assert chain(a, "filter", "WGMESH-FORWARD") == [
        "-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
        f"-s 10.70.0.3/32 -d 192.168.201.0/24 -i wg0 -o eth1 {NEW}",     # c (lan_access [a])
        f"-s 10.70.0.4/32 -d 192.168.201.0/24 -i wg0 -o eth1 {NEW}",     # e (all)
        f"-s 10.70.0.5/32 -d 192.168.201.0/24 -i wg0 -o eth1 {NEW}",     # f (all)
        "-j DROP"]
    assert chain(a, "filter", "WGMESH-DEVELOPERS") == []


def test_gateway_itself_is_reachable_through_the_tunnel_only_from_its_allow_list(spec):
    a, c = fw_of(spec, "a"), fw_of(spec, "c")
    assert chain(a, "filter", "INPUT") == ["-i wg0 -j WGMESH-INPUT"]
    assert chain(a, "filter", "WGMESH-INPUT") == [
        "-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
        f"-s 10.70.0.3/32 {NEW}", f"-s 10.70.0.4/32 {NEW}", f"-s 10.70.0.5/32 {NEW}", "-j DROP"]
    # a has lan_access none: c's own services are closed to it, and to the hub
    assert "-s 10.70.0.2/32" not in " ".join(chain(c, "filter", "WGMESH-INPUT"))
    assert "10.70.0.1/32" not in " ".join(chain(c, "filter", "WGMESH-INPUT") + chain(a, "filter", "WGMESH-INPUT"))


@pytest.mark.parametrize("access, a_input, hub_rules_to_a", [
    ("vpn", [], [f"-d 10.70.0.2/32 -i wg0 -o wg0 {NEW}"]),
    ("none", ["-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT", "-j DROP"], []),
])
def test_gateway_access_setting(data, access, a_input, hub_rules_to_a):
    data["gateway_access"] = access
    spec = load_network(data)
    assert chain(fw_of(spec, "a"), "filter", "WGMESH-INPUT") == a_input
    assert [r for r in chain(fw_of(spec, "z"), "filter", "WGMESH-FORWARD") if "-d 10.70.0.2/32" in r] == hub_rules_to_a


def test_masquerade_only_where_the_lan_router_cannot_route(spec):
    assert chain(fw_of(spec, "c"), "nat", "WGMESH-POSTROUTING") == [
        "-s 10.70.0.0/16 -d 192.168.200.0/24 -o eth2 -j MASQUERADE"]
    assert chain(fw_of(spec, "a"), "nat", "WGMESH-POSTROUTING") == []
    assert chain(fw_of(spec, "a"), "nat", "POSTROUTING") == ["-j WGMESH-POSTROUTING"]


def test_hub_forwards_what_the_gateways_admit_and_developer_to_developer(spec):
    z = fw_of(spec, "z")
    forward = chain(z, "filter", "WGMESH-FORWARD")
    assert forward[0] == "-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT" and forward[-1] == "-j DROP"
    assert f"-s 10.70.0.3/32 -d 192.168.201.0/24 -i wg0 -o wg0 {NEW}" in forward        # c into LAN1
    assert f"-s 10.70.0.3/32 -d 10.70.0.2/32 -i wg0 -o wg0 {NEW}" in forward            # c to a itself
    assert not any("-s 10.70.0.2/32" in r for r in forward)                             # a may go nowhere
    assert not any("-s 10.70.0.1/32" in r for r in forward)
    assert ["-s 10.70.0.4/32 -i wg0 -o wg0 -j WGMESH-DEVELOPERS",
            "-s 10.70.0.5/32 -i wg0 -o wg0 -j WGMESH-DEVELOPERS"] == [r for r in forward if "DEVELOPERS" in r]
    assert chain(z, "filter", "WGMESH-DEVELOPERS") == ["-d 10.70.0.4/32 -j ACCEPT", "-d 10.70.0.5/32 -j ACCEPT"]
    assert chain(z, "filter", "WGMESH-INPUT") == []          # the hub's own services are not wgmesh's
    assert z.allow_list()[0] == "10.70.0.3/32 -> 192.168.201.0/24"


def test_developer_to_developer_off(data):
    data["developer_to_developer"] = False
    z = fw_of(load_network(data), "z")
    assert chain(z, "filter", "WGMESH-DEVELOPERS") == []
    assert not any("DEVELOPERS" in r for r in chain(z, "filter", "WGMESH-FORWARD"))


def test_revoked_developer_leaves_every_rule(data):
    data["developers"]["e"]["revoked"] = True
    spec = load_network(data)
    for host in ("z", "a", "c"):
        assert not any("10.70.0.4/" in r.args for r in rules(fw_of(spec, host))), host


def test_hub_strict_rp_filter_and_firewall_backend_override(data):
    data["hub"]["firewall"] = "iptables"
    hub = host_config(load_network(data), "z", TODAY, K, P)
    assert hub.strict_rp_filter and hub.firewall.backend == "iptables"
    files = {f.path: f.content for f in host_files(hub)}
    assert files["/etc/sysctl.d/10-wgmesh-rp-filter.conf"].endswith("net.ipv4.conf.wg0.rp_filter = 1\n")
    assert not any(path.startswith("/etc/firewalld/") for path in files)
    assert not host_config(load_network(data), "a", TODAY, K, P).strict_rp_filter


def test_article_rules_are_kept_and_scoped(data):
    """Each rule of the article's allow-list, with the tunnel, the LAN interface and the LAN added."""
    data["developers"]["f"]["lan_access"] = "none"      # the article's allow-list on a: c and e
    forward = chain(fw_of(load_network(data), "a"), "filter", "WGMESH-FORWARD")
    article = [cmd.split(" ", 6)[6] for cmd in art.IPTABLES_ALLOW]
    assert forward[0] == article[0].replace("ESTABLISHED,RELATED", "RELATED,ESTABLISHED")
    assert forward[-1] == article[-1] == "-j DROP"
    scoped = [rule.replace("-s 10.70.0.3/32 ", "-s 10.70.0.3/32 -d 192.168.201.0/24 -i wg0 -o eth1 ")
                  .replace("-s 10.70.0.4/32 ", "-s 10.70.0.4/32 -d 192.168.201.0/24 -i wg0 -o eth1 ")
              for rule in article[1:-1]]
    assert forward[1:-1] == scoped


# --- rendered files ---------------------------------------------------------------------------

def test_direct_xml_holds_every_rule_and_chain(spec):
    for host in ("z", "c"):
        config = host_config(spec, host, TODAY, K, P)
        direct = next(f for f in host_files(config) if f.path == "/etc/firewalld/direct.xml")
        root = ElementTree.fromstring(direct.content)
        assert [(c.get("table"), c.get("chain")) for c in root.iter("chain")] == list(firewall.CHAINS)
        parsed = [(r.get("table"), r.get("chain"), int(r.get("priority")), r.text) for r in root.iter("rule")]
        assert parsed == [(r.table, r.chain, r.priority, r.args) for r in rules(config.firewall)]


def test_zone_and_hub_policy_files(spec):
    hub = {f.path: f.content for f in host_files(host_config(spec, "z", TODAY, K, P))}
    zone = ElementTree.fromstring(hub["/etc/firewalld/zones/wgmesh.xml"])
    assert zone.get("target") == "ACCEPT" and [i.get("name") for i in zone.iter("interface")] == ["wg0"]
    policy = ElementTree.fromstring(hub["/etc/firewalld/policies/wgmesh-wireguard.xml"])
    assert [p.attrib for p in policy.iter("port")] == [{"port": "51820", "protocol": "udp"}]
    assert policy.find("ingress-zone").get("name") == "ANY" and policy.find("egress-zone").get("name") == "HOST"
    gateway = {f.path for f in host_files(host_config(spec, "a", TODAY, K, P))}
    assert {"/etc/firewalld/zones/wgmesh.xml", "/etc/firewalld/policies/wgmesh-wireguard.xml"} <= gateway


# --- backend iptables: live vs plan ------------------------------------------------------------

def test_iptables_in_sync_needs_nothing(spec):
    a = fw_of(spec, "a")
    change = iptables_change(a, listing(a, "filter"), listing(a, "nat"))
    assert not change and change.commands == [] and change.cuts == []


def test_iptables_revocation_is_an_extra_rule_removed_with_its_connections(data):
    before = fw_of(load_network(data), "a")
    data["developers"]["e"]["revoked"] = True
    after = fw_of(load_network(data), "a")
    change = iptables_change(after, listing(before, "filter"), listing(before, "nat"))
    assert change.extra == [f"filter: -A WGMESH-FORWARD -s 10.70.0.4/32 -d 192.168.201.0/24 -i wg0 -o eth1 {NEW}",
                            f"filter: -A WGMESH-INPUT -s 10.70.0.4/32 {NEW}"]
    assert change.missing == []
    restore = change.commands[0]
    assert restore.argv == ("iptables-restore", "-w", "--noflush")
    assert restore.stdin.splitlines() == ["*filter", *[line.replace("filter: -A ", "-D ") for line in change.extra],
                                          "COMMIT", "*nat", "COMMIT"]
    assert [cut.deletion for cut in change.cuts] == ["-D -s 10.70.0.4 -d 192.168.201.0 --mask-dst 255.255.255.0",
                                                     "-D -s 10.70.0.4"]


@pytest.mark.parametrize("mutate, field, expected", [
    (lambda r: [x for x in r if "10.70.0.5" not in x], "missing",
     f"filter: -A WGMESH-FORWARD -s 10.70.0.5/32 -d 192.168.201.0/24 -i wg0 -o eth1 {NEW}"),
    (lambda r: r[:-1] + ["-s 10.70.0.9/32 -j ACCEPT", r[-1]], "extra", "filter: -A WGMESH-FORWARD -s 10.70.0.9/32 -j ACCEPT"),
    (lambda r: [r[-1]] + r[:-1], "other", "filter: WGMESH-FORWARD rules out of order"),
    (lambda r: [], "missing", "filter: -A WGMESH-FORWARD -j DROP"),
])
def test_iptables_drift_of_the_forward_chain(spec, mutate, field, expected):
    from .test_chain_edits import applied
    a = fw_of(spec, "a")
    planned = chain(a, "filter", "WGMESH-FORWARD")
    live = listing(a, "filter", replace={"WGMESH-FORWARD": mutate(planned)})
    change = iptables_change(a, live, listing(a, "nat"))
    assert expected in getattr(change, field)
    (restore,) = change.commands
    assert restore.argv == ("iptables-restore", "-w", "--noflush")
    edits = restore.stdin.splitlines()[1:-3]       # *filter ... COMMIT *nat COMMIT
    assert edits and applied(mutate(planned), edits, "WGMESH-FORWARD") == planned


def test_iptables_missing_chain_and_hand_added_rule_above_the_jumps(spec):
    a = fw_of(spec, "a")
    live = listing(a, "filter", replace={"FORWARD": ["-s 10.70.0.9/32 -j ACCEPT", "-i wg0 -j WGMESH-FORWARD",
                                                      "-o wg0 -j WGMESH-FORWARD"]})
    live = "\n".join(line for line in live.splitlines() if "WGMESH-DEVELOPERS" not in line)
    change = iptables_change(a, live, listing(a, "nat"))
    assert "filter: chain WGMESH-DEVELOPERS" in change.missing
    assert change.other == ["filter: FORWARD jumps to wgmesh first"]
    assert [c.argv for c in change.commands[1:]] == [
        ("iptables", "-w", "-t", "filter", "-D", "FORWARD", "-i", "wg0", "-j", "WGMESH-FORWARD"),
        ("iptables", "-w", "-t", "filter", "-D", "FORWARD", "-o", "wg0", "-j", "WGMESH-FORWARD"),
        ("iptables", "-w", "-t", "filter", "-I", "FORWARD", "1", "-i", "wg0", "-j", "WGMESH-FORWARD"),
        ("iptables", "-w", "-t", "filter", "-I", "FORWARD", "2", "-o", "wg0", "-j", "WGMESH-FORWARD")]
    assert change.cuts == []          # the hand-added rule is outside wgmesh's chains: not removed


def test_iptables_missing_nat_jump(spec):
    c = fw_of(spec, "c")
    change = iptables_change(c, listing(c, "filter"), listing(c, "nat", replace={"POSTROUTING": []}))
    assert change.other == ["nat: POSTROUTING jump to wgmesh missing"]
    assert [cmd.argv for cmd in change.commands] == [
        ("iptables", "-w", "-t", "nat", "-I", "POSTROUTING", "1", "-j", "WGMESH-POSTROUTING")]


def test_removal_takes_out_the_jumps_then_flushes_and_deletes_only_wgmesh_chains(spec):
    """A host leaving the network: every rule jumping to a wgmesh chain (the planned jumps and one
    from another chain) is deleted, other programs' rules and chains stay, then wgmesh's chains
    are flushed (so none still refers to another) and deleted."""
    c = fw_of(spec, "c")
    filter_listing = listing(c, "filter", extra_builtin=["-j DOCKER-USER"]) + (
        "-N DOCKER-USER\n-A DOCKER-USER -j RETURN\n-N LIBVIRT_INP\n-A LIBVIRT_INP -s 10.9.0.0/16 -j WGMESH-INPUT\n")
    nat_listing = listing(c, "nat")
    found, commands = firewall.removal(filter_listing, nat_listing)
    assert found == ["filter/WGMESH-FORWARD", "filter/WGMESH-INPUT", "filter/WGMESH-DEVELOPERS", "nat/WGMESH-POSTROUTING"]
    assert [cmd.argv for cmd in commands] == [
        ("iptables", "-w", "-t", "filter", "-D", "INPUT", "-i", "wg0", "-j", "WGMESH-INPUT"),
        ("iptables", "-w", "-t", "filter", "-D", "FORWARD", "-i", "wg0", "-j", "WGMESH-FORWARD"),
        ("iptables", "-w", "-t", "filter", "-D", "FORWARD", "-o", "wg0", "-j", "WGMESH-FORWARD"),
        ("iptables", "-w", "-t", "filter", "-D", "LIBVIRT_INP", "-s", "10.9.0.0/16", "-j", "WGMESH-INPUT"),
        ("iptables", "-w", "-t", "filter", "-F", "WGMESH-FORWARD"),
        ("iptables", "-w", "-t", "filter", "-F", "WGMESH-INPUT"),
        ("iptables", "-w", "-t", "filter", "-F", "WGMESH-DEVELOPERS"),
        ("iptables", "-w", "-t", "filter", "-X", "WGMESH-FORWARD"),
        ("iptables", "-w", "-t", "filter", "-X", "WGMESH-INPUT"),
        ("iptables", "-w", "-t", "filter", "-X", "WGMESH-DEVELOPERS"),
        ("iptables", "-w", "-t", "nat", "-D", "POSTROUTING", "-j", "WGMESH-POSTROUTING"),
        ("iptables", "-w", "-t", "nat", "-F", "WGMESH-POSTROUTING"),
        ("iptables", "-w", "-t", "nat", "-X", "WGMESH-POSTROUTING")]
    assert all(cmd.check and cmd.stdin is None for cmd in commands)


def test_removal_of_a_host_without_wgmesh_chains_does_nothing(spec):
    found, commands = firewall.removal("-P INPUT ACCEPT\n-A INPUT -j ACCEPT\n", "-P POSTROUTING ACCEPT\n")
    assert found == [] and commands == []


def test_a_change_reports_only_what_differs():
    change = firewall.FirewallChange(missing=["filter: -A X -j DROP"], other=["zone"])
    assert change and change.as_dict() == {"missing": ["filter: -A X -j DROP"], "other": ["zone"]}
    assert firewall.FirewallChange(extra=["e"]).as_dict() == {"extra": ["e"]}
    assert not firewall.FirewallChange() and firewall.FirewallChange().as_dict() == {}


# --- backend firewalld: live vs plan -----------------------------------------------------------

def test_firewalld_in_sync_needs_nothing(spec):
    for host in ("z", "a", "c"):
        fw = fw_of(spec, host)
        change = firewalld_change(fw, firewalld_live(fw))
        assert not change and change.commands == [] and not change.reload, host


def test_firewalld_narrowing_removes_the_rule_at_runtime_and_cuts_its_connections(data):
    before = fw_of(load_network(data), "c")
    data["developers"]["e"]["lan_access"] = ["a"]
    after = fw_of(load_network(data), "c")
    change = firewalld_change(after, firewalld_live(after, direct=[r.direct for r in rules(before)]))
    assert not change.reload and change.missing == []
    assert change.extra == [
        f"firewalld: ipv4 filter WGMESH-FORWARD 2 -s 10.70.0.4/32 -d 192.168.200.0/24 -i wg0 -o eth2 {NEW}",
        f"firewalld: ipv4 filter WGMESH-INPUT 2 -s 10.70.0.4/32 {NEW}"]
    assert [c.argv[:4] for c in change.commands] == [("firewall-cmd", "--direct", "--remove-rule", "ipv4")] * 2
    assert change.commands[0].argv[4:] == ("filter", "WGMESH-FORWARD", "2", "-s", "10.70.0.4/32", "-d",
                                           "192.168.200.0/24", "-i", "wg0", "-o", "eth2", "-m", "conntrack",
                                           "--ctstate", "NEW", "-j", "ACCEPT")
    assert "-D -s 10.70.0.4 -d 192.168.200.0 --mask-dst 255.255.255.0" in [cut.deletion for cut in change.cuts]


def test_firewalld_removes_before_it_adds(data):
    before = fw_of(load_network(data), "a")
    data["developers"]["e"]["address"] = "10.70.0.40"         # renumbered: one rule out, one in
    after = fw_of(load_network(data), "a")
    change = firewalld_change(after, firewalld_live(after, direct=[r.direct for r in rules(before)]))
    verbs = [c.argv[2] for c in change.commands]
    assert verbs == ["--remove-rule", "--remove-rule", "--add-rule", "--add-rule"]


def test_firewalld_hand_added_rule_is_extra(spec):
    a = fw_of(spec, "a")
    hand = "ipv4 filter FORWARD 0 -s 10.70.0.9/32 -j ACCEPT"
    change = firewalld_change(a, firewalld_live(a, direct=[r.direct for r in rules(a)] + [hand]))
    assert change.extra == [f"firewalld: {hand}"]
    assert change.commands == [Command(("firewall-cmd", "--direct", "--remove-rule", *hand.split()))]
    assert [cut.deletion for cut in change.cuts] == ["-D -s 10.70.0.9"]


def test_firewalld_zone_missing_or_wrong_needs_a_reload(spec):
    a = fw_of(spec, "a")
    in_sync = firewalld_live(a)
    for live in (firewalld_live(a, zone=False), dataclasses.replace(in_sync, zone=in_sync.zone.replace("ACCEPT", "default"))):
        change = firewalld_change(a, live)
        assert change.reload and change.commands == [Command(("firewall-cmd", "--reload"))]
        assert change.other and change.other[0].startswith("firewalld: zone wgmesh")


def test_firewalld_zone_membership_fixed_at_runtime(spec):
    a = fw_of(spec, "a")
    change = firewalld_change(a, firewalld_live(a, interfaces="eth1", sources="192.168.201.0/24"))
    assert change.missing == ["firewalld: wg0 in zone wgmesh"]
    assert change.extra == ["firewalld: eth1 in zone wgmesh", "firewalld: source 192.168.201.0/24 in zone wgmesh"]
    assert [c.argv for c in change.commands] == [
        ("firewall-cmd", "--zone=wgmesh", "--change-interface=wg0"),
        ("firewall-cmd", "--zone=wgmesh", "--remove-interface=eth1"),
        ("firewall-cmd", "--zone=wgmesh", "--remove-source=192.168.201.0/24")]
    assert not change.reload


def test_firewalld_port_policy_missing_or_changed_needs_a_reload(data):
    for host in ("z", "a"):
        fw = fw_of(load_network(data), host)
        change = firewalld_change(fw, firewalld_live(fw, policy=False))
        assert change.reload and change.other == ["firewalld: policy wgmesh-wireguard missing"]
    live = firewalld_live(fw_of(load_network(data), "a"))
    data["listen_port"] = 41820
    change = firewalld_change(fw_of(load_network(data), "a"), live)
    assert change.reload and change.other == ["firewalld: policy wgmesh-wireguard differs"]


def test_firewalld_kernel_lost_a_rule_behind_its_back(spec):
    a = fw_of(spec, "a")
    forward = [r for r in chain(a, "filter", "WGMESH-FORWARD") if "-j DROP" not in r]
    change = firewalld_change(a, firewalld_live(a, kernel=listing(a, "filter", replace={"WGMESH-FORWARD": forward})))
    assert change.reload and "missing filter: -A WGMESH-FORWARD -j DROP" in change.other[0]


def test_firewalld_kernel_order_within_a_priority_does_not_matter_but_drop_last_does(spec):
    a = fw_of(spec, "a")
    forward = chain(a, "filter", "WGMESH-FORWARD")
    shuffled = [forward[0], forward[3], forward[1], forward[2], forward[4]]      # allows reordered
    assert not firewalld_change(a, firewalld_live(a, kernel=listing(a, "filter", replace={"WGMESH-FORWARD": shuffled})))
    drop_first = [forward[4]] + forward[:4]
    change = firewalld_change(a, firewalld_live(a, kernel=listing(a, "filter", replace={"WGMESH-FORWARD": drop_first})))
    assert change.reload and "out of order" in change.other[0]


def test_firewalld_jumps_may_live_in_the_direct_chain_of_the_iptables_backend(spec):
    a = fw_of(spec, "a")
    kernel = listing(a, "filter", replace={"FORWARD": [], "INPUT": []})
    kernel += "".join(f"-A FORWARD_direct {args}\n" for args in chain(a, "filter", "FORWARD"))
    kernel += "".join(f"-A INPUT_direct {args}\n" for args in chain(a, "filter", "INPUT"))
    assert not firewalld_change(a, firewalld_live(a, kernel=kernel))


# --- details a mutation run showed untested ------------------------------------------------------

def test_the_restore_input_is_one_transaction_per_table(spec):
    text = firewall.iptables_restore(fw_of(spec, "a"))
    lines = text.split("\n")
    assert lines[-1] == "" and lines.count("COMMIT") == 2 and lines[lines.index("*nat") - 1] == "COMMIT"
    assert lines[0] == "*filter" and lines[-2] == "COMMIT"
    assert all(line.startswith(("*", ":", "-A ")) or line == "COMMIT" for line in lines[:-1])


def test_parse_listing_keeps_empty_and_built_in_chains_and_skips_broken_lines():
    text = "-P OUTPUT ACCEPT\n-N WGMESH-INPUT\n-A FORWARD -i wg0 -j WGMESH-FORWARD\n-N\n-P\n-A X\nbogus line here\n"
    assert firewall.parse_listing(text) == {"OUTPUT": [], "WGMESH-INPUT": [], "FORWARD": ["-i wg0 -j WGMESH-FORWARD"]}


def test_a_zone_source_with_colons_is_still_found():
    """An IPv6 source someone put in zone wgmesh: its colons do not split the key."""
    info = firewall.parse_info("wgmesh (active)\n  target: ACCEPT\n  sources: fd00::/8 10.9.0.0/16\n")
    assert info == {"target": "ACCEPT", "sources": "fd00::/8 10.9.0.0/16"}


def test_cut_connections_scopes_each_removed_allow_rule():
    removed = ["-s 10.70.0.9/32 -j DROP",                          # a block lifted: nothing to cut
               f"-s 10.70.0.4/32 -d 192.168.200.0/24 -i wg0 -o eth2 {NEW}",
               "-d 10.70.0.5/32 -j ACCEPT",
               "-s 10.70.1.7/24 -j ACCEPT",                          # hand-added, host bits set
               "-i wg0 -j WGMESH-DEVELOPERS",                        # no address: cannot be told apart
               "-d 10.70.0.5/32 -j ACCEPT"]                          # twice: one cut
    assert [cut.deletion for cut in firewall.cut_connections(removed)] == [
        "-D -s 10.70.0.4 -d 192.168.200.0 --mask-dst 255.255.255.0",
        "-D -d 10.70.0.5",
        "-D -s 10.70.1.0 --mask-src 255.255.255.0"]


FLOWS = ("tcp      6 431999 ESTABLISHED src=10.70.0.4 dst=192.168.200.10 sport=40000 dport=22 "
         "src=192.168.200.10 dst=10.70.0.4 sport=22 dport=40000 [ASSURED] mark=0 use=1\n"
         "icmp     1 29 src=192.168.201.7 dst=10.70.0.5 type=8 code=0 id=7 src=10.70.0.5 dst=192.168.201.7 "
         "type=0 code=0 id=7 mark=0 use=1\n"
         "udp      17 20 src=10.70.1.200 dst=10.70.0.1 sport=5353 dport=53 [UNREPLIED] src=10.70.0.1 "
         "dst=10.70.1.200 sport=53 dport=5353 mark=0 use=1\n"
         "tcp      6 100 ESTABLISHED src=fd00::4 dst=fd00::1 sport=1 dport=2 src=fd00::1 dst=fd00::4 sport=2 dport=1\n")


def test_the_cuts_run_as_one_conntrack_process_and_only_where_a_flow_is():
    """Each `conntrack -D` walks the whole conntrack table (15 ms): revoking 10,000 developers
    was 10,000 processes, minutes of the hub's state run. The flows are listed once, the cuts that
    find one go to one `conntrack -R -`."""
    cuts = firewall.cut_connections([
        f"-s 10.70.0.4/32 -d 192.168.200.0/24 -i wg0 -o eth2 {NEW}",     # 10.70.0.4 -> .200.10: cut
        f"-s 10.70.0.4/32 -d 192.168.201.0/24 -i wg0 -o eth1 {NEW}",     # no flow to that LAN
        "-d 10.70.0.5/32 -j ACCEPT",                                     # a flow to 10.70.0.5: cut
        "-s 10.70.0.6/32 -j ACCEPT",                                     # no flow
        "-s 10.70.1.0/24 -j ACCEPT"])                                    # 10.70.1.200 in it: cut
    (batch,) = firewall.cut_commands(cuts, FLOWS)
    assert batch.argv == ("conntrack", "-R", "-") and batch.check is False
    assert batch.stdin.splitlines() == ["-D -s 10.70.0.4 -d 192.168.200.0 --mask-dst 255.255.255.0",
                                        "-D -d 10.70.0.5",
                                        "-D -s 10.70.1.0 --mask-src 255.255.255.0"]
    assert firewall.cut_commands(cuts, "") == []                          # no flow at all: nothing runs
    assert firewall.cut_commands([], FLOWS) == []
    (unlisted,) = firewall.cut_commands(cuts)                             # the flows unknown: every cut
    assert len(unlisted.stdin.splitlines()) == 5
    many = firewall.cut_connections([f"-d 10.70.{n // 250}.{n % 250 + 1}/32 -j ACCEPT" for n in range(10_000)])
    (batch,) = firewall.cut_commands(many, FLOWS)
    assert batch.stdin == "-D -d 10.70.0.1\n-D -d 10.70.0.5\n"            # the two with a flow


def test_iptables_nat_jump_after_other_rules_is_fine_and_a_missing_nat_table_is_not(spec):
    c = fw_of(spec, "c")
    docker_first = listing(c, "nat", replace={"POSTROUTING": ["-s 172.17.0.0/16 -j MASQUERADE", "-j WGMESH-POSTROUTING"]})
    assert not iptables_change(c, listing(c, "filter"), docker_first)
    change = iptables_change(c, listing(c, "filter"), "")
    assert change.missing[0] == "nat: chain WGMESH-POSTROUTING"
    assert change.other == ["nat: POSTROUTING jump to wgmesh missing"]


def test_firewalld_zone_messages_and_a_zone_listing_without_members(spec):
    a = fw_of(spec, "a")
    assert firewalld_change(a, firewalld_live(a, zone=False)).other[0] == "firewalld: zone wgmesh missing"
    live = firewalld_live(a)
    wrong = dataclasses.replace(live, zone=live.zone.replace("ACCEPT", "default"))
    assert firewalld_change(a, wrong).other[0] == "firewalld: zone wgmesh target default"
    bare = firewalld_change(a, dataclasses.replace(live, zone="wgmesh\n  target: ACCEPT\n"))
    assert bare.missing == ["firewalld: wg0 in zone wgmesh"] and bare.extra == []


@pytest.mark.parametrize("what", ["missing rule", "extra rule", "missing chain", "extra chain"])
def test_firewalld_runtime_differences_are_fixed_without_a_reload(spec, what):
    """firewalld's record differs from the plan and the kernel matches firewalld's record (as it
    does when someone changed the rules with firewall-cmd): fixed one command at a time, never a
    reload (which would drop other programs' runtime rules)."""
    a = fw_of(spec, "a")
    planned = rules(a)
    rule = next(r for r in planned if r.chain == "WGMESH-INPUT" and "-s " in r.args)
    hand = firewall.Rule("filter", "WGMESH-INPUT", 2, f"-s 10.9.9.9/32 {NEW}")
    chains = "".join(f"ipv4 {t} {c}\n" for t, c in firewall.CHAINS)
    direct, kernel_input = [r.direct for r in planned], chain(a, "filter", "WGMESH-INPUT")
    if what == "missing rule":
        direct.remove(rule.direct)
        kernel_input = [args for args in kernel_input if args != rule.args]
        expected = ("--direct", "--add-rule", *rule.direct.split())
    elif what == "extra rule":
        direct.append(hand.direct)
        kernel_input = kernel_input[:-1] + [hand.args, kernel_input[-1]]
        expected = ("--direct", "--remove-rule", *hand.direct.split())
    elif what == "missing chain":
        chains = chains.replace("ipv4 filter WGMESH-DEVELOPERS\n", "")
        expected = ("--direct", "--add-chain", "ipv4", "filter", "WGMESH-DEVELOPERS")
    else:
        chains += "ipv4 filter OLD-CHAIN\n"
        expected = ("--direct", "--remove-chain", "ipv4", "filter", "OLD-CHAIN")
    live = dataclasses.replace(firewalld_live(a, direct=direct), chains=chains,
                               kernel_filter=listing(a, "filter", replace={"WGMESH-INPUT": kernel_input}))
    change = firewalld_change(a, live)
    assert not change.reload and change.other == []
    assert [c.argv for c in change.commands] == [("firewall-cmd", *expected)]


def test_firewalld_kernel_without_wgmesh_chains_or_jumps_needs_a_reload(spec):
    a = fw_of(spec, "a")
    flushed = firewalld_change(a, firewalld_live(a, kernel=""))           # iptables -F; iptables -X
    assert flushed.reload and flushed.commands == [Command(("firewall-cmd", "--reload"))]
    assert flushed.other[0].startswith("kernel differs from firewalld's direct rules: missing filter: -A WGMESH-FORWARD ")
    no_jumps = firewalld_change(a, firewalld_live(a, kernel=listing(a, "filter", replace={"FORWARD": []})))
    assert no_jumps.other == ["kernel differs from firewalld's direct rules: "
                              "missing filter: -A FORWARD -i wg0 -j WGMESH-FORWARD; "
                              "missing filter: -A FORWARD -o wg0 -j WGMESH-FORWARD"]


def test_a_large_firewalld_change_is_one_reload_of_the_current_permanent_files(data):
    """firewalld takes runtime direct rules one D-Bus call (and iptables process) at a time: a
    network of thousands of developers would take minutes. Once the permanent files hold the plan
    (the state run writes them first), a change above the limit is one reload, which loads them in
    one batch; the same change against stale permanent files (the fast path) stays rule by rule."""
    crowd = {f"d{i}": {"address": f"10.70.1.{i}", "public_key": base64.b64encode(hashlib.sha256(b"d%d" % i).digest()).decode(),
                    "lan_access": ["c"]}
             for i in range(1, 1 + firewall.RELOAD_ABOVE_CHANGES)}
    before, after = load_network(data), load_network({**data, "developers": {**data["developers"], **crowd}})
    z_before, z_after = fw_of(before, "z"), fw_of(after, "z")
    live = firewalld_live(z_before)
    bulk = firewalld_change(z_after, live, permanent_current=lambda: True)
    assert bulk.reload and bulk.commands == [Command(("firewall-cmd", "--reload"))]
    assert len(bulk.missing) > firewall.RELOAD_ABOVE_CHANGES
    changes = len(bulk.missing) + len(bulk.extra)   # the crowd's rules, moved into sub-chains with z's own
    assert bulk.other[-1].startswith(f"{changes} direct rules and chains to change: reloading")
    stale = firewalld_change(z_after, live, permanent_current=lambda: False)
    assert not stale.reload and len(stale.commands) == len(stale.missing) + len(stale.extra) == changes
    # a change within the limit stays rule by rule even with current permanent files
    one = load_network({**data, "developers": {**data["developers"], "d1": crowd["d1"]}})
    # ... and the files are not even looked at
    small = firewalld_change(fw_of(one, "z"), live, permanent_current=lambda: pytest.fail("files looked at"))
    assert small and not small.reload and all("--add-rule" in c.argv for c in small.commands)


@pytest.mark.parametrize("source", [None, "", "10.70.0.6/32"])
@pytest.mark.parametrize("destination", ["", "10.128.0.0/9"])
@pytest.mark.parametrize("out_interface", ["", "wg0", "eth1"])
def test_a_forward_rule_matches_as_written_option_by_option(source, destination, out_interface):
    """The forward rules' match options (the interfaces matched once for all of them) are
    ``_match`` of all four, whichever are missing."""
    from wgmesh_core.firewall import FORWARD, NEW, _match
    from wgmesh_core.plan import Access, Firewall
    fw = Firewall(backend="iptables", interface="wg0", out_interface=out_interface,
                  forward=(Access(source, destination),))
    args = [r.args for r in rules(fw) if r.chain == FORWARD and r.args.endswith(NEW)]
    assert args == [f"{_match(source, destination, 'wg0', out_interface)} {NEW}"]



# --- rules made together --------------------------------------------------------------------

def test_rules_made_together_are_the_rules_made_one_by_one():
    arguments = ["-s 10.70.0.4/32 -j ACCEPT", "", "-d 10.70.0.5/32 -j ACCEPT"]
    made = firewall._rules_of("filter", firewall.FORWARD, firewall.ALLOW, arguments)
    assert made == [firewall.Rule("filter", firewall.FORWARD, firewall.ALLOW, args) for args in arguments]
    assert all(type(rule) is firewall.Rule for rule in made)
    assert [(r.table, r.chain, r.priority, r.args) for r in made][0] == (
        "filter", firewall.FORWARD, firewall.ALLOW, "-s 10.70.0.4/32 -j ACCEPT")
    assert str(made[2]) == f"filter: -A {firewall.FORWARD} -d 10.70.0.5/32 -j ACCEPT"
    assert made[0].direct == f"ipv4 filter {firewall.FORWARD} {firewall.ALLOW} -s 10.70.0.4/32 -j ACCEPT"
    assert firewall._rules_of("nat", firewall.NAT, firewall.ALLOW, []) == []


@pytest.mark.parametrize("at", [0, 1, 2])
@pytest.mark.parametrize("char", ["\n", "\r", "\x1b", "\u2028"])
def test_a_rule_argument_with_a_control_character_is_refused_made_alone_or_together(at, char):
    arguments = ["-s 10.70.0.4/32", "-s 10.70.0.5/32", "-s 10.70.0.6/32"]
    arguments[at] += f"{char}-A X -j ACCEPT"
    message = f"refusing a firewall rule holding a newline or control character: {arguments[at]!r}"
    with pytest.raises(ValueError, match="refusing a firewall rule") as info:
        firewall._rules_of("filter", firewall.INPUT, firewall.ALLOW, arguments)
    assert message in str(info.value)
    with pytest.raises(ValueError) as info:
        firewall.Rule("filter", firewall.INPUT, firewall.ALLOW, arguments[at])
    assert message in str(info.value)


def _block_by_words(args, flag):
    """The /24 of the word after ``flag``'s first appearance as a word, split as iptables -S prints."""
    words = args.split()
    if flag not in words:
        return None
    address, _, length = words[words.index(flag) + 1].partition("/")
    return address.rsplit(".", 1)[0] if int(length or 32) >= 24 else None


@pytest.mark.parametrize("flag", ["-s", "-d"])
def test_the_24_of_each_allow_rule_is_the_one_its_words_name(flag):
    arguments = ["{f} 10.1.2.3/32 -j X", "-i wg0 {f} 10.1.2.3 -j X", "{f}  10.1.2.0/24 -o wg0", "{f} 10.1.0.0/16 -j X",
                 "-x 10.7.7.7/32 {f} 10.9.9.9/32 {f} 10.8.8.8/32", "-{f} 10.1.2.3/32", "x{f} 10.1.2.3", "{f}x 10.1.2.3",
                 "{f}x 10.1.2.3 {f} 10.5.5.5/32", "-j ACCEPT", "{f} 10.1.2.3/25 -j X", "{f} 10.1.2.3/23", ""]
    arguments = [args.format(f=flag) for args in arguments]
    allow = firewall._rules_of("filter", firewall.FORWARD, firewall.ALLOW, arguments)
    assert firewall._blocks(allow, flag) == [_block_by_words(args, flag) for args in arguments]
    assert [b for b in firewall._blocks(allow, flag) if b] == ["10.1.2", "10.1.2", "10.1.2", "10.9.9", "10.5.5",
                                                                "10.1.2"]
    others = firewall._rules_of("filter", firewall.FORWARD, firewall.LAST, arguments)
    assert firewall._blocks(others, flag) == [None] * len(arguments)


def test_direct_xml_declares_the_chains_the_rules_use(spec):
    for host in ("z", "a", "c"):
        host_rules = rules(fw_of(spec, host))
        assert firewall.chains_of(host_rules) == firewall.ChainRules(host_rules).ours
    crowd = dataclasses.replace(fw_of(spec, "z"), developers=tuple(f"10.70.{n // 250}.{n % 250 + 1}/32"
                                                                   for n in range(600)))
    host_rules = rules(crowd)
    assert firewall.chains_of(host_rules) == firewall.ChainRules(host_rules).ours
    assert ("filter", "WGMESH-DEV-10.70.2") in firewall.chains_of(host_rules)
