"""report.status_report: expiry, revocation and handshake flags, one row per peer of the hub."""
from __future__ import annotations

import copy
import datetime

import pytest

from wgmesh_core.report import status_report
from wgmesh_salt import read_document
from wgmesh_core.validate import load_network

from .conftest import PILLAR, TODAY, new_public_key

DAY = datetime.timedelta(days=1)


@pytest.fixture(scope="module")
def spec():
    data = copy.deepcopy(read_document(PILLAR).network)
    data["gateways"]["b"] = {"address": "10.70.0.20", "lan": "192.168.202.0/24",
                             "lan_address": "192.168.202.1", "revoked": True}
    devs = data["developers"]
    devs["e"]["expires"] = str(TODAY + 100 * DAY)                   # far: no flag
    devs["f"]["expires"] = str(TODAY + 3 * DAY)                     # soon
    devs["old"] = {"address": "10.70.0.6", "public_key": new_public_key(), "expires": str(TODAY - DAY)}
    devs["gone"] = {"address": "10.70.0.7", "public_key": new_public_key(), "revoked": True}
    devs["last"] = {"address": "10.70.0.8", "public_key": new_public_key(), "expires": str(TODAY)}
    devs["edge"] = {"address": "10.70.0.9", "public_key": new_public_key(), "expires": str(TODAY + 14 * DAY)}
    devs["later"] = {"address": "10.70.0.10", "public_key": new_public_key(), "expires": str(TODAY + 15 * DAY)}
    devs["both"] = {"address": "10.70.0.11", "public_key": new_public_key(), "revoked": True,
                    "expires": str(TODAY - 10 * DAY)}
    return load_network(data)


AGES = {"a": 30, "c": 601, "e": 600, "f": None, "old": 5, "gone": 5, "last": 0, "edge": 10,
        "later": 9999, "both": None}


def rows_by_name(spec, ages=AGES, **kwargs):
    rows = status_report(spec, ages, TODAY, **kwargs)
    return [r["name"] for r in rows], {r["name"]: r for r in rows}


def test_one_row_per_peer_gateways_first_revoked_gateways_left_out(spec):
    names, rows = rows_by_name(spec)
    assert names == ["a", "c", "e", "f", "old", "gone", "last", "edge", "later", "both"]
    assert [rows[n]["kind"] for n in ("a", "c", "e")] == ["gateway", "gateway", "developer"]
    assert rows["c"]["handshake_age"] == 601 and rows["f"]["handshake_age"] is None


def test_flags(spec):
    _, rows = rows_by_name(spec)
    flags = {name: row["flags"] for name, row in rows.items()}
    assert flags["a"] == []                                     # 30 s ago: fine
    assert flags["c"] == ["silent for 601 s"]                   # > stale_after (600)
    assert flags["e"] == []                                     # exactly 600 s: not stale yet; expiry far away
    assert flags["f"] == [f"expires in 3 day(s) ({TODAY + 3 * DAY})", "no handshake yet"]
    assert flags["old"] == [f"expired on {TODAY - DAY}"]        # inactive: no handshake flag
    assert flags["gone"] == ["revoked"]
    assert flags["last"] == [f"expires in 0 day(s) ({TODAY})"]  # still active on its last day
    assert flags["edge"] == [f"expires in 14 day(s) ({TODAY + 14 * DAY})"]
    assert flags["later"] == ["silent for 9999 s"]              # 15 days: outside soon_days
    assert flags["both"] == ["revoked"]                          # revoked wins over the date


def test_thresholds_are_parameters(spec):
    _, rows = rows_by_name(spec, stale_after=20, soon_days=2)
    assert rows["a"]["flags"] == ["silent for 30 s"]
    assert rows["f"]["flags"] == ["no handshake yet"]           # 3 days is no longer "soon"
    assert rows["edge"]["flags"] == []
    assert rows["last"]["flags"] == [f"expires in 0 day(s) ({TODAY})"]
    _, rows = rows_by_name(spec, stale_after=10_000, soon_days=30)
    assert rows["later"]["flags"] == [f"expires in 15 day(s) ({TODAY + 15 * DAY})"]
    assert rows["c"]["flags"] == []


def test_a_peer_missing_from_the_handshakes_never_shook_hands(spec):
    _, rows = rows_by_name(spec, ages={})
    assert rows["a"]["flags"] == ["no handshake yet"] and rows["a"]["handshake_age"] is None
    assert rows["gone"]["flags"] == ["revoked"]
    assert rows["old"]["flags"] == [f"expired on {TODAY - DAY}"]
