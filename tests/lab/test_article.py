"""The article's network, live (issue: live lab).

The session fixture `article` builds it the way an operator would: topology,
salt-master + minions, a `git push` of the example pillar that the reactor
gates and converges, then e and f import their configs.  Everything here is
real: wireguard-go tunnels, iptables, conntrack, pings and iperf3 transfers
between namespaces.
"""
import re
import time


from lab.article import B, D, VPN, changes_in
from lab.services import NO_MODULE, networkd_problems



def test_every_path_of_the_article_and_the_hardening(article):
    rows = article.matrix()
    wrong = [(src, dst, want, got) for src, dst, want, got in rows if want != got]
    assert not wrong, wrong
    assert sum(1 for *_, want, _ in rows if want) >= 10


def test_second_apply_reports_no_changes(article):
    assert set(article.converge_result) == {"z", "a", "c", "r1"}
    assert changes_in(article.converge_result) == {}
    again = article.apply_all()
    assert changes_in(again) == {}


def test_masquerade_mode_shows_the_gateway_as_source(article):
    """LAN2's router takes no static route: c NATs, d sees 192.168.200.248 (conntrack on c)."""
    lab = article.lab
    # ICMP entries only: after a full flush, the packets of salt's and the tunnel's connections
    # would be NEW to firewalld, which rejects them
    lab.exec("c", ["conntrack", "-D", "-p", "icmp"], check=False)
    assert lab.ping("e", D, count=2)
    flows = lab.exec("c", ["conntrack", "-L", "-p", "icmp", "-s", VPN["e"]]).stdout
    assert re.search(rf"src={VPN['e']} dst={D} .* src={D} dst=192\.168\.200\.248 ", flows), flows


def test_static_route_mode_keeps_the_vpn_source(article):
    """LAN1's router r1 has `10.70.0.0/16 via 192.168.201.247` (applied by Salt): no NAT on a."""
    lab = article.lab
    assert "10.70.0.0/16 via 192.168.201.247" in lab.exec("r1", ["ip", "route"]).stdout
    assert lab.exec("a", ["iptables", "-t", "nat", "-S", "WGMESH-POSTROUTING"]).stdout.strip() \
        == "-N WGMESH-POSTROUTING"
    lab.exec("a", ["conntrack", "-D", "-p", "icmp"], check=False)
    assert lab.ping("f", B, count=2)
    flows = lab.exec("a", ["conntrack", "-L", "-p", "icmp", "-s", VPN["f"]]).stdout
    assert re.search(rf"src={VPN['f']} dst={B} .* src={B} dst={VPN['f']} ", flows), flows


def test_established_replies_pass_while_new_connections_from_the_hub_are_dropped(article):
    lab = article.lab
    # A TCP transfer e -> d: its replies are ESTABLISHED through c's DROP-by-default chain.
    assert article.lab.iperf("e", D, seconds=1) > 1e6
    counters = lab.exec("c", ["iptables", "-v", "-x", "-n", "-L", "WGMESH-FORWARD"]).stdout
    established = next(line for line in counters.splitlines() if "RELATED,ESTABLISHED" in line)
    assert int(established.split()[0]) > 100
    # The hub's own address is in no allow-list; its packets hit the DROP rule.
    drop_before = _drops(lab, "c")
    assert not lab.ping("z", D, count=2)
    assert _drops(lab, "c") >= drop_before + 2


def _drops(lab, host):
    rules = lab.exec(host, ["iptables", "-v", "-x", "-n", "-L", "WGMESH-FORWARD"]).stdout.splitlines()
    return int(next(line for line in rules if line.split()[2:3] == ["DROP"]).split()[0])


def test_route_conflict_reproduced_and_fixed(article, record_property):
    """e in the LAN2 office (192.168.200.27/24): per-LAN AllowedIPs hairpin through z; the covering prefix does not."""
    lab = article.lab
    wgmesh_conf = lab.host_path("e", "/etc/wireguard/wg0.conf").read_text()
    article_conf = re.sub(r"AllowedIPs = 192\.168\.0\.0/16\n",
                          "AllowedIPs = 192.168.200.0/24\nAllowedIPs = 192.168.201.0/24\n", wgmesh_conf)
    assert article_conf != wgmesh_conf
    results = {}
    try:
        for label, conf in (("article per-LAN AllowedIPs", article_conf), ("wgmesh covering prefix", wgmesh_conf)):
            lab.leave_office("e") if _in_office(lab) else None
            lab.wg_quick("e", "down")
            lab.wg_quick("e", "up", conf)          # connected at home, then walks into the office
            lab.join_office("e")
            route = lab.route_get("e", D)
            hub_rx = _hub_rx_from(lab, "e")
            bps = lab.iperf("e", D, seconds=2)
            results[label] = (route, bps, _hub_rx_from(lab, "e") - hub_rx)
    finally:
        if _in_office(lab):
            lab.leave_office("e")
        lab.wg_quick("e", "down", check=False)
        lab.wg_quick("e", "up", wgmesh_conf)
    conflict_route, conflict_bps, conflict_hub_bytes = results["article per-LAN AllowedIPs"]
    fixed_route, fixed_bps, fixed_hub_bytes = results["wgmesh covering prefix"]
    assert " dev wg0 " in conflict_route and conflict_hub_bytes > 1_000_000     # hairpins through z
    assert " dev eth1 " in fixed_route and fixed_hub_bytes < 100_000            # stays on the LAN
    record_property("throughput_article_per_lan_Mbps", round(conflict_bps / 1e6, 1))
    record_property("throughput_wgmesh_covering_Mbps", round(fixed_bps / 1e6, 1))
    print(f"\nroute conflict: per-LAN AllowedIPs {conflict_bps / 1e6:.0f} Mbit/s via wg0 (z saw "
          f"{conflict_hub_bytes} B); covering prefix {fixed_bps / 1e6:.0f} Mbit/s via eth1 (z saw {fixed_hub_bytes} B)")
    assert lab.ping("e", D, count=2)


def _in_office(lab):
    return "192.168.200.27" in lab.exec("e", ["ip", "-4", "-o", "addr"]).stdout


def _hub_rx_from(lab, dev):
    """Bytes z received from developer ``dev``'s peer."""
    key = lab.exec(dev, ["wg", "show", "wg0", "public-key"]).stdout.strip()
    for line in lab.exec("z", ["wg", "show", "wg0", "transfer"]).stdout.splitlines():
        peer, rx, _tx = line.split("\t")
        if peer == key:
            return int(rx)
    raise AssertionError(f"{dev} is not a peer of z")


def test_reboot_of_a_gateway_is_repaired_by_the_next_apply(article):
    lab = article.lab
    assert lab.ping("e", B)
    lab.exec("a", ["ip", "link", "del", "wg0"])          # what a reboot leaves: no interface, files on disk
    lab.exec("a", ["iptables", "-F", "WGMESH-FORWARD"])
    lab.exec("a", ["sysctl", "-qw", "net.ipv4.ip_forward=0"])
    assert not lab.ping("e", B, timeout=1)
    result = lab.salt(["a", "state.apply", "wgmesh", "queue=True"], timeout=120)["a"]
    assert all(s["result"] is True for s in result.values()), result
    assert any(s["changes"] for s in result.values())
    deadline = time.monotonic() + 30
    while not lab.ping("e", B, timeout=1):
        assert time.monotonic() < deadline, "LAN1 unreachable after re-apply"
    assert changes_in(lab.salt(["a", "state.apply", "wgmesh", "queue=True"], timeout=120)) == {}


def test_systemd_networkd_loads_the_rendered_files_and_configures_the_tunnel(article):
    """z, a and c run the real systemd-networkd: it applied wg0.network (address, z's LAN routes)
    with no warning in its log, and a scratch networkd loading every rendered file, wg0.netdev
    included, reports nothing but the missing WireGuard kernel module (the lab's stand-in makes
    the link: lab/netdev_standin.py)."""
    lab = article.lab
    for host in ("z", "a", "c"):
        log = lab.log(host, "networkd")
        assert "configuring with /etc/systemd/network/wg0.network." in log.lower(), log
        assert networkd_problems(log) == [], log
        parse = lab.networkd_parse_log(host)
        assert NO_MODULE in parse and networkd_problems(parse) == [], parse
        links = lab.exec(host, ["networkctl", "list", "--no-pager", "--no-legend"]).stdout
        assert any(line.split()[1:4] == ["wg0", "none", "routable"] for line in links.splitlines()), links
    routes = lab.exec("z", ["ip", "-4", "route", "show", "dev", "wg0"]).stdout
    assert "192.168.200.0/24 proto static" in routes and "192.168.201.0/24 proto static" in routes, routes
    assert lab.exec("z", ["sysctl", "-n", "net/ipv4/conf/wg0/rp_filter"]).stdout.strip() == "1"   # strict
