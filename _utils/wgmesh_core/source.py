"""The pillar repository as data: every SLS checked and parsed, never rendered.

A pull request is data, never code.  Every SLS of the repository must start
with ``#!yaml`` (so Salt's git_pillar renders it with its YAML renderer only)
and may not hold template syntax or another renderer line.  Files are parsed
with a safe YAML loader that, like Salt's own, refuses a key written twice in
one mapping; it also refuses a key path defined in two files (one would
silently win), YAML merge keys and explicit tags, and it is bounded: a tree
larger than ``max_bytes`` or whose aliases expand past ``max_alias_values``
values is refused before anything walks it.  Each file's top-level keys are an
allow-list.  Which file reaches which minion is Salt's business: the
``wgmesh_salt`` package compiles the checked tree with Salt's own pillar
compiler, and ``agreed_network`` here checks what it returns.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Optional

import yaml
from yaml.constructor import BaseConstructor, ConstructorError, SafeConstructor
from yaml.nodes import MappingNode, SequenceNode

from .keys import key_problem
from .model import MAX_ALIAS_VALUES, MAX_PILLAR_BYTES, MAX_PILLAR_FILES
from .validate import InvalidNetwork, Problem

PILLAR_KEY = "wgmesh"
HOST_KEYS_KEY = "wgmesh_host_keys"
SHEBANG = "#!yaml"
TOP_FILE = "top.sls"
MINIONS_FILE = "minions.txt"      # optional: minion ids `wgmesh plan` compiles the pillar for
MAX_MINIONS_FILE_BYTES = 1_000_000
# The mine entry wgmesh sets (pillar/wgmesh/mine.sls): anything else under mine_functions
# would run another execution module, with arguments from the pull request, on every minion.
MINE_FUNCTIONS = {"wgmesh_public_key": {"mine_function": "wgmesh.public_key"}}
TEMPLATE_MARKS = ("{{", "{%", "{#")


@dataclass(frozen=True)
class Limits:
    max_bytes: int = MAX_PILLAR_BYTES
    max_alias_values: int = MAX_ALIAS_VALUES
    max_files: int = MAX_PILLAR_FILES


# --- one file ----------------------------------------------------------------------------

class _DataConstructor(BaseConstructor):
    """Plain YAML data, read the way Salt's SaltYamlSafeLoader reads it (timestamps stay
    strings, ``010`` is ten) and refusing what could hide a value: a key written twice in
    one mapping, merge keys (``<<``), and every explicit tag but the plain ones."""
    bool_values, inf_value, nan_value = SafeConstructor.bool_values, SafeConstructor.inf_value, SafeConstructor.nan_value

    def construct_mapping(self, node, deep=False):
        if not isinstance(node, MappingNode):
            raise ConstructorError(None, None, f"expected a mapping, found {node.id}", node.start_mark)
        mapping, lines = {}, {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise ConstructorError(None, None, "YAML merge keys (<<) are not allowed: write the entries out",
                                       key_node.start_mark)
            key = self.construct_object(key_node, deep=deep)
            try:
                hash(key)
            except TypeError:
                raise ConstructorError(None, None, "a mapping key must be a plain value", key_node.start_mark) from None
            if key in mapping:
                raise ConstructorError(None, None, f"duplicate key {_short(key)} (first at line {lines[key]}): "
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
    _DataConstructor.add_constructor(f"tag:yaml.org,2002:{_tag}", _method)
_DataConstructor.add_constructor(None, _DataConstructor.refuse_tag)

if getattr(yaml, "__with_libyaml__", False):
    from yaml._yaml import CParser as _Parser   # libyaml: fast, and bounds the nesting depth

    class _Loader(_Parser, _DataConstructor, yaml.resolver.Resolver):
        def __init__(self, stream):
            _Parser.__init__(self, stream)
            _DataConstructor.__init__(self)
            yaml.resolver.Resolver.__init__(self)
else:
    class _Loader(yaml.reader.Reader, yaml.scanner.Scanner, yaml.parser.Parser, yaml.composer.Composer,
                  _DataConstructor, yaml.resolver.Resolver):
        def __init__(self, stream):
            yaml.reader.Reader.__init__(self, stream)
            yaml.scanner.Scanner.__init__(self)
            yaml.parser.Parser.__init__(self)
            yaml.composer.Composer.__init__(self)
            _DataConstructor.__init__(self)
            yaml.resolver.Resolver.__init__(self)


def _short(value, width=60) -> str:
    text = repr(value)
    return text if len(text) <= width else text[:width] + "...'"


def _expanded_values(root, limit: int) -> Optional[tuple[int, str]]:
    """(line, why) the node graph is refused (aliases expanding to more than ``limit`` values
    beyond the written ones, or an alias inside its own anchor), or None.  Never expands
    anything: each node's expanded size is computed once, from its children's."""
    sizes: dict[int, int] = {}
    on_path: set[int] = set()
    stack = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        if id(node) in sizes:
            continue
        children = node.value if isinstance(node, SequenceNode) else (
            [n for pair in node.value for n in pair] if isinstance(node, MappingNode) else [])
        if children_done:
            on_path.discard(id(node))
            sizes[id(node)] = 1 + sum(sizes[id(child)] for child in children)
            continue
        on_path.add(id(node))
        stack.append((node, True))
        for child in children:
            if id(child) in on_path:
                return child.start_mark.line + 1, "an alias refers to its own anchor (a recursive structure)"
            if id(child) not in sizes:
                stack.append((child, False))
    expansion = sizes[id(root)] - len(sizes)
    if expansion > limit:
        return root.start_mark.line + 1, (f"refused: its aliases expand to more than {limit} values beyond the "
                                          "ones written (an alias bomb?); write the values out")
    return None


def _mark_line(error) -> Optional[int]:
    mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
    return mark.line + 1 if mark is not None else None


def _text_problems(name: str, text: str) -> list[Problem]:
    """The shebang rule and template syntax, line by line (before any YAML parsing)."""
    lines = text.split("\n")
    if lines[0].rstrip("\r").strip() != SHEBANG:
        return [Problem(f"{name}:1", f"must start with the line '{SHEBANG}' (the pillar repository is YAML only; "
                                     f"found {_short(lines[0][:40])})")]
    problems = []
    for number, line in enumerate(lines[1:], start=2):
        marks = [mark for mark in TEMPLATE_MARKS if mark in line]
        if marks:
            problems.append(Problem(f"{name}:{number}", f"template syntax {marks[0]!r} is not allowed: the pillar "
                                                         "is YAML only and is never rendered as a template"))
        elif line.startswith("#!"):
            problems.append(Problem(f"{name}:{number}", f"renderer line {_short(line.strip()[:40])} is not allowed: "
                                                         f"only '{SHEBANG}', on the first line"))
    return problems


def _parse(text: str, name: str, limits: Limits):
    """(data, {top-level key: line}) of one SLS file's text; raises InvalidNetwork naming the line."""
    problems = _text_problems(name, text)
    if problems:
        raise InvalidNetwork(problems)
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, {}
        refused = _expanded_values(node, limits.max_alias_values)
        if refused:
            raise InvalidNetwork([Problem(f"{name}:{refused[0]}", refused[1])])
        lines = {k.value: k.start_mark.line + 1 for k, _ in node.value} if isinstance(node, MappingNode) else {}
        return loader.construct_document(node), lines
    except yaml.YAMLError as error:
        line = _mark_line(error)
        what = " ".join(str(getattr(error, "problem", None) or error).split())
        if not isinstance(error, ConstructorError):
            what = f"not valid YAML: {what}"
        raise InvalidNetwork([Problem(f"{name}:{line}" if line else name, what)]) from None
    except RecursionError:
        raise InvalidNetwork([Problem(name, "nested too deeply")]) from None
    finally:
        loader.dispose()


def load_sls(text: str, name: str, limits: Limits = Limits()):
    """The data of one SLS file's text, checked (see the module docstring)."""
    return _parse(text, name, limits)[0]


def dump_sls(data, comment: str = "") -> str:
    """An SLS file's text for ``data``: the ``#!yaml`` line, an optional comment, the YAML."""
    header = "".join(f"# {line}\n" for line in comment.splitlines())
    return f"{SHEBANG}\n{header}" + yaml.safe_dump(data, sort_keys=False)


# --- the tree ------------------------------------------------------------------------------

@dataclass
class PillarTree:
    """A checked pillar tree: each SLS file's data, by path relative to the root."""
    root: Path
    files: dict = field(default_factory=dict)     # "wgmesh/developers.sls" -> data
    listed_minions: list = field(default_factory=list)   # ids in minions.txt
    top_text: str = ""

    def named_minions(self) -> set:
        """Minion ids the files name as hosts (hub, gateways, LAN routers), however they are split."""
        names = set()
        for data in self.files.values():
            network = data.get(PILLAR_KEY) if isinstance(data, dict) else None
            if not isinstance(network, dict):
                continue
            hub = network.get("hub")
            if isinstance(hub, dict) and isinstance(hub.get("minion"), str):
                names.add(hub["minion"])
            gateways = network.get("gateways")
            for gateway, entry in (gateways.items() if isinstance(gateways, dict) else []):
                names.add(str(gateway))
                if isinstance(entry, dict) and isinstance(entry.get("lan_router"), str):
                    names.add(entry["lan_router"])
        return names


def _sls_files(root: Path) -> list[Path]:
    """Every SLS below ``root``; refuses symlinks (the master would read what they point at)."""
    found, problems = [], []
    for directory, dirs, files in os.walk(root):
        for entry in sorted(dirs + files):
            path = Path(directory) / entry
            if path.is_symlink():
                problems.append(Problem(str(path.relative_to(root)), "symbolic links are not allowed in the pillar"))
            elif entry.endswith(".sls") and path.is_file():
                found.append(path)
        dirs[:] = [d for d in dirs if not (Path(directory) / d).is_symlink() and d != ".git"]
    if problems:
        raise InvalidNetwork(problems)
    return sorted(found)


def size_problems(sizes: dict, where: str, limits: Limits) -> list[Problem]:
    """Refusal of a tree by its SLS files' sizes ({name: bytes}), before any is read."""
    if len(sizes) > limits.max_files:
        return [Problem(where, f"{len(sizes)} SLS files; at most {limits.max_files} are read")]
    total = sum(sizes.values())
    if total <= limits.max_bytes:
        return []
    biggest = max(sizes, key=sizes.get)
    return [Problem(biggest, f"refused unread: {sizes[biggest]} bytes, and the pillar's SLS files {total} bytes "
                             f"together, more than the limit of {limits.max_bytes}")]


def _read_bounded(files: list[Path], root: Path, limits: Limits) -> dict[str, str]:
    problems = size_problems({str(path.relative_to(root)): path.stat().st_size for path in files}, str(root), limits)
    if problems:
        raise InvalidNetwork(problems)
    texts = {}
    for path in files:
        name = str(path.relative_to(root))
        try:
            texts[name] = path.read_bytes().decode("utf-8")
        except UnicodeDecodeError as error:
            problems.append(Problem(name, f"is not UTF-8 text (byte {error.start})"))
    if problems:
        raise InvalidNetwork(problems)
    return texts


def _top_key_problems(name: str, data, lines: dict, allowed: Iterable[str]) -> list[Problem]:
    if data is None:
        return []
    if not isinstance(data, dict):
        return [Problem(name, "the top level must be a mapping")]
    problems = []
    for key, value in data.items():
        where = f"{name}:{lines.get(key, 1)}"
        if key == "mine_functions" and value != MINE_FUNCTIONS:
            problems.append(Problem(where, f"mine_functions must be exactly {json.dumps(MINE_FUNCTIONS)} "
                                           "(other mine functions run commands on every minion)"))
        elif key == "include" and not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            problems.append(Problem(where, "include must be a list of SLS names"))
        elif key not in (PILLAR_KEY, "mine_functions", "include", *allowed):
            problems.append(Problem(where, top_key_refusal(key)))
    return problems


def top_key_refusal(key) -> str:
    return (f"top-level pillar key {_short(key)} is not allowed (only '{PILLAR_KEY}', 'mine_functions' and the keys "
            "the operator allows: wgmesh_gitops:allowed_pillar_keys on the master, --allow-key for wgmesh)")


def _leaf_paths(data, prefix=()):
    """(path, is_mapping) of every key path in ``data``."""
    if not isinstance(data, dict):
        return
    for key, value in data.items():
        path = (*prefix, key)
        yield path, isinstance(value, dict)
        yield from _leaf_paths(value, path)


def _overlap_problems(files: dict) -> list[Problem]:
    """A key path set in two files: Salt would keep one of them, depending on targeting and order."""
    owners: dict[tuple, tuple[str, bool]] = {}
    problems = []
    for name, data in files.items():
        if name == TOP_FILE or not isinstance(data, dict):
            continue
        for path, is_mapping in _leaf_paths({k: v for k, v in data.items() if k != "include"}):
            first = owners.get(path)
            if first is None:
                owners[path] = (name, is_mapping)
            elif first[0] != name and not (is_mapping and first[1]):
                problems.append(Problem(".".join(map(str, path)), f"defined in both {first[0]} and {name}: "
                                                                  "define each entry in one file only"))
    return problems


def _listed_minions(root: Path) -> list[str]:
    path = root / MINIONS_FILE
    if not path.is_file():
        return []
    if path.stat().st_size > MAX_MINIONS_FILE_BYTES:
        raise InvalidNetwork([Problem(MINIONS_FILE, f"larger than {MAX_MINIONS_FILE_BYTES} bytes")])
    ids = [line.split("#", 1)[0].strip() for line in path.read_text(errors="replace").splitlines()]
    bad = [i for i in ids if i and not i.isprintable()]
    if bad:
        raise InvalidNetwork([Problem(MINIONS_FILE, f"minion id {_short(bad[0])} has control characters")])
    return [i for i in ids if i]


def read_tree(root, allowed_keys: Iterable[str] = (), limits: Limits = Limits()) -> PillarTree:
    """Check and parse every SLS under ``root``; raises InvalidNetwork listing every problem."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: not a directory")
    files = _sls_files(root)
    if not files:
        raise FileNotFoundError(f"{root}: no .sls files")
    texts = _read_bounded(files, root, limits)
    tree, problems = PillarTree(root), []
    for name, text in texts.items():
        try:
            tree.files[name], lines = _parse(text, name, limits)
        except InvalidNetwork as error:
            problems += error.problems
            continue
        if name != TOP_FILE:
            problems += _top_key_problems(name, tree.files[name], lines, allowed_keys)
    problems += _overlap_problems(tree.files)
    if problems:
        raise InvalidNetwork(problems)
    tree.listed_minions = _listed_minions(root)
    tree.top_text = texts.get(TOP_FILE, "")
    return tree


def read_file_network(path, limits: Limits = Limits()) -> dict:
    """The ``wgmesh`` value of one SLS file on its own (no top file, nothing merged)."""
    path = Path(path)
    if path.stat().st_size > limits.max_bytes:
        raise InvalidNetwork([Problem(str(path), f"larger than the limit of {limits.max_bytes} bytes")])
    data, lines = _parse(path.read_bytes().decode("utf-8", errors="replace"), str(path), limits)
    problems = _top_key_problems(str(path), data, lines, ())
    if problems:
        raise InvalidNetwork(problems)
    if not isinstance(data, dict) or PILLAR_KEY not in data:
        raise InvalidNetwork([Problem(str(path), f"no '{PILLAR_KEY}' key")])
    return data[PILLAR_KEY]


# --- what Salt compiled --------------------------------------------------------------------

def plain(data):
    """``data`` as plain dicts/lists/scalars (Salt returns OrderedDicts), for comparing and printing."""
    if isinstance(data, dict):
        return {str(key): plain(value) for key, value in data.items()}
    if isinstance(data, (list, tuple)):
        return [plain(value) for value in data]
    return data if isinstance(data, (str, int, float, bool, type(None))) else str(data)


def first_difference(a, b, path: str = PILLAR_KEY) -> str:
    """Where two values first differ, as ``dotted.path: a vs b``."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b), key=str):
            if key not in a or key not in b:
                return f"{path}.{key}: {'missing' if key not in a else 'set'} vs {'missing' if key not in b else 'set'}"
            if a[key] != b[key]:
                return first_difference(a[key], b[key], f"{path}.{key}")
    return f"{path}: {_short(a)} vs {_short(b)}"


def _host_keys_problems(minion: str, value) -> list[Problem]:
    if not isinstance(value, dict):
        return [Problem(f"minion {minion}: {HOST_KEYS_KEY}", "must map minion ids to public keys")]
    return [Problem(f"minion {minion}: {HOST_KEYS_KEY}.{host}", why)
            for host, key in value.items() for why in [key_problem(key) if isinstance(key, str) else "not a key"]
            if why]


def agreed_network(compiled: dict, allowed_keys: Iterable[str] = ()) -> dict:
    """The one ``wgmesh`` value Salt serves, from {minion id: the pillar Salt compiled for it}.

    Refused: a compile error for any minion; a top-level key that is not allowed; minions
    that get different ``wgmesh`` values; a host of the network that gets none.
    """
    allowed = {PILLAR_KEY, "mine_functions", *allowed_keys}
    problems, networks = [], {}
    for minion, pillar in sorted(compiled.items()):
        for error in pillar.get("_errors") or []:
            problems.append(Problem(f"minion {minion}", "Salt's pillar compile failed: " + " ".join(str(error).split())))
        for key, value in pillar.items():
            if key == "_errors":
                continue
            if key not in allowed:
                problems.append(Problem(f"minion {minion}: {_short(key)}", top_key_refusal(key)))
            elif key == "mine_functions" and plain(value) != MINE_FUNCTIONS:
                problems.append(Problem(f"minion {minion}: mine_functions", "differs from what wgmesh sets "
                                                                            f"({json.dumps(MINE_FUNCTIONS)})"))
            elif key == HOST_KEYS_KEY:
                problems += _host_keys_problems(minion, plain(value))
        if PILLAR_KEY in pillar:
            networks[minion] = plain(pillar[PILLAR_KEY])
    if not networks:
        raise InvalidNetwork(problems + [Problem(TOP_FILE, f"no minion gets a '{PILLAR_KEY}' pillar")])
    # the value most minions get is the reference; every other minion is named
    groups: list[list[str]] = []
    for minion in sorted(networks):
        group = next((g for g in groups if networks[g[0]] == networks[minion]), None)
        group.append(minion) if group else groups.append([minion])
    majority = max(groups, key=len)
    network = networks[majority[0]]
    for minion in sorted(set(networks) - set(majority)):
        problems.append(Problem(f"{TOP_FILE}: minion {minion}", f"gets a different '{PILLAR_KEY}' pillar from "
                                f"{', '.join(majority)} ({first_difference(networks[minion], network)}): "
                                "every minion must get the same network"))
    hosts = PillarTree(Path("."), {"": {PILLAR_KEY: network}}).named_minions()
    for host in sorted(hosts & (set(compiled) - set(networks))):
        problems.append(Problem(f"{TOP_FILE}: minion {host}", f"is a host of the network but gets no "
                                                              f"'{PILLAR_KEY}' pillar"))
    if problems:
        raise InvalidNetwork(problems)
    return network
