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
import base64
import hashlib
import ipaddress
import json
import subprocess
import sys
import threading
import time

import pytest
import yaml

from lab.article import B, D, ECHO_PORT, VPN, ArticleLab, changes_in, jid_now, state_jobs
from lab.boot import power_off, power_on
from lab.topology import LAB_PKG, Lab
from wgmesh_core.firewall import parse_listing
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


def z_chains(lab) -> dict:
    """wgmesh's chains in the hub's kernel: {name: [rule arguments]}."""
    return {chain: rules for chain, rules in parse_listing(lab.exec("z", ["iptables", "-w", "-S"]).stdout).items()
            if chain.startswith("WGMESH-")}


def test_a_crowd_of_developers_is_grouped_by_24_on_the_real_firewall(deployment, record_property):
    """300 developers more (10.70.1.0 to 10.70.2.43) put the hub's long chains over
    firewall.GROUP_ABOVE: on real firewalld their rules, and e's and f's (10.70.0.0/24), move into
    sub-chains of one /24 each; on real iptables (the variants' hub) the developers' list becomes
    one ipset, matched by one rule in each chain. The probes still match the allow-list, e's pings
    into LAN1 and f's into LAN2 lose nothing while the rules move, and the push taking the crowd
    away again deletes the sub-chains, or the set."""
    lab = deployment.lab
    base = deployment.developers()
    first = ipaddress.IPv4Address("10.70.1.0")
    crowd = {f"crowd{i}": {"address": str(first + i), "lan_access": "none",
                           "public_key": base64.b64encode(hashlib.sha256(b"crowd%d" % i).digest()).decode()}
             for i in range(300)}
    subs = {f"WGMESH-{kind}-10.70.{n}" for kind in ("FWD", "DEV") for n in range(3)}
    timings = {}
    for message, developers in (("300 developers more", {**base, **crowd}), ("the crowd gone", base)):
        watchers = [Pinger(lab, "e", B, count=400), Pinger(lab, "f", D, count=400)]
        for watcher in watchers:
            watcher.start()
        time.sleep(1)
        started = time.monotonic()
        event = deployment.push_and_wait(message, deployment.developers_file(developers))
        timings[message] = round(time.monotonic() - started, 2)
        assert event["tag"] == "wgmesh/applied" and all(event["data"]["applied"].values()), event
        assert all(watcher.is_alive() for watcher in watchers), "the pings ended before the push had converged"
        chains = z_chains(lab)
        sets = lab.exec("z", ["ipset", "save"], check=False).stdout.splitlines()
        if developers is base:
            assert not set(chains) & subs and "-s 10.70.0.4/32 -i wg0 -o wg0 -j WGMESH-DEVELOPERS" in chains["WGMESH-FORWARD"]
            assert not [line for line in sets if " wgmesh-" in line], sets
        elif firewalls(deployment)["z"] == "iptables":
            assert not set(chains) & subs and chains["WGMESH-DEVELOPERS"] == [
                "-m set --match-set wgmesh-developers dst -j ACCEPT"]
            assert "-i wg0 -o wg0 -m set --match-set wgmesh-developers src -j WGMESH-DEVELOPERS" in chains["WGMESH-FORWARD"]
            members = [line.split()[2] for line in sets if line.startswith("add wgmesh-developers ")]
            assert len(members) == 302 and {"10.70.0.4", "10.70.2.43"} <= set(members)
        else:
            assert set(chains) >= subs and len(chains["WGMESH-FORWARD"]) == 1 + 3 + 1      # replies, 3 jumps, DROP
            assert "-s 10.70.0.4/32 -i wg0 -o wg0 -j WGMESH-DEVELOPERS" in chains["WGMESH-FWD-10.70.0"]
            assert len(chains["WGMESH-DEV-10.70.1"]) == 256 and len(chains["WGMESH-DEV-10.70.2"]) == 44
        if firewalls(deployment)["z"].startswith("firewalld/"):
            direct = lab.exec("z", ["firewall-cmd", "--direct", "--get-all-chains"]).stdout.split()
            assert (set(direct) & subs) == (set() if developers is base else subs), direct
        assert_probes_match_the_allow_list(deployment)
        lost = {f"{w.src}->{w.dst}": w.lost() for w in watchers}
        record_property(f"crowd_{message.replace(' ', '_')}_{lab.lab_id}", {"push_s": timings[message], "lost": lost})
        assert lost == {f"e->{B}": 0, f"f->{D}": 0}, message


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


# --- a reboot: what the host's own files bring back, with no Salt ------------------------------

MINIONS = ("z", "a", "c", "r1")


def live_state(lab, host) -> dict:
    """What wgmesh sets live on ``host``: the tunnel (without what handshakes learn: endpoints,
    times, counters), its address and routes, wgmesh's firewall rules, the sysctls, and the
    static route of a LAN router."""
    def out(*argv):
        done = lab.exec(host, list(argv), check=False)
        return done.stdout if done.returncode == 0 else f"(exit {done.returncode})"
    dump = [line.split("\t") for line in out("wg", "show", "wg0", "dump").splitlines()]
    state = {"interface": dump[:1] and dump[0][:3],
             "peers": sorted((p[0], p[1], ",".join(sorted(p[3].split(","))), p[7]) for p in dump[1:]),
             "address": out("ip", "-4", "-o", "addr", "show", "dev", "wg0").split()[2:4],
             "routes": sorted(out("ip", "-4", "route", "show", "dev", "wg0").splitlines()),
             "vpn route": out("ip", "-4", "route", "show", "10.70.0.0/16").strip(),
             "sysctl": out("sysctl", "-n", "net.ipv4.ip_forward", "net.ipv4.conf.wg0.rp_filter").split()}
    if lab.pid(host, "firewalld"):
        state["firewalld"] = {what: sorted(out("firewall-cmd", *argv).splitlines()) for what, argv in {
            "direct": ["--direct", "--get-all-rules"], "chains": ["--direct", "--get-all-chains"],
            "zone": ["--info-zone=wgmesh"], "policy": ["--info-policy=wgmesh-wireguard"],
            "wg0 in": ["--get-zone-of-interface=wg0"]}.items()}
    if host != "r1":    # wgmesh's chains and the jumps to them (Docker's rules are not wgmesh's)
        rules = [line for table in ("filter", "nat")
                 for line in out("iptables", "-w", "-t", table, "-S").splitlines() if "WGMESH" in line]
        # firewalld orders direct rules by priority, and rules of one priority (the allow-list's
        # ACCEPTs) by when they were added: a rule granted again at runtime comes last, at boot
        # in direct.xml's order; wgmesh's own iptables chains keep one order
        state["iptables"] = sorted(rules) if "firewalld" in state else rules
    return state


def test_a_reboot_of_every_host_comes_back_from_its_boot_files_alone(deployment):
    """The hub, both gateways and the LAN router lose power at once: daemons, interfaces, rules,
    routes and sysctls gone (lab/boot.py). They boot with no Salt (minions stay off): the
    tunnels, addresses, routes, hardening and the LAN router's route come back as they were,
    the allow-list holds, and the minion-start reactor's applies then find nothing to change."""
    lab, profile = deployment.lab, deployment.profile
    before = {host: live_state(lab, host) for host in MINIONS}
    assert before["r1"]["vpn route"].startswith("10.70.0.0/16 via 192.168.201.247"), before["r1"]
    assert before["z"]["peers"] and before["c"]["iptables"], before
    for host in MINIONS:
        power_off(lab, host, "10.70.0.0/16", profile.backend)
    assert not lab.ping("e", B, timeout=1) and lab.exec("r1", ["ip", "route", "show", "10.70.0.0/16"]).stdout == ""
    for host in MINIONS:
        power_on(lab, host, profile.backend, profile.firewalld().get(host), profile.lan_zones.get(host))
    assert wait_ping(lab, "e", B) and wait_ping(lab, "f", D) and wait_ping(lab, "c", VPN["a"])
    after = {host: live_state(lab, host) for host in MINIONS}
    differences = {host: {key: {"before": value, "after": after[host].get(key)}
                          for key, value in before[host].items() if after[host].get(key) != value}
                   for host in MINIONS}
    assert differences == {host: {} for host in MINIONS}
    assert_probes_match_the_allow_list(deployment)
    jid = jid_now()
    for host in MINIONS:
        lab.start_minion(host, wait=False)
    lab.wait_minions(MINIONS, timeout=120)
    applied = wait_state_jobs(lab, jid, set(MINIONS))
    assert {minion: changes_in({minion: ret}) for minion, ret in applied.items()} == \
        {minion: {} for minion in MINIONS}, applied


def wait_state_jobs(lab, jid, minions, timeout=180) -> dict:
    """The returns of the state.apply jobs the master sent ``minions`` since ``jid`` (the
    minion-start reactor's), once each has returned."""
    deadline = time.monotonic() + timeout
    while True:
        jobs = state_jobs(lab, jid)
        returns = {}
        for job_id in jobs:
            returns.update(lab.salt_run(["jobs.lookup_jid", job_id]))
        if set(returns) >= minions:
            return {minion: returns[minion] for minion in minions}
        assert time.monotonic() < deadline, (jobs, returns)
        time.sleep(2)
