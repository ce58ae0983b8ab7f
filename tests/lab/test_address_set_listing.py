"""wgmesh's reading of `ipset save` against the real ipset (a network namespace of the test's own,
gone with its holder process): a set of wgmesh's name re-created by hand with counters, timeouts
or comments lists every entry with their values, and an entry flagged `nomatch` excludes its
address. The sets converge in one fix and stay converged; who loses access is cut."""
from __future__ import annotations

import subprocess

import pytest

from wgmesh_core import addresssets
from wgmesh_core.addresssets import AddressSet

SET = "wgmesh-developers"
PLANNED = (AddressSet(SET, ("10.70.0.4", "10.70.0.5")),)


@pytest.fixture
def host():
    """``run(*argv, stdin=None)`` inside a network namespace of its own (ipset's sets are per namespace)."""
    holder = subprocess.Popen(["unshare", "--net", "sleep", "300"])
    try:
        enter = ["nsenter", "-t", str(holder.pid), "-n"]
        for _ in range(100):
            if subprocess.run([*enter, "true"]).returncode == 0 and \
                    subprocess.run([*enter, "readlink", "/proc/self/ns/net"], capture_output=True, text=True).stdout \
                    != subprocess.run(["readlink", "/proc/self/ns/net"], capture_output=True, text=True).stdout:
                break
        else:
            pytest.fail("the namespace's holder did not start")

        def run(*argv, stdin=None):
            return subprocess.run([*enter, *argv], input=stdin, capture_output=True, text=True, check=True).stdout
        yield run
    finally:
        holder.kill()
        holder.wait()


def fix(run):
    """One fix as the firewall state makes it (the sets' part): the change, then applied."""
    change = addresssets.set_change(PLANNED, addresssets.parse_listing(run(*addresssets.LISTING)))
    for stdin in (change.before_rules, change.after_rules):
        if stdin:
            run(*addresssets.RESTORE, stdin=stdin)
    return change


@pytest.mark.parametrize("extension, options", [
    (["counters"], []), (["timeout", "0"], []), (["comment"], ["comment", "a b nomatch"]),
    (["skbinfo"], ["skbmark", "0x1", "skbprio", "1:2", "skbqueue", "3"]),
    (["counters", "comment", "timeout", "0"], ["comment", "by hand", "packets", "5", "bytes", "500"]),
])
def test_a_set_re_created_with_an_extension_is_in_sync_as_it_lists(host, extension, options):
    host("ipset", "create", SET, "hash:net", *addresssets.CREATE_OPTIONS.split(), *extension)
    for member in PLANNED[0].members:
        host("ipset", "add", SET, member, *options)
    assert f"add {SET} 10.70.0.4 " in host(*addresssets.LISTING)      # listed with the extension's values
    change = fix(host)
    assert (change.missing, change.extra, change.before_rules, change.after_rules) == ([], [], None, None)


def test_an_entry_flagged_nomatch_by_hand_is_put_back_plain_in_one_fix(host):
    host("ipset", "create", SET, "hash:net", *addresssets.CREATE_OPTIONS.split())
    host("ipset", "add", SET, "10.70.0.4", "nomatch")
    host("ipset", "add", SET, "10.70.0.5")
    first = fix(host)
    assert first.extra == [f"ipset {SET}: 10.70.0.4 nomatch"] and first.missing == [f"ipset {SET}: 10.70.0.4"]
    assert first.removed == {}          # 10.70.0.4 was not admitted, and is now: nobody to cut
    host("ipset", "test", SET, "10.70.0.4")                  # matches now (exit 0)
    second = fix(host)
    assert (second.missing, second.extra) == ([], [])


def test_a_member_whose_comment_holds_the_word_nomatch_is_cut_when_it_goes(host):
    host("ipset", "create", SET, "hash:net", *addresssets.CREATE_OPTIONS.split(), "comment")
    for member in PLANNED[0].members:
        host("ipset", "add", SET, member)
    host("ipset", "add", SET, "10.70.0.9", "comment", "temporary, nomatch later")
    change = fix(host)
    assert change.extra == [f"ipset {SET}: 10.70.0.9"] and change.removed == {SET: ["10.70.0.9"]}
    assert "10.70.0.9" not in host(*addresssets.LISTING)
