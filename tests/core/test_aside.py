"""aside.Aside: work in a forked child, its answer (or its exception) back in the parent, and no
child left behind whatever happens."""
from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from wgmesh_core import aside
from wgmesh_core.aside import Aside, ChildFailed

needs_two_cpus = pytest.mark.skipif(aside.cpus() < 2, reason="one CPU: Aside runs the work in the parent")


def reaped(pid) -> bool:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True
    return False


@needs_two_cpus
def test_the_work_runs_in_a_child_and_its_result_comes_back():
    big = "x" * (8 << 20)    # far more than a pipe holds: the parent reads while the child writes
    with Aside(lambda: (os.getpid(), {"a": [1, 2]}, big)) as job:
        pid = job.pid
        assert pid is not None and pid != os.getpid()
        assert job.result() == (pid, {"a": [1, 2]}, big)
    assert job.pid is None and reaped(pid)


@needs_two_cpus
def test_the_childs_exception_is_raised_in_the_parent():
    def work():
        raise ValueError("bad value in the base")
    with Aside(work) as job, pytest.raises(ValueError, match="^bad value in the base$"):
        job.result()


class TwoArguments(Exception):
    def __init__(self, what, where):
        super().__init__(f"{what} at {where}")


@needs_two_cpus
@pytest.mark.parametrize("work, named", [
    (lambda: (_ for _ in ()).throw(TwoArguments("refused", "line 3")), "TwoArguments('refused at line 3')"),
    (lambda: lambda: None, "its result")])
def test_an_answer_that_cannot_be_sent_back_is_named(work, named):
    with Aside(work) as job, pytest.raises(ChildFailed, match="the child's answer cannot be sent back") as failed:
        job.result()
    assert named in str(failed.value)


@needs_two_cpus
def test_a_child_killed_before_its_answer_fails_plainly():
    parent = os.getpid()      # (run here, the work must not kill the test's own process)
    with Aside(lambda: os.getpid() != parent and os.kill(os.getpid(), signal.SIGKILL)) as job, \
            pytest.raises(ChildFailed, match="the child ended without an answer"):
        job.result()


@needs_two_cpus
def test_leaving_without_the_result_kills_and_reaps_the_child():
    started = time.monotonic()
    with pytest.raises(KeyError):
        with Aside(lambda: time.sleep(60)) as job:
            pid = job.pid
            raise KeyError("the parent's own work failed")
    assert time.monotonic() - started < 10
    assert job.pid is None and reaped(pid)


@needs_two_cpus
@pytest.mark.parametrize("ask", [False, True])
def test_what_the_child_leaves_in_the_temporary_folder_goes_with_it(tmp_path, monkeypatch, ask):
    """A child killed inside ``TemporaryDirectory`` (``wgmesh plan`` with an invalid head kills
    the base's, which holds a checkout) cannot clean up; nor can one that leaves a file behind."""
    import tempfile
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))

    def work():
        with tempfile.TemporaryDirectory(prefix="wgmesh-rev-") as checkout:
            (Path(checkout) / "top.sls").write_text("base: {}")
            tempfile.mkstemp()
            if not ask:
                time.sleep(60)      # killed in here
        tempfile.mkdtemp()          # left by a child that ends
        return "answered"

    with Aside(work) as job:
        if ask:
            assert job.result() == "answered"
        else:
            deadline = time.monotonic() + 10
            while not list(tmp_path.rglob("wgmesh-rev-*/top.sls")) and time.monotonic() < deadline:
                time.sleep(0.01)
            assert list(tmp_path.rglob("wgmesh-rev-*/top.sls")), "the child never made its checkout"
    assert list(tmp_path.iterdir()) == []


def test_without_fork_the_work_runs_here_when_its_result_is_asked():
    ran = []
    with Aside(lambda: ran.append(os.getpid()) or "done", fork=False) as job:
        assert job.pid is None and ran == []
        assert job.result() == "done"
    assert ran == [os.getpid()]


def test_on_one_cpu_the_work_runs_here(monkeypatch):
    monkeypatch.setattr(aside, "cpus", lambda: 1)
    with Aside(os.getpid) as job:
        assert job.pid is None
        assert job.result() == os.getpid()


def test_cpus_counts_the_cpus_this_process_may_use(monkeypatch):
    assert aside.cpus() == len(os.sched_getaffinity(0))
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {1} if pid == 0 else {0, 1, 2})   # taskset -c 1
    assert aside.cpus() == 1
    monkeypatch.delattr(os, "sched_getaffinity")       # (no such call where there is no Linux)
    assert aside.cpus() == 8
    monkeypatch.setattr(os, "cpu_count", lambda: None)  # the count is unknown
    assert aside.cpus() == 1


def test_a_kill_reaches_one_process_never_a_group():
    with pytest.raises(OSError):       # os.kill(0) would have signalled this whole process group
        aside._kill(0)


@pytest.mark.parametrize("fork", [True, False])
def test_the_work_runs_once_however_often_its_result_is_asked(fork):
    runs = []

    def work():
        runs.append(os.getpid())
        raise LookupError(f"run {len(runs)}")
    with Aside(work, fork=fork) as job:
        for _ in range(3):
            with pytest.raises(LookupError, match="^run 1$"):
                job.result()
    assert runs == ([] if fork and aside.cpus() > 1 else [os.getpid()])     # (a child's runs are its own)
