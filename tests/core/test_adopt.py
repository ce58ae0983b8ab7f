"""Adopting a hand-built host's key (wgmesh_core.adopt) and live endpoint comparison."""
from wgmesh_core.adopt import find_existing_key, parse_key_source
from wgmesh_core.keys import generate_private_key
from wgmesh_core.live import LiveInterface, LivePeer, peer_diff
from wgmesh_core.plan import HostConfig, Peer

KEY, OTHER = generate_private_key(), generate_private_key()


def reader(files):
    return files.get


def test_article_netdev_with_inline_key_is_adopted():
    netdev = f"[NetDev]\nName=wg0\nKind=wireguard\n\n[WireGuard]\nListenPort=51820\nPrivateKey={KEY}\n"
    assert find_existing_key("wg0", reader({"/etc/systemd/network/wg0.netdev": netdev})) == \
        (KEY, "/etc/systemd/network/wg0.netdev")


def test_netdev_naming_a_key_file_reads_that_file():
    netdev = "[WireGuard]\nPrivateKeyFile=/etc/systemd/network/private.key\n"
    files = {"/etc/systemd/network/wg0.netdev": netdev, "/etc/systemd/network/private.key": KEY + "\n"}
    assert find_existing_key("wg0", reader(files)) == (KEY, "/etc/systemd/network/private.key")


def test_wg_quick_inline_key_and_post_up_key_file():
    conf = f"[Interface]\nAddress = 10.70.0.1/16\nPrivateKey = {KEY}\n"
    assert find_existing_key("wg0", reader({"/etc/wireguard/wg0.conf": conf}))[0] == KEY
    conf = "[Interface]\nPostUp = wg set %i private-key /etc/wireguard/private.key\n"
    files = {"/etc/wireguard/wg0.conf": conf, "/etc/wireguard/private.key": KEY}
    assert find_existing_key("wg0", reader(files)) == (KEY, "/etc/wireguard/private.key")


def test_backend_switch_carries_the_other_backends_key():
    assert find_existing_key("wg0", reader({"/etc/wireguard/wg0.key": KEY})) == (KEY, "/etc/wireguard/wg0.key")


def test_live_key_wins_and_configured_path_comes_before_the_defaults():
    files = {"/etc/wireguard/wg0.key": KEY, "/srv/keys/hub.key": OTHER}
    assert find_existing_key("wg0", reader(files), "/srv/keys/hub.key") == (OTHER, "/srv/keys/hub.key")
    assert find_existing_key("wg0", reader(files), "/srv/keys/hub.key", live_key=KEY)[1] == "the live interface wg0"
    assert find_existing_key("wg0", reader(files), live_key="(none)") == (KEY, "/etc/wireguard/wg0.key")


def test_placeholders_and_garbage_are_not_keys():
    assert parse_key_source("wg_quick", "PrivateKey = <paste here>\n") == (None, None)
    assert find_existing_key("wg0", reader({"/etc/wireguard/wg0.key": "not a key"})) is None
    assert find_existing_key("wg0", reader({})) is None


def _gateway(endpoint):
    hub = Peer("z", "hub", "HUBKEY", ("10.70.0.0/16",), endpoint=endpoint, keepalive=15)
    return HostConfig(host="a", role="gateway", interface="wg0", listen_port=51820, peers=[hub])


def _live(endpoint):
    return LiveInterface(private_key="(hidden)", public_key="A", listen_port=51820,
                         peers={"HUBKEY": LivePeer("HUBKEY", None, endpoint, frozenset({"10.70.0.0/16"}), 0, 0, 0, 15)})


def test_a_changed_numeric_or_hostname_endpoint_updates_the_hub_peer():
    assert peer_diff(_gateway("203.0.113.9:51820"), _live("203.0.113.1:51820")).updated == ["z"]
    assert peer_diff(_gateway("203.0.113.1:51821"), _live("203.0.113.1:51820")).updated == ["z"]
    assert not peer_diff(_gateway("203.0.113.1:51820"), _live("203.0.113.1:51820"))
    moved = _gateway("hub.example.net:51820")
    assert peer_diff(moved, _live("203.0.113.1:51820"), resolve=lambda name: {"203.0.113.9"}).updated == ["z"]
    assert not peer_diff(moved, _live("203.0.113.9:51820"), resolve=lambda name: {"203.0.113.9"})
    # a name that does not resolve keeps the live endpoint
    assert not peer_diff(moved, _live("203.0.113.1:51820"), resolve=lambda name: set())


def test_a_key_file_a_config_names_must_exist_and_hold_a_key():
    netdev = "[WireGuard]\nPrivateKeyFile=/etc/wg/missing.key\n"
    assert find_existing_key("wg0", reader({"/etc/systemd/network/wg0.netdev": netdev})) is None
    garbage = {"/etc/systemd/network/wg0.netdev": "[WireGuard]\nPrivateKeyFile=/etc/wg/k\n", "/etc/wg/k": "CHANGE-ME\n"}
    assert find_existing_key("wg0", reader(garbage)) is None


def test_the_networkd_key_file_alone_is_found():
    assert find_existing_key("wg0", reader({"/etc/systemd/network/wg0.key": KEY + "\n"})) == (
        KEY, "/etc/systemd/network/wg0.key")


def test_a_private_key_is_a_scalar_so_low_order_point_bytes_are_still_a_key():
    """The low-order check is for public keys (points); any 32 bytes are a private key."""
    import base64
    one = base64.b64encode(bytes([1]) + bytes(31)).decode()
    assert find_existing_key("wg0", reader({"/etc/wireguard/wg0.key": one})) == (one, "/etc/wireguard/wg0.key")


def test_an_unknown_key_source_kind_is_named():
    import pytest
    with pytest.raises(ValueError, match="unknown key source kind 'ini'"):
        parse_key_source("ini", "")
