"""The gate's fast path (``wgmesh.update_live``) on real daemons: after a pillar change that
adds, revokes and re-keys developers, the live tunnel and firewall it leaves are exactly what a
full ``state.apply wgmesh`` leaves, and the state run that follows finds nothing live to change
(only the files). salt-call --local in the host's own namespaces; wireguard-go, iptables, and
the real firewalld / systemd-networkd (with the lab's stand-in for the WireGuard kernel module)."""
import copy
import shlex

import pytest
import yaml

from .conftest import state_results
from .test_local_apply import keypair, network_pillar, pillar_for  # noqa: F401  (a fixture)

# the live state a full apply is compared with: peers (key, PSK, endpoint, allowed IPs,
# keepalive; not handshake times or counters; sorted: wg lists peers in the order they came),
# addresses, routes, both firewalls' kernel rules
LIVE = ("wg show wg0 dump | cut -f1,2,3,4,8 | sort; ip -4 -o addr show dev wg0 | cut -d' ' -f2-7; "
        "ip -4 route show dev wg0; iptables -S; iptables -t nat -S")
FIREWALLD_LIVE = LIVE + "; firewall-cmd --direct --get-all-rules | sort"


def changed_pillar(pillar):
    """g added (with LAN access to c), f revoked, e re-keyed."""
    new = copy.deepcopy(pillar)
    developers = new["wgmesh"]["developers"]
    developers["g"] = {"address": "10.70.0.9", "public_key": keypair()[1], "lan_access": ["c"]}
    developers["f"]["revoked"] = True
    developers["e"]["public_key"] = keypair()[1]
    new["wgmesh_psk"]["g"] = keypair()[0]
    return new


@pytest.mark.parametrize("host_id, backend, firewall, peers_first", [
    ("z", "networkd", "iptables", False), ("c", "wgquick", "firewalld", False),
    ("z", "wgquick", "firewalld", True)])     # the order the gate picks for the hub here
def test_update_live_leaves_what_a_full_apply_leaves(local_host, network_pillar, host_id, backend, firewall,
                                                     peers_first):
    pillar = pillar_for(network_pillar, backend=backend, firewall=firewall)
    after = changed_pillar(pillar)
    host = local_host(host_id, pillar)
    pillar_file = host.dir / "pillar" / "net.sls"
    (host.dir / "pillar" / "after.sls").write_text(yaml.safe_dump(after))
    live = FIREWALLD_LIVE if firewall == "firewalld" else LIVE
    # every firewall-cmd process started is logged: the fast path asks firewalld over D-Bus instead
    spy, started = host.dir / "spy", host.dir / "firewall-cmd-started"
    spy.mkdir()
    (spy / "firewall-cmd").write_text(f'#!/bin/sh\necho "$*" >> {started}\nexec /usr/bin/firewall-cmd "$@"\n')
    (spy / "firewall-cmd").chmod(0o755)
    (_, first, before, _, _, fast, processes, live_fast, full, live_full) = host.run(
        host.salt_call("saltutil.sync_all"), host.salt_call("state.apply wgmesh"), live,
        f"cp {shlex.quote(str(host.dir / 'pillar' / 'after.sls'))} {shlex.quote(str(pillar_file))}",
        f"rm -f {started}; touch {started}", host.salt_call(f"wgmesh.update_live peers_first={peers_first}"),
        f"cat {started}", live,
        host.salt_call("state.apply wgmesh"), live, extra_path=f"{spy}:",
        firewalld="nftables" if firewall == "firewalld" else "", networkd=backend == "networkd")
    assert processes == "", "the fast path started firewall-cmd processes instead of asking firewalld over D-Bus"
    assert all(r["result"] is True for r in state_results(first).values())
    assert live_fast == live_full, "the fast path left another live state than the full apply"
    assert live_fast != before
    changes = yaml.safe_load(fast)["local"]
    assert list(changes["timings"])[2:] == (["tunnel", "firewall"] if peers_first else ["firewall", "tunnel"])
    old_e, new_e = pillar["wgmesh"]["developers"]["e"]["public_key"], after["wgmesh"]["developers"]["e"]["public_key"]
    g = after["wgmesh"]["developers"]["g"]["public_key"]
    if host_id == "z":
        peers = changes["tunnel"]["peers"]
        assert sorted(peers["added"]) == ["e", "g"] and sorted(peers["removed"]) == sorted(
            [old_e, pillar["wgmesh"]["developers"]["f"]["public_key"]])
        assert f"{g}\t{after['wgmesh_psk']['g']}" in live_fast and old_e not in live_fast and new_e in live_fast
    else:   # a gateway's only peer is the hub: its allow-list changes
        assert "peers" not in changes["tunnel"] and changes["firewall"]
        assert "10.70.0.9/32" in live_fast and "10.70.0.5/32" not in live_fast
    results = state_results(full)
    assert results["wgmesh-tunnel"]["changes"] == {} and results["wgmesh-firewall"]["changes"] == {}, \
        "the state run after the fast path changed the live tunnel or firewall again"
    assert any(r["changes"] for key, r in results.items() if key.startswith("wgmesh-file-"))


def test_a_sealed_hand_off_sets_what_a_full_apply_sets(local_host, network_pillar, tmp_path):
    """The gate's hand-off (wgmesh_core.handoff) of the change above, planned for hub z as the
    master plans it (its host keys and preshared keys) and sealed for z's Salt key: one
    `wgmesh.set_peers` leaves the peers a full `state.apply wgmesh` leaves (real wireguard-go),
    and the state run after it changes no peer."""
    import datetime
    import json

    import salt.crypt

    from wgmesh_core import handoff, load_network
    from wgmesh_core.diff import StandInConfigs, plan_change
    from wgmesh_salt.sealed import seal

    pillar = pillar_for(network_pillar, backend="wgquick", firewall="iptables")
    after = changed_pillar(pillar)
    host = local_host("z", pillar)
    today = datetime.date.today()
    old, new = load_network(pillar["wgmesh"]), load_network(after["wgmesh"])
    configs = (StandInConfigs(old, today), StandInConfigs(new, today))
    hub = plan_change(old, new, today, configs, diffs=False).hosts[0]
    planned = handoff.hub_handoff((hub.peers_added, hub.peers_removed, hub.peers_changed), configs[0]["z"],
                                  new, today, after["wgmesh_host_keys"], after["wgmesh_psk"].get)
    assert sorted(p.name for p in planned.peers) == ["e", "g"] and len(planned.removed) == 2
    private, public = salt.crypt.gen_keys(2048)
    pki = host.dir / "salt-root" / "etc" / "salt" / "pki" / "minion"      # where salt-call keeps z's key
    pki.mkdir(parents=True)
    (pki / "minion.pem").write_text(private)
    (tmp_path / "master" / "minions").mkdir(parents=True)
    (tmp_path / "master" / "minions" / "z").write_text(public)
    sealed = host.dir / "sealed.json"
    sealed.write_text(json.dumps(seal({"pki_dir": str(tmp_path / "master")}, "z", planned.as_document())))
    pillar_file = host.dir / "pillar" / "net.sls"
    (host.dir / "pillar" / "after.sls").write_text(yaml.safe_dump(after))
    peers = "wg show wg0 dump | tail -n +2 | cut -f1,2,4,8 | sort"
    (_, first, before, _, handed, live_handed, full, live_full) = host.run(
        host.salt_call("saltutil.sync_all"), host.salt_call("state.apply wgmesh"), peers,
        f"cp {shlex.quote(str(host.dir / 'pillar' / 'after.sls'))} {shlex.quote(str(pillar_file))}",
        host.salt_call(f"wgmesh.set_peers \"$(cat {shlex.quote(str(sealed))})\""), peers,
        host.salt_call("state.apply wgmesh"), peers)
    assert all(r["result"] is True for r in state_results(first).values())
    result = json.loads(handed)["local"]
    assert sorted(result["set"]) == ["e", "g"] and sorted(result["removed"]) == sorted(planned.removed)
    assert live_handed == live_full != before, "the hand-off left other peers than the full apply"
    assert after["wgmesh_psk"]["g"] in live_handed
    assert state_results(full)["wgmesh-tunnel"]["changes"] == {}, "the state run changed the peers again"
