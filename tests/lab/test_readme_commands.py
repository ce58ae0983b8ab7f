"""The READMEs' `runnable=lab` blocks on the article lab's salt-master, and the lab README's
`runnable=lab-cli` block with a lab of its own (see tests/readme.py)."""
from __future__ import annotations

import os
import subprocess
import sys
import uuid

import pytest

from tests.conftest import BIN, REPO
from tests.readme import runnable


@pytest.mark.parametrize("block", runnable("lab"), ids=str)
def test_a_salt_block_runs_on_the_master(article, block):
    done = article.lab.exec("master", ["bash", "-euo", "pipefail", "-c", block.text], check=False, timeout=600)
    assert done.returncode == 0, f"{block} failed:\n{block.text}\nstdout: {done.stdout}\nstderr: {done.stderr}"
    assert "Traceback" not in done.stdout + done.stderr


@pytest.mark.parametrize("block", runnable("lab-cli"), ids=str)
def test_a_lab_cli_block_runs(block):
    """`python -m lab ...` as the lab README shows it, on a lab id of its own (never another's).
    Skipped without root by tests/lab/conftest.py, like every lab test."""
    lab_id = f"rd{uuid.uuid4().hex[:6]}"
    env = dict(os.environ, LAB_ID=lab_id, PATH=f"{BIN}:{os.environ['PATH']}")
    try:
        done = subprocess.run(["bash", "-euo", "pipefail", "-c", block.text], cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=600)
    finally:
        subprocess.run([sys.executable, "-m", "lab", "--id", lab_id, "down"], cwd=REPO, env=env,
                       capture_output=True, timeout=300)
    assert done.returncode == 0, f"{block} failed:\n{block.text}\nstdout: {done.stdout}\nstderr: {done.stderr}"
    assert "Traceback" not in done.stdout + done.stderr
    assert f"lab {lab_id} up" in done.stdout
