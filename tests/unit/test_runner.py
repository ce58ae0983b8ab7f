"""The wgmesh runner on the master: validation, developers' client configs, the hub key and the
ordered converge. The master's pillar compiler, mine cache and LocalClient are Salt's own APIs,
replaced here by MOCKS (no salt-master runs in a unit test): ``salt.pillar.get_pillar``,
``salt.cache.factory`` and ``salt.client.get_local_client``."""
from __future__ import annotations

import os
import stat

import git
import pytest

from wgmesh_core.keys import derive_psk

from tests.conftest import example_network_data

from .conftest import key, load_adapter

runner = load_adapter("_runners", "wgmesh")


class Pillar:
    def __init__(self, data):
        self.data = data

    def compile_pillar(self):
        return self.data


class Cache:
    def __init__(self, mine):
        self.mine = mine

    def fetch(self, bank, minion):
        assert bank == "mine"
        return {"wgmesh_public_key": self.mine[minion]} if minion in self.mine else {}


class LocalClient:
    """MOCK of salt.client.LocalClient: records each job's targets; answers each minion's
    state.apply with the next of its canned results (a minion without one is down: no return)."""

    def __init__(self, answers):
        self.answers, self.jobs = answers, []

    def __enter__(self):
        return self

    def __exit__(self, *_):
        return False

    def cmd(self, targets, functions, args, tgt_type, timeout):
        # queue=True: a drift schedule run in flight delays the apply instead of failing it
        assert functions == ["saltutil.refresh_pillar", "state.apply"] and args[1] == ["wgmesh", "queue=True"]
        self.jobs.append(list(targets))
        return {minion: {"state.apply": self.answers[minion].pop(0)} for minion in targets if self.answers.get(minion)}


@pytest.fixture
def pillar():
    return {"wgmesh": example_network_data()}


@pytest.fixture
def mine():
    return {"z": key(1), "a": key(2), "c": key(3)}


@pytest.fixture
def opts(tmp_path):
    return {"id": "master", "cachedir": str(tmp_path / "cache"), "conf_file": "/etc/salt/master",
            "ext_pillar": [{"wgmesh_secrets": {"secret_file": str(tmp_path / "pki" / "psk.secret")}}]}


@pytest.fixture
def configure_loader_modules(opts, pillar, mine, monkeypatch):
    monkeypatch.setattr(runner.salt.pillar, "get_pillar", lambda *args, **kwargs: Pillar(pillar))
    import salt.cache
    monkeypatch.setattr(salt.cache, "factory", lambda opts: Cache(mine))
    return {runner: {"__opts__": opts, "__salt__": {}}}


def test_validate_lists_every_problem(pillar):
    assert runner.validate() is True
    pillar["wgmesh"]["developers"]["f"]["address"] = "10.70.0.4"
    pillar["wgmesh"]["developers"]["e"]["lan_acess"] = "all"
    assert runner.validate() == ["developers.e.lan_acess: unknown key (a typo?)"]
    del pillar["wgmesh"]["developers"]["e"]["lan_acess"]
    assert runner.validate() == ["developers.f.address: 10.70.0.4 is already taken by developers.e"]


def test_the_hub_key_comes_from_the_mine_when_it_is_a_key_and_none_otherwise(mine):
    assert runner.hub_public_key() == key(1)
    mine["z"] = "not a key"
    assert runner.hub_public_key() is None


def test_a_client_config_is_written_0600_with_the_hub_key_and_the_developers_psk(opts, pillar):
    result = runner.client_config("e")
    path = result["path"]
    assert path == os.path.join(opts["cachedir"], "wgmesh", "clients", "e.conf")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode) == 0o700
    text = open(path).read()
    secret = bytes.fromhex(open(opts["ext_pillar"][0]["wgmesh_secrets"]["secret_file"]).read().strip())
    psk = derive_psk(secret, "e", pillar["wgmesh"]["developers"]["e"]["public_key"])
    assert f"PresharedKey = {psk}" in text.splitlines() and f"PublicKey = {key(1)}" in text.splitlines()
    assert psk not in str(result)                  # never in the return (job cache, event bus)


def test_no_client_config_for_an_unknown_or_revoked_developer(pillar):
    with pytest.raises(runner.SaltInvocationError, match="no developer 'nobody' in the wgmesh pillar"):
        runner.client_config("nobody")
    pillar["wgmesh"]["developers"]["f"]["revoked"] = True
    with pytest.raises(runner.SaltInvocationError, match="developer 'f' is revoked or expired"):
        runner.client_config("f")


def test_the_deployed_revision_is_the_deployed_branch_of_the_masters_repository(opts, tmp_path):
    repo_path = tmp_path / "pillar.git"
    opts["wgmesh_gitops"] = {"upstream": str(tmp_path / "upstream.git"), "repo": str(repo_path)}
    assert runner.deployed_revision() is None                # a fresh master: nothing deployed
    work = git.Repo.init(tmp_path / "work")
    (tmp_path / "work" / "f").write_text("x")
    work.index.add(["f"])
    commit = work.index.commit("c", author=git.Actor("t", "t@e"), committer=git.Actor("t", "t@e"))
    git.Repo(repo_path).git.fetch(str(tmp_path / "work"), f"{commit.hexsha}:refs/heads/deployed")
    assert runner.deployed_revision() == commit.hexsha


def state(result, comment=""):
    return {"wgmesh_|-x_|-x_|-run": {"result": result, "comment": comment}}


def test_converge_applies_the_hub_first_and_retries_hosts_waiting_for_keys(monkeypatch):
    client = LocalClient({"z": [state(True)], "a": [state(True, "waiting for the public key of z"), state(True)],
                          "c": [state(False)]})
    import salt.client
    monkeypatch.setattr(salt.client, "get_local_client", lambda conf_file: client)
    assert runner.converge(["a", "z", "c"], hub="z") == {"z": True, "a": True, "c": False}
    assert client.jobs == [["z"], ["a", "c"], ["a"]]


def test_the_gate_reads_and_plans_a_revision_without_the_cycle_collector(monkeypatch):
    """The pillar of a pushed revision is millions of acyclic objects: the gate pauses Python's
    cycle collector while it reads and plans it, and gives it back, refused or not. The git
    repository is a MOCK (an object answering fetch and commit)."""
    import gc
    import wgmesh_core

    class Repo:
        class git:
            @staticmethod
            def fetch(*args):
                pass

        @staticmethod
        def commit(ref):
            return type("Commit", (), {"hexsha": "1" * 40})

    seen = []

    def candidate(repo, revision, gitops):
        seen.append(gc.isenabled())
        raise wgmesh_core.InvalidNetwork([wgmesh_core.Problem("wgmesh", "refused here")])
    monkeypatch.setattr(runner, "deployed_revision", lambda: None)
    monkeypatch.setattr(runner, "_candidate", candidate)
    monkeypatch.setattr(runner, "_fire", lambda tag, data: seen.append(tag))
    result = runner._gate_and_converge(Repo, {"upstream": "u", "branch": "main"}, False)
    assert result["result"] == "refused" and result["problems"] == ["wgmesh: refused here"]
    assert seen == [False, "wgmesh/gate/refused"] and gc.isenabled()
