"""`salt-call --local state.apply wgmesh` converges a host of each role.

Each host is a network + mount namespace of its own; WireGuard is wireguard-go
(real tunnels, userspace).  Sequence per host: test=True, apply, apply again:
the dry run changes nothing, the first apply converges, the second reports no
changes.  firewalld and systemd-networkd are the real daemons (Debian's, on a private
D-Bus); only the WireGuard kernel module has a stand-in (lab/netdev_standin.py).
"""
import copy
import json
import shlex
import subprocess

import pytest
import yaml

from wgmesh_core import host_config, host_files, load_network, public_key
from wgmesh_salt import read_document
from lab.services import NO_MODULE, networkd_parse_command, networkd_problems
from .conftest import REPO, fails, state_results


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


def converge(host, checks=(), firewalld="", networkd=False):
    """test=True, apply, apply; plus shell checks after each step."""
    probe = "test -e /etc/wireguard/wg0.conf -o -e /etc/systemd/network/wg0.netdev && echo present || echo absent"
    out = host.run(host.salt_call("saltutil.sync_all"),
                   host.salt_call("state.apply wgmesh test=True"), probe,
                   host.salt_call("state.apply wgmesh"),
                   host.salt_call("state.apply wgmesh"), *checks,
                   firewalld=firewalld, networkd=networkd)
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
    dry, probe, first, second, (dump, forward, routes, schedule, rp_filter, chain) = converge(
        host, ["wg show wg0 dump", "cat /proc/sys/net/ipv4/ip_forward", "ip -4 route show dev wg0",
               f"cat {host.dir / 'conf' / 'minion.d' / '_schedule.conf'}", "cat /proc/sys/net/ipv4/conf/wg0/rp_filter",
               "iptables -S WGMESH-FORWARD; iptables -S WGMESH-DEVELOPERS; iptables -S FORWARD"])
    assert_converged(dry, probe, first, second)
    assert rp_filter.strip() == "1"
    # the hub forwards replies, what the gateways admit, developer <-> developer, and drops the rest
    assert "-A WGMESH-FORWARD -s 10.70.0.3/32 -d 192.168.201.0/24 -i wg0 -o wg0 -m conntrack --ctstate NEW -j ACCEPT" in chain
    assert "-A WGMESH-FORWARD -s 10.70.0.4/32 -i wg0 -o wg0 -j WGMESH-DEVELOPERS" in chain
    assert "-A WGMESH-DEVELOPERS -d 10.70.0.5/32 -j ACCEPT" in chain
    assert [l for l in chain.splitlines() if l.startswith("-A WGMESH-FORWARD")][-1] == "-A WGMESH-FORWARD -j DROP"
    assert [l for l in chain.splitlines() if l.startswith("-A FORWARD")][:2] == [
        "-A FORWARD -i wg0 -j WGMESH-FORWARD", "-A FORWARD -o wg0 -j WGMESH-FORWARD"]
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
    assert forward_rules[:2] == ["-A FORWARD -i wg0 -j WGMESH-FORWARD",   # the hardening is first again
                                 "-A FORWARD -o wg0 -j WGMESH-FORWARD"]
    assert "10.70.9.9" not in addresses and "10.70.0.3/16" in addresses
    assert forward_chain.splitlines()[1:] == [
        "-A WGMESH-FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
        "-A WGMESH-FORWARD -s 10.70.0.4/32 -d 192.168.200.0/24 -i wg0 -o eth2 -m conntrack --ctstate NEW -j ACCEPT",
        "-A WGMESH-FORWARD -s 10.70.0.5/32 -d 192.168.200.0/24 -i wg0 -o eth2 -m conntrack --ctstate NEW -j ACCEPT",
        "-A WGMESH-FORWARD -j DROP"]
    assert "-A WGMESH-POSTROUTING -s 10.70.0.0/16 -d 192.168.200.0/24 -o eth2 -j MASQUERADE" in nat_chain
    assert "-A FORWARD -i wg0 -j WGMESH-FORWARD" in jumps and "-A POSTROUTING -j WGMESH-POSTROUTING" in jumps
    hub_peer = dump.strip().splitlines()[1].split("\t")
    assert hub_peer[0] == pillar["wgmesh_host_keys"]["z"]
    assert hub_peer[2] == "203.0.113.1:51820" and hub_peer[3] == "10.70.0.0/16" and hub_peer[7] == "15"


FIREWALLD_CHECKS = [
    "firewall-cmd --direct --get-all-rules", "firewall-cmd --get-zone-of-interface=wg0",
    "iptables -S WGMESH-FORWARD; iptables -S WGMESH-INPUT",
    # someone else's runtime-only rule, and drift: a rule added by hand, the DROP removed
    "firewall-cmd --zone=public --add-port=8080/tcp",
    "firewall-cmd --direct --add-rule ipv4 filter WGMESH-FORWARD 2 -s 10.70.0.9/32 -j ACCEPT",
    "firewall-cmd --direct --remove-rule ipv4 filter WGMESH-FORWARD 10 -j DROP",
]


@pytest.mark.parametrize("backend", ["nftables", "iptables"])
def test_gateway_with_a_real_firewalld(local_host, network_pillar, backend):
    """firewalld (Debian's, on its own D-Bus) with either backend: the first apply creates zone wgmesh
    (one reload); drift is undone at runtime, keeping other programs' runtime rules."""
    pillar = pillar_for(network_pillar, backend="wgquick", firewall="firewalld")
    host = local_host("a", pillar)
    dry, probe, first, second, (direct, zone, kernel, *_, drift_apply, after, port) = converge(
        host, [*FIREWALLD_CHECKS, host.salt_call("state.apply wgmesh"), "firewall-cmd --direct --get-all-rules",
               "firewall-cmd --zone=public --query-port=8080/tcp"], firewalld=backend)
    results = assert_converged(dry, probe, first, second)
    assert "zone wgmesh missing" in json.dumps(results["wgmesh-firewall"]["changes"])
    assert zone.strip() == "wgmesh"
    assert "ipv4 filter WGMESH-FORWARD 2 -s 10.70.0.3/32 -d 192.168.201.0/24 -i wg0 -o eth1 " \
           "-m conntrack --ctstate NEW -j ACCEPT" in direct.splitlines()
    assert "-A WGMESH-FORWARD -s 10.70.0.4/32 -d 192.168.201.0/24 -i wg0 -o eth1 -m conntrack --ctstate NEW -j ACCEPT" \
        in kernel.splitlines()                                   # in the kernel, not only in firewalld's record
    assert "-A WGMESH-INPUT -j DROP" in kernel.splitlines()
    fixed = state_results(drift_apply)["wgmesh-firewall"]
    assert fixed["changes"] == {"firewalld": {
        "missing": ["firewalld: ipv4 filter WGMESH-FORWARD 10 -j DROP"],
        "extra": ["firewalld: ipv4 filter WGMESH-FORWARD 2 -s 10.70.0.9/32 -j ACCEPT"]}}
    assert sorted(after.splitlines()) == sorted(direct.splitlines())
    assert port.strip() == "yes"                                 # not reloaded: others' runtime rules stay


def test_a_large_change_reaches_a_real_firewalld_in_one_reload(local_host, network_pillar):
    """300 developers more on a firewalld hub: firewalld takes runtime direct rules one D-Bus
    call at a time (minutes for thousands), so once the state run has written direct.xml the
    change goes in as one reload, which loads the file in one batch. firewalld then holds exactly
    the file's rules, in the kernel too (the hub's long chains in sub-chains of one /24 each),
    and the next apply changes nothing."""
    pillar = pillar_for(network_pillar, backend="wgquick", firewall="firewalld")
    crowd = {f"d{i:03d}": {"address": f"10.70.2.{i}", "public_key": keypair()[1], "lan_access": "none"}
             for i in range(1, 251)}
    crowd.update({f"e{i:03d}": {"address": f"10.70.3.{i}", "public_key": keypair()[1], "lan_access": "none"}
                  for i in range(1, 51)})
    more = copy.deepcopy(pillar)
    more["wgmesh"]["developers"].update(crowd)
    more["wgmesh_psk"].update({name: keypair()[0] for name in crowd})
    host = local_host("z", pillar)
    (host.dir / "pillar" / "more.sls").write_text(yaml.safe_dump(more))
    _, first, _, bulk, rules, kernel, again = host.run(
        host.salt_call("saltutil.sync_all"), host.salt_call("state.apply wgmesh"),
        f"cp {shlex.quote(str(host.dir / 'pillar' / 'more.sls'))} {shlex.quote(str(host.dir / 'pillar' / 'net.sls'))}",
        host.salt_call("state.apply wgmesh"), "firewall-cmd --direct --get-all-rules",
        "iptables -S", host.salt_call("state.apply wgmesh"), firewalld="nftables")
    assert all(r["result"] is True for r in state_results(first).values())
    results = state_results(bulk)
    assert all(r["result"] is True for r in results.values()), {k: r["comment"] for k, r in results.items()}
    change = results["wgmesh-firewall"]["changes"]["firewalld"]
    assert any("reloading firewalld's permanent configuration (one batch)" in line for line in change["other"])
    planned = {r.direct for r in firewall_rules(more, "z")}
    assert set(rules.splitlines()) == planned and len(planned) > 300
    # over 256 allow rules: the hub's chains are grouped by /24, in firewalld's kernel rules too
    kernel = kernel.splitlines()
    assert any(line.startswith("-A WGMESH-FWD-10.70.3 -s 10.70.3.50/32 ") for line in kernel)
    assert "-A WGMESH-FORWARD -s 10.70.3.0/24 -j WGMESH-FWD-10.70.3" in kernel
    unchanged = {k: r["changes"] for k, r in state_results(again).items() if r["changes"]}
    assert not unchanged, unchanged


def firewall_rules(pillar, host):
    import datetime
    from wgmesh_core.firewall import rules
    spec = load_network(pillar["wgmesh"])
    return rules(host_config(spec, host, datetime.date.today(), pillar["wgmesh_host_keys"], pillar["wgmesh_psk"]).firewall)


def test_hub_with_a_real_systemd_networkd(local_host, network_pillar):
    """backend networkd on the real systemd-networkd (Debian's 252, own D-Bus): it loads the rendered
    files with no warning and applies wg0.network (address, the LAN routes) on wg0. The link itself
    comes from a STAND-IN for the WireGuard kernel module, which this machine lacks
    (lab/netdev_standin.py: wireguard-go configured from wg0.netdev, as networkd would); a second
    networkd loads wg0.netdev itself and reports nothing but the missing module."""
    pillar = pillar_for(network_pillar, backend="networkd", firewall="iptables")
    host = local_host("z", pillar)
    files = host.path("/etc/systemd/network")
    dry, probe, first, second, (dump, routes, links, parse) = converge(
        host, ["wg show wg0 dump", "ip -4 route show dev wg0", "networkctl list --no-pager --no-legend",
               shlex.join(networkd_parse_command(files))], networkd=True)
    assert_converged(dry, probe, first, second)
    assert "192.168.200.0/24 proto static scope link" in routes     # networkd's [Route], not wgmesh's
    assert "192.168.201.0/24 proto static scope link" in routes
    wg0 = next(line.split() for line in links.splitlines() if line.split()[1:2] == ["wg0"])
    assert wg0[3] == "routable" and wg0[4] in ("configured", "configuring"), links
    assert networkd_problems(host.log("networkd")) == [], host.log("networkd")
    assert NO_MODULE in parse and networkd_problems(parse) == [], parse
    assert "configuring with /etc/systemd/network/wg0.network." in host.log("networkd").lower()
    assert {line.split("\t")[0] for line in dump.strip().splitlines()[1:]} == {
        pillar["wgmesh_host_keys"]["a"], pillar["wgmesh_host_keys"]["c"],
        network_pillar["developers"]["e"]["public_key"], network_pillar["developers"]["f"]["public_key"]}
    netdev = files / "wg0.netdev"
    assert oct(netdev.stat().st_mode & 0o777) == "0o640" and netdev.stat().st_gid != 0
    key = files / "wg0.key"
    assert oct(key.stat().st_mode & 0o777) == "0o640" and key.stat().st_gid == netdev.stat().st_gid
    assert "PrivateKeyFile=/etc/systemd/network/wg0.key" in netdev.read_text()
    assert "PrivateKey=" not in netdev.read_text()


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


def test_firewalld_backend_refuses_when_firewalld_is_not_running(local_host, network_pillar):
    """Without a running firewalld (installed, not started here) the hardening would only be a
    file: the firewall state fails, and forwarding and the tunnel, which require it, are not started."""
    host = local_host("a", pillar_for(network_pillar, backend="wgquick", firewall="firewalld"))
    out = host.run(host.salt_call("saltutil.sync_all"), fails(host.salt_call("state.apply wgmesh")),
                   "cat /proc/sys/net/ipv4/ip_forward; ip link show wg0 2>&1 | head -1")
    results = state_results(out[1])
    assert results["wgmesh-firewall"]["result"] is False
    assert "firewalld is not running" in results["wgmesh-firewall"]["comment"]
    assert results["wgmesh-ip-forward"]["result"] is False and results["wgmesh-tunnel"]["result"] is False
    assert out[2].split()[0] == "0" and "does not exist" in out[2]


def test_iptables_backend_refuses_while_firewalld_runs(local_host, network_pillar):
    """firewalld's own filtering would reject what wgmesh's iptables chains admit."""
    host = local_host("a", pillar_for(network_pillar, backend="wgquick", firewall="iptables"))
    out = host.run(host.salt_call("saltutil.sync_all"), fails(host.salt_call("state.apply wgmesh")), firewalld="nftables")
    firewall = state_results(out[1])["wgmesh-firewall"]
    assert firewall["result"] is False and "firewalld is running" in firewall["comment"]


def test_a_wg_quick_hub_routes_the_vpn_and_the_lans_without_a_route_per_peer(local_host, network_pillar):
    """Table = off: wg-quick adds no route per AllowedIPs entry (with a fork of `ip` to check each
    first: minutes for a hub of 10,000 developers); the address's route carries the VPN and
    PostUp adds the LANs, at the first apply and when the interface comes up again without
    Salt (a reboot). wg-quick prints every command it runs ("[#] ...")."""
    pillar = pillar_for(network_pillar, backend="wgquick", firewall="iptables")
    host = local_host("z", pillar)
    routes = "ip -4 route show dev wg0 | sort"
    out = host.run(host.salt_call("saltutil.sync_all"), host.salt_call("state.apply wgmesh"), routes,
                   "wg-quick down wg0", "ip link show wg0 || echo gone", "wg-quick up wg0 2>&1", routes)
    failed = {k: r["comment"] for k, r in state_results(out[1]).items() if r["result"] is not True}
    assert not failed, failed
    wanted = ["10.70.0.0/16 proto kernel scope link src 10.70.0.1", "192.168.200.0/24 scope link",
              "192.168.201.0/24 scope link"]
    assert [line.strip() for line in out[2].splitlines()] == wanted
    assert "gone" in out[4]
    assert [line for line in out[5].splitlines() if "route" in line] == [
        "[#] ip route replace 192.168.200.0/24 dev wg0", "[#] ip route replace 192.168.201.0/24 dev wg0"], out[5]
    assert [line.strip() for line in out[6].splitlines()] == wanted


def test_an_iptables_hub_of_many_developers_matches_ipsets_changed_in_place(local_host, network_pillar):
    """300 developers more on an iptables hub: its allow-lists over firewall.GROUP_ABOVE become
    ipsets on the kernel (one rule each instead of a rule per address), loaded at boot from
    /etc/wgmesh/ipsets before the rules; revoking one developer removes its address from the
    sets and changes no rule; the crowd leaving destroys the sets; each next apply changes nothing."""
    pillar = pillar_for(network_pillar, backend="wgquick", firewall="iptables")
    crowd = {f"d{i:03d}": {"address": f"10.70.2.{i}", "public_key": keypair()[1], "lan_access": ["a"]}
             for i in range(1, 251)}
    crowd.update({f"e{i:03d}": {"address": f"10.70.3.{i}", "public_key": keypair()[1], "lan_access": ["a"]}
                  for i in range(1, 51)})
    more = copy.deepcopy(pillar)
    more["wgmesh"]["developers"].update(crowd)
    more["wgmesh_psk"].update({name: keypair()[0] for name in crowd})
    revoked = copy.deepcopy(more)
    revoked["wgmesh"]["developers"]["d007"]["revoked"] = True
    host = local_host("z", more)
    for name, data in (("revoked", revoked), ("small", pillar)):
        (host.dir / "pillar" / f"{name}.sls").write_text(yaml.safe_dump(data))
    net = shlex.quote(str(host.dir / "pillar" / "net.sls"))
    _, first, sets, kernel, boot_sets, unit, again, _, revoke, after_revoke, _, shrink, none_left, last = host.run(
        host.salt_call("saltutil.sync_all"), host.salt_call("state.apply wgmesh"), "ipset save", "iptables -S",
        "cat /etc/wgmesh/ipsets", "cat /etc/systemd/system/wgmesh-firewall.service",
        host.salt_call("state.apply wgmesh"),
        f"cp {shlex.quote(str(host.dir / 'pillar' / 'revoked.sls'))} {net}", host.salt_call("state.apply wgmesh"),
        "ipset save wgmesh-developers",
        f"cp {shlex.quote(str(host.dir / 'pillar' / 'small.sls'))} {net}", host.salt_call("state.apply wgmesh"),
        "ipset list -n", host.salt_call("state.apply wgmesh"))
    results = state_results(first)
    assert all(r["result"] is True for r in results.values()), {k: r["comment"] for k, r in results.items()}
    members = [line.split()[2] for line in sets.splitlines() if line.startswith("add wgmesh-developers ")]
    assert len(members) == 302 and "10.70.2.7" in members
    lan_a = [line.split()[2] for line in sets.splitlines() if line.startswith("add wgmesh-to-192.168.201.0-24 ")]
    assert len(lan_a) == 303 and {"10.70.2.250", "10.70.3.50"} <= set(lan_a)       # the crowd, e, f and gateway c
    assert "-A WGMESH-DEVELOPERS -m set --match-set wgmesh-developers dst -j ACCEPT" in kernel.splitlines()
    assert len([line for line in kernel.splitlines() if line.startswith("-A WGMESH-")]) < 20
    assert "add wgmesh-developers~ 10.70.3.50" in boot_sets.splitlines()
    assert "ExecStartPre=ipset -exist restore -file /etc/wgmesh/ipsets" in unit.splitlines()
    for run in (again, last):
        changed = {k: r["changes"] for k, r in state_results(run).items() if r["changes"] or r["result"] is not True}
        assert not changed, changed
    fw_change = state_results(revoke)["wgmesh-firewall"]["changes"]["iptables"]
    assert list(fw_change) == ["extra"] and all(line.endswith(": 10.70.2.7") for line in fw_change["extra"])
    assert fw_change["extra"][:2] == ["ipset wgmesh-developers: 10.70.2.7", "ipset wgmesh-to-192.168.201.0-24: 10.70.2.7"]
    assert "10.70.2.7" not in after_revoke.split() and "add wgmesh-developers 10.70.2.8" in after_revoke.splitlines()
    assert all(r["result"] is True for r in state_results(shrink).values())
    assert "wgmesh" not in none_left


def test_a_hub_switched_from_iptables_to_firewalld_keeps_nothing_of_the_old_backend(local_host, network_pillar):
    """An iptables hub of 300 developers more (its allow-lists are ipsets) switched to firewalld:
    the real firewalld starts, and the next apply leaves nothing of the iptables backend. Its
    boot files are removed (at boot they would put wgmesh's old chains in front of firewalld's),
    its ipsets destroyed once no rule uses them, and the kernel holds exactly firewalld's rules;
    the apply after that changes nothing."""
    crowd = {f"d{i:03d}": {"address": f"10.70.{2 + i // 200}.{i % 200 + 1}", "public_key": keypair()[1],
                           "lan_access": ["a"]} for i in range(300)}
    pillars = {}
    for backend in ("iptables", "firewalld"):
        pillars[backend] = pillar_for(network_pillar, backend="wgquick", firewall=backend)
        pillars[backend]["wgmesh"]["developers"].update(crowd)
        pillars[backend]["wgmesh_psk"].update({name: keypair()[0] for name in crowd})
    host = local_host("z", pillars["iptables"])
    switched = host.dir / "pillar" / "firewalld.sls"
    switched.write_text(yaml.safe_dump(pillars["firewalld"]))
    net = shlex.quote(str(host.dir / "pillar" / "net.sls"))
    _, first, sets_before, _, _, dry, switch, sets_after, kernel, boot, again = host.run(
        host.salt_call("saltutil.sync_all"), host.salt_call("state.apply wgmesh"), "ipset list -n",
        f"cp {shlex.quote(str(switched))} {net}", host._firewalld_script("nftables"),
        host.salt_call("state.apply wgmesh test=True"), host.salt_call("state.apply wgmesh"),
        "ipset list -n", "iptables -S", "ls /etc/wgmesh /etc/systemd/system 2>/dev/null || true",
        host.salt_call("state.apply wgmesh"))
    assert all(r["result"] is True for r in state_results(first).values())
    sets = ["wgmesh-developers", "wgmesh-to-10.70.0.2-32", "wgmesh-to-192.168.201.0-24"]   # gateway a and its LAN
    assert sorted(sets_before.split()) == sets
    would = state_results(dry)["wgmesh-firewall"]
    assert would["result"] is None and sorted(would["changes"]["removed_sets"]) == [f"ipset/{name}" for name in sets]
    assert "removed_files" in would["changes"]
    results = state_results(switch)
    assert all(r["result"] is True for r in results.values()), {k: r["comment"] for k, r in results.items()}
    changes = results["wgmesh-firewall"]["changes"]
    assert sorted(changes["removed_sets"]) == [f"ipset/{name}" for name in sets]
    assert "/etc/wgmesh/iptables.rules" in changes["removed_files"]
    assert "wgmesh" not in sets_after
    assert "match-set" not in kernel
    planned = sorted(f"-A {r.chain} {r.args}" for r in firewall_rules(pillars["firewalld"], "z") if r.table == "filter")
    assert sorted(line for line in kernel.splitlines() if line.startswith("-A") and "WGMESH" in line) == planned
    assert "wgmesh-firewall.service" not in boot
    unchanged = {k: r["changes"] for k, r in state_results(again).items() if r["changes"] or r["result"] is not True}
    assert not unchanged, unchanged
