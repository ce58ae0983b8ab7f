"""source: the pillar repository checked as data (hostile input) before Salt compiles it, and
what Salt compiled checked again (``agreed_network``)."""
from __future__ import annotations

import gc
import json
import os
import shutil

import pytest

from wgmesh_core.source import (MAX_MINIONS_FILE_BYTES, MAX_TESTS_FILE_BYTES, MINE_FUNCTIONS, Limits, agreed_network,
                                collector_paused, first_difference, hosts_named, load_sls, plain, read_file_network,
                                read_tree, size_problems)
from wgmesh_core.validate import InvalidNetwork

from .conftest import PILLAR

KEY = "0VooFEp8ZdpZp3P7BPa2W3piw+eu/6cyUGpSUWZp4HA="
TOP_KEY_RULE = ("is not allowed (only 'wgmesh', 'mine_functions' and the keys the operator allows: "
                "wgmesh_gitops:allowed_pillar_keys on the master, --allow-key for wgmesh)")


@pytest.fixture
def tree(tmp_path):
    """A copy of the example pillar to break."""
    root = tmp_path / "pillar"
    shutil.copytree(PILLAR, root)
    return root


def problems(root, **kwargs) -> list[str]:
    with pytest.raises(InvalidNetwork) as info:
        read_tree(root, **kwargs)
    return [str(p) for p in info.value.problems]


def test_the_example_tree_is_every_sls_checked(tree):
    read = read_tree(tree)
    assert sorted(read.files) == ["top.sls", "wgmesh/developers.sls", "wgmesh/mine.sls", "wgmesh/network.sls"]
    assert read.root == tree
    assert read.top_text == (tree / "top.sls").read_text()
    assert read.tests == load_sls((tree / "tests.yaml").read_text(), "tests.yaml") and read.tests["tests"]
    assert read.listed_minions == []
    assert read.named_minions() == {"z", "a", "c", "r1"}


def test_named_minions_follow_the_network_however_it_is_split(tree):
    (tree / "wgmesh" / "more.sls").write_text("#!yaml\nwgmesh:\n  gateways:\n    g:\n      lan_router: r9\n")
    assert read_tree(tree).named_minions() == {"z", "a", "c", "r1", "g", "r9"}


def test_forget_graphs_drops_every_node_graph(tree):
    read = read_tree(tree)
    read.forget_graphs()
    assert all(sls.root is None and sls.loader is None and sls.paths == {} and sls.text == ""
               for sls in read.files.values())
    assert read.named_minions() == set()


@pytest.mark.parametrize("network, names", [
    ({"hub": {"minion": "z"}, "gateways": {"a": {"lan_router": "r1"}, "c": {}, 7: "x"}}, {"z", "a", "r1", "c", "7"}),
    ({"hub": {"minion": 5}, "gateways": ["a"]}, set()),
    ({"hub": "z", "gateways": {"a": {"lan_router": ["r1"]}}}, {"a"}),
    ("wgmesh", set()),
    (None, set()),
])
def test_hosts_named_reads_only_what_is_well_formed(network, names):
    assert hosts_named(network) == names


def test_a_tree_that_is_not_there_or_empty(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file or directory"):
        read_tree(tmp_path / "nope")
    (tmp_path / "file").write_text("x")
    with pytest.raises(FileNotFoundError, match="file: not a directory"):
        read_tree(tmp_path / "file")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("#!yaml\n")
    with pytest.raises(FileNotFoundError, match="empty: no .sls files"):
        read_tree(tmp_path / "empty")


def test_symbolic_links_are_refused_wherever_they_are(tree, tmp_path):
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "x.sls").write_text("#!yaml\nwgmesh: {mtu: 1}\n")
    os.symlink(tmp_path / "outside", tree / "linked")
    os.symlink(tmp_path / "outside" / "x.sls", tree / "wgmesh" / "evil.sls")
    os.symlink("/etc/passwd", tree / "notes.txt")
    assert problems(tree) == ["linked: symbolic links are not allowed in the pillar",
                              "notes.txt: symbolic links are not allowed in the pillar",
                              "wgmesh/evil.sls: symbolic links are not allowed in the pillar"]


def test_the_tests_file_may_not_be_a_link(tree, tmp_path):
    (tree / "tests.yaml").rename(tmp_path / "t.yaml")
    os.symlink(tmp_path / "t.yaml", tree / "tests.yaml")
    assert problems(tree) == ["tests.yaml: symbolic links are not allowed in the pillar"]


def test_git_metadata_and_other_files_are_not_read(tree):
    (tree / ".git").mkdir()
    (tree / ".git" / "x.sls").write_text("{{ not yaml }}")
    (tree / "notes.md").write_text("{{ not yaml }}")
    (tree / "dir.sls").mkdir()
    assert "wgmesh/network.sls" in read_tree(tree).files


def test_every_file_is_checked_and_every_problem_listed(tree):
    (tree / "wgmesh" / "a.sls").write_text("#!jinja\nwgmesh: {}\n")
    (tree / "wgmesh" / "b.sls").write_text("#!yaml\nwgmesh:\n  mtu: 1\n  mtu: 2\n")
    assert [p.split(":")[0] for p in problems(tree)] == ["wgmesh/a.sls", "wgmesh/b.sls"]


def test_a_file_that_is_not_utf8_is_named(tree):
    (tree / "wgmesh" / "bad.sls").write_bytes(b"#!yaml\nwgmesh: {contact: caf\xe9}\n")
    assert problems(tree) == ["wgmesh/bad.sls: is not UTF-8 text (byte 28)"]


def test_the_size_limits_refuse_the_tree_unread(tree):
    total = sum(p.stat().st_size for p in tree.rglob("*.sls"))
    biggest = max(tree.rglob("*.sls"), key=lambda p: p.stat().st_size)
    assert problems(tree, limits=Limits(max_bytes=total - 1)) == [
        f"{biggest.relative_to(tree)}: refused unread: {biggest.stat().st_size} bytes, and the pillar's SLS files "
        f"{total} bytes together, more than the limit of {total - 1}"]
    assert read_tree(tree, limits=Limits(max_bytes=total)).files
    assert problems(tree, limits=Limits(max_files=3)) == [f"{tree}: 4 SLS files; at most 3 are read"]
    assert read_tree(tree, limits=Limits(max_files=4)).files


def test_the_alias_limit_applies_to_every_sls_file(tree):
    (tree / "wgmesh" / "x.sls").write_text("#!yaml\nteam:\n  a: &x [1, 2]\n  b: *x\n")
    assert read_tree(tree, ["team"], Limits(max_alias_values=3)).files["wgmesh/x.sls"]
    assert problems(tree, allowed_keys=["team"], limits=Limits(max_alias_values=2)) == [
        "wgmesh/x.sls:2: refused: its aliases expand to more than 2 values beyond the ones written (an alias bomb?); "
        "write the values out"]


def test_a_tree_without_a_top_file_has_no_top_text(tree):
    (tree / "top.sls").unlink()
    assert read_tree(tree).top_text == ""


def test_size_problems_name_the_biggest_file():
    assert size_problems({"a": 5, "b": 7, "c": 1}, "here", Limits(max_bytes=13)) == []
    [problem] = size_problems({"a": 5, "b": 7, "c": 1}, "here", Limits(max_bytes=10))
    assert str(problem) == ("b: refused unread: 7 bytes, and the pillar's SLS files 13 bytes together, "
                            "more than the limit of 10")


@pytest.mark.parametrize("text, problem", [
    ("#!yaml\nschedule: {x: {function: cmd.run}}\n", "wgmesh/x.sls:2: top-level pillar key 'schedule' " + TOP_KEY_RULE),
    ("#!yaml\nmine_functions: {x: {mine_function: cmd.run, cmd: id}}\n",
     f"wgmesh/x.sls:2: mine_functions must be exactly {json.dumps(MINE_FUNCTIONS)} "
     "(other mine functions run commands on every minion)"),
    ("#!yaml\ninclude: wgmesh.network\n", "wgmesh/x.sls:2: include must be a list of SLS names"),
    ("#!yaml\ninclude: [wgmesh.network, {x: 1}]\n", "wgmesh/x.sls:2: include must be a list of SLS names"),
])
def test_top_level_keys_are_wgmesh_the_mine_entry_and_includes(tree, text, problem):
    (tree / "wgmesh" / "x.sls").write_text(text)
    assert problems(tree) == [problem]


def test_the_operator_may_allow_more_top_level_keys(tree):
    (tree / "wgmesh" / "x.sls").write_text("#!yaml\nteam: {lead: e}\ninclude: [wgmesh.network]\n")
    assert problems(tree) == ["wgmesh/x.sls:2: top-level pillar key 'team' " + TOP_KEY_RULE]
    assert "wgmesh/x.sls" in read_tree(tree, allowed_keys=["team"]).files


def test_the_top_file_is_not_checked_for_pillar_keys(tree):
    assert "base" in read_tree(tree).files["top.sls"].top_keys()


def test_an_entry_defined_in_two_files_is_refused(tree):
    (tree / "wgmesh" / "x.sls").write_text("#!yaml\nwgmesh:\n  developers:\n    e: {address: 10.70.0.9}\n"
                                           "    g: {address: 10.70.0.8}\n  mtu: 1400\ninclude: [wgmesh.network]\n")
    assert sorted(problems(tree)) == [
        "wgmesh.developers.e.address: defined in both wgmesh/developers.sls and wgmesh/x.sls: define each entry in "
        "one file only",
        "wgmesh.mtu: defined in both wgmesh/network.sls and wgmesh/x.sls: define each entry in one file only"]


def test_a_mapping_split_between_files_is_fine_but_a_list_is_not(tree):
    (tree / "wgmesh" / "x.sls").write_text("#!yaml\nwgmesh:\n  gateways:\n    c:\n      lan_access: all\n")
    assert problems(tree) == ["wgmesh.gateways.c.lan_access: defined in both wgmesh/network.sls and wgmesh/x.sls: "
                              "define each entry in one file only"]
    (tree / "wgmesh" / "x.sls").write_text("#!yaml\nwgmesh:\n  gateways:\n    g: {address: 10.70.0.9}\n")
    assert read_tree(tree).named_minions() >= {"g"}
    (tree / "wgmesh" / "x.sls").write_text("#!yaml\nwgmesh:\n  developers:\n    e: [x]\n")
    assert problems(tree)[0].startswith("wgmesh.developers.e: defined in both wgmesh/developers.sls and wgmesh/x.sls")


def test_several_files_may_each_include_others(tree):
    for name in ("x", "y"):
        (tree / "wgmesh" / f"{name}.sls").write_text("#!yaml\ninclude: [wgmesh.network]\n")
    assert {"wgmesh/x.sls", "wgmesh/y.sls"} <= set(read_tree(tree).files)


def test_the_top_file_may_repeat_keys_of_other_files(tree):
    (tree / "top.sls").write_text("#!yaml\nbase:\n  '*': [wgmesh.network, wgmesh.developers, wgmesh.mine]\n"
                                  "wgmesh: {}\n")
    assert read_tree(tree).files["top.sls"].top_keys().keys() == {"base", "wgmesh"}


def test_minions_txt_lists_ids_with_comments(tree):
    (tree / "minions.txt").write_text("# minions to compile for\nz\n  r2   # the new LAN router (#12)\n\nhost-3\n")
    assert read_tree(tree).listed_minions == ["z", "r2", "host-3"]
    (tree / "minions.txt").write_bytes(b"z\nr\xff2\n")        # a stray byte is read, not a crash
    assert read_tree(tree).listed_minions == ["z", "r\ufffd2"]


def test_minions_txt_is_bounded_and_printable(tree):
    (tree / "minions.txt").write_text("z\nr2\x1b[2J\n")
    assert problems(tree) == ["minions.txt: minion id 'r2\\x1b[2J' has control characters"]
    (tree / "minions.txt").write_text("z\n" * (MAX_MINIONS_FILE_BYTES // 2))
    assert len(read_tree(tree).listed_minions) == MAX_MINIONS_FILE_BYTES // 2
    (tree / "minions.txt").write_text("z" * (MAX_MINIONS_FILE_BYTES + 1))
    assert problems(tree) == [f"minions.txt: larger than {MAX_MINIONS_FILE_BYTES} bytes"]


def test_the_tests_file_is_bounded_and_utf8(tree):
    (tree / "tests.yaml").write_bytes(b"#!yaml\nhosts: {b\xff: 1}\n")
    assert problems(tree) == ["tests.yaml: is not UTF-8 text (byte 16)"]
    (tree / "tests.yaml").write_text("#!yaml\n" + "#" * MAX_TESTS_FILE_BYTES)
    assert problems(tree) == [f"tests.yaml: larger than {MAX_TESTS_FILE_BYTES} bytes"]
    (tree / "tests.yaml").write_text("#!yaml\nhosts: &x {b: 1}\ntests: [*x, *x]\n")
    assert problems(tree, limits=Limits(max_alias_values=3))[0].startswith("tests.yaml:2: refused: its aliases")
    (tree / "tests.yaml").write_text("#!yaml\n" + "#" * (MAX_TESTS_FILE_BYTES - 8) + "\n")
    assert read_tree(tree).tests is None


# --- one file on its own ---------------------------------------------------------------------

def test_read_file_network_is_the_wgmesh_value_of_one_file(tmp_path):
    path = tmp_path / "one.sls"
    path.write_text("#!yaml\nwgmesh:\n  mtu: 1400\nmine_functions: " + json.dumps(MINE_FUNCTIONS) + "\n")
    assert read_file_network(path) == {"mtu": 1400}
    assert read_file_network(path, Limits(max_bytes=path.stat().st_size)) == {"mtu": 1400}
    with pytest.raises(InvalidNetwork) as info:
        read_file_network(path, Limits(max_bytes=path.stat().st_size - 1))
    limit = path.stat().st_size - 1
    assert [str(p) for p in info.value.problems] == [f"{path}: larger than the limit of {limit} bytes"]


def test_read_file_network_applies_the_limits_given(tmp_path):
    path = tmp_path / "one.sls"
    path.write_text("#!yaml\nwgmesh:\n  a: &x [1, 2]\n  b: *x\n")
    assert read_file_network(path, Limits(max_alias_values=3)) == {"a": [1, 2], "b": [1, 2]}
    with pytest.raises(InvalidNetwork) as info:
        read_file_network(path, Limits(max_alias_values=2))
    assert "its aliases expand to more than 2 values" in str(info.value)


@pytest.mark.parametrize("text, problem", [
    ("#!yaml\nmtu: 1400\n", "{path}:2: top-level pillar key 'mtu' " + TOP_KEY_RULE),
    ("#!yaml\ninclude: [a]\n", "{path}: no 'wgmesh' key"),
    ("#!yaml\nwgmesh: {a: '{{ x }}'}\n", "{path}:2: template syntax '{{{{' is not allowed: the pillar is data "
                                        "and is never rendered as a template"),
    ("#!yaml\nwgmesh: {contact: \"caf\xe9\"}\n", None),
])
def test_read_file_network_refusals(tmp_path, text, problem):
    path = tmp_path / "one.sls"
    path.write_bytes(text.encode("latin-1"))
    if problem is None:   # not UTF-8: read with a replacement character, never an exception
        assert read_file_network(path) == {"contact": "caf\ufffd"}
        return
    with pytest.raises(InvalidNetwork) as info:
        read_file_network(path)
    assert [str(p) for p in info.value.problems] == [problem.format(path=path)]


# --- what Salt compiled ----------------------------------------------------------------------

NETWORK = {"hub": {"minion": "z"}, "gateways": {"a": {"lan_router": "r1"}}, "mtu": 1280}


def compiled(**pillars):
    return {minion: dict(pillar) for minion, pillar in pillars.items()}


def refused(pillars, **kwargs) -> list[str]:
    with pytest.raises(InvalidNetwork) as info:
        agreed_network(pillars, **kwargs)
    return [str(p) for p in info.value.problems]


def test_the_network_every_minion_gets_is_agreed():
    mine = {"mine_functions": MINE_FUNCTIONS}
    assert agreed_network(compiled(z={"wgmesh": NETWORK, **mine}, a={"wgmesh": dict(NETWORK), **mine},
                                   other={})) == NETWORK


def test_minions_that_disagree_are_named_against_the_majority():
    other = {**NETWORK, "mtu": 1400}
    assert refused(compiled(z={"wgmesh": NETWORK}, a={"wgmesh": NETWORK}, r1={"wgmesh": other})) == [
        "top.sls: minion r1: gets a different 'wgmesh' pillar from a, z (wgmesh.mtu: 1400 vs 1280): every minion must "
        "get the same network"]


def test_a_host_of_the_network_without_the_pillar_is_refused():
    assert refused(compiled(z={"wgmesh": NETWORK}, a={}, r1={"other": 1}, x={})) == [
        "minion r1: 'other': top-level pillar key 'other' " + TOP_KEY_RULE,
        "top.sls: minion a: is a host of the network but gets no 'wgmesh' pillar",
        "top.sls: minion r1: is a host of the network but gets no 'wgmesh' pillar"]


def test_no_minion_with_the_network_is_refused():
    assert refused(compiled(z={}, a={})) == ["top.sls: no minion gets a 'wgmesh' pillar"]


def test_compile_errors_and_extra_keys_are_named_per_minion():
    assert refused(compiled(z={"wgmesh": NETWORK, "_errors": ["Rendering SLS 'x' failed:\n  line 3"],
                               "mine_functions": {"x": {"mine_function": "cmd.run"}}})) == [
        "minion z: Salt's pillar compile failed: Rendering SLS 'x' failed: line 3",
        f"minion z: mine_functions: differs from what wgmesh sets ({json.dumps(MINE_FUNCTIONS)})"]
    assert agreed_network(compiled(z={"wgmesh": NETWORK, "team": 1, "_errors": []}), allowed_keys=["team"]) == NETWORK


def test_every_problem_of_a_minion_is_kept():
    allow = {"allowed_keys": ["wgmesh_host_keys"]}
    assert refused(compiled(z={"_errors": ["boom"], "wgmesh": NETWORK, "wgmesh_host_keys": {"a": 5}}), **allow) == [
        "minion z: Salt's pillar compile failed: boom", "minion z: wgmesh_host_keys.a: not a key"]


def test_host_keys_riding_along_are_checked():
    """wgmesh_host_keys rides along where the operator allows it; its keys are checked all the same."""
    allow = {"allowed_keys": ["wgmesh_host_keys"]}
    assert agreed_network(compiled(z={"wgmesh": NETWORK, "wgmesh_host_keys": {"z": KEY}}), **allow) == NETWORK
    assert refused(compiled(z={"wgmesh": NETWORK, "wgmesh_host_keys": ["z"]}), **allow) == [
        "minion z: wgmesh_host_keys: must map minion ids to public keys"]
    problems_ = refused(compiled(z={"wgmesh": NETWORK, "wgmesh_host_keys": {"a": 5, "b": "short", "z": KEY}}), **allow)
    assert problems_[0] == "minion z: wgmesh_host_keys.a: not a key"
    assert problems_[1].startswith("minion z: wgmesh_host_keys.b: 'short'") and len(problems_) == 2


def test_first_difference_names_the_path():
    assert first_difference({"a": {"b": 1, "c": 2}}, {"a": {"b": 1, "c": 3}}) == "wgmesh.a.c: 2 vs 3"
    assert first_difference({"a": 1}, {"a": 1, "b": 2}) == "wgmesh.b: missing vs set"
    assert first_difference({"a": 1, "b": 2}, {"a": 1}) == "wgmesh.b: set vs missing"
    assert first_difference({1: "x", "0": "y"}, {1: "x", "0": "z"}) == "wgmesh.0: 'y' vs 'z'"   # keys of any type
    assert first_difference({"a": 1}, 5) == "wgmesh: {'a': 1} vs 5"           # a mapping against anything else
    assert first_difference("a", {"a": 1}) == "wgmesh: 'a' vs {'a': 1}"
    assert first_difference([1], "x" * 100, "top") == "top: [1] vs '" + "x" * 59 + "...'"


def test_plain_turns_salts_values_into_plain_ones():
    from collections import OrderedDict
    import datetime
    value = OrderedDict([(1, (1, [2.5, None, True])), ("d", datetime.date(2025, 1, 2)), ("s", b"x")])
    assert plain(value) == {"1": [1, [2.5, None, True]], "d": "2025-01-02", "s": "b'x'"}
    assert type(plain(value)) is dict


def test_the_cycle_collector_is_paused_and_restored():
    assert gc.isenabled()
    with collector_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()
    try:
        with collector_paused():
            pass
        assert not gc.isenabled()          # left as it was found
    finally:
        gc.enable()
    with pytest.raises(RuntimeError), collector_paused():
        raise RuntimeError
    assert gc.isenabled()


def test_pauses_that_overlap_and_end_in_any_order_leave_the_collector_as_the_first_found_it():
    """Two jobs of a minion running in threads: the second starts while the first pauses the
    collector, the first ends before it. The collector stays off until the last ends, then is on."""
    first, second = collector_paused(), collector_paused()
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)
    assert not gc.isenabled()
    second.__exit__(None, None, None)
    assert gc.isenabled()
    gc.disable()
    try:
        first, second = collector_paused(), collector_paused()
        first.__enter__()
        second.__enter__()
        first.__exit__(None, None, None)
        second.__exit__(None, None, None)
        assert not gc.isenabled()          # it was off when the first began
    finally:
        gc.enable()


def test_pauses_in_many_threads_leave_the_collector_on():
    """Four threads pausing 300 times each, a thread switch every few bytecodes, 100 times: each
    round must end with the collector on (two checks of gc.isenabled() left it off in about one
    round in ten here)."""
    import sys
    import threading

    def job():
        for _ in range(300):
            with collector_paused():
                sum(range(20))
    interval = sys.getswitchinterval()
    left_off = 0
    try:
        for _ in range(100):
            sys.setswitchinterval(1e-6)
            threads = [threading.Thread(target=job) for _ in range(4)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            sys.setswitchinterval(interval)
            left_off += not gc.isenabled()
            gc.enable()
    finally:
        sys.setswitchinterval(interval)
    assert left_off == 0
