"""Hostile pull requests against the pillar repository, one per attack (issue 8).

Each attack changes a working tree of the pillar repository (the example pillar in
tests/security/test_plan.py, the lab's clone in test_gate.py) and names what the refusal
must say: the file (and line) or the entry.  Attacks that would run code write a marker
file, which must never exist: ``{marker}`` in their text is that file's path.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import yaml

from wgmesh_core.jsondata import dump_json_sls
from wgmesh_core.source import dump_sls, load_sls

DEVELOPERS = "wgmesh/developers.sls"
PUBLIC_KEY = "MyeHCD9sVXMXPgyEY79Yif8QskCjqm+SoJqmLXHN1RM="     # any valid key: f's in the example


@dataclass(frozen=True)
class Attack:
    name: str
    change: Callable[[Path, Path], None]   # (working tree, marker path)
    refusal: tuple                         # fragments the refusal must contain, all of them
    runs_code: bool = False                # the payload would run a command if rendered


def append(rel: str, text: str):
    def change(work: Path, marker: Path):
        path = work / rel
        path.write_text(path.read_text() + text.format(marker=marker))
    return change


def new_file(rel: str, content, top_target: str | None = "*"):
    """Add an SLS (``content``: its text, or data to dump) and give it to ``top_target`` in top.sls."""
    def change(work: Path, marker: Path):
        (work / rel).parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str):
            text = content.format(marker=marker)
        else:
            text = dump_sls(json.loads(json.dumps(content).replace("{marker}", str(marker))))
        (work / rel).write_text(text)
        if top_target:
            add_to_top(work, top_target, rel.removesuffix(".sls").replace("/", "."))
    return change


def add_to_top(work: Path, target: str, sls: str, **match):
    top = yaml.safe_load((work / "top.sls").read_text())
    entries = top["base"].setdefault(target, [dict(match)] if match else [])
    entries.append(sls)
    (work / "top.sls").write_text(dump_sls(top))


def developer(name, address, **extra) -> str:
    text = yaml.safe_dump({name: {"address": address, "public_key": PUBLIC_KEY, **extra}}, sort_keys=False)
    return "".join(f"    {line}\n" for line in text.splitlines())


def json_developers(extra_entry: str):
    """developers.sls rewritten as ``#!json`` (a developer per line) with ``extra_entry`` last."""
    def change(work: Path, marker: Path):
        path = work / DEVELOPERS
        text = dump_json_sls(load_sls(path.read_text(), DEVELOPERS))
        closing = "\n    }\n  }\n}\n"
        assert text.endswith(closing)
        path.write_text(text.removesuffix(closing) + ",\n      " + extra_entry.format(marker=marker) + closing)
    return change


def big_file(work: Path, marker: Path):
    padding = "# " + "x" * 98 + "\n"
    (work / "wgmesh" / "notes.sls").write_text("#!yaml\n" + padding * (10 * 2**20 // len(padding)))


def symlink(work: Path, marker: Path):
    os.symlink("/etc/salt/master", work / "wgmesh" / "master.sls")
    add_to_top(work, "*", "wgmesh.master")


def only_for_gateway_a(work: Path, marker: Path):
    """The issue's case: an SLS that top.sls gives to gateway a only, granting a developer
    every LAN there, while the other minions (and an unaware review) see no such grant."""
    (work / "wgmesh" / "a_extra.sls").write_text(dump_sls({"wgmesh": {"developers": {"g": {"lan_access": "all"}}}}))
    path = work / DEVELOPERS
    path.write_text(path.read_text() + developer("g", "10.70.0.9"))
    add_to_top(work, "a", "wgmesh.a_extra")


def developers_for_the_hub_only(work: Path, marker: Path):
    """top.sls gives the developers to the hub only: the gateways' allow-lists would lose them."""
    top = yaml.safe_load((work / "top.sls").read_text())
    top["base"]["*"].remove("wgmesh.developers")
    top["base"]["z"] = ["wgmesh.developers"]
    (work / "top.sls").write_text(dump_sls(top))


BOMB = "".join([f"    a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"]
               + [f"    a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]\n" for i in range(1, 10)])

ATTACKS = [
    Attack("jinja-cycler", append(DEVELOPERS, "# {{{{ cycler.__init__.__globals__.os.popen('touch {marker}').read() }}}}\n"),
           (DEVELOPERS, "template syntax '{{'"), runs_code=True),
    Attack("jinja-lipsum", append(DEVELOPERS, "    x: \"{{{{ lipsum.__globals__['os'].popen('touch {marker}').read() }}}}\"\n"),
           (DEVELOPERS, "template syntax '{{'"), runs_code=True),
    Attack("jinja-joiner", append(DEVELOPERS, "# {{{{ joiner.__init__.__globals__.os.popen('touch {marker}').read() }}}}\n"),
           (DEVELOPERS, "template syntax '{{'"), runs_code=True),
    Attack("jinja-namespace", append(DEVELOPERS, "# {{{{ namespace.__init__.__globals__.os.popen('touch {marker}').read() }}}}\n"),
           (DEVELOPERS, "template syntax '{{'"), runs_code=True),
    Attack("jinja-salt-defined", append(DEVELOPERS, "# {{% if salt is defined %}}{{{{ salt['cmd.run']('touch {marker}') }}}}"
                                                    "{{% endif %}}\n"),
           (DEVELOPERS, "template syntax '{{'"), runs_code=True),
    Attack("jinja-range", append(DEVELOPERS, "# {{% for i in range(10**12) %}}{{% endfor %}}\n"),
           (DEVELOPERS, "template syntax '{%'")),
    Attack("renderer-py", new_file("wgmesh/extra.sls", "#!py\nimport os\ndef run():\n    os.system('touch {marker}')\n"
                                                        "    return {{}}\n"),
           ("wgmesh/extra.sls:1", "must start with the line '#!yaml'"), runs_code=True),
    Attack("renderer-jinja-shebang", new_file("wgmesh/extra.sls", "#!jinja|yaml\nwgmesh: {{}}\n"),
           ("wgmesh/extra.sls:1", "must start with the line '#!yaml'")),
    Attack("no-shebang", new_file("wgmesh/extra.sls", "wgmesh:\n  developers: {{}}\n"),
           ("wgmesh/extra.sls:1", "must start with the line '#!yaml'")),
    Attack("yaml-alias-bomb", new_file("wgmesh/lol.sls", "#!yaml\nlol:\n" + BOMB.replace("{", "{{").replace("}", "}}")),
           ("wgmesh/lol.sls:2: refused", "aliases expand to more than")),
    Attack("yaml-recursive-alias", new_file("wgmesh/lol.sls", "#!yaml\nwgmesh:\n  x: &x [1, *x]\n"),
           ("wgmesh/lol.sls:3", "recursive")),
    Attack("yaml-python-tag", new_file("wgmesh/x.sls", "#!yaml\nwgmesh: !!python/object/apply:os.system ['touch {marker}']\n"),
           ("wgmesh/x.sls:2", "is not allowed: plain YAML only"), runs_code=True),
    Attack("ten-megabytes", big_file, ("wgmesh/notes.sls: refused unread", "more than the limit of 4194304")),
    Attack("duplicate-key-in-one-mapping", append(DEVELOPERS, developer("e", "10.70.0.9")),
           (DEVELOPERS, "duplicate key 'e'")),
    Attack("duplicate-key-across-files",
           new_file("wgmesh/onboard_h.sls", {"wgmesh": {"developers": {"e": {"public_key": PUBLIC_KEY}}}}),
           ("wgmesh.developers.e.public_key", "defined in both", DEVELOPERS, "wgmesh/onboard_h.sls")),
    Attack("top-override-for-one-minion", only_for_gateway_a,
           ("top.sls: minion", "gets a different 'wgmesh' pillar", "wgmesh.developers.g.lan_access")),
    Attack("top-developers-for-the-hub-only", developers_for_the_hub_only,
           ("top.sls: minion", "gets a different 'wgmesh' pillar", "wgmesh.developers")),
    Attack("top-level-schedule",
           new_file("wgmesh/ops.sls", {"schedule": {"pwn": {"function": "cmd.run", "args": ["touch {marker}"],
                                                             "seconds": 1}}}),
           ("wgmesh/ops.sls:2", "top-level pillar key 'schedule' is not allowed"), runs_code=True),
    Attack("top-level-host-keys", new_file("wgmesh/keys.sls", {"wgmesh_host_keys": {"a": PUBLIC_KEY}}),
           ("wgmesh/keys.sls:2", "top-level pillar key 'wgmesh_host_keys' is not allowed")),
    Attack("mine-function-cmd-run", new_file("wgmesh/mine2.sls", {"mine_functions": {
        "pwn": {"mine_function": "cmd.run", "cmd": "touch {marker}"}}}),
           ("wgmesh/mine2.sls:2", "mine_functions must be exactly"), runs_code=True),
    Attack("include-under-a-key", new_file("wgmesh/inc.sls", {"include": [{"wgmesh.mine": {"key": "schedule"}}]}),
           ("wgmesh/inc.sls:2", "include must be a list of SLS names")),
    Attack("symlink-to-master-config", symlink, ("wgmesh/master.sls", "symbolic links")),
    # developers.sls in JSON (jsondata): what JSON leaves open
    Attack("json-duplicate-developer", json_developers('"e": {{"address": "10.70.0.9", "public_key": "' + PUBLIC_KEY + '"}}'),
           (DEVELOPERS, "duplicate key 'e'")),
    Attack("json-lone-surrogate", json_developers('"h": {{"address": "10.70.0.9", "contact": "\\udc80"}}'),
           (DEVELOPERS, "a string is not Unicode text")),
    Attack("json-schedule", new_file("wgmesh/ops.sls", '#!json\n{{"schedule": {{"pwn": {{"function": "cmd.run", '
                                                       '"args": ["touch {marker}"], "seconds": 1}}}}}}\n'),
           ("wgmesh/ops.sls:2", "top-level pillar key 'schedule' is not allowed"), runs_code=True),
]


def by_name(name: str) -> Attack:
    return next(a for a in ATTACKS if a.name == name)
