"""Shared helpers of the onboarding / pull-request tests: real git pillar repositories in tmp_path."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from wgmesh_core.keys import generate_private_key, public_key
from wgmesh_core.source import TESTS_FILE, dump_sls
from wgmesh_core.validate import load_network
from wgmesh_salt import read_document_at

from tests.conftest import BIN, PILLAR, REPO, TODAY, WGMESH  # noqa: F401 (shared constants)

MERMAID = REPO / "tests" / "mermaid"      # Mermaid's own parser under node (scripts/setup.sh installs it)


def parse_mermaid(text, tmp_path):
    """What Mermaid's parser reads from ``text`` (raises with its message when it cannot parse)."""
    assert (MERMAID / "node_modules" / "mermaid").is_dir(), "run scripts/setup.sh: it installs tests/mermaid"
    source = tmp_path / "diagram.mmd"
    source.write_text(text)
    done = subprocess.run(["node", str(MERMAID / "parse.mjs"), str(source)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def mermaid_block(markdown):
    blocks = re.findall(r"^(`{3,})mermaid\n(.*?)\n\1$", markdown, re.S | re.M)
    assert len(blocks) == 1, markdown
    return blocks[0][1] + "\n"


GIT_IDENTITY = ["-c", "user.name=wgmesh tests", "-c", "user.email=tests@example.invalid",
                "-c", "commit.gpgsign=false", "-c", "init.defaultBranch=main"]


def git(cwd, *args, check=True) -> str:
    done = subprocess.run(["git", *GIT_IDENTITY, *args], cwd=cwd, capture_output=True, text=True)
    if check and done.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed ({done.returncode}): {done.stderr}")
    return done.stdout.strip()


def wgmesh(*args, input=None, cwd=None, env=None):
    """Run the installed `wgmesh` command; returns the CompletedProcess (text)."""
    assert WGMESH.exists(), f"{WGMESH} missing: install wgmesh in the test interpreter's environment"
    return subprocess.run([str(WGMESH), *map(str, args)], input=input, cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=60)


def new_public_key() -> str:
    return public_key(generate_private_key())


def developer_entry(name, address, public, **extra) -> str:
    """Text of one developer entry, indented to go under `wgmesh: developers:`."""
    text = yaml.safe_dump({name: {"address": address, "public_key": public, **extra}},
                          sort_keys=False, default_flow_style=None)
    return "".join(f"    {line}\n" for line in text.splitlines())


class PillarRepo:
    """A git repository whose tree is a copy of the example pillar (top.sls, wgmesh/*.sls)."""

    def __init__(self, path: Path):
        self.path = path

    def git(self, *args, check=True) -> str:
        return git(self.path, *args, check=check)

    def file(self, rel) -> Path:
        return self.path / rel

    def append(self, rel, text):
        target = self.file(rel)
        target.write_text(target.read_text() + text)

    def replace(self, rel, old, new):
        target = self.file(rel)
        content = target.read_text()
        assert content.count(old) == 1, f"{old!r} not exactly once in {rel}"
        target.write_text(content.replace(old, new))

    def edit_yaml(self, rel, change):
        """Load ``rel``, let ``change(data)`` modify it, write it back."""
        target = self.file(rel)
        data = yaml.safe_load(target.read_text())
        change(data)
        target.write_text(dump_sls(data))

    def add_developer(self, name, address, public, **extra):
        self.append("wgmesh/developers.sls", developer_entry(name, address, public, **extra))

    def commit(self, message) -> str:
        self.git("add", "-A")
        self.git("commit", "-q", "-m", message)
        return self.git("rev-parse", "HEAD")

    def branch(self, name, start="main"):
        self.git("checkout", "-q", "-b", name, start)

    def spec_at(self, rev):
        return load_network(read_document_at(self.path, rev).network)


def make_pillar_repo(path: Path, intent: bool = False) -> PillarRepo:
    """The example pillar in a new repository; ``intent``: with its tests.yaml (without it, a pull
    request may change reachability freely, as the per-host scenarios do)."""
    shutil.copytree(PILLAR, path, ignore=None if intent else shutil.ignore_patterns(TESTS_FILE))
    git(path, "init", "-q", "-b", "main")
    repo = PillarRepo(path)
    repo.commit("the article's network")
    return repo


@pytest.fixture
def pillar_repo(tmp_path) -> PillarRepo:
    """The example pillar committed on `main` of a fresh repository (checked out on main)."""
    return make_pillar_repo(tmp_path / "pillar-repo")
