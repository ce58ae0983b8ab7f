"""wgmesh installed the way the README says for onedir hosts: `salt-pip install` of the wheel.

Salt's onedir cannot run here, so a separate virtualenv stands in for it: Salt and only its own
requirements (their pinned, hashed versions from requirements.txt), nothing of wgmesh's. The
wheel is built from this checkout and installed from the file, never from an index. Then
masterless `salt-call --local` in that venv, with only the formula (salt/) in file_roots, no
saltutil.sync_all:
- with the wheel but not its dependencies (a minion that lacks netaddr), a minion
  the pillar does not name still gets a clean highstate, and the hub's highstate fails with
  the module's reason (the missing package), not an obscure render error;
- with its dependencies, Salt's loader finds the execution module, states, runner and
  ext_pillar through the `salt.loader` entry point, in the venv's site-packages.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import venv
from importlib.metadata import distribution
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.conftest import REPO, example_network_data

from .conftest import Minion, state_ids

HUB_STATES = {"wgmesh-private-key", "wgmesh-tunnel", "wgmesh-ip-forward"}


def requirement_closure(name: str) -> set[str]:
    """The distributions ``name`` needs, itself included, as installed in the test's environment."""
    seen, todo = set(), [name]
    while todo:
        dist = distribution(todo.pop())
        key = canonicalize_name(dist.metadata["Name"])
        if key in seen:
            continue
        seen.add(key)
        for text in dist.requires or []:
            req = Requirement(text)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    return seen


def locked_entries(names: set[str]) -> str:
    """requirements.txt's entries (pin and hashes) for ``names``."""
    entries = re.split(r"\n(?=[A-Za-z0-9])", (REPO / "requirements.txt").read_text())
    chosen = [e for e in entries if canonicalize_name(e.split("==")[0]) in names]
    assert {canonicalize_name(e.split("==")[0]) for e in chosen} == names
    return "\n".join(chosen) + "\n"


def pip(python: Path, *args: str) -> None:
    done = subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *args],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.fixture(scope="module")
def onedir(tmp_path_factory):
    """(venv bin dir, built wheel): the venv has Salt and its requirements only."""
    root = tmp_path_factory.mktemp("onedir")
    venv.create(root / "venv", with_pip=True)
    python = root / "venv" / "bin" / "python"
    (root / "salt-only.txt").write_text(locked_entries(requirement_closure("salt")))
    pip(python, "--require-hashes", "--no-deps", "-r", str(root / "salt-only.txt"))
    # the wheel, built from a copy of this checkout's files (the build writes into its source tree)
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                            capture_output=True, text=True, check=True).stdout.split("\0")
    source = root / "source"
    for name in filter(None, listed):
        if (REPO / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, source / name)
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                           "-w", str(root / "dist"), str(source)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    (wheel,) = (root / "dist").glob("saltext_wgmesh-*-py3-none-any.whl")
    return python.parent, wheel, source


@pytest.fixture
def minion(tmp_path, onedir):
    bin_dir, _, source = onedir

    def make(minion_id):
        return Minion(tmp_path, minion_id, example_network_data(), bin_dir, salt_tree=source / "salt",
                      wgmesh_formula={"manage_packages": False, "manage_services": False})
    return make


def installed(bin_dir: Path) -> set[str]:
    done = subprocess.run([str(bin_dir / "python"), "-m", "pip", "list", "--format=json"],
                          capture_output=True, text=True, check=True)
    return {canonicalize_name(p["name"]) for p in json.loads(done.stdout)}


def test_onedir_install_of_the_wheel(onedir, minion):
    bin_dir, wheel, _ = onedir
    salt_only = installed(bin_dir)
    # (Salt 3008 itself requires GitPython, and pydantic through typer; a 3006/3007 onedir has neither)
    assert "salt" in salt_only and not salt_only & {"netaddr", "segno", "saltext-wgmesh"}

    outsider, hub = minion("b"), minion("z")

    def hub_highstate_fails_with(reason):
        done = hub.call("state.highstate")
        assert done.returncode != 0
        assert f"the wgmesh module does not load on z: {reason}" in done.stdout, done.stdout[-2000:]
        assert "has no attribute" not in done.stdout

    # 0. Salt alone: wgmesh not installed
    assert state_ids(outsider.ok("state.highstate")) == ["fleet-common"]
    hub_highstate_fails_with("install saltext-wgmesh (salt-pip) or run saltutil.sync_all")

    # 1. the wheel without its dependencies: a minion without netaddr
    pip(bin_dir / "python", "--no-deps", str(wheel))
    assert state_ids(outsider.ok("state.highstate")) == ["fleet-common"]
    hub_highstate_fails_with("wgmesh: cannot import the wgmesh_core package (No module named 'netaddr')")

    # 2. the wheel as `salt-pip install` does it: with its (minion) dependencies
    pins = re.findall(r"^[A-Za-z0-9._-]+==\S+", (REPO / "requirements.txt").read_text(), re.M)
    (wheel.parent / "pins.txt").write_text("\n".join(pins) + "\n")    # the locked versions, from the pip cache
    pip(bin_dir / "python", str(wheel), "-c", str(wheel.parent / "pins.txt"))
    now = installed(bin_dir)
    assert {"netaddr", "pydantic", "saltext-wgmesh"} <= now
    assert "segno" not in now                        # the CLI's extra only
    assert outsider.ok("wgmesh.role") == "none"
    assert hub.ok("wgmesh.role") == "hub"
    assert "wgmesh.role" in hub.ok("sys.doc", "wgmesh")
    assert {"wgmesh.private_key", "wgmesh.tunnel", "wgmesh.firewall"} <= set(hub.ok("sys.list_state_functions", "wgmesh"))
    assert HUB_STATES <= set(hub.ok("state.show_highstate"))

    # the runner and the ext_pillar too, and all of it from the venv's site-packages
    probe = """
import json, salt.config, salt.loader
opts = salt.config.master_config(None)
opts.update(extension_modules="/nonexistent", file_client="local")
utils = salt.loader.utils(opts)
print(json.dumps({
    "runner": "wgmesh.client_config" in salt.loader.runner(opts, utils=utils),
    "ext_pillar": "wgmesh_secrets" in salt.loader.pillars(opts, salt.loader.minion_mods(opts, utils=utils)),
    "engine": "wgmesh_push.start" in salt.loader.engines(opts, salt.loader.minion_mods(opts, utils=utils),
                                                         salt.loader.runner(opts, utils=utils), utils),
    "dirs": __import__("saltext.wgmesh").wgmesh.loader_dirs(),
}))
"""
    # (cwd: not this checkout, whose saltext/ folder Python would import first)
    done = subprocess.run([str(bin_dir / "python"), "-c", probe], cwd=bin_dir, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["runner"] and found["ext_pillar"] and found["engine"], found
    site = str(bin_dir.parent / "lib")
    assert sorted(found["dirs"]) == ["engines", "modules", "pillar", "runners", "states"]
    assert all(d.startswith(site) for dirs in found["dirs"].values() for d in dirs), found["dirs"]
