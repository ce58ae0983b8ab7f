"""Benchmark: the hub's own state run, `salt-call --local state.apply wgmesh`, at 1,000 and
10,000 developers (root; wgquick backend, iptables, wireguard-go; about 2 minutes).

The hub runs in a network and mount namespace of its own (tests/salt/conftest.py's LocalHost:
nothing reaches the machine's network or files). Steps, each timed as a whole process (Salt's
start, pillar compile, rendering the state tree and the apply): the first apply (the tunnel
comes up with every peer), an apply that changes nothing, one adding a developer, one revoking
a developer. Every step must succeed, and the hub must end with one peer per active peer.

Targets (issue 12): the add-one run under 1.5 s at 10,000 developers; the first apply under 5 s.
Run: .venv/bin/python bench/bench_state.py [--sizes 1000,10000]
"""
import argparse
import base64
import copy
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import yaml  # noqa: E402

from pillars import developer  # noqa: E402
from tests.salt.conftest import FAKES, LocalHost, require_root_netns, state_results  # noqa: E402
from wgmesh_core import public_key  # noqa: E402
from wgmesh_salt import read_document  # noqa: E402

STEPS = ("first apply", "no change", "add one", "revoke one")


def random_key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


def hub_pillar(developers: int) -> dict:
    net = copy.deepcopy(read_document(REPO / "pillar").network)
    net.update(network="10.64.0.0/10", backend="wgquick", firewall="iptables",
               hub=dict(net["hub"], address="10.64.0.1", endpoint="203.0.113.1:51820"),
               developers={f"dev{i:05d}": developer(i) for i in range(developers)})
    for n, gateway in enumerate(net["gateways"].values()):
        gateway["address"] = f"10.64.0.{n + 2}"
    keys = {host: public_key(random_key()) for host in ("z", "a", "c")}
    psks = {peer: random_key() for peer in [*net["gateways"], *net["developers"]]}
    return {"wgmesh": net, "wgmesh_host_keys": keys, "wgmesh_psk": psks}


def variants(pillar: dict, developers: int) -> tuple[dict, dict]:
    """(the pillar with one developer more, that one with dev00000 revoked)."""
    added = copy.deepcopy(pillar)
    added["wgmesh"]["developers"][f"dev{developers:05d}"] = developer(developers)
    added["wgmesh_psk"][f"dev{developers:05d}"] = random_key()
    revoked = copy.deepcopy(added)
    revoked["wgmesh"]["developers"]["dev00000"]["revoked"] = True
    return added, revoked


# Runs a command with its stdout to a file; prints its wall, user and system seconds (its
# processes and theirs).
TIMED = ("import resource, subprocess, sys, time; start = time.perf_counter(); "
         "code = subprocess.call(sys.argv[2:], stdout=open(sys.argv[1], 'w')); "
         "usage = resource.getrusage(resource.RUSAGE_CHILDREN); "
         "print(time.perf_counter() - start, usage.ru_utime, usage.ru_stime); sys.exit(code)")


def timed(host: LocalHost, out: Path) -> str:
    """A shell step timing one state run; its JSON goes to ``out``."""
    return f"{sys.executable} -c \"{TIMED}\" {out} {host.salt_call('state.apply wgmesh')}"


def run_size(tmp: Path, developers: int) -> dict:
    pillar = hub_pillar(developers)
    host = LocalHost(tmp, f"z{developers}", pillar)
    try:
        net_sls = host.dir / "pillar" / "net.sls"
        added, revoked = variants(pillar, developers)
        for name, data in (("added", added), ("revoked", revoked)):
            (host.dir / f"{name}.sls").write_text(yaml.safe_dump(data))
        # the minion id must be the hub's: LocalHost names the host, the pillar names the hub
        for data_file in (net_sls, host.dir / "added.sls", host.dir / "revoked.sls"):
            data = yaml.safe_load(data_file.read_text())
            data["wgmesh"]["hub"]["minion"] = host.id
            data_file.write_text(yaml.safe_dump(data))
        results = [host.dir / f"step{i}.json" for i in range(len(STEPS))]
        out = host.run(host.salt_call("saltutil.sync_all") + " > /dev/null",
                       timed(host, results[0]), timed(host, results[1]),
                       f"cp {host.dir / 'added.sls'} {net_sls}", timed(host, results[2]),
                       f"cp {host.dir / 'revoked.sls'} {net_sls}", timed(host, results[3]),
                       "wg show wg0 peers | wc -l", extra_path=f"{FAKES}:")
        times = [[float(x) for x in out[i].split()[-3:]] for i in (1, 2, 4, 6)]
        seconds = [(wall, user + system) for wall, user, system in times]
        for step, result in zip(STEPS, results):
            failed = {k: r["comment"] for k, r in state_results(result.read_text()).items() if r["result"] is not True}
            assert not failed, (step, failed)
        no_change = state_results(results[1].read_text())
        assert not any(r["changes"] for r in no_change.values()), "the no-change run changed something"
        assert int(out[7]) == developers + 2, f"{out[7].strip()} peers on the hub, expected {developers + 2}"
        return dict(zip(STEPS, seconds))
    finally:
        host.destroy()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000")
    args = parser.parse_args()
    require_root_netns()
    print(f"{'developers':>10}  " + "  ".join(f"{step:>15}" for step in STEPS) + "   (wall s (CPU s), one run each)")
    with tempfile.TemporaryDirectory(prefix="wgmesh-bench-state-") as tmp:
        for size in (int(s) for s in args.sizes.split(",")):
            row = run_size(Path(tmp), size)
            print(f"{size:>10}  " + "  ".join(f"{row[step][0]:>7.2f} ({row[step][1]:>5.2f})" for step in STEPS), flush=True)
            print(json.dumps({"developers": size, **row}), file=sys.stderr)


if __name__ == "__main__":
    main()
