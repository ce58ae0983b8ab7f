"""Masterless minions (`salt-call --local`) in tmp_path for the packaging and formula tests.

Nothing here needs root or touches the machine: each minion has its own root_dir, and only
renders (show_top, show_sls) or applies states that change nothing outside it.
"""
from __future__ import annotations

import getpass
import json
import subprocess
import tempfile
from pathlib import Path

import yaml

from tests.conftest import REPO

# Stands in for an operator's own formulas: a minion wgmesh does not manage still has a highstate.
FLEET_TOP = "fleet:\n  '*':\n    - common\n"
FLEET_STATE = "fleet-common:\n  test.succeed_without_changes: []\n"


class Minion:
    def __init__(self, workdir: Path, minion_id: str, network: dict | None, salt_bin: Path,
                 salt_tree: Path = REPO / "salt", **config):
        self.id = minion_id
        self.salt_bin = salt_bin
        self.dir = Path(tempfile.mkdtemp(prefix=f"{minion_id}-", dir=workdir))
        pillar = self.dir / "pillar"
        pillar.mkdir(parents=True)
        (pillar / "top.sls").write_text("base:\n  '*':\n    - net\n")
        (pillar / "net.sls").write_text(yaml.safe_dump({"wgmesh": network} if network else {}))
        fleet = self.dir / "fleet"
        fleet.mkdir()
        (fleet / "top.sls").write_text(FLEET_TOP)
        (fleet / "common.sls").write_text(FLEET_STATE)
        self.conf = self.dir / "conf"
        self.conf.mkdir()
        (self.conf / "minion").write_text(yaml.safe_dump({
            "id": minion_id, "file_client": "local", "user": getpass.getuser(),
            "root_dir": str(self.dir / "salt-root"),
            "file_roots": {"base": [str(salt_tree)], "fleet": [str(fleet)]},
            "pillar_roots": {"base": [str(pillar)]},
            "log_level_logfile": "info", **config}))

    def call(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(self.salt_bin / "salt-call"), "-c", str(self.conf), "--local", "--out=json",
                               *args], capture_output=True, text=True, timeout=300)

    def ok(self, *args: str):
        """The `local` value of a salt-call that must exit 0."""
        done = self.call(*args)
        assert done.returncode == 0, (args, done.stdout[-3000:], done.stderr[-3000:])
        return json.loads(done.stdout)["local"]


def state_ids(result: dict) -> list[str]:
    """Ids of a state run's or show_sls' states, in execution order."""
    if all("__run_num__" in value for value in result.values()):
        return [v["__id__"] for v in sorted(result.values(), key=lambda v: v["__run_num__"])]
    return sorted(result, key=lambda sid: next(a["order"] for a in _args(result[sid]) if "order" in a))


def _args(state: dict) -> list[dict]:
    return [arg for key, value in state.items() if not key.startswith("__") for arg in value
            if isinstance(arg, dict)]
