"""matrix.reach_diff: what a change opens and closes, cell by cell."""
from __future__ import annotations

import copy
import datetime

from wgmesh_core.matrix import DEVELOPERS, Matrix, reach_diff
from wgmesh_core.reach import Reachability
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


def test_a_first_deployment_opens_every_cell_from_no_network_yet(spec):
    diff = reach_diff(None, spec, TODAY)
    got = cells(diff)
    assert got[("e", "LAN of c")] == ("blocked", "reach via tunnel")
    assert got[("c", "z")] == ("blocked", "reach via tunnel")
    assert {c.source for c in diff.changes} == {"z", "a", "c", "LAN of a", "e", "f"}
    assert {c.before.reason for c in diff.changes} == {"no network yet"}
    assert all(change.opened for change in diff.changes)


def test_a_removed_gateway_closes_its_rows_and_columns(data):
    old = load_network(data)
    del data["gateways"]["c"]
    for dev in data["developers"].values():
        dev["lan_access"] = "all"
    diff = reach_diff(old, load_network(data), TODAY)
    got = cells(diff)
    assert got[("c", "a")] == ("reach via tunnel", "blocked")          # rows of the old revision only
    assert got[("c", "z")] == ("reach via tunnel", "blocked")
    assert got[("e", "LAN of c")] == ("reach via tunnel", "blocked")   # columns of the old revision only
    by_cell = {(c.source, c.destination): c for c in diff.changes}
    assert by_cell[("e", "LAN of c")].after.reason == "LAN of c is not in the network"
    assert by_cell[("c", "a")].after.reason == "c is not in this revision of the network"
    assert not any(change.opened for change in diff.changes)


def test_a_new_gateways_columns_were_not_in_the_network_before(data):
    old = load_network(data)
    data["gateways"]["g"] = {"address": "10.70.0.9", "lan": "192.168.202.0/24", "lan_address": "192.168.202.1",
                             "lan_mode": "masquerade"}
    diff = reach_diff(old, load_network(data), TODAY)
    by_cell = {(c.source, c.destination): c for c in diff.changes}
    assert by_cell[("e", "LAN of g")].before.reason == "LAN of g is not in the network"


def test_expiry_is_evaluated_as_of_the_day_given(data):
    """e expired yesterday: its row is blocked in both revisions, so extending f's access is the only change;
    extending e's expiry opens e's row again."""
    data["developers"]["e"]["expires"] = str(TODAY - datetime.timedelta(days=1))
    old = load_network(data)
    data["developers"]["e"]["expires"] = str(TODAY + datetime.timedelta(days=30))
    diff = reach_diff(old, load_network(data), TODAY)
    assert cells(diff)[("e", "LAN of a")] == ("blocked", "reach via tunnel")
    assert diff.changes[0].before.reason.startswith(f"developer e expired on {TODAY - datetime.timedelta(days=1)}")
    assert reach_diff(old, old, TODAY).changes == []


def test_a_lone_developer_has_no_other_developer_to_reach(data):
    del data["developers"]["f"]
    old = load_network(data)
    data["developers"]["e"]["revoked"] = True
    diff = reach_diff(old, load_network(data), TODAY)
    got = {c.destination: c for c in diff.changes if c.source == "e"}
    assert DEVELOPERS not in got          # blocked before and after: no other developer, then revoked
    lone = reach_diff(None, old, TODAY)
    assert not [c for c in lone.changes if c.source == "e" and c.destination == DEVELOPERS]
    row = Matrix(Reachability(old, TODAY)).row("e")
    assert row[DEVELOPERS].reach is False
    assert row[DEVELOPERS].reason == "there is no other active developer"


def test_sources_with_different_changes_make_different_groups(data):
    old = load_network(data)
    data["developers"]["e"]["revoked"] = True
    data["developers"]["f"]["lan_access"] = ["c"]
    groups = reach_diff(old, load_network(data), TODAY).groups()
    assert [sources for sources, _ in groups] == [["e"], ["f"]]
    assert set(groups[1][1]) == {"a", "LAN of a", DEVELOPERS}     # f no longer reaches e either


def test_configs_planned_for_another_network_or_date_are_not_used(data):
    """The shared stand-in configs serve only the network and date they were planned for."""
    from wgmesh_core.diff import plan_change, stand_in_configs
    old = load_network(data)
    data["developers"]["alice"] = dict(ALICE)
    new = load_network(data)
    other_day = stand_in_configs(new, TODAY + datetime.timedelta(days=1))
    swapped = (stand_in_configs(new, TODAY), stand_in_configs(old, TODAY))
    assert stand_in_configs(new, TODAY, other_day) is not other_day
    assert stand_in_configs(new, TODAY, swapped[0]) is swapped[0]
    assert reach_diff(old, new, TODAY, swapped) == reach_diff(old, new, TODAY)
    assert plan_change(old, new, TODAY, swapped) == plan_change(old, new, TODAY)
    assert plan_change(old, new, TODAY, swapped).clients_changed == ["alice"]


def test_the_hub_and_the_gateways_share_one_pass_for_their_allow_lists(data, monkeypatch):
    """StandInConfigs plans every host with one ``lan_sources`` of the network: the configs are the
    ones each host planned alone gets, and the pass over the developers is made once."""
    from wgmesh_core import diff, plan
    data["developers"]["alice"] = dict(ALICE, lan_access=["a"])
    spec = load_network(data)
    alone = {host: plan.host_config(spec, host, TODAY, *diff.stand_in_keys(spec)) for host in plan.managed_hosts(spec)}
    passes = []
    monkeypatch.setattr(diff, "lan_sources", lambda *args: passes.append(args) or plan.lan_sources(*args))
    shared = diff.stand_in_configs(spec, TODAY)
    assert {host: shared[host] for host in plan.managed_hosts(spec)} == alone
    assert passes == [(spec, TODAY)]
    assert {host for host, config in alone.items() if config.firewall} >= {"z", "a", "c"}
