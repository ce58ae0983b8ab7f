"""What the lab's hosts measure (mixed into lab.Lab): pings (lab/icmp.py; the machine has no
ping(8)), many at once per source, routes, iperf3 throughput; and the lab's errors."""
from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterable, Sequence

LAB_PKG = Path(__file__).resolve().parent


class LabError(RuntimeError):
    pass


class LabCommandError(subprocess.CalledProcessError):
    """CalledProcessError whose message includes the host and the output."""

    def __init__(self, host, returncode, cmd, output=None, stderr=None):
        super().__init__(returncode, cmd, output, stderr)
        self.host = host

    def __str__(self):
        def tail(s):
            s = s or ""
            if isinstance(s, bytes):
                s = s.decode(errors="replace")
            return s[-3000:].strip()
        return (f"[{self.host}] {shlex.join(map(str, self.cmd))} exited {self.returncode}\n"
                f"--- stdout ---\n{tail(self.stdout)}\n--- stderr ---\n{tail(self.stderr)}")



class ProbesMixin:
    def ping(self, src: str, dst_ip: str, count: int = 1, timeout: float = 2) -> bool:
        dst_ip = self.resolve(dst_ip)
        cp = self.exec(src, self.ping_cmd(dst_ip, count, timeout), check=False,
                       timeout=timeout * count + 20)
        return cp.returncode == 0

    @staticmethod
    def ping_cmd(dst_ip: str, count: int = 1, timeout: float = 2) -> list[str]:
        """argv of the lab's pinger (lab/icmp.py; the machine has no ping(8))."""
        return [sys.executable, "-I", str(LAB_PKG / "icmp.py"), "-q", "-c", str(count),
                "-W", str(timeout), dst_ip]

    def still_unreachable(self, pairs: Iterable[tuple[str, str]], timeout: float) -> list[tuple[str, str]]:
        """Ping each (src, dst) until it answers or ``timeout`` seconds have passed; returns the
        pairs that never answered."""
        deadline = time.monotonic() + timeout
        pending = list(pairs)
        while pending and time.monotonic() < deadline:
            pending = [(src, dst) for src, dst in pending if not self.ping(src, dst, timeout=1)]
        return pending

    def resolve(self, target: str) -> str:
        """host name -> its first plan address; addresses pass through."""
        if target in self.plan.hosts:
            return self.plan.hosts[target].primary_ip
        return target

    def connectivity_matrix(self, pairs: Iterable[tuple[str, str]], timeout: float = 1,
                            count: int = 1) -> dict[tuple[str, str], bool]:
        """{(src, dst): reachable} for every pair; dst is an address or a host name."""
        pairs = list(pairs)
        by_src: dict[str, list[str]] = {}
        for s, d in pairs:
            by_src.setdefault(s, [])
            if d not in by_src[s]:
                by_src[s].append(d)

        def one(src):
            ips = [self.resolve(d) for d in by_src[src]]
            cmd = self.ping_cmd(ips[0], count, timeout)[:-1] + ["--json"] + ips
            cp = self.exec(src, cmd, timeout=timeout * count + 30)
            got = json.loads(cp.stdout)
            return {(src, d): got.get(ip, 0) > 0 for d, ip in zip(by_src[src], ips)}

        out: dict[tuple[str, str], bool] = {}
        with ThreadPoolExecutor(max_workers=8) as ex:
            for r in ex.map(one, list(by_src)):
                out.update(r)
        return {p: out[p] for p in pairs}

    def find_host(self, ip: str) -> str:
        """Which host has address ip (plan first, then `ip addr` on every host)."""
        h = self.plan.owner_of(ip)
        if h:
            return h
        for host in self.plan.hosts:
            cp = self.exec(host, ["ip", "-o", "-4", "addr", "show"], check=False)
            if re.search(rf"\binet {re.escape(ip)}/", cp.stdout):
                return host
        raise LabError(f"no lab host has address {ip}")

    def route_get(self, host: str, ip: str) -> str:
        return self.exec(host, ["ip", "route", "get", ip]).stdout.strip()

    def iperf(self, src: str, dst_ip: str, seconds: float = 3, dst_host: str | None = None,
              port: int = 5201, extra_args: Sequence[str] = ()) -> float:
        """TCP throughput src -> dst_ip in bits/s (iperf3 server in dst's host)."""
        dst_ip = self.resolve(dst_ip)
        dst_host = dst_host or self.find_host(dst_ip)
        name = f"iperf3-{port}"
        self.stop(dst_host, name)
        self.spawn(dst_host, ["iperf3", "-s", "-1", "-p", str(port)], name)
        try:
            deadline = time.monotonic() + 10
            while True:
                cp = self.exec(dst_host, ["ss", "-Hltn", f"sport = :{port}"], check=False)
                if cp.stdout.strip():
                    break
                if time.monotonic() > deadline:
                    raise LabError(f"iperf3 server did not start:\n{self.log(dst_host, name)}")
                time.sleep(0.05)
            cp = self.exec(src, ["iperf3", "-c", dst_ip, "-p", str(port), "-t", str(seconds),
                                 "-J", *extra_args], timeout=seconds + 30)
            data = json.loads(cp.stdout)
            return float(data["end"]["sum_received"]["bits_per_second"])
        finally:
            self.stop(dst_host, name, grace=2)
