"""The tunnel's addressing and a LAN router's static routes against live `ip` listings
(as iproute2 prints them): what differs, and the commands fixing exactly that."""
from __future__ import annotations

import dataclasses

from wgmesh_core import addressing, host_config, load_network
from wgmesh_core.addressing import InterfaceLive
from wgmesh_core.firewall import Command

from tests.conftest import example_network_data

from .conftest import TODAY

LINK = "7: wg0: <POINTOPOINT,NOARP,UP,LOWER_UP> mtu 1280 qdisc noqueue state UNKNOWN mode DEFAULT group default qlen 500\\    link/none \n"
ADDRESS = "7: wg0    inet 10.70.0.1/16 scope global wg0\\       valid_lft forever preferred_lft forever\n"
ROUTES = ("10.70.0.0/16 proto kernel scope link src 10.70.0.1 \n"
          "192.168.200.0/24 proto static scope link \n192.168.201.0/24 proto static scope link \n")


def hub():
    spec = load_network(example_network_data())
    return host_config(spec, "z", TODAY)


def in_sync(config, **changed) -> InterfaceLive:
    return dataclasses.replace(InterfaceLive(LINK, ADDRESS, ROUTES, "1"), **changed)


def argvs(commands):
    return [" ".join(command.argv) for command in commands]


def test_an_interface_as_planned_needs_nothing():
    config = hub()
    assert config.address == "10.70.0.1/16" and config.strict_rp_filter
    assert config.interface_routes == ["192.168.200.0/24", "192.168.201.0/24"]
    assert addressing.interface_change(config, in_sync(config)) == ([], [])


def test_a_link_down_with_another_mtu_and_a_loose_rp_filter():
    config = hub()
    live = in_sync(config, link=LINK.replace("UP,LOWER_UP", "").replace("mtu 1280", "mtu 1420"), rp_filter="0\n")
    changes, commands = addressing.interface_change(config, live)
    assert changes == ["mtu 1280", "link up", "rp_filter 1 (strict) on wg0"]
    assert argvs(commands) == ["ip link set dev wg0 mtu 1280", "ip link set dev wg0 up",
                               "sysctl -q -w net/ipv4/conf/wg0/rp_filter=1"]
    assert all(command.check for command in commands)


def test_a_renumbered_host_gets_its_address_and_loses_the_old_one():
    config = dataclasses.replace(hub(), address="10.70.0.9/16")
    changes, commands = addressing.interface_change(config, in_sync(config))
    assert changes == ["address 10.70.0.9/16", "removed address 10.70.0.1/16"]
    assert argvs(commands) == ["ip addr replace 10.70.0.9/16 dev wg0", "ip addr del 10.70.0.1/16 dev wg0"]


def test_a_missing_route_is_added_and_one_no_longer_planned_removed_the_connected_one_kept():
    config = dataclasses.replace(hub(), interface_routes=["192.168.200.0/24", "192.168.202.0/24"])
    changes, commands = addressing.interface_change(config, in_sync(config))
    assert changes == ["route 192.168.202.0/24", "removed route 192.168.201.0/24"]
    assert argvs(commands) == ["ip route replace 192.168.202.0/24 dev wg0", "ip route del 192.168.201.0/24 dev wg0"]


def test_a_gateway_without_strict_rp_filter_ignores_it_and_an_interface_name_with_a_dot():
    config = dataclasses.replace(hub(), strict_rp_filter=False, interface_routes=[])
    live = in_sync(config, rp_filter="", routes=ROUTES.splitlines()[0] + "\n")
    assert addressing.interface_change(config, live) == ([], [])
    assert addressing.rp_filter_key("wg0.5") == "net/ipv4/conf/wg0.5/rp_filter"
    assert addressing.interface_listings("wg1") == {"link": ("ip", "-o", "link", "show", "dev", "wg1"),
                                                    "addresses": ("ip", "-o", "-4", "addr", "show", "dev", "wg1"),
                                                    "routes": ("ip", "-4", "route", "show", "dev", "wg1")}


SHOWN = {"10.70.0.0/16": "10.70.0.0/16 via 192.168.201.247 dev eth1 \n"}


def test_a_lan_routers_route_is_added_only_when_missing():
    route = [("10.70.0.0/16", "192.168.201.247")]
    assert addressing.static_routes_change(route, SHOWN) == ([], [])
    assert addressing.static_routes_change(route, {"10.70.0.0/16": "10.70.0.0/16 via 192.168.201.247"}) == ([], [])
    assert addressing.static_routes_change(route, {"10.70.0.0/16": ""}) == (
        ["10.70.0.0/16 via 192.168.201.247"], [Command(("ip", "route", "replace", "10.70.0.0/16", "via", "192.168.201.247"))])
    # a route through another router is not this one (and 192.168.201.24 is not .247)
    other = {"10.70.0.0/16": "10.70.0.0/16 via 192.168.201.24 dev eth1"}
    assert addressing.static_routes_change(route, other)[0] == ["10.70.0.0/16 via 192.168.201.247"]


def test_a_removed_lan_routers_route_is_deleted_only_when_present():
    route = [("10.70.0.0/16", "192.168.201.247")]
    assert addressing.static_routes_removal(route, {"10.70.0.0/16": ""}) == ([], [])
    assert addressing.static_routes_removal(route, SHOWN) == (
        ["10.70.0.0/16 via 192.168.201.247"],
        [Command(("ip", "route", "del", "10.70.0.0/16", "via", "192.168.201.247"), check=False)])
