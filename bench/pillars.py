"""Pillars of N developers written to disk as the example's files, for the benchmarks."""
import base64
import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import netaddr
import yaml

from wgmesh_core.jsondata import dump_json_sls
from wgmesh_core.source import dump_sls

REPO = Path(__file__).resolve().parents[1]
FIRST_DEVELOPER = netaddr.IPAddress("10.64.1.0")
GIT = ["git", "-c", "user.name=bench", "-c", "user.email=bench@example.invalid", "-c", "commit.gpgsign=false"]


def developer(i: int) -> dict:
    """Developer number ``i``: its own address and key; every other one reaches every LAN."""
    return {"address": str(FIRST_DEVELOPER + i),
            "public_key": base64.b64encode(hashlib.sha256(str(i).encode()).digest()).decode(),
            "lan_access": "all" if i % 2 else ["a"]}


FORMATS = {"yaml": dump_sls, "json": dump_json_sls}    # developers.sls as #!yaml or #!json


def write_developers(root: Path, developers: int, fmt: str = "yaml") -> None:
    devs = {f"dev{i:05d}": developer(i) for i in range(developers)}
    (root / "wgmesh" / "developers.sls").write_text(FORMATS[fmt]({"wgmesh": {"developers": devs}}))


def add_developer(root: Path, number: int) -> None:
    """Developer ``number`` appended to wgmesh/developers.sls, as a pull request adds one (a line
    in a JSON file, an entry in a YAML one)."""
    path = root / "wgmesh" / "developers.sls"
    text, name = path.read_text(), f"dev{number:05d}"
    if text.startswith("#!json"):
        closing = "\n    }\n  }\n}\n"
        entry = f",\n      {json.dumps(name)}: {json.dumps(developer(number))}"
        path.write_text(text.removesuffix(closing) + entry + closing)
        return
    entry = yaml.safe_dump({name: developer(number)}, sort_keys=False)
    path.write_text(text + "".join(f"    {line}\n" for line in entry.splitlines()))


def pillar_with(root: Path, developers: int, fmt: str = "yaml") -> Path:
    """The repository's example pillar (pillar/), renumbered into 10.64.0.0/10, with ``developers``
    developers in wgmesh/developers.sls (``fmt``: yaml or json) and no intent tests."""
    shutil.copytree(REPO / "pillar", root)
    (root / "tests.yaml").unlink(missing_ok=True)
    network = yaml.safe_load((root / "wgmesh" / "network.sls").read_text())
    net = network["wgmesh"]
    net.update(network="10.64.0.0/10", hub=dict(net["hub"], address="10.64.0.1"))
    for n, gateway in enumerate(net["gateways"].values()):
        gateway["address"] = f"10.64.0.{n + 2}"
    (root / "wgmesh" / "network.sls").write_text(dump_sls(network))
    write_developers(root, developers, fmt)
    return root


def git_commit(root: Path, message: str = "bench") -> str:
    """Commit everything under ``root`` (a repository is made on the first call); the commit id."""
    if not (root / ".git").exists():
        subprocess.run(["git", "init", "-q", "-b", "main", str(root)], check=True)
    subprocess.run([*GIT, "-C", str(root), "add", "-A"], check=True)
    subprocess.run([*GIT, "-C", str(root), "commit", "-qm", message], check=True)
    return subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], check=True, capture_output=True,
                          text=True).stdout.strip()
