"""matrix.reach_diff: what a change opens and closes, cell by cell."""
from __future__ import annotations

import copy

from wgmesh_core.matrix import DEVELOPERS, reach_diff
from wgmesh_core.summary import reach_diff_text
from wgmesh_core.validate import load_network

from .conftest import TODAY

ALICE = {"address": "10.70.0.6", "public_key": "QUxJQ0UtcHVibGljLWtleS0wMDAwMDAwMDAwMDAwMDA=", "lan_access": ["a"]}


def cells(diff):
    return {(c.source, c.destination): (c.before.outcome, c.after.outcome) for c in diff.changes}


def test_granting_a_lan_reads_as_exactly_that(data):
    data["developers"]["alice"] = dict(ALICE)
    old = load_network(data)
    data["developers"]["alice"]["lan_access"] = ["a", "c"]
    diff = reach_diff(old, load_network(data), TODAY)
    assert cells(diff) == {("alice", "LAN of c"): ("blocked", "reach via tunnel"),
                           ("alice", "c"): ("blocked", "reach via tunnel")}       # c itself follows its LAN
    assert all(change.opened for change in diff.changes)


def test_revoking_closes_the_developers_row(data):
    old = load_network(data)
    data["developers"]["e"]["revoked"] = True
    diff = reach_diff(old, load_network(data), TODAY)
    assert cells(diff) == {("e", column): ("reach via tunnel", "blocked")
                           for column in ("z", "a", "c", "LAN of a", "LAN of c", DEVELOPERS)}
    assert {c.after.reason for c in diff.changes} == {"developer e is revoked: the hub has no peer for it"}


def test_a_new_developer_opens_its_row(data):
    old = load_network(data)
    data["developers"]["alice"] = dict(ALICE)
    diff = reach_diff(old, load_network(data), TODAY)
    assert cells(diff) == {("alice", column): ("blocked", "reach via tunnel")
                           for column in ("z", "a", "LAN of a", DEVELOPERS)}
    assert diff.changes[0].before.reason == "alice is not in this revision of the network"


def test_narrowing_a_gateway_lan_access_closes_its_way_to_the_other_gateway_itself(data):
    """c's lan_access [a] admits its VPN address into LAN1 and to a itself; c routes only the VPN,
    so the one cell that closes is c -> a."""
    old = load_network(data)
    data["gateways"]["c"]["lan_access"] = "none"
    diff = reach_diff(old, load_network(data), TODAY)
    assert cells(diff) == {("c", "a"): ("reach via tunnel", "blocked")}
    assert diff.changes[0].after.reason.startswith("blocked by hub z's firewall")


def test_a_new_gateway_adds_its_columns_and_rows(data):
    old = load_network(data)
    data["gateways"]["g"] = {"address": "10.70.0.9", "lan": "192.168.202.0/24", "lan_address": "192.168.202.1",
                             "lan_mode": "masquerade"}
    diff = reach_diff(old, load_network(data), TODAY)
    got = cells(diff)
    for dev in ("e", "f"):
        assert got[(dev, "g")] == ("blocked", "reach via tunnel")
        assert got[(dev, "LAN of g")] == ("blocked", "reach via tunnel")
    assert ("z", "LAN of g") not in got            # the hub: blocked before (no LAN) and after (allow-list)
    assert got[("g", "z")] == ("blocked", "reach via tunnel")
    assert ("z", "g") not in got and ("a", "LAN of g") not in got   # the hub never reaches a gateway itself;
                                                                    # a gateway does not route into other LANs


def test_the_route_conflict_appears_when_a_covering_prefix_is_lost(data):
    """Going from all LANs to LAN2 only leaves no covering prefix: in the office, LAN2 is reached
    through the tunnel -- not a matrix cell (the matrix is from home), but the plan's test catches it."""
    old = load_network(data)
    data["developers"]["e"]["lan_access"] = ["c"]
    diff = reach_diff(old, load_network(data), TODAY)
    assert cells(diff) == {("e", "LAN of a"): ("reach via tunnel", "blocked"), ("e", "a"): ("reach via tunnel", "blocked")}


def test_unchanged_network_has_no_diff(spec):
    assert reach_diff(spec, copy.deepcopy(spec), TODAY).changes == []
    assert reach_diff_text(reach_diff(spec, spec, TODAY)) == ["reachability: unchanged"]


def test_text_matrix_groups_alike_sources(data):
    old = load_network(data)
    for dev in ("e", "f"):
        data["developers"][dev]["lan_access"] = ["c"]
    text = reach_diff_text(reach_diff(old, load_network(data), TODAY))
    assert text[1].split() == ["from", "\\", "to", "a", "LAN", "of", "a"]
    assert text[2].split() == ["e,", "f", "-", "-"]
    assert text[3].startswith("  - e, f -> a: blocked by hub z's firewall")
    assert text[4].startswith("  - e, f -> LAN of a: blocked by gateway a's allow-list: e's lan_access [c]")
