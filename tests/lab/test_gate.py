"""The gate, live (issue 8): what it accepts is what the minions get; a webhook push needs the
shared secret; pushes piled up behind the gate's lock are coalesced into one run.

Runs on the article lab after test_article.py; each test leaves the network deployed and
the post-receive hook enabled.
"""
from __future__ import annotations

import fcntl
import glob
import hashlib
import hmac
import json
import os
import sys
import threading
import time

import pytest

from lab.article import GATE_REPO, MINIONS, SALT_API_PORT, UPSTREAM
from lab.saltctl import MASTER_USER
from lab.plan import MASTER_IP

SECRET = "correct horse battery staple"


def normalised(value) -> str:
    return json.dumps(value, sort_keys=True)


def test_the_gates_document_is_what_salt_call_returns_on_every_minion(article):
    lab = article.lab
    accepted = lab.salt_run(["wgmesh.deployed_network"])
    # salt 3008 masks pillar values in output (****): unmask=True shows what states read
    assert accepted["revision"] == lab.salt_run(["wgmesh.deployed_revision"])
    assert set(accepted["network"]["developers"]) >= {"e", "f"}
    for minion in MINIONS:
        served = json.loads(lab.exec(minion, ["salt-call", "--out=json", "pillar.get", "wgmesh", "unmask=True"]).stdout)["local"]
        assert normalised(served) == normalised(accepted["network"]), minion


def test_the_master_and_the_hook_work_as_user_salt(article):
    """Like a packaged master, the lab's runs as user salt: the gate's repository and lock, the
    preshared-key secret and the pushes the hook announced (git-receive-pack and the hook's
    salt-run run as salt too) are that user's; nothing of it is readable by others."""
    lab = article.lab
    uid = int(lab.exec("master", ["id", "-u", MASTER_USER]).stdout)
    assert lab.exec("master", ["ps", "-o", "user=", "-p", str(lab.pid("master", "salt-master"))]).stdout.strip() == MASTER_USER
    owned = {"/etc/salt/wgmesh": 0o700, "/etc/salt/wgmesh/psk.secret": 0o600,
             "/var/cache/salt/master/wgmesh": 0o700, f"{GATE_REPO}/wgmesh-gate.lock": None,
             f"{GATE_REPO}/refs/heads/deployed": None, f"{UPSTREAM}/refs/heads/main": None}
    for path, mode in owned.items():
        info = lab.host_path("master", path).stat()
        assert info.st_uid == uid, path
        assert mode is None or info.st_mode & 0o777 == mode, (path, oct(info.st_mode))
    # every push was received as salt (git-receive-pack, then the hook, whose event deployed it)
    assert lab.salt_run(["wgmesh.deployed_revision"]) == article.git("rev-parse", "HEAD").stdout.strip()
    upstream = lab.host_path("master", UPSTREAM)
    assert [p for p in upstream.rglob("*") if p.stat().st_uid != uid] == [upstream / "hooks" / "post-receive"]


@pytest.fixture
def hook_disabled(article):
    """Pushes reach the upstream without firing `wgmesh/push` (the hook is made non-executable)."""
    hook = article.upstream / "hooks" / "post-receive"
    hook.chmod(0o644)
    try:
        yield
    finally:
        hook.chmod(0o755)


def push_contact_change(article, name, contact) -> str:
    developers = article.developers()
    developers[name]["contact"] = contact
    article.commit(f"{name}'s contact", article.developers_file(developers))
    article.git("push", "-q", "origin", "main")
    return article.git("rev-parse", "HEAD").stdout.strip()


def post_webhook(article, headers: dict, body: str) -> int:
    """POST to salt-api's /hook/wgmesh/push from host z, as a git server would."""
    script = ("import sys, json, urllib.request\n"
              f"req = urllib.request.Request('http://{MASTER_IP}:{SALT_API_PORT}/hook/wgmesh/push', "
              "data=sys.argv[2].encode(), headers=json.loads(sys.argv[1]), method='POST')\n"
              "print(urllib.request.urlopen(req, timeout=30).status)\n")
    headers = {"Content-Type": "application/json", **headers}
    out = article.lab.exec("z", [sys.executable, "-c", script, json.dumps(headers), body])
    return int(out.stdout.strip())


def test_a_webhook_push_needs_the_shared_secret(article, hook_disabled):
    lab = article.lab
    secret_file = lab.host_path("master", "/etc/salt/wgmesh/webhook.secret")
    article.start_salt_api()
    deployed = lab.salt_run(["wgmesh.deployed_revision"])
    tip = push_contact_change(article, "e", "e@example.invalid")
    body = json.dumps({"object_kind": "push", "after": tip})

    # no secret configured on the master: refused whatever the request says
    secret_file.unlink(missing_ok=True)
    waiter = article.wait_event("wgmesh/gate/unauthenticated|wgmesh/applied|wgmesh/gate/refused")
    assert post_webhook(article, {"X-Gitlab-Token": SECRET}, body) == 200
    event = waiter.result()
    assert event["tag"] == "wgmesh/gate/unauthenticated" and "no webhook secret" in event["data"]["problems"][0]

    # as README's master setup says: readable by the master's user only
    secret_file.write_text(SECRET + "\n")
    secret_file.chmod(0o600)
    lab.exec("master", ["chown", f"{MASTER_USER}:{MASTER_USER}", "/etc/salt/wgmesh/webhook.secret"])
    for headers in ({}, {"X-Gitlab-Token": "guess"}, {"X-Hub-Signature-256": "sha256=" + "0" * 64}):
        waiter = article.wait_event("wgmesh/gate/unauthenticated|wgmesh/applied|wgmesh/gate/refused")
        post_webhook(article, headers, body)
        event = waiter.result()
        assert event["tag"] == "wgmesh/gate/unauthenticated", (headers, event)
        assert "does not match the shared secret" in event["data"]["problems"][0]
        assert lab.salt_run(["wgmesh.deployed_revision"]) == deployed

    signature = "sha256=" + hmac.new(SECRET.encode(), body.encode(), hashlib.sha256).hexdigest()
    waiter = article.wait_event("wgmesh/gate/unauthenticated|wgmesh/applied|wgmesh/gate/refused")
    post_webhook(article, {"X-Hub-Signature-256": signature}, body)
    event = waiter.result()
    assert event["tag"] == "wgmesh/applied" and event["data"]["revision"] == tip, event
    assert event["data"]["affected"] == []          # a contact changes no host
    assert lab.salt_run(["wgmesh.deployed_revision"]) == tip


def open_files_of(path) -> int:
    """How many open files of processes are ``path`` (they wait for its lock), matched by inode: a
    process in the master's mount namespace names it by its own path."""
    target = os.stat(path)
    count = 0
    for fd in glob.glob("/proc/[0-9]*/fd/*"):
        try:
            found = os.stat(fd)
        except OSError:
            continue
        count += (found.st_dev, found.st_ino) == (target.st_dev, target.st_ino)
    return count


def test_pushes_piled_up_behind_the_gate_are_coalesced(article, hook_disabled):
    lab = article.lab
    lock_path = article.deployed / "wgmesh-gate.lock"
    tip = push_contact_change(article, "f", "f@example.invalid")
    results, waiters = [], []
    with open(lock_path, "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)               # a gate run in progress
        waiters = [threading.Thread(target=lambda: results.append(lab.salt_run(["wgmesh.on_push"], timeout=300)))
                   for _ in range(4)]
        for waiter in waiters:
            waiter.start()
        deadline = time.monotonic() + 120
        while open_files_of(lock_path) < 5:            # ours and the four waiters'
            assert time.monotonic() < deadline, "the runners did not reach the gate's lock"
            time.sleep(0.2)
    for waiter in waiters:
        waiter.join(300)
    outcomes = sorted(r["result"] for r in results)
    assert outcomes == ["applied", "coalesced", "coalesced", "coalesced"], results
    assert {r["revision"] for r in results} == {tip}
    assert lab.salt_run(["wgmesh.deployed_revision"]) == tip


def _the_nth(n: int, predicate):
    """An EventWaiter ``until``: true at the ``n``-th event ``predicate`` accepts."""
    seen = []

    def until(event) -> bool:
        if predicate(event):
            seen.append(event)
        return len(seen) >= n
    return until


def _gate_run(event) -> bool:
    return event["data"].get("fun") == "runner.wgmesh.on_push"


def test_a_gate_run_holds_no_reactor_worker(article, hook_disabled):
    """The lab's master has a single reactor worker thread (reactor_worker_threads: 1). While a
    gate run waits (its lock held here, as by a long apply), the reactor still takes the next push
    at once: both gate runs start (each in its own process) and queue at the lock; released, the
    first applies and the second is coalesced. A gate run inside the reactor's worker would
    leave the second push queued behind it, unstarted."""
    lab = article.lab
    lock_path = article.deployed / "wgmesh-gate.lock"
    tip = push_contact_change(article, "e", "e+reactor@example.invalid")
    finished = article.wait_event("salt/run/*/ret", timeout=300, until=_the_nth(2, _gate_run))
    with open(lock_path, "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)               # a gate run in progress
        started = article.wait_event("salt/run/*/new", timeout=60, until=_the_nth(2, _gate_run))
        for _ in range(2):                             # what the post-receive hook sends
            lab.salt_run(["event.send", "wgmesh/push", json.dumps({"ref": "refs/heads/main", "new": tip})])
        assert len([ev for ev in started.results() if _gate_run(ev)]) == 2
        deadline = time.monotonic() + 60
        while open_files_of(lock_path) < 3:            # ours and the two gate runs'
            assert time.monotonic() < deadline, "the gate runs did not reach the lock"
            time.sleep(0.2)
    returns = [ev["data"]["return"] for ev in finished.results() if _gate_run(ev)]
    assert sorted(r["result"] for r in returns) == ["applied", "coalesced"], returns
    assert {r["revision"] for r in returns} == {tip}
    assert lab.salt_run(["wgmesh.deployed_revision"]) == tip
