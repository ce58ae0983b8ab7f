"""The formula in salt/: top.sls targets only the minions the wgmesh pillar names, and
install.sls installs, starts and enables what each host's backend and firewall need, per OS
(map.jinja), or nothing where the minion's config turns that off (the lab).

Rendered with the project's own Salt (`salt-call --local state.show_top / show_sls`); the
modules come from the saltext-wgmesh entry point (editable install), no saltutil.sync_all.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import BIN, example_network_data

from .conftest import Minion, state_ids


@pytest.fixture
def minion(tmp_path):
    def make(minion_id, network="article", **config):
        return Minion(tmp_path, minion_id, example_network_data() if network == "article" else network,
                      BIN, **config)
    return make


def args_of(state: dict, function: str) -> dict:
    module, name = function.split(".")
    args = {}
    for arg in state[module]:
        if isinstance(arg, dict):
            args.update(arg)
        else:
            assert arg == name, (function, state)
    return args


@pytest.mark.parametrize("minion_id", ["z", "a", "c", "r1"])
def test_top_gives_wgmesh_to_the_hub_gateways_and_lan_routers(minion, minion_id):
    assert minion(minion_id).ok("state.show_top") == {"base": ["wgmesh"], "fleet": ["common"]}


def test_top_gives_nothing_to_other_minions(minion):
    assert minion("b").ok("state.show_top") == {"fleet": ["common"]}
    assert minion("no-pillar", network=None).ok("state.show_top") == {"fleet": ["common"]}
    network = example_network_data()
    network["gateways"]["a"]["lan_router"] = "b"
    assert minion("b", network=network).ok("state.show_top") == {"base": ["wgmesh"], "fleet": ["common"]}


def test_debian_hub_gets_wireguard_tools_and_networkd_first(minion):
    sls = minion("z").ok("state.show_sls", "wgmesh")
    order = state_ids(sls)
    assert order[:2] == ["wgmesh-packages", "wgmesh-service-systemd-networkd"], order
    assert order.index("wgmesh-service-systemd-networkd") < order.index("wgmesh-private-key")
    # the hub's firewall (default firewalld) filters what it forwards between peers
    assert args_of(sls["wgmesh-packages"], "pkg.installed")["pkgs"] == ["wireguard-tools", "firewalld"]
    assert order.index("wgmesh-service-firewalld") < order.index("wgmesh-firewall")
    service = args_of(sls["wgmesh-service-systemd-networkd"], "service.running")
    assert service["enable"] is True and service["require"] == [{"pkg": "wgmesh-packages"}]
    # a host switched from wg-quick must not bring wg0 up twice at boot
    assert args_of(sls["wgmesh-boot-off-wg-quick@wg0"], "service.disabled")["name"] == "wg-quick@wg0"


def test_debian_gateway_gets_firewalld_running_before_its_firewall_state(minion):
    sls = minion("a").ok("state.show_sls", "wgmesh")
    assert args_of(sls["wgmesh-packages"], "pkg.installed")["pkgs"] == ["wireguard-tools", "firewalld"]
    assert args_of(sls["wgmesh-service-firewalld"], "service.running")["enable"] is True
    order = state_ids(sls)
    assert order.index("wgmesh-service-firewalld") < order.index("wgmesh-firewall")


def test_wgquick_host_is_enabled_at_boot_not_started_by_the_service(minion):
    network = example_network_data()
    network["gateways"]["c"]["backend"] = "wgquick"
    network["gateways"]["c"]["firewall"] = "iptables"
    sls = minion("c", network=network).ok("state.show_sls", "wgmesh")
    assert args_of(sls["wgmesh-packages"], "pkg.installed")["pkgs"] == ["wireguard-tools", "iptables", "ipset"]
    assert args_of(sls["wgmesh-boot-wg-quick@wg0"], "service.enabled")["name"] == "wg-quick@wg0"
    assert not [sid for sid in sls if sid.startswith(("wgmesh-service-", "wgmesh-boot-off-"))]


def test_rhel_networkd_host_is_refused_with_advice_and_wgquick_host_gets_firewalld(minion):
    rhel = {"grains": {"os_family": "RedHat", "os": "Rocky"}}
    done = minion("a", **rhel).call("state.show_sls", "wgmesh")
    assert done.returncode != 0
    assert "wgmesh: backend networkd is not available on Rocky" in done.stdout
    assert "set backend: wgquick for a in the wgmesh pillar" in done.stdout
    network = example_network_data()
    network["backend"] = "wgquick"
    sls = minion("a", network=network, **rhel).ok("state.show_sls", "wgmesh")
    assert args_of(sls["wgmesh-packages"], "pkg.installed")["pkgs"] == ["wireguard-tools", "firewalld"]
    assert "wgmesh-service-firewalld" in sls and "wgmesh-boot-wg-quick@wg0" in sls


def test_minion_config_turns_packages_and_services_off(minion):
    off = {"wgmesh_formula": {"manage_packages": False, "manage_services": False}}
    sls = minion("a", **off).ok("state.show_sls", "wgmesh")
    assert "wgmesh-tunnel" in sls
    assert not [sid for sid in sls if sid.startswith(("wgmesh-packages", "wgmesh-service-", "wgmesh-boot-"))]
    services_only = minion("z", wgmesh_formula={"manage_packages": False}).ok("state.show_sls", "wgmesh")
    assert "wgmesh-packages" not in services_only
    assert "require" not in args_of(services_only["wgmesh-service-systemd-networkd"], "service.running")


def test_lan_router_gets_its_route_unit_enabled_and_no_packages_or_services(minion):
    sls = minion("r1").ok("state.show_sls", "wgmesh")
    assert "wgmesh-lan-routes" in sls
    unit = "/etc/systemd/system/wgmesh-routes.service"
    # the state carries no content: file.managed copies the copy the minion staged
    staged = args_of(sls[f"wgmesh-file-{unit}"], "file.managed")["source"]
    assert "contents" not in args_of(sls[f"wgmesh-file-{unit}"], "file.managed")
    assert "ExecStart=ip route replace 10.70.0.0/16 via 192.168.201.247" in Path(staged).read_text()
    enabled = args_of(sls["wgmesh-boot-unit-wgmesh-routes.service"], "service.enabled")
    assert enabled["name"] == "wgmesh-routes.service" and enabled["require"] == [{"file": f"wgmesh-file-{unit}"}]
    assert [sid for sid in sls if sid.startswith(("wgmesh-packages", "wgmesh-service-", "wgmesh-boot-"))] == \
        ["wgmesh-boot-unit-wgmesh-routes.service"]


def test_an_iptables_gateway_enables_its_firewall_boot_unit(minion):
    network = example_network_data()
    network["firewall"] = "iptables"
    sls = minion("c", network=network).ok("state.show_sls", "wgmesh")
    enabled = args_of(sls["wgmesh-boot-unit-wgmesh-firewall.service"], "service.enabled")
    assert enabled["require"] == [{"file": "wgmesh-file-/etc/systemd/system/wgmesh-firewall.service"}]
    assert "wgmesh-file-/etc/wgmesh/iptables.rules" in sls
