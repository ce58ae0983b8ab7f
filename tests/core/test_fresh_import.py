"""A minion forks each job from a process that keeps its imports, and after `saltutil.sync_all`
Salt reloads only its own modules: ``wgmesh_core.forget_if_changed`` makes the adapters import
the synced wgmesh instead of running new Salt modules on the old core. Seen in the lab: a synced
execution module called ``wgmesh_core.firewall.CONNTRACK_LISTING`` on the core the minion had
imported before, and the hub's state run failed with an AttributeError."""
import shutil
import subprocess
import sys
from pathlib import Path

UTILS = Path(__file__).resolve().parents[2] / "_utils"

PROBE = """
import os, sys, time
import wgmesh_core, wgmesh_salt.commands
print(wgmesh_core.forget_if_changed())                  # nothing changed: kept
path = os.path.join(os.path.dirname(wgmesh_core.__file__), "firewall.py")
with open(path, "a") as f:
    f.write("\\nSYNCED = True\\n")                        # what a sync of another wgmesh does
print(wgmesh_core.forget_if_changed())                  # dropped
print(sorted(n for n in sys.modules if n.startswith(("wgmesh_core", "wgmesh_salt"))))
import wgmesh_core
import wgmesh_core.firewall
print(wgmesh_core.firewall.SYNCED, wgmesh_core.forget_if_changed())
"""


def test_a_synced_wgmesh_is_imported_afresh_and_an_unchanged_one_is_kept(tmp_path):
    for package in ("wgmesh_core", "wgmesh_salt"):
        shutil.copytree(UTILS / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=tmp_path, capture_output=True, text=True,
                         env={"PYTHONPATH": str(tmp_path), "PYTHONDONTWRITEBYTECODE": "1"}, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["False", "True", "[]", "True False"]
