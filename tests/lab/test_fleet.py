"""From the lab to a fleet (issue 11), live: adopting a hand-built hub, cleaning up a revoked
gateway, a hub endpoint change, a push racing a drift run, a gitfs-locked update.

Shares the `article` lab (real salt-master and minions, wireguard-go, systemd-networkd and
firewalld); each test leaves the pillar and the hosts as it found them (the pillar files are
pushed back).
"""
import json

import pytest
import yaml

from lab.article import D, VPN, jid_now, state_jobs_since
from wgmesh_core.source import dump_sls
from tests.lab.test_gitops import Pinger, wait_ping

NETWORK, DEVELOPERS = "wgmesh/network.sls", "wgmesh/developers.sls"
#: backend -> (the tunnel's key file, the file an admin building the host by hand puts the key in)
KEY_FILES = {"networkd": ("/etc/systemd/network/wg0.key", "/etc/systemd/network/wg0.netdev"),
             "wgquick": ("/etc/wireguard/wg0.key", "/etc/wireguard/wg0.conf")}


def hand_built(article, host) -> str:
    """The host's tunnel config as an admin following the article writes it: the private key
    inline (networkd: `PrivateKey=` in the .netdev; wg-quick: the whole `wg showconf`)."""
    lab = article.lab
    live_key = lab.exec(host, ["wg", "show", "wg0", "private-key"]).stdout.strip()
    if article.profile.backend == "networkd":
        netdev = lab.host_path(host, KEY_FILES["networkd"][1]).read_text()
        return "".join(f"PrivateKey={live_key}\n" if line.startswith("PrivateKeyFile=") else line
                       for line in netdev.splitlines(keepends=True))
    showconf = lab.exec(host, ["wg", "showconf", "wg0"]).stdout
    return showconf.replace("[Interface]\n", "[Interface]\nAddress = 10.70.0.1/16\nMTU = 1280\n", 1)


def edited(article, path, change):
    """{path: text} of pillar file ``path`` with ``change(its wgmesh dict)`` applied."""
    data = yaml.safe_load((article.work / path).read_text())
    change(data["wgmesh"])
    return {path: dump_sls(data)}


@pytest.fixture
def pillar_restored(article):
    """Pushes the pillar files back to what they were before the test, if it changed them."""
    saved = {path: (article.work / path).read_text() for path in (NETWORK, DEVELOPERS)}

    def restore():
        changed = {path: text for path, text in saved.items() if (article.work / path).read_text() != text}
        if changed:
            event = article.push_and_wait("back to the article's network", changed)
            assert event["tag"] == "wgmesh/applied", event
    yield restore
    restore()


def test_a_hand_built_hub_is_adopted_with_its_key_and_no_gateway_tunnel_drops(article):
    """z as the article builds it by hand: the private key inline in wg0.conf, no wgmesh key file,
    no wgmesh records. test=True does not raise; the apply keeps the live key (a and c, pinging
    the hub all along, lose nothing)."""
    lab = article.lab
    key_file, config_file = KEY_FILES[article.profile.backend]
    live_key = lab.exec("z", ["wg", "show", "wg0", "private-key"]).stdout.strip()
    lab.host_path("z", config_file).write_text(hand_built(article, "z"))
    lab.host_path("z", key_file).unlink()
    lab.exec("z", ["sh", "-c", "rm -f /var/cache/salt/minion/wgmesh/*.json"])
    watches = [Pinger(lab, gateway, VPN["z"], count=400) for gateway in ("a", "c")]
    for watch in watches:
        watch.start()
    dry = lab.salt(["z", "state.apply", "wgmesh", "test=True", "queue=True"], timeout=120)["z"]
    assert isinstance(dry, dict), dry
    dry = {s["__id__"]: s for s in dry.values()}
    assert all(s["result"] is not False for s in dry.values()), {k: s["comment"] for k, s in dry.items()}
    assert dry["wgmesh-private-key"]["changes"]["adopted_from"] == "the live interface wg0"
    assert not lab.host_path("z", key_file).exists()        # test=True wrote nothing
    applied = lab.salt(["z", "state.apply", "wgmesh", "queue=True"], timeout=180)["z"]
    applied = {s["__id__"]: s for s in applied.values()}
    assert all(s["result"] is True for s in applied.values()), {k: s["comment"] for k, s in applied.items()}
    assert "private_key" not in json.dumps(applied["wgmesh-tunnel"]["changes"])
    assert lab.host_path("z", key_file).read_text().strip() == live_key
    assert lab.exec("z", ["wg", "show", "wg0", "private-key"]).stdout.strip() == live_key
    assert live_key not in lab.host_path("z", config_file).read_text()
    assert [watch.lost() for watch in watches] == [0, 0]


def test_a_revoked_gateway_is_cleaned_up(article, pillar_restored):
    lab = article.lab
    key_file, config_file = KEY_FILES[article.profile.backend]
    backup = lab.host_path("c", key_file).read_text()   # to re-admit c with its pinned key

    def revoke_c(net):
        net["gateways"]["c"]["revoked"] = True
    event = article.push_and_wait("revoke gateway c", edited(article, NETWORK, revoke_c))
    assert event["tag"] == "wgmesh/applied", event
    data = event["data"]
    assert data["applied"] == {"z": True, "a": True}, data      # the hub drops c, a's allow-list loses c
    assert list(data["removed"]) == ["c"] and data["removed"]["c"]["interface"] == "wg0 deleted", data
    assert lab.exec("c", ["ip", "link", "show", "wg0"], check=False).returncode != 0
    assert "WGMESH" not in lab.exec("c", ["iptables-save"]).stdout
    assert not [path for path in (config_file, key_file, "/etc/sysctl.d/10-ip-forward.conf", "/etc/firewalld/direct.xml")
                if lab.host_path("c", path).exists()]
    assert "wgmesh-converge" not in json.dumps(lab.salt(["c", "schedule.list", "show_all=True"]))
    assert "192.168.200.0/24" not in lab.exec("z", ["ip", "route", "show", "dev", "wg0"]).stdout
    assert not lab.ping("e", D, timeout=1)

    lab.host_path("c", key_file).write_text(backup)
    lab.host_path("c", key_file).chmod(0o600)
    pillar_restored()
    assert wait_ping(lab, "e", D, timeout=60)


def test_a_hub_endpoint_change_by_name_reaches_the_gateways_live(article, pillar_restored):
    """The hub moves to a DNS name that resolves (on the gateways) to a second address of z."""
    lab = article.lab
    hosts = {gateway: lab.host_path(gateway, "/etc/hosts").read_text() for gateway in ("a", "c")}
    lab.exec("z", ["ip", "addr", "add", "203.0.113.2/24", "dev", "eth0"])
    # WireGuard roams a peer's endpoint to the source of its latest packet: a packet z sends a
    # gateway from its old address (the source it still keeps for the gateway) after the gateway
    # took the new one would take the gateway back. While an address is being left, z sends
    # nothing from it (the gateways' next packets to the new one make z answer from there).
    def sent_from(address):
        return ["OUTPUT", "-s", address, "-p", "udp", "--sport", "51820", "-j", "DROP"]
    lab.exec("z", ["iptables", "-I", *sent_from("203.0.113.1")])
    try:
        for gateway, text in hosts.items():
            lab.host_path(gateway, "/etc/hosts").write_text(text + "203.0.113.2 hub.lab.test\n")

        def move_hub(net):
            net["hub"]["endpoint"] = "hub.lab.test:51820"
        event = article.push_and_wait("hub endpoint by name", edited(article, NETWORK, move_hub))
        assert event["data"]["applied"] == {"a": True, "c": True}, event
        assert any(action.startswith("developer e") and "re-import" in action
                   for action in event["data"]["manual_actions"]), event
        for gateway in ("a", "c"):
            assert lab.exec(gateway, ["wg", "show", "wg0", "endpoints"]).stdout.split()[1] == "203.0.113.2:51820"
            assert wait_ping(lab, gateway, VPN["z"])
        lab.exec("z", ["iptables", "-D", *sent_from("203.0.113.1")])
        lab.exec("z", ["iptables", "-I", *sent_from("203.0.113.2")])
        pillar_restored()
        for gateway in ("a", "c"):
            assert lab.exec(gateway, ["wg", "show", "wg0", "endpoints"]).stdout.split()[1] == "203.0.113.1:51820"
    finally:
        for address in ("203.0.113.1", "203.0.113.2"):
            lab.exec("z", ["iptables", "-D", *sent_from(address)], check=False)
        pillar_restored()
        for gateway, text in hosts.items():
            lab.host_path(gateway, "/etc/hosts").write_text(text)
        lab.exec("z", ["ip", "addr", "del", "203.0.113.2/24", "dev", "eth0"], check=False)
    assert all(wait_ping(lab, gateway, VPN["z"]) for gateway in ("a", "c"))


def test_a_push_racing_a_drift_run_delays_rather_than_fails(article, pillar_restored):
    lab = article.lab
    stray = lab.genkey("z")[1]
    lab.exec("z", ["wg", "set", "wg0", "peer", stray, "allowed-ips", "10.70.99.98/32"])
    developers = article.developers()
    developers["g"] = {"address": "10.70.0.6", "public_key": lab.genkey("master")[1]}
    article.commit("add g", article.developers_file(developers))
    drift = article.wait_event("wgmesh/drift/z", timeout=240)
    applied = article.wait_event("wgmesh/applied|wgmesh/gate/*", timeout=240)
    lab.salt(["z", "schedule.run_job", "wgmesh-converge"], timeout=60)     # starts the scheduled run
    article.git("push", "origin", "main")
    event, report = applied.result(), drift.result()["data"]["data"]
    assert event["tag"] == "wgmesh/applied" and event["data"]["applied"] == {"z": True}, event
    assert report["corrected"] is True and stray in report["drift"]["tunnel"]["peers"]["removed"], report
    peers = lab.exec("z", ["wg", "show", "wg0", "peers"]).stdout
    assert developers["g"]["public_key"] in peers and stray not in peers


def test_a_push_meeting_git_pillars_update_lock_is_deployed_after_a_retry(article, pillar_restored):
    """git_pillar's update lock is held when a push arrives (by a live process, pid 1, as by the
    master's maintenance loop fetching): the gate's git_pillar.update fails, and Salt's runner
    then clears the lock (salt/runners/git_pillar.py); the gate retries and the push is deployed
    and applied. A lock that stays 30 s fails the push, the deployed ref put back (unit test:
    tests/unit/test_runner.py)."""
    lab = article.lab

    def retries():
        return int(lab.exec("master", ["grep", "-c", "git_pillar.update failed for .*; retrying",
                                       "/var/log/salt/master"], check=False).stdout or 0)
    before = retries()
    deployed = lab.salt_run(["wgmesh.deployed_revision"])
    locks = lab.exec("master", ["sh", "-c", "for d in /var/cache/salt/master/git_pillar/work/*/_; do "
                                "printf '1\\n' > $d/update.lk; echo $d; done"]).stdout.split()
    assert locks, "no git_pillar working directory on the master"
    developers = article.developers()
    developers["f"]["lan_access"] = ["a"]
    event = article.push_and_wait("f: LAN1 only", article.developers_file(developers))
    # f leaves LAN2: c's allow-list and the hub's forwarding rules change
    assert event["tag"] == "wgmesh/applied" and event["data"]["applied"] == {"z": True, "c": True}, event
    assert lab.salt_run(["wgmesh.deployed_revision"]) == event["data"]["revision"] != deployed
    assert retries() > before, "the gate met no lock: the test did not test the retry"
