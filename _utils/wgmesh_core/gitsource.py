"""The pillar files at a git revision of the pillar repository (GitPython)."""
from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path

import git

from .source import MAX_MINIONS_FILE_BYTES, MAX_TESTS_FILE_BYTES, MINIONS_FILE, TESTS_FILE, Limits, size_problems
from .validate import InvalidNetwork, Problem

SYMLINK_MODE = 0o120000


def _pillar_items(repo_path, rev: str, subdir: str):
    """(path below subdir, blob) of every SLS file and minions.txt; refuses symlinks and submodules
    (git_pillar's checkout would make the master read what a link points at)."""
    tree = git.Repo(repo_path).commit(rev).tree
    if subdir.strip("/"):
        try:
            tree = tree / subdir.strip("/")
        except KeyError:
            raise FileNotFoundError(f"{subdir}: no such folder at {rev[:12]}") from None
        if tree.type != "tree":     # a file, a symbolic link or a submodule where the folder should be
            raise InvalidNetwork([Problem(subdir.strip("/"), "the pillar's folder is a file, a symbolic link or a "
                                                             "submodule here: it must be a folder of the repository")])
    items, problems = [], []
    for item in tree.traverse():
        path = item.path[len(tree.path):].lstrip("/") if tree.path else item.path
        if item.type == "submodule" or (item.type == "blob" and item.mode == SYMLINK_MODE):
            problems.append(Problem(path, "symbolic links and submodules are not allowed in the pillar repository"))
        elif item.type == "blob" and (path.endswith(".sls") or path in (MINIONS_FILE, TESTS_FILE)):
            items.append((path, item))
    if problems:
        raise InvalidNetwork(problems)
    return items


@contextlib.contextmanager
def checked_out(repo_path, rev: str, subdir: str = "", limits: Limits = Limits()):
    """A temporary directory holding the pillar files of ``rev`` (its SLS files, minions.txt and tests.yaml,
    under ``subdir``), written only after the tree passed the size limits (no blob is read before)."""
    items = _pillar_items(repo_path, rev, subdir)
    problems = size_problems({path: blob.size for path, blob in items if path.endswith(".sls")},
                             f"{rev[:12]}:{subdir or '.'}", limits)
    problems += [Problem(path, f"larger than {MAX_MINIONS_FILE_BYTES} bytes") for path, blob in items
                 if path == MINIONS_FILE and blob.size > MAX_MINIONS_FILE_BYTES]
    problems += [Problem(path, f"larger than {MAX_TESTS_FILE_BYTES} bytes") for path, blob in items
                 if path == TESTS_FILE and blob.size > MAX_TESTS_FILE_BYTES]
    if problems:
        raise InvalidNetwork(problems)
    with tempfile.TemporaryDirectory(prefix="wgmesh-rev-") as tmp:
        for path, blob in items:
            target = Path(tmp) / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(blob.data_stream.read())
        yield Path(tmp)


def merge_base(repo_path, a: str, b: str) -> str:
    repo = git.Repo(repo_path)
    bases = repo.merge_base(a, b)
    if not bases:
        raise ValueError(f"{a} and {b} have no common ancestor")
    return bases[0].hexsha


def resolve(repo_path, rev: str) -> str:
    return git.Repo(repo_path).commit(rev).hexsha

