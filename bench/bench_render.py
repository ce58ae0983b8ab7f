"""Benchmark: the core alone (no YAML, no Salt): model, plan and render the hub and both gateways
of networks of 100, 1,000, 10,000 and 50,000 developers, every peer with its keys.

The data is the example's network with N developers (bench/pillars.py), as a dict; every peer
gets a public key and a preshared key, so the hub's config has one peer per developer (checked).
What users run, the command from pillar files on disk, is bench/bench_cli.py.
Run: .venv/bin/python bench/bench_render.py [--repeat N] [--sizes 100,1000]
"""
import argparse
import datetime
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe  # noqa: E402
from pillars import FIRST_DEVELOPER, developer  # noqa: E402

from wgmesh_core import host_config, host_files, load_network  # noqa: E402
from wgmesh_salt import read_document  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
HOSTS = ("z", "a", "c")


def network_with(developers: int) -> dict:
    data = read_document(REPO / "pillar").network
    data = dict(data, network="10.64.0.0/10", developers={f"dev{i:05d}": developer(i) for i in range(developers)})
    data["hub"] = dict(data["hub"], address="10.64.0.1")
    data["gateways"] = {gid: dict(gw, address=f"10.64.0.{n + 2}") for n, (gid, gw) in enumerate(data["gateways"].items())}
    assert str(FIRST_DEVELOPER) not in {gw["address"] for gw in data["gateways"].values()}
    return data


def keys_for(data) -> tuple[dict, dict]:
    public = {host: f"{host:A>43}=" for host in HOSTS}
    psks = {peer: f"{peer:B>43}=" for peer in [*data["gateways"], *data["developers"]]}
    return public, psks


def once(data, public, psks) -> float:
    start = time.perf_counter()
    spec = load_network(data)
    today = datetime.date.today()
    configs = [host_config(spec, host, today, public, psks) for host in HOSTS]
    for config in configs:
        host_files(config)
    elapsed = time.perf_counter() - start
    hub = configs[0]
    assert len(hub.peers) == len(data["developers"]) + len(data["gateways"]) and not hub.pending, hub.pending[:3]
    return elapsed


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--sizes", default="100,1000,10000,50000")
    args = parser.parse_args()
    print(f"# {describe()}")
    print(f"{'developers':>10}  {'median s':>9}  {'min s':>7}  {'us/developer':>12}")
    for size in (int(s) for s in args.sizes.split(",")):
        data = network_with(size)
        public, psks = keys_for(data)
        times = [once(data, public, psks) for _ in range(args.repeat)]
        median = statistics.median(times)
        print(f"{size:>10}  {median:>9.3f}  {min(times):>7.3f}  {median / size * 1e6:>12.1f}", flush=True)


if __name__ == "__main__":
    main()
