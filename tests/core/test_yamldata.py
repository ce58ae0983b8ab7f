"""yamldata: one SLS file of the pillar repository read as checked YAML data (hostile input).

Each refusal names the file and line; what is accepted is built exactly as Salt's own loader
builds it (compared with salt.utils.yaml, the loader Salt's YAML renderer uses)."""
from __future__ import annotations

import pytest
import salt.utils.yaml
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode, ScalarNode

from wgmesh_core.validate import InvalidNetwork
from wgmesh_core.yamldata import (MAX_PROBLEMS_PER_FILE, MERGE_TAG, YAML_TAG, Limits, dump_sls, load_sls, parse_sls,
                                  short)

MAP_TAG = YAML_TAG + "map"

TEMPLATE = "is not allowed: the pillar is data and is never rendered as a template"
DUPLICATE = "a key may appear once per mapping"


def refusals(text: str, limits: Limits = Limits()) -> list[str]:
    with pytest.raises(InvalidNetwork) as info:
        load_sls(text, "x.sls", limits)
    return [str(p) for p in info.value.problems]


@pytest.mark.parametrize("first", ["hosts: {}", "", "#!jinja|yaml", "#!yaml|jinja", " #!yaml", "#!py"])
def test_the_first_line_must_be_the_yaml_shebang(first):
    assert refusals(f"{first}\nwgmesh: {{}}\n") == [
        f"x.sls:1: must start with the line '#!yaml' (the pillar repository is data: YAML, or JSON under '#!json'; found {first!r})"]


def test_the_shebang_quoted_in_a_refusal_is_cut_at_40_characters():
    assert refusals("a" * 100 + "\n") == [
        f"x.sls:1: must start with the line '#!yaml' (the pillar repository is data: YAML, or JSON under '#!json'; found {'a' * 40!r})"]


def test_trailing_blanks_after_the_shebang_are_fine():
    assert load_sls("#!yaml  \r\na: 1\n", "x.sls") == {"a": 1}


def test_every_template_mark_and_renderer_line_is_named_by_line():
    text = "#!yaml\na: '{{ x }}'\nb: '{% if %}'\nc: '{# c #}'\n#!py\nd: '{# {{'\n"
    assert refusals(text) == [f"x.sls:2: template syntax '{{{{' {TEMPLATE}",
                              f"x.sls:3: template syntax '{{%' {TEMPLATE}",
                              f"x.sls:4: template syntax '{{#' {TEMPLATE}",
                              "x.sls:5: renderer line '#!py' is not allowed: only '#!yaml', on the first line",
                              f"x.sls:6: template syntax '{{{{' {TEMPLATE}"]     # the first mark, in this order


@pytest.mark.parametrize("mark", ["{{", "{%", "{#"])
@pytest.mark.parametrize("text, line", [("#!yaml\n{mark}\n", 2), ("#!yaml\na: 1\nb: '{mark}'", 3),
                                        ("#!yaml\r\n{mark}", 2), ("#!yaml\n\n\n{mark}x\n", 4)])
def test_each_template_mark_alone_is_found_anywhere_after_the_first_line(mark, text, line):
    assert refusals(text.format(mark=mark)) == [f"x.sls:{line}: template syntax {mark!r} {TEMPLATE}"]


@pytest.mark.parametrize("text, line", [("#!yaml\n#!py\n", 2), ("#!yaml\na: 1\n#!jinja", 3), ("#!yaml\r\n#!x\n", 2)])
def test_a_renderer_line_alone_is_found_first_or_last(text, line):
    assert refusals(text)[0].startswith(f"x.sls:{line}: renderer line")


def test_a_long_renderer_line_is_quoted_cut():
    assert refusals("#!yaml\n#!" + "x" * 100 + "\n") == [
        f"x.sls:2: renderer line {('#!' + 'x' * 38)!r} is not allowed: only '#!yaml', on the first line"]


def test_braces_and_a_shebang_inside_a_value_are_data():
    assert load_sls("#!yaml\na: '#!x'\nb: '{'\nc: '}}'\n", "x.sls") == {"a": "#!x", "b": "{", "c": "}}"}


def test_an_empty_file_is_no_data():
    assert load_sls("#!yaml\n", "x.sls") is None
    assert parse_sls("#!yaml\n# nothing\n", "x.sls").root is None


@pytest.mark.parametrize("text, problem", [
    ("#!yaml\n- a\n", "x.sls:2: the top level must be a mapping"),
    ("#!yaml\n\nplain text\n", "x.sls:3: the top level must be a mapping"),
    ("#!yaml\na: [1\n", "x.sls:3: not valid YAML: did not find expected ',' or ']'"),
    ("#!yaml\na: " + "[" * 10_000 + "\n", "x.sls:2: not valid YAML: exceeded maximum nesting depth"),
    ("#!yaml\na: 1\n---\nb: 2\n", "x.sls:3: not valid YAML: but found another document"),
])
def test_what_is_not_one_yaml_mapping_is_refused_by_line(text, problem):
    assert refusals(text) == [problem]


def test_a_key_written_twice_is_refused_with_both_lines():
    assert refusals("#!yaml\na:\n  b: 1\n  c: 2\n  b: 3\n") == [
        f"x.sls:5: duplicate key 'b' (first at line 3): {DUPLICATE}"]


@pytest.mark.parametrize("key, reads_as", [("1", 1), ("yes", True), ("null", None), ("1.5", 1.5), ("0x1f", 31)])
def test_a_key_that_is_not_a_string_is_refused(key, reads_as):
    """Salt serves ``1:`` as the integer 1, which the model refuses on every minion, while a check
    reading names as text would take ``1`` and ``'1'`` for one key: a key must be a string."""
    text = f"#!yaml\nwgmesh:\n  developers:\n    {key}:\n      address: 10.70.0.6\n    '{key}': {{}}\n"
    assert salt.utils.yaml.safe_load(text)["wgmesh"]["developers"] == {reads_as: {"address": "10.70.0.6"}, key: {}}
    assert refusals(text) == [f"x.sls:4: the key {key!r} is not a string: quote it to name something by it"]
    assert load_sls(f"#!yaml\n'{key}': a\n", "x.sls") == {key: "a"}


def test_an_integer_too_long_for_salt_to_read_is_refused_by_line():
    """Salt's loader fails on more than 4,300 digits with no file or line (Python's limit)."""
    assert refusals("#!yaml\na:\n  b: " + "9" * 5000 + "\n") == [
        f"x.sls:3: the integer {short('9' * 5000)} is 5000 characters long: a value is at most 1000"]
    assert load_sls("#!yaml\na: " + "9" * 1000 + "\n", "x.sls") == {"a": int("9" * 1000)}


def test_a_long_duplicate_key_is_quoted_cut_at_60_characters():
    key = "k" * 100
    assert refusals(f"#!yaml\n{key}: 1\n{key}: 2\n") == [
        f"x.sls:3: duplicate key {short(key)} (first at line 2): {DUPLICATE}"]
    assert short(key) == "'" + "k" * 59 + "...'"


def test_short_keeps_values_up_to_the_width():
    assert short("abc") == "'abc'"
    assert short("k" * 58) == "'" + "k" * 58 + "'"         # 60 characters with the quotes
    assert short("k" * 59) == "'" + "k" * 59 + "...'"
    assert short(12345, width=3) == "123...'"


def test_problems_stop_at_the_limit_per_file():
    text = "#!yaml\n" + "".join(f"m{i}: {{k: 1, k: 2}}\n" for i in range(MAX_PROBLEMS_PER_FILE + 10))
    problems = refusals(text)
    assert len(problems) == MAX_PROBLEMS_PER_FILE
    assert all(p.endswith(DUPLICATE) for p in problems)


def test_merge_keys_are_refused():
    assert refusals("#!yaml\na: &x {b: 1}\nc:\n  <<: *x\n") == [
        "x.sls:4: YAML merge keys (<<) are not allowed: write the entries out"]


@pytest.mark.parametrize("value, tag", [
    ("!!python/object/apply:os.system ['id']", "tag:yaml.org,2002:python/object/apply:os.system"),
    ("!foo y", "!foo"),
    ("!!binary aGk=", "tag:yaml.org,2002:binary"),
    ("!!set {a, b}", "tag:yaml.org,2002:set"),
    ("!!omap [a: 1]", "tag:yaml.org,2002:omap"),
])
def test_only_plain_tags(value, tag):
    assert refusals(f"#!yaml\nwgmesh:\n  a: {value}\n") == [f"x.sls:3: the tag {tag!r} is not allowed: plain YAML only"]


def test_a_tagged_key_and_a_non_scalar_key_are_refused():
    assert refusals("#!yaml\n? [a]\n: 1\n") == ["x.sls:2: a mapping key must be a plain value"]
    assert refusals("#!yaml\n!foo a: 1\n") == ["x.sls:2: a mapping key must be a plain value"]


def test_the_plain_tags_written_out_are_fine():
    text = "#!yaml\na: !!str 1\nb: !!int '7'\nc: !!map {d: !!seq [!!null '', !!bool yes, !!float '1.5']}\n"
    assert load_sls(text, "x.sls") == salt.utils.yaml.safe_load(text) == {
        "a": "1", "b": 7, "c": {"d": [None, True, 1.5]}}


def test_scalars_are_built_as_salt_builds_them():
    """Leading zeros are decimal (not YAML 1.1's octal) unless signed; what is no YAML 1.1 int (08) stays a
    string; dates stay strings."""
    text = ("#!yaml\nints: [010, 0, 00, 0x10, 0b11, 0_10, 1_000, -010, +010, 0o10, 0, 08, 0009]\n"
            "date: 2025-06-30\nwhen: 2025-06-30 10:00:00\nf: [1.5, .inf, 1e3]\nnothing: ~\nbool: [yes, No, on]\n")
    built = load_sls(text, "x.sls")
    assert built == salt.utils.yaml.safe_load(text)
    assert built["ints"] == [10, 0, 0, 16, 3, 10, 1000, -8, 8, "0o10", 0, "08", "0009"]
    assert built["date"] == "2025-06-30" and built["when"] == "2025-06-30 10:00:00"
    assert built["nothing"] is None and built["bool"] == [True, False, True]


def test_aliases_count_every_value_they_add_against_the_limit():
    """a: &x [1, 2] / b: *x adds three values (the list and its two items) to the six written."""
    text = "#!yaml\na: &x [1, 2]\nb: *x\n"
    assert load_sls(text, "x.sls", Limits(max_alias_values=3)) == {"a": [1, 2], "b": [1, 2]}
    assert refusals(text, Limits(max_alias_values=2)) == [
        "x.sls:2: refused: its aliases expand to more than 2 values beyond the ones written "
        "(an alias bomb?); write the values out"]


def test_a_string_given_by_aliases_as_mapping_values_counts_against_the_limit():
    """a string reached again through aliases from mappings only (no list): three values added to eight."""
    text = "#!yaml\na: &x v\nb: *x\nc: {d: *x, e: *x}\n"
    sls = parse_sls(text, "x.sls", Limits(max_alias_values=3))
    assert sls.value(sls.root) == {"a": "v", "b": "v", "c": {"d": "v", "e": "v"}}
    assert sls.paths == {("a",): False, ("b",): False, ("c",): True, ("c", "d"): False, ("c", "e"): False}
    assert refusals(text, Limits(max_alias_values=2)) == [
        "x.sls:2: refused: its aliases expand to more than 2 values beyond the ones written "
        "(an alias bomb?); write the values out"]


def test_an_alias_bomb_is_refused_without_expanding_it():
    text = "#!yaml\na: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{n}: &{n} [{', '.join([f'*{p}'] * 10)}]\n" for p, n in zip("abcdefgh", "bcdefghi"))    # 10^9 values
    assert refusals(text) == ["x.sls:2: refused: its aliases expand to more than 100000 values beyond the ones written "
                              "(an alias bomb?); write the values out"]


def test_an_alias_inside_its_own_anchor_is_refused():
    assert refusals("#!yaml\nq: 1\na: &x [1, *x]\n") == [
        "x.sls:3: an alias refers to its own anchor (a recursive structure)"]
    assert refusals("#!yaml\na: &x\n  b:\n    c: *x\n") == [
        "x.sls:2: an alias refers to its own anchor (a recursive structure)"]     # the anchor's line


def test_an_alias_reused_in_siblings_is_not_recursive():
    text = "#!yaml\nk: &k {v: 1}\nl: [*k, *k]\nm: {n: *k}\n"
    assert load_sls(text, "x.sls") == {"k": {"v": 1}, "l": [{"v": 1}, {"v": 1}], "m": {"n": {"v": 1}}}


def test_the_key_paths_of_a_file():
    """Every key path written, and whether a mapping holds it: lists are leaves."""
    sls = parse_sls("#!yaml\na:\n  b: 1\n  c: [{d: 1}]\n  e: {}\n", "x.sls")
    assert sls.paths == {("a",): True, ("a", "b"): False, ("a", "c"): False, ("a", "e"): True}


def test_top_keys_and_children_of_the_node_graph():
    sls = parse_sls("#!yaml\na:\n  b: 1\n  c: [1]\nd: x\n", "x.sls")
    assert {key: line for key, (line, _) in sls.top_keys().items()} == {"a": 2, "d": 5}
    assert sls.value(sls.child(sls.root, "a", "b")) == 1
    assert sls.value(sls.child(sls.root, "a")) == {"b": 1, "c": [1]}
    assert sls.child(sls.root, "a", "zz") is None
    assert sls.child(sls.root, "a", "c", "x") is None     # below a list: no mapping path
    assert sls.child(sls.root, "d", "x") is None
    assert parse_sls("#!yaml\n", "x.sls").top_keys() == {}


def test_dump_writes_the_shebang_a_comment_and_yaml_in_order():
    text = dump_sls({"b": 1, "a": ["x"]}, "made by wgmesh\nsecond line")
    assert text == "#!yaml\n# made by wgmesh\n# second line\nb: 1\na:\n- x\n"
    assert load_sls(text, "x.sls") == {"b": 1, "a": ["x"]}
    assert dump_sls({"a": 1}) == "#!yaml\na: 1\n"


def test_the_constructor_refuses_on_its_own_what_the_graph_check_refuses():
    """Second line of defence: a node that never went through the graph check (built here by hand)
    is refused when its value is built, naming the line."""
    sls = parse_sls("#!yaml\na: 1\n", "x.sls")
    [(key, value)] = sls.root.value
    merge = ScalarNode(MERGE_TAG, "<<", start_mark=key.start_mark)
    at_line_2 = '\n  in "<unicode string>", line 2, column 1'
    tagged = ScalarNode("!x", "v", start_mark=key.start_mark)
    for node, why in ((tagged, "the tag '!x' is not allowed: plain YAML only"),
                      (MappingNode(MAP_TAG, [(merge, sls.root)], start_mark=key.start_mark),
                       "YAML merge keys (<<) are not allowed: write the entries out"),
                      (MappingNode(MAP_TAG, [(key, value), (key, value)]),
                       f"duplicate key 'a' (first at line 2): {DUPLICATE}"),
                      (MappingNode(MAP_TAG, [(sls.root, value)]), "a mapping key must be a plain value"),
                      (ScalarNode(MAP_TAG, "x", start_mark=key.start_mark), "expected a mapping, found scalar")):
        with pytest.raises(ConstructorError) as info:
            sls.value(node)
        assert str(info.value) == why + at_line_2
    assert sls.value(ScalarNode(YAML_TAG + "timestamp", "2025-06-30")) == "2025-06-30"


@pytest.mark.parametrize("value, why", [
    ("!!map x", "the tag 'tag:yaml.org,2002:map' does not fit a scalar"),
    ("!!seq x", "the tag 'tag:yaml.org,2002:seq' does not fit a scalar"),
    ("!!int abc", "the tag 'tag:yaml.org,2002:int' does not fit the value 'abc'"),
    ("!!int 0o10", "the tag 'tag:yaml.org,2002:int' does not fit the value '0o10'"),
    ("!!float x", "the tag 'tag:yaml.org,2002:float' does not fit the value 'x'"),
    ("!!bool maybe", "the tag 'tag:yaml.org,2002:bool' does not fit the value 'maybe'"),
    ("!!str [1]", "the tag 'tag:yaml.org,2002:str' does not fit a sequence"),
    ("!!int [1]", "the tag 'tag:yaml.org,2002:int' does not fit a sequence"),
    ("!!null [1]", "the tag 'tag:yaml.org,2002:null' does not fit a sequence"),
    ("!!seq {a: 1}", "the tag 'tag:yaml.org,2002:seq' does not fit a mapping"),
    ("!!map [1]", "the tag 'tag:yaml.org,2002:map' does not fit a sequence"),
])
def test_a_plain_tag_that_cannot_build_its_value_is_refused_by_line(value, why):
    """Before, the constructor failed on these with no file or line (a traceback in `wgmesh validate`
    when the value was built by wgmesh: tests.yaml, mine_functions, the hub's minion)."""
    assert refusals(f"#!yaml\nwgmesh:\n  a: {value}\n") == [f"x.sls:3: {why}"]


def test_a_key_with_a_tag_it_does_not_fit_is_refused():
    assert refusals("#!yaml\n!!int x: 1\n") == ["x.sls:2: a mapping key must be a plain value"]
    assert load_sls("#!yaml\n!!str 2: b\n", "x.sls") == {"2": "b"}
    assert refusals("#!yaml\n!!int 1: a\n") == ["x.sls:2: the key '1' is not a string: quote it to name something by it"]


def test_plain_tags_that_fit_build_as_without_them():
    text = "#!yaml\na: [!!int 010, !!int 0x1F, !!float 1.5, !!float 2, !!float 010, !!bool yes, !!null x, !!str 7]\n"
    built = [10, 31, 1.5, 2.0, 10.0, True, None, "7"]
    assert load_sls(text, "x.sls") == salt.utils.yaml.safe_load(text) == {"a": built}
    assert refusals("#!yaml\na: !!float 0x1F\n") == [
        "x.sls:2: the tag 'tag:yaml.org,2002:float' does not fit the value '0x1F'"]


def test_nodes_walked_after_an_alias_are_still_checked():
    """The walk skips a node it has seen (an alias) and goes on: what comes after is checked too."""
    assert refusals("#!yaml\nc: !!binary aGk=\nd: {k: 1, k: 2}\na: &x 1\nb: *x\n") == [
        f"x.sls:3: duplicate key 'k' (first at line 3): {DUPLICATE}",
        "x.sls:2: the tag 'tag:yaml.org,2002:binary' is not allowed: plain YAML only"]


def test_every_bad_key_of_one_mapping_is_named_and_its_other_values_checked():
    assert refusals("#!yaml\na: {k: 1, k: 2, k: 3, ? [x] : 1, ? [y] : 2, m: !!binary aGk=}\n") == [
        f"x.sls:2: duplicate key 'k' (first at line 2): {DUPLICATE}",
        f"x.sls:2: duplicate key 'k' (first at line 2): {DUPLICATE}",
        "x.sls:2: a mapping key must be a plain value", "x.sls:2: a mapping key must be a plain value",
        "x.sls:2: the tag 'tag:yaml.org,2002:binary' is not allowed: plain YAML only"]


def test_a_mapping_reached_again_through_an_alias_is_a_leaf_there():
    """The walk goes b first (last written, first taken): b owns the mapping's keys, a.x is a leaf."""
    sls = parse_sls("#!yaml\na: {x: &m {k: 1}}\nb: *m\n", "x.sls")
    assert sls.paths == {("a",): True, ("b",): True, ("b", "k"): False, ("a", "x"): False}


def test_a_control_character_is_refused_naming_the_file():
    """libyaml's reader error carries no line, so the file alone is named."""
    assert refusals("#!yaml\na: \x07\n") == [
        'x.sls: not valid YAML: unacceptable character #x0007: control characters are not allowed in '
        '"<unicode string>", position 10']


def test_the_checked_file_keeps_its_text():
    text = "#!yaml\na: 1\n"
    assert parse_sls(text, "x.sls").text == text
