"""Benchmark: validate + plan + render the hub of networks of 100, 1,000 and 10,000 developers.

Target (issue 2): 10,000 developers in under 1 s, growing linearly.
Run: .venv/bin/python bench/bench_render.py [--repeat N]
"""
import argparse
import base64
import datetime
import hashlib
import statistics
import time

import netaddr

from wgmesh_core import host_config, host_files, load_network
from wgmesh_salt import read_document


def network_with(developers: int) -> dict:
    data = read_document("pillar").network
    data = dict(data, network="10.64.0.0/10", developers={})
    first = netaddr.IPAddress("10.64.1.0")
    for i in range(developers):
        key = base64.b64encode(hashlib.sha256(str(i).encode()).digest()).decode()
        data["developers"][f"dev{i:05d}"] = {
            "address": str(first + i), "public_key": key, "lan_access": "all" if i % 2 else ["a"]}
    data["hub"] = dict(data["hub"], address="10.64.0.1")
    data["gateways"] = {gid: dict(gw, address=f"10.64.0.{n + 2}") for n, (gid, gw) in enumerate(data["gateways"].items())}
    return data


def once(data) -> float:
    start = time.perf_counter()
    spec = load_network(data)
    today = datetime.date.today()
    for host in ("z", "a", "c"):
        host_files(host_config(spec, host, today, {"z": "k", "a": "k", "c": "k"}, {}))
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    print(f"{'developers':>10}  {'median s':>9}  {'min s':>7}  {'us/developer':>12}")
    for size in (100, 1_000, 10_000):
        data = network_with(size)
        times = [once(data) for _ in range(args.repeat)]
        median = statistics.median(times)
        print(f"{size:>10}  {median:>9.3f}  {min(times):>7.3f}  {median / size * 1e6:>12.1f}")


if __name__ == "__main__":
    main()
