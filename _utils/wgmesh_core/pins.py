"""The master's store of pinned host keys (a JSON file next to the preshared-key secret).

It lives on the master, where minions cannot write: the ``wgmesh_secrets``
ext_pillar pins each host's first published key and serves the pins to the hub
and gateways; ``salt-run wgmesh.accept_key HOST`` replaces one.  Updates hold
an exclusive lock, since every pillar compile may pin.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os

from .keys import replace_secret_file

DEFAULT_SECRET_FILE = "/etc/salt/wgmesh/psk.secret"   # the wgmesh_secrets ext_pillar's default
PIN_FILE_NAME = "host_keys.json"


def default_pin_file(secret_file: str) -> str:
    return os.path.join(os.path.dirname(secret_file) or ".", PIN_FILE_NAME)


def _empty() -> dict:
    # pinned: host -> accepted key; refused: host -> why its published key was refused (last seen)
    return {"pinned": {}, "refused": {}}


def read_pins(path: str) -> dict:
    try:
        with open(path) as handle:
            data = json.load(handle)
    except FileNotFoundError:
        return _empty()
    if not (isinstance(data, dict) and isinstance(data.get("pinned"), dict) and isinstance(data.get("refused"), dict)):
        raise ValueError(f"{path} is not a wgmesh pin store")
    return data


@contextlib.contextmanager
def updating_pins(path: str):
    """Yield the store's content under an exclusive lock; write it back (0600) if it changed."""
    os.makedirs(os.path.dirname(path) or ".", mode=0o700, exist_ok=True)
    with open(path + ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        data = read_pins(path)
        before = json.dumps(data, sort_keys=True, indent=1)
        yield data
        after = json.dumps(data, sort_keys=True, indent=1)
        if after != before:
            replace_secret_file(path, after + "\n")
