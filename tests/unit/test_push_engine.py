"""The master's wgmesh_push engine and the post-receive hook that writes to it: a push's note
goes over a local socket to the event bus (``fire`` stands in for the master's event bus, a
MOCK: no salt-master runs in a unit test); anything else sent to the socket is dropped; without
the engine the hook falls back to ``salt-run event.send``."""
from __future__ import annotations

import json
import os
import socket
import stat
import subprocess

import pytest

from tests.conftest import REPO

from .conftest import load_adapter

engine = load_adapter("_engines", "wgmesh_push")
HOOK = REPO / "reactor" / "hooks" / "post-receive"
OLD, NEW = "1" * 40, "a" * 40
NOTE = {"old": OLD, "new": NEW, "ref": "refs/heads/main"}


class Bus:
    def __init__(self):
        self.fired = []

    def __call__(self, data, tag):
        self.fired.append((tag, data))


@pytest.fixture
def engine_socket(tmp_path):
    path = str(tmp_path / "run" / "wgmesh-push.sock")
    sock = engine.listen(path)
    sock.settimeout(5)
    yield path, sock
    sock.close()


def send(path, payload: bytes):
    socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM).sendto(payload, path)


def test_the_socket_is_for_the_master_user_and_its_group_only(engine_socket, tmp_path):
    path, _ = engine_socket
    assert stat.S_ISSOCK(os.stat(path).st_mode) and stat.S_IMODE(os.stat(path).st_mode) == 0o660
    stale = str(tmp_path / "stale.sock")
    engine.listen(stale).close()                 # left behind by a master that died: replaced, not
    engine.listen(stale).close()                 # "Address already in use"


@pytest.mark.parametrize("payload", [
    b"not json", json.dumps([NOTE]).encode(), json.dumps({**NOTE, "extra": "1"}).encode(),
    json.dumps({"old": OLD, "new": NEW}).encode(), json.dumps({**NOTE, "new": "A" * 40}).encode(),
    json.dumps({**NOTE, "new": NEW + "\n"}).encode(), json.dumps({**NOTE, "old": 1}).encode(),
    json.dumps({**NOTE, "ref": "refs/tags/v1"}).encode(), json.dumps({**NOTE, "ref": "refs/heads/a b"}).encode(),
    json.dumps({**NOTE, "ref": "refs/heads/" + "x" * 2000}).encode(), "{\"é\": 1}".encode(),
], ids=["text", "list", "extra-key", "missing-key", "upper-case-sha", "newline", "number", "tag", "space",
        "oversized", "non-ascii"])
def test_anything_but_a_push_note_is_dropped(engine_socket, payload):
    path, sock = engine_socket
    bus = Bus()
    send(path, payload)
    assert engine.relay(sock, bus) is None and bus.fired == []


def test_a_note_is_fired_as_wgmesh_push(engine_socket):
    path, sock = engine_socket
    bus = Bus()
    sha256 = {**NOTE, "new": "b" * 64}
    for note in (NOTE, sha256):
        send(path, json.dumps(note).encode())
        assert engine.relay(sock, bus) == note
    assert bus.fired == [("wgmesh/push", NOTE), ("wgmesh/push", sha256)]


def run_hook(tmp_path, push_socket, ref="refs/heads/main", **env):
    salt_run = tmp_path / "salt-run"
    salt_run.write_text(f"#!/bin/sh\necho \"$@\" >> {tmp_path / 'salt-run.args'}\n")
    salt_run.chmod(0o755)
    env = {**os.environ, "SALT_RUN": str(salt_run), "WGMESH_PUSH_SOCKET": push_socket, **env}
    done = subprocess.run(["sh", str(HOOK)], input=f"{OLD} {NEW} {ref}\n", capture_output=True, text=True,
                          env=env, timeout=30, check=True)
    args = tmp_path / "salt-run.args"
    return done.stdout, args.read_text() if args.exists() else ""


def test_the_hook_writes_to_the_engine_and_starts_no_salt_process(engine_socket, tmp_path):
    path, sock = engine_socket
    bus = Bus()
    out, salt_run = run_hook(tmp_path, path)
    assert engine.relay(sock, bus) == NOTE and bus.fired == [("wgmesh/push", NOTE)]
    assert out == f"wgmesh: push {NEW} sent to the salt-master\n" and salt_run == ""


def test_the_hooks_python_runs_nothing_the_pushers_environment_names(engine_socket, tmp_path):
    """git runs the hook with the environment of whoever runs the git server: a PYTHONPATH or
    PYTHONSTARTUP there must not bring code into it (python3 -I), nor a sitecustomize (-S)."""
    path, sock = engine_socket
    planted = tmp_path / "planted"
    planted.mkdir()
    marker = tmp_path / "ran"
    for module in ("socket.py", "sitecustomize.py", "startup.py"):
        (planted / module).write_text(f"open({str(marker)!r}, 'a').write({module!r})\n")
    out, salt_run = run_hook(tmp_path, path, PYTHONPATH=str(planted), PYTHONSTARTUP=str(planted / "startup.py"),
                             PYTHONUSERBASE=str(planted))
    assert engine.relay(sock, Bus()) == NOTE and out.startswith("wgmesh: push") and salt_run == ""
    assert not marker.exists(), marker.read_text()


def test_without_the_engine_the_hook_runs_salt_run(tmp_path):
    out, salt_run = run_hook(tmp_path, str(tmp_path / "no-engine.sock"))
    assert out.endswith("(salt-run)\n")
    assert salt_run.split(" ", 4)[2:4] == ["event.send", "wgmesh/push"]
    assert json.loads(salt_run.split(" ", 4)[4]) == NOTE


def test_a_stale_socket_without_an_engine_falls_back_too(engine_socket, tmp_path):
    path, sock = engine_socket
    sock.close()                                  # the master stopped; its socket file is still there
    out, salt_run = run_hook(tmp_path, path)
    assert out.endswith("(salt-run)\n") and "event.send wgmesh/push" in salt_run


def test_other_branches_are_not_sent(engine_socket, tmp_path):
    path, sock = engine_socket
    sock.settimeout(0.5)
    out, salt_run = run_hook(tmp_path, path, ref="refs/heads/feature")
    assert out == "" and salt_run == ""
    with pytest.raises(socket.timeout):
        sock.recv(2048)
