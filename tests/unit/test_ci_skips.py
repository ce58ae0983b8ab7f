"""The test command reports skipped root-only suites, and fails under CI=true when they skip."""
from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import REPO

# A root-only test that skips without root (its fixture checks the uid).
ROOT_ONLY_TEST = "tests/salt/test_local_apply.py::test_lan_router_gets_static_route"


def run_as_non_root(env_ci):
    """pytest on a root-only test as an unprivileged user (as root: through setpriv to nobody)."""
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env.update(PYTHONDONTWRITEBYTECODE="1", **({"CI": env_ci} if env_ci is not None else {}))
    drop = ["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups"] if os.geteuid() == 0 else []
    return subprocess.run([*drop, sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", ROOT_ONLY_TEST],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=120)


def test_a_skipped_root_suite_is_reported_and_passes_outside_ci():
    done = run_as_non_root(None)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "root-only tests SKIPPED" in done.stdout
    assert "1 test(s) not run: tests/salt: needs root, iproute2 and wireguard-go" in done.stdout
    assert "CI=true: failing the run" not in done.stdout


def test_a_skipped_root_suite_fails_the_run_under_ci():
    done = run_as_non_root("true")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "1 test(s) not run: tests/salt: needs root, iproute2 and wireguard-go" in done.stdout
    assert "CI=true: failing the run, these suites must run on CI" in done.stdout
