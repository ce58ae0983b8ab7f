"""One SLS file of the pillar repository as YAML data: checked, bounded, never rendered.

The text must start with ``#!yaml`` (Salt then runs its YAML renderer only) and may
hold no template syntax and no other renderer line.  It is composed by libyaml (the C
parser of PyYAML, which also bounds the nesting depth) and the node graph is checked
before anything is built from it or walks it: aliases may not expand past a limit (an
alias bomb costs nothing to parse and everything to walk) nor refer to their own anchor;
a key may appear once per mapping (Salt's own loader refuses that too); no merge keys
(``<<``), no explicit tags but the plain ones.  Values, where wanted, are built the way
Salt's SaltYamlSafeLoader builds them (timestamps stay strings, ``010`` is ten).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import yaml
from yaml.constructor import BaseConstructor, ConstructorError, SafeConstructor
from yaml.nodes import MappingNode, ScalarNode, SequenceNode

from .model import MAX_ALIAS_VALUES, MAX_NAMED_HOSTS, MAX_PILLAR_BYTES, MAX_PILLAR_FILES
from .validate import InvalidNetwork, Problem

SHEBANG = "#!yaml"
TEMPLATE_MARKS = ("{{", "{%", "{#")
YAML_TAG = "tag:yaml.org,2002:"
PLAIN_TAGS = frozenset(YAML_TAG + t for t in ("null", "bool", "int", "float", "str", "timestamp", "seq", "map"))
MERGE_TAG = YAML_TAG + "merge"
_STR_TAG = YAML_TAG + "str"
_INT_TAG = YAML_TAG + "int"
# Far beyond any port, count or epoch, and below Python's limit on converting a decimal text to an
# integer (4,300 digits), past which Salt's loader fails with no file or line.
MAX_INTEGER_CHARACTERS = 1000
MAX_PROBLEMS_PER_FILE = 20
_SUSPECT = (*TEMPLATE_MARKS, "\n#!")    # template syntax, or a renderer line after the first


@dataclass(frozen=True)
class Limits:
    max_bytes: int = MAX_PILLAR_BYTES
    max_alias_values: int = MAX_ALIAS_VALUES
    max_files: int = MAX_PILLAR_FILES
    max_named_hosts: int = MAX_NAMED_HOSTS


def short(value, width=60) -> str:
    text = repr(value)
    return text if len(text) <= width else text[:width] + "...'"


# --- values, built as Salt builds them ---------------------------------------------------

class _DataConstructor(BaseConstructor):
    """Builds plain dicts, lists and scalars; refuses any other tag, merge keys and a key written
    twice in one mapping."""
    bool_values, inf_value, nan_value = SafeConstructor.bool_values, SafeConstructor.inf_value, SafeConstructor.nan_value

    def construct_mapping(self, node, deep=False):
        if not isinstance(node, MappingNode):
            raise ConstructorError(None, None, f"expected a mapping, found {node.id}", node.start_mark)
        mapping, lines = {}, {}
        for key_node, value_node in node.value:
            if key_node.tag == MERGE_TAG:
                raise ConstructorError(None, None, "YAML merge keys (<<) are not allowed: write the entries out",
                                       key_node.start_mark)
            key = self.construct_object(key_node, deep=deep)
            try:
                hash(key)
            except TypeError:
                raise ConstructorError(None, None, "a mapping key must be a plain value", key_node.start_mark) from None
            if key in mapping:
                raise ConstructorError(None, None, f"duplicate key {short(key)} (first at line {lines[key]}): "
                                       "a key may appear once per mapping", key_node.start_mark)
            lines[key] = key_node.start_mark.line + 1
            mapping[key] = self.construct_object(value_node, deep=deep)
        return mapping

    def construct_yaml_map(self, node):
        data = {}
        yield data
        data.update(self.construct_mapping(node))

    def construct_yaml_seq(self, node):
        data = []
        yield data
        data.extend(self.construct_sequence(node))

    def construct_yaml_int(self, node):
        value = node.value
        if value.startswith("0") and not value.startswith(("0b", "0x")) and value != "0":
            return int(value.replace("_", "").lstrip("0") or "0")   # Salt: leading zeros are not octal
        return SafeConstructor.construct_yaml_int(self, node)

    def refuse_tag(self, node):
        raise ConstructorError(None, None, f"the tag {node.tag!r} is not allowed: plain YAML only", node.start_mark)


for _tag, _method in (("null", SafeConstructor.construct_yaml_null), ("bool", SafeConstructor.construct_yaml_bool),
                      ("int", _DataConstructor.construct_yaml_int), ("float", SafeConstructor.construct_yaml_float),
                      ("str", SafeConstructor.construct_yaml_str), ("timestamp", BaseConstructor.construct_scalar),
                      ("seq", _DataConstructor.construct_yaml_seq), ("map", _DataConstructor.construct_yaml_map)):
    _DataConstructor.add_constructor(YAML_TAG + _tag, _method)
_DataConstructor.add_constructor(None, _DataConstructor.refuse_tag)

class _Resolver(yaml.resolver.Resolver):
    """PyYAML's YAML 1.1 implicit tags (what Salt's loader uses too), looked up in one step."""
    _by_first_char = {first: list(resolvers) for first, resolvers in
                      yaml.resolver.Resolver.yaml_implicit_resolvers.items()}

    def resolve(self, kind, value, implicit):
        if kind is ScalarNode:
            if implicit[0]:
                for tag, regexp in self._by_first_char.get(value[:1], ()):
                    if regexp.match(value):
                        return tag
            return self.DEFAULT_SCALAR_TAG
        return self.DEFAULT_SEQUENCE_TAG if kind is SequenceNode else self.DEFAULT_MAPPING_TAG


_RESOLVER = _Resolver()


if getattr(yaml, "__with_libyaml__", False):
    from yaml._yaml import CParser as _Parser   # libyaml: fast, and bounds the nesting depth

    class _Loader(_Parser, _DataConstructor, _Resolver):
        def __init__(self, stream):
            _Parser.__init__(self, stream)
            _DataConstructor.__init__(self)
            _Resolver.__init__(self)
else:
    class _Loader(yaml.reader.Reader, yaml.scanner.Scanner, yaml.parser.Parser, yaml.composer.Composer,
                  _DataConstructor, _Resolver):
        def __init__(self, stream):
            yaml.reader.Reader.__init__(self, stream)
            yaml.scanner.Scanner.__init__(self)
            yaml.parser.Parser.__init__(self)
            yaml.composer.Composer.__init__(self)
            _DataConstructor.__init__(self)
            _Resolver.__init__(self)


# --- the text, then the node graph --------------------------------------------------------

def text_problems(name: str, text: str, shebang: str = SHEBANG) -> list[Problem]:
    """The renderer line rule and template syntax, line by line (before any parsing)."""
    lines = text.split("\n")
    if lines[0].rstrip() != shebang:
        return [Problem(f"{name}:1", f"must start with the line '{shebang}' (the pillar repository is data: YAML, "
                                     f"or JSON under '#!json'; found {short(lines[0][:40])})")]
    problems = []
    start = len(lines[0])
    if not any(text.find(mark, start) >= 0 for mark in _SUSPECT):   # the usual case: a search per mark
        return problems
    for number, line in enumerate(lines[1:], start=2):
        marks = [mark for mark in TEMPLATE_MARKS if mark in line]
        if marks:
            problems.append(Problem(f"{name}:{number}", f"template syntax {marks[0]!r} is not allowed: the pillar "
                                                         "is data and is never rendered as a template"))
        elif line.startswith("#!"):
            problems.append(Problem(f"{name}:{number}", f"renderer line {short(line.strip()[:40])} is not allowed: "
                                                         f"only '{shebang}', on the first line"))
    return problems


def _children(node) -> list:
    if isinstance(node, SequenceNode):
        return node.value
    if isinstance(node, MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def _expansion_problem(root, limit: int) -> Optional[tuple[int, str]]:
    """(line, why) the graph is refused (aliases expanding to more than ``limit`` values beyond
    the written ones, or an alias inside its own anchor), or None.  Never expands anything:
    each node's expanded size is computed once, from its children's."""
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()       # the current path from the root
    stack = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        if children_done:
            open_nodes.discard(id(node))
            sizes[id(node)] = 1 + sum(sizes[id(child)] for child in _children(node))
            continue
        if id(node) in sizes:
            continue
        open_nodes.add(id(node))
        stack.append((node, True))
        for child in _children(node):
            if id(child) in open_nodes:
                return child.start_mark.line + 1, "an alias refers to its own anchor (a recursive structure)"
            if id(child) not in sizes:
                stack.append((child, False))
    if sizes[id(root)] - len(sizes) > limit:
        return root.start_mark.line + 1, (f"refused: its aliases expand to more than {limit} values beyond the "
                                          "ones written (an alias bomb?); write the values out")
    return None


_KIND_TAGS = {SequenceNode: YAML_TAG + "seq", MappingNode: YAML_TAG + "map"}
_READ_TAGS = frozenset(YAML_TAG + t for t in ("int", "float", "bool"))   # their constructors parse the text


def _tag_problem(loader, node) -> Optional[str]:
    """Why a node's plain tag, written out, cannot build its value (``!!map x``, ``!!str [1]``,
    ``!!int abc``), or None: the constructor would fail on it with no file and line."""
    kind = type(node)
    if kind is not ScalarNode:
        return None if node.tag == _KIND_TAGS[kind] else f"the tag {node.tag!r} does not fit a {kind.id}"
    if node.tag == _INT_TAG and len(node.value) > MAX_INTEGER_CHARACTERS:
        return (f"the integer {short(node.value)} is {len(node.value)} characters long: a value is at most "
                f"{MAX_INTEGER_CHARACTERS}")
    if node.tag in _READ_TAGS and _RESOLVER.resolve(ScalarNode, node.value, (True, False)) != node.tag:
        try:      # written out (the text alone reads as another type): build it to see
            loader.construct_object(node)
        except (ValueError, KeyError, yaml.YAMLError):
            return f"the tag {node.tag!r} does not fit the value {short(node.value)}"
    return None if node.tag not in _KIND_TAGS.values() else f"the tag {node.tag!r} does not fit a scalar"


def _key_problem(loader, key) -> str:
    """Why a mapping key that is not a plain string is refused. Salt serves ``1:``, ``true:`` and
    ``null:`` as keys of those types, which wgmesh's model refuses on every minion, while ``1`` and
    ``"1"`` would be one key to a check that reads names as text: a key is a string, quoted when it
    would read as another type."""
    if key.tag == MERGE_TAG:
        return "YAML merge keys (<<) are not allowed: write the entries out"
    if type(key) is not ScalarNode or key.tag not in PLAIN_TAGS or _tag_problem(loader, key):
        return "a mapping key must be a plain value"
    return f"the key {short(key.value)} is not a string: quote it to name something by it"


def _graph_problems(loader, root, name: str, paths: dict) -> tuple[list[Problem], bool]:
    """(problems, whether any node is reached twice: an alias) after one walk that visits each node
    once: tags, merge keys, keys, duplicates.  Fills ``paths`` ({key path: is a mapping}); a list,
    and a value given by an alias, count as leaves.  A mapping's plain string keys and values (nearly
    every node of a pillar) are taken in its loop, the other nodes from the stack."""
    problems, seen, aliased = [], set(), False
    stack = [(root, ())]
    while stack and len(problems) < MAX_PROBLEMS_PER_FILE:
        node, path = stack.pop()
        if id(node) in seen:
            aliased = True
            continue
        seen.add(id(node))
        kind = type(node)
        if node.tag not in PLAIN_TAGS:
            problems.append(Problem(f"{name}:{node.start_mark.line + 1}",
                                    f"the tag {node.tag!r} is not allowed: plain YAML only"))
        elif (node.tag != _STR_TAG or kind is not ScalarNode) and (why := _tag_problem(loader, node)):
            problems.append(Problem(f"{name}:{node.start_mark.line + 1}", why))
        elif kind is SequenceNode:
            stack.extend((item, None) for item in node.value)
        elif kind is MappingNode:
            first: dict = {}      # key -> its node
            for key, value in node.value:
                if key.tag != _STR_TAG or type(key) is not ScalarNode:
                    problems.append(Problem(f"{name}:{key.start_mark.line + 1}", _key_problem(loader, key)))
                    continue
                if key.value in first:
                    problems.append(Problem(f"{name}:{key.start_mark.line + 1}", f"duplicate key {short(key.value)} "
                                            f"(first at line {first[key.value].start_mark.line + 1}): a key may "
                                            "appear once per mapping"))
                    continue
                first[key.value] = key
                key_path = None if path is None else (*path, key.value)
                if type(value) is ScalarNode and value.tag == _STR_TAG:    # a leaf with nothing to check
                    if id(value) in seen:
                        aliased = True
                    seen.add(id(value))
                    if key_path is not None:
                        paths[key_path] = False
                    continue
                if key_path is not None:
                    paths[key_path] = type(value) is MappingNode and id(value) not in seen
                stack.append((value, key_path))
    return problems, aliased


@dataclass
class SlsFile:
    """A checked SLS file: its node graph (and the loader to build values from it)."""
    name: str
    root: object                 # the root node, or None for an empty file
    loader: object
    paths: dict                  # key path (tuple of key texts) -> is a mapping
    text: str = ""               # what was parsed
    renderer = "yaml"            # Salt's renderer its first line names (a class attribute)

    def top_keys(self) -> dict:
        """{top-level key text: (line, value node)}."""
        if not isinstance(self.root, MappingNode):
            return {}
        return {k.value: (k.start_mark.line + 1, v) for k, v in self.root.value}

    def value(self, node):
        return self.loader.construct_document(node)

    def child(self, node, *keys):
        """The node at ``keys`` below ``node`` (a mapping path), or None."""
        for key in keys:
            if not isinstance(node, MappingNode):
                return None
            node = next((v for k, v in node.value if k.value == key), None)
        return node


def parse_sls(text: str, name: str, limits: Limits = Limits()) -> SlsFile:
    """Check one SLS file's text (see the module docstring); raises InvalidNetwork naming the line."""
    problems = text_problems(name, text)
    if problems:
        raise InvalidNetwork(problems)
    loader = _Loader(text)
    try:
        root = loader.get_single_node()
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
        what = " ".join(str(getattr(error, "problem", None) or error).split())
        raise InvalidNetwork([Problem(f"{name}:{mark.line + 1}" if mark else name, f"not valid YAML: {what}")]) from None
    except RecursionError:   # the pure-Python parser, where libyaml is missing
        raise InvalidNetwork([Problem(name, "nested too deeply")]) from None
    finally:
        loader.dispose()
    sls = SlsFile(name, root, loader, {}, text)
    if root is None:
        return sls
    if not isinstance(root, MappingNode):
        raise InvalidNetwork([Problem(f"{name}:{root.start_mark.line + 1}", "the top level must be a mapping")])
    problems, aliased = _graph_problems(loader, root, name, sls.paths)
    refused = _expansion_problem(root, limits.max_alias_values) if aliased else None
    if refused:   # before anything else walks the graph
        raise InvalidNetwork([Problem(f"{name}:{refused[0]}", refused[1])])
    if problems:
        raise InvalidNetwork(problems)
    return sls


def load_sls(text: str, name: str, limits: Limits = Limits()):
    """The data of one SLS file's text, checked."""
    sls = parse_sls(text, name, limits)
    return None if sls.root is None else sls.value(sls.root)


def dump_sls(data, comment: str = "") -> str:
    """An SLS file's text for ``data``: the ``#!yaml`` line, an optional comment, the YAML."""
    header = "".join(f"# {line}\n" for line in comment.splitlines())
    return f"{SHEBANG}\n{header}" + yaml.safe_dump(data, sort_keys=False)
