"""Every attack as a push to the lab's pillar repository, through the master's gate (the
post-receive hook -> `wgmesh/push` -> reactor -> the `wgmesh.on_push` runner): refused with a
`wgmesh/gate/refused` event naming the file and line or the entry; no code ran (the marker
file never appears, not even after the seconds a pillar schedule would need), nothing was
deployed (the `deployed` branch did not move), and no host changed (no state job was sent,
the hub's live peers and a gateway's allow-list are as before).

Uses the article lab of the session (tests/conftest.py) and leaves it as it found it.
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

from lab.article import GATE_REPO, jid_now, state_jobs_since

from .attacks import ATTACKS


def host_state(lab):
    """What a refused push must not change: the hub's live peers, gateway a's allow-list."""
    peers = sorted(lab.exec("z", ["wg", "show", "wg0", "allowed-ips"]).stdout.splitlines())  # any order
    return peers, lab.exec("a", ["iptables", "-S", "WGMESH-FORWARD"]).stdout


def deployed_revision(article) -> str:
    """The gate's ``deployed`` branch, read as the master's user (git refuses root a repository
    another user owns)."""
    return article.lab.exec("master", article.lab.as_master_user(
        ["git", "--git-dir", GATE_REPO, "rev-parse", "deployed"])).stdout.strip()


@pytest.fixture
def marker(article):
    """Where an attack that ran code would leave its file: in /tmp (shared by the lab's hosts and
    the tests), in a folder the master's user (salt) and the minions (root) can both write to;
    checked by writing there as salt first."""
    folder = Path(tempfile.mkdtemp(prefix="wgmesh-marker-"))
    folder.chmod(0o777)
    probe = folder / "probe"
    article.lab.exec("master", article.lab.as_master_user(["touch", str(probe)]))
    assert probe.exists()
    probe.unlink()
    yield folder / "marker"
    shutil.rmtree(folder)


@pytest.fixture
def pushed_back(article):
    """After the attack, the upstream's main goes back to the deployed revision (a push that
    fires no hook: the gate has nothing to do)."""
    deployed = deployed_revision(article)
    yield deployed
    article.git("reset", "-q", "--hard", deployed)
    article.git("clean", "-qfdx")
    hook = article.upstream / "hooks" / "post-receive"
    hook.chmod(0o644)
    try:
        article.git("push", "-q", "--force", "origin", "main")
    finally:
        hook.chmod(0o755)


@pytest.mark.parametrize("attack", ATTACKS, ids=lambda a: a.name)
def test_the_gate_refuses_the_attack(attack, article, pushed_back, marker):
    lab = article.lab
    before = host_state(lab)
    jid = jid_now()
    attack.change(article.work, marker)
    event = article.push_and_wait(f"pull request: {attack.name}")
    assert event["tag"] == "wgmesh/gate/refused", event
    problems = "\n".join(event["data"]["problems"])
    for fragment in attack.refusal:
        assert fragment in problems, f"{fragment!r} not in:\n{problems}"
    assert "Traceback" not in problems
    assert deployed_revision(article) == pushed_back
    assert state_jobs_since(lab, jid) == set()
    assert host_state(lab) == before
    # last, seconds after the refusal: time a pillar schedule (seconds: 1) would have had to run
    assert not marker.exists(), "the pull request ran code"
