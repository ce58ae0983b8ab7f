"""What wgmesh leaves on a host, so that a host that loses its role can be cleaned up.

Each apply records a host's footprint (interface, backend, firewall backend,
static routes) in the minion's cache; ``wgmesh.absent`` takes down what the
record names, and, for hosts applied before the record existed, whatever
wgmesh writes by default for the interface (files that say they are wgmesh's).
"""
from __future__ import annotations

import ipaddress
import re
from typing import Optional

from . import firewall
from .model import INTERFACE_PATTERN
from .plan import HostConfig
from .render import (BOOT_FIREWALL_UNIT, BOOT_ROUTES_UNIT, BOOT_RULES_FILE, BOOT_SETS_FILE, NETWORKD_DIR,
                     RP_FILTER_FILE, SYSCTL_FILE, SYSTEMD_UNIT_DIR, WG_QUICK_DIR, host_files, private_key_file)

SCHEDULE_JOB = "wgmesh-converge"
FIREWALLD_FILES = (firewall.DIRECT_FILE, firewall.ZONE_FILE, firewall.POLICY_FILE)
IPTABLES_BOOT_FILES = (BOOT_RULES_FILE, BOOT_SETS_FILE, f"{SYSTEMD_UNIT_DIR}/{BOOT_FIREWALL_UNIT}")
MARKER = "Managed by wgmesh"


def footprint(config: HostConfig, files: Optional[list] = None) -> dict:
    """The part of ``config`` a later cleanup needs (JSON-serialisable). ``files``: its
    ``host_files`` when the caller has them (a hub's of 10,000 developers take about 1 s to render)."""
    record = {"role": config.role}
    paths = [f.path for f in (host_files(config) if files is None else files)]
    if config.role in ("hub", "gateway"):
        record.update(interface=config.interface, backend=config.backend, files=paths + [private_key_file(config)])
    if config.firewall is not None:
        record["firewall"] = config.firewall.backend
    if config.static_routes:
        record["static_routes"] = [list(route) for route in config.static_routes]
        record["files"] = paths      # the unit adding them at boot
    return record


def owned_files(interface: str, record: dict) -> tuple[list[str], list[str]]:
    """(files wgmesh recorded writing: removed outright, files it writes by default: removed
    only when they are wgmesh's, ``owned_defaults``)."""
    recorded = list(record.get("files") or [])
    defaults = [f"{NETWORKD_DIR}/{interface}.netdev", f"{NETWORKD_DIR}/{interface}.network",
                f"{NETWORKD_DIR}/{interface}.key", f"{WG_QUICK_DIR}/{interface}.conf", f"{WG_QUICK_DIR}/{interface}.key",
                SYSCTL_FILE, RP_FILTER_FILE, *FIREWALLD_FILES, *IPTABLES_BOOT_FILES,
                f"{SYSTEMD_UNIT_DIR}/{BOOT_ROUTES_UNIT}"]
    return recorded, [path for path in defaults if path not in recorded]


def record_problems(record: dict) -> list[str]:
    """Why values of a footprint record (the minion's own, in its cachedir, but a file all the
    same: hand-edited, corrupted) cannot be used: its interface, files and static routes reach
    `ip` and file removal. Empty when every value is one an apply could have recorded."""
    problems = []
    interface = record.get("interface")
    if interface is not None and not (isinstance(interface, str) and re.fullmatch(INTERFACE_PATTERN, interface)):
        problems.append(f"interface {interface!r} is not an interface name")
    files = record.get("files") or []
    if not isinstance(files, list):
        problems.append("files is not a list")
    elif interface is None and tunnel_files([path for path in files if isinstance(path, str)]):
        problems.append("no interface is recorded for its tunnel files")
    elif not problems:      # the files wgmesh writes are named after the interface
        ours = set(owned_files(interface or "", {})[1])
        problems += [f"file {path!r} is none wgmesh writes" for path in files
                     if not isinstance(path, str) or path not in ours]
    routes = record.get("static_routes") or []
    if not isinstance(routes, list):
        problems.append("static_routes is not a list")
    else:
        problems += [f"static route {route!r} is not [IPv4 network, IPv4 address]"
                     for route in routes if not _is_static_route(route)]
    return problems


def _is_static_route(route) -> bool:
    """[destination, via] as ``footprint`` records a LAN router's route: a network other than the
    default route, and the gateway's address."""
    if not (isinstance(route, list) and len(route) == 2 and all(isinstance(part, str) for part in route)):
        return False
    try:
        ipaddress.IPv4Address(route[1])
        return ipaddress.IPv4Network(route[0]).prefixlen > 0
    except ValueError:
        return False


def tunnel_files(paths: list[str]) -> list[str]:
    """The WireGuard interface's own files among ``paths`` (what makes an interface wgmesh's)."""
    return [path for path in paths if path.startswith((f"{NETWORKD_DIR}/", f"{WG_QUICK_DIR}/"))]


def unit_names(paths: list[str]) -> list[str]:
    """The systemd units among ``paths`` (disabled before their files go)."""
    return [path.rsplit("/", 1)[1] for path in paths if path.startswith(f"{SYSTEMD_UNIT_DIR}/")]


def is_wgmesh_file(path: str, text: str) -> bool:
    """A default-path file is wgmesh's when it says so (a key file cannot: ``owned_defaults``)."""
    return MARKER in text


def owned_defaults(texts: dict) -> list[str]:
    """Of the default-path files present ({path: text}), wgmesh's: those that say so, and the key
    files beside a tunnel file that says so. A key file holds its key alone: without a record of
    wgmesh writing it and without wgmesh's tunnel file beside it, it may be a WireGuard set up by
    hand on a minion wgmesh never managed (every minion applies the state), which stays."""
    marked = [path for path, text in texts.items() if is_wgmesh_file(path, text)]
    with_keys = bool(tunnel_files(marked))
    return [path for path in texts if path in marked or (with_keys and path.endswith(".key"))]


def other_backend_files(config: HostConfig) -> list[tuple[str, str]]:
    """(kind, path) of the tunnel files the host's other backend would use (left by a backend
    switch, or by a hand-built setup): at boot they would bring the interface up twice.
    kind is the adopt.parse_key_source kind, to compare the key they hold."""
    base = f"{NETWORKD_DIR}/{config.interface}"
    if config.backend == "networkd":
        return [("wg_quick", f"{WG_QUICK_DIR}/{config.interface}.conf"), ("key", f"{WG_QUICK_DIR}/{config.interface}.key")]
    return [("netdev", f"{base}.netdev"), ("network", f"{base}.network"), ("key", f"{base}.key")]


def is_leftover(kind: str, text: str, own_key: str) -> bool:
    """Whether another backend's file is this host's own (wgmesh wrote it, or it holds this host's
    key): removed after a backend switch. Anything else is someone else's and stays."""
    from .adopt import parse_key_source
    if MARKER in text:
        return True
    if kind == "network":
        return False
    return parse_key_source(kind, text)[0] == own_key
