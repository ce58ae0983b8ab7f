"""One SLS file of the pillar repository as JSON data: ``#!json`` first, checked, bounded.

For a large list of developers: Salt's ``json`` renderer reads a file of 10,000 developers
in about 20 ms where its YAML renderer takes about a second, on the master at every pillar
compile, in the gate and in ``wgmesh validate``/``plan``.  Write one developer per line and a
pull request's diff stays one line per developer.

Salt strips the ``#!json`` line and parses the rest with ``json.loads`` (no template, no tag,
no alias), so the checks here are what JSON itself leaves open: a key written twice in one
object (the parser keeps the last one, silently), ``NaN``/``Infinity`` (not JSON, and not what
every JSON library reads), a string that is not Unicode text (a lone surrogate escape: the
master could not send it to a minion), nesting past what any pillar needs.  The values
checked here are the ones the gate validates only after Salt compiles the file itself.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Optional

from .validate import InvalidNetwork, Problem
from .yamldata import MAX_PROBLEMS_PER_FILE, Limits, SlsFile, short, text_problems

SHEBANG = "#!json"
MAX_DEPTH = 64      # a pillar's deepest value is about 6 levels down


@dataclass
class JsonSlsFile(SlsFile):
    """A checked ``#!json`` file: its data stands where a YAML file has its node graph."""
    renderer = "json"

    def top_keys(self) -> dict:
        if not isinstance(self.root, dict):
            return {}
        return {key: (_line_of(self.text, key) or 2, value) for key, value in self.root.items()}

    def value(self, node):
        return node

    def child(self, node, *keys):
        for key in keys:
            if not isinstance(node, dict):
                return None
            node = node.get(key)
        return node


def _line_of(text: str, key: str, nth: int = 1, of: int = 1) -> int:
    """The line of the ``nth`` of the ``of`` places the string ``key`` is written, or 0 when
    it is written another number of times (there is no telling which place is meant)."""
    written, places = json.dumps(key), []
    at = text.find(written)
    while at >= 0 and len(places) <= of:
        places.append(at)
        at = text.find(written, at + 1)
    return text.count("\n", 0, places[nth - 1]) + 1 if len(places) == of else 0


class _Checks:
    """The parser's hooks: each object's keys once, no non-finite numbers."""

    def __init__(self, name: str, text: str):
        self.name, self.text, self.problems = name, text, []

    def pairs(self, pairs):
        mapping = dict(pairs)
        if len(mapping) != len(pairs) and len(self.problems) < MAX_PROBLEMS_PER_FILE:
            keys = [key for key, _ in pairs]
            seen = set()   # the first key written twice (in one pass: a quadratic search took minutes on a 1 MB object)
            twice = next(key for key in keys if key in seen or seen.add(key))
            line = _line_of(self.text, twice, nth=2, of=2)   # a developer's name, written twice
            self.problems.append(Problem(f"{self.name}:{line}" if line else self.name,
                                         f"duplicate key {short(twice)} in the object of the keys "
                                         f"{short(', '.join(keys), 80)}: a key may appear once per object"))
        return mapping

    def constant(self, word):
        raise ValueError(f"{word} is not a JSON number")


def _key_paths(root: dict) -> Optional[dict]:
    """{key path: is a mapping} of every object's keys, as yamldata's paths (a list, and what is
    inside it, is a leaf), in the same walk that bounds the nesting: None past ``MAX_DEPTH``
    levels (a list counts as a level)."""
    paths, stack = {}, [(root, (), 1)]     # (object or list, its key path or None, its depth)
    while stack:
        value, path, depth = stack.pop()
        if depth > MAX_DEPTH:
            return None
        if isinstance(value, list):
            stack.extend((item, None, depth + 1) for item in value if isinstance(item, (dict, list)))
            continue
        for key, child in value.items():
            key_path = None if path is None else (*path, key)
            if key_path is not None:
                paths[key_path] = isinstance(child, dict)
            if isinstance(child, (dict, list)):
                stack.append((child, None if isinstance(child, list) else key_path, depth + 1))
    return paths


def parse_json_sls(text: str, name: str, limits: Limits = Limits()) -> JsonSlsFile:
    """Check one ``#!json`` SLS file's text; raises InvalidNetwork naming the file and line."""
    problems = text_problems(name, text, SHEBANG)
    if problems:
        raise InvalidNetwork(problems)
    if "\n" not in text:   # Salt's renderer drops the first line up to its line break: none, none dropped
        raise InvalidNetwork([Problem(f"{name}:1", f"no line break after '{SHEBANG}': Salt's json renderer would "
                                                   "read the line itself as the JSON")])
    body = text[text.find("\n") + 1:]
    if not body.strip():
        return JsonSlsFile(name, None, None, {}, text)
    checks = _Checks(name, text)
    try:
        data = json.loads(body, object_pairs_hook=checks.pairs, parse_constant=checks.constant)
    except json.JSONDecodeError as error:
        raise InvalidNetwork([Problem(f"{name}:{error.lineno + 1}", f"not valid JSON: {error.msg}")]) from None
    except ValueError as error:
        raise InvalidNetwork([Problem(name, f"not valid JSON: {error}")]) from None
    except RecursionError:
        raise InvalidNetwork([Problem(name, "nested too deeply")]) from None
    if checks.problems:
        raise InvalidNetwork(checks.problems)
    if not isinstance(data, dict):
        raise InvalidNetwork([Problem(f"{name}:2", "the top level must be an object")])
    paths = _key_paths(data)
    if paths is None:
        raise InvalidNetwork([Problem(name, f"nested more than {MAX_DEPTH} levels deep")])
    try:   # every value once more, as JSON in UTF-8
        json.dumps(data, ensure_ascii=False, allow_nan=False).encode("utf-8")
    except UnicodeEncodeError as error:
        raise InvalidNetwork([Problem(name, f"a string is not Unicode text ({short(error.object[error.start:error.end])}: "
                                            "a lone surrogate escape)")]) from None
    except ValueError:    # 1e400: a float too large, read as infinity
        raise InvalidNetwork([Problem(name, "a number is out of range (read as infinity)")]) from None
    return JsonSlsFile(name, data, None, paths, text)


def dump_json_sls(data: dict) -> str:
    """A ``#!json`` file's text for ``data``: an object holding no object on one line (a
    developer per line under ``developers``), the others one entry per line."""
    def written(value, indent: str) -> str:
        if not isinstance(value, dict) or not any(isinstance(v, dict) for v in value.values()):
            return json.dumps(value)
        inner = indent + "  "
        entries = ",\n".join(f"{inner}{json.dumps(k)}: {written(v, inner)}" for k, v in value.items())
        return "{\n" + entries + "\n" + indent + "}"
    return f"{SHEBANG}\n{written(data, '')}\n"
