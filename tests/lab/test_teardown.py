"""Teardown leaves nothing: netns, mounts, processes, state dir."""
import os
import subprocess
import sys
import time

import pytest

from lab import Lab, NETNS_PREFIX, RUN_ROOT, cleanup_stale

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _netns(lab_id):
    try:
        names = os.listdir("/run/netns")
    except FileNotFoundError:
        return []
    return [n for n in names if n.startswith(f"{NETNS_PREFIX}{lab_id}-")]


def _mounts(lab_id):
    out = []
    with open("/proc/self/mountinfo") as fh:
        for line in fh:
            mp = line.split()[4]
            if mp.startswith(f"{RUN_ROOT}/{lab_id}") or \
                    mp.startswith(f"/run/netns/{NETNS_PREFIX}{lab_id}-"):
                out.append(mp)
    return out


def _dead(pid):
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(") ", 1)[1].startswith("Z")
    except FileNotFoundError:
        return True


def assert_clean(lab_id, pids=()):
    assert _netns(lab_id) == []
    assert _mounts(lab_id) == []
    assert not (RUN_ROOT / lab_id).exists()
    alive = [p for p in pids if not _dead(p)]
    assert alive == [], alive


def test_down_after_failure_in_the_middle_of_up(tmp_path, monkeypatch):
    lab = Lab(workdir=tmp_path)

    def boom(self):
        raise RuntimeError("injected failure while wiring")
    monkeypatch.setattr(Lab, "_wire", boom)
    with pytest.raises(RuntimeError, match="injected"):
        lab.up()
    assert _netns(lab.lab_id)            # something was built
    monkeypatch.undo()
    # a fresh object (another process, say) finds everything through the state file
    problems = Lab(lab.lab_id, workdir=tmp_path).down()
    assert problems == []
    assert_clean(lab.lab_id)


def escaped_sleep(net_inode, timeout=10.0):
    """The pid of `sleep 301` in the network namespace ``net_inode``: `setsid -f` returns before
    its child has become `sleep` (on a busy machine, long before)."""
    deadline = time.monotonic() + timeout
    while True:
        for pid in subprocess.run(["pgrep", "-f", "^sleep 301$"], capture_output=True, text=True).stdout.split():
            try:
                if os.stat(f"/proc/{pid}/ns/net").st_ino == net_inode:
                    return int(pid)
            except FileNotFoundError:
                continue
        assert time.monotonic() < deadline, "the escaped sleep did not start"
        time.sleep(0.05)


def test_context_manager_cleans_up_on_error(tmp_path):
    pids = []
    with pytest.raises(KeyError):
        with Lab(workdir=tmp_path) as lab:
            pids.append(lab.spawn("b", ["sleep", "300"], "sleeper"))
            # a process that escapes (new session, double fork), not recorded
            lab.exec("d", ["sh", "-c", "setsid -f sleep 301 </dev/null >/dev/null 2>&1"])
            pids.append(escaped_sleep(os.stat(f"/run/netns/{lab.netns('d')}").st_ino))
            raise KeyError("boom")
    assert_clean(lab.lab_id, pids)


def test_full_lab_with_tunnel_and_salt_tears_down(tmp_path):
    lab = Lab(workdir=tmp_path)
    with lab:
        priv, _ = lab.genkey("e")
        lab.wg_quick("e", "up", f"[Interface]\nPrivateKey = {priv}\nAddress = 10.70.0.4/16\n")
        wgpid = int((lab.hostdir("e") / "pids" / "wireguard-go-wg0.pid").read_text())
        lab.start_master([], [])
        pids = [wgpid] + [r["pid"] for r in lab.state["pids"].values()]
        assert not any(_dead(p) for p in pids)
    assert_clean(lab.lab_id, pids)
    assert lab.state["status"] == "down"


def test_cleanup_stale_removes_labs_of_dead_processes(tmp_path):
    code = ("import sys, time\n"
            f"sys.path.insert(0, {REPO!r})\n"
            "from lab import Lab\n"
            f"l = Lab('stale{os.getpid() % 10000}', workdir={str(tmp_path)!r}); l.up()\n"
            "l.spawn('a', ['sleep', '300'], 'sleeper')\n"
            "print(l.lab_id, l.pid('a', 'sleeper'), flush=True)\n"
            "time.sleep(300)\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        lab_id, pid = proc.stdout.readline().split()
    finally:
        proc.kill()
        proc.wait()
    assert _netns(lab_id)
    assert lab_id in cleanup_stale()
    assert_clean(lab_id, [int(pid)])
