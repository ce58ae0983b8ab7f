"""teardown.py: what a host's apply records, and which files a cleanup (`wgmesh.absent`) or a
backend switch may remove: only wgmesh's own (recorded, marked, or holding this host's key)."""
from __future__ import annotations

import json

import pytest

from wgmesh_core import teardown
from wgmesh_core.keys import generate_private_key
from wgmesh_core.plan import host_config
from wgmesh_core.render import host_files
from wgmesh_core.validate import load_network

from . import article_texts as art
from .conftest import TODAY

DEFAULTS = ["/etc/systemd/network/wg0.netdev", "/etc/systemd/network/wg0.network", "/etc/systemd/network/wg0.key",
            "/etc/wireguard/wg0.conf", "/etc/wireguard/wg0.key", "/etc/sysctl.d/10-ip-forward.conf",
            "/etc/sysctl.d/10-wgmesh-rp-filter.conf", "/etc/firewalld/direct.xml", "/etc/firewalld/zones/wgmesh.xml",
            "/etc/firewalld/policies/wgmesh-wireguard.xml", "/etc/wgmesh/iptables.rules", "/etc/wgmesh/ipsets",
            "/etc/systemd/system/wgmesh-firewall.service", "/etc/systemd/system/wgmesh-routes.service"]


def config_of(data, host):
    return host_config(load_network(data), host, TODAY, art.PUBLIC_KEYS, art.PSKS)


def test_the_footprint_of_a_hub_gateway_and_lan_router(data):
    hub = config_of(data, "z")
    record = teardown.footprint(hub)
    assert json.loads(json.dumps(record)) == record
    assert {k: v for k, v in record.items() if k != "files"} == {
        "role": "hub", "interface": "wg0", "backend": "networkd", "firewall": "firewalld"}
    assert set(record["files"]) == {f.path for f in host_files(hub)} | {"/etc/systemd/network/wg0.key"}
    assert "/etc/systemd/network/wg0.netdev" in record["files"] and "/etc/firewalld/direct.xml" in record["files"]
    data["backend"], data["firewall"] = "wgquick", "iptables"
    gateway = teardown.footprint(config_of(data, "a"))
    assert gateway["role"] == "gateway" and gateway["backend"] == "wgquick" and gateway["firewall"] == "iptables"
    assert "/etc/wireguard/wg0.key" in gateway["files"] and "static_routes" not in gateway
    assert teardown.footprint(config_of(data, "r1")) == {"role": "lan_router",
                                                         "static_routes": [["10.70.0.0/16", "192.168.201.247"]],
                                                         "files": ["/etc/systemd/system/wgmesh-routes.service"]}


def test_a_footprint_from_the_files_the_caller_rendered_is_the_same_and_renders_nothing(data, monkeypatch):
    for host in ("z", "a", "r1"):
        config = config_of(data, host)
        files = host_files(config)
        expected = teardown.footprint(config)
        monkeypatch.setattr(teardown, "host_files", lambda config: pytest.fail("rendered again"))
        assert teardown.footprint(config, files) == expected
        monkeypatch.undo()


def test_owned_files_are_the_recorded_ones_then_the_defaults_not_recorded():
    assert teardown.owned_files("wg0", {}) == ([], DEFAULTS)
    record = {"files": ["/etc/wireguard/wg0.conf", "/etc/systemd/network/other.conf"]}
    assert teardown.owned_files("wg0", record) == (record["files"], [p for p in DEFAULTS if p != "/etc/wireguard/wg0.conf"])
    assert teardown.owned_files("wg1", {})[1][0] == "/etc/systemd/network/wg1.netdev"


def test_a_default_path_file_is_wgmeshs_only_when_marked():
    assert not teardown.is_wgmesh_file("/etc/wireguard/wg0.key", "anything")
    assert teardown.is_wgmesh_file("/etc/wireguard/wg0.conf", "# Managed by wgmesh: do not edit\n[Interface]\n")
    assert not teardown.is_wgmesh_file("/etc/wireguard/wg0.conf", "[Interface]\nPrivateKey = x\n")


MARKED = "# Managed by wgmesh (Salt): local edits are reverted.\n[Interface]\n"


def test_a_key_file_is_wgmeshs_only_beside_wgmeshs_tunnel_file():
    """Without a record, a lone key file (a WireGuard set up by hand) stays; beside a tunnel file
    wgmesh wrote (its record lost), it goes with it. A marked file that is no tunnel's (the sysctl
    file) says nothing of the key."""
    key, conf = "/etc/wireguard/wg0.key", "/etc/wireguard/wg0.conf"
    sysctl = "/etc/sysctl.d/10-ip-forward.conf"
    assert teardown.owned_defaults({conf: "[Interface]\nAddress = 10.99.0.1/24\n", key: "KEY\n"}) == []
    assert teardown.owned_defaults({key: "KEY\n", sysctl: "# Managed by wgmesh\n"}) == [sysctl]
    assert teardown.owned_defaults({conf: MARKED, key: "KEY\n", sysctl: "net.ipv4.ip_forward = 1\n"}) == [conf, key]
    netdev, network_key = "/etc/systemd/network/wg0.netdev", "/etc/systemd/network/wg0.key"
    assert teardown.owned_defaults({netdev: MARKED, network_key: "KEY\n", key: "KEY\n"}) == [netdev, network_key, key]


def test_the_other_backends_files(data):
    assert teardown.other_backend_files(config_of(data, "z")) == [
        ("wg_quick", "/etc/wireguard/wg0.conf"), ("key", "/etc/wireguard/wg0.key")]
    data["backend"], data["interface"] = "wgquick", "wg7"
    assert teardown.other_backend_files(config_of(data, "z")) == [
        ("netdev", "/etc/systemd/network/wg7.netdev"), ("network", "/etc/systemd/network/wg7.network"),
        ("key", "/etc/systemd/network/wg7.key")]


def test_another_backends_file_is_a_leftover_only_when_it_is_this_hosts():
    own, other = generate_private_key(), generate_private_key()
    assert teardown.is_leftover("network", "# Managed by wgmesh\n[Match]\n", own)
    assert not teardown.is_leftover("network", "[Match]\nName=wg0\n", own)          # someone else's
    assert teardown.is_leftover("netdev", f"[WireGuard]\nPrivateKey={own}\n", own)
    assert not teardown.is_leftover("netdev", f"[WireGuard]\nPrivateKey={other}\n", own)
    assert teardown.is_leftover("wg_quick", f"[Interface]\nPrivateKey = {own}\n", own)
    assert teardown.is_leftover("key", own + "\n", own) and not teardown.is_leftover("key", other, own)


def test_only_the_interface_files_make_an_interface_wgmeshs_and_units_are_named():
    paths = ["/etc/systemd/system/wgmesh-routes.service", "/etc/sysctl.d/10-ip-forward.conf",
             "/etc/wireguard/wg0.conf", "/etc/systemd/network/wg0.netdev", "/etc/wgmesh/iptables.rules"]
    assert teardown.tunnel_files(paths) == ["/etc/wireguard/wg0.conf", "/etc/systemd/network/wg0.netdev"]
    assert teardown.tunnel_files(paths[:2]) == []           # a LAN router's unit: its own wg0 is not wgmesh's
    assert teardown.unit_names(paths) == ["wgmesh-routes.service"]


@pytest.mark.parametrize("backend, firewall", [("networkd", "firewalld"), ("wgquick", "iptables")])
def test_every_record_an_apply_makes_passes_the_records_check(data, backend, firewall):
    assert teardown.record_problems({"role": "lan_router", "static_routes": [["0.0.0.0/1", "192.0.2.1"]]}) == []
    data["backend"], data["firewall"] = backend, firewall
    data["interface"] = "wg-office.1"
    for host in ("z", "a", "c", "r1"):
        record = json.loads(json.dumps(teardown.footprint(config_of(data, host))))
        assert teardown.record_problems(record) == [], host


@pytest.mark.parametrize("change, problem", [
    ({"interface": "-h"}, "interface '-h' is not an interface name"),
    ({"interface": ["wg0"]}, "interface ['wg0'] is not an interface name"),
    ({"files": ["/etc/passwd"]}, "file '/etc/passwd' is none wgmesh writes"),
    ({"files": ["/etc/wireguard/../passwd"]}, "file '/etc/wireguard/../passwd' is none wgmesh writes"),
    ({"files": ["/etc/wireguard/wg1.conf"]}, "file '/etc/wireguard/wg1.conf' is none wgmesh writes"),
    ({"files": "/etc/passwd"}, "files is not a list"),
    ({"static_routes": [["default", "192.0.2.1"]]}, "static route ['default', '192.0.2.1'] is not"),
    ({"static_routes": [["0.0.0.0/0", "192.0.2.1"]]}, "static route ['0.0.0.0/0', '192.0.2.1'] is not"),
    ({"static_routes": [["10.70.0.0/16", "192.0.2.1 dev lo"]]}, "static route ['10.70.0.0/16', '192.0.2.1 dev lo']"),
    ({"static_routes": [["10.70.0.0/16"]]}, "static route ['10.70.0.0/16'] is not"),
    ({"static_routes": {"10.70.0.0/16": "192.0.2.1"}}, "static_routes is not a list"),
    ({"files": [["/etc/wireguard/wg0.conf"]]}, "file ['/etc/wireguard/wg0.conf'] is none wgmesh writes"),
    ({"files": [{"path": "/etc/passwd"}]}, "file {'path': '/etc/passwd'} is none wgmesh writes"),
    ({"interface": None}, "no interface is recorded for its tunnel files"),
])
def test_a_record_value_no_apply_makes_is_named(change, problem):
    """The record's values reach `ip` and file removal (`wgmesh.absent`): a hand-edited or
    corrupted one is named, and the module removes nothing."""
    record = {"role": "gateway", "interface": "wg0", "backend": "wgquick",
              "files": ["/etc/wireguard/wg0.conf", "/etc/wireguard/wg0.key"], **change}
    (found,) = teardown.record_problems(record)
    assert found.startswith(problem), found
