"""Intent tests on real pull requests: `wgmesh plan` and `wgmesh validate` refuse a revision that
breaks one, naming it; the reachability diff; `--format markdown` with its Mermaid diagram, parsed by
Mermaid's own parser (tests/mermaid: mermaid under node, jsdom standing in for the browser DOM).
The commands run in process (``run_wgmesh``: mutation testing sees them)."""
from __future__ import annotations

import json
import re

import pytest

from tests.conftest import assert_clean_failure, run_wgmesh
from wgmesh_core.source import TESTS_FILE

from .conftest import TODAY, make_pillar_repo, mermaid_block, new_public_key, parse_mermaid


@pytest.fixture
def repo(tmp_path):
    """The example pillar with its tests.yaml on main; a pull request branch checked out."""
    repo = make_pillar_repo(tmp_path / "pillar-repo", intent=True)
    repo.branch("pr")
    return repo


def plan(repo, *extra):
    return run_wgmesh("plan", repo.path, "--head", "HEAD", "--target", "main", "--today", TODAY, *extra)


def narrow_e_to_lan2(repo):
    repo.replace("wgmesh/developers.sls", "lan_access: all\n      platform: macos", "lan_access: [c]\n      platform: macos")


def test_a_pull_request_breaking_a_test_is_refused_naming_it(repo):
    narrow_e_to_lan2(repo)
    repo.commit("e only needs Beijing")
    done = plan(repo)
    assert_clean_failure(done, 1, "tests[2]: e -> b expected reach via tunnel: blocked by gateway a's allow-list: "
                                  "e's lan_access [c] does not include a")
    assert "wgmesh plan: refused, 4 intent test(s) fail:" in done.stderr
    assert ("tests[19] (e in the Beijing office): e (in c's LAN) -> d expected reach via on-link: reaches via tunnel"
            in done.stderr)
    # the reviewer still sees what the change does
    assert "gateway a: -allow 10.70.0.4/32" in done.stdout
    assert "  - e -> LAN of a: blocked by gateway a's allow-list" in done.stdout
    assert "intent tests: 20 pass, 4 fail" in done.stdout
    # validate (the working tree) refuses it too, one line per broken test
    checked = run_wgmesh("validate", repo.path, "--today", TODAY)
    assert_clean_failure(checked, 1, "tests[4]: e -> b:22/tcp expected reach: blocked by gateway a's allow-list")
    assert len(checked.stderr.strip().splitlines()) == 4


def test_the_same_change_with_its_tests_updated_passes(repo):
    narrow_e_to_lan2(repo)
    tests = repo.file(TESTS_FILE).read_text()
    for old, new in (("{from: e, to: b, expect: reach, via: tunnel}", "{from: e, to: b, expect: blocked}"),
                     ("{from: e, to: b, proto: tcp, port: 22, expect: reach}", "{from: e, to: b, proto: tcp, port: 22, expect: blocked}"),
                     ("{from: e, at: c, to: d, expect: reach, via: on-link, name: e in the Beijing office}",
                      "{from: e, at: c, to: d, expect: reach, via: tunnel, name: exact LAN2 route hairpins}"),
                     ("{from: e, at: c, to: b, expect: reach, via: tunnel}", "{from: e, at: c, to: b, expect: blocked}")):
        assert tests.count(old) == 1, old
        tests = tests.replace(old, new)
    repo.file(TESTS_FILE).write_text(tests)
    repo.commit("e only needs Beijing; tests say so")
    done = plan(repo)
    assert done.returncode == 0, done.stderr
    assert "intent tests: 24 pass, 0 fail" in done.stdout
    doc = json.loads(plan(repo, "--format", "json").stdout)
    assert doc["valid"] is True and doc["problems"] == []
    # leaving a's allow-list closes gateway a itself to e as well as its LAN
    assert [(c["from"], c["to"], c["before"], c["after"]) for c in doc["reachability"]] == [
        ("e", "a", "reach via tunnel", "blocked"), ("e", "LAN of a", "reach via tunnel", "blocked")]
    assert len(doc["intent"]) == 24 and all(t["passed"] for t in doc["intent"])


def test_a_test_only_change_plans_no_host(repo):
    repo.file(TESTS_FILE).write_text(repo.file(TESTS_FILE).read_text()
                                     + "  - {from: f, to: 192.168.201.20, proto: udp, port: 53, expect: reach}\n")
    repo.commit("one more test")
    done = plan(repo)
    assert done.returncode == 0, done.stderr
    assert "valid; 0 host(s) change" in done.stdout.splitlines()[0]
    assert done.stdout.endswith("\n\nreachability: unchanged\nintent tests: 25 pass, 0 fail\n")


def test_a_broken_tests_file_is_refused_with_its_line(repo):
    repo.file(TESTS_FILE).write_text("#!yaml\ntests:\n  - {from: e, to: d, expect: reach, expect: blocked}\n")
    repo.commit("oops")
    assert_clean_failure(plan(repo), 1, "tests.yaml:3: duplicate key 'expect'")
    repo.file(TESTS_FILE).write_text("#!yaml\ntests:\n  - {from: e, to: nowhere, expect: reach}\n")
    repo.commit("oops again")
    assert_clean_failure(plan(repo), 1, "tests.yaml tests[0].to: 'nowhere' is neither the hub")


def test_markdown_summary_of_granting_a_lan(repo, tmp_path):
    repo.add_developer("alice", "10.70.0.6", new_public_key(), lan_access=["c"])
    repo.file(TESTS_FILE).write_text(repo.file(TESTS_FILE).read_text()
                                     + "  - {from: alice, to: d, proto: tcp, port: 22, expect: reach, name: alice builds in Beijing}\n"
                                     + "  - {from: alice, to: b, expect: blocked}\n")
    repo.commit("alice, contractor on the Beijing build server")
    done = plan(repo, "--format", "markdown")
    assert done.returncode == 0, done.stderr
    text = done.stdout
    assert text.startswith("## wgmesh plan `")
    assert "✅ **valid**: every intent test passes; 2 host(s) change (z, c)" in text
    assert "**26 pass, 0 fail.**" in text
    sections = re.findall(r"^### (.+)$", text, re.M)
    assert sections == ["Intent tests", "Reachability changes", "The network after this change", "Hosts"]
    # alice may enter c's LAN, so c itself; gateway a, closed to her, gets no column
    assert "| from \\ to | z | c | LAN of c | developers |" in text
    assert "| alice | ➕ reach | ➕ reach | ➕ reach | ➕ reach |" in text
    assert "| c | gateway | +allow 10.70.0.6/32 |" in text and "| a | gateway | unchanged |" in text
    diagram = parse_mermaid(mermaid_block(text), tmp_path)
    assert diagram["type"] == "flowchart-v2"
    vertices = {ident: (label, classes) for ident, label, classes in diagram["vertices"]}
    subgraphs = {ident: (title, nodes) for ident, title, nodes in diagram["subgraphs"]}
    lan2 = next(ident for ident, (title, _) in subgraphs.items() if title.startswith("LAN 192.168.200.0/24"))
    alice = next(ident for ident, (label, _) in vertices.items() if label.startswith("alice"))
    assert vertices[alice][1] == ["added"] and vertices["hub"][1] == ["changed"]
    assert vertices["gw_" + lan2][1] == ["changed"]        # c's allow-list gains alice
    assert not [v for v, (label, classes) in vertices.items() if classes and v not in (alice, "hub", "gw_" + lan2)]
    edges = {(a, b): style for a, b, _, style in diagram["edges"]}
    assert (alice, "hub") in edges and edges[(alice, lan2)] and "stroke:#1a7f37" in edges[(alice, lan2)]
    assert subgraphs[lan2][1] == ["gw_" + lan2]          # gateway c sits in its LAN


def test_markdown_of_a_refused_pull_request(repo, tmp_path):
    narrow_e_to_lan2(repo)
    repo.commit("e only needs Beijing")
    done = plan(repo, "--format", "markdown")
    assert done.returncode == 1
    text = done.stdout
    assert "❌ **refused**: 4 intent test problem(s)" in text
    rows = [line for line in text.splitlines() if line.startswith("| ❌ |")]
    assert len(rows) == 4
    assert rows[0].startswith("| ❌ | tests[2]: `e -> b` | reach via tunnel | blocked by gateway a's allow-list")
    assert "| e | ➖ blocked |" in text
    parse_mermaid(mermaid_block(text), tmp_path)


def test_markdown_of_an_invalid_network_lists_its_problems(repo):
    repo.add_developer("g", "10.70.0.5", new_public_key())
    repo.commit("address taken")
    done = plan(repo, "--format", "markdown")
    assert done.returncode == 1
    assert "❌ **refused**: 1 problem(s); nothing is planned." in done.stdout
    assert "- `developers.g.address`: 10.70.0.5 is already taken by developers.f" in done.stdout


def test_the_diagram_of_a_large_network_stays_within_what_github_renders(tmp_path):
    """10,000 developers: the unchanged ones are one node, so the diagram stays far below GitHub's
    limits (500 edges, 50,000 characters) and still parses."""
    import datetime
    from wgmesh_core.diff import plan_change
    from wgmesh_core.matrix import reach_diff
    from wgmesh_core.summary import mermaid
    from wgmesh_core.validate import load_network
    from bench.bench_intent import network
    data = network(10_000)
    old = load_network(data)
    data["developers"]["dev00003"]["lan_access"] = "all"
    new = load_network(data)
    day = datetime.date(2026, 1, 15)
    text = mermaid(old, new, plan_change(old, new, day), reach_diff(old, new, day), day)
    assert len(text) < 20_000
    diagram = parse_mermaid(text, tmp_path)
    assert len(diagram["edges"]) < 500
    more = next(label for ident, label, _ in diagram["vertices"] if ident == "devmore")
    assert more.startswith("9,976 more developers")
    changed = next(v for v in diagram["vertices"] if v[1].startswith("dev00003"))
    assert changed[2] == ["changed"]


def test_plan_runs_the_intent_tests_as_of_the_day_given(repo):
    """e's access ends on 2025-06-15 (TODAY): its tests pass that day and fail the day after, and
    the JSON says the revision is not valid then, naming the problems."""
    repo.replace("wgmesh/developers.sls", "lan_access: all\n      platform: macos",
                 "lan_access: all\n      platform: macos\n      expires: 2025-06-15")
    repo.commit("e until today")
    assert plan(repo).returncode == 0
    done = run_wgmesh("plan", repo.path, "--target", "main", "--today", "2025-06-16", "--format", "json")
    assert done.returncode == 1 and done.stdout.startswith('{\n  "base": ')      # indented for a person
    doc = json.loads(done.stdout)
    assert doc["valid"] is False and doc["problems"][0] == (
        "tests[0] (the article's test: ping 192.168.200.244): e -> d expected reach via tunnel: developer e expired "
        "on 2025-06-15 (as of 2025-06-16): the hub has no peer for it")
    assert done.stderr.splitlines()[0] == f"wgmesh plan: refused, {len(doc['problems'])} intent test(s) fail:"
    assert done.stderr.splitlines()[1:] == doc["problems"]


def test_markdown_counts_the_days_left_from_the_day_given(repo):
    repo.add_developer("g", "10.70.0.6", new_public_key(), expires="2025-07-01")
    repo.commit("g until July")
    done = plan(repo, "--format", "markdown")
    assert done.returncode == 0, done.stderr
    assert "Developer g expires 2025-07-01 (16 day(s) left)." in done.stdout.splitlines()
