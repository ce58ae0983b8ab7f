"""The gate's hand-off of the hub's developer peers (wgmesh_core.handoff): what the master plans
for the hub, and what the hub accepts before any value reaches `wg`."""
import copy

import pytest

from wgmesh_core import handoff, live, render
from wgmesh_core.diff import StandInConfigs, plan_change
from wgmesh_core.keys import derive_psk, generate_private_key, public_key
from wgmesh_core.plan import host_config
from wgmesh_core.validate import load_network

from .conftest import TODAY

SECRET = b"s" * 32


def new_key():
    return public_key(generate_private_key())


HOST_KEYS = {host: public_key(derive_psk(SECRET, f"host {host}")) for host in ("z", "a", "c")}


def psk_of(spec):
    return lambda peer: derive_psk(SECRET, peer, dev.public_key if (dev := spec.developers.get(peer)) else "")


def handed_off(data, change, psk=None):
    """(the hand-off of ``change`` to ``data``, the new network); the hand-off's peers are checked
    to be the hub's own plan's peers of those names (``plan.host_config`` with the same keys)."""
    new = copy.deepcopy(data)
    change(new)
    old_spec, new_spec = load_network(data), load_network(new)
    configs = (StandInConfigs(old_spec, TODAY), StandInConfigs(new_spec, TODAY))
    hub = plan_change(old_spec, new_spec, TODAY, configs, diffs=False).hosts[0]
    assert hub.host == "z"
    names = (hub.peers_added, hub.peers_removed, hub.peers_changed)
    psk = psk or psk_of(new_spec)
    result = handoff.hub_handoff(names, configs[0]["z"], new_spec, TODAY, HOST_KEYS, psk)
    if result is not None:
        psks = {peer: psk(peer) for peer in [*new_spec.gateways, *new_spec.developers]}
        planned = host_config(new_spec, "z", TODAY, HOST_KEYS, {k: v for k, v in psks.items() if v}, {})
        by_name = lambda peer: peer.name    # noqa: E731
        assert sorted(result.peers, key=by_name) == sorted((p for p in planned.peers if p.name in result_names(result)),
                                                           key=by_name)
        assert not set(result.removed) & {p.public_key for p in planned.peers}
    return result, new_spec


def result_names(result):
    return {peer.name for peer in result.peers}


def test_a_new_developer_is_handed_off_with_its_real_preshared_key(data):
    g = new_key()
    result, spec = handed_off(data, lambda net: net["developers"].update(
        g={"address": "10.70.0.9", "public_key": g, "lan_access": "none"}))
    (peer,) = result.peers
    assert (peer.name, peer.public_key, peer.allowed_ips, peer.keepalive) == ("g", g, ("10.70.0.9/32",), spec.keepalive)
    assert peer.preshared_key == derive_psk(SECRET, "g", g) and result.removed == [] and result.interface == "wg0"


def test_a_rekey_replaces_the_old_key_and_a_revocation_removes_it(data):
    e, old_e, f = new_key(), data["developers"]["e"]["public_key"], data["developers"]["f"]["public_key"]

    def change(net):
        net["developers"]["e"]["public_key"] = e
        net["developers"]["f"]["revoked"] = True
    result, _ = handed_off(data, change)
    assert [p.name for p in result.peers] == ["e"] and sorted(result.removed) == sorted([old_e, f])


def test_a_key_handed_to_another_developer_is_not_removed(data):
    """f takes e's key as e leaves: removing it after setting f would cut f."""
    e_key = data["developers"]["e"]["public_key"]

    def change(net):
        del net["developers"]["e"]
        net["developers"]["f"]["public_key"] = e_key
    result, _ = handed_off(data, change)
    assert [p.public_key for p in result.peers] == [e_key]
    assert e_key not in result.removed and data["developers"]["f"]["public_key"] in result.removed


def test_no_hand_off_for_a_gateway_peer_or_a_large_change(data, monkeypatch):
    result, _ = handed_off(data, lambda net: net.update(keepalive=30))     # the gateways' peers change too
    assert result is None
    monkeypatch.setattr(handoff, "MAX_PEERS", 1)
    result, _ = handed_off(data, lambda net: [net["developers"][d].update(revoked=True) for d in ("e", "f")])
    assert result is None


def test_a_developer_without_its_preshared_key_is_left_to_the_hub(data):
    """The hub's plan keeps a peer without its preshared key pending (not set, not removed)."""
    g = new_key()
    result, spec = handed_off(data, lambda net: net["developers"].update(
        g={"address": "10.70.0.9", "public_key": g, "lan_access": "none"}), psk=lambda peer: None)
    assert result is None


def test_nothing_to_hand_off_when_no_peer_of_the_hub_changes(data):
    result, _ = handed_off(data, lambda net: net["developers"]["e"].update(lan_access=["c"]))    # its firewall only
    assert result is None


def test_a_developer_the_hubs_plan_leaves_out_is_left_to_the_hub(data):
    """g's key is gateway a's (as the master pinned it): the hub's plan leaves g out; a `wg set`
    of that key would take a's peer. No hand-off: the hub plans the change itself."""
    a_key = HOST_KEYS["a"]
    result, _ = handed_off(data, lambda net: net["developers"].update(
        g={"address": "10.70.0.9", "public_key": a_key, "lan_access": "none"}))
    assert result is None
    ok, _ = handed_off(data, lambda net: net["developers"].update(
        g={"address": "10.70.0.9", "public_key": new_key(), "lan_access": "none"}))
    assert [peer.name for peer in ok.peers] == ["g"]


def test_the_document_reads_back_and_makes_one_wg_set_and_one_wg_addconf(data):
    g = new_key()
    result, _ = handed_off(data, lambda net: (net["developers"].update(
        g={"address": "10.70.0.9", "public_key": g, "lan_access": "none"}), net["developers"]["f"].update(revoked=True)))
    back = handoff.read_handoff(result.as_document(), "z")
    assert back == result
    config, diff = back.diff()
    assert (config.host, config.role, config.interface) == ("z", "hub", "wg0")
    assert live.wg_remove_args(config, diff.removed) == ["set", "wg0", "peer", data["developers"]["f"]["public_key"],
                                                         "remove"]
    assert render.wg_addconf(live.changed_peers(config, diff)) == (
        f"[Peer]\nPublicKey = {g}\nPresharedKey = {result.peers[0].preshared_key}\nAllowedIPs = 10.70.0.9/32\n"
        f"PersistentKeepalive = {result.peers[0].keepalive or 'off'}\n\n")


def good_document():
    return {"minion": "z", "interface": "wg0", "removed": [new_key()],
            "peers": [["g", new_key(), ["10.70.0.9/32"], 25, derive_psk(SECRET, "g")]]}


@pytest.mark.parametrize("damage, message", [
    (lambda d: d.update(minion="a"), "for 'a', not for 'z'"),
    (lambda d: d.update(extra=1), "not a wgmesh peer hand-off"),
    (lambda d: d.update(interface="wg0; reboot"), "bad interface name"),
    (lambda d: d.update(interface="-wg0"), "bad interface name"),
    (lambda d: d["removed"].append("A" * 43 + "="), "removed peer"),
    (lambda d: d.update(removed="key"), "bad or too many peers"),
    (lambda d: d["peers"][0].__setitem__(0, "g\nPostUp = x"), "bad peer name"),
    (lambda d: d["peers"][0].__setitem__(1, "x" * 44), "peer g"),
    (lambda d: d["peers"][0].__setitem__(2, ["10.70.0.9/32\n"]), "bad allowed IPs"),
    (lambda d: d["peers"][0].__setitem__(2, ["10.70.0.9/24"]), "bad allowed IPs"),
    (lambda d: d["peers"][0].__setitem__(2, ["fd00::1/128"]), "bad allowed IPs"),
    (lambda d: d["peers"][0].__setitem__(2, []), "bad allowed IPs"),
    (lambda d: d["peers"][0].__setitem__(3, True), "bad keepalive"),
    (lambda d: d["peers"][0].__setitem__(3, 70000), "bad keepalive"),
    (lambda d: d["peers"][0].__setitem__(4, "not a key"), "preshared key"),
    (lambda d: d["peers"][0].pop(), "is not [name, key"),
])
def test_a_damaged_hand_off_is_refused_naming_what(damage, message):
    document = good_document()
    assert handoff.read_handoff(copy.deepcopy(document), "z").peers[0].name == "g"
    damage(document)
    with pytest.raises(ValueError, match=message.replace("[", r"\[")):
        handoff.read_handoff(document, "z")


def test_too_many_peers_are_refused(monkeypatch):
    monkeypatch.setattr(handoff, "MAX_PEERS", 1)
    document = good_document()
    document["peers"] *= 2
    with pytest.raises(ValueError, match="too many peers"):
        handoff.read_handoff(document, "z")


def test_the_psk_is_not_quoted_in_a_refusal():
    document = good_document()
    document["peers"][0][4] = "A" * 43 + "!"
    with pytest.raises(ValueError) as refused:
        handoff.read_handoff(document, "z")
    assert "A" * 20 not in str(refused.value)


def test_an_expired_developer_is_not_handed_off_and_one_still_active_is():
    """The hub's plan counts only active developers (as of the day planned)."""
    from tests.conftest import example_network_data
    data = example_network_data()
    expired, _ = handed_off(data, lambda net: net["developers"].update(
        g={"address": "10.70.0.9", "public_key": new_key(), "expires": "2025-06-14"}))
    active, _ = handed_off(data, lambda net: net["developers"].update(
        g={"address": "10.70.0.9", "public_key": new_key(), "expires": "2025-06-15"}))
    assert expired is None and [p.name for p in active.peers] == ["g"]


def test_a_revoked_gateway_is_not_handed_off(data):
    def revoke_c(net):
        net["gateways"]["c"]["revoked"] = True
        for dev in net["developers"].values():
            dev["lan_access"] = ["a"] if dev.get("lan_access") not in (None, "none") else "none"
        for gw in net["gateways"].values():
            gw.pop("lan_access", None)
    result, _ = handed_off(data, revoke_c)
    assert result is None


def test_the_size_limit_counts_every_change(data, monkeypatch):
    """g added, f revoked, e re-keyed: three changes, handed off up to a limit of three."""
    def change(net):
        net["developers"]["g"] = {"address": "10.70.0.9", "public_key": new_key()}
        net["developers"]["f"]["revoked"] = True
        net["developers"]["e"]["public_key"] = new_key()
    monkeypatch.setattr(handoff, "MAX_PEERS", 3)
    assert handed_off(data, change)[0] is not None
    monkeypatch.setattr(handoff, "MAX_PEERS", 2)
    assert handed_off(data, change)[0] is None


@pytest.mark.parametrize("keepalive, ok", [(0, True), (65535, True), (65536, False), (-1, False)])
def test_keepalive_bounds(keepalive, ok):
    document = good_document()
    document["peers"][0][3] = keepalive
    if ok:
        assert handoff.read_handoff(document, "z").peers[0].keepalive == keepalive
    else:
        with pytest.raises(ValueError, match="bad keepalive"):
            handoff.read_handoff(document, "z")


@pytest.mark.parametrize("allowed", [[5], ["10.70.0.9"], [None]])
def test_allowed_ips_must_be_networks_written_out(allowed):
    document = good_document()
    document["peers"][0][2] = allowed
    with pytest.raises(ValueError, match="bad allowed IPs"):
        handoff.read_handoff(document, "z")


def test_as_many_peers_as_the_limit_are_read(monkeypatch):
    monkeypatch.setattr(handoff, "MAX_PEERS", 1)
    document = good_document()      # one removed, one set: 2 * MAX_PEERS
    assert len(handoff.read_handoff(document, "z").peers) == 1


@pytest.mark.parametrize("damage, message", [
    (lambda d: d.update(extra=1), "not a wgmesh peer hand-off"),
    (lambda d: d.update(removed="key"), "peer hand-off: bad or too many peers"),
    (lambda d: d["removed"].append("x"), "peer hand-off: removed peer: 'x' is 1 characters long, a WireGuard key has 44"),
    (lambda d: d["peers"][0].pop(), "peer hand-off: a peer is not [name, key, allowed IPs, keepalive, preshared key]"),
])
def test_refusals_say_what_in_full(damage, message):
    document = good_document()
    damage(document)
    with pytest.raises(ValueError) as refused:
        handoff.read_handoff(document, "z")
    assert str(refused.value) == message
