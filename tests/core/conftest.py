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
