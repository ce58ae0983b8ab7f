"""`wgmesh join` and `wgmesh import-config` as a careless or hostile user runs them: an entry the
pull request's pillar would refuse is refused before any key is made, a key file that is not the
user's alone is never taken for theirs, and a refused command leaves nothing behind."""
from __future__ import annotations

import os
import textwrap

import pytest
import yaml

from wgmesh_core.keys import generate_private_key, public_key

from tests.conftest import assert_clean_failure, run_wgmesh

from .test_join import pillar  # noqa: F401 (its fixture: a copy of the example pillar)

TODAY = "2026-11-28"


@pytest.mark.parametrize("name, extra, refusal", [
    ("a", [], "is also the minion gateways.a"),                  # a gateway's minion id
    ("z", [], "is also the minion hub.minion"),                  # the hub
    ("x/y", [], "'x/y' is not a name the pillar takes"),
    (".hidden", [], "'.hidden' is not a name the pillar takes"),
    ("g", ["--lan-access", "nope"], "which is not a gateway"),
    ("g", ["--expires", "2099-01-01"], "max_access_days"),
    ("g", ["--expires", "2026-11-27"], "--expires 2026-11-27 is before today (2026-11-28)"),
])
def test_an_entry_the_pillar_would_refuse_is_refused_and_no_key_is_made(pillar, tmp_path, name, extra, refusal):
    key_file = tmp_path / "keys" / "new.key"
    done = run_wgmesh("join", pillar, name, "--key-file", key_file, "--today", TODAY, *extra)
    assert_clean_failure(done, 2, refusal)
    assert done.stdout == "" and not key_file.exists() and not key_file.parent.exists()


def test_a_name_never_makes_a_key_file_outside_the_wgmesh_folder(pillar, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    assert_clean_failure(run_wgmesh("join", pillar, "../../evil"), 2, "is not a name the pillar takes")
    assert list(tmp_path.rglob("*.key")) == []


@pytest.mark.parametrize("case, refusal", [
    ("world-readable", "has mode 0644: others may have read the private key"),
    ("dangling link", "is a symbolic link"),
    ("someone else's", "belongs to user id 65534, not to you"),
])
def test_a_key_file_that_is_not_the_users_alone_is_refused(pillar, tmp_path, case, refusal):
    key_file = tmp_path / "g.key"
    if case == "dangling link":
        os.symlink(tmp_path / "elsewhere", key_file)
    else:
        key_file.write_text(generate_private_key() + "\n")
        key_file.chmod(0o644 if case == "world-readable" else 0o600)
        if case == "someone else's":
            os.chown(key_file, 65534, 65534)
    done = run_wgmesh("join", pillar, "g", "--key-file", key_file)
    assert_clean_failure(done, 2, refusal)
    assert done.stdout == "" and not (tmp_path / "elsewhere").exists()


def test_a_join_refused_for_a_full_network_makes_no_key(pillar, tmp_path):
    network = pillar / "wgmesh" / "network.sls"
    network.write_text(network.read_text().replace("network: 10.70.0.0/16", "network: 10.70.0.0/29"))
    developers = pillar / "wgmesh" / "developers.sls"
    developers.write_text(developers.read_text() + textwrap.indent(yaml.safe_dump({"h": {
        "address": "10.70.0.6", "public_key": public_key(generate_private_key())}}), "    "))
    assert run_wgmesh("validate", pillar).returncode == 0
    key_file = tmp_path / "g.key"
    assert_clean_failure(run_wgmesh("join", pillar, "g", "--key-file", key_file), 2, "no free address left")
    assert not key_file.exists()


def joined_config(pillar, tmp_path, *psk):
    """g joined, its entry merged, and the config `client-config` renders for it."""
    key_file = tmp_path / "g.key"
    done = run_wgmesh("join", pillar, "g", "--key-file", key_file)
    with open(pillar / "wgmesh" / "developers.sls", "a") as handle:
        handle.write(done.stdout)
    hub = public_key(generate_private_key())
    return key_file, run_wgmesh("client-config", pillar, "g", "--hub-public-key", hub, *psk).stdout


def test_a_config_without_the_preshared_key_the_network_uses_is_never_imported_as_finished(pillar, tmp_path):
    """The example uses preshared keys: without one the config has its placeholder (before, no line
    at all: it looked finished, and the tunnel's handshakes failed), which import-config refuses."""
    key_file, rendered = joined_config(pillar, tmp_path)
    assert "PresharedKey = <preshared key: from the master, salt-run wgmesh.client_config>" in rendered.splitlines()
    out = tmp_path / "g.conf"
    done = run_wgmesh("import-config", "-", "--key-file", key_file, "--out", out, input=rendered)
    assert_clean_failure(done, 2, "PresharedKey:")
    assert not out.exists()


def test_import_config_refuses_an_out_that_is_a_link_cleanly(pillar, tmp_path):
    key_file, rendered = joined_config(pillar, tmp_path, "--psk", public_key(generate_private_key()))
    out = tmp_path / "g.conf"
    os.symlink(tmp_path / "target.conf", out)
    done = run_wgmesh("import-config", "-", "--key-file", key_file, "--out", out, input=rendered)
    assert_clean_failure(done, 2, str(out))
    assert not (tmp_path / "target.conf").exists()


def test_a_failed_import_leaves_no_png_to_refuse_the_next_run(pillar, tmp_path):
    key_file, rendered = joined_config(pillar, tmp_path, "--psk", public_key(generate_private_key()))
    png = tmp_path / "g.png"
    first = run_wgmesh("import-config", "-", "--key-file", key_file, "--out", tmp_path / "no-such-dir" / "g.conf",
                       "--png", png, input=rendered)
    assert_clean_failure(first, 2, "no-such-dir")
    assert not png.exists()
    again = run_wgmesh("import-config", "-", "--key-file", key_file, "--out", tmp_path / "g.conf",
                       "--png", png, input=rendered)
    assert again.returncode == 0 and png.stat().st_size > 0, again.stderr


def test_no_route_of_a_client_holds_the_hubs_own_address(pillar):
    """A hub reached at a private address: the covering prefix (192.168.0.0/16) would route the
    tunnel's own packets into the tunnel. It is narrowed to leave the endpoint out."""
    import ipaddress
    network = pillar / "wgmesh" / "network.sls"
    network.write_text(network.read_text().replace("endpoint: 39.101.166.124:51820", "endpoint: 192.168.50.10:51820"))
    assert run_wgmesh("validate", pillar).returncode == 0
    config = run_wgmesh("client-config", pillar, "e").stdout
    allowed = [line.split("=", 1)[1].strip() for line in config.splitlines() if line.startswith("AllowedIPs")]
    assert not [net for net in allowed if ipaddress.ip_address("192.168.50.10") in ipaddress.ip_network(net)], allowed
    assert {"192.168.200.0/24", "192.168.201.0/24"} <= {str(n) for a in allowed for n in [ipaddress.ip_network(a)]} \
        or all(any(ipaddress.ip_network(lan).subnet_of(ipaddress.ip_network(a)) for a in allowed)
               for lan in ("192.168.200.0/24", "192.168.201.0/24"))


@pytest.mark.parametrize("step", [2, 4])
def test_the_entry_is_indented_as_the_developers_files_entries_are(pillar, tmp_path, step):
    """Pasted at the end of a developers file indented by four spaces, an entry written with the
    example's two was a sibling of `developers` (refused: an unknown key)."""
    developers = pillar / "wgmesh" / "developers.sls"
    data = yaml.safe_load(developers.read_text())
    developers.write_text("#!yaml\n" + yaml.safe_dump(data, indent=step, sort_keys=False))
    done = run_wgmesh("join", pillar, "g", "--key-file", tmp_path / "g.key", "--lan-access", "a,c")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(" " * (2 * step) + "g:\n" + " " * (3 * step) + "address: ")
    developers.write_text(developers.read_text() + done.stdout)      # pasted at the end, as told
    valid = run_wgmesh("validate", pillar)
    assert valid.returncode == 0 and "3 developers" in valid.stdout, valid.stderr
