"""The live twin of a pillar: the network it describes, built in namespaces and converged by
wgmesh through a real salt-master, with every intent test of its ``tests.yaml`` measured live
and compared with what the model predicts.

    python -m lab.twin up PILLAR     # build it, measure every test, leave it running
    python -m lab.twin test PILLAR   # up, measure, down; exit 1 when a measurement disagrees
    python -m lab.twin down          # remove it
    (`wgmesh twin ...` runs the same, from a checkout of the repository)

The layout is ``lab.plan.derive``'s: the hub on a simulated internet, each gateway behind its
LAN router's carrier NAT with its LAN and one LAN host (holding every LAN address the tests
name), each developer's laptop behind a home NAT.  ``lab.article.ArticleLab`` converges it as in
production: the pillar pushed to a git repository whose hook the master's reactor gates and
applies on the hub, the gateways and the LAN routers that are minions (systemd-networkd and
firewalld wherever the pillar asks for them); each developer imports the config the master
writes.  Where a route-mode LAN has no managed router, the twin adds the static route its
admin is told to add (``wgmesh_core.plan.static_route_instructions``), as the prediction assumes.

Each test is probed from its source's host: ICMP echo (lab/icmp.py), or a TCP/UDP echo
(lab/tcp.py) to a server the twin starts on the destination's host; a LAN host sends from the
test's address; a developer ``at`` an office gets a second link into that LAN (join_office).
Where a test says ``via``, the route taken is the kernel's (``ip route get``): the tunnel
interface, or on-link.  A test dated another day than today is shown, not measured.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from wgmesh_core.intent import IntentResult, check, load_intent
from wgmesh_core.reach import ON_LINK, TUNNEL
from wgmesh_core.validate import InvalidNetwork

from .article import ArticleLab
from .plan import derive, named_hosts, read_pillar
from .topology import LAB_PKG, Lab

DEFAULT_ID = "twin"
PROBE_TIMEOUT = 1.5


@dataclass(frozen=True)
class Measurement:
    result: IntentResult
    reach: Optional[bool]          # None: not measured
    via: Optional[str] = None      # the route taken, where the test says via
    note: str = ""

    @property
    def measured(self) -> str:
        if self.reach is None:
            return f"not measured ({self.note})"
        return ("reach" + (f" via {self.via}" if self.via else "")) if self.reach else "blocked"

    @property
    def predicted(self) -> str:
        prediction = self.result.prediction
        if not prediction.reach:
            return "blocked"
        return f"reach via {prediction.via}" if self.result.test.via else "reach"

    @property
    def agrees(self) -> bool:
        if self.reach is None:
            return True
        prediction = self.result.prediction
        return self.reach == prediction.reach and (not self.via or not prediction.reach or self.via == prediction.via)


class Twin:
    """A pillar's twin: ``up``, ``measure``, ``down`` (see the module docstring)."""

    def __init__(self, pillar, lab_id: str = DEFAULT_ID, workdir=None, today: datetime.date | None = None):
        self.pillar = Path(pillar)
        self.today = today or datetime.date.today()
        self.spec, tests = read_pillar(self.pillar)
        self.results = check(self.spec, load_intent(tests, self.spec, self.today), self.today)
        lan_addresses = [str(end.address) for r in self.results for end in (r.source, r.destination)
                         if end.kind == "lan"]
        self.plan = derive(self.spec, named_hosts(tests), lan_addresses)
        self.lab = Lab(lab_id, workdir, address_plan=self.plan)
        self.network = ArticleLab(self.lab, profile=None, pillar=self.pillar)
        self.timings = self.network.timings

    # --- bring-up ----------------------------------------------------------------------

    def up(self) -> dict:
        self.network.up(apply_again=False)     # the push converged it, as in production
        self.network._timed("admins' static routes, echo servers", self._prepare)
        return self.timings

    def _prepare(self) -> None:
        for gid, gw in self.spec.gateways.items():
            if gw.lan_mode == "route" and not gw.lan_router:
                router = self.plan.lans[gid][1]
                self.lab.exec(router, ["ip", "route", "replace", str(self.spec.network), "via", str(gw.lan_address)])
        servers = {(self.host_of(r.destination), r.test.proto, r.test.port) for r in self.results
                   if r.test.proto != "icmp" and self.host_of(r.destination)}
        for host, proto, port in sorted(servers):
            self.lab.spawn(host, [sys.executable, "-I", LAB_PKG / "tcp.py", "serve",
                                  *(["--udp"] if proto == "udp" else []), port], f"echo-{proto}-{port}")
        time.sleep(0.3)     # the servers bind

    def host_of(self, end) -> Optional[str]:
        """The twin's host that holds an endpoint's address (None: nobody in the network does)."""
        if end.kind == "hub":
            return self.plan.minions[self.spec.hub.minion]
        if end.kind == "gateway":
            return self.plan.minions[end.gateway]
        if end.kind == "developer":
            return self.plan.laptops[end.name]
        return self.plan.owner_of(str(end.address))

    # --- measurement -------------------------------------------------------------------

    def measure(self) -> list[Measurement]:
        """Every test, probed live; office tests last, one laptop and office at a time."""
        today = [r for r in self.results if (r.test.date or self.today) == self.today]
        measured = {r.index: Measurement(r, None, note=f"as of {r.test.date}") for r in self.results
                    if r not in today}
        measured.update(self._probe([r for r in today if r.source.at is None]))
        offices = sorted({(r.source.name, r.source.at) for r in today if r.source.at is not None})
        for developer, gid in offices:
            laptop = self.plan.laptops[developer]
            self.lab.join_office(laptop, gid)
            try:
                measured.update(self._probe([r for r in today if (r.source.name, r.source.at) == (developer, gid)]))
            finally:
                self.lab.leave_office(laptop)
        return [measured[r.index] for r in self.results]

    def timed_measure(self) -> list[Measurement]:
        return self.network._timed("intent tests measured", self.measure)

    def _probe(self, results: list) -> dict:
        """{index: Measurement}: the probes of each source host and kind run as one command, the
        commands in parallel."""
        groups: dict = {}
        for r in results:
            source = str(r.source.address) if r.source.kind == "lan" else None
            groups.setdefault((self.host_of(r.source), source, r.test.proto, r.test.port), []).append(r)

        def one(key):
            host, source, proto, port = key
            members = groups[key]
            targets = sorted({str(r.destination.address) for r in members})
            got = self._run_probe(host, source, proto, port, targets)
            return {r.index: Measurement(r, got[str(r.destination.address)],
                                         self._route(host, r) if r.test.via and got[str(r.destination.address)] else None)
                    for r in members}

        out: dict = {}
        with ThreadPoolExecutor(max_workers=6) as pool:
            for found in pool.map(one, list(groups)):
                out.update(found)
        return out

    def _run_probe(self, host: str, source: Optional[str], proto: str, port, targets: list) -> dict:
        if proto == "icmp":
            cmd = [sys.executable, "-I", LAB_PKG / "icmp.py", "--json", "-c", 2, "-W", PROBE_TIMEOUT,
                   *(["-I", source] if source else []), *targets]
            return {t: n > 0 for t, n in json.loads(self.lab.exec(host, cmd, timeout=60).stdout).items()}
        cmd = [sys.executable, "-I", LAB_PKG / "tcp.py", "connect", "-W", PROBE_TIMEOUT,
               *(["--udp"] if proto == "udp" else []), *(["--source", source] if source else []),
               *[f"{t}:{port}" for t in targets]]
        got = json.loads(self.lab.exec(host, cmd, timeout=60).stdout)
        return {t: got[f"{t}:{port}"] for t in targets}

    def _route(self, host: str, result: IntentResult) -> str:
        """The way the kernel of the source's host sends to the destination."""
        route = self.lab.route_get(host, str(result.destination.address)).split()
        device = route[route.index("dev") + 1]
        return TUNNEL if device == self.spec.interface else ON_LINK

    def down(self) -> list[str]:
        return self.lab.down()


def format_rows(rows: list[Measurement]) -> str:
    """Predicted vs measured, one line per test."""
    labels = [f"{m.result.where} {m.result.test.label}" for m in rows]
    width = max([len(label) for label in labels] + [4])
    lines = [f"{'test':<{width}}  {'expected':<17} {'predicted':<17} {'measured':<17}"]
    for label, m in zip(labels, rows):
        mark = "ok" if m.agrees and m.reach is not None else "-" if m.agrees else "DISAGREE"
        lines.append(f"{label:<{width}}  {m.result.test.expected:<17} {m.predicted:<17} {m.measured:<17} {mark}")
    return "\n".join(lines)


def summary(rows: list[Measurement]) -> str:
    wrong = [m for m in rows if not m.agrees]
    counted = sum(1 for m in rows if m.reach is not None)
    if wrong:
        return f"{len(wrong)} of {counted} measured test(s) DISAGREE with the prediction: " + \
            "; ".join(f"{m.result.where}: predicted {m.predicted}, measured {m.measured}" for m in wrong)
    return f"prediction and measurement agree on all {counted} measured test(s)"


def run(pillar, lab_id: str = DEFAULT_ID, keep: bool = False, tamper: Callable[[Twin], None] | None = None,
        out=sys.stdout, workdir=None) -> int:
    """Build the twin, measure, print; down unless ``keep``.  ``tamper(twin)`` runs between the
    bring-up and the measurement (the tests break a firewall rule there).  1 when a measurement
    disagrees with the prediction."""
    twin = Twin(pillar, lab_id, workdir)
    start = time.monotonic()
    try:
        twin.up()
        if tamper:
            tamper(twin)
        rows = twin.timed_measure()
        for step, seconds in twin.timings.items():
            print(f"{step:<36} {seconds:6.1f} s", file=out)
        print(f"{'total':<36} {time.monotonic() - start:6.1f} s\n", file=out)
        print(format_rows(rows), file=out)
        print("\n" + summary(rows), file=out)
        if keep:
            twin.lab.state["persistent"] = True
            twin.lab._save()
            print(f"\ntwin '{lab_id}' left running: python -m lab --id {lab_id} exec HOST -- CMD; "
                  f"`wgmesh twin down --id {lab_id}` removes it", file=out)
        return 0 if all(m.agrees for m in rows) else 1
    finally:
        if not keep:
            twin.down()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="wgmesh twin", description="The network a pillar describes, live in "
                                     "namespaces (root), its intent tests measured against the model.")
    sub = parser.add_subparsers(dest="cmd", required=True)
    for name, text in (("up", "build the twin, measure every intent test, leave it running"),
                       ("test", "build, measure, remove; exit 1 when a measurement disagrees with the model")):
        p = sub.add_parser(name, help=text)
        p.add_argument("pillar", help="the pillar directory (top.sls, wgmesh/*.sls, tests.yaml)")
        p.add_argument("--id", default=DEFAULT_ID, help="lab id (default: %(default)s)")
    down = sub.add_parser("down", help="remove the twin")
    down.add_argument("--id", default=DEFAULT_ID)
    args = parser.parse_args(argv)
    if args.cmd == "down":
        problems = Lab(args.id).down()
        print("\n".join(problems) or f"twin {args.id} down")
        return 1 if problems else 0
    if os.geteuid() != 0:
        print("wgmesh twin: needs root (it builds namespaces)", file=sys.stderr)
        return 2
    try:
        return run(args.pillar, args.id, keep=args.cmd == "up")
    except InvalidNetwork as error:     # the pillar or its tests.yaml: nothing was built
        print("\n".join(str(problem) for problem in error.problems), file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
