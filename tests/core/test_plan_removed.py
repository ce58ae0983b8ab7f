"""plan_change: hosts that lose their role (`removed`) and what only a person can do (`manual_actions`)."""
import copy

from wgmesh_core.diff import LIVE_FIRST_MAX_CHANGES, plan_change
from wgmesh_core.validate import load_network

from .conftest import TODAY


def _pair(data, change):
    new = copy.deepcopy(data)
    change(new)
    return load_network(data), load_network(new)


def test_a_revoked_gateway_is_removed_not_applied(data):
    def revoke_c(net):
        net["gateways"]["c"]["revoked"] = True
        net["gateways"]["c"].pop("lan_access", None)
        for dev in net["developers"].values():
            if isinstance(dev.get("lan_access"), list):
                dev["lan_access"] = [g for g in dev["lan_access"] if g != "c"]
    plan = plan_change(*_pair(data, revoke_c), TODAY)
    assert plan.removed == ["c"]
    assert "c" in plan.affected and "c" not in plan.to_apply and "z" in plan.to_apply


def test_a_replaced_lan_router_is_removed_and_its_route_becomes_a_manual_action(data):
    def unmanage(net):
        net["gateways"]["a"].pop("lan_router")
    plan = plan_change(*_pair(data, unmanage), TODAY)
    assert plan.removed == ["r1"] and plan.to_apply == []
    assert plan.manual_actions == [
        "on the router of LAN 192.168.201.0/24 (gateway a, not a wgmesh minion): "
        "ip route replace 10.70.0.0/16 via 192.168.201.247"]


def test_masquerade_to_route_without_a_lan_router_tells_the_admin_the_route(data):
    def route_c(net):
        net["gateways"]["c"]["lan_mode"] = "route"
    plan = plan_change(*_pair(data, route_c), TODAY)
    assert plan.to_apply == ["c"] and plan.removed == []
    assert plan.manual_actions == [
        "on the router of LAN 192.168.200.0/24 (gateway c, not a wgmesh minion): "
        "ip route replace 10.70.0.0/16 via 192.168.200.248"]
    back = plan_change(load_network(_pair(data, route_c)[1].model_dump(mode="json")), load_network(data), TODAY)
    assert back.manual_actions == [
        "on the router of LAN 192.168.200.0/24 (gateway c): ip route del 10.70.0.0/16 via 192.168.200.248 "
        "(no longer needed)"]


def test_client_reimports_name_the_developer_and_contact(data):
    def move_hub(net):
        net["hub"]["endpoint"] = "vpn.example.net:51820"
        net["developers"]["e"]["contact"] = "e@example.com"
    old, new = _pair(data, move_hub)
    plan = plan_change(old, new, TODAY)
    assert set(plan.to_apply) == {"a", "c"}          # the gateways' hub peer endpoint
    assert ("developer e (e@example.com): re-import the client config (salt-run wgmesh.client_config e)"
            in plan.manual_actions)
    assert any(action.startswith("developer f: re-import") for action in plan.manual_actions)


def test_nothing_changes_nothing_to_do(data):
    plan = plan_change(load_network(data), load_network(copy.deepcopy(data)), TODAY)
    assert plan.removed == [] and plan.manual_actions == [] and plan.to_apply == []


# --- the gate's fast path: which hosts wgmesh.update_live may update before their state run ----

def test_a_new_developer_goes_live_first_on_the_hub_and_the_gateways_it_reaches(data):
    def add_g(net):
        net["developers"]["g"] = {"address": "10.70.0.9", "public_key": "k" * 42 + "8=", "lan_access": ["c"]}
    plan = plan_change(*_pair(data, add_g), TODAY)
    assert plan.live_first == ["z", "c"] == plan.to_apply


def test_a_backend_switch_or_a_new_host_waits_for_its_state_run(data):
    def switch_a(net):
        net["gateways"]["a"]["backend"] = "wgquick" if net["gateways"]["a"].get("backend") != "wgquick" else "networkd"
    plan = plan_change(*_pair(data, switch_a), TODAY)
    assert "a" in plan.to_apply and "a" not in plan.live_first

    def firewall_a(net):
        net["gateways"]["a"]["firewall"] = "iptables" if net["gateways"]["a"].get("firewall") != "iptables" else "firewalld"
    plan = plan_change(*_pair(data, firewall_a), TODAY)
    assert "a" in plan.to_apply and "a" not in plan.live_first
    first = plan_change(None, load_network(data), TODAY)
    assert first.live_first == [] and first.to_apply


def test_a_lan_router_never_goes_live_first(data):
    def widen(net):
        net["network"] = "10.64.0.0/10"
    plan = plan_change(*_pair(data, widen), TODAY)
    assert "r1" in plan.to_apply and "r1" not in plan.live_first and "z" in plan.live_first


def test_a_bulk_change_is_left_to_the_state_run(data):
    """Hundreds of developers imported at once: no fast path (it would put them live one firewall
    rule at a time); the state run applies them in one batch. Up to the limit, the fast path."""
    def crowd(count):
        def add(net):
            for i in range(1, count + 1):
                net["developers"][f"d{i}"] = {"address": f"10.70.1.{i}", "public_key": f"{i:042d}A=",
                                              "lan_access": "none"}
        return add
    at_limit = plan_change(*_pair(data, crowd(LIVE_FIRST_MAX_CHANGES)), TODAY)   # a peer each, no LAN
    assert at_limit.hosts[0].size == LIVE_FIRST_MAX_CHANGES and at_limit.live_first == ["z"]
    bulk = plan_change(*_pair(data, crowd(LIVE_FIRST_MAX_CHANGES + 1)), TODAY)
    assert bulk.live_first == [] and bulk.to_apply == ["z"]


# --- the fast path's order: peers before the firewall only when that opens nothing early ------

def test_new_peers_go_live_before_the_firewall_that_grants_them_access(data):
    """g's forwarded traffic meets the old firewall's DROP until its access follows: nothing
    opens early, and the hub answers g a firewall step sooner."""
    def add_g(net):
        net["developers"]["g"] = {"address": "10.70.0.9", "public_key": "k" * 42 + "8=", "lan_access": ["c"]}
    plan = plan_change(*_pair(data, add_g), TODAY)
    assert plan.peers_first == ["z", "c"] == plan.live_first


def test_a_revoked_developer_is_cut_on_the_hub_before_its_rules_go(data):
    """Nothing routes f's address any more, so its stale rules admit nothing; on a gateway the
    hub's peer routes the whole VPN (f's address too): the firewall goes first there."""
    def revoke_f(net):
        net["developers"]["f"]["revoked"] = True
    plan = plan_change(*_pair(data, revoke_f), TODAY)
    assert plan.peers_first == ["z"] and set(plan.live_first) == {"z", "a", "c"}


def test_access_taken_from_a_peer_that_stays_takes_the_firewall_first(data):
    def narrow_e(net):
        net["developers"]["e"]["lan_access"] = ["a"]
    plan = plan_change(*_pair(data, narrow_e), TODAY)
    assert "z" in plan.live_first and plan.peers_first == []

    def swap(net):      # e's address (and its access) handed to f: f must not get it before the firewall
        developers = net["developers"]
        developers["e"]["address"], developers["f"]["address"] = developers["f"]["address"], developers["e"]["address"]
        developers["f"]["lan_access"] = ["a"]
    plan = plan_change(*_pair(data, swap), TODAY)
    assert "z" in plan.live_first and "z" not in plan.peers_first


def test_a_gateway_closed_to_the_vpn_takes_its_firewall_first(data):
    def close(net):
        net["gateway_access"] = "none"
    opened = plan_change(*_pair(dict(data, gateway_access="vpn"), close), TODAY)
    assert "a" in opened.live_first and "a" not in opened.peers_first
    reopened = plan_change(*_pair(dict(data, gateway_access="none"), lambda net: net.update(gateway_access="vpn")),
                           TODAY)
    assert "a" in reopened.peers_first


def test_a_source_wider_than_one_address_counts_as_routed():
    """Sources are VPN /32s today; a wider one is not walked over every peer but taken as routed."""
    from wgmesh_core.diff import _routed_by
    assert _routed_by({"10.70.9.0/24"}, []) and not _routed_by({"10.70.9.1/32"}, [])


def test_the_peers_first_check_takes_every_list_of_sources_that_lost_one(data):
    """e loses LAN1 (e stays: its forward rules go first) while h, who reached nothing, is revoked
    (its developer entry goes): both are taken into account."""
    def change(net):
        net["developers"]["e"]["lan_access"] = ["c"]
        net["developers"]["h"]["revoked"] = True
    data["developers"]["h"] = {"address": "10.70.0.8", "public_key": "h" * 42 + "0=", "lan_access": "none"}
    plan = plan_change(*_pair(data, change), TODAY)
    assert "z" in plan.live_first and "z" not in plan.peers_first


def test_developers_no_longer_reaching_each_other_take_the_firewall_first(data):
    plan = plan_change(*_pair(data, lambda net: net.update(developer_to_developer=False)), TODAY)
    assert "z" in plan.live_first and plan.peers_first == []


def test_a_gateway_closed_to_its_lan_sources_takes_the_firewall_first(data):
    """gateway_access lan_access -> none: the gateway itself no longer admits e and f, who stay."""
    plan = plan_change(*_pair(data, lambda net: net.update(gateway_access="none")), TODAY)
    assert {"a", "c"} <= set(plan.live_first) and plan.peers_first == []


def test_a_change_of_another_firewall_setting_takes_the_firewall_first(data):
    plan = plan_change(*_pair(data, lambda net: net["gateways"]["c"].update(lan_mode="route")), TODAY)
    assert "c" in plan.live_first and "c" not in plan.peers_first


def test_no_peers_first_without_a_firewall_on_either_side(data):
    from wgmesh_core.diff import peers_before_firewall
    from wgmesh_core.plan import HostConfig, host_config
    spec = load_network(data)
    hub = host_config(spec, "z", TODAY)
    assert not peers_before_firewall(HostConfig("z", "hub"), hub) and not peers_before_firewall(hub, HostConfig("z", "hub"))
    assert peers_before_firewall(hub, hub)
