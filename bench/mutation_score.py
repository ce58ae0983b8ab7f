"""The mutation score of the mutants mutmut checked (run from the .mutation workspace by bench/mutation.sh).

Score = killed (or timed out) / checked; a mutant with no covering test counts as surviving.
Arguments: the same mutant-name globs as `mutmut run` (default: all).
"""
import fnmatch
import subprocess
import sys
from collections import Counter
from pathlib import Path

patterns = sys.argv[1:] or ["*"]
out = subprocess.run([str(Path(sys.executable).parent / "mutmut"), "results", "--all", "true"],
                     capture_output=True, text=True, check=True).stdout
status = {}
for line in out.splitlines():
    name, _, state = line.strip().rpartition(": ")
    if name and any(fnmatch.fnmatch(name, p) for p in patterns):
        status[name] = state
counts = Counter(status.values())
checked = sum(n for state, n in counts.items() if state not in ("not checked", "skipped"))
killed = counts["killed"] + counts["timeout"]
by_module = {}
for name, state in status.items():
    module = name.split(".x")[0].rsplit(".", 1)[0] if ".x" in name else name
    tally = by_module.setdefault(name.split(".")[1], Counter())
    tally[state] += 1
for module, tally in sorted(by_module.items()):
    done = sum(n for state, n in tally.items() if state not in ("not checked", "skipped"))
    if done:
        mk = tally["killed"] + tally["timeout"]
        print(f"{module:<12} {mk}/{done} killed ({100 * mk / done:.1f}%)")
print(f"total        {killed}/{checked} killed ({100 * killed / max(checked, 1):.1f}%); {dict(counts)}")
for name, state in sorted(status.items()):
    if state not in ("killed", "timeout", "not checked", "skipped"):
        print(f"  {state}: {name}")
