"""Work done in a forked child process while the parent goes on with its own.

`wgmesh plan` reads, compiles and validates the two revisions it compares (about 0.5 s each at
10,000 developers, nearly all of it Python holding the GIL): the base's in a child, the head's in
the parent, on two cores at once. The child's answer comes back pickled through a pipe.

On one CPU, or where there is no ``fork``, the work runs in the parent when its result is asked
for. A child is never left behind: leaving the ``with`` block without asking for the result
kills it and reaps it. What it leaves in the temporary folder goes with it: the child's
temporary files are made in a folder of the parent's (``tempfile.tempdir``), removed once the
child is reaped (a child killed inside ``TemporaryDirectory`` has no chance to clean up).
"""
from __future__ import annotations

import os
import pickle
import shutil
import signal
import tempfile
from typing import Callable


def cpus() -> int:
    """The CPUs this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _kill(pid: int) -> None:
    """SIGKILL to exactly the process ``pid``, through a pidfd: ``os.kill`` of 0 or a negative
    number would signal a whole process group, the caller's own among them."""
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:       # it ended already (and waits to be reaped)
        return
    try:
        signal.pidfd_send_signal(pidfd, signal.SIGKILL)
    finally:
        os.close(pidfd)


class ChildFailed(RuntimeError):
    """The child ended without an answer (killed, or its answer could not be read)."""


def _outcome(work: Callable) -> tuple:
    """(True, ``work()``'s value) or (False, the exception it raised)."""
    try:
        return True, work()
    except BaseException as error:      # KeyboardInterrupt too: the parent decides what to do
        return False, error


def _answer(work: Callable) -> bytes:
    """``_outcome(work)``, pickled; an answer that does not survive pickling (an exception whose
    constructor takes other arguments, say) comes back as a ChildFailed naming it."""
    outcome = _outcome(work)
    try:
        data = pickle.dumps(outcome, protocol=pickle.HIGHEST_PROTOCOL)
        if not outcome[0]:
            pickle.loads(data)      # an exception whose constructor takes other arguments fails here
        return data
    except Exception as error:
        what = outcome[1] if not outcome[0] else "its result"
        return pickle.dumps((False, ChildFailed(f"the child's answer cannot be sent back ({what!r}: {error})")))


class Aside:
    """``work()`` run in a forked child from the moment this is made; ``result()`` waits for it
    and returns its value or raises its exception (without the child's traceback)."""

    def __init__(self, work: Callable, fork: bool = True):
        self._work, self._pid, self._pipe, self._answer = work, None, None, None
        if not fork or cpus() < 2 or not hasattr(os, "fork"):
            return
        self._scratch = tempfile.mkdtemp(prefix="wgmesh-aside-")
        read, write = os.pipe()
        try:
            pid = os.fork()
        except OSError:
            for end in (read, write):
                os.close(end)
            shutil.rmtree(self._scratch, ignore_errors=True)
            raise
        if pid == 0:                        # the child: answer, then end without the parent's cleanup
            try:
                os.close(read)
                tempfile.tempdir = self._scratch
                data = _answer(work)
                with os.fdopen(write, "wb") as pipe:
                    pipe.write(data)
            finally:
                os._exit(0)
        os.close(write)
        self._pid, self._pipe = pid, os.fdopen(read, "rb")

    @property
    def pid(self):
        """The child's process id while it runs unreaped; None without a child."""
        return self._pid

    def result(self):
        """The work's value, or its exception raised; asked again, the same answer (the work
        runs once)."""
        if self._answer is None:
            self._answer = self._collect() if self._pid is not None else _outcome(self._work)
        done, value = self._answer
        if done:
            return value
        raise value

    def _collect(self) -> tuple:
        try:
            data = self._pipe.read()
        finally:
            self._reap()
        try:
            return pickle.loads(data)
        except Exception as error:
            return False, ChildFailed(f"the child ended without an answer ({error})")

    def _reap(self, kill: bool = False) -> None:
        pid, self._pid = self._pid, None
        self._pipe.close()
        if kill:
            _kill(pid)
        os.waitpid(pid, 0)
        shutil.rmtree(self._scratch, ignore_errors=True)

    def __enter__(self) -> "Aside":
        return self

    def __exit__(self, *exc) -> None:
        if self._pid is not None:          # the result was never asked for: the child is not needed
            self._reap(kill=True)
