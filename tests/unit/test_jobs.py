"""The gate's jobs (``wgmesh_salt.jobs``) against a recording LocalClient whose calls are bound
to the real ``salt.client.LocalClient`` methods' signatures: what each job targets (the ids as a
list), how long it waits, and what it reads of the minions' returns. A MOCK of the master:
tests/lab/test_gate.py sends the same jobs through a real one."""
import inspect

import pytest
import salt.client

from wgmesh_salt.jobs import Jobs


def bound(method, *args, **kwargs) -> dict:
    """The arguments as ``LocalClient.<method>`` receives them (its defaults applied); a call
    its signature refuses fails here."""
    call = inspect.signature(getattr(salt.client.LocalClient, method)).bind(None, *args, **kwargs)
    call.apply_defaults()
    arguments = dict(call.arguments)
    arguments.pop("self")
    arguments.update(arguments.pop("kwargs", {}))
    return arguments


class Client:
    """Answers a job with ``events`` (the minions' return events, as LocalClient yields them)."""

    def __init__(self, events=(), pings=None, job=None):
        self.events, self.pings, self.job = list(events), pings or {}, job
        self.calls, self.destroyed = [], 0

    def __enter__(self):
        return self

    def __exit__(self, *_exc):
        self.destroy()

    def destroy(self):
        self.destroyed += 1

    def cmd(self, *args, **kwargs):
        self.calls.append(("cmd", bound("cmd", *args, **kwargs)))
        return self.pings

    def run_job(self, *args, **kwargs):
        arguments = bound("run_job", *args, **kwargs)
        self.calls.append(("run_job", arguments))
        return {"jid": "20261128", "minions": list(arguments["tgt"])} if self.job is None else self.job

    def get_cli_event_returns(self, *args, **kwargs):
        self.calls.append(("get_cli_event_returns", bound("get_cli_event_returns", *args, **kwargs)))
        return iter(self.events)


def test_a_ping_targets_the_ids_as_a_list_and_gives_up_on_a_silent_minion_at_the_timeout():
    client = Client(pings={"z": True, "a": "Minion did not return. [Not connected]"})
    assert Jobs(lambda: client).answering(["z", "a", "c"], timeout=4) == (["z"], ["a", "c"])
    (name, call), = client.calls
    assert name == "cmd" and call["tgt"] == ["z", "a", "c"] and call["fun"] == "test.ping"
    assert (call["tgt_type"], call["timeout"], call["gather_job_timeout"]) == ("list", 4, 4)
    assert client.destroyed == 1
    client.calls.clear()
    Jobs(lambda: client).answering(["z"])             # the gate's wait for a silent minion: 5 s
    assert (client.calls[0][1]["timeout"], client.calls[0][1]["gather_job_timeout"]) == (5, 5)


def test_nobody_to_ping_makes_no_client():
    assert Jobs(lambda: pytest.fail("a client was made")).answering([]) == ([], [])


def test_a_job_is_published_to_the_ids_and_its_returns_read_for_them_with_the_same_waits():
    events = [{"z": {"ret": {"saltutil.refresh_pillar": True, "wgmesh.absent": {"removed": ["wg0"]}}}},
              None, {"a": {"ret": {"saltutil.refresh_pillar": True, "wgmesh.absent": "an error"}}}]
    client = Client(events)
    outcome = Jobs(lambda: client).call(["z", "a", "c"], "wgmesh.absent", 30, refresh_pillar=True,
                                        gather_job_timeout=7, args=["x=1"])
    assert outcome == ({"z": {"removed": ["wg0"]}, "a": "failed: an error", "c": "failed: False"}, ["z", "a"])
    (_, published), (_, read) = client.calls
    assert published["tgt"] == ["z", "a", "c"] and published["tgt_type"] == "list" and published["listen"] is True
    assert published["fun"] == ["saltutil.refresh_pillar", "wgmesh.absent"]
    assert published["arg"] == [["wait=True"], ["x=1"]]
    assert (published["timeout"], published["gather_job_timeout"]) == (30, 7)
    assert (read["jid"], read["minions"], read["tgt"], read["tgt_type"]) == ("20261128", ["z", "a", "c"],
                                                                          ["z", "a", "c"], "list")
    assert (read["timeout"], read["gather_job_timeout"]) == (30, 7)
    assert client.destroyed == 1


def test_without_a_refresh_or_a_job_timeout_the_job_is_the_function_alone_with_salts_wait():
    client = Client([{"z": {"ret": {"wgmesh.update_live": {}}}}])
    assert Jobs(lambda: client).call(["z"], "wgmesh.update_live", 5) == ({"z": {}}, ["z"])
    (_, published), (_, read) = client.calls
    assert published["fun"] == ["wgmesh.update_live"] and published["arg"] == [[]]
    assert "gather_job_timeout" not in published and "gather_job_timeout" not in read


def test_a_publish_that_reached_no_minion_is_a_failure_for_each_without_reading_returns():
    client = Client(job={})
    assert Jobs(lambda: client).call(["z", "a"], "wgmesh.update_live", 5) == \
        ({"z": "failed: False", "a": "failed: False"}, [])
    assert [name for name, _ in client.calls] == ["run_job"] and client.destroyed == 1


def test_a_return_without_its_data_answered_nothing_usable():
    client = Client([{"z": {"retcode": 0}}])
    assert Jobs(lambda: client).call(["z"], "wgmesh.set_peers", 5) == ({"z": "failed: None"}, ["z"])


def test_a_client_made_ahead_is_used_and_destroyed_even_for_no_host():
    ahead = Client([{"z": {"ret": {"wgmesh.set_peers": {"set": 1}}}}])
    answers = Jobs(lambda: pytest.fail("a client was made")).send(["z"], "wgmesh.set_peers", 5, client=ahead)
    assert ahead.calls[0][0] == "run_job" and answers() == ({"z": {"set": 1}}, ["z"]) and ahead.destroyed == 1
    unused = Client()
    assert Jobs(lambda: pytest.fail("a client was made")).send([], "wgmesh.set_peers", 5, client=unused)() == ({}, [])
    assert unused.destroyed == 1 and unused.calls == []


def test_a_publish_that_fails_destroys_its_client():
    class Refusing(Client):
        def run_job(self, *args, **kwargs):
            raise salt.client.SaltClientError("no master")
    client = Refusing()
    with pytest.raises(salt.client.SaltClientError):
        Jobs(lambda: client).send(["z"], "wgmesh.update_live", 5)
    assert client.destroyed == 1
