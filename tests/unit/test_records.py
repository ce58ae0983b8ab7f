"""The minion's JSON records (wgmesh_salt.records): the peers wgmesh installed and its footprint
hold public keys and what wgmesh set up: written 0600 in a 0700 folder, in one step, and read
back as {} when missing or not a JSON object (a truncated or hand-edited file)."""
import os
import stat

from wgmesh_salt import records


def test_a_record_is_written_0600_in_a_0700_folder_and_read_back(tmp_path):
    path = tmp_path / "cache" / "wgmesh" / "wg0.peers.json"
    records.write(str(path), {"key": "e"})
    assert records.read(str(path)) == {"key": "e"}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert not os.path.exists(str(path) + ".new")
    records.write(str(path), {"other": "f"})                     # replaced, not merged
    assert records.read(str(path)) == {"other": "f"}


def test_a_missing_broken_or_non_object_record_reads_as_empty(tmp_path):
    path = tmp_path / "footprint.json"
    assert records.read(str(path)) == {}
    for text in ("{\"interface\": \"wg0\"", "[1, 2]", "\"wg0\""):
        path.write_text(text)
        assert records.read(str(path)) == {}


def test_a_record_is_one_line_of_json_its_keys_in_order(tmp_path):
    """Written by the C encoder: a hub's record of 10,000 peers indented took 40 ms of each run."""
    path = tmp_path / "wg0.peers.json"
    records.write(str(path), {"f": {"allowed_ips": ["10.70.0.6/32"]}, "e": {"allowed_ips": []}})
    assert path.read_text() == '{"e": {"allowed_ips": []}, "f": {"allowed_ips": ["10.70.0.6/32"]}}\n'


def test_a_record_equal_to_what_the_caller_read_is_not_written_again(tmp_path):
    """A hub's record of 10,000 peers is the same on most runs: not rewritten then."""
    path = tmp_path / "wg0.peers.json"
    records.write(str(path), {"key": "e"})
    path.write_text('{"key": "e"}')          # what a write would not produce (no newline): untouched
    records.write(str(path), {"key": "e"}, current={"key": "e"})
    assert path.read_text() == '{"key": "e"}'
    records.write(str(path), {"key": "f"}, current={"key": "e"})
    assert records.read(str(path)) == {"key": "f"}
    records.write(str(path), {}, current={"key": "f"})           # emptied: written, not skipped
    assert records.read(str(path)) == {}


def test_a_minions_records_live_in_its_cachedir_and_peer_names_are_text(tmp_path):
    minion = records.Records(str(tmp_path))
    assert minion.footprint_path == str(tmp_path / "wgmesh" / "footprint.json")
    assert minion.peers_path("wg1") == str(tmp_path / "wgmesh" / "wg1.peers.json")
    records.write(minion.peers_path("wg1"), {"K1": "e", "K2": 7, "K3": None, "K4": "f"})
    assert minion.installed_peers("wg1") == {"K1": "e", "K4": "f"}
    assert minion.installed_peers("wg0") == {}
