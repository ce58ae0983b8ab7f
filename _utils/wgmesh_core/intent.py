"""Intent tests: what the network must let through and what it must forbid, checked against the model.

The pillar repository carries them in ``tests.yaml`` beside ``top.sls`` (README "Intent
tests" says why there and not in the pillar): named LAN hosts, and a list of tests::

    hosts:
      b: 192.168.201.10
    tests:
      - {from: e, to: b, proto: tcp, port: 22, expect: reach}
      - {from: z, to: b, expect: blocked}                    # the hub never opens into a LAN
      - {from: e, at: c, to: d, expect: reach, via: on-link}  # e in c's office

``load_intent`` parses and checks them against a network (every name resolves, every
address is the network's), ``check`` predicts each one with ``reach.Reachability`` as of its
date (default: today) and ``refusals`` names each broken test and why; ``verdict`` does all
three for `wgmesh validate`, `wgmesh plan` and the gate.  The file is read with the pillar
(``source.read_tree``: the same checked YAML loader as every SLS).

A live twin runs the same tests: each ``IntentResult`` of ``check`` says where to probe from
(``source``: its kind, name, address, and ``at`` for a developer in an office), what to probe
(``destination.address``, ``test.proto``/``test.port``) and what the model predicts
(``prediction``: reach, via, path, the source address a masquerading gateway shows).
"""
from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Literal, Optional

import pydantic
from pydantic import BaseModel, ConfigDict, Field

from .model import Address, Day, Name, NetworkSpec
from .reach import Endpoint, Prediction, Reachability
from .source import TESTS_FILE
from .validate import InvalidNetwork, Problem, shape_problems

# Free text of a test's name: shown in the pull request's summary, so no markup characters.
TEST_NAME_PATTERN = r"^[A-Za-z0-9 ,.:;()/'+-]{1,120}$"


class _Entry(BaseModel):
    # strict, as the pillar's models: `port: true` is no port 1 (model._Entry)
    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True, frozen=True, populate_by_name=True,
                              strict=True)


class IntentTest(_Entry):
    source: str = Field(alias="from", max_length=64)   # hub, gateway, developer, named LAN host or address
    at: Optional[Name] = None                    # a developer sitting in this gateway's office LAN
    to: str = Field(max_length=64)
    proto: Literal["icmp", "tcp", "udp"] = "icmp"
    port: Optional[int] = Field(None, ge=1, le=65535)
    expect: Literal["reach", "blocked"]
    via: Optional[Literal["tunnel", "on-link"]] = None
    date: Optional[Day] = None                   # evaluate as of this day (expiry), default today
    name: Optional[str] = Field(None, pattern=TEST_NAME_PATTERN)

    @property
    def label(self) -> str:
        where = f" (in {self.at}'s LAN)" if self.at else ""
        port = f":{self.port}/{self.proto}" if self.port else ""
        return f"{self.source}{where} -> {self.to}{port}"

    @property
    def expected(self) -> str:
        return f"{self.expect} via {self.via}" if self.via else self.expect


class Intent(_Entry):
    hosts: dict[Name, Address] = {}    # named LAN hosts (not VPN peers): name -> address in a gateway's LAN
    tests: list[IntentTest] = []


@dataclass(frozen=True)
class IntentResult:
    index: int
    test: IntentTest
    source: Endpoint
    destination: Endpoint
    prediction: Prediction

    @property
    def passed(self) -> bool:
        want, got = self.test, self.prediction
        if want.expect == "blocked":
            return not got.reach
        return got.reach and want.via in (None, got.via)

    @property
    def where(self) -> str:
        return f"tests[{self.index}]" + (f" ({self.test.name})" if self.test.name else "")

    @property
    def message(self) -> str:
        """``tests[3] e -> b:22/tcp expected reach: blocked by gateway a's allow-list (...)``"""
        return f"{self.where} {self.test.label} expected {self.test.expected}: {self.prediction.reason}"


def _where(loc: str) -> str:
    """``tests.3.from`` -> ``tests[3].from``."""
    parts = loc.split(".")
    if len(parts) > 1 and parts[0] == "tests" and parts[1].isdigit():
        return f"tests[{parts[1]}]" + "".join(f".{p}" for p in parts[2:])
    return loc


def load_intent(data, spec: NetworkSpec, today: datetime.date) -> Intent:
    """Parse the tests file's data and check it against ``spec``; raises InvalidNetwork
    listing every problem (``tests[3].to: ...``)."""
    if data is None:
        return Intent()
    if not isinstance(data, dict):
        raise InvalidNetwork([Problem("(top)", f"expected a mapping with hosts and tests, got {type(data).__name__}")])
    try:
        intent = Intent.model_validate(data)
    except pydantic.ValidationError as error:
        raise InvalidNetwork([Problem(_where(p.where), p.what) for p in shape_problems(error)]) from None
    problems = _relation_problems(intent, spec, Reachability(spec, today))
    if problems:
        raise InvalidNetwork(problems)
    return intent


def _relation_problems(intent: Intent, spec: NetworkSpec, reach: Reachability) -> list[Problem]:
    problems = []
    peers = {spec.hub.minion, *spec.gateways, *spec.developers}
    for name, address in intent.hosts.items():
        lan_of = [gid for gid, gw in spec.gateways.items() if address in gw.lan]
        if name in peers:
            problems.append(Problem(f"hosts.{name}", "is also the name of a host or developer of the network"))
        elif not lan_of:
            problems.append(Problem(f"hosts.{name}", f"{address} is in no gateway's LAN"))
        elif address == spec.gateways[lan_of[0]].lan_address:
            problems.append(Problem(f"hosts.{name}", f"{address} is gateway {lan_of[0]}'s own address: name {lan_of[0]}"))
    hosts = {name: str(address) for name, address in intent.hosts.items()}
    for index, test in enumerate(intent.tests):
        where = f"tests[{index}]"
        for field, ref in (("from", test.source), ("to", test.to)):
            try:
                endpoint = reach.endpoint(ref, hosts)
            except ValueError as error:
                problems.append(Problem(f"{where}.{field}", str(error)))
                continue
            if field == "from" and endpoint.kind == "vpn":
                problems.append(Problem(f"{where}.from", f"{ref} belongs to no host or developer: nothing sends from it"))
            if field == "from" and test.at is not None:
                try:
                    reach.in_office(endpoint, test.at)
                except ValueError as error:
                    problems.append(Problem(f"{where}.at", str(error)))
        if test.proto == "icmp" and test.port is not None:
            problems.append(Problem(f"{where}.port", "a port needs proto tcp or udp"))
        if test.proto != "icmp" and test.port is None:
            problems.append(Problem(f"{where}.port", f"proto {test.proto} needs a port"))
        if test.via and test.expect == "blocked":
            problems.append(Problem(f"{where}.via", "only a test that expects reach says which way"))
    return problems


def check(spec: NetworkSpec, intent: Intent, today: datetime.date) -> list[IntentResult]:
    """Every test's prediction, as of its own date or ``today``: the plan is derived once, for the
    earliest of those dates (``Reachability.as_of``)."""
    days = sorted({test.date or today for test in intent.tests})
    if not days:
        return []
    earliest = Reachability(spec, days[0])    # later days only take expired developers out
    by_date = {day: earliest.as_of(day) for day in days}
    hosts = {name: str(address) for name, address in intent.hosts.items()}
    results = []
    for index, test in enumerate(intent.tests):
        reach = by_date[test.date or today]
        source, destination = reach.endpoint(test.source, hosts), reach.endpoint(test.to, hosts)
        if test.at is not None:
            source = reach.in_office(source, test.at)
        results.append(IntentResult(index, test, source, destination, reach.predict(source, destination)))
    return results


def refusals(results: list[IntentResult]) -> list[Problem]:
    """One problem per broken test, naming it and the reason."""
    return [Problem(r.where, f"{r.test.label} expected {r.test.expected}: {r.prediction.reason}")
            for r in results if not r.passed]


def verdict(data, spec: NetworkSpec, today: datetime.date) -> tuple[list, list]:
    """(results, problems) of the tests file's data against ``spec``: the file's own problems
    (then no results), else one problem per broken test."""
    try:
        intent = load_intent(data, spec, today)
    except InvalidNetwork as error:
        return [], [Problem(f"{TESTS_FILE} {p.where}", p.what) for p in error.problems]
    results = check(spec, intent, today)
    return results, refusals(results)
