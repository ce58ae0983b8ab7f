"""Benchmark: `wgmesh twin test` (lab/twin.py), the whole bring-up, measurement and teardown.

    .venv/bin/python bench/bench_twin.py                 # the article's pillar (root; target < 60 s)
    .venv/bin/python bench/bench_twin.py --scale 10 50   # a generated network: 10 gateways, 50 developers

Prints each step's time, the total, and the machine's load average before and after (the
machine is shared: the load says how much of the time was waiting for a core).  The generated
network alternates route mode with a managed LAN router, route mode with the admin's route and
masquerade; each developer may reach one LAN (every fifth all of them, every seventh is a
Windows laptop); its tests: each developer to a host of its LAN and of another LAN (reach /
blocked), to the hub, the hub into each LAN (blocked), and the first developer in an office.
"""
import argparse
import base64
import hashlib
import io
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from lab.twin import run  # noqa: E402


def placeholder_key(n: int) -> str:
    """A well-formed public key (the twin replaces it with the one each laptop makes)."""
    return base64.b64encode(hashlib.sha256(f"developer {n}".encode()).digest()).decode()


def generated_pillar(root: Path, gateways: int, developers: int) -> Path:
    """A pillar of ``gateways`` offices and ``developers`` laptops, with intent tests."""
    (root / "wgmesh").mkdir(parents=True)
    (root / "top.sls").write_text("#!yaml\nbase:\n  '*':\n    - wgmesh.network\n    - wgmesh.mine\n")
    shutil.copy(REPO / "pillar" / "wgmesh" / "mine.sls", root / "wgmesh")   # the hosts publish their keys
    offices, people, hosts, tests = {}, {}, {}, []
    for g in range(gateways):
        mode = ("route", "route", "masquerade")[g % 3]
        offices[f"g{g}"] = {"address": f"10.60.0.{g + 2}", "lan": f"10.{100 + g}.0.0/24",
                            "lan_address": f"10.{100 + g}.0.2", "lan_mode": mode,
                            **({"lan_router": f"rt{g}"} if g % 3 == 0 else {})}
        hosts[f"h{g}"] = f"10.{100 + g}.0.10"
        tests.append({"from": "hub", "to": f"h{g}", "expect": "blocked"})
    for d in range(developers):
        own, other = d % gateways, (d + 1) % gateways
        access = "all" if d % 5 == 0 else [f"g{own}"]
        people[f"d{d}"] = {"address": f"10.60.1.{d + 1}", "public_key": placeholder_key(d), "lan_access": access,
                           **({"platform": "windows"} if d % 7 == 3 else {})}
        tests += [{"from": f"d{d}", "to": f"h{own}", "expect": "reach", "via": "tunnel"},
                  {"from": f"d{d}", "to": f"h{other}", "expect": "reach" if access == "all" else "blocked"},
                  {"from": f"d{d}", "to": "hub", "expect": "reach"}]
    tests.append({"from": "d1", "at": "g1", "to": "h1", "expect": "reach", "via": "on-link"})
    network = {"network": "10.60.0.0/16", "hub": {"minion": "hub", "address": "10.60.0.1",
                                                  "endpoint": "198.51.100.1"},
               "gateways": offices, "developers": people}
    (root / "wgmesh" / "network.sls").write_text("#!yaml\n" + yaml.safe_dump({"wgmesh": network}))
    (root / "tests.yaml").write_text("#!yaml\n" + yaml.safe_dump({"hosts": hosts, "tests": tests}))
    return root


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", nargs=2, type=int, metavar=("GATEWAYS", "DEVELOPERS"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        pillar = generated_pillar(Path(scratch) / "pillar", *args.scale) if args.scale else REPO / "pillar"
        load = os.getloadavg()[0]
        out = io.StringIO()
        start = time.monotonic()
        code = run(pillar, lab_id="twbench", out=out, workdir=Path(scratch) / "twin")
        total = time.monotonic() - start
    text = out.getvalue()
    print("\n".join(line for line in text.splitlines() if not line.startswith("tests[")))
    print(f"\nwgmesh twin test {'article' if not args.scale else f'{args.scale[0]} gateways, {args.scale[1]} developers'}: "
          f"{total:.1f} s including teardown, exit {code}; load average {load:.1f} before, "
          f"{os.getloadavg()[0]:.1f} after (2 cores)")
    return code


if __name__ == "__main__":
    sys.exit(main())
