"""What every test suite shares: paths, the fixed test date, the example pillar, CLI checks,
the namespace lab (the article's network: tests/lab and the gate's tests in tests/security),
and the report of root-only tests (tests/salt, tests/lab, and tests using their fixtures)
when they are skipped.

A root-only test skips with ``skip_root_only(why)``. Under ``CI=true`` such a skip fails the
run: CI runs as root with everything `scripts/setup.sh` installs, so a skip there means the
suites silently stopped running.
"""
from __future__ import annotations

import copy
import datetime
import functools
import os
import shutil
import subprocess
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


@functools.lru_cache(maxsize=1)
def _example_network() -> dict:
    from wgmesh_salt import read_document   # as Salt compiles it: once per session
    return read_document(PILLAR).network


def example_network_data() -> dict:
    """A fresh, mutable copy of the example pillar's ``wgmesh`` value (the article's network)."""
    return copy.deepcopy(_example_network())


def run_wgmesh(*args, input: str = "") -> subprocess.CompletedProcess:
    """`wgmesh ARGS` run in this process (``cli.main``, stdin ``input``; argparse's exit status for
    usage errors and --help), as the installed command would run it: mutation testing sees the
    code it runs, which a subprocess hides from it."""
    import contextlib
    import io
    from wgmesh_core.cli import main
    out, err, stdin = io.StringIO(), io.StringIO(), sys.stdin
    sys.stdin = io.StringIO(input)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                returncode = main([str(arg) for arg in args])
            except SystemExit as stop:
                returncode = stop.code
    finally:
        sys.stdin = stdin
    return subprocess.CompletedProcess(["wgmesh", *map(str, args)], returncode, out.getvalue(), err.getvalue())


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


def pytest_unconfigure(config):
    # Salt's temporary log handler (salt._logging) holds the adapters' log records, to flush at
    # exit into the stderr it found at import, which pytest has closed by then: each record
    # would print a "--- Logging error ---" traceback after the run's summary.
    import logging
    logging.raiseExceptions = False


# --- the namespace lab: real namespaces, wireguard-go, salt-master and minions --------------

LAB_NEEDS = ("ip", "nsenter", "unshare", "mount", "wireguard-go", "wg", "wg-quick",
             "iptables", "conntrack", "tcpdump", "iperf3", "ss")


def _lab_skip_reason():
    if os.geteuid() != 0:
        return "namespace lab needs root"
    missing = [t for t in LAB_NEEDS if not shutil.which(t)]
    if missing:
        return f"namespace lab needs {', '.join(missing)}"
    try:
        subprocess.run(["ip", "netns", "list"], check=True, capture_output=True, timeout=10)
        subprocess.run(["unshare", "--net", "--mount", "true"], check=True,
                       capture_output=True, timeout=10)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"ip netns / unshare unavailable: {exc}"
    if not os.path.exists("/dev/net/tun"):
        return "no /dev/net/tun (wireguard-go needs TUN)"
    return None


LAB_SKIP_REASON = _lab_skip_reason() and ROOT_ONLY + _lab_skip_reason()


def pytest_collection_modifyitems(config, items):
    if not LAB_SKIP_REASON:
        return
    lab_tests = os.path.join(os.path.dirname(__file__), "lab")
    for item in items:
        if str(item.fspath).startswith(lab_tests) or "article" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.skip(reason=LAB_SKIP_REASON))


@pytest.fixture(scope="session")
def lab(tmp_path_factory):
    """One lab (topology only) shared by the lab tests of a session."""
    if LAB_SKIP_REASON:
        pytest.skip(LAB_SKIP_REASON)
    from lab import Lab, cleanup_stale
    cleanup_stale()
    net = Lab(workdir=tmp_path_factory.mktemp("lab"))
    with net:
        yield net


@pytest.fixture(scope="session")
def article(tmp_path_factory):
    """The article's network, live: converged by a real salt-master from a git push (lab/article.py).

    Shared by tests/lab/test_article.py (the network itself), test_gitops.py (pushes that change
    it; it leaves e, f, a, c as it found them) and tests/security/test_gate.py (pushes the gate
    refuses).
    """
    if LAB_SKIP_REASON:
        pytest.skip(LAB_SKIP_REASON)
    from lab import Lab
    from lab.article import ArticleLab
    net = Lab(workdir=tmp_path_factory.mktemp("article"))
    with net:
        scenario = ArticleLab(net)
        scenario.up()
        yield scenario
