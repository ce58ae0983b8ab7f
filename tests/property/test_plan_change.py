"""`plan_change` between two random networks: it converges exactly the hosts whose desired state differs."""
from __future__ import annotations

import copy
import difflib

from hypothesis import given
from hypothesis import strategies as st

from wgmesh_core.diff import plan_change, stand_in_keys
from wgmesh_core.plan import host_config, host_setup, managed_hosts, peer_psk
from wgmesh_core.render import host_files, iptables_restore
from wgmesh_core.validate import load_network

from tests.conftest import TODAY

from .strategies import accepted, network_pairs, networks


def desired_state(spec, host):
    """Everything Salt would converge on ``host``: its files, live firewall rules and static routes
    (planned with the stand-in keys `wgmesh plan` uses); nothing at all when it is not a host of ``spec``."""
    if spec is None or host not in managed_hosts(spec):
        return {}, None, []
    public, psks = stand_in_keys(spec)
    config = host_config(spec, host, TODAY, public, psks)
    rules = iptables_restore(config) if config.firewall and config.firewall.backend == "iptables" else None
    return {f.path: f.content for f in host_files(config)}, rules, config.static_routes


@given(network_pairs())
def test_plan_change_converges_exactly_the_hosts_whose_desired_state_differs(pair):
    old, new = accepted(pair[0]), accepted(pair[1])
    plan = plan_change(old, new, TODAY)
    hosts = set(managed_hosts(old)) | set(managed_hosts(new))
    differ = {host for host in hosts if desired_state(old, host) != desired_state(new, host)}
    assert set(plan.affected) == differ
    assert {change.host for change in plan.hosts} == hosts
    # the hub first, then gateways, then LAN routers and hosts that left the network
    rank = {"hub": 0, "gateway": 1, "lan_router": 2, "none": 3}
    ranks = [rank[change.role] for change in plan.hosts]
    assert ranks == sorted(ranks)


@given(networks())
def test_plan_change_from_a_network_to_itself_changes_nothing(data):
    spec = accepted(data)
    plan = plan_change(spec, load_network(copy.deepcopy(data)), TODAY)
    assert plan.affected == [] and plan.clients_changed == [] and plan.clients_removed == []
    assert all(change.summary() == "unchanged" for change in plan.hosts)


@given(networks())
def test_a_first_deployment_converges_every_wireguard_host_and_lan_router(data):
    spec = accepted(data)
    plan = plan_change(None, spec, TODAY)
    expected = {host for host in managed_hosts(spec) if desired_state(spec, host) != ({}, None, [])}
    assert set(plan.affected) == expected


@given(network_pairs())
def test_a_preshared_key_changes_exactly_when_its_peer_rekeys_or_the_epoch_moves(pair):
    old, new = accepted(pair[0]), accepted(pair[1])
    secret = bytes(32)
    for name in set(old.developers) & set(new.developers):
        rekeyed = old.developers[name].public_key != new.developers[name].public_key
        rotated = old.preshared_key_epoch != new.preshared_key_epoch
        moved = (peer_psk(old, name, secret, old.preshared_key_epoch)
                 != peer_psk(new, name, secret, new.preshared_key_epoch))
        assert moved == (rekeyed or rotated), name


@given(network_pairs())
def test_the_clients_that_change_are_those_whose_imported_config_differs(pair):
    """plan_change renders only the client configs that may have changed; the list is the one
    rendering every active developer's config in both revisions gives."""
    from wgmesh_core.diff import _client_lines
    from wgmesh_core.plan import active_developers
    old, new = accepted(pair[0]), accepted(pair[1])
    before = active_developers(old, TODAY)
    expected = [name for name in active_developers(new, TODAY)
                if name not in before or _client_lines(old, name) != _client_lines(new, name)]
    assert plan_change(old, new, TODAY).clients_changed == expected


def edited(parts: list, edits: list) -> list:
    """``parts`` with each (position, part) edit made: inserted, or (an empty part) the one there deleted."""
    parts = list(parts)
    for position, part in edits:
        position = min(position, len(parts))
        if part:
            parts.insert(position, part)
        elif parts[position:]:
            del parts[position]
    return parts


def apply_unified(diff: str, old: str) -> str:
    """``old`` with a unified diff applied, checking every hunk's line numbers and context."""
    import re
    lines, out, at = old.splitlines(True), [], 0
    body = diff.splitlines(True)[2:]
    for index, line in enumerate(body):
        hunk = re.match(r"@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@\n", line)
        if hunk:
            start, length = int(hunk[1]), int(hunk[2] if hunk[2] is not None else 1)
            first = start - 1 if length else start
            out += lines[at:first]
            at = first
            assert len(out) + 1 == int(hunk[3]) or int(hunk[4] or 1) == 0
        elif line[0] in " -":
            assert lines[at] == line[1:], (index, line)
            at += 1
            if line[0] == " ":
                out.append(line[1:])
        else:
            out.append(line[1:])
    return "".join(out + lines[at:])


@given(st.lists(st.sampled_from(["a\n", "b\n", "c\n", "[Peer]\n"]), max_size=30),
       st.lists(st.tuples(st.integers(0, 40), st.sampled_from(["", "a\n", "x\n", "[Peer]\n"])), max_size=4))
def test_a_file_diff_turns_the_old_text_into_the_new(old_lines, edits):
    """The diffs a reviewer reads (only the part between the texts' common first and last lines is
    matched): applied to the old file they give the new one, line numbers included."""
    import difflib
    from hypothesis import note
    from wgmesh_core.diff import unified
    new_lines = edited(old_lines, edits)
    old, new = "".join(old_lines), "".join(new_lines)
    diff = unified("/f", old, new)
    note(diff)
    assert apply_unified(diff, old) == new if diff else old == new
    if old_lines[:1] != new_lines[:1] and old_lines[-1:] != new_lines[-1:]:   # nothing to leave out: difflib's diff
        assert diff == "".join(difflib.unified_diff(old.splitlines(True), new.splitlines(True), "a/f", "b/f"))


@given(network_pairs())
def test_the_fast_path_takes_exactly_the_changed_hosts_that_keep_their_setup(pair):
    """live_first: affected hubs and gateways whose role, interface and both backends are the
    same in both revisions (what only a state run sets up); ``host_setup`` (what the key file
    and services follow) agrees with the full plan on every host."""
    old, new = accepted(pair[0]), accepted(pair[1])
    plan = plan_change(old, new, TODAY)

    def setup(spec, host):
        if host not in managed_hosts(spec):
            return None
        config = host_config(spec, host, TODAY, *stand_in_keys(spec))
        light = host_setup(spec, host)
        assert (light.role, light.interface, light.backend) == (config.role, config.interface, config.backend)
        if config.role not in ("hub", "gateway"):
            return None
        return config.role, config.interface, config.backend, config.firewall.backend

    expected = [h for h in plan.affected if setup(old, h) is not None and setup(old, h) == setup(new, h)]
    assert plan.live_first == expected
    assert set(plan.live_first) <= set(plan.to_apply)


@given(network_pairs())
def test_the_plan_and_the_matrix_sharing_their_configs_read_what_each_plans_alone(pair):
    """`wgmesh plan` plans each revision's hosts once (``StandInConfigs``) for both the plan and the
    reachability matrix: the same results as each planning its own, and the shared configs are
    the ones ``host_config`` gives with the stand-in keys, unchanged by either reader."""
    from wgmesh_core.diff import stand_in_configs
    from wgmesh_core.matrix import reach_diff
    old, new = accepted(pair[0]), accepted(pair[1])
    configs = (stand_in_configs(old, TODAY), stand_in_configs(new, TODAY))
    assert plan_change(old, new, TODAY, configs) == plan_change(old, new, TODAY)
    assert reach_diff(old, new, TODAY, configs) == reach_diff(old, new, TODAY)
    for spec, planned in zip((old, new), configs):
        assert set(managed_hosts(spec)) <= set(planned)   # and the other revision's hosts
        for host, config in planned.items():
            assert config == host_config(spec, host, TODAY, *stand_in_keys(spec)), host


@given(st.lists(st.sampled_from(["a\n", "b\n", "ab\n", "\n", "[Peer]\n", "a", "b"]), max_size=30),
       st.lists(st.tuples(st.integers(0, 40), st.sampled_from(["", "a\n", "b", "x\n", "\n", "[Peer]\n"])), max_size=4),
       st.integers(1, 5))
def test_the_common_ends_found_in_the_texts_are_those_of_their_lines(old_parts, edits, chunk):
    """``unified`` finds the texts' common first and last lines in the texts themselves (chunk by
    chunk, any chunk size): the same window as splitting both texts into lines first."""
    from unittest import mock
    from wgmesh_core import diff
    old, new = "".join(old_parts), "".join(edited(old_parts, edits))
    if old != new:
        with mock.patch.object(diff, "_CHUNK", chunk):
            assert diff._window_by_text(old, new) == diff._window_by_lines(old, new)


def test_texts_with_other_line_breaks_are_diffed_by_their_lines():
    """str.splitlines breaks at \\r and the like too: such texts take the line-by-line way."""
    from wgmesh_core.diff import unified
    old, new = "a\rb\nc\n" * 5, "a\rb\nc\n" * 5 + "d\n"
    assert unified("/f", old, new) == "".join(
        difflib.unified_diff(old.splitlines(True)[12:], new.splitlines(True)[12:], "a/f", "b/f")).replace(
        "@@ -1,3 +1,4 @@", "@@ -13,3 +13,4 @@")


@given(network_pairs())
def test_each_file_diff_of_the_plan_is_the_unified_diff_of_the_rendered_files(pair):
    """``host_change`` diffs each file's texts as ``unified`` does (letting go of the texts before
    difflib runs), for every file of either revision."""
    from wgmesh_core.diff import unified
    old, new = accepted(pair[0]), accepted(pair[1])
    for change in plan_change(old, new, TODAY).hosts:
        before, after = desired_state(old, change.host)[0], desired_state(new, change.host)[0]
        expected = {path: unified(path, before.get(path, ""), after.get(path, ""))
                    for path in sorted(set(before) | set(after))}
        assert change.file_diffs == {path: diff for path, diff in expected.items() if diff}
        assert list(change.file_diffs) == sorted(change.file_diffs)    # as the plan prints them


@given(networks())
def test_the_hubs_forwarding_tables_shared_between_sources_are_each_sources_own(data):
    """Reachability's hub allow-lists: sources with the same destinations share one table, which
    holds what a table of that source's own destinations would."""
    from wgmesh_core.reach import _hub_forward, _Prefixes
    spec = accepted(data)
    hub = host_config(spec, spec.hub.minion, TODAY, *stand_in_keys(spec))
    tables = _hub_forward(hub)
    assert set(tables) == {access.source for access in hub.firewall.forward}
    for source, table in tables.items():
        own = _Prefixes((a.destination, True) for a in hub.firewall.forward if a.source == source)
        assert (table._by_length, table._lengths) == (own._by_length, own._lengths), source


def test_every_line_break_of_splitlines_but_newline_takes_the_line_by_line_way():
    """``_other_breaks`` finds each character str.splitlines breaks a line at, other than ``\\n``,
    wherever it is in a text (first, last, among non-ASCII text), and nothing in a text without one."""
    from wgmesh_core.diff import _other_breaks
    breaks = [chr(code) for code in range(0x110000) if len(f"a{chr(code)}b".splitlines()) == 2 and code != 10]
    assert len(breaks) == 9     # \x0b \x0c \r \x1c \x1d \x1e \x85 \u2028 \u2029
    for mark in breaks:
        for text in (f"{mark}a\nb\n", f"a\nb{mark}", f"ä\n{mark}\n€", f"x\n{mark}"):
            assert _other_breaks(text), (mark, text)
    assert not any(_other_breaks(text) for text in ("", "a\nb\n", "ä€\u2027\u202a\n\t", "\x1f\x84\x86"))
