"""Small JSON records a minion keeps in its cachedir about what wgmesh put on it (the peers it
installed, its footprint for ``wgmesh.absent``), in ``<cachedir>/wgmesh``."""
from __future__ import annotations

import json
import os

from wgmesh_core.keys import replace_secret_file


def read(path: str) -> dict:
    """The record at ``path``; {} when there is none or it is not a JSON object."""
    try:
        with open(path) as handle:
            record = json.load(handle)
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def write(path: str, record: dict, current: dict | None = None) -> None:
    """Replace the record in one step (0600, in a 0700 folder): a crash leaves the old or the new.
    One line, without indentation: Python's JSON encoder indents in Python, not C (a hub's record
    of 10,000 peers: 40 ms indented, 10 ms as one line); ``python3 -m json.tool`` shows it.
    Not written when it is ``current`` (what the caller read there), as most runs find it."""
    if current is not None and record == current:
        return
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    replace_secret_file(path, json.dumps(record, sort_keys=True) + "\n")


class Records:
    """The records of the minion whose cachedir is ``cachedir``."""

    def __init__(self, cachedir: str):
        self.folder = os.path.join(cachedir, "wgmesh")
        self.footprint_path = os.path.join(self.folder, "footprint.json")

    def peers_path(self, interface: str) -> str:
        return os.path.join(self.folder, f"{interface}.peers.json")

    def installed_peers(self, interface: str) -> dict:
        """Public key -> name of the peers wgmesh put on ``interface`` (a name that is not text: left out)."""
        return {key: name for key, name in read(self.peers_path(interface)).items() if isinstance(name, str)}
