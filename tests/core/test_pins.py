"""pins.py: the master's store of pinned host keys."""
from __future__ import annotations

import os
import stat

import pytest

from wgmesh_core import pins


def test_the_pin_file_sits_next_to_the_secret_file():
    assert pins.default_pin_file("/etc/salt/wgmesh/psk.secret") == "/etc/salt/wgmesh/host_keys.json"
    assert pins.default_pin_file("psk.secret") == "./host_keys.json"


def test_a_missing_store_is_empty_and_an_update_writes_it_0600(tmp_path):
    path = str(tmp_path / "sub" / "host_keys.json")
    assert pins.read_pins(path) == {"pinned": {}, "refused": {}}
    with pins.updating_pins(path) as store:
        store["pinned"]["z"] = "k"
    assert pins.read_pins(path) == {"pinned": {"z": "k"}, "refused": {}}
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_a_file_that_is_not_a_pin_store_is_refused_by_name(tmp_path):
    path = tmp_path / "host_keys.json"
    path.write_text('{"pinned": []}')
    with pytest.raises(ValueError, match=f"{path} is not a wgmesh pin store"):
        pins.read_pins(str(path))
