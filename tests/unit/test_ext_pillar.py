"""The `wgmesh_secrets` ext_pillar: which preshared keys each minion gets, and the master secret."""
from __future__ import annotations

import copy
import logging
import os
import stat

import pytest

from wgmesh_core.keys import derive_psk

from tests.conftest import example_network_data

from .conftest import key, load_adapter

secrets = load_adapter("_pillar", "wgmesh_secrets")


@pytest.fixture
def configure_loader_modules():
    return {secrets: {"__opts__": {"id": "master"}}}


@pytest.fixture
def secret_file(tmp_path):
    return str(tmp_path / "salt" / "wgmesh" / "psk.secret")


@pytest.fixture
def pillar():
    return {"wgmesh": example_network_data()}


def psks(minion, pillar, secret_file):
    return secrets.ext_pillar(minion, pillar, secret_file=secret_file).get("wgmesh_psk")


def test_the_hub_gets_every_preshared_key_and_each_gateway_only_its_own(pillar, secret_file):
    hub = psks("z", pillar, secret_file)
    assert sorted(hub) == ["a", "c", "e", "f"] and len(set(hub.values())) == 4
    assert psks("a", pillar, secret_file) == {"a": hub["a"]}
    assert psks("c", pillar, secret_file) == {"c": hub["c"]}
    for nobody in ("r1", "e", "some-other-minion"):
        assert secrets.ext_pillar(nobody, pillar, secret_file=secret_file) == {}


def test_the_secret_file_is_made_0600_in_a_0700_folder_and_reused(pillar, secret_file):
    first = psks("z", pillar, secret_file)
    assert stat.S_IMODE(os.stat(secret_file).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(os.path.dirname(secret_file)).st_mode) == 0o700
    secret = bytes.fromhex(open(secret_file).read().strip())
    assert len(secret) == 32
    assert psks("z", pillar, secret_file) == first           # the same secret, read back
    assert first["e"] == derive_psk(secret, "e", pillar["wgmesh"]["developers"]["e"]["public_key"])


def test_an_existing_secret_is_loaded_not_replaced(pillar, secret_file):
    os.makedirs(os.path.dirname(secret_file), mode=0o700)
    with open(secret_file, "w") as handle:
        handle.write("11" * 32 + "\n")
    assert psks("a", pillar, secret_file) == {"a": derive_psk(bytes([0x11] * 32), "a", "")}
    assert open(secret_file).read() == "11" * 32 + "\n"


def test_preshared_keys_change_when_a_developer_rekeys_or_the_epoch_moves(pillar, secret_file):
    before = psks("z", pillar, secret_file)
    rekeyed = copy.deepcopy(pillar)
    rekeyed["wgmesh"]["developers"]["e"]["public_key"] = key(7)
    after = psks("z", rekeyed, secret_file)
    assert {peer for peer in before if before[peer] != after[peer]} == {"e"}
    rotated = copy.deepcopy(pillar)
    rotated["wgmesh"]["preshared_key_epoch"] = 1
    assert all(psks("z", rotated, secret_file)[peer] != before[peer] for peer in before)


def test_no_preshared_keys_when_they_are_off_and_nothing_without_a_network(pillar, secret_file):
    pillar["wgmesh"]["preshared_keys"] = False
    for minion in ("z", "a", "r1"):
        assert "wgmesh_psk" not in secrets.ext_pillar(minion, pillar, secret_file=secret_file)
    assert secrets.ext_pillar("z", {}, secret_file=secret_file) == {}
    assert not os.path.exists(secret_file)                   # no secret made for nothing


def test_an_invalid_network_gets_no_keys_and_an_error_naming_the_problem(pillar, secret_file, caplog):
    pillar["wgmesh"]["developers"]["f"]["address"] = "10.70.0.4"
    with caplog.at_level(logging.ERROR):
        assert secrets.ext_pillar("z", pillar, secret_file=secret_file) == {}
    assert "developers.f.address: 10.70.0.4 is already taken by developers.e" in caplog.text
