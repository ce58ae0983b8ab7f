"""plan.host_config: who is a peer, who may open connections into a LAN, what is pending."""
from __future__ import annotations

import datetime

import pytest

from wgmesh_core.plan import host_config, managed_hosts, static_route_instructions
from wgmesh_core.render import client_config, host_files, wg_setconf
from wgmesh_core.validate import load_network

from . import article_texts as art
from .conftest import TODAY

YESTERDAY = TODAY - datetime.timedelta(days=1)


def plan(spec, host, public_keys=art.PUBLIC_KEYS, psks=art.PSKS, today=TODAY):
    return host_config(spec, host, today, public_keys, psks)


def peer_names(config):
    return [p.name for p in config.peers]


def test_the_hub_keeps_no_peer_alive_unless_told_and_its_peers_keep_their_own(data):
    """hub.keepalive (default 0) is what the hub sets on every peer; the gateways and the
    developers' clients keep the network's keepalive towards the hub (they are behind NAT). The
    article's hub sets 15 on its peers: the example says so, and the hub's files then carry it."""
    data["hub"].pop("keepalive")
    data["keepalive"] = 25
    spec = load_network(data)
    hub = plan(spec, "z")
    assert [p.keepalive for p in hub.peers] == [0, 0, 0, 0]
    assert "PersistentKeepalive" not in wg_setconf(hub, art.PRIVATE_KEYS["z"])
    assert [p.keepalive for p in plan(spec, "a").peers] == [25]
    assert "PersistentKeepalive = 25" in client_config(spec, "e", hub_public_key=art.PUBLIC_KEYS["z"])
    data["hub"]["keepalive"] = 15
    hub = plan(load_network(data), "z")
    assert [p.keepalive for p in hub.peers] == [15, 15, 15, 15]
    assert wg_setconf(hub, art.PRIVATE_KEYS["z"]).count("PersistentKeepalive = 15") == 4


def test_hub_plan(spec):
    hub = plan(spec, "z")
    assert (hub.role, hub.address, hub.listen_port, hub.mtu, hub.forwarding) == ("hub", "10.70.0.1/16", 51820, 1280, True)
    assert peer_names(hub) == ["a", "c", "e", "f"]
    by_name = {p.name: p for p in hub.peers}
    assert by_name["a"].allowed_ips == ("10.70.0.2/32", "192.168.201.0/24")
    assert by_name["c"].allowed_ips == ("10.70.0.3/32", "192.168.200.0/24")
    assert by_name["e"].allowed_ips == ("10.70.0.4/32",)
    assert by_name["e"].public_key == art.PUBLIC_KEYS["e"]
    assert by_name["f"].preshared_key == art.PSKS["f"]
    assert all(p.endpoint is None and p.keepalive == 15 for p in hub.peers)
    assert hub.interface_routes == ["192.168.200.0/24", "192.168.201.0/24"]
    assert hub.pending == [] and hub.strict_rp_filter
    # the hub forwards what the gateways admit: c into LAN1 and to a itself, e and f everywhere
    assert hub.firewall.allow_list() == [
        "10.70.0.3/32 -> 192.168.201.0/24", "10.70.0.4/32 -> 192.168.201.0/24", "10.70.0.5/32 -> 192.168.201.0/24",
        "10.70.0.3/32 -> 10.70.0.2/32", "10.70.0.4/32 -> 10.70.0.2/32", "10.70.0.5/32 -> 10.70.0.2/32",
        "10.70.0.4/32 -> 192.168.200.0/24", "10.70.0.5/32 -> 192.168.200.0/24",
        "10.70.0.4/32 -> 10.70.0.3/32", "10.70.0.5/32 -> 10.70.0.3/32"]
    assert hub.firewall.developers == ("10.70.0.4/32", "10.70.0.5/32")


def test_gateway_plan(spec):
    a = plan(spec, "a")
    assert (a.role, a.address, a.forwarding) == ("gateway", "10.70.0.2/16", True)
    assert len(a.peers) == 1
    hub = a.peers[0]
    assert (hub.name, hub.kind, hub.public_key) == ("z", "hub", art.HUB_PUBLIC)
    assert hub.allowed_ips == ("10.70.0.0/16",)
    assert hub.endpoint == "39.101.166.124:51820"
    assert hub.preshared_key == art.PSKS["a"]
    assert a.interface_routes == []
    assert a.firewall.backend == "firewalld"
    # Example pillar: c (lan_access [a]), e and f (all) may open connections into LAN1.
    assert a.firewall.allow_sources == ("10.70.0.3/32", "10.70.0.4/32", "10.70.0.5/32")
    # a has lan_access none: not allowed into LAN2.
    assert plan(spec, "c").firewall.allow_sources == ("10.70.0.4/32", "10.70.0.5/32")


def test_endpoint_without_port_gets_listen_port(data):
    data["hub"]["endpoint"] = "vpn.example.com"
    data["listen_port"] = 41820
    a = plan(load_network(data), "a")
    assert a.peers[0].endpoint == "vpn.example.com:41820"
    assert a.listen_port == 41820


@pytest.mark.parametrize("change", [{"expires": YESTERDAY}, {"revoked": True}, {"expires": str(YESTERDAY)}])
def test_inactive_developer_is_cut_off(data, change):
    data["developers"]["e"].update(change)
    spec = load_network(data)
    assert peer_names(plan(spec, "z")) == ["a", "c", "f"]
    for gid in ("a", "c"):
        assert "10.70.0.4/32" not in plan(spec, gid).firewall.allow_sources
        assert "10.70.0.5/32" in plan(spec, gid).firewall.allow_sources
    assert "10.70.0.4" not in host_files(plan(spec, "a"))[-1].content   # direct.xml


def test_developer_active_on_last_day(data):
    data["developers"]["e"]["expires"] = TODAY
    spec = load_network(data)
    assert "e" in peer_names(plan(spec, "z"))
    assert "e" not in peer_names(plan(spec, "z", today=TODAY + datetime.timedelta(days=1)))


def test_revoked_gateway_is_cut_off(data):
    data["gateways"]["c"]["revoked"] = True
    spec = load_network(data)
    hub = plan(spec, "z")
    assert peer_names(hub) == ["a", "e", "f"]
    assert hub.interface_routes == ["192.168.201.0/24"]
    assert "10.70.0.3/32" not in plan(spec, "a").firewall.allow_sources
    assert plan(spec, "c").role == "none"
    assert host_files(plan(spec, "c")) == []


def test_hub_is_never_in_an_allow_list(data):
    for gw in data["gateways"].values():
        gw["lan_access"] = "all"
    spec = load_network(data)
    for gid in ("a", "c"):
        fw = plan(spec, gid).firewall
        assert "10.70.0.1/32" not in fw.allow_sources
        assert f"{data['gateways'][gid]['address']}/32" not in fw.allow_sources   # nor itself
        assert "10.70.0.1" not in host_files(plan(spec, gid))[-1].content
    assert plan(spec, "a").firewall.allow_sources == ("10.70.0.3/32", "10.70.0.4/32", "10.70.0.5/32")
    assert plan(spec, "c").firewall.allow_sources == ("10.70.0.2/32", "10.70.0.4/32", "10.70.0.5/32")


def test_allow_list_sorted_numerically(data):
    data["developers"]["f"]["address"] = "10.70.0.10"
    data["developers"]["e"]["address"] = "10.70.0.9"
    spec = load_network(data)
    assert plan(spec, "c").firewall.allow_sources == ("10.70.0.9/32", "10.70.0.10/32")


def test_masquerade_tuple(spec):
    assert plan(spec, "c").firewall.masquerade == ("10.70.0.0/16", "192.168.200.0/24", "eth2")
    assert plan(spec, "a").firewall.masquerade is None


def test_lan_router_static_route(spec):
    r1 = plan(spec, "r1")
    assert r1.role == "lan_router"
    assert r1.static_routes == [("10.70.0.0/16", "192.168.201.247")]
    assert r1.peers == [] and [f.path for f in host_files(r1)] == ["/etc/systemd/system/wgmesh-routes.service"]
    (unit,) = host_files(r1)
    assert [line for line in unit.content.splitlines() if line.startswith("ExecStart")] == \
        ["ExecStart=ip route replace 10.70.0.0/16 via 192.168.201.247"]
    assert unit.mode == "0644" and not unit.secret
    assert managed_hosts(spec) == ["z", "a", "c", "r1"]


def test_lan_router_of_masquerade_gateway_gets_no_route(data):
    data["gateways"]["a"]["lan_mode"] = "masquerade"
    spec = load_network(data)
    assert plan(spec, "r1").static_routes == []
    assert static_route_instructions(spec) == []


def test_static_route_instructions(spec):
    assert static_route_instructions(spec) == [
        "a: ip route add 10.70.0.0/16 via 192.168.201.247   # on r1 (managed by wgmesh)"]


def test_unknown_host(spec):
    other = plan(spec, "d")
    assert other.role == "none" and host_files(other) == []


def test_gateway_without_known_key_is_pending(spec):
    keys = {"z": art.HUB_PUBLIC, "a": art.PUBLIC_KEYS["a"]}
    hub = plan(spec, "z", public_keys=keys)
    assert hub.pending == ["c"]
    assert peer_names(hub) == ["a", "e", "f"]
    # c's LAN stays routed into the tunnel: a key that is late (mine) must not remove live routes
    assert hub.interface_routes == ["192.168.200.0/24", "192.168.201.0/24"]
    netdev = host_files(hub)[0].content
    assert "None" not in netdev and "10.70.0.3/32" not in netdev
    assert netdev.count("[WireGuardPeer]") == 3


def test_hub_without_known_key_is_pending_on_gateway(spec):
    a = plan(spec, "a", public_keys={"a": art.PUBLIC_KEYS["a"]})
    assert a.pending == ["z"]
    assert a.peers == []
    assert "[WireGuardPeer]" not in host_files(a)[0].content


def test_no_preshared_keys(data):
    data["preshared_keys"] = False
    spec = load_network(data)
    assert all(p.preshared_key is None for p in plan(spec, "z").peers)
    assert "PresharedKey" not in host_files(plan(spec, "z"))[0].content


def test_gateway_firewall_override_iptables(data):
    data["gateways"]["a"]["firewall"] = "iptables"
    spec = load_network(data)
    a = plan(spec, "a")
    assert a.firewall.backend == "iptables"
    assert "/etc/firewalld/direct.xml" not in [f.path for f in host_files(a)]
    assert "/etc/firewalld/direct.xml" in [f.path for f in host_files(plan(spec, "c"))]


def test_wgquick_backend(data):
    data["backend"] = "wgquick"
    spec = load_network(data)
    files = {f.path: f for f in host_files(plan(spec, "z"))}
    conf = files["/etc/wireguard/wg0.conf"]
    assert (conf.mode, conf.secret) == ("0600", True)
    assert "PrivateKey =" not in conf.content
    assert "PostUp = wg set %i private-key /etc/wireguard/wg0.key" in conf.content
    assert "AllowedIPs = 10.70.0.2/32, 192.168.201.0/24" in conf.content
    assert "/etc/systemd/network/wg0.netdev" not in files


def test_wg_setconf_carries_private_key_and_peers(spec):
    text = wg_setconf(plan(spec, "a"), art.PRIVATE_KEYS["a"])
    lines = [l for l in text.splitlines() if l.strip()]
    assert lines[:3] == ["[Interface]", f"PrivateKey = {art.PRIVATE_KEYS['a']}", "ListenPort = 51820"]
    assert "Endpoint = 39.101.166.124:51820" in lines
    assert "AllowedIPs = 10.70.0.0/16" in lines
    assert "MTU" not in text and "Address" not in text   # not wg(8) keys


def test_missing_preshared_key_makes_the_peer_pending_not_keyless(spec):
    keys = {"z": art.HUB_PUBLIC, "a": art.PUBLIC_KEYS["a"], "c": art.PUBLIC_KEYS["c"]}
    psks = {"a": art.PSKS["a"], "c": art.PSKS["c"], "e": art.PSKS["e"]}     # f's is missing
    hub = host_config(spec, "z", TODAY, keys, psks)
    assert hub.pending == ["f"] and "f" not in peer_names(hub)
    assert all(p.preshared_key for p in hub.peers)


def test_pending_peers_keep_every_live_peer():
    from wgmesh_core.live import LiveInterface, LivePeer, peer_diff
    from wgmesh_core.plan import HostConfig
    live = LiveInterface("k", "K", 51820, {"HUB": LivePeer("HUB", None, "1.2.3.4:51820", frozenset(["10.70.0.0/16"]), 1, 0, 0, 15)})
    waiting = HostConfig(host="a", role="gateway", interface="wg0", listen_port=51820, pending=["z"])
    assert peer_diff(waiting, live).removed == []
    complete = HostConfig(host="a", role="gateway", interface="wg0", listen_port=51820)
    assert peer_diff(complete, live).removed == ["HUB"]


def test_rotating_the_epoch_plans_every_host_and_client(data):
    import copy
    from wgmesh_core.diff import plan_change
    old = load_network(data)
    rotated = copy.deepcopy(data)
    rotated["preshared_key_epoch"] = 1
    change = plan_change(old, load_network(rotated), TODAY)
    assert change.affected == ["z", "a", "c"] and change.clients_changed == ["e", "f"]


def test_plan_change_lists_a_deleted_gateway_so_it_is_converged(data):
    """A host that exists only in the old revision (its gateway entry deleted) is still planned:
    it loses its tunnel files and the hub peer; leaving it out would leave it untouched."""
    import copy
    from wgmesh_core.diff import plan_change
    old = load_network(data)
    without_c = copy.deepcopy(data)
    del without_c["gateways"]["c"]
    change = plan_change(old, load_network(without_c), TODAY)
    assert change.affected == ["z", "a", "c"]
    by_host = {h.host: h for h in change.hosts}
    assert by_host["c"].peers_removed == ["z"]
    assert sorted(by_host["c"].file_diffs) == ["/etc/firewalld/direct.xml", "/etc/firewalld/policies/wgmesh-wireguard.xml",
                                               "/etc/firewalld/zones/wgmesh.xml",
                                               "/etc/sysctl.d/10-ip-forward.conf",
                                               "/etc/systemd/network/wg0.netdev", "/etc/systemd/network/wg0.network"]
    assert by_host["z"].peers_removed == ["c"] and by_host["z"].routes_removed == ["192.168.200.0/24"]


def test_switching_an_iptables_gateway_from_masquerade_to_route_converges_it(data):
    """With the iptables backend the MASQUERADE rule is live state and a line of the boot-time
    rules file: the plan names the gateway and the rule, or the old NAT rule would stay until the
    next drift run. (Found by the plan_change property over random networks.)"""
    import copy
    from wgmesh_core.diff import plan_change
    data["firewall"] = "iptables"
    old = load_network(data)
    routed = copy.deepcopy(data)
    routed["gateways"]["c"]["lan_mode"] = "route"
    change = plan_change(old, load_network(routed), TODAY)
    assert change.affected == ["c"]
    (c,) = [h for h in change.hosts if h.host == "c"]
    assert list(c.file_diffs) == ["/etc/wgmesh/iptables.rules"]
    assert "--A WGMESH-POSTROUTING -s 10.70.0.0/16 -d 192.168.200.0/24 -o eth2 -j MASQUERADE" \
        in c.file_diffs["/etc/wgmesh/iptables.rules"]
    assert c.masquerade_removed == ["-s 10.70.0.0/16 -d 192.168.200.0/24 -o eth2"]
    assert c.summary() == "-masquerade -s 10.70.0.0/16 -d 192.168.200.0/24 -o eth2"


def test_the_summary_line_of_a_host_names_every_change():
    from wgmesh_core.diff import HostChange
    change = HostChange("c", "gateway", peers_added=["g"], peers_removed=["e"], peers_changed=["f"],
                        allow_added=["10.70.0.6/32"], allow_removed=["10.70.0.4/32"],
                        routes_added=["192.168.7.0/24"], routes_removed=["192.168.9.0/24"],
                        masquerade_added=["-s A"], masquerade_removed=["-s B"])
    assert change.summary() == ("+peer g, -peer e, ~peer f, +allow 10.70.0.6/32, -allow 10.70.0.4/32, "
                                "+route 192.168.7.0/24, -route 192.168.9.0/24, +masquerade -s A, -masquerade -s B")
    assert HostChange("c", "gateway").summary() == "unchanged"
    assert HostChange("c", "gateway", file_diffs={"/etc/x": "..."}).summary() == "files change"


def test_a_plan_shows_each_changed_file_as_a_unified_diff(data):
    import copy
    from wgmesh_core.diff import plan_change
    revoked = copy.deepcopy(data)
    revoked["developers"]["e"]["revoked"] = True
    change = plan_change(load_network(data), load_network(revoked), TODAY)
    (z,) = [h for h in change.hosts if h.host == "z"]
    netdev = z.file_diffs["/etc/systemd/network/wg0.netdev"]
    assert netdev.startswith("--- a/etc/systemd/network/wg0.netdev\n+++ b/etc/systemd/network/wg0.netdev\n@@ ")
    body = netdev.splitlines()[3:]
    assert "-AllowedIPs=10.70.0.4/32" in body and not any(line.startswith("+") for line in body)  # e only leaves


def test_a_first_deployment_shows_new_files_and_a_deleted_host_removed_ones(data):
    import copy
    from wgmesh_core.diff import plan_change
    spec = load_network(data)
    for change in plan_change(None, spec, TODAY).hosts:
        for diff in change.file_diffs.values():
            assert not any(line.startswith("-") for line in diff.splitlines()[2:]), diff
    without_c = copy.deepcopy(data)
    del without_c["gateways"]["c"]
    (c,) = [h for h in plan_change(spec, load_network(without_c), TODAY).hosts if h.host == "c"]
    for diff in c.file_diffs.values():
        assert not any(line.startswith("+") for line in diff.splitlines()[2:]), diff


def test_a_new_lan_inside_the_cover_needs_no_reimport_and_expiry_is_listed(data):
    """README: the covering prefix means adding a LAN needs no re-import. Client configs are
    compared as the WireGuard app imports them: only the comment naming the covered LANs changes."""
    import copy
    import datetime
    from wgmesh_core.diff import plan_change
    data["developers"]["f"]["expires"] = TODAY + datetime.timedelta(days=3)
    more = copy.deepcopy(data)
    more["gateways"]["b"] = {"address": "10.70.0.9", "lan": "192.168.5.0/24", "lan_address": "192.168.5.1"}
    change = plan_change(load_network(data), load_network(more), TODAY)
    assert change.clients_changed == [] and change.clients_removed == []
    assert "b" in change.affected
    assert change.expiring == {"f": TODAY + datetime.timedelta(days=3)}


def test_a_new_hub_host_means_every_developer_reimports(data):
    """Moving the hub to another minion changes its key (the stand-in follows the host):
    every active developer's client config changes."""
    import copy
    from wgmesh_core.diff import plan_change
    moved = copy.deepcopy(data)
    moved["hub"]["minion"] = "hub1"
    change = plan_change(load_network(data), load_network(moved), TODAY)
    assert change.clients_changed == ["e", "f"]


def test_the_private_key_file_belongs_to_the_backend_that_reads_it(data):
    from wgmesh_core.render import private_key_file, private_key_group
    hub = plan(load_network(data), "z")
    assert (private_key_file(hub), private_key_group(hub)) == ("/etc/systemd/network/wg0.key", "systemd-network")
    data["backend"] = "wgquick"
    hub = plan(load_network(data), "z")
    assert (private_key_file(hub), private_key_group(hub)) == ("/etc/wireguard/wg0.key", "root")


def test_a_client_config_names_its_developer_and_has_no_psk_when_they_are_off(data):
    from wgmesh_core.render import client_config
    text = client_config(load_network(data), "e", psk="P" * 43 + "=")
    assert text.startswith("# wgmesh client config for developer e (")
    assert "PresharedKey = " + "P" * 43 + "=" in text
    data["preshared_keys"] = False
    assert "PresharedKey" not in client_config(load_network(data), "e", psk="P" * 43 + "=")


def test_the_route_note_is_wrapped_at_96_characters(data):
    from wgmesh_core.render import client_config
    data["developers"]["e"]["platform"] = "windows"
    text = client_config(load_network(data), "e")
    notes = [line for line in text.splitlines() if line.startswith("# ")]
    notes = notes[next(i for i, line in enumerate(notes) if line.startswith("# Windows")):]
    assert len(notes) > 1 and max(len(line) for line in notes) <= 98 and len(notes[0]) > 72


def test_a_developer_left_out_does_not_hide_the_developers_after_it(spec):
    """e publishes the hub's own key (left out, named); f, after e, is still the hub's peer."""
    keys_of_hosts = {"z": art.HUB_PUBLIC, "a": art.PUBLIC_KEYS["a"], "c": art.PUBLIC_KEYS["c"]}
    import copy
    from wgmesh_core.validate import load_network as load
    data = copy.deepcopy(spec.model_dump(mode="json"))
    data["developers"]["e"]["public_key"] = art.HUB_PUBLIC
    hub = host_config(load(data), "z", TODAY, keys_of_hosts, art.PSKS)
    assert peer_names(hub) == ["a", "c", "f"] and "e" in hub.left_out


def test_a_pending_gateway_does_not_hide_the_gateways_after_it(spec):
    hub = plan(spec, "z", public_keys={"z": art.HUB_PUBLIC, "c": art.PUBLIC_KEYS["c"]})
    assert hub.pending == ["a"] and peer_names(hub) == ["c", "e", "f"]


def test_a_host_whose_config_is_the_same_has_its_files_rendered_once(data, monkeypatch):
    """Its files are made from its config alone: the same config, the same files, no diff."""
    import base64
    import copy
    import dataclasses
    import hashlib
    from wgmesh_core import diff
    from wgmesh_core.diff import plan_change, stand_in_configs
    from wgmesh_core.render import UnsafeValue
    rendered = []
    host_file_group = diff.host_file_group
    monkeypatch.setattr(diff, "host_file_group", lambda config, group: (
        rendered.append((config.host, id(config))) or host_file_group(config, group)))
    rekeyed = copy.deepcopy(data)
    rekeyed["developers"]["e"]["public_key"] = base64.b64encode(hashlib.sha256(b"e's new key").digest()).decode()
    old, new = load_network(data), load_network(rekeyed)
    configs = stand_in_configs(old, TODAY), stand_in_configs(new, TODAY)
    plan = plan_change(old, new, TODAY, configs)
    same = [h for h in managed_hosts(new) if configs[0][h] == configs[1][h]]
    changed = [h for h in managed_hosts(new) if h not in same]
    assert changed == ["z"] and same     # a developer's new key changes the hub's peer only
    for host in same:
        assert {config for name, config in rendered if name == host} == {id(configs[1][host])}
        assert not next(h for h in plan.hosts if h.host == host).file_diffs
    for host in changed:
        assert {config for name, config in rendered if name == host} == {id(c[host]) for c in configs}
    assert plan_change(old, new, TODAY).hosts == plan.hosts    # what planning afresh shows
    (host, *_) = [h for h in same if configs[1][h].role == "gateway"]   # a value rendering refuses is
    bad = dataclasses.replace(configs[1][host], interface="wg0\nPostUp = id")    # refused though it does not change
    for planned in configs:
        planned[host] = bad
    with pytest.raises(UnsafeValue, match=f"files of host {host}"):
        plan_change(old, new, TODAY, configs)


@pytest.mark.parametrize("refused, named", [(("z", "a"), "z"), (("a",), "a"), (("c", "z"), "z")])
def test_the_command_plans_the_hub_beside_the_other_hosts_as_plan_change_would(data, refused, named):
    """`wgmesh plan` makes the hub's change in a child process while it makes the other hosts'
    (cli._host_changes): the same changes and reachability diff as planned in one go, and a host
    whose files are refused fails it as plan_change fails, naming the first such host in its
    order (the hub first), whichever process found it first."""
    import copy
    import dataclasses
    from wgmesh_core.cli import _host_changes
    from wgmesh_core.diff import plan_change, stand_in_configs
    from wgmesh_core.matrix import reach_diff
    from wgmesh_core.render import UnsafeValue
    grown = copy.deepcopy(data)
    grown["developers"]["g"] = {"address": "10.70.0.6", "public_key": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAE=",
                                "lan_access": "all"}
    gone = copy.deepcopy(grown)
    del gone["gateways"]["a"]           # with its LAN router r1: both only in the base of the second change
    gone["developers"]["e"]["lan_access"] = gone["gateways"]["c"]["lan_access"] = ["c"]
    for before, after, diffed in ((data, grown, ["z", "a", "c"]), (grown, gone, ["z", "a", "r1"])):
        old, new = load_network(before), load_network(after)
        configs = stand_in_configs(old, TODAY), stand_in_configs(new, TODAY)
        planned, diff = _host_changes(old, new, TODAY, configs)
        alone = plan_change(old, new, TODAY)
        assert sorted(planned) == sorted(h.host for h in alone.hosts)
        assert plan_change(old, new, TODAY, configs, planned=planned) == alone
        assert [h.host for h in alone.hosts if h.file_diffs] == diffed     # the hub's diff came back
        assert diff == reach_diff(old, new, TODAY)
    old, new = load_network(data), load_network(grown)
    configs = stand_in_configs(old, TODAY), stand_in_configs(new, TODAY)
    for host in refused:
        for planned_configs in configs:
            planned_configs[host] = dataclasses.replace(planned_configs[host], interface="wg0\nPostUp = id")
    with pytest.raises(UnsafeValue, match=f"files of host {named}"):
        _host_changes(old, new, TODAY, configs)
