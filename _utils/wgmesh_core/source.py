"""The pillar repository as data: every SLS checked, never rendered, then what Salt compiled.

A pull request is data, never code.  ``read_tree`` checks every SLS of the
repository (``yamldata``: ``#!yaml`` first, no template syntax, bounded,
duplicate keys, aliases, tags; or ``jsondata``: ``#!json`` first, for large files), refuses a tree larger than ``max_bytes``
unread, refuses a key path defined in two files (one would silently win) and
any top-level key but the allowed ones.  Which file reaches which minion is
Salt's business: the ``wgmesh_salt`` package compiles the checked tree with
Salt's own pillar compiler, and ``agreed_network`` here checks what it
returns: one ``wgmesh`` value for every minion, nothing else riding along.
"""
from __future__ import annotations

import contextlib
import gc
import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from . import jsondata
from .keys import key_problem
from .validate import InvalidNetwork, Problem
from .yamldata import Limits, SlsFile, dump_sls, load_sls, parse_sls, short

__all__ = ["Limits", "PillarTree", "agreed_network", "collector_paused", "dump_sls", "load_sls", "read_file_network",
           "read_tree"]

PILLAR_KEY = "wgmesh"
HOST_KEYS_KEY = "wgmesh_host_keys"
TOP_FILE = "top.sls"
MINIONS_FILE = "minions.txt"      # optional: minion ids `wgmesh plan` compiles the pillar for
MAX_MINIONS_FILE_BYTES = 1_000_000
# optional: the intent tests (wgmesh_core.intent), parsed like an SLS; served to no minion
TESTS_FILE = "tests.yaml"
MAX_TESTS_FILE_BYTES = 1_000_000
# The mine entry wgmesh sets (pillar/wgmesh/mine.sls): anything else under mine_functions
# would run another execution module, with arguments from the pull request, on every minion.
MINE_FUNCTIONS = {"wgmesh_public_key": {"mine_function": "wgmesh.public_key"}}


# --- the tree ------------------------------------------------------------------------------

class _Pauses:
    """The collector pauses under way in this process: a Salt minion may run jobs in threads, whose
    pauses overlap and end in any order. The first to start notes whether the collector was on;
    the last to end puts it back so (two checks of ``gc.isenabled()`` apart would leave it off)."""
    lock = threading.Lock()
    count = 0
    collector_was_on = False


@contextlib.contextmanager
def collector_paused():
    """Python's cycle collector off while a pillar is read and planned, or a host planned and
    compared with its live state: its YAML nodes, values, models, peers and rules are millions of
    acyclic objects that every full collection would walk again (at 50,000 developers more than
    half of `wgmesh validate`'s time; about 0.15 s of a 10,000-developer hub's state run). What
    the block frees is freed by reference counting as always; a cycle waits for the collector's
    next run. Salt's transport turns the collector back on as it decodes a message
    (``salt.payload.loads``): a paused block makes no Salt call."""
    with _Pauses.lock:
        if _Pauses.count == 0:
            _Pauses.collector_was_on = gc.isenabled()
        _Pauses.count += 1
        gc.disable()
    try:
        yield
    finally:
        with _Pauses.lock:
            _Pauses.count -= 1
            if _Pauses.count == 0 and _Pauses.collector_was_on:
                gc.enable()


def hosts_named(network) -> set:
    """Minion ids a (partial) ``wgmesh`` value names as hosts: hub, gateways, LAN routers."""
    names = set()
    if not isinstance(network, dict):
        return names
    hub = network.get("hub")
    if isinstance(hub, dict) and isinstance(hub.get("minion"), str):
        names.add(hub["minion"])
    gateways = network.get("gateways")
    for gateway, entry in (gateways.items() if isinstance(gateways, dict) else []):
        names.add(str(gateway))
        if isinstance(entry, dict) and isinstance(entry.get("lan_router"), str):
            names.add(entry["lan_router"])
    return names


@dataclass
class PillarTree:
    """A checked pillar tree: each SLS file, by path relative to the root."""
    root: Path
    files: dict = field(default_factory=dict)     # "wgmesh/developers.sls" -> SlsFile
    listed_minions: list = field(default_factory=list)   # ids in minions.txt
    top_text: str = ""
    tests: object = None     # the data of tests.yaml (None: no such file)

    def forget_graphs(self) -> None:
        """Drop the files' node graphs once their values are compiled (at 50,000 developers a
        graph takes about 180 MB; ``named_minions`` needs them), their key paths (read when
        the tree is checked; they hold the graph's key texts: about 40 MB) and their texts."""
        for sls in self.files.values():
            sls.root = sls.loader = None
            sls.paths, sls.text = {}, ""

    def named_minions(self) -> set:
        """Minion ids the files name as hosts, however the network is split between them."""
        names = set()
        for sls in self.files.values():
            parts = {key: sls.child(sls.root, PILLAR_KEY, key) for key in ("hub", "gateways")}
            names |= hosts_named({key: sls.value(node) for key, node in parts.items() if node is not None})
        return names


def parse_file(text: str, name: str, limits: Limits = Limits()) -> SlsFile:
    """One SLS file checked as the data its first line names: ``#!json``, else YAML."""
    if text.split("\n", 1)[0].rstrip() == jsondata.SHEBANG:
        return jsondata.parse_json_sls(text, name, limits)
    return parse_sls(text, name, limits)


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


def top_key_refusal(key) -> str:
    return (f"top-level pillar key {short(key)} is not allowed (only '{PILLAR_KEY}', 'mine_functions' and the keys "
            "the operator allows: wgmesh_gitops:allowed_pillar_keys on the master, --allow-key for wgmesh)")


def _top_key_problems(sls: SlsFile, allowed: Iterable[str]) -> list[Problem]:
    problems = []
    for key, (line, node) in sls.top_keys().items():
        where = f"{sls.name}:{line}"
        if key == "mine_functions":
            if sls.value(node) != MINE_FUNCTIONS:
                problems.append(Problem(where, f"mine_functions must be exactly {json.dumps(MINE_FUNCTIONS)} "
                                               "(other mine functions run commands on every minion)"))
        elif key == "include":
            value = sls.value(node)
            if not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
                problems.append(Problem(where, "include must be a list of SLS names"))
        elif key not in (PILLAR_KEY, *allowed):
            problems.append(Problem(where, top_key_refusal(key)))
    return problems


def _overlap_problems(files: dict) -> list[Problem]:
    """A key path set in two files: Salt would keep one of them, depending on targeting and order."""
    owners: dict[tuple, str] = {}      # key path -> the first file that sets it
    problems = []
    for name, sls in files.items():
        if name == TOP_FILE:
            continue
        # the paths set before, found with set operations (a file of 10,000 developers has 40,000)
        shared = sls.paths.keys() & owners.keys()
        for path in (path for path in sls.paths if path in shared) if shared else ():
            first = owners[path]
            if path[0] != "include" and not (sls.paths[path] and files[first].paths[path]):
                problems.append(Problem(".".join(path), f"defined in both {first} and {name}: "
                                                        "define each entry in one file only"))
        owners.update(dict.fromkeys(sls.paths.keys() - shared, name))
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
        raise InvalidNetwork([Problem(MINIONS_FILE, f"minion id {short(bad[0])} has control characters")])
    return [i for i in ids if i]


def _tests_data(root: Path, limits: Limits):
    path = root / TESTS_FILE
    if path.is_symlink():
        raise InvalidNetwork([Problem(TESTS_FILE, "symbolic links are not allowed in the pillar")])
    if not path.is_file():
        return None
    if path.stat().st_size > MAX_TESTS_FILE_BYTES:
        raise InvalidNetwork([Problem(TESTS_FILE, f"larger than {MAX_TESTS_FILE_BYTES} bytes")])
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as error:
        raise InvalidNetwork([Problem(TESTS_FILE, f"is not UTF-8 text (byte {error.start})")]) from None
    return load_sls(text, TESTS_FILE, limits)


def read_tree(root, allowed_keys: Iterable[str] = (), limits: Limits = Limits()) -> PillarTree:
    """Check every SLS under ``root``; raises InvalidNetwork listing every problem."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: {'not a directory' if root.exists() else 'no such file or directory'}")
    files = _sls_files(root)
    if not files:
        raise FileNotFoundError(f"{root}: no .sls files")
    texts = _read_bounded(files, root, limits)
    tree, problems = PillarTree(root), []
    for name, text in texts.items():
        try:
            tree.files[name] = parse_file(text, name, limits)
        except InvalidNetwork as error:
            problems += error.problems
            continue
        if name != TOP_FILE:
            problems += _top_key_problems(tree.files[name], allowed_keys)
    problems += _overlap_problems(tree.files)
    if problems:
        raise InvalidNetwork(problems)
    tree.listed_minions = _listed_minions(root)
    tree.top_text = texts.get(TOP_FILE, "")
    tree.tests = _tests_data(root, limits)
    return tree


def read_file_network(path, limits: Limits = Limits()) -> dict:
    """The ``wgmesh`` value of one SLS file on its own (no top file, nothing merged)."""
    path = Path(path)
    if path.stat().st_size > limits.max_bytes:
        raise InvalidNetwork([Problem(str(path), f"larger than the limit of {limits.max_bytes} bytes")])
    sls = parse_file(path.read_bytes().decode("utf-8", errors="replace"), str(path), limits)
    problems = _top_key_problems(sls, ())
    if problems:
        raise InvalidNetwork(problems)
    node = sls.child(sls.root, PILLAR_KEY)
    if node is None:
        raise InvalidNetwork([Problem(str(path), f"no '{PILLAR_KEY}' key")])
    return sls.value(node)


# --- what Salt compiled --------------------------------------------------------------------

def plain(data):
    """``data`` as plain dicts/lists/scalars (Salt returns OrderedDicts), for comparing and printing."""
    if isinstance(data, dict):     # (strings, nearly every key and value, taken as they are)
        return {key if type(key) is str else str(key): value if type(value) is str else plain(value)
                for key, value in data.items()}
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
    return f"{path}: {short(a)} vs {short(b)}"


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
    problems, networks, converted = [], {}, {}
    for minion, pillar in sorted(compiled.items()):
        for error in pillar.get("_errors") or []:
            problems.append(Problem(f"minion {minion}", "Salt's pillar compile failed: " + " ".join(str(error).split())))
        for key, value in pillar.items():
            if key == "_errors":
                continue
            if key not in allowed:
                problems.append(Problem(f"minion {minion}: {short(key)}", top_key_refusal(key)))
            elif key == "mine_functions" and plain(value) != MINE_FUNCTIONS:
                problems.append(Problem(f"minion {minion}: mine_functions", "differs from what wgmesh sets "
                                                                            f"({json.dumps(MINE_FUNCTIONS)})"))
            elif key == HOST_KEYS_KEY:
                problems += _host_keys_problems(minion, plain(value))
        if PILLAR_KEY in pillar:   # minions with the same top matches share one compiled value
            value = pillar[PILLAR_KEY]
            networks[minion] = converted.get(id(value)) or converted.setdefault(id(value), plain(value))
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
    for host in sorted(hosts_named(network) & (set(compiled) - set(networks))):
        problems.append(Problem(f"{TOP_FILE}: minion {host}", f"is a host of the network but gets no "
                                                              f"'{PILLAR_KEY}' pillar"))
    if problems:
        raise InvalidNetwork(problems)
    return network
