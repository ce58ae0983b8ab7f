"""The tunnel interface's addressing on a hub or gateway, and a LAN router's static routes:
what the live `ip` listings lack against the plan, and the commands that fix it. The adapter
reads the listings and runs the commands, as it does for the firewall (firewall.py)."""
from __future__ import annotations

from dataclasses import dataclass

from .firewall import Command
from .plan import HostConfig


@dataclass(frozen=True)
class InterfaceLive:
    """What the adapter read about an existing tunnel interface (see ``interface_listings``)."""
    link: str          # `ip -o link show dev <interface>`
    addresses: str     # `ip -o -4 addr show dev <interface>`
    routes: str        # `ip -4 route show dev <interface>`
    rp_filter: str     # net.ipv4.conf.<interface>.rp_filter


def interface_listings(interface: str) -> dict:
    """InterfaceLive field -> the `ip` command printing it (rp_filter: read through sysctl)."""
    return {"link": ("ip", "-o", "link", "show", "dev", interface),
            "addresses": ("ip", "-o", "-4", "addr", "show", "dev", interface),
            "routes": ("ip", "-4", "route", "show", "dev", interface)}


def rp_filter_key(interface: str) -> str:
    return f"net/ipv4/conf/{interface}/rp_filter"     # slashes: an interface name may hold a dot


def interface_change(config: HostConfig, live: InterfaceLive) -> tuple[list[str], list[Command]]:
    """(what differs, the commands fixing it): MTU, link state, address (an old one removed: a
    renumbered host must not keep sourcing traffic from it), strict reverse-path filter, the
    tunnel's routes (routes the plan no longer wants removed; the connected VPN route stays)."""
    interface, changes, commands = config.interface, [], []

    def change(what: str, *argv: str) -> None:
        changes.append(what)
        commands.append(Command(argv))

    if f"mtu {config.mtu} " not in live.link:
        change(f"mtu {config.mtu}", "ip", "link", "set", "dev", interface, "mtu", str(config.mtu))
    flags = live.link.split("<", 1)[1].split(">", 1)[0].split(",") if "<" in live.link else []
    if "UP" not in flags:
        change("link up", "ip", "link", "set", "dev", interface, "up")
    if f" {config.address} " not in live.addresses:
        change(f"address {config.address}", "ip", "addr", "replace", config.address, "dev", interface)
    for line in live.addresses.splitlines():
        words = line.split()
        old = words[words.index("inet") + 1] if "inet" in words else None
        if old and old != config.address:
            change(f"removed address {old}", "ip", "addr", "del", old, "dev", interface)
    if config.strict_rp_filter and live.rp_filter.strip() != "1":
        change(f"rp_filter 1 (strict) on {interface}", "sysctl", "-q", "-w", f"{rp_filter_key(interface)}=1")
    routes = [line for line in live.routes.splitlines() if line.strip()]
    present = {line.split()[0] for line in routes}
    for route in config.interface_routes:
        if route not in present:
            change(f"route {route}", "ip", "route", "replace", route, "dev", interface)
    for line in routes:
        destination = line.split()[0]
        if "proto kernel" not in line and "/" in destination and destination not in config.interface_routes:
            change(f"removed route {destination}", "ip", "route", "del", destination, "dev", interface)
    return changes, commands


def route_present(shown: str, via: str) -> bool:
    """Whether `ip -4 route show <destination>` lists a route through ``via``."""
    return f"via {via} " in shown + " "


def static_routes_change(routes: list, shown: dict) -> tuple[list[str], list[Command]]:
    """A LAN router's static routes ((destination, via)) missing from what `ip -4 route show
    <destination>` printed (``shown``: destination -> text), and the commands adding them."""
    missing = [(destination, via) for destination, via in routes if not route_present(shown[destination], via)]
    return ([f"{destination} via {via}" for destination, via in missing],
            [Command(("ip", "route", "replace", destination, "via", via)) for destination, via in missing])


def static_routes_removal(routes: list, shown: dict) -> tuple[list[str], list[Command]]:
    """The recorded static routes still present, and the commands deleting them."""
    present = [(destination, via) for destination, via in routes if route_present(shown[destination], via)]
    return ([f"{destination} via {via}" for destination, via in present],
            [Command(("ip", "route", "del", destination, "via", via), check=False) for destination, via in present])
