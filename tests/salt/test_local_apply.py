"""`salt-call --local state.apply wgmesh` converges a host of each role.

Each host is a network + mount namespace of its own; WireGuard is wireguard-go
(real tunnels, userspace).  Sequence per host: test=True, apply, apply again:
the dry run changes nothing, the first apply converges, the second reports no
changes.  The networkd case uses a MOCK networkctl (tests/fakes/networkctl):
systemd-networkd cannot create the link here, so the mock does what it would.
"""
import copy
import json
import subprocess

import pytest
import yaml

from wgmesh_core import host_config, host_files, load_network, public_key
from wgmesh_salt import read_document
from .conftest import FAKES, REPO, fails, state_results


def keypair():
    private = subprocess.run(["wg", "genkey"], capture_output=True, text=True, check=True).stdout.strip()
    return private, public_key(private)


@pytest.fixture(scope="module")
def network_pillar():
    data = read_document(REPO / "pillar").network
    data = copy.deepcopy(data)
    data["hub"]["endpoint"] = "203.0.113.1:51820"
    return data


def pillar_for(network, **overrides):
    net = copy.deepcopy(network)
    net.update(overrides)
    keys = {host: keypair()[1] for host in ("z", "a", "c")}
    psks = {peer: keypair()[0] for peer in ("a", "c", "e", "f")}
    return {"wgmesh": net, "wgmesh_host_keys": keys, "wgmesh_psk": psks}


def converge(host, checks=()):
    """test=True, apply, apply; plus shell checks after each step."""
    probe = "test -e /etc/wireguard/wg0.conf -o -e /etc/systemd/network/wg0.netdev && echo present || echo absent"
    out = host.run(host.salt_call("saltutil.sync_all"),
                   host.salt_call("state.apply wgmesh test=True"), probe,
                   host.salt_call("state.apply wgmesh"),
                   host.salt_call("state.apply wgmesh"), *checks,
                   extra_path=f"{FAKES}:")
    return out[1], out[2], out[3], out[4], out[5:]


def assert_converged(dry, probe, first, second):
    dry, first, second = state_results(dry), state_results(first), state_results(second)
    assert probe.strip() == "absent", "test=True wrote files"
    assert all(r["result"] in (None, True) for r in dry.values()), dry
    assert any(r["result"] is None for r in dry.values())
    failed = {k: r["comment"] for k, r in first.items() if r["result"] is not True}
    assert not failed, failed
    assert first["wgmesh-tunnel"]["changes"], "first apply did not build the tunnel"
    changed = {k: r["changes"] for k, r in second.items() if r["changes"] or r["result"] is not True}
    assert not changed, f"second apply was not a no-op: {changed}"
    return first


def expected_files(pillar, host, private_key_public):
    spec = load_network(pillar["wgmesh"])
    keys = dict(pillar["wgmesh_host_keys"], **{host: private_key_public})
    import datetime
    return host_files(host_config(spec, host, datetime.date.today(), keys, pillar["wgmesh_psk"]))


def test_hub_converges_with_wg_quick(local_host, network_pillar):
    pillar = pillar_for(network_pillar, backend="wgquick", firewall="iptables")
    host = local_host("z", pillar)
    dry, probe, first, second, (dump, forward, routes, schedule) = converge(
        host, ["wg show wg0 dump", "cat /proc/sys/net/ipv4/ip_forward", "ip -4 route show dev wg0",
               f"cat {host.dir / 'conf' / 'minion.d' / '_schedule.conf'}"])
    assert_converged(dry, probe, first, second)
    jobs = yaml.safe_load(schedule)["schedule"]
    assert jobs["wgmesh-converge"]["function"] == "wgmesh.converge"
    assert jobs["wgmesh-converge"]["minutes"] == 30
    peers = {line.split("\t")[0]: line.split("\t") for line in dump.strip().splitlines()[1:]}
    expected = {pillar["wgmesh_host_keys"]["a"]: "10.70.0.2/32,192.168.201.0/24",
                pillar["wgmesh_host_keys"]["c"]: "10.70.0.3/32,192.168.200.0/24",
                network_pillar["developers"]["e"]["public_key"]: "10.70.0.4/32",
                network_pillar["developers"]["f"]["public_key"]: "10.70.0.5/32"}
    assert {key: cols[3] for key, cols in peers.items()} == expected
    assert peers[pillar["wgmesh_host_keys"]["a"]][1] == pillar["wgmesh_psk"]["a"]
    assert forward.strip() == "1"
    assert "192.168.200.0/24" in routes and "192.168.201.0/24" in routes
    own_public = dump.splitlines()[0].split("\t")[1]
    conf = host.path("/etc/wireguard/wg0.conf")
    assert oct(conf.stat().st_mode & 0o777) == "0o600"
    assert oct(host.path("/etc/wireguard/wg0.key").stat().st_mode & 0o777) == "0o600"
    (wanted,) = [f for f in expected_files(pillar, "z", own_public) if f.path == "/etc/wireguard/wg0.conf"]
    assert conf.read_text() == wanted.content
    assert public_key(host.path("/etc/wireguard/wg0.key").read_text().strip()) == own_public


def test_masquerading_gateway_with_iptables(local_host, network_pillar):
    pillar = pillar_for(network_pillar, backend="wgquick", firewall="iptables")
    host = local_host("c", pillar)
    dry, probe, first, second, (forward_chain, nat_chain, jumps, dump, _, _, after_drift, addresses) = converge(host, [
        "iptables -S WGMESH-FORWARD", "iptables -t nat -S WGMESH-POSTROUTING",
        "iptables -S FORWARD; iptables -t nat -S POSTROUTING", "wg show wg0 dump",
        # drift: an ACCEPT inserted above the hardening, an old VPN address left on wg0
        "iptables -I FORWARD 1 -j ACCEPT && ip addr add 10.70.9.9/16 dev wg0",
        host.salt_call("state.apply wgmesh"), "iptables -S FORWARD", "ip -4 -o addr show dev wg0"])
    assert_converged(dry, probe, first, second)
    forward_rules = [line for line in after_drift.splitlines() if line.startswith("-A FORWARD")]
    assert forward_rules[0] == "-A FORWARD -j WGMESH-FORWARD"           # the hardening is first again
    assert "10.70.9.9" not in addresses and "10.70.0.3/16" in addresses
    assert forward_chain.splitlines()[1:] == [
        "-A WGMESH-FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
        "-A WGMESH-FORWARD -s 10.70.0.4/32 -m conntrack --ctstate NEW -j ACCEPT",
        "-A WGMESH-FORWARD -s 10.70.0.5/32 -m conntrack --ctstate NEW -j ACCEPT",
        "-A WGMESH-FORWARD -j DROP"]
    assert "-A WGMESH-POSTROUTING -s 10.70.0.0/16 -d 192.168.200.0/24 -o eth2 -j MASQUERADE" in nat_chain
    assert "-A FORWARD -j WGMESH-FORWARD" in jumps and "-A POSTROUTING -j WGMESH-POSTROUTING" in jumps
    hub_peer = dump.strip().splitlines()[1].split("\t")
    assert hub_peer[0] == pillar["wgmesh_host_keys"]["z"]
    assert hub_peer[2] == "203.0.113.1:51820" and hub_peer[3] == "10.70.0.0/16" and hub_peer[7] == "15"


def test_gateway_with_networkd_and_firewalld_files(local_host, network_pillar):
    """networkd + firewalld backends: real files; MOCK networkctl and MOCK firewall-cmd
    (tests/fakes: neither systemd-networkd nor firewalld can run here)."""
    pillar = pillar_for(network_pillar, backend="networkd", firewall="firewalld")
    host = local_host("a", pillar)
    dry, probe, first, second, (dump, address, live_rules, reloads) = converge(
        host, ["wg show wg0 dump", "ip -4 -o addr show dev wg0", "firewall-cmd --direct --get-all-rules",
               "cat /etc/firewalld/.mock-reloads"])
    assert_converged(dry, probe, first, second)
    assert reloads.splitlines() == ["reload"]             # loaded once, not again on the no-op run
    assert "ipv4 filter FORWARD 2 -s 10.70.0.3/32 -m conntrack --ctstate NEW -j ACCEPT" in live_rules
    netdev = host.path("/etc/systemd/network/wg0.netdev")
    assert oct(netdev.stat().st_mode & 0o777) == "0o640" and netdev.stat().st_gid != 0
    key = host.path("/etc/systemd/network/wg0.key")
    assert oct(key.stat().st_mode & 0o777) == "0o640" and key.stat().st_gid == netdev.stat().st_gid
    assert "PrivateKeyFile=/etc/systemd/network/wg0.key" in netdev.read_text()
    assert "PrivateKey=" not in netdev.read_text()
    direct = host.path("/etc/firewalld/direct.xml").read_text()
    assert '-s 10.70.0.3/32 -m conntrack --ctstate NEW -j ACCEPT' in direct  # c may reach LAN1
    assert "10.70.0.1/32" not in direct  # the hub never
    assert "10.70.0.2/16" in address
    assert dump.strip().splitlines()[1].split("\t")[0] == pillar["wgmesh_host_keys"]["z"]


def test_lan_router_gets_static_route(local_host, network_pillar):
    pillar = pillar_for(network_pillar)
    host = local_host("r1", pillar)
    out = host.run("ip link add lan1 type veth peer name lan1p && ip addr add 192.168.201.1/24 dev lan1 && ip link set lan1 up && ip link set lan1p up",
                   host.salt_call("saltutil.sync_all"), host.salt_call("state.apply wgmesh test=True"),
                   "ip -4 route show 10.70.0.0/16", host.salt_call("state.apply wgmesh"),
                   host.salt_call("state.apply wgmesh"), "ip -4 route show 10.70.0.0/16")
    dry, before, first, second, after = out[2:]
    assert state_results(dry)["wgmesh-lan-routes"]["result"] is None
    assert before.strip() == ""
    assert state_results(first)["wgmesh-lan-routes"]["result"] is True
    assert state_results(first)["wgmesh-lan-routes"]["changes"] == {"routes": ["10.70.0.0/16 via 192.168.201.247"]}
    assert state_results(second)["wgmesh-lan-routes"]["changes"] == {}
    assert after.split()[:3] == ["10.70.0.0/16", "via", "192.168.201.247"]


def test_invalid_pillar_applies_nothing(local_host, network_pillar):
    pillar = pillar_for(network_pillar, backend="wgquick", firewall="iptables")
    pillar["wgmesh"]["developers"]["f"]["address"] = "10.70.0.4"  # taken by e
    host = local_host("z", pillar)
    out = host.run(host.salt_call("saltutil.sync_all"), fails(host.salt_call("state.apply wgmesh")),
                   "ls /etc/wireguard /etc/sysctl.d; ip link show wg0 2>&1; cat /proc/sys/net/ipv4/ip_forward")
    result = json.loads(out[1])["local"]
    assert isinstance(result, list) and "developers.f.address" in " ".join(result)
    assert "already taken by developers.e" in " ".join(result)
    assert out[2].split() == ["/etc/sysctl.d:", "/etc/wireguard:", "Device", '"wg0"', "does", "not", "exist.", "0"]


def test_firewalld_backend_refuses_when_firewalld_is_not_running(local_host, network_pillar, tmp_path):
    """Without a running firewalld the hardening would only be a file: the firewall state fails,
    and forwarding and the tunnel, which require it, are not started."""
    stopped = tmp_path / "stopped-firewalld"
    stopped.mkdir()
    (stopped / "firewall-cmd").write_text("#!/bin/sh\necho 'not running' >&2\nexit 252\n")
    (stopped / "firewall-cmd").chmod(0o755)
    host = local_host("a", pillar_for(network_pillar, backend="wgquick", firewall="firewalld"))
    out = host.run(host.salt_call("saltutil.sync_all"), fails(host.salt_call("state.apply wgmesh")),
                   "cat /proc/sys/net/ipv4/ip_forward; ip link show wg0 2>&1 | head -1",
                   extra_path=f"{stopped}:")
    results = state_results(out[1])
    assert results["wgmesh-firewall"]["result"] is False
    assert "firewalld is not running" in results["wgmesh-firewall"]["comment"]
    assert results["wgmesh-ip-forward"]["result"] is False and results["wgmesh-tunnel"]["result"] is False
    assert out[2].split()[0] == "0" and "does not exist" in out[2]
