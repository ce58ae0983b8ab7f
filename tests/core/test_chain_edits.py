"""The iptables backend edits wgmesh's chains in place: the restore deletes the rules that go
and inserts those that come at their positions, whatever the chain held, and leaves the rest
(checked here against iptables' own rules for `-D chain <rule>` and `-I chain <n> <rule>`, on
lists; tests/salt and tests/lab run the restores on the kernel)."""
from __future__ import annotations

from hypothesis import given, settings, strategies as st

from wgmesh_core import firewall
from wgmesh_core.firewall import chain_edits, iptables_change

from .test_firewall import fw_of
from ..firewall_listings import listing

RULES = st.sampled_from([f"-s 10.70.0.{i}/32 -j ACCEPT" for i in range(12)] + ["-j DROP"])


def applied(have: list[str], lines: list[str], chain="C") -> list[str]:
    """What iptables makes of ``lines`` (restore input for ``chain``) on a chain holding ``have``."""
    rules = list(have)
    for line in lines:
        op, name, rest = line.split(" ", 2)
        assert name == chain
        if op == "-D":
            assert rest in rules, f"iptables: {line}: no such rule"
            rules.remove(rest)                      # the first rule that matches
        else:
            position, args = rest.split(" ", 1)
            assert op == "-I" and 1 <= int(position) <= len(rules) + 1, f"iptables: {line}: index out of range"
            rules.insert(int(position) - 1, args)
    return rules


@settings(max_examples=400, derandomize=True)
@given(st.lists(RULES, unique=True, max_size=10), st.lists(RULES, max_size=10))
def test_the_edits_make_any_chain_the_planned_one(have, want):
    lines = chain_edits("C", have, want)
    assert applied(have, lines) == want
    # only what differs is touched: no more lines than rules that go and come
    assert len(lines) <= len(have) + len(want)


def test_one_developer_more_is_two_insertions_not_a_refill(data):
    before = fw_of(firewall_spec(data), "z")
    data["developers"]["g"] = {"address": "10.70.0.6", "public_key": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAE="}
    after = fw_of(firewall_spec(data), "z")
    change = iptables_change(after, listing(before, "filter"), listing(before, "nat"))
    restore = change.commands[0].stdin.splitlines()
    # g after e and f: behind the replies rule and their two jumps, and behind their two accepts
    assert restore == ["*filter", "-I WGMESH-FORWARD 4 -s 10.70.0.6/32 -i wg0 -o wg0 -j WGMESH-DEVELOPERS",
                       "-I WGMESH-DEVELOPERS 3 -d 10.70.0.6/32 -j ACCEPT", "COMMIT", "*nat", "COMMIT"]


def test_a_repeated_rule_refills_the_chains_whole(spec):
    a = fw_of(spec, "a")
    forward = [args for t, c, args in ((r.table, r.chain, r.args) for r in firewall.rules(a))
               if (t, c) == ("filter", "WGMESH-FORWARD")]
    repeated = listing(a, "filter", replace={"WGMESH-FORWARD": forward[:1] + forward})
    change = iptables_change(a, repeated, listing(a, "nat"))
    assert change.commands[0].stdin == firewall.iptables_restore(a)


def test_a_missing_chain_is_declared_and_filled_the_others_left_alone(spec):
    a = fw_of(spec, "a")
    inputs = [r.args for r in firewall.rules(a) if r.chain == "WGMESH-INPUT"]
    missing = "\n".join(line for line in listing(a, "filter").splitlines() if "WGMESH-INPUT" not in line)
    change = iptables_change(a, missing, listing(a, "nat"))
    assert inputs and change.commands[0].stdin == "\n".join(
        ["*filter", ":WGMESH-INPUT - [0:0]", *(f"-A WGMESH-INPUT {args}" for args in inputs), "COMMIT",
         "*nat", "COMMIT"]) + "\n"


def firewall_spec(data):
    from wgmesh_core.validate import load_network
    return load_network(data)
