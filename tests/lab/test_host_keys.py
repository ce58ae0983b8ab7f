"""Host keys pinned on the master, and client configs kept out of the job cache, live.

Runs on the shared article network (the `article` fixture), in any order with
test_article.py and test_gitops.py: each test leaves every tunnel working.
"""
import json

from lab.article import VPN
from lab.saltctl import MASTER_USER

from .test_gitops import wait_ping


def pins(lab) -> dict:
    return json.loads(lab.exec("master", ["cat", "/etc/salt/wgmesh/host_keys.json"]).stdout)


def live_peers(lab, host) -> set:
    return set(lab.exec(host, ["wg", "show", "wg0", "peers"]).stdout.split())


def test_client_config_is_written_0600_on_the_master_and_not_kept_in_the_job_cache(article):
    lab = article.lab
    control = "wgmesh-job-cache-control-7f3a"
    lab.salt_run(["test.arg", control])                     # the job cache does keep runner args and returns
    assert lab.exec("master", ["grep", "-rl", control, "/var/cache/salt/master/jobs"], check=False).stdout
    written = lab.salt_run(["wgmesh.client_config", "f"])
    mode = lab.exec("master", ["stat", "-c", "%a %U", written["path"]]).stdout.split()
    assert mode == ["600", MASTER_USER]              # written by the master's user
    text = lab.exec("master", ["cat", written["path"]]).stdout
    psk = next(line.split(" = ", 1)[1] for line in text.splitlines() if line.startswith("PresharedKey = "))
    found = lab.exec("master", ["grep", "-rlF", psk, "/var/cache/salt/master/jobs"], check=False)
    assert found.returncode == 1 and found.stdout == "", "the preshared key is in the master's job cache"
    assert psk not in json.dumps(written)


def test_a_changed_gateway_key_is_left_out_until_accepted_and_revocation_still_reaches_the_hub(article):
    """c makes a new key: the master refuses it (wgmesh/key/changed), the hub leaves c out with
    the reason and its apply succeeds; a revocation pushed meanwhile still reaches the hub;
    `salt-run wgmesh.accept_key c key=...` brings c back."""
    lab = article.lab
    old = pins(lab)["pinned"]["c"]
    assert old in live_peers(lab, "z")
    # c's admin re-keys it (removing the file alone would not: the live interface's key is adopted)
    key_file = {"networkd": "/etc/systemd/network/wg0.key", "wgquick": "/etc/wireguard/wg0.key"}[article.profile.backend]
    lab.sh("c", f"umask 077; wg genkey > {key_file}")
    lab.salt(["c", "state.apply", "wgmesh", "queue=True"], timeout=180)     # new key, published to the mine
    new = lab.exec("c", ["wg", "show", "wg0", "public-key"]).stdout.strip()
    assert new != old

    waiter = article.wait_event("wgmesh/key/changed", timeout=120)
    hub = lab.salt(["z", "state.apply", "wgmesh", "queue=True"], timeout=180)["z"]
    event = waiter.result()["data"]
    assert event["host"] == "c" and event["pinned"] == old and new in event["reason"]
    tunnel = next(state for state in hub.values() if state["__id__"] == "wgmesh-tunnel")
    assert tunnel["result"] is True and all(state["result"] is True for state in hub.values())
    assert f"left out c: it published the public key {new}, not its pinned key {old}" in tunnel["comment"]
    assert old not in live_peers(lab, "z") and new not in live_peers(lab, "z")
    assert pins(lab)["pinned"]["c"] == old

    # a revocation while c is left out: e is cut off at the hub all the same
    developers = article.developers()
    e_key = developers["e"]["public_key"]
    developers["e"]["revoked"] = True
    assert article.push_and_wait("revoke e while c is left out", article.developers_file(developers))["tag"] \
        == "wgmesh/applied"
    assert e_key not in live_peers(lab, "z")

    refused = lab.salt_raw(["wgmesh.accept_key", "c", f"key={old}"], bin="salt-run")
    assert "not the key given" in refused.stdout + refused.stderr and pins(lab)["pinned"]["c"] == old
    accepted = lab.salt_run(["wgmesh.accept_key", "c", f"key={new}"], timeout=240)
    assert accepted["previous"] == old and accepted["applied"] == {"z": True, "c": True}
    assert pins(lab)["pinned"]["c"] == new and "c" not in pins(lab)["refused"]
    assert new in live_peers(lab, "z") and wait_ping(lab, "c", VPN["z"]) and wait_ping(lab, "c", VPN["a"])

    developers["e"]["revoked"] = False
    assert article.push_and_wait("reinstate e", article.developers_file(developers))["tag"] == "wgmesh/applied"
    assert wait_ping(lab, "e", VPN["z"])
