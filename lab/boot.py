"""A reboot of a lab host, as far as a namespace can have one (issue 11).

``power_off`` stops what runs on the host (its salt-minion, firewalld, systemd-networkd and the
netdev stand-in, its D-Bus, the WireGuard interface's wireguard-go) and drops what a power cycle
drops: the WireGuard interface, every firewall rule (nftables, and so iptables-nft), wgmesh's
static routes and the sysctls wgmesh sets. Files stay, as on a disk.

``power_on`` runs only what a boot runs, from the host's own files, in systemd's order, and no
Salt: systemd-sysctl (/etc/sysctl.d), wgmesh's units in /etc/systemd/system (their Exec lines,
as systemd runs them: there is no systemd as PID 1 here), firewalld, then systemd-networkd
(whose WireGuard netdevs the stand-in creates) or wg-quick@<interface>; a new interface gets
its per-interface sysctls as udev's systemd-sysctl call gives them.

The uplink and LAN addresses stay: the lab configures them from outside, as a host's own
network configuration would at boot.
"""
from __future__ import annotations

import time
from pathlib import Path

from .topology import Lab

SYSCTL_DIR = "/etc/sysctl.d"
UNIT_DIR = "/etc/systemd/system"
WGMESH_UNITS = "wgmesh-*.service"


def tunnel_file(lab: Lab, host: str, backend: str, interface: str = "wg0") -> Path | None:
    """The file the host's tunnel comes up from at boot; None on a LAN router."""
    path = lab.host_path(host, f"/etc/systemd/network/{interface}.netdev" if backend == "networkd"
                         else f"/etc/wireguard/{interface}.conf")
    return path if path.exists() else None


def power_off(lab: Lab, host: str, vpn: str, backend: str, interface: str = "wg0") -> None:
    """``vpn``: the VPN network, whose static route (a LAN router's) goes. A LAN router keeps
    its own forwarding and NAT: they are not wgmesh's, and its own configuration restores them."""
    lab.stop_minion(host)
    for line in lab.exec(host, ["ip", "-4", "route", "show", vpn]).stdout.splitlines():
        lab.exec(host, ["ip", "route", "del", vpn, *line.split()[1:]])
    if tunnel_file(lab, host, backend, interface) is None:
        return
    for name in ("firewalld", "networkd", "netdev-standin", "dbus"):
        if lab.pid(host, name):
            lab.stop(host, name, grace=10)
    lab.exec(host, ["ip", "link", "del", "dev", interface], check=False)   # wireguard-go exits with it
    lab.exec(host, ["nft", "flush", "ruleset"])
    lab.exec(host, ["ipset", "destroy"])          # every set: no rule uses one any more
    lab.exec(host, ["sysctl", "-qw", "net.ipv4.ip_forward=0"])


def unit_commands(text: str) -> list[tuple[list[str], bool]]:
    """(argv, failure ignored) of a oneshot unit's ExecStartPre and ExecStart lines, in order."""
    commands = []
    for line in text.splitlines():
        key, _, command = line.partition("=")
        if key in ("ExecStartPre", "ExecStart"):
            commands.append((command.lstrip("-").split(), command.startswith("-")))
    return commands


def run_unit(lab: Lab, host: str, unit: Path, attempts: int = 5) -> None:
    """A unit's commands as systemd runs them, with its Restart=on-failure (RestartSec ignored)."""
    for attempt in range(attempts):
        failed = [argv for argv, ignored in unit_commands(unit.read_text())
                  if lab.exec(host, argv, check=False).returncode != 0 and not ignored]
        if not failed:
            return
        time.sleep(1)
    raise AssertionError(f"{host}: {unit.name} failed at boot: {failed}")


def sysctl_files(lab: Lab, host: str) -> list[str]:
    return sorted(f"{SYSCTL_DIR}/{p.name}" for p in lab.host_path(host, SYSCTL_DIR).glob("*.conf"))


def power_on(lab: Lab, host: str, backend: str, firewalld: str | None = None,
             lan_zone: dict | None = None, interface: str = "wg0", timeout: float = 30) -> None:
    """Boot ``host``: ``backend`` "networkd" or "wgquick", ``firewalld`` its firewalld backend when
    it runs firewalld, ``lan_zone`` its interfaces' zones (lab.services.start_firewalld)."""
    for path in sysctl_files(lab, host):       # systemd-sysctl: keys of absent interfaces fail alone
        lab.exec(host, ["sysctl", "-q", "-p", path], check=False)
    for unit in sorted(lab.host_path(host, UNIT_DIR).glob(WGMESH_UNITS)):
        run_unit(lab, host, unit)
    if firewalld:
        lab.start_firewalld(host, firewalld, lan_zone)
    if tunnel_file(lab, host, backend, interface) is None:     # a LAN router
        return
    if backend == "networkd":
        lab.start_networkd(host)
    else:
        lab.exec(host, ["wg-quick", "up", interface])
    deadline = time.monotonic() + timeout
    while lab.exec(host, ["ip", "link", "show", "dev", interface], check=False).returncode != 0:
        if time.monotonic() > deadline:
            raise AssertionError(f"{host}: {interface} not up {timeout}s after boot")
        time.sleep(0.2)
    for path in sysctl_files(lab, host):       # udev's systemd-sysctl for the new link
        lab.exec(host, ["sysctl", "-q", "-p", path], check=False)
