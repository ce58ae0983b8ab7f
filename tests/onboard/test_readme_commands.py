"""The READMEs' shell blocks: each says whether a test runs it, and the `runnable=repo` ones run."""
from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from tests.readme import PLACES, blocks, runnable

from .conftest import BIN, PILLAR, git


def test_every_shell_block_says_whether_a_test_runs_it():
    untagged = [f"{block}: {block.tags}" for block in blocks()
                if not (block.runnable in PLACES or block.tags == ("manual",))]
    assert not untagged, ("tag each ```bash block with runnable=<" + "|".join(PLACES) + "> (a test runs it, "
                          "see tests/readme.py) or manual: " + "; ".join(untagged))
    assert {block.runnable for block in blocks()} >= set(PLACES)


@pytest.fixture
def checkout(tmp_path):
    """A git repository holding the example pillar under pillar/, as the README's commands expect."""
    work = tmp_path / "checkout"
    shutil.copytree(PILLAR, work / "pillar")
    git(work, "init", "-q", "-b", "main")
    git(work, "add", "-A")
    git(work, "commit", "-q", "-m", "the example pillar")
    return work


@pytest.mark.parametrize("block", runnable("repo"), ids=str)
def test_a_repo_block_runs(block, checkout, tmp_path):
    env = {"PATH": f"{BIN}:{os.environ['PATH']}", "HOME": str(tmp_path / "home"), "LANG": "C.UTF-8"}
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", block.text], cwd=checkout, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"{block} failed:\n{block.text}\nstdout: {done.stdout}\nstderr: {done.stderr}"
    assert "Traceback" not in done.stderr
