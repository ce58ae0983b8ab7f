"""Reading the network definition from pillar files, without a Salt master.

A pillar directory is read the way Salt's default pillar merge would see it
for a minion targeted by every SLS: each ``*.sls``/``*.yaml`` file (top.sls
excepted) is rendered with Jinja, parsed as YAML and deep-merged in path
order; the network is the ``wgmesh`` value.
"""
from __future__ import annotations

from pathlib import Path

import jinja2
import yaml

from .validate import InvalidNetwork, Problem

PILLAR_KEY = "wgmesh"


def deep_merge(base: dict, other: dict) -> dict:
    merged = dict(base)
    for key, value in other.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def pillar_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    files = [p for p in sorted(path.rglob("*")) if p.suffix in (".sls", ".yaml", ".yml") and p.name != "top.sls"]
    if not files:
        raise FileNotFoundError(f"{path}: no .sls or .yaml files")
    return files


def read_pillar(path) -> dict:
    """The merged pillar data of a directory (or of one file)."""
    path = Path(path)
    merged: dict = {}
    problems = []
    for file in pillar_files(path):
        try:
            data = yaml.safe_load(jinja2.Template(file.read_text()).render())
        except (yaml.YAMLError, jinja2.TemplateError) as error:
            problems.append(Problem(str(file), f"cannot be parsed: {error}".replace("\n", " ")))
            continue
        if data is None:
            continue
        if not isinstance(data, dict):
            problems.append(Problem(str(file), "the top level must be a mapping"))
            continue
        merged = deep_merge(merged, data)
    if problems:
        raise InvalidNetwork(problems)
    return merged


def read_network_data(path) -> dict:
    pillar = read_pillar(path)
    if PILLAR_KEY not in pillar:
        raise InvalidNetwork([Problem(str(path), f"no '{PILLAR_KEY}' key in the pillar")])
    return pillar[PILLAR_KEY]
