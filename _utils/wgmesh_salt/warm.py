"""What the master's reactor process keeps between pushes: the deployed network, validated and
planned, and the client the gate's runs fork from.

Each push's gate runs in a process forked from the reactor's (``wgmesh.on_push_async``), and a
fork starts with what its parent holds. The reactor runs ``wgmesh.warm`` when a push has been
applied (reactor/applied.sls): the deployed network is loaded and every host planned with the
stand-in keys there, once, so the next push's gate plans only its new revision (at 10,000
developers about 0.4 s of the gate's checks). Anywhere else (a ``salt-run`` process) what is
kept goes with the process.
"""
from __future__ import annotations

import datetime
import gc
import logging
import os
import signal
from typing import Optional

from wgmesh_core.diff import StandInConfigs
from wgmesh_core.model import NetworkSpec
from wgmesh_core.plan import managed_hosts

_deployed: Optional[tuple] = None    # (revision, NetworkSpec, StandInConfigs): replaced whole, never changed
_job_client: Optional[tuple] = None  # (the runner's source stamp, the client the gate's runs fork from)


def job_client(stamp, make):
    """The client ``make()`` made for the runner whose files are ``stamp``, made once per stamp:
    the reactor makes its runner client anew every ``reactor_refresh_interval`` (60 s), which
    loads the runner module again from the same files; another stamp (a sync brought another
    runner) gets a new client. (Another wgmesh_salt brings a new copy of this module.)"""
    global _job_client
    if _job_client is None or _job_client[0] != stamp:
        replaced, _job_client = _job_client, (stamp, make())
        if replaced is not None:
            replaced[1].destroy()    # its event bus connection (Salt warns of a client left open)
    return _job_client[1]


def fork_job(client, fun: str, kwargs: dict, user: str) -> str:
    """Start runner ``fun`` as a job of ``client`` (a RunnerClient) in a process of its own and
    return its job id at once, as Salt's ``RunnerClient.asynchronous`` does: the job is a
    grandchild in a session of its own that nothing waits for, in ``/`` with umask 022, its
    standard streams on /dev/null, and it fires the job's ``new`` and ``ret`` events
    (``client.low``).

    Salt's way forks three times (its process, then a daemon's double fork) and tears logging
    down and sets it up again in the job: in the lab the gate started 60-70 ms after the reactor
    called ``on_push_async``. Two forks and the logging the reactor's process has (its handlers
    survive a fork): 27-37 ms."""
    import salt.utils.event
    import salt.utils.jid
    jid = salt.utils.jid.gen_jid(client.opts)
    low = {"fun": fun, "arg": [], "kwarg": dict(kwargs), "__jid__": jid, "__user__": user,
           "__tag__": salt.utils.event.tagify(jid, prefix=client.tag_prefix)}
    child = os.fork()
    if child:
        try:
            os.waitpid(child, 0)     # it exits once it has forked the job: no zombie is left
        except ChildProcessError:    # reaped already (a SIGCHLD handler of the caller's)
            pass
        return jid
    try:
        os.setsid()
        os.chdir("/")       # as Salt's daemonize leaves its jobs
        os.umask(0o022)
        if os.fork() == 0:
            _run_job(client, fun, low)
    finally:
        os._exit(0)     # never back into the caller's code, whatever happened


def _run_job(client, fun: str, low: dict):
    code = 1
    try:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)   # not the reactor's handlers
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        null = os.open(os.devnull, os.O_RDWR)
        for stream in (0, 1, 2):
            os.dup2(null, stream)
        client.low(fun, low)    # fires the job's events, its failure included
        code = 0
    except BaseException:   # pylint: disable=broad-except  (a job process ends here, always)
        logging.getLogger(__name__).exception("wgmesh: the runner job %s failed", low["__jid__"])
    finally:
        logging.shutdown()
        os._exit(code)


def keep(revision: str, spec: NetworkSpec, today: datetime.date) -> StandInConfigs:
    """Plan every host of ``spec`` (``revision``'s network) for ``today`` and keep both.

    Then everything this process holds is moved out of the cyclic collector's reach
    (``gc.freeze``) until the next ``keep``: a gate forked from this process otherwise walks the
    kept network (at 10,000 developers about 170,000 objects) in each full collection it makes,
    writing to every page that holds it (copy-on-write): the gate's checks took 0.59-0.66 s with
    it frozen, 0.77-0.93 s without (bench_gitops.py, 10,000 developers). What the previous
    ``keep`` froze is collectable again first: the network it kept, and any cycle that became
    garbage meanwhile, are collected here, after a push was applied and before the next."""
    global _deployed
    gc.unfreeze()
    _deployed = None
    configs = StandInConfigs(spec, today)
    for host in managed_hosts(spec):
        configs[host]   # pylint: disable=pointless-statement  (planned now, in the parent)
    _deployed = (revision, spec, configs)
    gc.collect()
    gc.freeze()
    return configs


def recall(revision: str, today: datetime.date) -> Optional[tuple]:
    """(spec, configs) kept for ``revision``, planned for ``today``; else None."""
    kept = _deployed
    if kept is None or kept[0] != revision or not kept[2].serves(kept[1], today):
        return None
    return kept[1:]
