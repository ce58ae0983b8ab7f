"""jsondata: an SLS file of the pillar repository written as ``#!json`` (hostile input).

What JSON itself leaves open is refused, naming the file (and the line where it can be told):
a key written twice in one object, NaN/Infinity and numbers read as infinity, strings that are
not Unicode text, nesting past any pillar's; and a tree may mix YAML and JSON files with the
same rules across them (an entry defined in one file only)."""
from __future__ import annotations

import json
import shutil

import pytest

from wgmesh_core.jsondata import MAX_DEPTH, JsonSlsFile, dump_json_sls, parse_json_sls
from wgmesh_core.source import parse_file, read_file_network, read_tree
from wgmesh_core.validate import InvalidNetwork
from wgmesh_core.yamldata import dump_sls, parse_sls

from tests.onboard.conftest import PILLAR

DEVELOPERS = {"wgmesh": {"developers": {
    "e": {"address": "10.70.0.4", "public_key": "MyeHCD9sVXMXPgyEY79Yif8QskCjqm+SoJqmLXHN1RM=", "lan_access": ["a", "c"]},
    "f": {"address": "10.70.0.5", "public_key": "bWVzaC1mLWtleS0wMDAwMDAwMDAwMDAwMDAwMDAwMDA=", "expires": "2027-06-30"},
}}}


def refusals(text: str) -> list[str]:
    with pytest.raises(InvalidNetwork) as info:
        parse_json_sls(text, "x.sls")
    return [str(p) for p in info.value.problems]


def test_a_json_file_is_its_data_with_the_key_paths_a_yaml_file_of_it_has():
    text = dump_json_sls(DEVELOPERS)
    sls = parse_file(text, "d.sls")
    assert type(sls) is JsonSlsFile and sls.root == DEVELOPERS
    as_yaml = parse_sls(dump_sls(DEVELOPERS), "d.sls")
    assert sls.paths == as_yaml.paths        # the overlap check across files sees the same entries
    assert sls.child(sls.root, "wgmesh", "developers", "e", "address") == "10.70.0.4"
    assert sls.child(sls.root, "wgmesh", "nothing", "x") is None and sls.child("x", "y") is None
    assert sls.top_keys() == {"wgmesh": (3, DEVELOPERS["wgmesh"])}


def test_the_written_file_has_a_developer_per_line():
    lines = dump_json_sls(DEVELOPERS).splitlines()
    assert lines[0] == "#!json" and lines[1] == "{" and lines[-1] == "}"
    assert lines[4] == '      "e": ' + json.dumps(DEVELOPERS["wgmesh"]["developers"]["e"]) + ","
    assert lines[5] == '      "f": ' + json.dumps(DEVELOPERS["wgmesh"]["developers"]["f"])
    assert json.loads("\n".join(lines[1:])) == DEVELOPERS


def test_an_empty_file_is_no_data_but_its_first_line_must_end():
    empty = parse_json_sls("#!json\n  \n", "x.sls")
    assert empty.root is None and empty.name == "x.sls" and empty.paths == {} and empty.top_keys() == {}
    assert parse_json_sls("#!json  \r\n", "x.sls").root is None
    assert refusals("#!json") == ["x.sls:1: no line break after '#!json': Salt's json renderer would read the "
                                  "line itself as the JSON"]


def test_a_developer_written_twice_is_refused_at_its_second_line():
    text = '#!json\n{"wgmesh": {"developers": {\n  "e": {"address": "10.70.0.4"},\n  "e": {"address": "10.70.0.9"}\n}}}\n'
    assert refusals(text) == ["x.sls:4: duplicate key 'e' in the object of the keys 'e, e': a key may appear "
                              "once per object"]


def test_a_key_twice_where_the_line_cannot_be_told_names_the_object():
    text = '#!json\n{"a": {"address": "1", "x": 1}, "b": {"address": "2", "address": "3"}}\n'
    assert refusals(text) == ["x.sls: duplicate key 'address' in the object of the keys 'address, address': "
                              "a key may appear once per object"]


def test_the_duplicate_named_is_the_repeated_key_and_at_most_20_are_listed():
    assert refusals('#!json\n{"x": 1, "y": 2, "y": 3}\n') == [
        "x.sls:2: duplicate key 'y' in the object of the keys 'x, y, y': a key may appear once per object"]
    assert refusals('#!json\n{"x": 1, "y": 2, "z": 3, "y": 4, "x": 5}\n') == [     # y is the first written again
        "x.sls:2: duplicate key 'y' in the object of the keys 'x, y, z, y, x': a key may appear once per object"]
    many = ", ".join(f'"d{n}": {{"k": 1, "k": 2}}' for n in range(25))
    assert len(refusals(f"#!json\n{{{many}}}\n")) == 20


def test_a_top_level_key_written_with_an_escape_is_refused_at_the_objects_line(tmp_path):
    path = tmp_path / "x.sls"
    path.write_text('#!json\n{"\\u0073chedule": {"x": {"function": "cmd.run"}}}\n')
    with pytest.raises(InvalidNetwork, match=r"x.sls:2: top-level pillar key 'schedule' is not allowed"):
        read_file_network(path)


@pytest.mark.parametrize("value, why", [
    ("NaN", "not valid JSON: NaN is not a JSON number"),
    ("-Infinity", "not valid JSON: -Infinity is not a JSON number"),
    ("1e400", "a number is out of range (read as infinity)"),
    ('"\\ud800"', "a string is not Unicode text ('\\ud800': a lone surrogate escape)"),
])
def test_values_json_leaves_open_are_refused(value, why):
    assert refusals(f'#!json\n{{"wgmesh": {{"mtu": {value}}}}}\n') == [f"x.sls: {why}"]


def test_nesting_is_bounded():
    deep = "{" + '"a": {' * MAX_DEPTH + "}" * MAX_DEPTH + "}"
    assert refusals(f"#!json\n{deep}\n") == [f"x.sls: nested more than {MAX_DEPTH} levels deep"]
    assert parse_json_sls("#!json\n{" + '"a": {' * (MAX_DEPTH - 1) + "}" * MAX_DEPTH + "\n", "x.sls").root
    assert refusals("#!json\n" + '{"a": ' * 100_000 + "1" + "}" * 100_000) == ["x.sls: nested too deeply"]
    in_lists = '{"a": ' + "[" * MAX_DEPTH + "]" * MAX_DEPTH + "}"     # lists count as levels too
    assert refusals(f"#!json\n{in_lists}\n") == [f"x.sls: nested more than {MAX_DEPTH} levels deep"]


@pytest.mark.parametrize("text, why", [
    ('#!json\n{"a": \n', "x.sls:3: not valid JSON: Expecting value"),
    ('#!json\n{"a": 1}\n{"b": 2}\n', "x.sls:3: not valid JSON: Extra data"),
    ("#!json\n[1, 2]\n", "x.sls:2: the top level must be an object"),
    ('#!json\n{"a": "{{ salt.cmd.run(1) }}"}\n', "x.sls:2: template syntax '{{' is not allowed: the pillar is data "
                                                 "and is never rendered as a template"),
    ('#!json|jinja\n{}\n', "x.sls:1: must start with the line '#!json'"),
])
def test_what_is_not_a_json_object_of_data_is_refused_with_its_line(text, why):
    assert refusals(text)[0].startswith(why)


def test_read_file_network_reads_a_json_file(tmp_path):
    path = tmp_path / "network.sls"
    path.write_text(dump_json_sls(DEVELOPERS))
    assert read_file_network(path) == DEVELOPERS["wgmesh"]
    path.write_text(dump_json_sls({"schedule": {"x": {"function": "cmd.run"}}}))
    with pytest.raises(InvalidNetwork, match="top-level pillar key 'schedule' is not allowed"):
        read_file_network(path)


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "pillar"
    shutil.copytree(PILLAR, root)
    (root / "tests.yaml").unlink(missing_ok=True)
    return root


def test_a_tree_may_mix_yaml_and_json_files_under_the_same_rules(tree):
    developers = tree / "wgmesh" / "developers.sls"
    data = parse_sls(developers.read_text(), "d").value(parse_sls(developers.read_text(), "d").root)
    developers.write_text(dump_json_sls(data))
    assert type(read_tree(tree).files["wgmesh/developers.sls"]) is JsonSlsFile
    # an entry in a JSON file and a YAML one: one of them would silently win
    (tree / "wgmesh" / "more.sls").write_text("#!yaml\nwgmesh:\n  developers:\n    e:\n      address: 10.70.0.9\n")
    with pytest.raises(InvalidNetwork) as info:
        read_tree(tree)
    assert [str(p) for p in info.value.problems] == [
        "wgmesh.developers.e.address: defined in both wgmesh/developers.sls and wgmesh/more.sls: define each entry "
        "in one file only"]
    (tree / "wgmesh" / "more.sls").write_text(dump_json_sls({"mine_functions": {"pwn": {"mine_function": "cmd.run"}}}))
    with pytest.raises(InvalidNetwork, match=r"wgmesh/more.sls:3: mine_functions must be exactly"):
        read_tree(tree)


def test_the_readmes_json_example_is_the_example_developers_file_as_written_here():
    from tests.readme import blocks
    [block] = blocks("json")
    example = parse_sls((PILLAR / "wgmesh" / "developers.sls").read_text(), "d.sls")
    assert block.text == dump_json_sls(example.value(example.root))
