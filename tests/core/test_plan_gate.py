"""The gate plans without file diffs (``plan_change(diffs=False)``): a host's files are rendered
from its config alone, so comparing the configs must pick exactly the hosts, fast paths,
removals and manual actions that comparing the rendered files picks."""
import copy

import pytest

from wgmesh_core.diff import plan_change
from wgmesh_core.validate import load_network

from .conftest import TODAY

NEW_KEY = "k" * 42 + "8="


def add_developer(net, lan_access):
    net["developers"]["g"] = {"address": "10.70.0.9", "public_key": NEW_KEY, "lan_access": lan_access}


def revoke_gateway_c(net):
    net["gateways"]["c"]["revoked"] = True
    net["gateways"]["c"].pop("lan_access", None)
    for dev in net["developers"].values():
        dev["lan_access"] = ["a"]


CHANGES = {
    "nothing": lambda net: None,
    "a developer without LAN access": lambda net: add_developer(net, "none"),
    "a developer reaching c": lambda net: add_developer(net, ["c"]),
    "a developer reaching every LAN": lambda net: add_developer(net, "all"),
    "a developer revoked": lambda net: net["developers"]["f"].update(revoked=True),
    "a developer re-keyed": lambda net: net["developers"]["e"].update(public_key=NEW_KEY),
    "a developer's LAN access narrowed": lambda net: net["developers"]["f"].update(lan_access=["a"]),
    "a developer's platform": lambda net: net["developers"]["f"].update(platform="windows"),
    "a gateway revoked": revoke_gateway_c,
    "a gateway's LAN access": lambda net: net["gateways"]["c"].update(lan_access=[]),
    "masquerade to route": lambda net: net["gateways"]["c"].update(lan_mode="route"),
    "the hub's endpoint": lambda net: net["hub"].update(endpoint="39.101.166.125:51820"),
    "the port": lambda net: net.update(listen_port=51821),
    "the MTU": lambda net: net.update(mtu=1380),
    "the keepalive": lambda net: net.update(keepalive=25),
    "the hub's keepalive": lambda net: net["hub"].update(keepalive=0),
    "a wider network": lambda net: net.update(network="10.64.0.0/10"),
    "firewall iptables on a": lambda net: net["gateways"]["a"].update(firewall="iptables"),
    "backend wg-quick": lambda net: net.update(backend="wgquick"),
    "the LAN router replaced": lambda net: net["gateways"]["a"].pop("lan_router"),
}


def summary(plan):
    return (plan.affected, plan.live_first, plan.to_apply, plan.removed, plan.manual_actions,
            plan.clients_changed, plan.clients_removed, [(h.host, h.role, h.same_setup, h.size) for h in plan.hosts])


@pytest.mark.parametrize("change", sorted(CHANGES))
def test_planning_without_file_diffs_picks_the_same_hosts(data, change):
    new = copy.deepcopy(data)
    CHANGES[change](new)
    old_spec, new_spec = load_network(data), load_network(new)
    with_diffs = plan_change(old_spec, new_spec, TODAY)
    without = plan_change(old_spec, new_spec, TODAY, diffs=False)
    assert summary(without) == summary(with_diffs)
    assert all(not h.file_diffs for h in without.hosts)
    if change == "nothing":
        assert without.affected == []
    first = plan_change(None, new_spec, TODAY, diffs=False)
    assert summary(first) == summary(plan_change(None, new_spec, TODAY))


@pytest.mark.parametrize("change", sorted(CHANGES))
def test_the_hub_planned_first_makes_the_same_plan(data, change):
    """The gate plans the hub's share first (its hand-off goes out before the rest is planned)
    and gives it to ``plan_change``, which takes it as it is and plans only the other hosts."""
    from wgmesh_core.diff import StandInConfigs, host_change
    new = copy.deepcopy(data)
    CHANGES[change](new)
    old_spec, new_spec = load_network(data), load_network(new)
    configs = (StandInConfigs(old_spec, TODAY), StandInConfigs(new_spec, TODAY))
    hub_first = host_change(old_spec, new_spec, "z", TODAY, configs, diffs=False)
    planned = plan_change(old_spec, new_spec, TODAY, configs, diffs=False, planned={"z": hub_first})
    assert next(h for h in planned.hosts if h.host == "z") is hub_first
    in_one_go = plan_change(old_spec, new_spec, TODAY, diffs=False)
    assert summary(planned) == summary(in_one_go) and planned.peers_first == in_one_go.peers_first
