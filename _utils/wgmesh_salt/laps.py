"""Where a run's time went: the ``timings`` of the gate's result and of ``wgmesh.update_live``."""
import time


class Laps:
    """Seconds each step took since the one before (or since the start), in the order they ran."""

    def __init__(self):
        self.last, self.timings = time.monotonic(), {}
        self.started = time.time()      # the wall clock's, for a comparison with another process's

    def __call__(self, step: str) -> None:
        now = time.monotonic()
        self.timings[step] = round(now - self.last, 3)
        self.last = now
