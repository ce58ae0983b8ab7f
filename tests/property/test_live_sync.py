"""The live sync: from whatever a host's interface holds, one `wg set` reaches the plan.

The interface is modelled from `wg show dump` lines: ``wg set`` arguments are applied to it
the way wg(8) applies them (a stand-in for the kernel/wireguard-go, which cannot run here
unprivileged), then ``peer_diff`` must find nothing left to do.
"""
from __future__ import annotations

import base64

from hypothesis import given
from hypothesis import strategies as st

from wgmesh_core.live import LiveInterface, LivePeer, parse_wg_dump, peer_diff, wg_set_args
from wgmesh_core.plan import host_config, managed_hosts, preshared_keys_for

from tests.conftest import TODAY

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


def apply_wg_set(live: LiveInterface, args: list, psk_files: dict) -> LiveInterface:
    """What `wg set IFACE peer KEY ...` does to the interface's peers (wg(8) semantics)."""
    assert args[0] == "set"
    peers = dict(live.peers)
    words = args[2:]
    while words:
        assert words[0] == "peer", words
        key, words = words[1], words[2:]
        if words[:1] == ["remove"]:
            peers.pop(key, None)
            words = words[1:]
            continue
        old = peers.get(key) or LivePeer(key, None, None, frozenset(), 0, 0, 0, 0)
        fields = dict(preshared_key=old.preshared_key, endpoint=old.endpoint, allowed_ips=old.allowed_ips,
                      keepalive=old.keepalive)
        while words and words[0] != "peer":
            option, value, words = words[0], words[1], words[2:]
            if option == "allowed-ips":
                fields["allowed_ips"] = frozenset(value.split(",")) if value else frozenset()
            elif option == "persistent-keepalive":
                fields["keepalive"] = 0 if value == "off" else int(value)
            elif option == "preshared-key":
                fields["preshared_key"] = None if value == "/dev/null" else psk_files[value]
            elif option == "endpoint":
                fields["endpoint"] = value
            else:
                raise AssertionError(f"unexpected wg set option {option}")
        peers[key] = LivePeer(key, fields["preshared_key"], fields["endpoint"], fields["allowed_ips"],
                              old.latest_handshake, old.rx_bytes, old.tx_bytes, fields["keepalive"])
    return LiveInterface(live.private_key, live.public_key, live.listen_port, peers)


@given(network_pairs(), st.sampled_from([1, 2, 3, 1000]))
def test_wg_set_takes_any_host_from_the_old_plan_to_the_new_in_batches_of_any_size(pair, batch):
    old, new = accepted(pair[0]), accepted(pair[1])
    for host in managed_hosts(new):
        target = plan(new, host)
        if target.role not in ("hub", "gateway"):
            continue
        before = plan(old, host) if host in managed_hosts(old) and plan(old, host).role == target.role else None
        live = live_from(before) if before else parse_wg_dump(f"{PRIVATE}\t{OWN_PUBLIC}\t{target.listen_port}\toff")
        live.listen_port = target.listen_port      # a port change goes through syncconf, not wg set
        diff = peer_diff(target, live, OWN_PUBLIC)
        psk_files = {}

        def psk_file(peer):
            path = f"/run/psk-{len(psk_files)}"
            psk_files[path] = peer.preshared_key
            return path
        after = live
        for part in diff.batches(batch):     # one `wg set` per part, in turn
            assert 0 < len(part.removed) + len(part.added) + len(part.updated) <= batch
            after = apply_wg_set(after, wg_set_args(target, part, psk_file), psk_files)
        assert not peer_diff(target, after, OWN_PUBLIC), (host, peer_diff(target, after, OWN_PUBLIC))
        # and peers the plan did not touch keep their live state (sessions, counters)
        for key in set(live.peers) & set(after.peers):
            if key not in {p.public_key for p in target.peers if p.name in diff.added + diff.updated}:
                assert after.peers[key] == live.peers[key]
