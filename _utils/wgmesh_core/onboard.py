"""A developer's side of joining: key pair, pillar entry, finished client config, QR codes."""
from __future__ import annotations

import datetime
import hashlib
import ipaddress
import json
import os
import re
from pathlib import Path
from typing import Optional

import netaddr
import yaml

from .keys import create_secret_file, generate_private_key, key_problem, read_own_secret_file, shown, write_secret_file
from .model import NAME_PATTERN, NetworkSpec
from .validate import HOSTNAME_RE, InvalidNetwork, endpoint_problem, load_network

PRIVATE_KEY_PLACEHOLDER = re.compile(r"^# PrivateKey = .*$", re.M)
# wg-quick runs these (or changes routing or the file itself) as root: a client config never has them.
RUNS_AS_ROOT = {"postup", "preup", "postdown", "predown", "table", "saveconfig"}


#: how many of the lowest free addresses a new developer's is chosen among
ADDRESS_CHOICES = 64


def free_address(spec: NetworkSpec, public: str) -> str:
    """One of the ``ADDRESS_CHOICES`` lowest VPN host addresses no entry uses (revoked entries
    keep theirs), picked by the public key: the same key gets the same address on every run, and
    two developers joining from the same revision seldom take the same one (with the lowest free
    address every such pair did, and the merge of both pull requests was an invalid pillar)."""
    taken = {int(spec.hub.address)} | {int(gw.address) for gw in spec.gateways.values()}
    taken |= {int(dev.address) for dev in spec.developers.values()}
    free = []
    for candidate in range(spec.network.first + 1, spec.network.last):     # neither network nor broadcast
        if candidate not in taken:
            free.append(candidate)
            if len(free) == ADDRESS_CHOICES:
                break
    if not free:
        raise ValueError(f"no free address left in {spec.network}")
    pick = int.from_bytes(hashlib.sha256(public.encode()).digest()[:8], "big") % len(free)
    return str(netaddr.IPAddress(free[pick], 4))


def own_or_new_key(key_file: Path) -> tuple[str, bool]:
    """(private key, whether it is new): the key in ``key_file`` when there is one, if it is this
    user's alone (``keys.read_own_secret_file``) and a key, else a new one, which
    ``save_new_key`` writes once the entry it goes with is accepted."""
    if not os.path.lexists(key_file):
        return generate_private_key(), True
    private = read_own_secret_file(str(key_file)).strip()
    problem = key_problem(private, secret=True)
    if problem:
        raise ValueError(f"{key_file} holds no WireGuard private key: {problem}")
    return private, False


def save_new_key(key_file: Path, private: str) -> None:
    """Write a new private key to ``key_file`` (0600, in a 0700 folder), never over a file that
    appeared meanwhile (another `join` at the same time)."""
    Path(key_file).parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        create_secret_file(str(key_file), private + "\n", 0o600)
    except FileExistsError:
        raise ValueError(f"{key_file} was made meanwhile (another join?): it is kept; run join again") from None


def check_name(name: str) -> None:
    """ValueError unless ``name`` is one the pillar takes for a developer (it also names the key file)."""
    if not re.fullmatch(NAME_PATTERN, name):
        raise ValueError(f"{shown(name)} is not a name the pillar takes (letters, digits, '.', '_', '-'; "
                         "starting with a letter or digit; at most 63)")


def new_entry(spec: NetworkSpec, name: str, public: str, lan_access="none", expires: Optional[datetime.date] = None,
              platform: str = "linux", today: Optional[datetime.date] = None) -> dict:
    """Developer ``name``'s pillar entry, checked as the pull request's pillar will be (the whole
    network with it, as of ``today``) and active today: ValueError naming what would be refused,
    before any key is written."""
    today = today or datetime.date.today()
    if name in spec.developers:
        raise ValueError(f"developer {name!r} already exists in the pillar")
    check_name(name)
    if expires is not None and expires < today:
        raise ValueError(f"--expires {expires} is before today ({today}): the entry would give no access")
    entry = {"address": free_address(spec, public), "public_key": public, "lan_access": lan_access}
    if expires:
        entry["expires"] = expires
    if platform != "linux":
        entry["platform"] = platform
    data = spec.model_dump(mode="json")
    data["developers"][name] = entry
    try:
        load_network(data, today=today)
    except InvalidNetwork as error:
        raise ValueError(f"the pillar would refuse the entry: {'; '.join(str(p) for p in error.problems)}") from None
    return entry


def entry_indent(developers_text: str) -> tuple[int, int]:
    """(indent of a developer's name, indent step) in a YAML developers file, as its entries are
    written; (4, 2), the example's, when no entry shows it."""
    lines = developers_text.splitlines()
    for number, line in enumerate(lines):
        heading = re.fullmatch(r"( *)developers: *(#.*)?", line)
        if heading:
            following = next((rest for rest in lines[number + 1:] if rest.strip() and not rest.lstrip().startswith("#")), "")
            indent = len(following) - len(following.lstrip(" "))
            if indent > len(heading.group(1)):
                return indent, indent - len(heading.group(1))
    return 4, 2


def pillar_entry(spec: NetworkSpec, name: str, public: str, lan_access="none",
                 expires: Optional[datetime.date] = None, platform: str = "linux", as_json: bool = False,
                 today: Optional[datetime.date] = None, indent: tuple[int, int] = (4, 2)) -> str:
    """The YAML to paste under ``wgmesh: developers:`` in the pull request (``new_entry``),
    indented as ``indent`` says (``entry_indent``); ``as_json``: the line for a ``#!json``
    developers file (``jsondata.dump_json_sls``'s layout, without the comma)."""
    entry = new_entry(spec, name, public, lan_access, expires, platform, today)
    if as_json:
        if expires:
            entry["expires"] = expires.isoformat()
        return f"      {json.dumps(name)}: {json.dumps(entry)}\n"
    prefix, step = indent
    text = yaml.safe_dump({name: entry}, sort_keys=False, default_flow_style=None, indent=step)
    return "".join(f"{' ' * prefix}{line}\n" for line in text.splitlines())


def _addresses(value: str, parse) -> Optional[str]:
    for item in value.split(","):
        try:
            parse(item.strip())
        except ValueError:
            return f"{item.strip()!r} is not an address"
    return None


def _number(value: str, low: int, high: int, allow_off: bool = False) -> Optional[str]:
    if allow_off and value.lower() == "off":
        return None
    if not (value.isascii() and value.isdigit() and low <= int(value) <= high):
        return f"{value!r} is not a number in {low}-{high}"
    return None


def _dns(value: str) -> Optional[str]:
    for item in (part.strip() for part in value.split(",")):
        if not (_addresses(item, ipaddress.ip_address) is None or HOSTNAME_RE.fullmatch(item)):
            return f"{item!r} is neither an address nor a search domain"
    return None


# The keys wg-quick documents for a client, each with the check of its value (lower case:
# wg-quick matches keys case-insensitively).  PrivateKey comes from the key file only.
CLIENT_KEYS = {
    "interface": {"address": lambda v: _addresses(v, ipaddress.ip_interface), "dns": _dns,
                  "mtu": lambda v: _number(v, 576, 9000), "listenport": lambda v: _number(v, 1, 65535)},
    "peer": {"publickey": key_problem, "presharedkey": key_problem, "endpoint": endpoint_problem,
             "allowedips": lambda v: _addresses(v, ipaddress.ip_network),
             "persistentkeepalive": lambda v: _number(v, 0, 65535, allow_off=True)},
}


def client_config_problems(config_text: str) -> list[str]:
    """Why wg-quick should not be given ``config_text``: one message per offending line."""
    problems, section, sections = [], None, []
    for number, line in enumerate(config_text.split("\n"), 1):
        where = f"line {number}"
        if not line.isprintable():
            problems.append(f"{where}: {shown(line)} holds a control character")
            continue
        text = line.split("#", 1)[0].strip()        # wg-quick drops comments the same way
        if not text:
            continue
        if text.startswith("["):
            section = text[1:-1].lower() if text.endswith("]") else text
            sections.append(section)
            if section not in CLIENT_KEYS:
                problems.append(f"{where}: unknown section {text} (a client config has [Interface] and [Peer])")
            continue
        key, equals, value = (part.strip() for part in text.partition("="))
        if not equals:
            problems.append(f"{where}: {shown(text)} is not 'Key = value'")
        elif key.lower() in RUNS_AS_ROOT:
            problems.append(f"{where}: {key} makes wg-quick run commands or change routing as root: "
                            "refused (a wgmesh client config never has it)")
        elif key.lower() == "privatekey":
            problems.append(f"{where}: the config already holds a PrivateKey (yours comes from --key-file)")
        elif section not in CLIENT_KEYS or key.lower() not in CLIENT_KEYS[section]:
            allowed = ", ".join(sorted(k for keys in CLIENT_KEYS.values() for k in keys))
            problems.append(f"{where}: unknown key {shown(key)} in [{section or 'no section'}] (allowed: {allowed})")
        else:
            why = CLIENT_KEYS[section][key.lower()](value)
            if why:
                problems.append(f"{where}: {key}: {why}")
    if sections.count("interface") != 1 or "peer" not in sections:
        problems.append("the config needs one [Interface] and at least one [Peer] section")
    return problems


def finish_client_config(config_text: str, private_key: str) -> str:
    """Put the developer's private key into the config the master rendered for them, after
    checking that the config holds nothing but what a client config has (see CLIENT_KEYS)."""
    problem = key_problem(private_key, secret=True)
    if problem:
        raise ValueError(f"the key file does not hold a WireGuard private key: {problem}")
    if not PRIVATE_KEY_PLACEHOLDER.search(config_text):
        raise ValueError("the config has no '# PrivateKey = ...' line to fill in")
    problems = client_config_problems(config_text)
    if problems:
        raise ValueError("refusing the config, nothing written:\n" + "\n".join(problems))
    return PRIVATE_KEY_PLACEHOLDER.sub(f"PrivateKey = {private_key}", config_text, count=1)


def write_client_files(config_text: str, out: Path, png: Optional[Path] = None) -> None:
    """Write the finished config (0600) and, optionally, its QR code as a PNG for mobile clients.

    The PNG carries the private key too: it is created 0600 and must not exist yet (O_EXCL:
    never written through a link or into a file someone else can already read)."""
    png_fd = None
    if png is not None:
        try:
            png_fd = os.open(png, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            raise ValueError(f"{png} exists: remove it first (the QR code holds your private key)") from None
    try:
        write_secret_file(str(out), config_text, 0o600)
        if png_fd is not None:
            with os.fdopen(png_fd, "wb") as handle:
                png_fd = None
                qr_code(config_text).save(handle, kind="png", scale=6, border=4)
    except BaseException:
        if png is not None:          # made by this run: a leftover would refuse the next
            if png_fd is not None:
                os.close(png_fd)
            os.unlink(png)
        raise


def qr_code(config_text: str):
    import segno
    return segno.make(config_text, error="l", micro=False)
