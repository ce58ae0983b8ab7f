"""The machine a benchmark ran on, and how fast its Python runs now: figures from other
machines, or from this one under other load, compare once divided by the loop's time."""
import os
import platform
import time
from pathlib import Path

LOOP = 10**7


def loop_seconds() -> float:
    """CPU seconds of a plain Python loop of ten million additions (best of 3)."""
    best = float("inf")
    for _ in range(3):
        start, total = time.process_time(), 0
        for number in range(LOOP):
            total += number
        best = min(best, time.process_time() - start)
    return best


def describe() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    return (f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, "
            f"a loop of 10^7 additions {loop_seconds():.2f} s CPU, load average {os.getloadavg()[0]:.1f}")
