"""keys.py against wireguard-tools and the article's key pairs."""
from __future__ import annotations

import base64
import os
import shutil
import subprocess

import pytest

from wgmesh_core.keys import derive_psk, generate_private_key, key_problem, public_key, write_secret_file

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


@pytest.mark.parametrize("key", [*art.PUBLIC_KEYS.values(), *art.PSKS.values(), "A" * 43 + "="])
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
])
def test_key_problem_bad(key, why):
    problem = key_problem(key)
    assert problem is not None and why in problem


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


def test_a_malformed_private_key_is_never_quoted_in_errors():
    import pytest
    from wgmesh_core.keys import public_key
    leaked = "PrivateKey=WMWozvjIgpA2h75juoku2btWxbJ54i4Yt0A0RhpW7V8="
    with pytest.raises(ValueError) as error:
        public_key(leaked)
    assert "WMWoz" not in str(error.value) and "55 characters" in str(error.value)
