"""Adopting a host that already runs WireGuard: where its private key is.

A host set up by hand from the article (or by another backend of wgmesh)
already has a key its peers know. wgmesh must keep that key: a new one would
cut every peer off. This module only names the places to look and parses
what it finds there; the execution module reads the files and the live
interface (no I/O here).
"""
from __future__ import annotations

import re
from typing import Optional

from .keys import key_problem
from .render import NETWORKD_DIR, WG_QUICK_DIR

_NETDEV_KEY = re.compile(r"^\s*PrivateKey\s*=\s*(\S+)\s*$", re.MULTILINE)
_NETDEV_KEY_FILE = re.compile(r"^\s*PrivateKeyFile\s*=\s*(/\S+)\s*$", re.MULTILINE)
_WG_QUICK_KEY = re.compile(r"^\s*PrivateKey\s*=\s*(\S+)\s*$", re.MULTILINE | re.IGNORECASE)
# `PostUp = wg set %i private-key /etc/wireguard/private.key` (wgmesh's own wg0.conf does this)
_WG_QUICK_KEY_FILE = re.compile(r"^\s*PostUp\s*=.*\bprivate-key\s+(/\S+)", re.MULTILINE | re.IGNORECASE)


def _private_key_ok(key: str) -> bool:
    return key_problem(key, secret=True) is None   # `wg show private-key` prints "(none)" for no key


def key_sources(interface: str, configured: Optional[str] = None) -> list[tuple[str, str]]:
    """Where an existing private key of ``interface`` may be, in the order they are tried:
    (kind, path). kind ``key``: the file holds the key; ``netdev``/``wg_quick``: a config
    holding it inline or naming its file. ``configured``: a path the minion's config names.
    Both backends' places are listed, so a backend switch carries the key over."""
    sources = [("key", configured)] if configured else []
    sources += [("key", f"{NETWORKD_DIR}/{interface}.key"), ("key", f"{WG_QUICK_DIR}/{interface}.key"),
                ("netdev", f"{NETWORKD_DIR}/{interface}.netdev"), ("wg_quick", f"{WG_QUICK_DIR}/{interface}.conf")]
    return sources


def parse_key_source(kind: str, text: str) -> tuple[Optional[str], Optional[str]]:
    """(key found inline, path of a key file named) in a source's text; a key that is not a
    WireGuard private key is ignored (a placeholder, a comment)."""
    if kind == "key":
        inline, named = text.strip(), None
    elif kind == "netdev":
        found, named_match = _NETDEV_KEY.search(text), _NETDEV_KEY_FILE.search(text)
        inline, named = (found.group(1) if found else None), (named_match.group(1) if named_match else None)
    elif kind == "wg_quick":
        found, named_match = _WG_QUICK_KEY.search(text), _WG_QUICK_KEY_FILE.search(text)
        inline, named = (found.group(1) if found else None), (named_match.group(1) if named_match else None)
    else:
        raise ValueError(f"unknown key source kind {kind!r}")
    return (inline if inline and _private_key_ok(inline) else None), named


def find_existing_key(interface: str, read, configured: Optional[str] = None,
                      live_key: Optional[str] = None) -> Optional[tuple[str, str]]:
    """(private key, where it came from) of a host that has one, else None.

    ``read(path)`` returns a file's text or None; ``live_key``: the private key of the live
    interface, which wins over every file (the peers know that one: it is never replaced
    while the interface is up)."""
    if live_key and _private_key_ok(live_key):
        return live_key, f"the live interface {interface}"
    for kind, path in key_sources(interface, configured):
        text = read(path)
        if text is None:
            continue
        inline, named = parse_key_source(kind, text)
        if inline:
            return inline, path
        if named:
            named_text = read(named)
            key = named_text.strip() if named_text else None
            if key and _private_key_ok(key):
                return key, named
    return None
