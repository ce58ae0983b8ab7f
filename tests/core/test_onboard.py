"""onboard, called in-process (tests/onboard runs the same through the installed `wgmesh` command):
the next free address, the pillar entry, the key pair, the finished client config and its files."""
from __future__ import annotations

import datetime
import os
import stat

import pytest
import yaml

from wgmesh_core.keys import generate_private_key, key_problem, public_key
from wgmesh_core.onboard import (ADDRESS_CHOICES, client_config_problems, finish_client_config, free_address,
                                 own_or_new_key, pillar_entry, qr_code, save_new_key, write_client_files)
from wgmesh_core.render import client_config
from wgmesh_core.validate import load_network

from . import article_texts as art

KEY = "0VooFEp8ZdpZp3P7BPa2W3piw+eu/6cyUGpSUWZp4HA="       # e's in the example
G_KEY = "1VooFEp8ZdpZp3P7BPa2W3piw+eu/6cyUGpSUWZp4HA="       # nobody's in the example


def test_a_new_address_is_one_of_the_lowest_free_chosen_by_the_key(data):
    """The same key, the same address (a second `join` prints the same entry); keys spread over the
    64 lowest free addresses, so two developers joining from one revision seldom collide."""
    spec = load_network(data)
    window = [f"10.70.0.{n}" for n in range(6, 6 + ADDRESS_CHOICES)]      # z, a, c, e, f hold .1-.5
    picked = [free_address(spec, public_key(generate_private_key())) for _ in range(200)]
    assert set(picked) <= set(window) and len(set(picked)) > 40
    assert free_address(spec, KEY) == free_address(spec, KEY)
    data["developers"]["e"]["revoked"] = True                            # a revoked entry keeps its address
    data["developers"]["f"]["address"] = "10.70.0.9"
    data["hub"]["address"] = "10.70.0.10"
    spec = load_network(data)
    window = ["10.70.0.1", "10.70.0.5", "10.70.0.6", "10.70.0.7", "10.70.0.8"] + \
        [f"10.70.0.{n}" for n in range(11, 11 + ADDRESS_CHOICES - 5)]
    picked = {free_address(spec, public_key(generate_private_key())) for _ in range(300)}
    assert picked <= set(window) and {"10.70.0.1", "10.70.0.5"} & picked


def test_the_last_free_address_is_the_one_and_a_full_network_has_none(data):
    data["network"] = "10.70.0.0/29"                   # hosts .1-.6: z, a, c, e, f hold .1-.5
    assert {free_address(load_network(data), public_key(generate_private_key())) for _ in range(20)} == {"10.70.0.6"}
    data["developers"]["g"] = {"address": "10.70.0.6", "public_key": KEY.replace("0V", "1V")}
    with pytest.raises(ValueError, match=r"^no free address left in 10.70.0.0/29$"):
        free_address(load_network(data), KEY)


def test_the_pillar_entry_is_indented_yaml_for_developers(spec):
    """Four spaces in: pasted under `wgmesh: developers:` it is one more entry."""
    KEY = G_KEY
    text = pillar_entry(spec, "g", KEY)
    address = free_address(spec, KEY)
    assert all(line.startswith("    ") for line in text.splitlines()) and text.endswith("\n")
    assert yaml.safe_load(text) == {"g": {"address": address, "public_key": KEY, "lan_access": "none"}}
    assert list(yaml.safe_load(text)["g"]) == ["address", "public_key", "lan_access"]      # in this order
    full = pillar_entry(spec, "g", KEY, lan_access=["a", "c"], expires=datetime.date(2025, 12, 31), platform="ios",
                        today=datetime.date(2025, 6, 1))
    assert full == (f"    g:\n      address: {address}\n      public_key: {KEY}\n      lan_access: [a, c]\n"
                    "      expires: 2025-12-31\n      platform: ios\n")       # a list on one line, as in the README
    assert "platform" not in pillar_entry(spec, "g", KEY, platform="linux")     # the default is left out


def test_an_existing_developer_gets_no_second_entry(spec):
    with pytest.raises(ValueError, match=r"^developer 'e' already exists in the pillar$"):
        pillar_entry(spec, "e", KEY)


def test_the_key_file_may_go_into_an_existing_folder_or_a_new_nested_one(tmp_path):
    for key_file in (tmp_path / "g.key", tmp_path / "a" / "b" / "g.key"):
        private, new = own_or_new_key(key_file)
        assert new and not key_file.exists()           # written once the entry is accepted
        save_new_key(key_file, private)
        assert own_or_new_key(key_file) == (private, False)


def test_the_key_is_made_once_0600_in_a_0700_folder_and_never_replaced(tmp_path):
    key_file = tmp_path / "keys" / "g.key"
    private, _ = own_or_new_key(key_file)
    save_new_key(key_file, private)
    assert key_file.read_text() == private + "\n" and key_problem(private, secret=True) is None
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(key_file.parent.stat().st_mode) == 0o700
    assert sorted(os.listdir(key_file.parent)) == ["g.key"]       # no temporary file left
    with pytest.raises(ValueError, match="was made meanwhile"):      # another join's key, made meanwhile
        save_new_key(key_file, generate_private_key())
    assert key_file.read_text() == private + "\n"


@pytest.mark.parametrize("case, refusal", [
    ("world-readable", "has mode 0644: others may have read the private key"),
    ("group-readable", "has mode 0640"),
    ("link", "is a symbolic link"),
    ("dangling link", "is a symbolic link"),
    ("folder", "is not a regular file"),
    ("fifo", "is not a regular file"),
    ("not a key", "holds no WireGuard private key"),
])
def test_a_key_file_that_is_not_this_users_alone_is_refused(tmp_path, case, refusal):
    key_file, real = tmp_path / "g.key", tmp_path / "real.key"
    real.write_text(generate_private_key() + "\n")
    real.chmod(0o600)
    if case in ("world-readable", "group-readable"):
        key_file.write_text(generate_private_key() + "\n")
        key_file.chmod(0o644 if case == "world-readable" else 0o640)
    elif case == "link":
        key_file.symlink_to(real)
    elif case == "dangling link":
        key_file.symlink_to(tmp_path / "nowhere")
    elif case == "folder":
        key_file.mkdir()
    elif case == "fifo":            # opened without waiting for a writer
        os.mkfifo(key_file, 0o600)
    else:
        key_file.write_text("not a key\n")
        key_file.chmod(0o600)
    with pytest.raises(ValueError, match=refusal):
        own_or_new_key(key_file)


def test_a_key_file_of_another_user_is_refused(tmp_path):
    key_file = tmp_path / "g.key"
    key_file.write_text(generate_private_key() + "\n")
    key_file.chmod(0o600)
    os.chown(key_file, 65534, 65534)
    with pytest.raises(ValueError, match="belongs to user id 65534, not to you"):
        own_or_new_key(key_file)


def test_finishing_fills_the_placeholder_once(spec):
    rendered = client_config(spec, "e", hub_public_key=art.PUBLIC_KEYS["z"], psk=art.PSKS["e"])
    private = art.PRIVATE_KEYS["e"]
    finished = finish_client_config(rendered + "# PrivateKey = again\n", private)
    assert finished.splitlines().count(f"PrivateKey = {private}") == 1
    assert finished.endswith("# PrivateKey = again\n")
    head = rendered.split("# PrivateKey")[0]
    assert finished.startswith(head + f"PrivateKey = {private}\n")


@pytest.mark.parametrize("key, why", [
    ("garbage", "the key file does not hold a WireGuard private key: the key is 7 characters long"),
    ("", "the key file does not hold a WireGuard private key: "),
])
def test_finishing_refuses_a_key_that_is_not_one(spec, key, why):
    rendered = client_config(spec, "e", hub_public_key=art.PUBLIC_KEYS["z"])
    with pytest.raises(ValueError) as info:
        finish_client_config(rendered, key)
    assert str(info.value).startswith(why) and "garbage" not in str(info.value)


def test_finishing_needs_the_placeholder_and_a_clean_config():
    private = generate_private_key()
    with pytest.raises(ValueError, match=r"^the config has no '# PrivateKey = \.\.\.' line to fill in$"):
        finish_client_config("[Interface]\n[Peer]\n", private)
    with pytest.raises(ValueError) as info:
        finish_client_config("[Interface]\n# PrivateKey = x\nPostUp = id\nMTU = 1\n[Peer]\n", private)
    assert str(info.value) == ("refusing the config, nothing written:\n"
                               "line 3: PostUp makes wg-quick run commands or change routing as root: refused "
                               "(a wgmesh client config never has it)\n"
                               "line 4: MTU: '1' is not a number in 576-9000")


@pytest.mark.parametrize("line, problem", [
    ("MTU = off", "MTU: 'off' is not a number in 576-9000"),     # off is for PersistentKeepalive only
    ("MTU = 576", None), ("MTU = 9000", None), ("MTU = 575", "MTU: '575' is not a number in 576-9000"),
    ("MTU = 9001", "MTU: '9001' is not a number in 576-9000"),
    ("ListenPort = 0", "ListenPort: '0' is not a number in 1-65535"),
    ("ListenPort = 65535", None), ("Address = 10.70.0.4/32, 10.1.0.4/24", None),
    ("Address = 10.70.0.4/32,nope", "Address: 'nope' is not an address"),
    ("DNS = 10.0.0.1, corp.example", None), ("DNS = a b", "DNS: 'a b' is neither an address nor a search domain"),
])
def test_interface_values_are_checked(line, problem):
    problems = client_config_problems(f"[Interface]\n{line}\n[Peer]\n")
    assert problems == ([] if problem is None else [f"line 2: {problem}"])


@pytest.mark.parametrize("line, problem", [
    ("PersistentKeepalive = off", None), ("PersistentKeepalive = OFF", None), ("PersistentKeepalive = 0", None),
    ("PersistentKeepalive = 65536", "PersistentKeepalive: '65536' is not a number in 0-65535"),
    ("PresharedKey = x", "PresharedKey: 'x' is 1 characters long, a WireGuard key has 44"),
    ("Endpoint = vpn.example.org:51820", None), ("AllowedIPs = 10.70.0.0/16, 192.168.201.0/24", None),
    ("publickey = " + KEY, None),
    ("MTU = 1280", "unknown key 'MTU' in [peer] (allowed: address, allowedips, dns, endpoint, listenport, mtu, "
                   "persistentkeepalive, presharedkey, publickey)"),
])
def test_peer_values_are_checked(line, problem):
    problems = client_config_problems(f"[Interface]\n[peer]\n{line}\n")
    assert problems == ([] if problem is None else [f"line 3: {problem}"])


def test_section_lines_and_their_count():
    assert client_config_problems("[Interface]\n[Peer]\n[Peer]\n") == []
    assert client_config_problems("[Interface\n[Peer]\n") == [
        "line 1: unknown section [Interface (a client config has [Interface] and [Peer])",
        "the config needs one [Interface] and at least one [Peer] section"]
    assert client_config_problems("") == ["the config needs one [Interface] and at least one [Peer] section"]
    assert client_config_problems("[Interface]\nx\x07 = 1\n[Peer]\n") == [
        "line 2: 'x\\x07 = 1' holds a control character"]


def test_comments_may_hold_hashes_and_a_line_that_is_no_setting_is_quoted():
    assert client_config_problems("[Interface] # the laptop # home\nMTU = 1280 # see #12\n[Peer]\n") == []
    assert client_config_problems("[Interface]\n[Peer]\nno equals sign\n") == [
        "line 3: 'no equals sign' is not 'Key = value'"]


def test_keys_under_a_broken_section_line_name_it():
    assert client_config_problems("[Interface\nMTU = 1280\n[Interface]\n[Peer]\n")[1] == (
        "line 2: unknown key 'MTU' in [[Interface] (allowed: address, allowedips, dns, endpoint, listenport, mtu, "
        "persistentkeepalive, presharedkey, publickey)")


def test_client_files_are_0600_and_the_png_never_overwrites(tmp_path):
    old = os.umask(0)
    try:
        out, png = tmp_path / "e.conf", tmp_path / "e.png"
        write_client_files("[Interface]\nPrivateKey = secret\n", out, png)
    finally:
        os.umask(old)
    assert out.read_text() == "[Interface]\nPrivateKey = secret\n"
    image = png.read_bytes()
    assert image.startswith(b"\x89PNG")
    # 6 pixels a module and a 4-module quiet zone: the size phone cameras read at arm's length
    width, height = int.from_bytes(image[16:20], "big"), int.from_bytes(image[20:24], "big")
    modules = qr_code("[Interface]\nPrivateKey = secret\n").symbol_size(scale=1, border=0)[0]
    assert (width, height) == ((modules + 2 * 4) * 6, (modules + 2 * 4) * 6)
    assert stat.S_IMODE(out.stat().st_mode) == 0o600 and stat.S_IMODE(png.stat().st_mode) == 0o600
    out.unlink()
    with pytest.raises(ValueError, match="e.png exists: remove it first \\(the QR code holds your private key\\)"):
        write_client_files("x", out, png)
    assert not out.exists()
    write_client_files("only the config", out)
    assert out.read_text() == "only the config"


@pytest.mark.parametrize("text, indent", [
    ("#!yaml\nwgmesh:\n  developers:\n    e:\n      address: 10.70.0.4\n", (4, 2)),
    ("#!yaml\nwgmesh:\n    developers:   # who\n        # the first\n\n        e: {address: 10.70.0.4}\n", (8, 4)),
    ("#!yaml\nwgmesh:\n  developers: {}\n", (4, 2)),            # no entry shows it
    ("#!yaml\nwgmesh:\n  developers:\n  network: 10.70.0.0/16\n", (4, 2)),
    ("", (4, 2)),
])
def test_a_new_entry_is_indented_as_the_files_entries_are(text, indent):
    from wgmesh_core.onboard import entry_indent
    assert entry_indent(text) == indent


@pytest.mark.parametrize("change, refusal", [
    ({"name": "a"}, "is also the minion gateways.a"),
    ({"name": "x/y"}, "'x/y' is not a name the pillar takes"),
    ({"lan_access": ["nope"]}, "developers.g.lan_access: names 'nope', which is not a gateway"),
    ({"expires": datetime.date(2031, 6, 3)}, "max_access_days"),          # 367 days after today
    ({"expires": datetime.date(2030, 5, 31)}, r"--expires 2030-05-31 is before today \(2030-06-01\)"),
    ({"public": KEY}, "same public key as developer e"),
])
def test_a_new_entry_is_checked_as_the_pull_requests_pillar_will_be(spec, change, refusal):
    """As of ``today`` (2030 here, so that a check against the real date would differ)."""
    args = dict(name="g", public=G_KEY, lan_access="none", expires=None) | change
    with pytest.raises(ValueError, match=refusal):
        pillar_entry(spec, args["name"], args["public"], args["lan_access"], args["expires"],
                     today=datetime.date(2030, 6, 1))
    for expires in (datetime.date(2030, 6, 1), datetime.date(2031, 6, 2)):      # today, and the last day allowed
        assert f"expires: {expires}" in pillar_entry(spec, "g", G_KEY, expires=expires, today=datetime.date(2030, 6, 1))


def test_the_json_entry_writes_its_expiry_as_text(spec):
    line = pillar_entry(spec, "g", G_KEY, expires=datetime.date(2030, 7, 1), as_json=True, today=datetime.date(2030, 6, 1))
    assert line.startswith('      "g": {"address": ') and line.endswith(', "expires": "2030-07-01"}\n')
