"""reach.Reachability: each way a connection gets through or is stopped, and the reason given."""
from __future__ import annotations

import datetime

import netaddr
import pytest

from wgmesh_core.plan import client_routes
from wgmesh_core.reach import ON_LINK, TUNNEL, Endpoint, Reachability
from wgmesh_core.validate import load_network

from .conftest import TODAY

HOSTS = {"b": "192.168.201.10", "d": "192.168.200.244"}


def predict(spec, source, destination, at=None, today=TODAY):
    reach = Reachability(spec, today)
    start = reach.endpoint(source, HOSTS)
    if at:
        start = reach.in_office(start, at)
    return reach.predict(start, reach.endpoint(destination, HOSTS))


def test_article_paths_go_through_the_hub_and_the_gateway(spec):
    to_d = predict(spec, "e", "d")
    assert (to_d.reach, to_d.via, to_d.path) == (True, TUNNEL, ("e", "z", "c", "d"))
    to_b = predict(spec, "f", "b")
    assert (to_b.reach, to_b.via, to_b.path) == (True, TUNNEL, ("f", "z", "a", "b"))
    assert predict(spec, "e", "f").path == ("e", "z", "f")
    assert predict(spec, "c", "a").path == ("c", "z", "a")        # c may reach LAN1, so a itself
    a_to_c = predict(spec, "a", "c")                                 # a may not reach LAN2: nor c itself
    assert (a_to_c.reach, a_to_c.path) == (False, ("a", "z"))
    assert a_to_c.reason == ("blocked by hub z's firewall: it forwards new connections only as the gateways' "
                             "allow-lists admit them and between developers, and none admits 10.70.0.2 to 10.70.0.3")
    hub_to_a = predict(spec, "z", "a")
    assert (hub_to_a.reach, hub_to_a.path) == (False, ("z", "a"))
    assert hub_to_a.reason == ("blocked by gateway a's firewall: through the tunnel, only the peers allowed "
                               "into 192.168.201.0/24 may open connections to a itself")


def test_masquerade_shows_the_gateway_lan_address_and_route_mode_keeps_the_source(spec):
    to_d = predict(spec, "e", "d")
    assert to_d.seen_as == "192.168.200.248" and "c masquerades" in to_d.reason
    to_b = predict(spec, "e", "b")
    assert to_b.seen_as is None and to_b.assumes == ()     # r1 carries the static route (managed)


def test_masquerade_mode_lan_hosts_cannot_dial_the_vpn(spec):
    got = predict(spec, "d", "f")
    assert not got.reach
    assert got.reason == ("192.168.200.0/24 is in masquerade mode: its router has no route for 10.70.0.0/16, "
                          "so its hosts cannot open connections into the VPN")


def test_the_hub_is_blocked_by_each_allow_list(spec):
    got = predict(spec, "z", "d")
    assert (got.reach, got.reason) == (False, "blocked by gateway c's allow-list (the hub is never allowed)")
    assert got.path == ("z", "c")


def test_developer_without_lan_access_is_blocked_by_the_allow_list_and_its_routes(data):
    data["developers"]["e"]["lan_access"] = ["a"]
    got = predict(load_network(data), "e", "d")
    assert not got.reach
    assert got.reason == ("blocked by gateway c's allow-list: e's lan_access [a] does not include c, so e's client "
                          "does not route 192.168.200.244 into the tunnel (AllowedIPs 10.70.0.0/16, 192.168.201.0/24)")
    assert predict(load_network(data), "e", "b").reach


def test_a_lan_host_cannot_open_connections_into_the_tunnel(spec):
    got = predict(spec, "b", "e")
    assert not got.reach and got.reason == ("blocked by gateway a's hardening: it forwards new connections only from "
                                            "the VPN addresses of its allow-list, so hosts of 192.168.201.0/24 cannot "
                                            "open connections into the tunnel")
    assert got.path == ("b", "a")


def test_a_lan_host_reaches_its_gateway_through_its_router(spec):
    got = predict(spec, "b", "a")
    assert (got.reach, got.via) == (True, ON_LINK)
    assert got.reason == "reaches via on-link: b -> a; through the LAN's router, never the tunnel"


def test_a_lan_host_reaches_its_own_lan_on_link_and_no_other_lan(spec):
    neighbour = predict(spec, "b", "192.168.201.20")
    assert neighbour.reason == "reaches via on-link: b -> 192.168.201.20; both in 192.168.201.0/24"
    other = predict(spec, "b", "d")
    assert (other.reach, other.reason) == (False, "the router of 192.168.201.0/24 has no route for 192.168.200.244: "
                                                  "wgmesh routes only 10.70.0.0/16 into a LAN, never one LAN into another")


def test_a_gateway_reaches_its_own_lan_and_addresses_on_link(spec):
    assert predict(spec, "a", "b").reason == "reaches via on-link: a -> b; a is in 192.168.201.0/24"
    assert predict(spec, "a", "192.168.201.247").reason == (
        "reaches via on-link: a -> 192.168.201.247; 192.168.201.247 is a's own address")
    assert predict(spec, "a", "a").reason == "reaches via on-link: a; 10.70.0.2 is a's own address"


def test_revoked_developer(data):
    data["developers"]["e"]["revoked"] = True
    spec = load_network(data)
    out = predict(spec, "e", "d")
    assert (out.reach, out.reason) == (False, "developer e is revoked: the hub has no peer for it")
    back = predict(spec, "f", "e")
    assert (back.reach, back.reason) == (False, "hub z has no peer for 10.70.0.4 (developer e is revoked)")


def test_expiry_is_evaluated_as_of_the_date(data):
    data["developers"]["e"]["expires"] = "2025-06-30"
    spec = load_network(data)
    assert predict(spec, "e", "d", today=datetime.date(2025, 6, 30)).reach
    after = predict(spec, "e", "d", today=datetime.date(2025, 7, 1))
    assert (after.reach, after.reason) == (
        False, "developer e expired on 2025-06-30 (as of 2025-07-01): the hub has no peer for it")
    assert predict(spec, "f", "e", today=datetime.date(2025, 7, 1)).reason == (
        "hub z has no peer for 10.70.0.4 (developer e expired on 2025-06-30)")


def test_hub_has_no_peer_for_an_unassigned_address(spec):
    got = predict(spec, "e", "10.70.0.99")
    assert (got.reach, got.reason) == (False, "hub z has no peer for 10.70.0.99 (no host or developer has this address)")


def test_revoked_gateway_lan_is_not_routed_by_the_hub(data):
    data["gateways"]["c"]["revoked"] = True
    data["gateways"]["a"]["lan_access"] = "none"
    data["gateways"]["c"]["lan_access"] = "none"
    spec = load_network(data)
    got = predict(spec, "e", "d")
    assert (got.reach, got.reason) == (False, "hub z has no route for 192.168.200.244 into the tunnel")
    assert predict(spec, "e", "c").reason == "hub z has no peer for 10.70.0.3 (gateway c is revoked)"
    assert predict(spec, "c", "z").reason == "gateway c is revoked: the hub has no peer for it"
    assert predict(spec, "d", "f").reason == "gateway c is revoked: nothing routes 192.168.200.0/24 into the VPN"


def test_a_host_in_a_revoked_gateways_lan_is_simply_not_routed(data):
    """No allow-list to blame: the gateway is gone (and its LAN outside the developer's cover)."""
    data["gateways"]["c"].update(lan="172.16.5.0/24", lan_address="172.16.5.1", revoked=True)
    data["developers"]["e"]["lan_access"] = ["a"]
    got = predict(load_network(data), "e", "172.16.5.10")
    assert (got.reach, got.reason) == (
        False, "e's client does not route 172.16.5.10 into the tunnel (AllowedIPs 10.70.0.0/16, 192.168.0.0/16)")


def test_on_link_in_the_office_thanks_to_the_covering_prefix(spec):
    got = predict(spec, "e", "d", at="c")
    assert (got.reach, got.via, got.path) == (True, ON_LINK, ("e", "d"))
    assert "192.168.0.0/16 is shorter" in got.reason
    # the other office is still through the tunnel
    assert predict(spec, "e", "b", at="c").via == TUNNEL


def test_windows_in_the_office_hairpins_through_the_hub(data):
    data["developers"]["e"]["platform"] = "windows"
    got = predict(load_network(data), "e", "d", at="c")
    assert (got.reach, got.via) == (True, TUNNEL)
    assert got.path == ("e", "z", "c", "d")
    assert got.reason == ("reaches via tunnel: e -> z -> c -> d; e's tunnel routes 192.168.200.0/24 as specifically as "
                          "the office link does: LAN traffic hairpins through the hub (the route conflict); "
                          "d sees 192.168.200.248 (c masquerades)")


def test_on_link_even_when_the_developer_may_not_use_that_lan_through_the_tunnel(data):
    data["developers"]["e"]["lan_access"] = "none"
    got = predict(load_network(data), "e", "d", at="c")
    assert (got.reach, got.via) == (True, ON_LINK)
    assert got.reason == "reaches via on-link: e -> d; e sits in 192.168.200.0/24; its tunnel does not route that LAN"


def test_route_mode_without_a_managed_router_depends_on_its_admin(data):
    del data["gateways"]["a"]["lan_router"]
    got = predict(load_network(data), "e", "b")
    assert got.reach
    assumed = ("the router of 192.168.201.0/24 routes 10.70.0.0/16 via 192.168.201.247: wgmesh does not "
               "manage it, its admin must add that route",)
    assert got.assumes == assumed
    assert predict(load_network(data), "b", "a").assumes == assumed     # the LAN's hosts reach a through it too


def test_gateway_lan_access_without_a_route(spec):
    got = predict(spec, "c", "b")
    assert not got.reach
    assert got.reason == ("gateway c has no route for 192.168.201.10 into the tunnel (it routes only 10.70.0.0/16); "
                          "its lan_access admits c's VPN address into a's LAN, but nothing routes c's own traffic there")
    # a's lan_access admits it nowhere: nothing to add
    assert predict(spec, "a", "d").reason == "gateway a has no route for 192.168.200.244 into the tunnel (it routes only 10.70.0.0/16)"


@pytest.mark.parametrize("access, open_to", [
    ("lan_access", {("e", "a"), ("c", "a")}),                  # the peers allowed into a's LAN
    ("vpn", {("z", "a"), ("a", "c"), ("e", "a"), ("c", "a")}),  # any VPN peer
    ("none", set()),
])
def test_gateway_access_decides_who_may_open_connections_to_a_gateway_itself(data, access, open_to):
    data["gateway_access"] = access
    spec = load_network(data)
    pairs = {("z", "a"), ("a", "c"), ("e", "a"), ("c", "a")}
    assert {pair for pair in pairs if predict(spec, *pair).reach} == open_to


def test_a_gateway_sending_from_its_lan_address_is_dropped_by_another_gateways_tunnel(data):
    """The hub carries a's LAN in a's peer, but c's tunnel accepts only VPN sources."""
    data["gateway_access"] = "vpn"
    got = predict(load_network(data), "192.168.201.247", "c")
    assert (got.reach, got.path, got.reason) == (
        False, ("192.168.201.247", "z"), "gateway c drops it: its tunnel accepts sources in 10.70.0.0/16 only")


def test_the_allow_list_reason_quotes_the_developers_lan_access(data):
    data["developers"]["e"]["lan_access"] = "none"
    assert predict(load_network(data), "e", "d").reason == (
        "blocked by gateway c's allow-list: e's lan_access none does not include c, so e's client does not route "
        "192.168.200.244 into the tunnel (AllowedIPs 10.70.0.0/16)")
    data["gateways"]["g"] = {"address": "10.70.0.8", "lan": "192.168.202.0/24", "lan_address": "192.168.202.1",
                             "lan_interface": "eth1", "lan_mode": "masquerade"}
    data["developers"]["e"]["lan_access"] = ["a", "g"]
    assert predict(load_network(data), "e", "d").reason == (
        "blocked by gateway c's allow-list: e's lan_access [a, g] does not include c, so e's client does not route "
        "192.168.200.244 into the tunnel (AllowedIPs 10.70.0.0/16, 192.168.201.0/24, 192.168.202.0/24)")


def test_without_developer_to_developer_the_hub_forwards_only_what_allow_lists_admit(data):
    data["developer_to_developer"] = False
    got = predict(load_network(data), "e", "f")
    assert (got.reach, got.reason) == (False, "blocked by hub z's firewall: it forwards new connections only as the "
                                              "gateways' allow-lists admit them, and none admits 10.70.0.4 to 10.70.0.5")


def test_gateway_lan_address_is_the_gateway_itself(spec):
    reach = Reachability(spec, TODAY)
    target = reach.endpoint("192.168.200.248")
    assert (target.kind, target.gateway) == ("gateway", "c")
    assert reach.predict(reach.endpoint("e"), target).path == ("e", "z", "c", "192.168.200.248")


@pytest.mark.parametrize("ref, why", [
    ("nobody", "'nobody' is neither the hub, a gateway, a developer, a named LAN host nor an address"),
    ("10.70.4", "'10.70.4' is neither the hub, a gateway, a developer, a named LAN host nor an address"),
    ("8.8.8.8", "8.8.8.8 is outside the VPN network 10.70.0.0/16 and every gateway's LAN: wgmesh has no say over it"),
])
def test_unknown_endpoints_are_refused(spec, ref, why):
    with pytest.raises(ValueError) as info:
        Reachability(spec, TODAY).endpoint(ref, HOSTS)
    assert str(info.value) == why


def test_an_address_is_read_as_the_host_or_developer_it_belongs_to(spec):
    reach = Reachability(spec, TODAY)
    assert reach.endpoint("10.70.0.1") == reach.endpoint("z") == Endpoint("hub", "z", netaddr.IPAddress("10.70.0.1"))
    assert reach.endpoint("10.70.0.2") == Endpoint("gateway", "a", netaddr.IPAddress("10.70.0.2"), gateway="a")
    assert reach.endpoint("10.70.0.4") == Endpoint("developer", "e", netaddr.IPAddress("10.70.0.4"))
    for name, address in (("z", "10.70.0.1"), ("a", "10.70.0.2"), ("c", "10.70.0.3"), ("e", "10.70.0.4")):
        for destination in ("z", "a", "c", "e", "f", "b", "d"):
            target = reach.endpoint(destination, HOSTS)
            assert reach.predict(reach.endpoint(address), target) == reach.predict(reach.endpoint(name), target)


def test_an_unassigned_vpn_address_sends_nothing(spec):
    reach = Reachability(spec, TODAY)
    nobody = reach.endpoint("10.70.0.99")
    assert (nobody.kind, nobody.name) == ("vpn", "10.70.0.99")
    got = reach.predict(nobody, reach.endpoint("e"))
    assert (got.reach, got.path, got.reason) == (
        False, ("10.70.0.99",), "10.70.0.99 belongs to no host or developer: nothing sends from it")


def test_a_lans_stand_in_host_is_its_first_address_that_is_not_the_gateways(data):
    lan_of_a = Reachability(load_network(data), TODAY).lan_host("a")
    assert lan_of_a == Endpoint("lan", "LAN of a", netaddr.IPAddress("192.168.201.1"), gateway="a")
    data["gateways"]["a"]["lan_address"] = "192.168.201.1"
    assert Reachability(load_network(data), TODAY).lan_host("a").address == netaddr.IPAddress("192.168.201.2")


def test_client_allowed_ips_are_the_plans_client_routes(data):
    data["developers"]["f"]["platform"] = "windows"
    spec = load_network(data)
    reach = Reachability(spec, TODAY)
    assert reach.client_allowed_ips("e") == client_routes(spec, "e").allowed_ips == ("10.70.0.0/16", "192.168.0.0/16")
    assert reach.client_allowed_ips("f") == ("10.70.0.0/16", "192.168.200.0/24", "192.168.201.0/24")


def test_in_office_needs_a_developer_and_a_gateway(spec):
    reach = Reachability(spec, TODAY)
    with pytest.raises(ValueError, match="z is not a developer"):
        reach.in_office(reach.endpoint("z"), "c")
    with pytest.raises(ValueError, match="'q' is not a gateway"):
        reach.in_office(reach.endpoint("e"), "q")


def test_a_later_date_from_the_derived_configs_equals_deriving_that_date(data):
    """as_of(day) reuses today's configs minus the developers expired since: every cell must match
    a fresh derivation for that day."""
    data["developers"]["e"]["expires"] = "2025-06-20"
    data["developers"]["f"]["expires"] = "2025-07-10"
    data["developers"]["g"] = {"address": "10.70.0.7", "public_key": "R0dHR0dHR0dHR0dHR0dHR0dHR0dHR0dHR0dHR0dHR0c=",
                               "lan_access": ["c"], "expires": "2025-06-14"}
    spec = load_network(data)
    base = Reachability(spec, TODAY)
    names = ["z", "a", "c", "e", "f", "g", "b", "d", "192.168.200.248", "10.70.0.99"]
    for day in (TODAY, datetime.date(2025, 6, 21), datetime.date(2025, 7, 11)):
        view, fresh = base.as_of(day), Reachability(spec, day)
        for source in names[:-1]:
            for destination in names:
                got = view.predict(view.endpoint(source, HOSTS), view.endpoint(destination, HOSTS))
                want = fresh.predict(fresh.endpoint(source, HOSTS), fresh.endpoint(destination, HOSTS))
                assert got == want, (day, source, destination)
    assert not base.as_of(datetime.date(2025, 6, 21)).predict(base.endpoint("f"), base.endpoint("e")).reach
    assert base.as_of(datetime.date(2025, 6, 1)).today == datetime.date(2025, 6, 1)   # earlier: derived afresh
