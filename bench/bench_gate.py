"""Benchmark: the gate's reading of a pillar repository (issue 8).

1. Validate a pillar of 100 / 1,000 / 10,000 developers written to disk as the example's
   files: the data checks (``read_tree``), Salt's own pillar compile for the network's
   four hosts (``compile_document``), the model validation (``load_network``), and the
   whole ``wgmesh validate DIR`` command (a new process: Python, Salt's import, all of it).
2. Refusals: an alias bomb (9^9 values) and a 10 MB file, read from disk and, as the gate
   reads them, from a git commit.

Target: 10,000 developers validated well under 1 s; each refusal under 1 s.
Run: .venv/bin/python bench/bench_gate.py [--repeat N] [--format json]
"""
import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pillars import FORMATS, git_commit, pillar_with  # noqa: E402

from wgmesh_core.source import read_tree  # noqa: E402
from wgmesh_core.validate import InvalidNetwork, load_network  # noqa: E402
from wgmesh_salt import compile_document, read_document_at  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
WGMESH = Path(sys.executable).parent / "wgmesh"
BOMB = "#!yaml\nlol:\n" + "".join(
    [f"  a0: &a0 [{', '.join(['lol'] * 9)}]\n"] + [f"  a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]\n"
                                                   for i in range(1, 10)])


def timed(func, *args):
    wall, cpu = time.perf_counter(), time.process_time()
    result = func(*args)
    return time.perf_counter() - wall, time.process_time() - cpu, result


def validate_once(root: Path) -> dict:
    read, read_cpu, tree = timed(read_tree, root)
    compiled, compiled_cpu, document = timed(compile_document, tree)
    model, model_cpu, _ = timed(load_network, document.network)
    return {"checks": read, "salt compile": compiled, "model": model, "total": read + compiled + model,
            "total cpu": read_cpu + compiled_cpu + model_cpu}


def command_once(root: Path) -> float:
    start = time.perf_counter()
    done = subprocess.run([str(WGMESH), "validate", str(root)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return time.perf_counter() - start


def refused_in(func, *args) -> float:
    start = time.perf_counter()
    try:
        func(*args)
    except InvalidNetwork:
        return time.perf_counter() - start
    raise AssertionError(f"{func.__name__} did not refuse")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--format", choices=FORMATS, default="yaml", help="developers.sls as #!yaml or #!json")
    args = parser.parse_args()
    median = statistics.median
    with tempfile.TemporaryDirectory(prefix="wgmesh-bench-") as tmp:
        tmp = Path(tmp)
        print(f"{'developers':>10} {'checks':>8} {'salt':>8} {'model':>8} {'total':>8} {'cpu':>8} "
              f"{'command':>8}   (median s of {args.repeat}; developers.sls in {args.format})")
        for size in (100, 1_000, 10_000):
            root = pillar_with(tmp / f"p{size}", size, args.format)
            runs = [validate_once(root) for _ in range(args.repeat)]
            command = median(command_once(root) for _ in range(args.repeat))
            row = {key: median(run[key] for run in runs) for key in runs[0]}
            print(f"{size:>10} {row['checks']:>8.3f} {row['salt compile']:>8.3f} {row['model']:>8.3f} "
                  f"{row['total']:>8.3f} {row['total cpu']:>8.3f} {command:>8.3f}")
        for name, write in (("alias bomb", lambda p: (p / "wgmesh" / "lol.sls").write_text(BOMB)),
                            ("10 MB file", lambda p: (p / "wgmesh" / "notes.sls").write_text(
                                "#!yaml\n" + ("# " + "x" * 98 + "\n") * 104_858))):
            root = tmp / name.replace(" ", "-")
            shutil.copytree(REPO / "pillar", root)
            write(root)
            disk = median(refused_in(read_tree, root) for _ in range(args.repeat))
            rev = git_commit(root)
            gate = median(refused_in(read_document_at, root, rev) for _ in range(args.repeat))
            print(f"{name}: refused in {disk:.4f} s from disk, {gate:.4f} s from a git commit (median)")


if __name__ == "__main__":
    main()
