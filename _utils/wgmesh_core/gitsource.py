"""Reading the network definition at a git revision of the pillar repository (GitPython)."""
from __future__ import annotations

import tempfile
from pathlib import Path

import git

from .source import read_network_data


def read_network_at(repo_path, rev: str, subdir: str = "") -> dict:
    """The ``wgmesh`` pillar data as committed at ``rev`` (files under ``subdir`` of the repo)."""
    repo = git.Repo(repo_path)
    tree = repo.commit(rev).tree
    if subdir:
        tree = tree / subdir.strip("/")
    with tempfile.TemporaryDirectory(prefix="wgmesh-rev-") as tmp:
        for blob in tree.traverse():
            if blob.type != "blob":
                continue
            target = Path(tmp) / blob.path[len(tree.path):].lstrip("/") if tree.path else Path(tmp) / blob.path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(blob.data_stream.read())
        return read_network_data(tmp)


def merge_base(repo_path, a: str, b: str) -> str:
    repo = git.Repo(repo_path)
    bases = repo.merge_base(a, b)
    if not bases:
        raise ValueError(f"{a} and {b} have no common ancestor")
    return bases[0].hexsha


def resolve(repo_path, rev: str) -> str:
    return git.Repo(repo_path).commit(rev).hexsha
