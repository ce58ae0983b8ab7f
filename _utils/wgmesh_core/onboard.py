"""A developer's side of joining: key pair, pillar entry, finished client config, QR codes."""
from __future__ import annotations

import datetime
import os
import re
from pathlib import Path
from typing import Optional

import yaml

from .keys import generate_private_key, key_problem, public_key, write_secret_file
from .model import NetworkSpec

PRIVATE_KEY_PLACEHOLDER = re.compile(r"^# PrivateKey = .*$", re.M)


def next_free_address(spec: NetworkSpec) -> str:
    """The lowest VPN host address no entry uses (revoked entries keep theirs)."""
    taken = {spec.hub.address} | {gw.address for gw in spec.gateways.values()}
    taken |= {dev.address for dev in spec.developers.values()}
    for address in spec.network.iter_hosts():
        if address not in taken:
            return str(address)
    raise ValueError(f"no free address left in {spec.network}")


def make_key_pair(key_file: Path) -> str:
    """Create ``key_file`` (mode 0600) with a new private key unless it exists; return the public key."""
    key_file = Path(key_file)
    if not key_file.exists():
        key_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_secret_file(str(key_file), generate_private_key() + "\n", 0o600)
    return public_key(key_file.read_text().strip())


def pillar_entry(spec: NetworkSpec, name: str, public: str, lan_access="none",
                 expires: Optional[datetime.date] = None, platform: str = "linux") -> str:
    """The YAML to paste under ``wgmesh: developers:`` in the pull request."""
    if name in spec.developers:
        raise ValueError(f"developer {name!r} already exists in the pillar")
    entry = {"address": next_free_address(spec), "public_key": public, "lan_access": lan_access}
    if expires:
        entry["expires"] = expires
    if platform != "linux":
        entry["platform"] = platform
    text = yaml.safe_dump({name: entry}, sort_keys=False, default_flow_style=None)
    return "".join(f"    {line}\n" for line in text.splitlines())


def finish_client_config(config_text: str, private_key: str) -> str:
    """Put the developer's private key into the config the master rendered for them."""
    problem = key_problem(private_key, secret=True)
    if problem:
        raise ValueError(f"the key file does not hold a WireGuard private key: {problem}")
    if not PRIVATE_KEY_PLACEHOLDER.search(config_text):
        raise ValueError("the config has no '# PrivateKey = ...' line to fill in")
    return PRIVATE_KEY_PLACEHOLDER.sub(f"PrivateKey = {private_key}", config_text, count=1)


def write_client_files(config_text: str, out: Path, png: Optional[Path] = None) -> None:
    """Write the finished config (0600) and, optionally, its QR code as a PNG for mobile clients."""
    write_secret_file(str(out), config_text, 0o600)
    if png is not None:
        qr_code(config_text).save(str(png), scale=6, border=4)
        os.chmod(png, 0o600)


def qr_code(config_text: str):
    import segno
    return segno.make(config_text, error="l", micro=False)
