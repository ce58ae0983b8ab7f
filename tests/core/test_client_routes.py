"""plan.client_routes: the article's route-conflict fix and where it must not apply."""
from __future__ import annotations

import netaddr
import pytest

from wgmesh_core.plan import client_routes
from wgmesh_core.render import client_config
from wgmesh_core.validate import load_network

from .conftest import TODAY, parse_ini, problem_at, problems_of

VPN = netaddr.IPNetwork("10.70.0.0/16")


def net(text):
    return netaddr.IPNetwork(text)


def overlaps(a, b):
    return a.first <= b.last and b.first <= a.last


def network_with(data, lans, access, platform="linux"):
    """The example network with gateways on ``lans`` (id -> LAN) and developer e's access."""
    data["gateways"] = {
        gid: {"address": f"10.70.0.{10 + i}", "lan": lan,
              "lan_address": str(net(lan).network + 1)}
        for i, (gid, lan) in enumerate(lans.items())}
    data["developers"]["e"].update(lan_access=access, platform=platform)
    data["developers"]["f"]["lan_access"] = "none"
    return load_network(data)


def check_cover(routes, allowed, forbidden):
    """The covering-prefix properties: VPN first, one covering prefix, strictly shorter
    than every allowed LAN, overlapping neither the VPN nor a forbidden LAN."""
    assert routes.allowed_ips[0] == "10.70.0.0/16"
    assert len(routes.allowed_ips) == 2
    cover = net(routes.allowed_ips[1])
    for lan in map(net, allowed):
        assert lan in cover
        assert cover.prefixlen < lan.prefixlen
    assert not overlaps(cover, VPN)
    for lan in map(net, forbidden):
        assert not overlaps(cover, lan)
    return cover


def test_article(spec):
    for name in ("e", "f"):
        routes = client_routes(spec, name)
        assert routes.allowed_ips == ("10.70.0.0/16", "192.168.0.0/16")
        assert "192.168.0.0/16" in routes.note


def test_one_lan_allowed_other_lan_elsewhere_in_192_168(data):
    spec = network_with(data, {"a": "192.168.201.0/24", "c": "192.168.10.0/24"}, ["a"])
    routes = client_routes(spec, "e")
    cover = check_cover(routes, ["192.168.201.0/24"], ["192.168.10.0/24"])
    assert str(cover) == "192.168.200.0/23"    # the narrowest such supernet


def test_one_lan_allowed_neighbour_lan_forbidden_falls_back_to_exact(data):
    # Every prefix shorter than 192.168.201.0/24 holds 192.168.200.0/24: no cover exists.
    spec = network_with(data, {"a": "192.168.201.0/24", "c": "192.168.200.0/24"}, ["a"])
    routes = client_routes(spec, "e")
    assert routes.allowed_ips == ("10.70.0.0/16", "192.168.201.0/24")
    assert "exact" in routes.note


def test_article_lans_with_access_to_a_only_gets_the_exact_lan_and_says_why(data):
    # Every prefix shorter than LAN1 192.168.201.0/24 also holds LAN2 192.168.200.0/24, which e
    # may not reach: no cover exists, so the exact LAN is routed and the note says so.
    data["developers"]["e"]["lan_access"] = ["a"]
    routes = client_routes(load_network(data), "e")
    assert routes.allowed_ips == ("10.70.0.0/16", "192.168.201.0/24")
    assert routes.note.startswith("no covering prefix avoids the VPN network and the LANs this developer")


def test_two_of_three_lans(data):
    spec = network_with(data, {"a": "192.168.0.0/24", "b": "192.168.1.0/24", "c": "192.168.50.0/24"}, ["a", "b"])
    cover = check_cover(client_routes(spec, "e"), ["192.168.0.0/24", "192.168.1.0/24"], ["192.168.50.0/24"])
    assert str(cover) == "192.168.0.0/23"       # the narrowest cover, not merely a short one


def test_lans_in_10_with_vpn_in_10_70(data):
    spec = network_with(data, {"a": "10.1.0.0/24", "c": "10.2.0.0/24"}, "all")
    cover = check_cover(client_routes(spec, "e"), ["10.1.0.0/24", "10.2.0.0/24"], [])
    assert str(cover) == "10.0.0.0/14"          # 10.0.0.0/8 would swallow the VPN: the narrowest cover


def test_lans_in_10_on_both_sides_of_vpn_fall_back_to_exact(data):
    # Any prefix holding both 10.60.0.0/24 and 10.80.0.0/24 holds 10.70.0.0/16.
    spec = network_with(data, {"a": "10.60.0.0/24", "c": "10.80.0.0/24"}, "all")
    routes = client_routes(spec, "e")
    assert routes.allowed_ips == ("10.70.0.0/16", "10.60.0.0/24", "10.80.0.0/24")
    assert not any(overlaps(net(r), VPN) for r in routes.allowed_ips[1:])


def test_single_lan_in_10(data):
    spec = network_with(data, {"a": "10.1.2.0/24"}, "all")
    cover = check_cover(client_routes(spec, "e"), ["10.1.2.0/24"], [])
    assert str(cover) == "10.1.2.0/23"          # one bit shorter than the LAN: the narrowest cover


def test_lan_in_172_16(data):
    spec = network_with(data, {"a": "172.20.1.0/24", "c": "192.168.5.0/24"}, ["a"])
    cover = check_cover(client_routes(spec, "e"), ["172.20.1.0/24"], ["192.168.5.0/24"])
    assert str(cover) == "172.16.0.0/12"


def test_windows_gets_exact_prefixes_and_a_note(data):
    data["developers"]["e"]["platform"] = "windows"
    routes = client_routes(load_network(data), "e")
    assert routes.allowed_ips == ("10.70.0.0/16", "192.168.200.0/24", "192.168.201.0/24")
    assert "Windows" in routes.note and "metric" in routes.note


def test_windows_client_config_renders_note_as_comments(data):
    data["developers"]["e"]["platform"] = "windows"
    spec = load_network(data)
    text = client_config(spec, "e", hub_public_key="CmmeC0yqofMMZhEGHuK5dd2Mxyxe7tA8wSniDWiI5V0=")
    # parse_ini fails on any line that is not a comment, a section or a key.
    allowed = [v for _, _, k, v in parse_ini(text) if k == "AllowedIPs"]
    assert allowed == ["10.70.0.0/16", "192.168.200.0/24", "192.168.201.0/24"]
    assert "metric" in text


@pytest.mark.parametrize("platform", ["linux", "macos", "ios", "android"])
def test_other_platforms_get_the_cover(data, platform):
    data["developers"]["e"]["platform"] = platform
    assert client_routes(load_network(data), "e").allowed_ips == ("10.70.0.0/16", "192.168.0.0/16")


def test_no_access_only_vpn(data):
    data["developers"]["e"]["lan_access"] = "none"
    routes = client_routes(load_network(data), "e")
    assert routes.allowed_ips == ("10.70.0.0/16",)
    assert "no LAN access" in routes.note


def test_no_access_windows_only_vpn(data):
    data["developers"]["e"].update(lan_access="none", platform="windows")
    assert client_routes(load_network(data), "e").allowed_ips == ("10.70.0.0/16",)


def test_access_to_revoked_gateway_only_gives_vpn(data):
    data["gateways"]["c"]["revoked"] = True
    data["developers"]["e"]["lan_access"] = ["c"]
    # lan_access naming a revoked gateway is refused by validation ...
    problem = problem_at(problems_of(data), "developers.e.lan_access")
    assert problem.what == "names gateway c, which is revoked"
    # ... and with "all", a revoked gateway's LAN is simply not routed.
    data["developers"]["e"]["lan_access"] = "all"
    routes = client_routes(load_network(data), "e")
    cover = check_cover(routes, ["192.168.201.0/24"], [])
    assert str(cover) == "192.168.0.0/16"


def test_client_config_for_single_lan_developer_renders(data):
    # The example network where e may reach LAN1 only: `wgmesh client-config` must work.
    data["developers"]["e"]["lan_access"] = ["a"]
    text = client_config(load_network(data), "e", hub_public_key="CmmeC0yqofMMZhEGHuK5dd2Mxyxe7tA8wSniDWiI5V0=")
    allowed = [v for _, _, k, v in parse_ini(text) if k == "AllowedIPs"]
    assert allowed == ["10.70.0.0/16", "192.168.201.0/24"]
    assert "# no covering prefix avoids the VPN network" in text


def test_when_the_private_block_is_ruled_out_the_cover_is_the_narrowest_supernet(data):
    """README: the widest private block when it swallows nothing forbidden, "or else the
    narrowest supernet". Three LANs in 192.168 of which e may reach two: the /16 holds the
    forbidden one, so the cover is exactly the smallest prefix spanning the reachable two."""
    spec = network_with(data, {"a": "192.168.4.0/24", "b": "192.168.7.0/24", "c": "192.168.200.0/24"}, ["a", "b"])
    cover = check_cover(client_routes(spec, "e"), ["192.168.4.0/24", "192.168.7.0/24"], ["192.168.200.0/24"])
    assert str(cover) == "192.168.4.0/22"
    assert "192.168.4.0/22 covers 192.168.4.0/24, 192.168.7.0/24" in client_routes(spec, "e").note


ON_LINK = "inside one of those LANs its on-link route is more specific and wins, so LAN traffic stays off the tunnel"


def test_each_route_choice_explains_itself_in_the_client_config(data):
    """The note becomes the comment above AllowedIPs: the developer reads why these routes."""
    assert client_routes(load_network(data), "e").note == (
        f"192.168.0.0/16 covers 192.168.200.0/24, 192.168.201.0/24: {ON_LINK}")
    data["developers"]["e"]["lan_access"] = "none"
    assert client_routes(load_network(data), "e").note == "no LAN access: only the VPN network is routed"
    data["developers"]["e"]["lan_access"] = ["a"]
    assert client_routes(load_network(data), "e").note == (
        "no covering prefix avoids the VPN network and the LANs this developer may not reach: exact LANs")
    data["developers"]["e"].update(lan_access="all", platform="windows")
    assert client_routes(load_network(data), "e").note == (
        "Windows: exact LAN prefixes. Windows picks routes by interface metric as well as prefix length, so "
        "the covering-prefix fix for a laptop sitting inside one of these LANs does not work there; "
        "disconnect the tunnel while in the office.")


def test_lans_in_two_private_blocks_get_one_cover_each(data):
    spec = network_with(data, {"a": "10.1.0.0/24", "c": "192.168.5.0/24"}, "all")
    routes = client_routes(spec, "e")
    assert routes.allowed_ips == ("10.70.0.0/16", "10.1.0.0/23", "192.168.0.0/16")
    assert routes.note == f"10.1.0.0/23, 192.168.0.0/16 covers 10.1.0.0/24, 192.168.5.0/24: {ON_LINK}"


def test_lan_access_none_reaches_no_gateway_whatever_its_name(data):
    """'none' is a keyword, not a list of gateway ids (nor of one-letter ones)."""
    for gid in ("n", "o"):
        data["gateways"][gid] = {"address": f"10.70.0.{20 + len(gid) + ord(gid) % 7}",
                                 "lan": f"192.168.{ord(gid)}.0/24", "lan_address": f"192.168.{ord(gid)}.1"}
    data["developers"]["e"]["lan_access"] = "none"
    spec = load_network(data)
    assert client_routes(spec, "e").allowed_ips == ("10.70.0.0/16",)
    from wgmesh_core.plan import allowed_sources
    assert all("10.70.0.4/32" not in allowed_sources(spec, gid, TODAY) for gid in ("n", "o"))
