"""The firewall on the real daemons (issue 9), for every backend wgmesh offers.

Two deployments of the article's network, each converged by a real salt-master from a
`git push` (lab/article.py PROFILES):
- "article": a real firewalld (Debian's 1.3, nftables backend, its own D-Bus) on z, a and c;
  c's LAN interface is in zone public (as NetworkManager binds it), a's in none (ifupdown);
- "variants": firewalld on its iptables backend on a, wgmesh's plain iptables chains on z and c.

In each: TCP (echo servers) and ICMP probes from every VPN host into each LAN and to the
gateways themselves match the allow-list, before and after a push that narrows and revokes
access and one that grants it back (no reload by hand); the narrowing cuts the developer's open
connection too, while unchanged peers lose no ping; a Docker-style bridge on each gateway keeps
forwarding; drift of each kind is detected and corrected by the drift schedule.
"""
import json
import subprocess
import sys
import threading
import time

import pytest
import yaml

from lab.article import B, D, ECHO_PORT, VPN, ArticleLab
from lab.topology import LAB_PKG, Lab
from tests.conftest import LAB_SKIP_REASON as SKIP_REASON
from .test_gitops import Pinger, wait_ping

SOURCES = ("z", "a", "c", "e", "f")
TARGETS = {"b": B, "d": D, "a": VPN["a"], "a/lan": "192.168.201.247", "c": VPN["c"], "c/lan": "192.168.200.248"}
ADMITTED_BY = {"b": "a", "a": "a", "a/lan": "a", "d": "c", "c": "c", "c/lan": "c"}   # target -> its gateway
LAN_OF = {"a": B, "c": D}


@pytest.fixture(scope="module")
def variants(tmp_path_factory):
    if SKIP_REASON:
        pytest.skip(SKIP_REASON)
    net = Lab(workdir=tmp_path_factory.mktemp("variants"))
    with net:
        scenario = ArticleLab(net, "variants")
        scenario.up()
        yield scenario


@pytest.fixture(scope="module", params=["article", "variants"])
def deployment(request):
    return request.getfixturevalue(request.param)


def firewalls(scenario) -> dict:
    """host -> "firewalld/<backend>" or "iptables", as the deployment runs them."""
    return scenario.profile.firewalls


def allowed(scenario) -> dict:
    """(source, target) -> whether the pushed pillar lets source open connections to target.

    Developers route every LAN into the tunnel; a gateway routes only the VPN, so of another
    office it can reach the gateway's VPN address, when its lan_access names that gateway."""
    gateways = yaml.safe_load((scenario.work / "wgmesh" / "network.sls").read_text())["wgmesh"]["gateways"]
    developers = scenario.developers()

    def lan_access(source):
        entry = developers.get(source) or gateways.get(source) or {}
        access = "none" if entry.get("revoked") else entry.get("lan_access", "none")
        return list(gateways) if access == "all" else [] if access == "none" else access

    return {(src, target): (src in developers or target == gateway) and gateway in lan_access(src)
            for src in SOURCES for target, gateway in ADMITTED_BY.items() if src != gateway}


def assert_probes_match_the_allow_list(scenario):
    lab = scenario.lab
    want = allowed(scenario)
    pairs = [(src, TARGETS[target]) for src, target in want]
    icmp = lab.connectivity_matrix(pairs, timeout=1, count=2)
    tcp = lab.tcp_matrix(pairs, ECHO_PORT, timeout=1.5)
    wrong = {f"{src}->{target}": {"allowed": ok, "icmp": icmp[(src, TARGETS[target])], "tcp": tcp[(src, TARGETS[target])]}
             for (src, target), ok in want.items()
             if (icmp[(src, TARGETS[target])], tcp[(src, TARGETS[target])]) != (ok, ok)}
    assert not wrong, wrong
    return want


def container_ping(scenario, gateway, dst) -> bool:
    ns = f"{scenario.lab.netns(gateway)}-ctr"
    done = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-I", str(LAB_PKG / "icmp.py"),
                           "-q", "-c", "2", "-W", "1", dst], capture_output=True, timeout=30)
    return done.returncode == 0


def docker_zone(scenario, gateway) -> str:
    return scenario.lab.exec(gateway, ["firewall-cmd", "--get-zone-of-interface=docker0"], check=False).stdout.strip()


def test_probes_match_the_allow_list(deployment):
    want = assert_probes_match_the_allow_list(deployment)
    assert want[("e", "d")] and want[("c", "a")] and not want[("z", "b")] and not want[("a", "c")]


def test_a_docker_style_bridge_forwards_beside_wgmesh(deployment):
    """wgmesh's rules match only what enters or leaves the tunnel: a container on each gateway
    reaches the LAN through Docker's own FORWARD and MASQUERADE rules."""
    for gateway, lan_device in LAN_OF.items():
        deployment.lab.add_container(gateway, "ctr")
        assert container_ping(deployment, gateway, lan_device), gateway
        if firewalls(deployment)[gateway].startswith("firewalld/"):
            assert docker_zone(deployment, gateway) == "docker"


def hold(lab, src, dst, held: dict) -> threading.Thread:
    """One TCP connection src -> dst:ECHO_PORT kept open (lab/tcp.py hold), in a thread, until
    it goes unanswered for 4 s (at most 120 s)."""
    command = [sys.executable, "-I", LAB_PKG / "tcp.py", "hold", f"{dst}:{ECHO_PORT}", "--seconds", "120",
               "--give-up", "4"]
    thread = threading.Thread(target=lambda: held.update(json.loads(lab.exec(src, command, timeout=90).stdout)),
                              daemon=True)
    thread.start()
    return thread


def test_narrowing_and_revoking_cut_new_and_open_connections(deployment, record_property):
    """e loses LAN2 and f is revoked in one push. e's open TCP connection to d (through z and c)
    and f's to b stop within the push, as new ones do; e keeps LAN1 and c keeps a without losing
    a ping."""
    lab = deployment.lab
    held = {"e": {}, "f": {}}
    start = time.monotonic()
    holders = [hold(lab, "e", D, held["e"]), hold(lab, "f", B, held["f"])]
    watchers = [Pinger(lab, "e", B, count=300), Pinger(lab, "c", VPN["a"], count=300)]
    for watcher in watchers:
        watcher.start()
    time.sleep(1)
    developers = deployment.developers()
    developers["e"]["lan_access"] = ["a"]
    developers["f"]["revoked"] = True
    event = deployment.push_and_wait("e: LAN1 only; revoke f", deployment.developers_file(developers))
    pushed = time.monotonic() - start
    assert event["tag"] == "wgmesh/applied" and all(event["data"]["applied"].values()), event
    assert_probes_match_the_allow_list(deployment)
    for holder in holders:
        holder.join()
    for connection in held.values():
        assert connection["opened"] and connection["answered"] > 0, held
        # answered until the push, silent since: the open connection was cut
        assert 1 < connection["last_answer"] <= pushed + 0.5, (held, pushed)
    record_property(f"open_connections_cut_{deployment.lab.lab_id}", {"push_s": round(pushed, 2), **held})
    lost = {f"{w.src}->{w.dst}": w.lost() for w in watchers}
    record_property(f"pings_lost_by_unchanged_peers_{deployment.lab.lab_id}", lost)
    assert lost == {f"e->{B}": 0, f"c->{VPN['a']}": 0}
    for gateway in LAN_OF:
        assert container_ping(deployment, gateway, LAN_OF[gateway]), gateway
        if firewalls(deployment)[gateway].startswith("firewalld/"):
            assert docker_zone(deployment, gateway) == "docker"   # no reload dropped Docker's runtime zone


def test_granting_access_back(deployment):
    developers = deployment.developers()
    developers["e"]["lan_access"] = "all"
    developers["f"]["revoked"] = False
    event = deployment.push_and_wait("e and f: all LANs again", deployment.developers_file(developers))
    assert event["tag"] == "wgmesh/applied" and all(event["data"]["applied"].values()), event
    assert wait_ping(deployment.lab, "f", VPN["z"])              # f's laptop handshakes again
    assert_probes_match_the_allow_list(deployment)
    for gateway in LAN_OF:
        assert container_ping(deployment, gateway, LAN_OF[gateway]), gateway


def _drift(lab, host, backend, kind):
    """Make drift of ``kind`` on a gateway, the way someone on the host would."""
    if kind == "added":       # lets the hub into the LAN
        rule = ["WGMESH-FORWARD", "-s", f"{VPN['z']}/32", "-j", "ACCEPT"]
        command = (["firewall-cmd", "--direct", "--add-rule", "ipv4", "filter", rule[0], "2", *rule[1:]]
                   if backend.startswith("firewalld/") else ["iptables", "-w", "-I", rule[0], "2", *rule[1:]])
        lab.exec(host, command)
    elif kind == "removed":   # the final DROP
        command = (["firewall-cmd", "--direct", "--remove-rule", "ipv4", "filter", "WGMESH-FORWARD", "10", "-j", "DROP"]
                   if backend.startswith("firewalld/") else ["iptables", "-w", "-D", "WGMESH-FORWARD", "-j", "DROP"])
        lab.exec(host, command)
    elif backend.startswith("firewalld/"):
        lab.restart_firewalld(host)
    else:                     # what a reboot or `iptables -F` leaves
        lab.exec(host, ["iptables", "-w", "-F", "WGMESH-FORWARD"])


@pytest.mark.parametrize("kind", ["added", "removed", "restarted or flushed"])
def test_drift_is_detected_and_corrected_by_the_schedule(deployment, kind):
    lab = deployment.lab
    for gateway in LAN_OF:
        _drift(lab, gateway, firewalls(deployment)[gateway], kind)
    restarted = {gw for gw in LAN_OF if kind.startswith("restarted") and firewalls(deployment)[gw].startswith("firewalld/")}
    drifted = [gw for gw in LAN_OF if gw not in restarted]
    # the hub reaches a LAN whose DROP is gone or bypassed, until the schedule runs
    assert all(lab.ping("z", LAN_OF[gw], count=2, timeout=1) for gw in drifted)
    # firewalld restarted: its permanent configuration is wgmesh's, so nothing drifted
    assert all("firewall" not in lab.salt_call(gw, ["wgmesh.drift"])["local"] for gw in restarted)
    if drifted:
        waiter = deployment.wait_event("wgmesh/drift/*", timeout=180, count=len(drifted))
    lab.salt(["-L", ",".join(LAN_OF), "schedule.run_job", "wgmesh-converge"], timeout=60)
    if drifted:
        reports = {ev["data"]["data"]["host"]: ev["data"]["data"] for ev in waiter.results()}
        assert set(reports) == set(drifted)
        for gw, report in reports.items():
            firewall = report["drift"]["firewall"]
            found = json.dumps(firewall)
            assert {"added": f"-s {VPN['z']}/32 -j ACCEPT", "removed": "-j DROP"}.get(kind, "-j DROP") in found, report
            assert report["corrected"], report
    assert_probes_match_the_allow_list(deployment)
    assert not any(lab.ping("z", LAN_OF[gw], timeout=1) for gw in LAN_OF)
