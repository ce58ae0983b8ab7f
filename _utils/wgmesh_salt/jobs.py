"""Jobs the master's gate sends to minions through Salt's LocalClient, and what it reads of
their returns."""
from __future__ import annotations


class Jobs:
    """``local_client``: makes a LocalClient (one a job, destroyed once answered)."""

    def __init__(self, local_client):
        self.local_client = local_client

    def answering(self, targets, timeout=5):
        """(minions that answer test.ping, those that do not): a down minion is reported
        pending at once instead of holding the push for a state run's timeout."""
        if not targets:
            return [], []
        with self.local_client() as client:
            returns = client.cmd(targets, "test.ping", tgt_type="list", timeout=timeout, gather_job_timeout=timeout)
        answered = [minion for minion in targets if returns.get(minion) is True]
        return answered, [minion for minion in targets if minion not in answered]

    def call(self, hosts, function, timeout, refresh_pillar=False, gather_job_timeout=None, args=()):
        """``function(*args)`` on ``hosts`` (minion ids) in one job, after a pillar refresh if
        asked: ({minion: its return (a dict), or "failed: <why>"}, the minions that returned
        anything)."""
        return self.send(hosts, function, timeout, refresh_pillar, gather_job_timeout, args)()

    def send(self, hosts, function, timeout, refresh_pillar=False, gather_job_timeout=None, args=(), client=None):
        """``call``'s job, published now; returns the function that waits for its returns and
        gives what ``call`` gives. LocalClient.cmd in two halves (``run_job`` listening, then
        ``get_cli_event_returns``): the gate publishes the hub's hand-off from its main thread
        and plans the rest of the change before it reads the answer (a publish from a thread of
        its own waited for the GIL behind the planning: 0.9 s from the hand-off to the peer at
        10,000 developers, 0.35-0.6 s before). ``client``: the LocalClient to publish through
        (made ahead), destroyed once answered like the one made here."""
        if not hosts:
            if client is not None:
                client.destroy()
            return lambda: ({}, [])
        refresh = [("saltutil.refresh_pillar", ["wait=True"])] if refresh_pillar else []
        calls = [*refresh, (function, args)]
        functions, arguments = [name for name, _ in calls], [list(arguments) for _, arguments in calls]
        waiting = {"gather_job_timeout": gather_job_timeout} if gather_job_timeout else {}
        client = client if client is not None else self.local_client()
        try:
            job = client.run_job(hosts, functions, arguments, tgt_type="list", timeout=timeout, listen=True, **waiting)
        except BaseException:
            client.destroy()
            raise

        def answers():
            returns = {}
            with client:
                for event in client.get_cli_event_returns(job["jid"], job["minions"], timeout, hosts, "list",
                                                          **waiting) if job else ():
                    returns.update({minion: data.get("ret", {}) for minion, data in (event or {}).items()})
            outcome = {}
            for minion in hosts:
                ret = returns.get(minion, False)     # False: did not return (as LocalClient.cmd says it)
                main = ret.get(function) if isinstance(ret, dict) else ret
                outcome[minion] = main if isinstance(main, dict) else f"failed: {main}"
            return outcome, [minion for minion in hosts if isinstance(returns.get(minion), dict)]
        return answers
