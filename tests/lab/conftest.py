"""Namespace-lab tests: real network/mount namespaces, real wireguard-go,
real salt-master and minions.  Skipped (with the reason) unless root with
working `ip netns`, nsenter/unshare and wireguard-go."""
import os
import shutil
import subprocess

import pytest

from tests.conftest import ROOT_ONLY

NEEDED = ("ip", "nsenter", "unshare", "mount", "wireguard-go", "wg", "wg-quick",
          "iptables", "conntrack", "tcpdump", "iperf3", "ss")


def _skip_reason():
    if os.geteuid() != 0:
        return "namespace lab needs root"
    missing = [t for t in NEEDED if not shutil.which(t)]
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


SKIP_REASON = _skip_reason() and ROOT_ONLY + _skip_reason()


def pytest_collection_modifyitems(config, items):
    if not SKIP_REASON:
        return
    here = os.path.dirname(__file__)
    for item in items:
        if str(item.fspath).startswith(here):
            item.add_marker(pytest.mark.skip(reason=SKIP_REASON))


@pytest.fixture(scope="session")
def lab(tmp_path_factory):
    """One lab (topology only) shared by the lab tests of a session."""
    if SKIP_REASON:
        pytest.skip(SKIP_REASON)
    from lab import Lab, cleanup_stale
    cleanup_stale()
    net = Lab(workdir=tmp_path_factory.mktemp("lab"))
    with net:
        yield net


@pytest.fixture(scope="session")
def article(tmp_path_factory):
    """The article's network, live: converged by a real salt-master from a git push (lab/article.py).

    Shared by test_article.py (the network itself) and test_gitops.py (pushes that change it),
    which runs after it and leaves e, f, a, c as it found them.
    """
    if SKIP_REASON:
        pytest.skip(SKIP_REASON)
    from lab import Lab
    from lab.article import ArticleLab
    net = Lab(workdir=tmp_path_factory.mktemp("article"))
    with net:
        scenario = ArticleLab(net)
        scenario.up()
        yield scenario
