"""What every test suite shares: paths, the fixed test date, the example pillar, CLI checks,
and the report of root-only tests (tests/salt, tests/lab, and tests using their fixtures)
when they are skipped.

A root-only test skips with ``skip_root_only(why)``. Under ``CI=true`` such a skip fails the
run: CI runs as root with everything `scripts/setup.sh` installs, so a skip there means the
suites silently stopped running.
"""
from __future__ import annotations

import copy
import datetime
import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PILLAR = REPO / "pillar"
BIN = Path(sys.executable).parent
WGMESH = BIN / "wgmesh"
# A fixed "today" for expiry: tests must not change meaning with the calendar.
TODAY = datetime.date(2025, 6, 15)
ROOT_ONLY = "root-only: "     # the prefix of a root-only test's skip reason


def example_network_data() -> dict:
    """A fresh, mutable copy of the example pillar's ``wgmesh`` value (the article's network)."""
    from wgmesh_core.source import read_network_data
    return copy.deepcopy(read_network_data(PILLAR))


def assert_clean_failure(done, returncode: int, message: str) -> None:
    """A command refused as documented: this exit code, ``message`` on stderr, no traceback."""
    assert done.returncode == returncode, (done.returncode, done.stdout, done.stderr)
    assert message in done.stderr, f"{message!r} not in stderr: {done.stderr!r}"
    assert "Traceback" not in done.stderr + done.stdout, done.stderr


# --- root-only tests: say loudly when they did not run ------------------------------------

def skip_root_only(why: str):
    """Skip a test that needs root (namespaces, iptables, wireguard-go), marked as root-only."""
    pytest.skip(ROOT_ONLY + why)


_root_skips: dict[str, list[str]] = {}


def pytest_runtest_logreport(report):
    if not report.skipped:
        return
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    reason = reason.removeprefix("Skipped: ")
    if reason.startswith(ROOT_ONLY):
        suite = "/".join(report.nodeid.split("/")[:2])
        _root_skips.setdefault(f"{suite}: {reason.removeprefix(ROOT_ONLY)}", []).append(report.nodeid)


def _on_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def pytest_terminal_summary(terminalreporter):
    if not _root_skips:
        return
    terminalreporter.section("root-only tests SKIPPED", sep="!", red=True, bold=True)
    for why, nodeids in _root_skips.items():
        terminalreporter.write_line(f"{len(nodeids)} test(s) not run: {why}")
    if _on_ci():
        terminalreporter.write_line("CI=true: failing the run, these suites must run on CI", red=True)


def pytest_sessionfinish(session, exitstatus):
    if _root_skips and _on_ci() and exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
