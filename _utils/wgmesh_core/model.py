"""The pillar schema of a wgmesh network, as typed models.

Every default of the project lives here, in the field declarations: the
pillar only says what differs from them.  Parsing (pydantic) checks the shape
of each entry and refuses unknown keys; the relations between entries
(overlaps, duplicates, references) are checked in ``validate``.
"""
from __future__ import annotations

import datetime
import re
import socket
from typing import Annotated, Literal, Optional, Union

import netaddr
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer

from .keys import shown

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$"
# Linux interface names, never starting with '-' (they are passed to wg and ip as arguments).
INTERFACE_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,14}$"
# Bounds of the pillar repository as the gate and `wgmesh validate/plan` read it (source.py);
# the master overrides them in wgmesh_gitops, the command line with --max-pillar-bytes.
MAX_PILLAR_BYTES = 4 * 2**20       # every SLS together (10,000 developers take about 1.2 MB)
MAX_PILLAR_FILES = 1000
MAX_ALIAS_VALUES = 100_000         # values that YAML aliases add beyond the ones written
MAX_NAMED_HOSTS = 1000             # hosts a pillar may name for `wgmesh plan` to compile it for
# Every integer field is bounded: Salt's pillar transport (msgpack) carries an integer from 2**64
# on as text, which the minion's strict model would refuse after the gate accepted it.
MAX_EPOCH = 2**32 - 1


def _parse_address(value):
    if isinstance(value, netaddr.IPAddress):
        return value
    if not isinstance(value, str) or "/" in value:
        raise ValueError(f"{value!r} is not an IPv4 address (write it without a prefix length)")
    try:
        # inet_pton refuses what netaddr's strict parse refuses (leading zeros, short forms,
        # spaces) at half its cost: a hub's pillar has one address per developer
        packed = socket.inet_pton(socket.AF_INET, value)
    except (OSError, ValueError):
        raise ValueError(f"{value!r} is not an IPv4 address") from None
    return netaddr.IPAddress(int.from_bytes(packed, "big"), 4)


def parse_network(value):
    """An IPv4 network in CIDR form without host bits (netaddr's); ValueError saying why not."""
    if isinstance(value, netaddr.IPNetwork):
        return value
    if not isinstance(value, str) or "/" not in value:
        raise ValueError(f"{value!r} is not an IPv4 network in CIDR form (like 192.168.200.0/24)")
    try:
        net = netaddr.IPNetwork(value, version=4)
    except (netaddr.AddrFormatError, ValueError, TypeError):
        raise ValueError(f"{value!r} is not an IPv4 network in CIDR form") from None
    if net.ip != net.network:
        raise ValueError(f"{value!r} has host bits set; the network is {net.cidr}")
    return net


def _one_printable_line(value: str) -> str:
    if not value.isprintable():     # line breaks and separators, tabs, every control character
        raise ValueError(f"{shown(value)} holds a line break or control character: write one line of text")
    return value


DAY_PATTERN = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def parse_day(value):
    """A day written ``YYYY-MM-DD`` (Salt's YAML renderer and JSON give text), a date, or the
    datetime at midnight Salt's pillar transport (msgpack) makes of a date; nothing else: the
    models are strict, so a number is no day (pydantic's lax mode took it for a timestamp) and
    neither is another ISO form (``2026-W22-1``, which ``fromisoformat`` takes)."""
    if isinstance(value, datetime.datetime):
        if value.time() == datetime.time() and value.tzinfo is None:
            return value.date()
    elif isinstance(value, datetime.date):
        return value
    elif isinstance(value, str) and DAY_PATTERN.fullmatch(value):
        try:
            return datetime.date.fromisoformat(value)
        except ValueError:      # a month 13, a February 30
            pass
    raise ValueError(f"{shown(value) if isinstance(value, str) else repr(value)} is not a day (YYYY-MM-DD)")


Address = Annotated[netaddr.IPAddress, BeforeValidator(_parse_address), PlainSerializer(str)]
# Who to tell of a developer's changes (shown in a plan's manual actions)
Contact = Annotated[str, Field(max_length=200), AfterValidator(_one_printable_line)]
Network = Annotated[netaddr.IPNetwork, BeforeValidator(parse_network), PlainSerializer(str)]
Name = Annotated[str, Field(pattern=NAME_PATTERN)]
Day = Annotated[datetime.date, BeforeValidator(parse_day)]
# Which LANs a peer may open new connections into: every gateway's LAN, none,
# or a list of gateway minion ids.
LanAccess = Union[Literal["all", "none"], list[Name]]


class _Entry(BaseModel):
    # strict: a value is of its field's type as written (`listen_port: true` and `mtu: "1280"`
    # are refused, where lax parsing read them as 1 and 1280: what a reviewer sees is what is served)
    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True, frozen=True, strict=True)


class Hub(_Entry):
    minion: Name
    address: Address
    # host[:port] the gateways and developers dial; the port defaults to listen_port.
    endpoint: str
    backend: Optional[Literal["networkd", "wgquick"]] = None
    firewall: Optional[Literal["firewalld", "iptables"]] = None
    # PersistentKeepalive the hub sets on its peers (0: off). The hub has a public address and
    # every peer keeps its own NAT mapping open (``keepalive``), so the hub needs none; with it,
    # each peer without an endpoint (a developer not connected) costs a handshake attempt every
    # 5 to 15 s while it has none (10,000 developers: 0.2 to 0.3 of a core in wireguard-go over
    # the 330 s measured). The article's hub sets 15.
    keepalive: int = Field(0, ge=0, le=65535)


class Gateway(_Entry):
    address: Address
    lan: Network
    lan_address: Address
    lan_interface: str = Field("eth0", pattern=INTERFACE_PATTERN)
    # route: the LAN router takes "VPN via this gateway" (the article's normal case);
    # masquerade: the router cannot, so the gateway NATs VPN traffic into the LAN.
    lan_mode: Literal["route", "masquerade"] = "route"
    # Minion id of the LAN's router (or of a LAN host) that should carry the static
    # route; without it the route is printed as an instruction for its admin.
    lan_router: Optional[Name] = None
    lan_access: LanAccess = "none"
    backend: Optional[Literal["networkd", "wgquick"]] = None
    firewall: Optional[Literal["firewalld", "iptables"]] = None
    revoked: bool = False


class Developer(_Entry):
    address: Address
    public_key: str
    lan_access: LanAccess = "none"
    # Last day of access; from the next day on the developer is treated as revoked.
    expires: Optional[Day] = None
    # windows: its route choice weighs interface metrics, so the covering-prefix
    # fix of the route conflict does not work there: it gets the exact LANs.
    platform: Literal["linux", "macos", "windows", "ios", "android"] = "linux"
    revoked: bool = False
    contact: Optional[Contact] = None


class Schedule(_Entry):
    # Minutes between the scheduled re-applications that correct drift (0: off).
    drift_minutes: int = Field(30, ge=0, le=1440)


class NetworkSpec(_Entry):
    network: Network
    interface: str = Field("wg0", pattern=INTERFACE_PATTERN)
    listen_port: int = Field(51820, ge=1, le=65535)
    mtu: int = Field(1280, ge=576, le=9000)
    keepalive: int = Field(15, ge=0, le=65535)
    backend: Literal["networkd", "wgquick"] = "networkd"
    firewall: Literal["firewalld", "iptables"] = "firewalld"
    # Who may open connections to a gateway itself (its VPN and LAN addresses) through the
    # tunnel: the peers allowed into its LAN, every VPN peer, or nobody (replies only).
    gateway_access: Literal["lan_access", "vpn", "none"] = "lan_access"
    # The hub forwards between developers (the article's e <-> f); false: only into the LANs.
    developer_to_developer: bool = True
    preshared_keys: bool = True
    # Bump to rotate every preshared key (they are derived on the master, see keys.derive_psk).
    preshared_key_epoch: int = Field(0, ge=0, le=MAX_EPOCH)
    # Gateway LANs must be private (RFC 1918 or 100.64.0.0/10) unless this is set.
    allow_public_lan: bool = False
    # How far ahead of today a developer's ``expires`` may be.
    max_access_days: int = Field(366, ge=1, le=36600)
    schedule: Schedule = Schedule()
    hub: Hub
    gateways: dict[Name, Gateway] = {}
    developers: dict[Name, Developer] = {}

    def is_active(self, developer: Developer, today: datetime.date) -> bool:
        return not developer.revoked and (developer.expires is None or developer.expires >= today)

