"""Validation of a network definition: every problem, each naming its entry.

``load_network`` is the only way from pillar data to a ``NetworkSpec``: it
parses the shape (pydantic) and then checks the relations between entries.
It collects all problems before refusing, so a pull request shows them at once.
"""
from __future__ import annotations

import datetime
import ipaddress
import re
from dataclasses import dataclass
from typing import Iterable, Optional

import netaddr
import pydantic

from .keys import key_problem, one_line, shown
from .model import NetworkSpec
from .plan import RFC1918, endpoint_address

# Used with fullmatch: '$' alone would also match before a trailing newline.
HOSTNAME_RE = re.compile(r"(?=.{1,253}\Z)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*")
PORT_RE = re.compile(r"[0-9]{1,5}")
PRIVATE_LAN_RANGES = RFC1918 + [netaddr.IPNetwork("100.64.0.0/10")]   # RFC 1918 and carrier-grade NAT
NOT_AN_ENDPOINT = [netaddr.IPNetwork(n) for n in ("0.0.0.0/8", "127.0.0.0/8", "224.0.0.0/3")]  # to 255.255.255.255


@dataclass(frozen=True)
class Problem:
    where: str   # dotted path of the offending entry, e.g. "developers.e.public_key"
    what: str

    def __str__(self):
        """One line of printable text: file names and keys come from the pull request, and a line
        break or a terminal's escape sequence in them would write lines of its choosing into the
        refusal a reviewer reads (the Markdown summary escapes them its own way)."""
        return one_line(f"{self.where}: {self.what}")


class InvalidNetwork(ValueError):
    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


def _dotted(loc: Iterable) -> str:
    return ".".join(str(part) for part in loc) or "(top)"


def _written(value) -> str:
    """A value as the pillar wrote it, for a message: its text quoted, YAML's words for the rest."""
    if isinstance(value, str):
        return f"the text {shown(value)}"
    if isinstance(value, bool) or value is None:
        return {True: "true", False: "false", None: "null"}[value]
    if isinstance(value, (int, float)):
        try:
            text = repr(value)
        except ValueError:      # an integer past Python's 4,300 digits
            text = ""
        return text if 0 < len(text) <= 40 else "a number too long to show"
    return f"a {type(value).__name__}"


def shape_problems(error: pydantic.ValidationError) -> list[Problem]:
    messages: dict[str, list[str]] = {}
    for err in error.errors():
        loc = [part for part in err["loc"] if not (isinstance(part, str) and part.startswith(("function-", "literal[", "list[")))]
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            message = "unknown key (a typo?)"
        elif err["type"] == "missing":
            message = "required key is missing"
        elif err["type"] in ("int_type", "bool_type", "string_type"):    # strict: what was written instead
            message += f", not {_written(err['input'])}"
        messages.setdefault(_dotted(loc), [])
        if message not in messages[_dotted(loc)]:
            messages[_dotted(loc)].append(message)
    # A union (lan_access) reports one error per alternative at the same place: one problem, all of them.
    return [Problem(where, " or ".join(texts)) for where, texts in messages.items()]


def endpoint_problem(endpoint: str) -> Optional[str]:
    """Why ``endpoint`` is not ``host[:port]`` in plain ASCII (IPv4 address or DNS name), or None."""
    if not (endpoint.isascii() and endpoint.isprintable()) or any(ch.isspace() for ch in endpoint):
        return f"{shown(endpoint)} contains whitespace, a control or a non-ASCII character"
    host, sep, port = endpoint.rpartition(":")
    if not sep:
        host, port = endpoint, None
    if not host:
        return f"{endpoint!r} has no host"
    if port is not None and not (PORT_RE.fullmatch(port) and 1 <= int(port) <= 65535):
        return f"{endpoint!r}: port {port!r} is not in 1-65535"
    address = endpoint_address(endpoint)
    if address is None and not (HOSTNAME_RE.fullmatch(host) and not host.replace(".", "").isdigit()):
        return f"{endpoint!r}: {host!r} is neither an IPv4 address nor a host name"
    if address is not None and any(address in block for block in NOT_AN_ENDPOINT):
        return f"{endpoint!r}: {address} is not a unicast address peers can dial"
    return None


def _lan_problems(spec: NetworkSpec, gid: str, hub_address: Optional[netaddr.IPAddress]) -> list[str]:
    lan = spec.gateways[gid].lan
    problems = []
    if lan.prefixlen >= 31:
        problems.append(f"{lan} has no room for hosts: a LAN is at most a /30")
    if not spec.allow_public_lan and not any(lan in block for block in PRIVATE_LAN_RANGES):
        problems.append(f"{lan} is not a private range (10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, "
                        "100.64.0.0/10): set allow_public_lan: true to route public addresses into the VPN")
    if hub_address is not None and hub_address in lan:
        problems.append(f"{lan} contains the hub endpoint {hub_address}: the tunnel would be routed into itself")
    return problems


def _relation_problems(spec: NetworkSpec, known_minions: Optional[set], today: datetime.date) -> list[Problem]:
    problems: list[Problem] = []
    add = lambda where, what: problems.append(Problem(where, what))
    vpn = spec.network

    # Every VPN address: inside the VPN, usable, and taken once.
    addresses = [("hub.address", spec.hub.address)]
    addresses += [(f"gateways.{gid}.address", gw.address) for gid, gw in spec.gateways.items()]
    addresses += [(f"developers.{name}.address", dev.address) for name, dev in spec.developers.items()]
    # as integers: netaddr's comparisons and hashes cost more than the rest of the check
    edges = {int(vpn.network): "network"}
    if vpn.broadcast is not None:
        edges.setdefault(int(vpn.broadcast), "broadcast")
    owner_of = {}
    for where, address in addresses:
        value = int(address)
        if not vpn.first <= value <= vpn.last:
            add(where, f"{address} is outside the VPN network {vpn}")
        elif value in edges:
            add(where, f"{address} is the {edges[value]} address of {vpn}")
        if value in owner_of:
            add(where, f"{address} is already taken by {owner_of[value]}")
        else:
            owner_of[value] = where.rsplit(".", 1)[0]

    # LANs: private, disjoint from each other, the VPN and the hub endpoint; gateway LAN address inside its LAN.
    hub_address = endpoint_address(spec.hub.endpoint) if endpoint_problem(spec.hub.endpoint) is None else None
    for gid, gw in spec.gateways.items():
        where = f"gateways.{gid}"
        for what in _lan_problems(spec, gid, hub_address):
            add(f"{where}.lan", what)
        if gw.lan.first <= vpn.last and vpn.first <= gw.lan.last:
            add(f"{where}.lan", f"{gw.lan} overlaps the VPN network {vpn}")
        if gw.lan_address not in gw.lan:
            add(f"{where}.lan_address", f"{gw.lan_address} is outside the gateway's LAN {gw.lan}")
        elif gw.lan.prefixlen < 31 and gw.lan_address in (gw.lan.network, gw.lan.broadcast):
            add(f"{where}.lan_address", f"{gw.lan_address} is not a host address of {gw.lan}")
    gateway_items = list(spec.gateways.items())
    for i, (gid, gw) in enumerate(gateway_items):
        for other_id, other in gateway_items[:i]:
            if gw.lan.first <= other.lan.last and other.lan.first <= gw.lan.last:
                add(f"gateways.{gid}.lan", f"{gw.lan} overlaps the LAN {other.lan} of gateway {other_id}")

    # Minion ids: known to the master (when we know its list), one role each.
    roles = {spec.hub.minion: "hub.minion"}
    for gid, gw in spec.gateways.items():
        if gid in roles:
            add(f"gateways.{gid}", f"minion {gid} is already the {roles[gid]}")
        roles.setdefault(gid, f"gateways.{gid}")
    for gid, gw in spec.gateways.items():
        if gw.lan_router is not None:
            if gw.lan_router in roles:
                add(f"gateways.{gid}.lan_router", f"minion {gw.lan_router} is already {roles[gw.lan_router]}")
            roles.setdefault(gw.lan_router, f"gateways.{gid}.lan_router")
    if known_minions is not None:
        for minion, where in roles.items():
            if minion not in known_minions:
                add(where, f"unknown minion id {minion!r} (not among the master's accepted minions)")

    for name in spec.developers:
        if name in roles:
            add(f"developers.{name}", f"name {name!r} is also the minion {roles[name]}: peers need distinct names")

    expiring = [name for name, dev in spec.developers.items() if dev.expires and not dev.revoked]
    if spec.schedule.drift_minutes == 0 and expiring:
        add("schedule.drift_minutes", "0 turns off the scheduled run that enforces expiry dates "
                                      f"(developers {', '.join(expiring)} have one)")

    for name, dev in spec.developers.items():
        if dev.expires and (dev.expires - today).days > spec.max_access_days:
            add(f"developers.{name}.expires", f"{dev.expires} is {(dev.expires - today).days} days ahead; access is "
                                              f"granted for at most max_access_days ({spec.max_access_days}) at a time")

    problem = endpoint_problem(spec.hub.endpoint)
    if problem:
        add("hub.endpoint", problem)
    elif hub_address is not None and hub_address in vpn:
        add("hub.endpoint", f"{hub_address} is inside the VPN network {vpn}: peers dial it before the tunnel exists")

    # Developers' keys: well formed and unique.
    key_owner = {}
    for name, dev in spec.developers.items():
        problem = key_problem(dev.public_key)
        if problem:
            add(f"developers.{name}.public_key", problem)
        elif dev.public_key in key_owner:
            add(f"developers.{name}.public_key", f"same public key as developer {key_owner[dev.public_key]}")
        else:
            key_owner[dev.public_key] = name

    # lan_access names existing, non-revoked gateways.
    peers = [(f"gateways.{gid}", gw) for gid, gw in spec.gateways.items()]
    peers += [(f"developers.{name}", dev) for name, dev in spec.developers.items()]
    for where, peer in peers:
        if isinstance(peer.lan_access, str):
            continue
        for gid in peer.lan_access:
            if gid not in spec.gateways:
                add(f"{where}.lan_access", f"names {gid!r}, which is not a gateway")
            elif spec.gateways[gid].revoked:
                add(f"{where}.lan_access", f"names gateway {gid}, which is revoked")
    return problems


def load_network(data, known_minions: Optional[Iterable[str]] = None,
                 today: Optional[datetime.date] = None) -> NetworkSpec:
    """Parse and validate the ``wgmesh`` pillar value; raise ``InvalidNetwork`` listing every problem.

    ``known_minions``: the master's accepted minion ids, when known; the hub,
    the gateways and the LAN routers must be among them.  ``today``: the date
    expiry limits are counted from (default: the real date).
    """
    if not isinstance(data, dict):
        raise InvalidNetwork([Problem("wgmesh", f"expected a mapping, got {type(data).__name__}")])
    try:
        spec = NetworkSpec.model_validate(data)
    except pydantic.ValidationError as error:
        raise InvalidNetwork(shape_problems(error)) from None
    problems = _relation_problems(spec, set(known_minions) if known_minions is not None else None,
                                  today or datetime.date.today())
    if problems:
        raise InvalidNetwork(problems)
    return spec
