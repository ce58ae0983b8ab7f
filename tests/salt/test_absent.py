"""`wgmesh.absent` on a host that lost its role (salt-call --local in its own namespace;
wireguard-go for the tunnel, real iptables)."""
import json

import yaml

from .conftest import FAKES, fails
from .test_local_apply import network_pillar, pillar_for  # noqa: F401  (fixture)


def write_pillar(host, pillar, name):
    path = host.dir / name
    path.write_text(yaml.safe_dump(pillar))
    return f"cp {path} {host.dir / 'pillar' / 'net.sls'}"


def absent_result(output):
    return json.loads(output)["local"]


def test_revoked_gateway_loses_interface_files_rules_and_schedule(local_host, network_pillar):
    pillar = pillar_for(network_pillar, backend="wgquick", firewall="iptables")
    host = local_host("c", pillar)
    revoked = json.loads(json.dumps(pillar))
    revoked["wgmesh"]["gateways"]["c"]["revoked"] = True
    for dev in revoked["wgmesh"]["developers"].values():
        if isinstance(dev.get("lan_access"), list):
            dev["lan_access"] = [g for g in dev["lan_access"] if g != "c"]
    schedule = host.dir / "conf" / "minion.d" / "_schedule.conf"
    state = "ls /etc/wireguard /etc/sysctl.d; ip link show wg0 2>&1 | head -1; " \
            "iptables -S | grep -c WGMESH; iptables -t nat -S | grep -c WGMESH; " \
            f"grep -c wgmesh-converge {schedule} || true"
    out = host.run(host.salt_call("saltutil.sync_all"), host.salt_call("state.apply wgmesh"), state,
                   fails(host.salt_call("wgmesh.absent") + " 2>&1"),     # still a gateway: refused
                   write_pillar(host, revoked, "revoked.sls"),
                   host.salt_call("wgmesh.absent test=True"), state,
                   host.salt_call("state.single wgmesh.absent wg0"), state,
                   host.salt_call("wgmesh.absent"),
                   extra_path=f"{FAKES}:")
    before = out[2].split()
    assert "wg0.conf" in before and "wg0.key" in before and "10-ip-forward.conf" in before
    assert all(int(count) > 0 for count in before[-3:])   # WGMESH lines in filter and nat, the schedule
    assert "still a gateway" in out[3]
    dry = absent_result(out[5])
    assert dry["interface"] == "wg0 deleted" and "/etc/wireguard/wg0.key" in dry["files"]
    assert dry["firewall"] == ["filter/WGMESH-FORWARD", "filter/WGMESH-INPUT", "filter/WGMESH-DEVELOPERS",
                               "nat/WGMESH-POSTROUTING"]
    assert dry["schedule"] == "wgmesh-converge deleted"
    assert out[6] == out[2]                          # test=True removed nothing
    (state_ret,) = json.loads(out[7])["local"].values()
    assert state_ret["result"] is True and state_ret["changes"]["interface"] == "wg0 deleted"
    after = out[8].split()
    assert "wg0.conf" not in after and "wg0.key" not in after and "10-ip-forward.conf" not in after
    assert "does not exist" in out[8] and after[-3:] == ["0", "0", "0"]
    assert absent_result(out[9]) == {}               # nothing left: a second run is a no-op


def test_lan_router_replaced_loses_its_route(local_host, network_pillar):
    pillar = pillar_for(network_pillar)
    host = local_host("r1", pillar)
    replaced = json.loads(json.dumps(pillar))
    replaced["wgmesh"]["gateways"]["a"].pop("lan_router")
    out = host.run("ip link add lan1 type veth peer name lan1p && ip addr add 192.168.201.1/24 dev lan1 "
                   "&& ip link set lan1 up && ip link set lan1p up && ip route add 10.99.0.0/16 via 192.168.201.9",
                   host.salt_call("saltutil.sync_all"), host.salt_call("state.apply wgmesh"),
                   write_pillar(host, replaced, "replaced.sls"), host.salt_call("state.apply wgmesh"),
                   "ip -4 route show", host.salt_call("state.apply wgmesh"))
    # state.apply wgmesh on a host without a role (the minion-start reactor's, after it was down) cleans up
    (removed,) = [s for s in json.loads(out[4])["local"].values() if s["__id__"] == "wgmesh-absent"]
    assert removed["result"] is True and removed["changes"]["routes"] == ["10.70.0.0/16 via 192.168.201.247"]
    assert "10.70.0.0/16" not in out[5] and "10.99.0.0/16 via 192.168.201.9" in out[5]   # others stay
    assert all(not s["changes"] and s["result"] is True for s in json.loads(out[6])["local"].values())


def test_route_mode_gateway_without_a_managed_router_names_the_route_in_its_comment(local_host, network_pillar):
    """The static route a LAN router outside Salt needs is in the tunnel state's comment
    (manual action), without making the state report changes on every run."""
    pillar = pillar_for(network_pillar, backend="wgquick", firewall="iptables")
    pillar["wgmesh"]["gateways"]["a"].pop("lan_router")
    host = local_host("a", pillar)
    out = host.run(host.salt_call("saltutil.sync_all"), host.salt_call("state.apply wgmesh"),
                   host.salt_call("state.apply wgmesh"), extra_path=f"{FAKES}:")
    from .conftest import state_results
    first, second = state_results(out[1]), state_results(out[2])
    wanted = ("manual action: on the router of LAN 192.168.201.0/24 (not a wgmesh minion): "
              "ip route replace 10.70.0.0/16 via 192.168.201.247")
    assert wanted in first["wgmesh-tunnel"]["comment"] and wanted in second["wgmesh-tunnel"]["comment"]
    assert second["wgmesh-tunnel"]["changes"] == {} and second["wgmesh-tunnel"]["result"] is True


def test_a_wireguard_interface_wgmesh_never_made_is_left_alone(local_host, network_pillar):
    """b has no role and never had one; its own wg0 (no wgmesh record, no wgmesh file) stays."""
    host = local_host("b", pillar_for(network_pillar))
    out = host.run("ip link add wg0 type veth peer name wg0p", host.salt_call("saltutil.sync_all"),
                   host.salt_call("state.apply wgmesh"), "ip link show wg0 | head -1")
    (state,) = [s for s in json.loads(out[2])["local"].values() if s["__id__"] == "wgmesh-absent"]
    assert state["result"] is True and state["changes"] == {}
    assert "wg0" in out[3]
