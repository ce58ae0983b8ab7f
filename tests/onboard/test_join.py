"""A developer joins: `wgmesh join` (key pair, next free address, pillar entry), then
`wgmesh client-config` | `wgmesh import-config` (finished .conf, QR codes). The commands run in
process (``run_wgmesh``: mutation testing sees them), the installed one where the umask matters."""
from __future__ import annotations

import shutil
import stat
import subprocess
import textwrap

import pytest
import segno
import yaml

from wgmesh_core.keys import key_problem
from wgmesh_core.source import dump_sls

from tests.conftest import assert_clean_failure, run_wgmesh

from .conftest import PILLAR, WGMESH, new_public_key

PLACEHOLDER = "# PrivateKey = <your private key: it never leaves your machine>"


@pytest.fixture
def pillar(tmp_path):
    target = tmp_path / "pillar"
    shutil.copytree(PILLAR, target)
    return target


def wg_pubkey(private: str) -> str:
    return subprocess.run(["wg", "pubkey"], input=private + "\n", capture_output=True, text=True,
                          check=True).stdout.strip()


def zbar_decode(image) -> str:
    done = subprocess.run(["zbarimg", "-q", "--raw", str(image)], capture_output=True)
    assert done.returncode == 0, done.stderr
    text = done.stdout.decode()
    assert text.endswith("\n")
    return text[:-1]                      # zbarimg adds one newline after the payload


LOWEST_FREE = {f"10.70.0.{n}" for n in range(6, 70)}


def join(pillar, name, key_file, *extra):
    return run_wgmesh("join", pillar, name, "--key-file", key_file, *extra)


def test_join_makes_a_key_and_the_pillar_entry(pillar, tmp_path):
    key_file = tmp_path / "keys" / "g.key"
    done = join(pillar, "g", key_file)
    assert done.returncode == 0, done.stderr
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    private = key_file.read_text().strip()
    assert key_problem(private) is None
    entry = yaml.safe_load(textwrap.dedent(done.stdout))
    assert list(entry) == ["g"]
    # one of the 64 lowest free addresses (10.70.0.1-5 are z, a, c, e, f), chosen by the key
    assert entry["g"]["address"] in LOWEST_FREE
    assert entry["g"]["public_key"] == wg_pubkey(private)
    assert entry["g"]["lan_access"] == "none"
    assert private not in done.stdout and private not in done.stderr
    assert done.stderr.splitlines() == [
        f"# private key kept in {key_file} (mode 0600); it never leaves this machine.",
        "# Add this under `wgmesh: developers:` (pillar/wgmesh/developers.sls) in your pull request, "
        "indented as its entries are:"]


def test_join_keeps_the_key_under_the_home_config_by_default(pillar, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    done = run_wgmesh("join", pillar, "g", "--lan-access", "all")
    key_file = tmp_path / "home" / ".config" / "wgmesh" / "g.key"
    assert done.returncode == 0 and f"# private key kept in {key_file} (mode 0600)" in done.stderr
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    entry = yaml.safe_load(textwrap.dedent(done.stdout))["g"]
    assert entry["public_key"] == wg_pubkey(key_file.read_text().strip()) and entry["lan_access"] == "all"
    assert "platform" not in entry and "expires" not in entry        # linux and no end date: the defaults


def test_join_options_go_into_the_entry(pillar, tmp_path):
    done = join(pillar, "g", tmp_path / "g.key", "--lan-access", "a, c", "--expires", "2025-12-31",
                "--platform", "windows", "--today", "2025-06-01")
    assert done.returncode == 0, done.stderr
    entry = yaml.safe_load(textwrap.dedent(done.stdout))["g"]
    assert entry["lan_access"] == ["a", "c"]
    assert str(entry["expires"]) == "2025-12-31"
    assert entry["platform"] == "windows"


def test_join_into_a_json_developers_file_prints_its_line_which_merges_and_validates(pillar, tmp_path):
    """developers.sls in #!json: the entry is a line of it (jsondata's layout), merged by adding it
    with a comma after the line before."""
    from wgmesh_core.jsondata import dump_json_sls
    from wgmesh_core.source import load_sls, parse_file
    developers = pillar / "wgmesh" / "developers.sls"
    developers.write_text(dump_json_sls(load_sls(developers.read_text(), "d.sls")))
    done = join(pillar, "g", tmp_path / "g.key", "--lan-access", "a", "--expires", "2027-01-31", "--today", "2026-11-28")
    assert done.returncode == 0, done.stderr
    address = done.stdout.split('"address": "')[1].split('"')[0]
    assert done.stdout.startswith(f'      "g": {{"address": "{address}", ') and done.stdout.count("\n") == 1
    assert address in LOWEST_FREE
    assert done.stderr.splitlines()[1] == ('# Add this line under "developers" (pillar/wgmesh/developers.sls, '
                                           "#!json) in your pull request, with a comma at the end of the line before it:")
    closing = "\n    }\n  }\n}\n"
    developers.write_text(developers.read_text().removesuffix(closing) + ",\n" + done.stdout.rstrip("\n") + closing)
    valid = run_wgmesh("validate", pillar, "--today", "2026-11-28")
    assert valid.returncode == 0 and "3 developers" in valid.stdout, valid.stderr
    entry = parse_file(developers.read_text(), "d.sls").root["wgmesh"]["developers"]["g"]
    assert entry == {"address": address, "public_key": wg_pubkey((tmp_path / "g.key").read_text().strip()),
                     "lan_access": ["a"], "expires": "2027-01-31"}


def merge_entry(pillar, entry_text):
    developers = pillar / "wgmesh" / "developers.sls"
    developers.write_text(developers.read_text() + entry_text)


def test_joined_developer_gets_a_working_client_config(pillar, tmp_path):
    key_file = tmp_path / "g.key"
    done = join(pillar, "g", key_file, "--lan-access", "all")
    assert done.returncode == 0, done.stderr
    merge_entry(pillar, done.stdout)
    valid = run_wgmesh("validate", pillar)
    assert valid.returncode == 0, valid.stderr
    assert "3 developers" in valid.stdout

    rendered = run_wgmesh("client-config", pillar, "g", "--hub-public-key", new_public_key(), "--psk", new_public_key())
    assert rendered.returncode == 0, rendered.stderr
    address = yaml.safe_load(textwrap.dedent(done.stdout))["g"]["address"]
    assert f"Address = {address}/16" in rendered.stdout.splitlines()
    assert PLACEHOLDER in rendered.stdout.splitlines()

    out, png = tmp_path / "out" / "g.conf", tmp_path / "out" / "g.png"
    out.parent.mkdir()
    imported = run_wgmesh("import-config", "-", "--key-file", key_file, "--out", out, "--png", png,
                      input=rendered.stdout)
    assert imported.returncode == 0, imported.stderr
    assert imported.stderr == f"wrote {out} (mode 0600) and {png}: import it in the WireGuard app\n"
    assert imported.stdout == ""
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    conf = out.read_text()
    private = key_file.read_text().strip()
    assert f"PrivateKey = {private}" in conf.splitlines()
    # everything but the private key line is the rendered config, line for line
    assert conf.replace(f"PrivateKey = {private}", PLACEHOLDER) == rendered.stdout
    assert zbar_decode(png) == conf
    assert stat.S_IMODE(png.stat().st_mode) == 0o600   # it carries the private key too


def terminal_qr_to_pbm(text: str, scale: int = 4) -> bytes:
    """segno's compact terminal QR (half blocks, light modules drawn) as a PBM image."""
    upper_light = {"█": (1, 1), "▀": (1, 0), "▄": (0, 1), " ": (0, 0)}
    rows = []
    for line in text.splitlines():
        if not line:
            continue
        pairs = [upper_light[ch] for ch in line]
        rows += [[1 - p[0] for p in pairs], [1 - p[1] for p in pairs]]   # PBM: 1 is black (dark)
    width = len(rows[0])
    assert all(len(r) == width for r in rows)
    lines = []
    for row in rows:
        scaled = " ".join(str(bit) for bit in row for _ in range(scale))
        lines += [scaled] * scale
    return f"P1\n{width * scale} {len(rows) * scale}\n".encode() + "\n".join(lines).encode() + b"\n"


def test_import_config_prints_a_terminal_qr_of_the_finished_config(pillar, tmp_path):
    key_file = tmp_path / "g.key"
    merge_entry(pillar, join(pillar, "g", key_file).stdout)
    rendered = run_wgmesh("client-config", pillar, "g", "--hub-public-key", new_public_key(), "--psk", new_public_key()).stdout
    out = tmp_path / "g.conf"
    done = run_wgmesh("import-config", "-", "--key-file", key_file, "--out", out, "--qr", input=rendered)
    assert done.returncode == 0, done.stderr
    assert done.stderr == f"wrote {out} (mode 0600): import it in the WireGuard app\n"
    conf = out.read_text()
    assert "PrivateKey = " + key_file.read_text().strip() in conf
    # the terminal drawing is the QR code of the finished config, and decodes to it
    expected = segno.make(conf, error="l", micro=False)
    assert len([line for line in done.stdout.splitlines() if line]) == (expected.symbol_size()[1] + 1) // 2
    pbm = tmp_path / "terminal.pbm"
    pbm.write_bytes(terminal_qr_to_pbm(done.stdout))
    assert zbar_decode(pbm) == conf


def test_joining_twice_with_the_same_name_fails_clearly(pillar, tmp_path):
    key_file = tmp_path / "g.key"
    first = join(pillar, "g", key_file)
    merge_entry(pillar, first.stdout)
    key = key_file.read_bytes()
    again = join(pillar, "g", key_file)
    assert_clean_failure(again, 2, "developer 'g' already exists in")
    assert again.stdout == ""
    assert key_file.read_bytes() == key                       # the existing key is not replaced


def test_joining_with_the_name_of_an_existing_developer_fails(pillar, tmp_path):
    done = join(pillar, "e", tmp_path / "e.key")
    assert_clean_failure(done, 2, "developer 'e' already exists in")
    assert done.stdout == ""


def test_a_new_address_skips_revoked_entries_and_may_fill_gaps(pillar, tmp_path):
    developers = pillar / "wgmesh" / "developers.sls"
    data = yaml.safe_load(developers.read_text())
    data["wgmesh"]["developers"]["e"]["revoked"] = True       # e keeps 10.70.0.4
    data["wgmesh"]["developers"]["f"]["address"] = "10.70.0.9"  # 10.70.0.5 is free now
    developers.write_text(dump_sls(data))
    done = join(pillar, "g", tmp_path / "g.key")
    assert done.returncode == 0, done.stderr
    taken = {"10.70.0.1", "10.70.0.2", "10.70.0.3", "10.70.0.4", "10.70.0.9"}
    window = [f"10.70.0.{n}" for n in range(5, 71) if f"10.70.0.{n}" not in taken][:64]
    assert window[0] == "10.70.0.5" and yaml.safe_load(textwrap.dedent(done.stdout))["g"]["address"] in window


def test_import_config_refuses_a_config_without_placeholder(tmp_path):
    key_file = tmp_path / "g.key"
    key_file.write_text("yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=\n")
    key_file.chmod(0o600)
    done = run_wgmesh("import-config", "-", "--key-file", key_file, "--out", tmp_path / "g.conf",
                  input="[Interface]\nPrivateKey = x\n")
    assert_clean_failure(done, 2, "no '# PrivateKey = ...' line")
    assert not (tmp_path / "g.conf").exists()


def test_a_refused_join_leaves_no_key_file(pillar, tmp_path):
    key_file = tmp_path / "e.key"
    assert_clean_failure(join(pillar, "e", key_file), 2, "developer 'e' already exists in")
    assert not key_file.exists()


def test_import_config_refuses_a_key_file_that_holds_no_key(pillar, tmp_path):
    key_file = tmp_path / "g.key"
    key_file.write_text("garbage\n")
    key_file.chmod(0o600)
    rendered = run_wgmesh("client-config", pillar, "e").stdout
    done = run_wgmesh("import-config", "-", "--key-file", key_file, "--out", tmp_path / "e.conf", input=rendered)
    assert_clean_failure(done, 2, "the key file does not hold a WireGuard private key: the key is 7 characters long")
    assert "garbage" not in done.stderr
    assert not (tmp_path / "e.conf").exists()


def test_the_qr_png_is_created_0600_and_never_overwritten(pillar, tmp_path):
    """The PNG holds the private key: created 0600 with O_EXCL (even under umask 000); an existing
    file (or a link planted there) is refused, and then nothing is written."""
    import os
    key_file = tmp_path / "g.key"
    merge_entry(pillar, join(pillar, "g", key_file).stdout)
    rendered = run_wgmesh("client-config", pillar, "g", "--hub-public-key", new_public_key(), "--psk", new_public_key()).stdout
    out, png = tmp_path / "g.conf", tmp_path / "g.png"
    loose = subprocess.run(["sh", "-c", 'umask 000; exec "$@"', "sh", str(WGMESH), "import-config", "-",
                            "--key-file", str(key_file), "--out", str(out), "--png", str(png)],
                           input=rendered, capture_output=True, text=True)
    assert loose.returncode == 0, loose.stderr
    assert stat.S_IMODE(png.stat().st_mode) == 0o600 and stat.S_IMODE(out.stat().st_mode) == 0o600
    decoy = tmp_path / "decoy"
    decoy.write_text("someone else's file\n")
    out.unlink()
    png.unlink()
    os.symlink(decoy, png)
    again = run_wgmesh("import-config", "-", "--key-file", key_file, "--out", out, "--png", png, input=rendered)
    assert again.returncode == 2 and f"{png} exists" in again.stderr
    assert decoy.read_text() == "someone else's file\n" and not out.exists()


def test_import_config_reads_the_config_from_a_file_too(pillar, tmp_path):
    key_file = tmp_path / "g.key"
    merge_entry(pillar, join(pillar, "g", key_file).stdout)
    given = tmp_path / "given.conf"
    given.write_text(run_wgmesh("client-config", pillar, "g", "--hub-public-key", new_public_key(), "--psk", new_public_key()).stdout)
    out = tmp_path / "g.conf"
    done = run_wgmesh("import-config", given, "--key-file", key_file, "--out", out)
    assert (done.returncode, done.stdout) == (0, ""), done.stderr
    private = key_file.read_text().strip()
    assert out.read_text() == given.read_text().replace(PLACEHOLDER, f"PrivateKey = {private}")
