"""Benchmark: the `wgmesh` command as a pull request's pipeline runs it, from pillar files on disk.

For 100 / 1,000 / 10,000 / 50,000 developers (bench/pillars.py: the example's network, the
developers in wgmesh/developers.sls), each a new process, Python's start included:
- `wgmesh validate DIR`
- `wgmesh render DIR --host z --out OUT` (the hub: one peer per developer, with placeholder keys)
- `wgmesh plan REPO --base B --head H`, where H adds one developer to B
Median wall time and CPU time (user + system: less sensitive to a busy machine) of --repeat
runs, and the largest maximum resident set size among them.

Targets (issue 12): 10,000 developers validate < 1 s, plan < 2 s; 50,000 within 5x of 10,000
and under 500 MiB.
Run: .venv/bin/python bench/bench_cli.py [--repeat N] [--sizes 100,1000,...] [--format json]
(--format json: developers.sls written as ``#!json``, a developer per line)
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe  # noqa: E402
from pillars import FORMATS, add_developer, git_commit, pillar_with  # noqa: E402

WGMESH = Path(sys.executable).parent / "wgmesh"
MAX_BYTES = 64 * 2**20     # --max-pillar-bytes: 50,000 developers take about 6 MB


def run(argv) -> tuple[float, float, float]:
    """(wall seconds, CPU seconds, max RSS in MiB) of one command, which must succeed."""
    start = time.perf_counter()
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    error = process.stderr.read().decode()
    process.stderr.close()
    process.returncode = os.waitstatus_to_exitcode(status)
    assert process.returncode == 0, f"{argv}: exit {process.returncode}: {error}"
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def commands(tmp: Path, size: int, fmt: str) -> dict:
    root = pillar_with(tmp / f"p{size}", size, fmt)
    base = git_commit(root, "base")
    add_developer(root, size)
    head = git_commit(root, "add one developer")
    limit = ["--max-pillar-bytes", str(MAX_BYTES)]
    return {
        "validate": [str(WGMESH), "validate", str(root), *limit],
        "render": [str(WGMESH), "render", str(root), "--host", "z", "--out", str(tmp / f"out{size}"), *limit],
        "plan": [str(WGMESH), "plan", str(root), "--base", base, "--head", head, *limit],
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--sizes", default="100,1000,10000,50000")
    parser.add_argument("--format", choices=FORMATS, default="yaml", help="developers.sls as #!yaml or #!json")
    args = parser.parse_args()
    print(f"# {describe()}; developers.sls in {args.format}; median wall s (CPU s) of {args.repeat} runs, max RSS MiB")
    print(f"{'developers':>10}  " + "  ".join(f"{name:>15} {'MiB':>5}" for name in ("validate", "render", "plan")))
    with tempfile.TemporaryDirectory(prefix="wgmesh-bench-cli-") as tmp:
        for size in (int(s) for s in args.sizes.split(",")):
            cells = []
            for argv in commands(Path(tmp), size, args.format).values():
                runs = [run(argv) for _ in range(args.repeat)]
                wall, cpu = (statistics.median(r[i] for r in runs) for i in (0, 1))
                cells.append(f"{wall:>7.2f} ({cpu:>5.2f}) {max(r[2] for r in runs):>5.0f}")
            print(f"{size:>10}  " + "  ".join(cells), flush=True)


if __name__ == "__main__":
    main()
