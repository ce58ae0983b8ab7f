"""live.py: parsing `wg show <if> dump`, peer_diff and the `wg set` arguments."""
from __future__ import annotations

import copy

import pytest

from wgmesh_core.live import parse_wg_dump, peer_diff
from wgmesh_core.plan import host_config
from wgmesh_core.validate import load_network

from . import article_texts as art
from .conftest import TODAY

K = art.PUBLIC_KEYS
P = art.PSKS
FOREIGN = "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg="

# `wg show wg0 dump` on the hub z, tab separated. First line: private-key,
# public-key, listen-port, fwmark. Peer lines: public-key, preshared-key,
# endpoint, allowed-ips, latest-handshake, transfer-rx, transfer-tx,
# persistent-keepalive.
HUB_DUMP = "\n".join("\t".join(cols) for cols in [
    [art.PRIVATE_KEYS["z"], K["z"], "51820", "off"],
    # a: exactly as planned
    [K["a"], P["a"], "113.88.12.7:51820", "10.70.0.2/32,192.168.201.0/24", "1718000000", "123456", "654321", "15"],
    # c: its LAN is missing from the allowed IPs
    [K["c"], P["c"], "123.112.4.9:38211", "10.70.0.3/32", "1718000050", "2048", "4096", "15"],
    # e: no preshared key, never seen
    [K["e"], "(none)", "(none)", "10.70.0.4/32", "0", "0", "0", "15"],
    # a peer the plan does not know (revoked or added by hand)
    [FOREIGN, "(none)", "(none)", "(none)", "0", "0", "0", "off"],
]) + "\n"
# f is absent: it must be added.


def test_parse_interface_line():
    live = parse_wg_dump(HUB_DUMP)
    assert live.private_key == art.PRIVATE_KEYS["z"]
    assert live.public_key == K["z"]
    assert live.listen_port == 51820
    assert set(live.peers) == {K["a"], K["c"], K["e"], FOREIGN}


def test_parse_peer_lines():
    live = parse_wg_dump(HUB_DUMP)
    a = live.peers[K["a"]]
    assert a.public_key == K["a"] and a.preshared_key == P["a"]
    assert a.endpoint == "113.88.12.7:51820"
    assert a.allowed_ips == frozenset({"10.70.0.2/32", "192.168.201.0/24"})
    assert (a.latest_handshake, a.rx_bytes, a.tx_bytes, a.keepalive) == (1718000000, 123456, 654321, 15)
    e = live.peers[K["e"]]
    assert (e.preshared_key, e.endpoint, e.latest_handshake) == (None, None, 0)
    foreign = live.peers[FOREIGN]
    assert foreign.allowed_ips == frozenset() and foreign.keepalive == 0


def test_parse_empty_dump():
    with pytest.raises(ValueError, match="^empty wg dump$"):
        parse_wg_dump("\n")


@pytest.mark.parametrize("text, line", [
    ("PRIV\tPUB\n", "^line 1 is not an interface's .*: 2 fields$"),
    ("PRIV\tPUB\tport\toff\n", "^line 1 is not an interface's"),
    ("PRIV\tPUB\t51820\toff\nKEY\t(none)\t(none)\t10.70.0.5/32\t0\n",
     "^line 2 is not a peer's 8 fields: 5 fields, or a count that is no number$"),
    ("PRIV\tPUB\t51820\toff\nKEY\t(none)\t(none)\t10.70.0.5/32\t0\t0\tmany\toff\n", "^line 2 is not a peer's"),
])
def test_a_cut_or_garbled_dump_names_its_line(text, line):
    with pytest.raises(ValueError, match=line):
        parse_wg_dump(text)


def test_a_peer_line_with_more_fields_than_wg_writes_today_is_read_by_its_first_eight():
    """A later wg(8) may add columns at the end: the eight known ones are still read."""
    live = parse_wg_dump("PRIV\tPUB\t51820\toff\nKEY\tPSK\t(none)\t10.70.0.5/32\t7\t1\t2\toff\tnew\n")
    assert live.peers["KEY"] == ("KEY", "PSK", None, frozenset({"10.70.0.5/32"}), 7, 1, 2, 0)


def test_a_missing_peer_does_not_hide_changes_of_the_peers_after_it(spec):
    """The first planned peer (a) is missing live and a later one (c) differs: both are reported."""
    config = host_config(spec, "z", TODAY, K, P)
    live = parse_wg_dump(in_sync_dump(config))
    del live.peers[K["a"]]
    live.peers[K["c"]] = live.peers[K["c"]]._replace(keepalive=25)
    diff = peer_diff(config, live)
    assert (diff.added, diff.updated) == (["a"], ["c"])


@pytest.mark.parametrize("field", ["added", "removed", "updated", "interface"])
def test_any_one_kind_of_difference_makes_a_diff(field):
    from wgmesh_core.live import PeerDiff
    assert bool(PeerDiff(**{field: ["x"]})) is True
    assert bool(PeerDiff()) is False


def test_peer_diff_on_hub(spec):
    config = host_config(spec, "z", TODAY, K, P)
    diff = peer_diff(config, parse_wg_dump(HUB_DUMP), private_key_public=K["z"])
    assert diff.added == ["f"]
    assert diff.removed == [FOREIGN]
    assert diff.updated == ["c", "e"]     # in plan order; c: allowed IPs, e: preshared key
    assert diff.interface == []
    assert bool(diff)
    assert diff.as_dict() == {"added": ["f"], "removed": [FOREIGN], "updated": ["c", "e"]}


def in_sync_dump(config, port=None):
    lines = [[art.PRIVATE_KEYS["z"], K["z"], str(port or config.listen_port), "off"]]
    for p in config.peers:
        lines.append([p.public_key, p.preshared_key or "(none)", p.endpoint or "(none)",
                      ",".join(reversed(p.allowed_ips)), "1718000000", "1", "2", str(p.keepalive or "off")])
    return "\n".join("\t".join(cols) for cols in lines)


def test_peer_diff_in_sync_is_empty(spec):
    config = host_config(spec, "z", TODAY, K, P)
    diff = peer_diff(config, parse_wg_dump(in_sync_dump(config)), private_key_public=K["z"])
    assert not diff
    assert diff.as_dict() == {}


def test_peer_diff_interface_changes(spec):
    config = host_config(spec, "z", TODAY, K, P)
    diff = peer_diff(config, parse_wg_dump(in_sync_dump(config, port=51821)), private_key_public=K["a"])
    assert diff.interface == ["listen_port", "private_key"]
    assert (diff.added, diff.removed, diff.updated) == ([], [], [])


def test_peer_diff_keepalive_change(data):
    data["hub"]["keepalive"] = 25
    config = host_config(load_network(data), "z", TODAY, K, P)
    live = parse_wg_dump(in_sync_dump(config).replace("\t25", "\t15"))
    assert sorted(peer_diff(config, live).updated) == ["a", "c", "e", "f"]


def gateway_dump(endpoint):
    return (f"{art.PRIVATE_KEYS['a']}\t{K['a']}\t51820\toff\n"
            f"{K['z']}\t{P['a']}\t{endpoint}\t10.70.0.0/16\t1718000000\t10\t20\t15\n")


def test_gateway_endpoint_change_is_an_update(spec):
    config = host_config(spec, "a", TODAY, K, P)
    assert not peer_diff(config, parse_wg_dump(gateway_dump("39.101.166.124:51820")))
    assert peer_diff(config, parse_wg_dump(gateway_dump("39.101.166.125:51820"))).updated == ["z"]


def test_gateway_hostname_endpoint_is_not_compared(data):
    # A host name resolves to some address: the live endpoint cannot be compared with it.
    data["hub"]["endpoint"] = "vpn.example.com:51820"
    config = host_config(load_network(data), "a", TODAY, K, P)
    assert not peer_diff(config, parse_wg_dump(gateway_dump("39.101.166.124:51820")))


def test_revoked_developer_shows_as_removed(data):
    data["developers"]["e"]["revoked"] = True
    before = copy.deepcopy(data)
    before["developers"]["e"]["revoked"] = False
    full = host_config(load_network(before), "z", TODAY, K, P)
    config = host_config(load_network(data), "z", TODAY, K, P)
    diff = peer_diff(config, parse_wg_dump(in_sync_dump(full)))
    assert diff.removed == [K["e"]]
    assert (diff.added, diff.updated) == ([], [])


def test_a_live_change_names_only_the_changed_peers_and_clears_what_a_peer_no_longer_has():
    """Removals are `wg set ... remove`; the added and updated peers are one `wg addconf` text
    whose [Peer] always writes the preshared key (the zero key: none) and the keepalive (off),
    since addconf leaves what a section leaves out as it was."""
    from wgmesh_core.live import PeerDiff, changed_peers, wg_remove_args
    from wgmesh_core.plan import HostConfig, Peer
    from wgmesh_core.render import wg_addconf
    config = HostConfig(host="z", role="hub", interface="wg0", listen_port=51820, peers=[
        Peer("a", "gateway", "A" * 43 + "=", ("10.70.0.2/32", "192.168.201.0/24"), keepalive=15, preshared_key="P" * 43 + "=",
             endpoint="203.0.113.1:51820"),
        Peer("e", "developer", "E" * 43 + "=", ("10.70.0.4/32",), keepalive=0),
        Peer("f", "developer", "F" * 43 + "=", ("10.70.0.5/32",), keepalive=15)])
    diff = PeerDiff(added=["a"], updated=["e"], removed=["R" * 43 + "=", "S" * 43 + "="])
    assert wg_remove_args(config, diff.removed) == ["set", "wg0", "peer", "R" * 43 + "=", "remove",
                                                    "peer", "S" * 43 + "=", "remove"]
    assert [p.name for p in changed_peers(config, diff)] == ["a", "e"]
    assert wg_addconf(changed_peers(config, diff)) == (
        "[Peer]\nPublicKey = " + "A" * 43 + "=\nPresharedKey = " + "P" * 43 + "=\n"
        "Endpoint = 203.0.113.1:51820\nAllowedIPs = 10.70.0.2/32, 192.168.201.0/24\nPersistentKeepalive = 15\n\n"
        "[Peer]\nPublicKey = " + "E" * 43 + "=\nPresharedKey = " + "A" * 43 + "=\n"
        "AllowedIPs = 10.70.0.4/32\nPersistentKeepalive = off\n\n")
    assert changed_peers(config, PeerDiff(removed=["R" * 43 + "="])) == []


def test_a_value_with_a_line_break_never_reaches_wg_addconf():
    """wg reads the text line by line: an endpoint ending in a newline and a directive would add it."""
    from wgmesh_core.plan import Peer
    from wgmesh_core.render import UnsafeValue, wg_addconf
    bad = Peer("g", "developer", "G" * 43 + "=", ("10.70.0.9/32",), endpoint="198.51.100.1:51820\nAllowedIPs = 0.0.0.0/0")
    with pytest.raises(UnsafeValue, match="wg_addconf"):
        wg_addconf([bad])


def test_a_gateway_whose_hub_key_arrives_late_gets_the_hub_endpoint_so_it_dials_out(spec):
    """The gateway's first apply ran before the hub's key was in the mine (hub pending); the next
    apply adds the hub peer with `wg addconf`. Behind carrier NAT the gateway must dial out: the
    `wg addconf` text carries the hub's endpoint (and keepalive), or the tunnel never comes up."""
    from wgmesh_core.live import changed_peers
    from wgmesh_core.render import wg_addconf
    waiting = host_config(spec, "a", TODAY, {"a": K["a"]}, P)
    assert waiting.pending == ["z"] and waiting.peers == []
    complete = host_config(spec, "a", TODAY, K, P)
    live = parse_wg_dump(f"{art.PRIVATE_KEYS['a']}\t{K['a']}\t51820\toff\n")
    diff = peer_diff(complete, live, private_key_public=K["a"])
    assert diff.added == ["z"] and not diff.interface
    assert wg_addconf(changed_peers(complete, diff)) == (
        f"[Peer]\nPublicKey = {K['z']}\nPresharedKey = {P['a']}\nEndpoint = 39.101.166.124:51820\n"
        "AllowedIPs = 10.70.0.0/16\nPersistentKeepalive = 15\n\n")


def test_the_hub_sets_no_endpoint_for_peers_that_dial_in(spec):
    from wgmesh_core.live import PeerDiff, changed_peers
    from wgmesh_core.render import wg_addconf
    text = wg_addconf(changed_peers(host_config(spec, "z", TODAY, K, P), PeerDiff(added=["a", "e"])))
    assert "Endpoint" not in text
    assert text.count("[Peer]") == 2


# --- revocation is never blocked by a pending peer ----------------------------------

STRANGER = "mPNHVa/S2Au1Ek/UXLAWmIEHxE/Tkdx+Y8Sahs8OAGE="   # a key nobody names


def hub_live_with(config, *extra_keys):
    """The hub's live interface: the planned peers plus ``extra_keys`` (peers wgmesh did not plan)."""
    dump = in_sync_dump(config)
    extra = [f"{key}\t(none)\t(none)\t10.70.9.9/32\t0\t0\t0\toff" for key in extra_keys]
    return parse_wg_dump("\n".join([dump, *extra]))


def keys_without(*hosts):
    return {host: key for host, key in K.items() if host in ("z", "a", "c") and host not in hosts}


def test_a_revoked_developer_is_removed_while_a_gateway_is_pending(data):
    """c's key is not known yet, e is revoked: e goes, an unknown key (maybe c's) stays."""
    from wgmesh_core.live import known_keys
    full = host_config(load_network(data), "z", TODAY, K, P)
    data["developers"]["e"]["revoked"] = True
    spec = load_network(data)
    config = host_config(spec, "z", TODAY, keys_without("c"), P)
    assert config.pending == ["c"] and config.waiting_for_key
    diff = peer_diff(config, hub_live_with(full, STRANGER), known=known_keys(spec, config, keys_without("c").values()))
    assert sorted(diff.removed) == sorted([K["e"]])      # c's old peer and the stranger may be c: kept
    assert K["c"] not in diff.removed and STRANGER not in diff.removed


def test_an_expired_developer_is_removed_while_a_gateway_is_pending(data):
    import datetime
    from wgmesh_core.live import known_keys
    full = host_config(load_network(data), "z", TODAY, K, P)
    data["developers"]["f"]["expires"] = TODAY - datetime.timedelta(days=1)
    spec = load_network(data, today=TODAY)
    config = host_config(spec, "z", TODAY, keys_without("a"), P)
    diff = peer_diff(config, hub_live_with(full), known=known_keys(spec, config))
    assert diff.removed == [K["f"]]


def test_a_deleted_developer_is_removed_while_pending_when_the_host_installed_it(data):
    """A deleted developer's key is not in the pillar any more; the hub's record of the peers it
    installed still names it, so it goes. A key the hub never installed may be c's: kept."""
    from wgmesh_core.live import known_keys
    full = host_config(load_network(data), "z", TODAY, K, P)
    del data["developers"]["e"]
    spec = load_network(data)
    config = host_config(spec, "z", TODAY, keys_without("c"), P)
    installed = {p.public_key: p.name for p in full.peers}
    diff = peer_diff(config, hub_live_with(full, STRANGER), known=known_keys(spec, config, (), installed))
    assert diff.removed == [K["e"]]
    without_record = peer_diff(config, hub_live_with(full, STRANGER), known=known_keys(spec, config))
    assert without_record.removed == []                  # documented: kept until c's key arrives


def test_a_pending_preshared_key_holds_that_peer_only(data):
    """f's preshared key did not arrive: f's live peer is kept as it is (not stripped, not removed),
    but with every public key known, a stranger and revoked e are removed."""
    from wgmesh_core.live import known_keys
    spec = load_network(data)
    full = host_config(spec, "z", TODAY, K, P)
    data["developers"]["e"]["revoked"] = True
    spec = load_network(data)
    config = host_config(spec, "z", TODAY, K, {k: v for k, v in P.items() if k != "f"})
    assert config.pending == ["f"] and config.pending_keys == [K["f"]] and not config.waiting_for_key
    diff = peer_diff(config, hub_live_with(full, STRANGER), known=known_keys(spec, config))
    assert sorted(diff.removed) == sorted([K["e"], STRANGER])
    assert "f" not in diff.updated and K["f"] not in diff.removed


def test_a_left_out_host_is_not_protected_like_a_pending_one(spec):
    """a published a new key (refused until accepted): a is left out, not pending, so the live
    peer of its old key goes, and nothing unknown is kept on its account."""
    from wgmesh_core.live import known_keys
    full = host_config(spec, "z", TODAY, K, P)
    config = host_config(spec, "z", TODAY, keys_without("a"), P, refused={"a": "changed key"})
    assert config.left_out == {"a": "changed key"} and config.pending == []
    diff = peer_diff(config, hub_live_with(full, STRANGER), known=known_keys(spec, config, [K["a"]]))
    assert sorted(diff.removed) == sorted([K["a"], STRANGER])


def test_a_hub_peer_without_a_live_endpoint_is_updated(spec):
    config = host_config(spec, "a", TODAY, K, P)
    assert peer_diff(config, parse_wg_dump(gateway_dump("(none)"))).updated == ["z"]


def test_a_host_name_endpoint_is_compared_through_its_addresses(data):
    data["hub"]["endpoint"] = "vpn.example.com:51820"
    config = host_config(load_network(data), "a", TODAY, K, P)
    names = {"vpn.example.com": {"39.101.166.124"}}
    resolve = lambda name: names.get(name, set())          # noqa: E731
    assert not peer_diff(config, parse_wg_dump(gateway_dump("39.101.166.124:51820")), resolve=resolve)
    assert peer_diff(config, parse_wg_dump(gateway_dump("39.101.166.125:51820")), resolve=resolve).updated == ["z"]
    assert peer_diff(config, parse_wg_dump(gateway_dump("39.101.166.124:51821")), resolve=resolve).updated == ["z"]


def test_a_host_name_that_wg_resolved_to_its_ipv6_address_is_in_sync(data):
    """wg(8) takes the resolver's first answer of either family and shows an IPv6 endpoint in
    brackets: that address of the name is the planned endpoint, not drift to fix on every run."""
    data["hub"]["endpoint"] = "vpn.example.com:51820"
    config = host_config(load_network(data), "a", TODAY, K, P)
    names = {"vpn.example.com": {"39.101.166.124", "2001:db8::1"}}
    resolve = lambda name: names.get(name, set())          # noqa: E731
    assert not peer_diff(config, parse_wg_dump(gateway_dump("[2001:db8::1]:51820")), resolve=resolve)
    assert peer_diff(config, parse_wg_dump(gateway_dump("[2001:db8::2]:51820")), resolve=resolve).updated == ["z"]
    assert peer_diff(config, parse_wg_dump(gateway_dump("[2001:db8::1]:51821")), resolve=resolve).updated == ["z"]
