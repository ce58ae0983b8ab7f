"""Benchmark: static evaluation of 1,000 intent tests on a network of 10,000 developers.

Target (issue 13): under 1 s.  The network: 10 gateways (route and masquerade LANs), 10,000
developers with mixed LAN access and platforms, some expiring; the tests: random sources
(developers, some sitting in an office, gateways, the hub, LAN hosts) and destinations, a
few with their own date.  Timed: parsing and checking the tests file against the network
(``load_intent``) and predicting every test (``check``); the network's own validation is
timed apart, as `wgmesh validate` does it anyway.
Run: .venv/bin/python bench/bench_intent.py [--developers N] [--tests N] [--repeat N]
"""
import argparse
import base64
import datetime
import hashlib
import random
import statistics
import time

import netaddr

from wgmesh_core.intent import check, load_intent, refusals
from wgmesh_core.validate import load_network

TODAY = datetime.date(2026, 1, 15)


def network(developers: int, gateways: int = 10) -> dict:
    gws = {f"gw{i}": {"address": f"10.64.0.{i + 2}", "lan": f"192.168.{100 + i}.0/24",
                      "lan_address": f"192.168.{100 + i}.1", "lan_mode": "masquerade" if i % 2 else "route",
                      **({"lan_router": f"router{i}"} if i % 4 == 0 else {})} for i in range(gateways)}
    accesses = ["all", "none", ["gw0"], ["gw1", "gw2"], ["gw3", "gw4", "gw5"]]
    first = netaddr.IPAddress("10.64.1.0")
    devs = {}
    for i in range(developers):
        devs[f"dev{i:05d}"] = {
            "address": str(first + i),
            "public_key": base64.b64encode(hashlib.sha256(str(i).encode()).digest()).decode(),
            "lan_access": accesses[i % len(accesses)],
            **({"platform": "windows"} if i % 7 == 0 else {}),
            **({"expires": "2026-03-31"} if i % 11 == 0 else {}),
            **({"revoked": True} if i % 97 == 0 else {})}
    return {"network": "10.64.0.0/10", "hub": {"minion": "hub", "address": "10.64.0.1", "endpoint": "vpn.example.com"},
            "gateways": gws, "developers": devs}


def tests(data: dict, count: int, seed: int = 13) -> dict:
    rng = random.Random(seed)
    devs, gws = list(data["developers"]), list(data["gateways"])
    hosts = {f"host{i}": f"192.168.{100 + i}.10" for i in range(len(gws))}
    entries = []
    for _ in range(count):
        kind = rng.random()
        if kind < 0.7:
            entry = {"from": rng.choice(devs)}
            if rng.random() < 0.1:
                entry["at"] = rng.choice(gws)
        elif kind < 0.8:
            entry = {"from": rng.choice(gws)}
        elif kind < 0.9:
            entry = {"from": "hub"}
        else:
            entry = {"from": rng.choice(list(hosts))}
        entry["to"] = rng.choice([rng.choice(list(hosts)), rng.choice(devs), rng.choice(gws), "hub"])
        if entry["to"] == entry["from"]:
            entry["to"] = "hub" if entry["from"] != "hub" else gws[0]
        entry["expect"] = rng.choice(["reach", "blocked"])
        if rng.random() < 0.3:
            entry.update(proto="tcp", port=22)
        if rng.random() < 0.05:
            entry["date"] = rng.choice(["2026-04-01", "2026-12-31"])
        entries.append(entry)
    return {"hosts": hosts, "tests": entries}


def once(spec, intent_data) -> tuple[float, int, int]:
    start = time.perf_counter()
    intent = load_intent(intent_data, spec, TODAY)
    results = check(spec, intent, TODAY)
    elapsed = time.perf_counter() - start
    return elapsed, len(results), len(refusals(results))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--developers", type=int, default=10_000)
    parser.add_argument("--tests", type=int, default=1_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    data = network(args.developers)
    start = time.perf_counter()
    spec = load_network(data)
    validate = time.perf_counter() - start
    intent_data = tests(data, args.tests)
    runs = [once(spec, intent_data) for _ in range(args.repeat)]
    times = [t for t, _, _ in runs]
    _, count, failing = runs[0]
    print(f"network: {args.developers:,} developers, {len(data['gateways'])} gateways "
          f"(validated in {validate:.3f} s, not counted)")
    print(f"intent: {count:,} tests ({failing:,} of the random expectations fail, as random ones do)")
    print(f"load_intent + check: median {statistics.median(times):.3f} s, min {min(times):.3f} s "
          f"over {args.repeat} runs (target: under 1 s)")


if __name__ == "__main__":
    main()
