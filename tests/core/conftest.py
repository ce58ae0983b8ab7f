"""Shared fixtures of the core tests: the example pillar (the article's network)."""
from __future__ import annotations

import pytest

from wgmesh_core.validate import InvalidNetwork, load_network

from tests.conftest import PILLAR, REPO, TODAY, example_network_data  # noqa: F401 (shared constants)


@pytest.fixture
def data():
    """A fresh, mutable copy of the example pillar's ``wgmesh`` value."""
    return example_network_data()


@pytest.fixture
def spec(data):
    return load_network(data)


def problems_of(data, known_minions=None, today=None):
    """The problems ``load_network`` reports; fails the test when the data is accepted."""
    with pytest.raises(InvalidNetwork) as info:
        load_network(data, known_minions=known_minions, today=today)
    assert info.value.problems, "InvalidNetwork raised with an empty problem list"
    return info.value.problems


def problem_at(problems, where):
    """The single problem reported for ``where`` (exact dotted path)."""
    found = [p for p in problems if p.where == where]
    assert found, f"no problem at {where!r}; got {[str(p) for p in problems]}"
    return found[0]


def parse_ini(text: str) -> list[tuple[int, str, str, str]]:
    """An INI-like file as ordered (section ordinal, section, key, value) entries.

    Comments and blank lines are ignored; repeated sections (one [WireGuardPeer]
    per peer) keep apart by their ordinal.  Any other line fails the test.
    """
    entries, ordinal, section = [], -1, None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]"):
            ordinal, section = ordinal + 1, line[1:-1]
            continue
        assert "=" in line, f"line is neither a section, a key nor a comment: {raw!r}"
        assert section is not None, f"key before any section: {raw!r}"
        key, _, value = line.partition("=")
        entries.append((ordinal, section, key.strip(), value.strip()))
    return entries


ZERO_KEY = "A" * 43 + "="     # wg(8): the preshared key "none"


def addconf_applied(peers: dict, text: str) -> dict:
    """MOCK of what `wg addconf IF FILE` does to an interface's peers (public key -> LivePeer),
    as wg(8) does it (checked on wireguard-go in tests/lab/test_wireguard.py): each [Peer] adds
    that peer or updates it in place (its handshake and counters kept); the section's AllowedIPs
    replace the peer's, the zero preshared key clears one, keepalive ``off`` is none, and an
    Endpoint the section leaves out stays as it was."""
    from wgmesh_core.live import LivePeer
    sections: dict[int, dict] = {}
    for index, section, key, value in parse_ini(text):
        assert section == "Peer", f"wg addconf of [{section}]: only peers are set this way"
        assert key not in sections.setdefault(index, {}), f"{key} twice in one [Peer]"
        sections[index][key] = value
    peers = dict(peers)
    for fields in sections.values():
        assert "AllowedIPs" in fields, "a [Peer] without AllowedIPs would clear the peer's"
        key = fields["PublicKey"]
        old = peers.get(key) or LivePeer(key, None, None, frozenset(), 0, 0, 0, 0)
        psk = fields.get("PresharedKey", old.preshared_key)
        keepalive = fields.get("PersistentKeepalive", str(old.keepalive))
        peers[key] = LivePeer(key, None if psk == ZERO_KEY else psk, fields.get("Endpoint", old.endpoint),
                              frozenset(ip.strip() for ip in fields["AllowedIPs"].split(",") if ip.strip()),
                              old.latest_handshake, old.rx_bytes, old.tx_bytes,
                              0 if keepalive == "off" else int(keepalive))
    return peers
