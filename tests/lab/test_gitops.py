"""The GitOps loop, live (issue: GitOps).

Every change is a real `git push` to the pillar repository in the lab; its
post-receive hook fires `wgmesh/push`, the reactor runs `wgmesh.on_push`
(gate, deploy, converge the affected minions), and the tests watch the
master's event bus, its job list, the live interfaces and real pings.

Each test starts from, and leaves, the article's developers as test_article.py
saw them (the autouse fixture pushes them back when a test changed them), and
sets up what else it needs itself: the tests pass in any order.
"""
import copy
import datetime
import json
import sys
import threading
import time

import pytest
import yaml

from lab.article import B, D, VPN, changes_in, jid_now, state_jobs_since
from lab.topology import REPO

# g joins the example: one of the 64 lowest free addresses (z, a, c, e, f hold .1-.5), picked by its key
G_ADDRESSES = {f"10.70.0.{n}" for n in range(6, 70)}


def wait_ping(lab, src, dst, timeout=30):
    deadline = time.monotonic() + timeout
    while not lab.ping(src, dst, timeout=0.5):
        if time.monotonic() > deadline:
            return False
    return True


class Pinger(threading.Thread):
    """Pings src -> dst every 0.1 s while a change happens; counts the replies."""

    def __init__(self, lab, src, dst, count=60):
        super().__init__(daemon=True)
        self.lab, self.src, self.dst, self.count = lab, src, dst, count
        self.received = None

    def run(self):
        out = self.lab.exec(self.src, [sys.executable, str(REPO / "lab" / "icmp.py"), self.dst, "-c",
                                       str(self.count), "-i", "0.1", "-W", "1", "--json"],
                            timeout=self.count * 2 + 30)
        self.received = json.loads(out.stdout)[self.dst]

    def lost(self):
        self.join()
        return self.count - self.received


def push_developers(article, message, developers):
    return article.push_and_wait(message, article.developers_file(developers))


@pytest.fixture(scope="module")
def baseline(article):
    """The developers of the article's network, as deployed before these tests change them."""
    return copy.deepcopy(article.developers())


@pytest.fixture(autouse=True)
def from_baseline(article, baseline):
    """Each test starts from the baseline developers and leaves them so (pushed back if changed)."""
    def restore(when):
        as_yaml = (article.work / "wgmesh" / "developers.sls").read_text().startswith("#!yaml")
        if article.developers() != baseline or not as_yaml:
            event = push_developers(article, f"back to the article's developers ({when})", baseline)
            assert event["tag"] == "wgmesh/applied", event
    restore("before")
    yield
    restore("after")


@pytest.fixture(scope="module")
def g_entry(article, baseline):
    """Developer g joins from their laptop (host ne, e's home router) with `wgmesh join`:
    the private key stays there, the printed entry goes into the pull request."""
    lab = article.lab
    out = lab.exec("ne", ["wgmesh", "join", str(article.work), "g", "--key-file", "/etc/wireguard/private.key"])
    entry = yaml.safe_load(out.stdout)["g"]
    assert entry["address"] in G_ADDRESSES and entry["lan_access"] == "none"
    mode = lab.host_path("ne", "/etc/wireguard/private.key").stat().st_mode & 0o777
    assert mode == 0o600
    return entry


@pytest.fixture(scope="module")
def g_key(g_entry):
    return g_entry["public_key"]


def with_g(baseline, g_entry, **fields):
    """The baseline developers plus g (its `wgmesh join` entry, with ``fields`` changed)."""
    developers = copy.deepcopy(baseline)
    developers["g"] = dict(g_entry, **fields)
    return developers


def g_laptop_up(article):
    """g (on host ne) imports its current config from ops and brings the tunnel up (again)."""
    article.lab.wg_quick("ne", "down", check=False)    # fails harmlessly when it is not up
    article.laptop_up("g", host="ne")


def onboard_g(article, baseline, g_entry, **fields):
    event = push_developers(article, "onboard g", with_g(baseline, g_entry, **fields))
    assert event["tag"] == "wgmesh/applied", event
    g_laptop_up(article)
    assert wait_ping(article.lab, "ne", VPN["z"])


def test_push_adding_a_developer_converges_only_the_hub(article, baseline, g_entry, g_key, record_property):
    lab = article.lab
    jid = jid_now()
    start = time.monotonic()
    event = push_developers(article, "onboard g", with_g(baseline, g_entry))    # as `wgmesh join` printed it
    assert event["tag"] == "wgmesh/applied", event
    # the hook reached the master's wgmesh_push engine (no salt-run process)
    assert "wgmesh: push" in article.last_push.stderr and "(salt-run)" not in article.last_push.stderr
    assert event["data"]["affected"] == ["z"] and event["data"]["applied"] == {"z": True}
    assert state_jobs_since(lab, jid) == {"z"}
    # the reactor's process had the deployed network planned (reactor/applied.sls after the last
    # push): the gate forked from it planned only the new revision
    assert event["data"]["warm_start"] is True
    # the gate planned g for the hub and handed it off sealed: set before update_live, in its job
    handed = event["data"]["live_first"]["z"]
    assert handed["wgmesh.set_peers"]["set"] == ["g"] and list(handed["timings"])[2:] == ["tunnel", "firewall"]
    assert handed["tunnel"] == {}, "update_live found g missing: the hand-off did not set it"
    assert g_key in lab.exec("z", ["wg", "show", "wg0", "peers"]).stdout
    g_laptop_up(article)
    assert wait_ping(lab, "ne", VPN["z"])
    record_property("push_to_ping_seconds_including_import", round(time.monotonic() - start, 2))
    # g reaches the other developers through z, but no LAN device (no lan_access)
    assert lab.ping("ne", VPN["e"]) and lab.ping("ne", VPN["f"])
    assert not lab.ping("ne", D, timeout=1) and not lab.ping("ne", B, timeout=1)


def test_a_json_developers_file_is_the_same_network_and_onboards_like_yaml(article, baseline, g_entry, g_key):
    """developers.sls rewritten as #!json: the gate compiles it with Salt's json renderer, git_pillar
    serves it, and nothing changes on any host; a developer added to it is live on the hub."""
    lab = article.lab
    jid = jid_now()
    event = article.push_and_wait("developers.sls in JSON", article.developers_file(baseline, as_json=True))
    assert event["tag"] == "wgmesh/applied", event
    assert event["data"]["affected"] == [] and state_jobs_since(lab, jid) == set()
    assert (article.work / "wgmesh" / "developers.sls").read_text().startswith("#!json\n")
    event = article.push_and_wait("onboard g, in JSON", article.developers_file(with_g(baseline, g_entry), as_json=True))
    assert event["tag"] == "wgmesh/applied", event
    assert event["data"]["affected"] == ["z"] and event["data"]["applied"] == {"z": True}
    assert g_key in lab.exec("z", ["wg", "show", "wg0", "peers"]).stdout
    g_laptop_up(article)
    assert wait_ping(lab, "ne", VPN["z"])


def test_granting_lan_access_touches_only_that_gateway(article, baseline, g_entry):
    lab = article.lab
    onboard_g(article, baseline, g_entry)
    jid = jid_now()
    event = push_developers(article, "g may reach LAN2", with_g(baseline, g_entry, lan_access=["c"]))
    assert event["data"]["affected"] == ["z", "c"], event           # the hub forwards what c admits
    assert state_jobs_since(lab, jid) == {"z", "c"}
    assert f"-s {g_entry['address']}/32" in lab.exec("c", ["iptables", "-S", "WGMESH-FORWARD"]).stdout
    assert f"-s {g_entry['address']}/32" not in lab.exec("a", ["iptables", "-S", "WGMESH-FORWARD"]).stdout
    g_laptop_up(article)                           # its AllowedIPs changed: g re-imports
    assert wait_ping(lab, "ne", D)
    assert not lab.ping("ne", B, timeout=1)


def test_revoking_e_cuts_e_and_nobody_else(article, baseline, record_property):
    lab = article.lab
    e_key = lab.exec("e", ["wg", "show", "wg0", "public-key"]).stdout.strip()
    assert lab.ping("e", D)
    watchers = [Pinger(lab, "f", D), Pinger(lab, "f", B), Pinger(lab, "c", VPN["a"])]
    for watcher in watchers:
        watcher.start()
    time.sleep(1)
    developers = article.developers()
    developers["e"]["revoked"] = True
    jid = jid_now()
    event = push_developers(article, "revoke e", developers)
    assert sorted(event["data"]["affected"]) == ["a", "c", "z"], event
    assert state_jobs_since(lab, jid) == {"z", "a", "c"}
    assert e_key not in lab.exec("z", ["wg", "show", "wg0", "peers"]).stdout
    for gateway in ("a", "c"):
        assert f"-s {VPN['e']}/32" not in lab.exec(gateway, ["iptables", "-S", "WGMESH-FORWARD"]).stdout
    assert not lab.ping("e", D, timeout=1) and not lab.ping("e", VPN["f"], timeout=1)
    lost = {f"{w.src}->{w.dst}": w.lost() for w in watchers}
    record_property("pings_lost_by_unchanged_peers_during_revoke", lost)
    assert lost == {f"f->{D}": 0, f"f->{B}": 0, f"c->{VPN['a']}": 0}
    # and back: e is reinstated, its laptop (still configured) handshakes again
    assert push_developers(article, "reinstate e", article.developers() | {"e": baseline["e"]})["tag"] \
        == "wgmesh/applied"
    assert wait_ping(lab, "e", D)


def test_an_invalid_push_is_refused_and_nothing_changes(article):
    lab = article.lab
    deployed = lab.salt_run(["wgmesh.deployed_revision"])
    peers = set(lab.exec("z", ["wg", "show", "wg0", "peers"]).stdout.split())
    f_key = lab.exec("f", ["wg", "show", "wg0", "public-key"]).stdout.strip()   # f's key in the lab
    developers = article.developers()
    developers["h"] = {"address": VPN["f"], "public_key": f_key, "lan_acess": "all"}
    jid = jid_now()
    event = push_developers(article, "bad: h takes f's address and key, and a typo", developers)
    assert event["tag"] == "wgmesh/gate/refused", event
    problems = "\n".join(event["data"]["problems"])
    assert "developers.h.lan_acess: unknown key" in problems
    assert lab.salt_run(["wgmesh.deployed_revision"]) == deployed
    assert state_jobs_since(lab, jid) == set()
    assert set(lab.exec("z", ["wg", "show", "wg0", "peers"]).stdout.split()) == peers
    assert all(want == got for _, _, want, got in article.matrix())
    # the relation problems are reported too, once the shape is right
    del developers["h"]["lan_acess"]
    event = push_developers(article, "still bad", developers)
    problems = "\n".join(event["data"]["problems"])
    assert event["tag"] == "wgmesh/gate/refused"
    assert "developers.h.address: 10.70.0.5 is already taken by developers.f" in problems
    assert "developers.h.public_key: same public key as developer f" in problems
    del developers["h"]
    assert push_developers(article, "fix", developers)["tag"] == "wgmesh/applied"
    assert lab.salt_run(["wgmesh.deployed_revision"]) != deployed


def _on_push_found_nothing_new(event):
    """The return event of a `wgmesh.on_push` run that found the deployed revision unchanged."""
    data = event["data"]
    return (event["tag"].startswith("salt/run/") and event["tag"].endswith("/ret")
            and data.get("fun") == "runner.wgmesh.on_push"
            and isinstance(data.get("return"), dict) and data["return"].get("result") == "unchanged")


def test_a_rewind_is_refused_and_events_from_minions_are_ignored(article):
    """A force-push back to an older revision (which would, say, re-admit a revoked developer) is
    refused; a minion cannot trigger a deployment by sending `wgmesh/push` itself."""
    lab = article.lab
    developers_sls = (article.work / "wgmesh" / "developers.sls").read_text()
    event = article.push_and_wait("a comment: a revision to rewind from",
                                  {"wgmesh/developers.sls": developers_sls + "# reviewed\n"})
    assert event["tag"] == "wgmesh/applied" and event["data"]["affected"] == [], event
    deployed = lab.salt_run(["wgmesh.deployed_revision"])
    assert deployed == article.git("rev-parse", "HEAD").stdout.strip()
    article.git("reset", "-q", "--hard", "HEAD~1")
    waiter = article.wait_event("wgmesh/applied|wgmesh/gate/*")
    article.git("push", "-q", "--force", "origin", "main")
    event = waiter.result()
    assert event["tag"] == "wgmesh/gate/refused"
    assert "does not descend from the deployed" in event["data"]["problems"][0]
    assert lab.salt_run(["wgmesh.deployed_revision"]) == deployed

    # While upstream is still rewound, minion z sends `wgmesh/push`: acted on, the gate would run
    # (and refuse again). Then the operator's trusted push restores upstream; its gate run finds
    # the deployed revision unchanged. The reactor takes events in order, so by the time that run
    # returns, a run for z's event would have started and fired its events before it.
    waiter = article.wait_event("wgmesh/push|wgmesh/applied|wgmesh/gate/*|salt/run/*", timeout=120,
                                until=_on_push_found_nothing_new)
    jid = jid_now()
    lab.salt(["z", "event.send", "wgmesh/push", '{"new": "HEAD~1"}'])
    article.fetch_deployed()
    article.git("reset", "-q", "--hard", "FETCH_HEAD")
    article.git("push", "-q", "--force", "origin", "main")
    events = waiter.results()
    pushes = [ev["data"].get("id") for ev in events if ev["tag"] == "wgmesh/push"]
    assert pushes == ["z", None], events                  # z's event reached the master first
    gate_runs = [ev for ev in events if ev["tag"].endswith("/new") and ev["data"].get("fun") == "runner.wgmesh.on_push"]
    assert len(gate_runs) == 1, events                    # only the trusted push's
    assert not [ev for ev in events if ev["tag"].startswith(("wgmesh/gate/", "wgmesh/applied"))], events
    assert state_jobs_since(lab, jid) == set() and lab.salt_run(["wgmesh.deployed_revision"]) == deployed


def test_drift_is_shown_by_test_mode_and_corrected_and_reported_by_the_schedule(article):
    lab = article.lab
    stray = lab.genkey("z")[1]
    lab.exec("z", ["wg", "set", "wg0", "peer", stray, "allowed-ips", "10.70.99.99/32"])
    tunnel_file = {"networkd": "/etc/systemd/network/wg0.network", "wgquick": "/etc/wireguard/wg0.conf"}[
        article.profile.backend]
    conf = lab.host_path("a", tunnel_file)
    conf.write_text(conf.read_text() + "# edited by hand\n")
    lab.exec("c", ["iptables", "-F", "WGMESH-FORWARD"])
    lab.exec("a", ["sysctl", "-qw", "net.ipv4.ip_forward=0"])

    dry = lab.salt(["-L", "z,a,c", "state.apply", "wgmesh", "test=True"], timeout=120)
    pending = {minion: [s["__id__"] for s in states.values() if s["result"] is None] for minion, states in dry.items()}
    assert "wgmesh-tunnel" in pending["z"]
    assert f"wgmesh-file-{tunnel_file}" in pending["a"] and "wgmesh-ip-forward" in pending["a"]
    assert "wgmesh-firewall" in pending["c"]
    assert stray in lab.exec("z", ["wg", "show", "wg0", "peers"]).stdout       # test=True fixed nothing

    waiter = article.wait_event("wgmesh/drift/*", timeout=120, count=3)
    lab.salt(["-L", "z,a,c", "schedule.run_job", "wgmesh-converge"], timeout=60)
    reports = {ev["data"]["data"]["host"]: ev["data"]["data"] for ev in waiter.results()}  # minion events nest their data
    assert set(reports) == {"z", "a", "c"}
    assert stray in reports["z"]["drift"]["tunnel"]["peers"]["removed"]
    assert tunnel_file in reports["a"]["drift"]["files"]
    assert reports["a"]["drift"]["sysctl"] == {"net.ipv4.ip_forward": "0"}
    # iptables: a missing rule; firewalld: its kernel rules differ from its record (it reloads)
    assert "filter: -A WGMESH-FORWARD -j DROP" in json.dumps(reports["c"]["drift"]["firewall"])
    assert all(report["corrected"] for report in reports.values())

    assert stray not in lab.exec("z", ["wg", "show", "wg0", "peers"]).stdout
    assert "edited by hand" not in conf.read_text()
    assert lab.exec("a", ["sysctl", "-n", "net.ipv4.ip_forward"]).stdout.strip() == "1"
    assert "-j DROP" in lab.exec("c", ["iptables", "-S", "WGMESH-FORWARD"]).stdout
    # queue=True: wait for any scheduled run still in flight on these minions
    assert changes_in(lab.salt(["-L", "z,a,c", "state.apply", "wgmesh", "queue=True"], timeout=180)) == {}


def test_expiry_revokes_at_the_next_scheduled_run_without_a_push(article, baseline, g_entry, g_key):
    """g's access ends today; the hub's scheduled run two days later (faketime) drops g."""
    lab = article.lab
    onboard_g(article, baseline, g_entry, expires=datetime.date.today())
    assert g_key in lab.exec("z", ["wg", "show", "wg0", "peers"]).stdout
    later = lab.exec("z", ["faketime", "+2 days", "salt-call", "--out=json", "wgmesh.converge"], timeout=180)
    assert g_key not in lab.exec("z", ["wg", "show", "wg0", "peers"]).stdout, later.stdout
    assert not lab.ping("ne", VPN["z"], timeout=1)
    # on the real date g is still valid: the next ordinary run puts g back
    lab.exec("z", ["salt-call", "--out=json", "wgmesh.converge"], timeout=180)
    assert g_key in lab.exec("z", ["wg", "show", "wg0", "peers"]).stdout


def test_status_lists_handshakes_and_flags_expiring_developers(article, baseline, g_entry):
    """`wgmesh status` (CLI -> salt-run wgmesh.status -> the hub's live `wg show`)."""
    lab = article.lab
    onboard_g(article, baseline, g_entry, expires=datetime.date.today())
    rows = {row["name"]: row for row in lab.salt_run(["wgmesh.status", "stale_after=600", "soon_days=7"])}
    assert set(rows) == {"a", "c", "e", "f", "g"}
    assert all(rows[name]["handshake_age"] is not None and rows[name]["handshake_age"] < 600
               for name in ("a", "c", "e", "f", "g"))
    assert any(flag.startswith("expires in 0 day(s)") for flag in rows["g"]["flags"])   # g ends today
    assert rows["e"]["flags"] == [] and rows["a"]["flags"] == []
    table = lab.exec("master", ["wgmesh", "status", "--stale-after", "600", "--soon-days", "7"], check=False)
    assert table.returncode == 1, table.stderr                     # something is flagged
    assert any(line.startswith("g ") and "expires in 0 day(s)" in line for line in table.stdout.splitlines())


def test_a_minion_down_during_the_push_converges_when_it_is_back(article):
    lab = article.lab
    lab.stop_minion("c")
    try:
        developers = article.developers()
        developers["f"]["lan_access"] = ["a"]          # f loses LAN2: c's allow-list and the hub's change
        started = time.monotonic()
        event = push_developers(article, "f: LAN1 only", developers)
        took = time.monotonic() - started
        assert event["data"]["affected"] == ["z", "c"] and event["data"]["applied"] == {"z": True, "c": False}
        # reported pending after a short test.ping, not after a state run's timeout
        assert list(event["data"]["pending"]) == ["c"] and took < 25, (took, event)
        assert f"-s {VPN['f']}/32" in lab.exec("c", ["iptables", "-S", "WGMESH-FORWARD"]).stdout
    finally:
        lab.start_minion("c")                      # its start event makes the reactor apply wgmesh
    deadline = time.monotonic() + 90
    while f"-s {VPN['f']}/32" in lab.exec("c", ["iptables", "-S", "WGMESH-FORWARD"]).stdout:
        assert time.monotonic() < deadline, "c did not converge after it came back"
        time.sleep(1)
    assert not lab.ping("f", D, timeout=1) and lab.ping("f", B)
    developers["f"]["lan_access"] = "all"
    assert push_developers(article, "f: all LANs again", developers)["data"]["applied"] == {"z": True, "c": True}
    assert wait_ping(lab, "f", D)


def test_master_restart_loses_nothing_and_an_unreachable_remote_keeps_the_network(article):
    lab = article.lab
    deployed = lab.salt_run(["wgmesh.deployed_revision"])
    lab.stop_master()
    lab.start_master(file_roots=article.file_roots(), pillar_roots=[], extra_config=article.master_config())
    lab.wait_minions(["z", "a", "c", "r1"], timeout=120)
    assert lab.salt_run(["wgmesh.deployed_revision"]) == deployed
    # minions reconnecting to the restarted master may run the reactor's apply: queue behind it
    assert changes_in(lab.salt(["*", "state.apply", "wgmesh", "queue=True"], timeout=180)) == {}

    moved = article.upstream.with_name("pillar.git.away")
    article.upstream.rename(moved)
    try:
        waiter = article.wait_event("wgmesh/gate/unreachable", timeout=60)
        result = lab.salt_run(["wgmesh.on_push"], timeout=120)
        event = waiter.result()
    finally:
        moved.rename(article.upstream)
    assert result["result"] == "unreachable" and "cannot fetch" in result["error"]
    assert event["data"]["deployed"] == deployed
    assert lab.salt_run(["wgmesh.deployed_revision"]) == deployed
    assert all(want == got for _, _, want, got in article.matrix())
