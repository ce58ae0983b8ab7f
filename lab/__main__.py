"""python -m lab up|status|down|exec|cleanup|list"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

from .labs import cleanup_stale, list_labs, status_report
from .topology import REPO, Lab

DEFAULT_ID = "main"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m lab", description=__doc__)
    ap.add_argument("--id", default=os.environ.get("LAB_ID", DEFAULT_ID),
                    help="lab id (default: %(default)s, or $LAB_ID)")
    ap.add_argument("--workdir", default=None, help="default: <repo>/.lab/<id>")
    sub = ap.add_subparsers(dest="cmd", required=True)
    up = sub.add_parser("up", help="build the topology (stays up after exit)")
    up.add_argument("--salt", action="store_true",
                    help="also start salt-master and minions")
    up.add_argument("--minions", default="z,a,c",
                    help="hosts that run a minion with --salt (default: %(default)s)")
    up.add_argument("--file-roots", default=f"{REPO}/salt,{REPO}",
                    help="comma-separated (default: %(default)s)")
    up.add_argument("--pillar-roots", default=f"{REPO}/pillar",
                    help="comma-separated (default: %(default)s)")
    st = sub.add_parser("status", help="connectivity matrix + processes")
    st.add_argument("--timeout", type=float, default=1)
    sub.add_parser("down", help="tear the lab down")
    ex = sub.add_parser("exec", help="run a command in a host: exec HOST -- CMD...")
    ex.add_argument("host")
    ex.add_argument("argv", nargs=argparse.REMAINDER)
    cl = sub.add_parser("cleanup", help="remove leftovers of dead labs")
    cl.add_argument("--all", action="store_true", help="also persistent (CLI) labs")
    sub.add_parser("list", help="labs recorded under /run/wgmesh-lab")
    args = ap.parse_args(argv)

    if args.cmd == "cleanup":
        print("cleaned:", " ".join(cleanup_stale(include_persistent=args.all)) or "nothing")
        return 0
    if args.cmd == "list":
        for st in list_labs():
            print(f"{st.get('lab_id'):12} {st.get('status', '?'):9} "
                  f"persistent={st.get('persistent')} {st.get('workdir', '')}")
        return 0

    lab = Lab(args.id, workdir=args.workdir)
    if args.cmd == "up":
        t0 = time.monotonic()
        try:
            lab.up()
            lab.state["persistent"] = True
            lab._save()
            print(f"lab {lab.lab_id} up in {time.monotonic() - t0:.1f}s (workdir {lab.workdir})")
            if args.salt:
                t1 = time.monotonic()
                if lab.pid("master", "salt-master") is None:
                    lab.start_master(args.file_roots.split(","), args.pillar_roots.split(","))
                hosts = [h for h in args.minions.split(",") if h]
                todo = [h for h in hosts if lab.pid(h, "salt-minion") is None]
                lab.start_minions(todo)
                print(f"salt master + minions {','.join(hosts)} up in "
                      f"{time.monotonic() - t1:.1f}s")
        except BaseException:
            print("up failed; tearing down", file=sys.stderr)
            lab.down()
            raise
        return 0
    if args.cmd == "status":
        if lab.state.get("status") != "up":
            print(f"lab {lab.lab_id}: {lab.state.get('status')}")
            return 1
        print(status_report(lab, timeout=args.timeout))
        return 0
    if args.cmd == "down":
        problems = lab.down()
        for p in problems:
            print("problem:", p, file=sys.stderr)
        print(f"lab {lab.lab_id} down" + (" (with problems)" if problems else ""))
        return 1 if problems else 0
    if args.cmd == "exec":
        argv = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
        argv = argv or ["bash", "-i"]
        return subprocess.call(lab.prefix(args.host) + argv, env=lab.host_env(args.host))
    return 2


if __name__ == "__main__":
    sys.exit(main())
