"""What a reviewer reads of a pull request, built in process from two revisions of the example
network (test_plan_intent.py runs the installed `wgmesh plan` on real git repositories): the
reachability diff as text and JSON, the intent tests, and the Markdown summary with its Mermaid
diagram, parsed by Mermaid's own parser."""
from __future__ import annotations

import base64
import datetime
from types import SimpleNamespace

import pytest

from wgmesh_core import summary
from wgmesh_core.diff import HostChange, NetworkPlan, plan_change
from wgmesh_core.intent import verdict
from wgmesh_core.matrix import reach_diff
from wgmesh_core.source import TESTS_FILE, load_sls
from wgmesh_core.validate import Problem, load_network

from .conftest import PILLAR, TODAY, mermaid_block, parse_mermaid
from tests.conftest import example_network_data

BASE, HEAD = "1234567890abcdef" * 2 + "12345678", "fedcba0987654321" * 2 + "87654321"
TITLE = "## wgmesh plan `1234567890ab..fedcba098765`"
ALICE = {"address": "10.70.0.6", "public_key": "QUxJQ0UtcHVibGljLWtleS0wMDAwMDAwMDAwMDAwMDA=",
         "lan_access": ["c"], "expires": "2025-07-01"}


def example_tests() -> dict:
    return load_sls((PILLAR / TESTS_FILE).read_text(), TESTS_FILE)


def change(old_data, new_data, tests=None):
    """Everything `wgmesh plan` computes for a change, and its Markdown."""
    old = load_network(old_data) if old_data is not None else None
    new = load_network(new_data)
    results, broken = verdict(tests, new, TODAY) if tests is not None else ([], [])
    plan, diff = plan_change(old, new, TODAY), reach_diff(old, new, TODAY)
    text = summary.markdown(plan, diff, results, broken, old, new, BASE, HEAD, TODAY)
    return SimpleNamespace(old_data=old_data, old=old, new=new, plan=plan, diff=diff, results=results, broken=broken, markdown=text)


def key(n: int) -> str:
    return base64.b64encode(bytes([n]) * 32).decode()


@pytest.fixture
def narrowed():
    """Alice joins for LAN2 until July; e is narrowed to LAN2, which breaks four of the example's tests."""
    data = example_network_data()
    new = example_network_data()
    new["developers"]["alice"] = dict(ALICE)
    new["developers"]["e"]["lan_access"] = ["c"]
    return change(data, new, example_tests())


def test_the_text_diff_is_a_table_of_marks_then_a_line_per_reason(narrowed):
    assert summary.reach_diff_text(narrowed.diff) == [
        "reachability (+ becomes reachable, - stops, ~ another way):",
        "  from \\ to  a  LAN of a  z  c  LAN of c  developers",
        "  e          -  -",
        "  alice                   +  +  +         +",
        "  - e -> a: blocked by hub z's firewall: it forwards new connections only as the gateways' allow-lists "
        "admit them and between developers, and none admits 10.70.0.4 to 10.70.0.2",
        "  - e -> LAN of a: blocked by gateway a's allow-list: e's lan_access [c] does not include a, so e's client "
        "does not route 192.168.201.1 into the tunnel (AllowedIPs 10.70.0.0/16, 192.168.200.0/24)",
        "  + alice -> z: reaches via tunnel: alice -> z",
        "  + alice -> c: reaches via tunnel: alice -> z -> c",
        "  + alice -> LAN of c: reaches via tunnel: alice -> z -> c -> LAN of c; LAN of c sees 192.168.200.248 "
        "(c masquerades)",
        "  + alice -> developers: reaches via tunnel: alice -> z -> e"]
    assert summary.reach_diff_text(reach_diff(narrowed.new, narrowed.new, TODAY)) == ["reachability: unchanged"]


def test_alike_sources_are_one_row_naming_six_then_counting_the_rest():
    old = example_network_data()
    new = example_network_data()
    for index in range(8):
        new["developers"][f"dev{index}"] = {"address": f"10.70.0.{20 + index}", "public_key": key(index + 1),
                                            "lan_access": ["a"]}
    done = change(old, new)
    sources = "dev0, dev1, dev2, dev3, dev4, dev5 and 2 more"
    text = summary.reach_diff_text(done.diff)
    assert text[1:3] == [f"  from \\ to{' ' * (len(sources) - 9)}  z  a  LAN of a  developers",
                         f"  {sources}  +  +  +         +"]
    assert text[3] == f"  + {sources} -> z: reaches via tunnel: dev0 -> z"
    assert f"| {sources} | ➕ reach | ➕ reach | ➕ reach | ➕ reach |" in done.markdown
    # six are named in full
    del new["developers"]["dev6"], new["developers"]["dev7"]
    assert summary.reach_diff_text(change(old, new).diff)[2].startswith("  dev0, dev1, dev2, dev3, dev4, dev5  +")


def test_intent_text_counts_and_names_each_failing_test(narrowed):
    lines = summary.intent_text(narrowed.results)
    assert lines[0] == "intent tests: 20 pass, 4 fail"
    assert [line.split(" expected")[0] for line in lines[1:]] == [
        "  FAIL tests[2] e -> b", "  FAIL tests[4] e -> b:22/tcp", "  FAIL tests[19] (e in the Beijing office) e (in c's LAN) -> d",
        "  FAIL tests[21] e (in c's LAN) -> b"]


def test_the_json_of_a_change_and_of_a_test(narrowed):
    assert summary.reach_json(narrowed.diff)[0] == {
        "from": "e", "to": "a", "before": "reach via tunnel", "after": "blocked",
        "reason": "blocked by hub z's firewall: it forwards new connections only as the gateways' allow-lists admit "
                  "them and between developers, and none admits 10.70.0.4 to 10.70.0.2"}
    failed = next(t for t in summary.intent_json(narrowed.results) if t["test"] == "tests[19]")
    assert failed == {
        "test": "tests[19]", "name": "e in the Beijing office", "label": "e (in c's LAN) -> d",
        "expected": "reach via on-link", "predicted": "reach via tunnel", "passed": False,
        "reason": "reaches via tunnel: e -> z -> c -> d; e's tunnel routes 192.168.200.0/24 as specifically as the "
                  "office link does: LAN traffic hairpins through the hub (the route conflict); d sees "
                  "192.168.200.248 (c masquerades)",
        "path": ["e", "z", "c", "d"], "assumes": []}


def test_the_markdown_of_a_refused_change_reads_top_down(narrowed):
    lines = narrowed.markdown.splitlines()
    assert lines[:2] == [TITLE, ""]
    assert lines[2] == ("❌ **refused**: 4 intent test problem(s); 3 host(s) change (z, a, c); "
                        "evaluated as of 2025-06-15.")
    # failing tests first, in full (not folded), Markdown in the reasons escaped
    start = lines.index("**20 pass, 4 fail.**")
    assert lines[start + 2:start + 5] == [
        "| | test | expected | predicted |", "| --- | --- | --- | --- |",
        "| ❌ | tests[2]: `e -> b` | reach via tunnel | blocked by gateway a's allow-list: e's lan\\_access \\[c\\] "
        "does not include a, so e's client does not route 192.168.201.10 into the tunnel (AllowedIPs 10.70.0.0/16, "
        "192.168.200.0/24) |"]
    assert lines[start + 8].startswith("| ✅ | tests[0] the article's test: ping 192.168.200.244: `e -> d` | "
                                       "reach via tunnel | reaches via tunnel: e -> z -> c -> d;")
    assert "<details><summary>every test</summary>" not in lines
    assert lines[lines.index("### Reachability changes") + 2:][:5] == [
        "| from \\ to | a | LAN of a | z | c | LAN of c | developers |",
        "| --- | --- | --- | --- | --- | --- | --- |",
        "| e | ➖ blocked | ➖ blocked |  |  |  |  |",
        "| alice |  |  | ➕ reach | ➕ reach | ➕ reach | ➕ reach |", ""]
    assert ("- ➖ blocked `e -> LAN of a`: blocked by gateway a's allow-list: e's lan\\_access \\[c\\] does not include "
            "a, so e's client does not route 192.168.201.1 into the tunnel (AllowedIPs 10.70.0.0/16, 192.168.200.0/24)"
            in lines)
    assert "- ➕ reach `alice -> developers`: reaches via tunnel: alice -> z -> e" in lines
    hosts = lines.index("### Hosts")
    assert lines[hosts + 2:hosts + 8] == [
        "| host | role | change |", "| --- | --- | --- |",
        "| z | hub | +peer alice, +allow 10.70.0.6/32 -> 10.70.0.3/32, +allow 10.70.0.6/32 -> 192.168.200.0/24, "
        "-allow 10.70.0.4/32 -> 10.70.0.2/32, -allow 10.70.0.4/32 -> 192.168.201.0/24 |",
        "| a | gateway | -allow 10.70.0.4/32 |", "| c | gateway | +allow 10.70.0.6/32 |",
        "| r1 | lan_router | unchanged |"]
    assert lines[hosts + 8:hosts + 14] == ["", "<details><summary>rendered files that change</summary>", "",
                                           "z: `/etc/firewalld/direct.xml`", "", "```diff"]
    assert "Client configs that change (their owners re-import): e, alice." in lines
    manual = lines.index("Manual actions (a person must do these after the merge):")
    assert lines[manual + 1:manual + 4] == [
        "", "- `developer e: re-import the client config (salt-run wgmesh.client_config e)`",
        "- `developer alice: re-import the client config (salt-run wgmesh.client_config alice)`"]
    assert lines[-2:] == ["", "Developer alice expires 2025-07-01 (16 day(s) left)."]
    assert narrowed.markdown.endswith(".\n")


def skeleton(markdown: str) -> list[str]:
    """The blocks a Markdown renderer sees, in order: blank lines, headings, tables, lists, fenced
    blocks, folds and paragraphs (consecutive lines of one kind are one block)."""
    kinds, fence = [], None
    for line in markdown.split("\n"):
        if fence:
            fence = None if line == fence else fence
            continue
        if line.startswith("```"):
            fence = line[:len(line) - len(line.lstrip("`"))]
            kind = "fence"
        else:
            kind = ("blank" if not line else "heading" if line.startswith("#") else "table" if line.startswith("|")
                    else "list" if line.startswith("- ") else "fold" if "details>" in line else "text")
        if not kinds or kinds[-1] != kind or kind == "fence":
            kinds.append(kind)
    return kinds


def test_every_block_of_the_markdown_stands_apart(narrowed):
    """Headings, tables, lists and fences need blank lines around them to render as such."""
    blocks = skeleton(narrowed.markdown)
    assert blocks == ["heading", "blank", "text", "blank",
                      "heading", "blank", "text", "blank", "table", "blank",                 # intent tests
                      "heading", "blank", "table", "blank", "list", "blank",                 # reachability
                      "heading", "blank", "fence", "blank",                                  # the diagram
                      "heading", "blank", "table", "blank", "fold", "blank",                 # hosts
                      *["text", "blank", "fence", "blank"] * 4, "fold", "blank",
                      "text", "blank", "text", "blank", "list", "blank", "text", "blank"]
    assert [line[4:] for line in narrowed.markdown.splitlines() if line.startswith("### ")] == [
        "Intent tests", "Reachability changes", "The network after this change", "Hosts"]
    passing = change(narrowed.old_data, narrowed.old_data, example_tests()).markdown
    assert skeleton(passing)[4:12] == ["heading", "blank", "text", "blank", "fold", "blank", "table", "blank"]


def test_expiring_developers_are_listed_soonest_first():
    new = example_network_data()
    new["developers"]["e"]["expires"] = "2025-06-30"
    new["developers"]["f"]["expires"] = "2025-06-20"
    new["developers"]["alice"] = dict(ALICE, expires="2025-06-25")
    lines = change(example_network_data(), new).markdown.splitlines()
    assert lines[-6:] == ["", "Developer f expires 2025-06-20 (5 day(s) left).",
                          "", "Developer alice expires 2025-06-25 (10 day(s) left).",
                          "", "Developer e expires 2025-06-30 (15 day(s) left)."]


def test_when_every_test_passes_the_tests_fold_away():
    new = example_network_data()
    new["developers"]["alice"] = dict(ALICE)
    text = change(example_network_data(), new, example_tests()).markdown
    lines = text.splitlines()
    assert lines[2] == ("✅ **valid**: every intent test passes; 2 host(s) change (z, c); evaluated as of 2025-06-15.")
    start = lines.index("**24 pass, 0 fail.**")
    assert lines[start + 1:start + 5] == ["", "<details><summary>every test</summary>", "",
                                          "| | test | expected | predicted |"]
    assert lines[start + 5 + 1 + 24:start + 5 + 1 + 24 + 2] == ["", "</details>"]


def test_without_tests_or_changes_the_summary_says_so(tmp_path):
    data = example_network_data()
    done = change(data, data)
    lines = done.markdown.splitlines()
    _, vertices, edges, _ = diagram(done, tmp_path)
    assert not [ident for ident, (_, classes) in vertices.items() if classes]      # nothing marked
    assert not [edge for edge in edges if edge[3]]
    assert lines[2] == "✅ **valid**; 0 host(s) change; evaluated as of 2025-06-15."
    assert lines[lines.index("### Intent tests") + 2] == ("No intent tests (`tests.yaml`): add some to say what this "
                                                          "network must allow and forbid.")
    assert lines[lines.index("### Reachability changes") + 2] == "Nothing becomes reachable and nothing stops."
    assert lines[-6:] == ["| host | role | change |", "| --- | --- | --- |", "| z | hub | unchanged |",
                          "| a | gateway | unchanged |", "| c | gateway | unchanged |", "| r1 | lan_router | unchanged |"]


def test_a_broken_tests_file_lists_its_problems_instead_of_the_tests():
    data = example_network_data()
    done = change(data, data, {"tests": [{"from": "e", "to": "nowhere", "expect": "reach"}]})
    lines = done.markdown.splitlines()
    assert lines[2].startswith("❌ **refused**: 1 intent test problem(s); 0 host(s) change;")
    assert lines[lines.index("### Intent tests") + 2] == (
        "- `tests.yaml tests[0].to`: 'nowhere' is neither the hub, a gateway, a developer, a named LAN host nor an "
        "address")


def test_removed_hosts_and_developers_cut_off_are_listed():
    old = example_network_data()
    new = example_network_data()
    del new["gateways"]["a"]            # and with it r1's role, the LAN router of a's LAN
    new["gateways"]["c"]["lan_access"] = "none"
    new["developers"]["e"]["revoked"] = True
    del new["developers"]["f"]
    text = change(old, new).markdown
    lines = text.splitlines()
    assert "| a | none | -peer z, -allow 10.70.0.3/32, -allow 10.70.0.4/32, -allow 10.70.0.5/32 |" in lines
    assert "Developers cut off (revoked, expired or removed): e, f." in lines
    assert "Hosts that lose their role (the gate runs `wgmesh.absent` on them): a, r1." in lines
    assert "- ➖ blocked `a -> z`: a is not in this revision of the network" in lines
    assert "- ➖ blocked `e, f -> z, c, LAN of c`: developer e is revoked: the hub has no peer for it" in lines
    assert skeleton(text)[-6:] == ["fold", "blank", "text", "blank", "text", "blank"]


def test_a_refused_revision_lists_every_problem_as_plain_text():
    """A refused pull request's own words render as words: nothing Markdown or GitHub acts on."""
    problems = [Problem("developers.x", "bad `value` | <b>*x*</b> @team\n  [link](y) ~z_ {#}"),
                Problem("hub.end`point", "two")]
    assert summary.refused_markdown(BASE, HEAD, problems) == "\n".join([
        TITLE, "", "❌ **refused**: 2 problem(s); nothing is planned.", "",
        "- `developers.x`: bad \\`value\\` \\| \\<b>\\*x\\*\\</b> \\@team \\[link\\](y) \\~z\\_ \\{#\\}",
        "- `hub.endpoint`: two"]) + "\n"


def test_a_file_diff_is_fenced_longer_than_any_backticks_it_holds():
    diff = "--- a/x\n+++ b/x\n@@ -1 +1 @@\n-````\n+``\n"
    plan = NetworkPlan(hosts=[HostChange("z", "hub", file_diffs={"/etc/x": diff})], clients_changed=[],
                       clients_removed=[], expiring={})
    data = example_network_data()
    spec = load_network(data)
    text = summary.markdown(plan, reach_diff(spec, spec, TODAY), [], [], spec, spec, BASE, HEAD, TODAY)
    assert f"z: `/etc/x`\n\n`````diff\n{diff.rstrip()}\n`````\n\n</details>" in text


# --- the diagram ---------------------------------------------------------------------------------

def diagram(done, tmp_path):
    """The Markdown's Mermaid block, checked by Mermaid's parser: (text, vertices, edges, subgraphs)."""
    text = mermaid_block(done.markdown)
    parsed = parse_mermaid(text, tmp_path)
    assert parsed["type"] == "flowchart-v2"
    vertices = {ident: (label, classes) for ident, label, classes in parsed["vertices"]}
    return text, vertices, parsed["edges"], {ident: (title, nodes) for ident, title, nodes in parsed["subgraphs"]}


def test_the_diagram_marks_what_the_change_adds_alters_and_withdraws(narrowed, tmp_path):
    text, vertices, edges, subgraphs = diagram(narrowed, tmp_path)
    assert subgraphs == {"lan0": ("LAN 192.168.201.0/24 · route", ["gw_lan0"]),
                         "lan1": ("LAN 192.168.200.0/24 · masquerade", ["gw_lan1"])}
    assert vertices["hub"] == ("z · hub<br>10.70.0.1", ["changed"])
    assert vertices["gw_lan0"] == ("a · gateway<br>10.70.0.2", ["changed"])
    assert vertices["dev0"] == ("e<br>10.70.0.4", ["changed"])
    assert vertices["dev1"] == ("alice<br>10.70.0.6 · until 2025-07-01", ["added"])
    assert vertices["dev2"] == ("f<br>10.70.0.5", [])
    added, removed = summary.EDGE_STYLES["added"], summary.EDGE_STYLES["removed"]
    styles = [style for *_, style in edges]
    assert [(a, b, label) for a, b, label, _ in edges] == [
        ("gw_lan0", "hub", ""), ("gw_lan1", "hub", ""), ("gw_lan1", "lan0", "allowed"),
        ("dev0", "hub", ""), ("dev0", "lan1", "allowed"), ("dev0", "lan0", "no longer"),
        ("dev1", "hub", ""), ("dev1", "lan1", "allowed"),
        ("dev2", "hub", ""), ("dev2", "lan0", "allowed"), ("dev2", "lan1", "allowed")]
    # the withdrawn access, the new developer's line to the hub and her access are styled; nothing else
    assert [index for index, style in enumerate(styles) if style] == [5, 6, 7]
    assert text.splitlines()[-3:] == [f"  linkStyle 5 {removed}", f"  linkStyle 6 {added}", f"  linkStyle 7 {added}"]
    assert "  gw_lan0 === hub" in text and "  dev0 --- hub" in text and '  hub(("z · hub<br/>10.70.0.1"))' in text


def test_the_diagram_of_removed_revoked_and_expired_entries(tmp_path):
    old = example_network_data()
    old["developers"]["alice"] = dict(ALICE, expires="2025-06-10", lan_access=["a"])
    old["developers"]["g"] = {"address": "10.70.0.7", "public_key": key(7), "lan_access": "none"}
    new = example_network_data()
    new["gateways"]["c"]["revoked"] = True
    new["gateways"]["c"]["lan_access"] = new["gateways"]["a"]["lan_access"] = "none"
    new["developers"]["e"]["revoked"] = True
    new["developers"]["e"]["lan_access"] = new["developers"]["f"]["lan_access"] = ["a"]
    new["developers"]["alice"] = dict(ALICE, expires="2025-06-10", lan_access=["a"])
    text, vertices, edges, subgraphs = diagram(change(old, new), tmp_path)
    assert vertices["gw_lan1"] == ("c · gateway<br>10.70.0.3 · revoked", ["removed"])
    assert subgraphs["lan1"] == ("LAN 192.168.200.0/24 · masquerade", ["gw_lan1"])
    labels = {label: classes for label, classes in vertices.values()}
    assert labels["e<br>10.70.0.4 · revoked"] == ["removed"]
    assert labels["g<br>10.70.0.7 · removed"] == ["removed"]
    assert labels["alice<br>10.70.0.6 · expired 2025-06-10"] == []      # expired already before: unchanged
    assert labels["f<br>10.70.0.5"] == ["changed"]
    # a revoked gateway and the developers that are gone have no lines; f keeps a, loses c
    ident_f = next(ident for ident, (label, _) in vertices.items() if label.startswith("f<br>"))
    assert sorted((b, label) for a, b, label, _ in edges if a == ident_f) == [
        ("hub", ""), ("lan0", "allowed"), ("lan1", "no longer")]
    gone = [a for a, *_ in edges if vertices[a][0].startswith(("e<br>", "g<br>", "alice<br>", "c ·"))]
    assert gone == []


def test_the_diagram_of_a_removed_gateway(tmp_path):
    new = example_network_data()
    del new["gateways"]["c"]
    new["developers"]["e"]["lan_access"] = new["developers"]["f"]["lan_access"] = ["a"]
    text, vertices, edges, subgraphs = diagram(change(example_network_data(), new), tmp_path)
    assert vertices["gone0"] == ("c · gateway removed", ["removed"])
    assert list(subgraphs) == ["lan0"]


def test_a_first_deployment_draws_everything_added(tmp_path):
    text, vertices, edges, _ = diagram(change(None, example_network_data()), tmp_path)
    assert {ident: classes for ident, (_, classes) in vertices.items() if not ident.startswith("lan")} == {
        "hub": ["changed"], "gw_lan0": ["added"], "gw_lan1": ["added"], "dev0": ["added"], "dev1": ["added"]}
    assert all(style for *_, style in edges)          # every line is new


def test_developers_beyond_the_drawn_ones_are_one_node_with_counts(tmp_path):
    old = example_network_data()
    for index in range(30):
        old["developers"][f"dev{index:02d}"] = {
            "address": f"10.70.1.{index + 1}", "public_key": key(index + 10),
            "lan_access": ["a"] if index % 3 else "all", **({"revoked": True} if index == 29 else {}),
            **({"expires": "2025-06-01"} if index == 28 else {})}
    new = example_network_data()
    new["developers"] = dict(old["developers"])
    new["developers"]["dev05"] = dict(old["developers"]["dev05"], lan_access="none")
    new["developers"]["dev27"] = dict(old["developers"]["dev27"], expires="2026-01-01")   # reaches as before
    text, vertices, edges, _ = diagram(change(old, new), tmp_path)
    drawn = [label.split("<br>")[0] for ident, (label, _) in vertices.items() if ident.startswith("dev")
             and ident != "devmore"]
    assert len(drawn) == summary.MAX_DRAWN_DEVELOPERS and drawn[:2] == ["dev05", "dev27"]   # the changed ones first
    assert vertices["dev1"] == ("dev27<br>10.70.1.28 · until 2026-01-01", ["changed"])
    rest = 32 - summary.MAX_DRAWN_DEVELOPERS
    assert vertices["devmore"] == (f"{rest} more developers<br>{rest - 2} active, unchanged", [])   # dev28, dev29
    assert f'  devmore(["{rest} more developers<br/>{rest - 2} active, unchanged"])' in text.splitlines()
    more = {(b, label) for a, b, label, _ in edges if a == "devmore"}
    in_rest = [f"dev{i:02d}" for i in range(28) if f"dev{i:02d}" not in drawn]
    to_a = len(in_rest)
    to_c = sum(1 for name in in_rest if int(name[3:]) % 3 == 0)
    assert more == {("hub", ""), ("lan0", f"{to_a} allowed"), ("lan1", f"{to_c} allowed")}


def test_what_was_revoked_already_is_not_marked_again(tmp_path):
    old = example_network_data()
    old["gateways"]["c"]["revoked"] = True
    old["gateways"]["c"]["lan_access"] = "none"
    old["developers"]["e"]["revoked"] = True
    old["developers"]["e"]["lan_access"] = old["developers"]["f"]["lan_access"] = ["a"]
    new = example_network_data()
    new["gateways"] = old["gateways"]
    new["developers"] = dict(old["developers"], alice=dict(ALICE, lan_access=["a"]))
    _, vertices, _, _ = diagram(change(old, new), tmp_path)
    assert vertices["gw_lan1"] == ("c · gateway<br>10.70.0.3 · revoked", [])
    assert {label: classes for label, classes in vertices.values()}["e<br>10.70.0.4 · revoked"] == []


def test_a_refusals_own_words_stay_inside_their_code_span():
    """A file name or key of the pull request's own, with line breaks and control characters,
    cannot end its code span and write Markdown of its choosing (a heading, a verdict, a mention)."""
    where = "wgmesh/x\n\n## wgmesh plan: ✅ **valid** cc @security-team\n\n\x1b[2J\x00`.sls"
    text = summary.refused_markdown("b" * 40, "c" * 40, [Problem(where, "bad")])
    lines = [line for line in text.splitlines() if "security-team" in line]
    assert lines == ["- `wgmesh/x ## wgmesh plan: ✅ **valid** cc @security-team \\x1b[2J\\x00.sls`: bad"], text
    assert "\x1b" not in text and "\x00" not in text and not any(line.startswith("## wgmesh plan: ✅") for line in text.splitlines())


@pytest.mark.parametrize("named", ["wgmesh/x\x1b]0;pwned\x07.sls", "wgmesh/x\udcff.sls"])
def test_a_file_name_inside_a_problems_text_is_printable_in_the_markdown(named):
    """A problem's text names files too ("defined in both ... and ..."): a terminal escape or a
    name that is not UTF-8 (read with surrogate escapes) is written as escapes, so the summary
    can be printed and encoded."""
    text = summary.refused_markdown("b" * 40, "c" * 40, [Problem("wgmesh.mtu", f"defined in both a.sls and {named}")])
    (line,) = [line for line in text.splitlines() if "defined in both" in line]
    assert line.isprintable() and ("\\\\x1b" in line or "\\\\udcff" in line), line
    text.encode("utf-8")
