"""The live sync: from whatever a host's interface holds, `wg set` (removals) and one `wg
addconf` (the added and updated peers) reach the plan.

The interface is modelled from `wg show dump` lines: the ``wg set`` arguments and the addconf
text are applied to it the way wg(8) applies them (a stand-in for the kernel/wireguard-go,
which cannot run here unprivileged; tests/lab/test_wireguard.py runs the same on wireguard-go),
then ``peer_diff`` must find nothing left to do.
"""
from __future__ import annotations

import base64

from hypothesis import given

from wgmesh_core.live import LiveInterface, changed_peers, parse_wg_dump, peer_diff, wg_remove_args
from wgmesh_core.plan import host_config, managed_hosts, preshared_keys_for
from wgmesh_core.render import wg_addconf

from tests.conftest import TODAY
from tests.core.conftest import addconf_applied

from .strategies import accepted, network_pairs

SECRET = bytes(range(32))
PRIVATE = base64.b64encode(bytes(32)).decode()
OWN_PUBLIC = "O" * 43 + "="


def plan(spec, host):
    keys = {h: base64.b64encode(bytes(30) + bytes([1, i])).decode() for i, h in enumerate(managed_hosts(spec))}
    keys[host] = OWN_PUBLIC
    return host_config(spec, host, TODAY, keys, preshared_keys_for(spec, host, SECRET, spec.preshared_key_epoch))


def live_from(config) -> LiveInterface:
    """The interface as `wg show dump` would list it once ``config`` was applied (some handshakes)."""
    lines = [[PRIVATE, OWN_PUBLIC, str(config.listen_port), "off"]]
    lines += [[p.public_key, p.preshared_key or "(none)", p.endpoint or "(none)", ",".join(p.allowed_ips) or "(none)",
               "1718000000", "10", "20", str(p.keepalive or "off")] for p in config.peers]
    return parse_wg_dump("\n".join("\t".join(cols) for cols in lines))


def removed_by(live: LiveInterface, args: list) -> LiveInterface:
    """What `wg set IFACE peer KEY remove ...` leaves of the interface's peers."""
    assert args[:2] == ["set", "wg0"] and len(args) % 3 == 2, args
    triples = [args[n:n + 3] for n in range(2, len(args), 3)]
    assert all(word == "peer" and action == "remove" for word, _, action in triples), args
    gone = {key for _, key, _ in triples}
    return LiveInterface(live.private_key, live.public_key, live.listen_port,
                         {key: peer for key, peer in live.peers.items() if key not in gone})


@given(network_pairs())
def test_wg_set_and_wg_addconf_take_any_host_from_the_old_plan_to_the_new(pair):
    old, new = accepted(pair[0]), accepted(pair[1])
    for host in managed_hosts(new):
        target = plan(new, host)
        if target.role not in ("hub", "gateway"):
            continue
        before = plan(old, host) if host in managed_hosts(old) and plan(old, host).role == target.role else None
        live = live_from(before) if before else parse_wg_dump(f"{PRIVATE}\t{OWN_PUBLIC}\t{target.listen_port}\toff")
        live.listen_port = target.listen_port      # a port change goes through syncconf
        diff = peer_diff(target, live, OWN_PUBLIC)
        after = removed_by(live, wg_remove_args(target, diff.removed))
        after.peers = addconf_applied(after.peers, wg_addconf(changed_peers(target, diff)))
        assert not peer_diff(target, after, OWN_PUBLIC), (host, peer_diff(target, after, OWN_PUBLIC))
        # and peers the plan did not touch keep their live state (sessions, counters)
        for key in set(live.peers) & set(after.peers):
            if key not in {p.public_key for p in target.peers if p.name in diff.added + diff.updated}:
                assert after.peers[key] == live.peers[key]
