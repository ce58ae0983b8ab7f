"""keys.py against wireguard-tools and the article's key pairs."""
from __future__ import annotations

import base64
import os
import shutil
import subprocess

import pytest

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from wgmesh_core.keys import (LOW_ORDER_POINTS, derive_psk, generate_private_key, key_problem, public_key,
                              replace_secret_file, write_secret_file)

from . import article_texts as art

needs_wg = pytest.mark.skipif(shutil.which("wg") is None, reason="wireguard-tools not installed")


def wg(*args, input=None):
    return subprocess.run(["wg", *args], input=input, capture_output=True, text=True, check=True, timeout=10).stdout.strip()


@needs_wg
def test_generated_key_public_matches_wg_pubkey():
    for _ in range(5):
        private = generate_private_key()
        assert key_problem(private) is None
        assert public_key(private) == wg("pubkey", input=private + "\n")


@needs_wg
def test_wg_genkey_public_matches_ours():
    private = wg("genkey")
    assert public_key(private) == wg("pubkey", input=private + "\n")


def test_generated_keys_are_clamped_and_distinct():
    keys = {generate_private_key() for _ in range(20)}
    assert len(keys) == 20
    for key in keys:
        raw = base64.b64decode(key)
        assert raw[0] & 7 == 0 and raw[31] & 0x80 == 0 and raw[31] & 0x40 == 0x40


@pytest.mark.parametrize("node", ["z", "a", "c", "e", "f"])
def test_article_key_pairs(node):
    assert public_key(art.PRIVATE_KEYS[node]) == art.PUBLIC_KEYS[node]


def test_public_key_refuses_bad_key():
    with pytest.raises(ValueError):
        public_key("not a key")


@pytest.mark.parametrize("key", [*art.PUBLIC_KEYS.values(), *art.PSKS.values()])
def test_key_problem_good(key):
    assert key_problem(key) is None


@pytest.mark.parametrize("key, why", [
    (None, "base64 string"),
    (12345, "base64 string"),
    ("", "0 characters"),
    (art.HUB_PUBLIC[:-1], "43 characters"),
    (art.HUB_PUBLIC + "=", "45 characters"),
    ("CmmeC0yqofMMZhEGHuK5dd2Mxyxe7tA8wSniDWiI5V*=", "not valid base64"),
    ("CmmeC0yqofMMZhEGHuK5dd2M yxe7tA8wSniDWiI5V0=", "not valid base64"),
    ("A" * 44, "does not encode 32 bytes"),                 # 33 bytes
    ("CmmeC0yqofMMZhEGHuK5dd2Mxyxe7tA8wSniDWiI5V1=", "does not encode 32 bytes"),  # padding bits set
    ("A" * 43 + "=", "the all-zero key"),
    (art.HUB_PUBLIC[:-1] + "\n", "not valid base64"),                # a mined value with a newline
    (art.HUB_PUBLIC + "\nPostUp = id", "56 characters long"),
])
def test_key_problem_bad(key, why):
    problem = key_problem(key)
    assert problem is not None and why in problem


@pytest.mark.parametrize("point", sorted(LOW_ORDER_POINTS))
@pytest.mark.parametrize("bit255", [0, 0x80])
def test_low_order_points_are_refused_and_really_are_low_order(point, bit255):
    """Each listed point (with or without the bit X25519 ignores) makes a real exchange fail."""
    raw = point[:31] + bytes([point[31] | bit255])
    with pytest.raises(ValueError):
        X25519PrivateKey.generate().exchange(X25519PublicKey.from_public_bytes(raw))
    assert "no one's key" in key_problem(base64.b64encode(raw).decode())


def test_key_problem_does_not_echo_a_huge_value():
    problem = key_problem("A" * 10_000_000)
    assert len(problem) < 200 and "10000000 characters" in problem


SECRET = bytes(range(32))


def test_derive_psk_deterministic_and_valid():
    psk = derive_psk(SECRET, "e", art.PUBLIC_KEYS["e"])
    assert psk == derive_psk(SECRET, "e", art.PUBLIC_KEYS["e"])
    assert key_problem(psk) is None
    assert psk not in art.PSKS.values()


def test_derive_psk_differs():
    base = derive_psk(SECRET, "e", art.PUBLIC_KEYS["e"], 0)
    others = [
        derive_psk(SECRET, "f", art.PUBLIC_KEYS["e"], 0),          # other peer
        derive_psk(SECRET, "e", art.PUBLIC_KEYS["f"], 0),          # re-keyed developer
        derive_psk(SECRET, "e", art.PUBLIC_KEYS["e"], 1),          # next epoch
        derive_psk(bytes(32), "e", art.PUBLIC_KEYS["e"], 0),       # other master secret
    ]
    assert len({base, *others}) == 5
    assert all(key_problem(k) is None for k in others)


def test_derive_psk_fields_do_not_run_together():
    # Name and public key are delimited: shifting characters between them changes the key.
    assert derive_psk(SECRET, "ab", "c") != derive_psk(SECRET, "a", "bc")


@needs_wg
def test_derived_psk_accepted_by_wg(tmp_path):
    # wg accepts it as a preshared key (it parses the file as a 32-byte key).
    psk_file = tmp_path / "psk"
    psk_file.write_text(derive_psk(SECRET, "a") + "\n")
    result = subprocess.run(["wg", "pubkey"], input=psk_file.read_text(), capture_output=True, text=True, timeout=10)
    assert result.returncode == 0 and key_problem(result.stdout.strip()) is None


def test_write_secret_file_mode(tmp_path):
    path = tmp_path / "wg0.key"
    path.write_text("old")
    os.chmod(path, 0o644)
    write_secret_file(str(path), "secret\n")
    assert path.read_text() == "secret\n"
    assert os.stat(path).st_mode & 0o777 == 0o600
    fresh = tmp_path / "psk"
    write_secret_file(str(fresh), b"\x00\x01", mode=0o640)
    assert os.stat(fresh).st_mode & 0o777 == 0o640 and fresh.read_bytes() == b"\x00\x01"


def test_a_link_is_never_written_through(tmp_path):
    """write_secret_file refuses a link (dangling or not); replace_secret_file replaces one at the
    path or at ``<path>.new`` (planted where it writes first) with the file."""
    import pytest
    target = tmp_path / "elsewhere"
    (tmp_path / "key").symlink_to(target)
    with pytest.raises(OSError):
        write_secret_file(str(tmp_path / "key"), "secret\n")
    assert not target.exists()
    (tmp_path / "key.new").symlink_to(target)
    replace_secret_file(str(tmp_path / "key"), "secret\n", mode=0o640)
    assert not target.exists() and not (tmp_path / "key.new").exists()
    assert not (tmp_path / "key").is_symlink() and (tmp_path / "key").read_text() == "secret\n"
    assert os.stat(tmp_path / "key").st_mode & 0o777 == 0o640


def test_a_malformed_private_key_is_never_quoted_in_errors():
    import pytest
    from wgmesh_core.keys import public_key
    leaked = "PrivateKey=WMWozvjIgpA2h75juoku2btWxbJ54i4Yt0A0RhpW7V8="
    with pytest.raises(ValueError) as error:
        public_key(leaked)
    assert "WMWoz" not in str(error.value) and "55 characters" in str(error.value)


# --- which preshared keys each host gets (what the ext_pillar serves) ----------------------

def test_a_developer_who_rekeys_gets_a_new_preshared_key():
    """The hub<->developer key is bound to the developer's public key: a stolen old key pair
    plus the old PSK stops working once the developer re-keys. Gateways' keys do not move."""
    import copy
    from tests.conftest import example_network_data
    from wgmesh_core.plan import peer_psk, preshared_keys_for
    from wgmesh_core.validate import load_network
    data = example_network_data()
    before = load_network(data)
    rekeyed = copy.deepcopy(data)
    rekeyed["developers"]["e"]["public_key"] = public_key(generate_private_key())
    after = load_network(rekeyed)
    assert peer_psk(before, "e", SECRET) != peer_psk(after, "e", SECRET)
    assert peer_psk(before, "e", SECRET) == derive_psk(SECRET, "e", before.developers["e"].public_key)
    assert peer_psk(after, "e", SECRET) == derive_psk(SECRET, "e", after.developers["e"].public_key)
    old_hub, new_hub = preshared_keys_for(before, "z", SECRET), preshared_keys_for(after, "z", SECRET)
    assert {peer for peer in old_hub if old_hub[peer] != new_hub[peer]} == {"e"}


def test_each_gateway_gets_only_its_own_preshared_key_and_the_hub_all_of_them():
    from tests.conftest import example_network_data
    from wgmesh_core.plan import peer_psk, preshared_keys_for
    from wgmesh_core.validate import load_network
    spec = load_network(example_network_data())
    every = {peer: peer_psk(spec, peer, SECRET, 3) for peer in ("a", "c", "e", "f")}
    assert len(set(every.values())) == 4
    assert preshared_keys_for(spec, "z", SECRET, 3) == every
    assert preshared_keys_for(spec, "a", SECRET, 3) == {"a": every["a"]}
    assert preshared_keys_for(spec, "c", SECRET, 3) == {"c": every["c"]}
    for not_a_wireguard_host in ("r1", "e", "nobody"):
        assert preshared_keys_for(spec, not_a_wireguard_host, SECRET, 3) == {}


# --- messages and the master secret (found by the mutation run, bench/mutation.sh) -----------

def test_key_problem_messages_quote_public_keys_and_never_secret_ones():
    assert key_problem(12345) == "expected a base64 string, got int"
    assert key_problem("short") == "'short' is 5 characters long, a WireGuard key has 44"
    assert key_problem("short", secret=True) == "the key is 5 characters long, a WireGuard key has 44"
    assert key_problem("A" * 43 + "*", secret=True) == "the key is not valid base64"


def test_key_problem_names_the_all_zero_key_and_other_low_order_points():
    import base64 as b64
    zero, one = b64.b64encode(bytes(32)).decode(), b64.b64encode(b"\x01" + bytes(31)).decode()
    assert key_problem(zero) == f"{zero!r} is the all-zero key: it is no one's key"
    assert key_problem(one) == f"{one!r} is a low-order point: it is no one's key"


def test_long_values_are_shown_cut_at_60_characters():
    from wgmesh_core.keys import shown
    assert shown("x" * 58) == repr("x" * 58)                        # 60 with the quotes: whole
    assert shown("x" * 59) == repr("x" * 59)[:60] + "... (59 characters)"


def test_the_master_secret_is_made_once_0600_in_a_0700_folder(tmp_path, monkeypatch):
    import stat
    from wgmesh_core.keys import load_master_secret
    path = tmp_path / "pki" / "wgmesh" / "psk.secret"
    secret = load_master_secret(str(path))
    assert len(secret) == 32 and load_master_secret(str(path)) == secret
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    monkeypatch.chdir(tmp_path)                                     # a bare file name: the current folder
    assert len(load_master_secret("here.secret")) == 32
    assert sorted(p.name for p in tmp_path.iterdir()) == ["here.secret", "pki"]   # no stray folder
