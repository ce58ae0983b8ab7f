"""Benchmark: the hub's own state run, `salt-call --local state.apply wgmesh`, at 1,000 and
10,000 developers (root; wgquick backend, iptables, wireguard-go; about 2 minutes).

The hub runs in a network and mount namespace of its own (tests/salt/conftest.py's LocalHost:
nothing reaches the machine's network or files). Steps, each timed as a whole process (Salt's
start, pillar compile, rendering the state tree and the apply): the first apply (the tunnel
comes up with every peer), an apply that changes nothing, one adding a developer, one revoking
a developer; then the gate's fast path adding one more (`salt-call wgmesh.update_live`: the
peer and the firewall live, before the state run that follows for the files, untimed, which
must find nothing live to change). Every step must succeed, and the hub must end with one peer
per active peer.

Targets (issue 12): the add-one run under 1.5 s at 10,000 developers; the first apply under 5 s.
Run: .venv/bin/python bench/bench_state.py [--sizes 1000,10000] [--format json]
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

from machine import describe  # noqa: E402
from pillars import developer  # noqa: E402
from tests.salt.conftest import FAKES, LocalHost, require_root_netns, state_results  # noqa: E402
from wgmesh_core import public_key  # noqa: E402
from wgmesh_salt import read_document  # noqa: E402

STEPS = ("first apply", "no change", "add one", "revoke one", "fast path add")


def random_key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


def hub_pillar(developers: int, hub_keepalive: int = 0) -> dict:
    """The example's network, renumbered, with ``developers`` developers; the hub's keepalive
    on its peers ``hub_keepalive`` (0, the default, where the example has the article's 15)."""
    net = copy.deepcopy(read_document(REPO / "pillar").network)
    net.update(network="10.64.0.0/10", backend="wgquick", firewall="iptables",
               hub=dict(net["hub"], address="10.64.0.1", endpoint="203.0.113.1:51820", keepalive=hub_keepalive),
               developers={f"dev{i:05d}": developer(i) for i in range(developers)})
    for n, gateway in enumerate(net["gateways"].values()):
        gateway["address"] = f"10.64.0.{n + 2}"
    keys = {host: public_key(random_key()) for host in ("z", "a", "c")}
    psks = {peer: random_key() for peer in [*net["gateways"], *net["developers"]]}
    return {"wgmesh": net, "wgmesh_host_keys": keys, "wgmesh_psk": psks}


def with_developer(pillar: dict, number: int) -> dict:
    more = copy.deepcopy(pillar)
    more["wgmesh"]["developers"][f"dev{number:05d}"] = developer(number)
    more["wgmesh_psk"][f"dev{number:05d}"] = random_key()
    return more


def variants(pillar: dict, developers: int) -> tuple[dict, dict, dict]:
    """(the pillar with one developer more, that one with dev00000 revoked, that one with
    another developer)."""
    added = with_developer(pillar, developers)
    revoked = copy.deepcopy(added)
    revoked["wgmesh"]["developers"]["dev00000"]["revoked"] = True
    return added, revoked, with_developer(revoked, developers + 1)


# Runs a command with its stdout to a file; prints its wall, user and system seconds (its
# processes and theirs).
TIMED = ("import resource, subprocess, sys, time; start = time.perf_counter(); "
         "code = subprocess.call(sys.argv[2:], stdout=open(sys.argv[1], 'w')); "
         "usage = resource.getrusage(resource.RUSAGE_CHILDREN); "
         "print(time.perf_counter() - start, usage.ru_utime, usage.ru_stime); sys.exit(code)")


PROFILE_DIR = None   # --profile: each timed salt-call runs under cProfile, its stats saved here


def timed(host: LocalHost, out: Path, salt_args: str = "state.apply wgmesh") -> str:
    """A shell step timing one salt-call (a state run); its JSON goes to ``out``."""
    call = host.salt_call(salt_args)
    if PROFILE_DIR:
        stats = Path(PROFILE_DIR) / f"{host.id}-{out.stem}.prof"
        call = f"{sys.executable} -m cProfile -o {stats} {Path(sys.executable).parent / call}"
    return f"{sys.executable} -c \"{TIMED}\" {out} {call}"


def sls_text(data: dict, fmt: str) -> str:
    """The hub's pillar file, with the renderer line every pillar file has (the gate's rule)."""
    return "#!json\n" + json.dumps(data) if fmt == "json" else "#!yaml\n" + yaml.safe_dump(data)


def run_size(tmp: Path, developers: int, fmt: str = "yaml", hub_keepalive: int = 0) -> dict:
    pillar = hub_pillar(developers, hub_keepalive)
    host = LocalHost(tmp, f"z{developers}", pillar)
    try:
        net_sls = host.dir / "pillar" / "net.sls"
        added, revoked, readded = variants(pillar, developers)
        # the minion id must be the hub's: LocalHost names the host, the pillar names the hub
        for name, data in (("pillar/net", pillar), ("added", added), ("revoked", revoked), ("readded", readded)):
            data["wgmesh"]["hub"]["minion"] = host.id
            (host.dir / f"{name}.sls").write_text(sls_text(data, fmt))
        results = [host.dir / f"step{i}.json" for i in range(len(STEPS))]
        after_fast = host.dir / "after-fast.json"
        out = host.run(host.salt_call("saltutil.sync_all") + " > /dev/null",
                       timed(host, results[0]), timed(host, results[1]),
                       f"cp {host.dir / 'added.sls'} {net_sls}", timed(host, results[2]),
                       f"cp {host.dir / 'revoked.sls'} {net_sls}", timed(host, results[3]),
                       f"cp {host.dir / 'readded.sls'} {net_sls}", timed(host, results[4], "wgmesh.update_live"),
                       host.salt_call("state.apply wgmesh") + f" > {after_fast}",
                       "wg show wg0 peers | wc -l", extra_path=f"{FAKES}:")
        times = [[float(x) for x in out[i].split()[-3:]] for i in (1, 2, 4, 6, 8)]
        seconds = [(wall, user + system) for wall, user, system in times]
        for step, result in [*zip(STEPS[:4], results), ("after the fast path", after_fast)]:
            failed = {k: r["comment"] for k, r in state_results(result.read_text()).items() if r["result"] is not True}
            assert not failed, (step, failed)
        no_change = state_results(results[1].read_text())
        assert not any(r["changes"] for r in no_change.values()), "the no-change run changed something"
        fast = json.loads(results[4].read_text())["local"]
        assert fast["tunnel"]["peers"]["added"] == [f"dev{developers + 1:05d}"], fast
        late = state_results(after_fast.read_text())
        assert not late["wgmesh-tunnel"]["changes"] and not late["wgmesh-firewall"]["changes"], late
        assert int(out[10]) == developers + 3, f"{out[10].strip()} peers on the hub, expected {developers + 3}"
        return dict(zip(STEPS, seconds))
    finally:
        host.destroy()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--profile", metavar="DIR",
                        help="run each timed salt-call under cProfile (slower), saving <host>-step<N>.prof in DIR")
    parser.add_argument("--format", choices=("yaml", "json"), default="yaml",
                        help="the hub's pillar file as #!yaml or #!json")
    parser.add_argument("--hub-keepalive", type=int, default=0, metavar="SECONDS",
                        help="the hub's PersistentKeepalive on its peers (hub.keepalive; the article's: 15)")
    args = parser.parse_args()
    global PROFILE_DIR
    PROFILE_DIR = args.profile
    require_root_netns()
    print(f"# {describe()}; the pillar in {args.format}; hub.keepalive {args.hub_keepalive}")
    print(f"{'developers':>10}  " + "  ".join(f"{step:>15}" for step in STEPS) + "   (wall s (CPU s), one run each)")
    with tempfile.TemporaryDirectory(prefix="wgmesh-bench-state-") as tmp:
        for size in (int(s) for s in args.sizes.split(",")):
            row = run_size(Path(tmp), size, args.format, args.hub_keepalive)
            print(f"{size:>10}  " + "  ".join(f"{row[step][0]:>7.2f} ({row[step][1]:>5.2f})" for step in STEPS), flush=True)
            print(json.dumps({"developers": size, **row}), file=sys.stderr)


if __name__ == "__main__":
    main()
