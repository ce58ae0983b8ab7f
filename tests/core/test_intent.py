"""Intent tests (tests.yaml): parsing, the problems each bad entry gets, and the verdicts."""
from __future__ import annotations

import datetime

import pytest

from lab.article import EXPECTED_MATRIX
from wgmesh_core.intent import check, load_intent, refusals, verdict
from wgmesh_core.source import TESTS_FILE, load_sls, read_tree
from wgmesh_core.validate import InvalidNetwork, load_network

from .conftest import PILLAR, TODAY


def example_tests() -> dict:
    return load_sls((PILLAR / TESTS_FILE).read_text(), TESTS_FILE)


def results_for(spec, tests, hosts=None, today=TODAY):
    return check(spec, load_intent({"hosts": hosts or {}, "tests": tests}, spec, today), today)


def problems_for(spec, data):
    with pytest.raises(InvalidNetwork) as info:
        load_intent(data, spec, TODAY)
    return {p.where: p.what for p in info.value.problems}


def test_every_test_of_the_example_pillar_passes(spec):
    results = check(spec, load_intent(example_tests(), spec, TODAY), TODAY)
    assert len(results) >= 20
    assert refusals(results) == []
    assert {r.prediction.via for r in results if r.prediction.reach} == {"tunnel", "on-link"}
    assert sum(1 for r in results if not r.prediction.reach) >= 5


def test_the_example_tests_hold_the_labs_whole_matrix(spec):
    """Every (source, destination, expected) the lab measures is a test with that expectation."""
    data = example_tests()
    addresses = {**data["hosts"], **{name: str(dev.address) for name, dev in spec.developers.items()},
                 **{gid: str(gw.address) for gid, gw in spec.gateways.items()}, spec.hub.minion: str(spec.hub.address)}
    declared = {(t["from"], addresses.get(t["to"], t["to"]), t["expect"] == "reach")
                for t in data["tests"] if "at" not in t}
    missing = [cell for cell in EXPECTED_MATRIX if cell not in declared]
    assert not missing, missing


def test_a_broken_test_is_named_with_its_reason(data):
    data["developers"]["e"]["lan_access"] = ["c"]
    spec = load_network(data)
    results = check(spec, load_intent(example_tests(), spec, TODAY), TODAY)
    broken = {str(p) for p in refusals(results)}
    assert ("tests[4]: e -> b:22/tcp expected reach: blocked by gateway a's allow-list: e's lan_access [c] does not "
            "include a, so e's client does not route 192.168.201.10 into the tunnel (AllowedIPs 10.70.0.0/16, "
            "192.168.200.0/24)") in broken
    assert sorted(p.where.split(" ")[0] for p in refusals(results)) == ["tests[19]", "tests[21]", "tests[2]", "tests[4]"]
    # LAN2 alone has no covering prefix (any would hold LAN1): the exact /24 makes e in the office hairpin
    assert any(text.startswith("tests[19] (e in the Beijing office): e (in c's LAN) -> d expected reach via on-link: "
                               "reaches via tunnel: e -> z -> c -> d") for text in broken)
    message = next(r.message for r in results if r.index == 2)
    assert message.startswith("tests[2] e -> b expected reach via tunnel: blocked by gateway a's allow-list")


def test_expected_blocked_that_reaches_is_refused(spec):
    [result] = results_for(spec, [{"from": "e", "to": "c", "expect": "blocked"}])
    assert not result.passed
    assert result.message == "tests[0] e -> c expected blocked: reaches via tunnel: e -> z -> c"


def test_the_way_is_part_of_the_expectation(data):
    data["developers"]["e"]["platform"] = "windows"
    spec = load_network(data)
    [result] = results_for(spec, [{"from": "e", "at": "c", "to": "192.168.200.244", "expect": "reach", "via": "on-link"}])
    assert not result.passed and result.prediction.reach and result.prediction.via == "tunnel"
    assert "expected reach via on-link: reaches via tunnel: e -> z -> c" in result.message


def test_a_date_evaluates_expiry_as_of_that_day(data):
    data["developers"]["e"]["expires"] = "2025-06-30"
    spec = load_network(data)
    results = results_for(spec, [
        {"from": "e", "to": "d", "expect": "reach"},
        {"from": "e", "to": "d", "expect": "blocked", "date": "2025-07-01", "name": "e's contract ends in June"},
        {"from": "e", "to": "d", "expect": "reach", "date": "2025-07-01"}], hosts={"d": "192.168.200.244"})
    assert [r.passed for r in results] == [True, True, False]
    assert results[2].message == ("tests[2] e -> d expected reach: developer e expired on 2025-06-30 "
                                  "(as of 2025-07-01): the hub has no peer for it")
    assert results[1].where == "tests[1] (e's contract ends in June)"


@pytest.mark.parametrize("entry, where, what", [
    ({"from": "ee", "to": "d", "expect": "reach"}, "tests[0].from", "'ee' is neither the hub"),
    ({"from": "e", "to": "8.8.8.8", "expect": "blocked"}, "tests[0].to", "outside the VPN network"),
    ({"from": "10.70.0.99", "to": "e", "expect": "blocked"}, "tests[0].from", "belongs to no host or developer"),
    ({"from": "e", "to": "d", "expect": "reach", "port": 22}, "tests[0].port", "a port needs proto tcp or udp"),
    ({"from": "e", "to": "d", "expect": "reach", "proto": "tcp"}, "tests[0].port", "proto tcp needs a port"),
    ({"from": "e", "to": "d", "expect": "blocked", "via": "tunnel"}, "tests[0].via", "only a test that expects reach"),
    ({"from": "z", "at": "c", "to": "d", "expect": "reach"}, "tests[0].at", "z is not a developer"),
    ({"from": "e", "at": "q", "to": "d", "expect": "reach"}, "tests[0].at", "'q' is not a gateway"),
    ({"from": "e", "to": "d", "expect": "maybe"}, "tests[0].expect", "Input should be 'reach' or 'blocked'"),
    ({"from": "e", "to": "d", "expect": "reach", "prot": "tcp"}, "tests[0].prot", "unknown key"),
    ({"to": "d", "expect": "reach"}, "tests[0].from", "required key is missing"),
    ({"from": "e", "to": "d", "expect": "reach", "name": "<script>"}, "tests[0].name", "should match pattern"),
    ({"from": "e", "to": "d", "expect": "reach", "port": 70000, "proto": "tcp"}, "tests[0].port", "less than or equal"),
    ({"from": "e", "to": "x" * 10_000, "expect": "reach"}, "tests[0].to", "at most 64 characters"),
    # strict, as the pillar: what a reviewer reads is what is tested
    ({"from": "e", "to": "d", "expect": "reach", "proto": "tcp", "port": True}, "tests[0].port", "not true"),
    ({"from": "e", "to": "d", "expect": "reach", "proto": "tcp", "port": "22"}, "tests[0].port", "not the text '22'"),
    ({"from": "e", "to": "d", "expect": "reach", "date": 1780012800}, "tests[0].date", "is not a day"),
    ({"from": "e", "to": "d", "expect": "reach", "date": "2026-W22-1"}, "tests[0].date", "is not a day"),
])
def test_each_bad_entry_is_named(spec, entry, where, what):
    problems = problems_for(spec, {"hosts": {"d": "192.168.200.244"}, "tests": [entry]})
    assert where in problems, problems
    assert what in problems[where]


@pytest.mark.parametrize("hosts, where, what", [
    ({"b": "10.1.2.3"}, "hosts.b", "10.1.2.3 is in no gateway's LAN"),
    ({"e": "192.168.201.10"}, "hosts.e", "also the name of a host or developer"),
    ({"gw": "192.168.200.248"}, "hosts.gw", "gateway c's own address: name c"),
    ({"b": "192.168.201.0/24"}, "hosts.b", "not an IPv4 address"),
])
def test_bad_named_hosts(spec, hosts, where, what):
    problems = problems_for(spec, {"hosts": hosts, "tests": []})
    assert what in problems[where], problems


def test_the_file_must_be_a_mapping(spec):
    assert problems_for(spec, ["from: e"]) == {"(top)": "expected a mapping with hosts and tests, got list"}


def test_no_tests_file_is_no_tests(spec):
    assert check(spec, load_intent(None, spec, TODAY), TODAY) == []


def test_every_problem_at_once(spec):
    problems = problems_for(spec, {"tests": [{"from": "x", "to": "d", "expect": "reach"},
                                             {"from": "e", "to": "y", "expect": "reach"}]})
    assert set(problems) == {"tests[0].from", "tests[0].to", "tests[1].to"}


def test_today_applies_to_tests_without_a_date(data):
    data["developers"]["e"]["expires"] = "2025-06-30"
    spec = load_network(data)
    [before] = results_for(spec, [{"from": "e", "to": "f", "expect": "reach"}], today=datetime.date(2025, 6, 30))
    [after] = results_for(spec, [{"from": "e", "to": "f", "expect": "reach"}], today=datetime.date(2025, 7, 1))
    assert before.passed and not after.passed


def test_the_tests_file_is_read_with_the_pillar_by_the_checked_loader(tmp_path):
    """tests.yaml beside top.sls: read by read_tree like an SLS (#!yaml, no templates, no duplicate keys)."""
    import shutil
    shutil.copytree(PILLAR, tmp_path / "p")
    assert read_tree(tmp_path / "p").tests == example_tests()
    for text, why in (("hosts: {}\n", "must start with the line '#!yaml'"),
                      ("#!yaml\ntests:\n  - {from: e, from: z, to: d, expect: reach}\n", "duplicate key 'from'"),
                      ("#!yaml\ntests: [{from: '{{ salt.cmd.run(\"id\") }}', to: d, expect: reach}]\n",
                       "template syntax '{{' is not allowed")):
        (tmp_path / "p" / TESTS_FILE).write_text(text)
        with pytest.raises(InvalidNetwork) as info:
            read_tree(tmp_path / "p")
        assert any(why in p.what and p.where.startswith(TESTS_FILE) for p in info.value.problems), info.value.problems
    (tmp_path / "p" / TESTS_FILE).unlink()
    assert read_tree(tmp_path / "p").tests is None


def test_verdict_names_the_file_for_its_own_problems(spec):
    results, problems = verdict({"tests": [{"from": "ee", "to": "z", "expect": "reach"}]}, spec, TODAY)
    assert results == [] and [str(p) for p in problems] == [
        "tests.yaml tests[0].from: 'ee' is neither the hub, a gateway, a developer, a named LAN host nor an address"]


def test_the_relation_problems_say_exactly_what_is_wrong(spec):
    problems = problems_for(spec, {"hosts": {"e": "192.168.201.10"}, "tests": [
        {"from": "e", "to": "z", "expect": "reach", "port": 22},
        {"from": "e", "to": "z", "expect": "blocked", "via": "tunnel"}]})
    assert problems == {"hosts.e": "is also the name of a host or developer of the network",
                        "tests[0].port": "a port needs proto tcp or udp",
                        "tests[1].via": "only a test that expects reach says which way"}


@pytest.mark.parametrize("tests_file, where", [
    ({"tests": "e -> z"}, "tests"),                   # not a list: no index to show
    ({"tests": ["e -> z"]}, "tests[0]"),              # an entry that is not a mapping
    ({"tests": [{"from": "e", "to": "z", "expect": "reach", "a.b": 1}]}, "tests[0].a.b"),   # a key as written
    ({"hosts": {"1": "not an address"}}, "hosts.1"),  # a host named by digits is not a test index
])
def test_shape_problems_are_placed_as_the_file_reads(spec, tests_file, where):
    assert where in problems_for(spec, tests_file)


def test_each_result_says_where_to_probe_from_and_what(spec):
    [result] = results_for(spec, [{"from": "e", "at": "c", "to": "b", "proto": "tcp", "port": 22, "expect": "reach"}],
                           hosts={"b": "192.168.201.10"})
    assert (result.source.kind, result.source.name, str(result.source.address), result.source.at) == (
        "developer", "e", "10.70.0.4", "c")
    assert (result.destination.kind, result.destination.name, str(result.destination.address)) == (
        "lan", "b", "192.168.201.10")


def test_the_verdict_applies_today_to_tests_without_a_date(data):
    data["developers"]["e"]["expires"] = "2025-06-14"
    spec = load_network(data)
    results, problems = verdict({"tests": [{"from": "e", "to": "f", "expect": "reach"}]}, spec, TODAY)
    assert [r.passed for r in results] == [False]
    assert [str(p) for p in problems] == [
        "tests[0]: e -> f expected reach: developer e expired on 2025-06-14 (as of 2025-06-15): the hub has no peer for it"]
