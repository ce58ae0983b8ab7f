"""Rendering a host's desired state into the files it should have."""
from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass, replace
from typing import Optional

import jinja2
import jinja2.ext
from jinja2.lexer import Token

from . import addresssets, firewall, templates
from .keys import shown
from .model import NetworkSpec
from .plan import HostConfig, client_routes, endpoint_with_port

INCLUDE = re.compile(r'{% include "(\w+)" %}')


def _inlined(sources: dict) -> dict:
    """Each template with its ``{% include "name" %}`` replaced by that template's text before
    Jinja compiles it: an include made a new context per peer, about 40 ms of a hub's 10,000
    peers. Inlined as text, the included lines render exactly as they would included."""
    return {name: INCLUDE.sub(lambda m: sources[m.group(1)], source) for name, source in sources.items()}


SOURCES = _inlined({name.lower(): getattr(templates, name) for name in dir(templates) if name.isupper()})


class UnsafeValue(ValueError):
    """A value would have added a line (or a control character) to a rendered file."""


def single_line(value, where: str):
    """Every ``{{ value }}`` passes here: wg-quick runs PostUp lines as root, so a value with a
    newline (say, an endpoint ending in ``\nPostUp = ...``) must never reach a file, whatever
    validation let through."""
    text = str(value)
    if not text.isprintable():   # newlines, tabs, every control and line/paragraph separator
        template, line = where.split(":")
        raise UnsafeValue(f"wgmesh: refusing to render {shown(text)} into {template}, line {line} "
                          f"({SOURCES[template].splitlines()[int(line) - 1].strip()}): a value may not "
                          "hold a newline or control character")
    return value


class SingleLineValues(jinja2.ext.Extension):
    """Rewrites every ``{{ expression }}`` into ``{{ (expression) | single_line("template:line") }}``."""

    def filter_stream(self, stream):
        for token in stream:
            if token.type == "variable_begin":
                yield token
                yield Token(token.lineno, "lparen", "(")
            elif token.type == "variable_end":
                where = f"{stream.name}:{token.lineno}"
                yield from (Token(token.lineno, kind, value) for kind, value in (
                    ("rparen", ")"), ("pipe", "|"), ("name", "single_line"), ("lparen", "("),
                    ("string", where), ("rparen", ")")))
                yield token
            else:
                yield token


_ENV = jinja2.Environment(loader=jinja2.DictLoader(SOURCES), extensions=[SingleLineValues],
                          undefined=jinja2.StrictUndefined, keep_trailing_newline=True, autoescape=False)
_ENV.filters["single_line"] = single_line

SYSCTL_FILE = "/etc/sysctl.d/10-ip-forward.conf"
RP_FILTER_FILE = "/etc/sysctl.d/10-wgmesh-rp-filter.conf"
NETWORKD_DIR = "/etc/systemd/network"
#: the iptables backend's boot-time rules and the unit loading them (firewalld keeps its own)
BOOT_RULES_FILE = "/etc/wgmesh/iptables.rules"
BOOT_SETS_FILE = "/etc/wgmesh/ipsets"
BOOT_FIREWALL_UNIT = "wgmesh-firewall.service"
#: a LAN router's route to the VPN at boot (`ip route` keeps nothing across a reboot)
BOOT_ROUTES_UNIT = "wgmesh-routes.service"
SYSTEMD_UNIT_DIR = "/etc/systemd/system"
WG_QUICK_DIR = "/etc/wireguard"


@dataclass(frozen=True)
class FileSpec:
    path: str
    content: str
    mode: str = "0644"
    group: str = "root"
    secret: bool = False     # holds key material: never shown in a diff


def render(template: str, **context) -> str:
    return _ENV.get_template(template).render(**context)


def private_key_file(config: HostConfig) -> str:
    folder = NETWORKD_DIR if config.backend == "networkd" else WG_QUICK_DIR
    return f"{folder}/{config.interface}.key"


def private_key_group(config: HostConfig) -> str:
    # networkd runs as systemd-network and must read the key and the netdev.
    return "systemd-network" if config.backend == "networkd" else "root"


def tunnel_files(config: HostConfig) -> list[FileSpec]:
    key_file = private_key_file(config)
    if config.backend == "networkd":
        base = f"{NETWORKD_DIR}/{config.interface}"
        return [
            FileSpec(f"{base}.netdev", render("netdev", c=config, private_key_file=key_file),
                     "0640", "systemd-network", secret=True),
            FileSpec(f"{base}.network", render("network", c=config)),
        ]
    return [FileSpec(f"{WG_QUICK_DIR}/{config.interface}.conf",
                     render("wg_quick", c=config, private_key_file=key_file), "0600", secret=True)]


def wg_quick_without_peers(config: HostConfig) -> str:
    """The wg-quick file of ``config`` without its peers: what the first `wg-quick up` reads, the
    peers going in after it with one `wg syncconf`. wg-quick parses its file in bash, about 10 s
    for a hub of 10,000 developers; wg parses the same peers in C."""
    return render("wg_quick", c=replace(config, peers=[]), private_key_file=private_key_file(config))


def firewall_files(config: HostConfig) -> list[FileSpec]:
    """firewalld's permanent configuration (read when it starts or reloads): direct rules, the
    tunnel's zone, and the policy opening the WireGuard port."""
    fw = config.firewall
    if fw is not None and fw.backend == "iptables":
        return iptables_boot_files(config)
    if fw is None or fw.backend != "firewalld":
        return []
    host_rules = _rules(fw, firewall.rules_once)
    chains, rules = firewall.chains_of(host_rules), [_direct_rule(rule) for rule in host_rules]
    del host_rules     # let go before the text is made (50,000 developers: 250,000 rules, about 20 MB)
    return [FileSpec(firewall.DIRECT_FILE, render("direct_xml", chains=chains, rules=rules)),
            FileSpec(firewall.ZONE_FILE, render("firewalld_zone", fw=fw, zone=firewall.ZONE)),
            FileSpec(firewall.POLICY_FILE, render("firewalld_policy", fw=fw, policy=firewall.POLICY))]


def _direct_rule(rule: firewall.Rule) -> str:
    """One of direct.xml's rules, made here rather than by Jinja (a hub of 50,000 developers has
    250,000): its arguments are checked as the rule is made, the whole line again as it is rendered."""
    return f'<rule ipv="ipv4" table="{rule.table}" chain="{rule.chain}" priority="{rule.priority}">{rule.args}</rule>'


def iptables_boot_files(config: HostConfig) -> list[FileSpec]:
    """The iptables backend's rules as a boot-time restore file, the ipsets they match (the file is
    written, without sets, also when there are none), and the unit loading both."""
    fw = config.firewall
    chains = _chain_rules(fw)
    sets = firewall.address_sets(fw)
    return [FileSpec(BOOT_RULES_FILE, f"# Managed by wgmesh (Salt): loaded at boot by {BOOT_FIREWALL_UNIT}.\n"
                     + firewall.boot_restore(fw, chains)),
            FileSpec(BOOT_SETS_FILE, f"# Managed by wgmesh (Salt): loaded at boot by {BOOT_FIREWALL_UNIT}"
                     + (" before the rules.\n" if sets else " (no set: every allow-list is short).\n")
                     + addresssets.boot_restore(sets)),
            FileSpec(f"{SYSTEMD_UNIT_DIR}/{BOOT_FIREWALL_UNIT}",
                     render("firewall_unit", fw=fw, jumps=firewall.jumps(fw, chains), rules_file=BOOT_RULES_FILE,
                            sets_file=BOOT_SETS_FILE if sets else None))]


def lan_router_files(config: HostConfig) -> list[FileSpec]:
    """The unit putting a LAN router's static routes back at boot (wgmesh.routes adds them live)."""
    if not config.static_routes:
        return []
    return [FileSpec(f"{SYSTEMD_UNIT_DIR}/{BOOT_ROUTES_UNIT}", render("routes_unit", routes=config.static_routes))]


def sysctl_files(config: HostConfig) -> list[FileSpec]:
    files = [FileSpec(SYSCTL_FILE, render("sysctl"))] if config.forwarding else []
    if config.strict_rp_filter:
        files.append(FileSpec(RP_FILTER_FILE, render("sysctl_rp_filter", interface=config.interface)))
    return files


#: a host's files by what makes them; a path is made by one group only
FILE_GROUPS = {"tunnel": tunnel_files, "sysctl": sysctl_files, "firewall": firewall_files, "routes": lan_router_files}


def host_files(config: HostConfig) -> list[FileSpec]:
    """Every file of this host's desired state (the private key file excepted: it is made on the host)."""
    return [spec_file for group in FILE_GROUPS for spec_file in host_file_group(config, group)]


def host_file_group(config: HostConfig, group: str) -> list[FileSpec]:
    """The files of ``host_files`` one group of ``FILE_GROUPS`` makes: a reader comparing two
    revisions holds one group of each at a time (a hub's files of 50,000 developers: 50 MB)."""
    if config.role not in (("lan_router",) if group == "routes" else ("hub", "gateway")):
        return []
    try:
        return FILE_GROUPS[group](config)
    except UnsafeValue as error:
        raise UnsafeValue(f"{error} (files of host {config.host}; nothing was written)") from None


def wg_setconf(config: HostConfig, private_key: str) -> str:
    """The full wg(8) configuration for `wg syncconf` (it must carry the private key and port)."""
    return render("wg_setconf", c=config, private_key=private_key)


NO_PRESHARED_KEY = "A" * 43 + "="     # 32 zero bytes: wg(8) reads it as "no preshared key"


def wg_addconf(peers) -> str:
    """The wg(8) text `wg addconf` takes to add or update ``peers`` (``plan.Peer``) in place."""
    return render("wg_addconf", peers=peers, no_preshared_key=NO_PRESHARED_KEY)


def _rules(fw, of=firewall.rules):
    try:
        return of(fw)
    except ValueError as error:      # a rule argument with a newline or control character
        raise UnsafeValue(str(error)) from None


def _chain_rules(fw) -> firewall.ChainRules:
    return _rules(fw, firewall.chain_rules)


def iptables_restore(config: HostConfig) -> str:
    return firewall.iptables_restore(config.firewall, _chain_rules(config.firewall))


def client_config(spec: NetworkSpec, name: str, hub_public_key: Optional[str] = None,
                  psk: Optional[str] = None, private_key: Optional[str] = None) -> str:
    """The wg-quick config a developer imports in the WireGuard app."""
    routes = client_routes(spec, name)
    return render("client", spec=spec, name=name, dev=spec.developers[name], routes=routes,
                  note_lines=textwrap.wrap(routes.note, 96), endpoint=endpoint_with_port(spec),
                  hub_public_key=hub_public_key,
                  psk=psk if spec.preshared_keys else None, private_key=private_key)
