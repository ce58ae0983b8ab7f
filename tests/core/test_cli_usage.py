"""The `wgmesh` command line itself: each command's options, defaults, types and usage errors,
and the option reference in README.md, which must be what `wgmesh COMMAND --help` prints."""
from __future__ import annotations

import datetime
import re

import pytest

from wgmesh_core import cli

from tests.conftest import REPO, assert_clean_failure, run_wgmesh

HELP_COMMANDS = ["", "validate", "render", "client-config", "join", "import-config", "status", "plan"]


def parse(*argv):
    return cli.build_parser().parse_args(list(argv))


def help_text(command) -> str:
    done = run_wgmesh(*command.split(), "--help")
    assert done.returncode == 0 and done.stderr == ""
    return done.stdout


def readme_help() -> dict:
    """README's option reference: the output of each `$ wgmesh ... --help` line, up to the next one."""
    block = re.search(r"^```text help\n(.*?)^```$", (REPO / "README.md").read_text(), re.S | re.M)
    assert block, "README.md: no ```text help block (the option reference)"
    parts = re.split(r"^\$ wgmesh ?(.*?) ?--help\n", block[1], flags=re.M)
    assert parts[0] == ""
    return {command: text.rstrip("\n") + "\n" for command, text in zip(parts[1::2], parts[2::2])}


def test_the_readme_option_reference_is_what_help_prints(monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")          # argparse wraps to the terminal's width
    documented = readme_help()
    assert list(documented) == HELP_COMMANDS
    printed = {command: help_text(command) for command in HELP_COMMANDS}
    regenerate = "".join(f"$ wgmesh {c + ' ' if c else ''}--help\n{t}\n" for c, t in printed.items())
    assert documented == printed, "README.md's ```text help block is out of date; it should be:\n" + regenerate


def test_every_command_runs_its_own_function():
    assert parse("validate", "p").func is cli.cmd_validate
    assert parse("render", "p", "--host", "z").func is cli.cmd_render
    assert parse("client-config", "p", "e").func is cli.cmd_client_config
    assert parse("join", "p", "g").func is cli.cmd_join
    assert parse("import-config", "c", "--key-file", "k", "--out", "o").func is cli.cmd_import_config
    assert parse("status").func is cli.cmd_status
    assert parse("plan").func is cli.cmd_plan
    assert parse("twin", "up", "pillar").func is cli.cmd_twin


def test_pillar_options_and_their_defaults():
    args = parse("validate", "pillar/")
    assert (args.command, args.path, args.known_minions, args.today, args.allow_key, args.max_pillar_bytes) == (
        "validate", "pillar/", None, None, [], None)
    args = parse("render", "p", "--host", "z", "--known-minions", "z,a", "--today", "2025-06-15",
                 "--allow-key", "users", "--allow-key", "dns", "--max-pillar-bytes", "1000")
    assert (args.host, args.out, args.keys) == ("z", None, None)
    assert (args.known_minions, args.today) == ("z,a", datetime.date(2025, 6, 15))
    assert args.allow_key == ["users", "dns"] and args.max_pillar_bytes == 1000
    args = parse("client-config", "p", "e")
    assert (args.name, args.hub_public_key, args.psk) == ("e", None, None)


def test_join_import_status_and_plan_defaults():
    args = parse("join", "p", "g")
    assert (args.name, args.key_file, args.lan_access, args.expires, args.platform) == ("g", None, "none", None, "linux")
    assert parse("join", "p", "g", "--expires", "2026-01-31").expires == datetime.date(2026, 1, 31)
    args = parse("import-config", "-", "--key-file", "k", "--out", "o")
    assert (args.config, args.key_file, args.out, args.png, args.qr) == ("-", "k", "o", None, False)
    assert parse("import-config", "-", "--key-file", "k", "--out", "o", "--qr").qr is True
    args = parse("status")
    assert (args.stale_after, args.soon_days, args.salt_run) == (600, 14, "salt-run")
    assert parse("status", "--stale-after", "60", "--soon-days", "3").stale_after == 60
    args = parse("plan")
    assert (args.repo, args.head, args.base, args.target, args.subdir, args.format) == (
        ".", "HEAD", None, "main", "", "text")
    assert (args.known_minions, args.today, args.allow_key, args.max_pillar_bytes) == (None, None, [], None)
    args = parse("plan", "repo", "--today", "2025-06-15", "--allow-key", "users", "--max-pillar-bytes", "5")
    assert (args.repo, args.today, args.allow_key, args.max_pillar_bytes) == (
        "repo", datetime.date(2025, 6, 15), ["users"], 5)
    assert parse("twin", "test", "pillar/", "--id", "x").argv == ["test", "pillar/", "--id", "x"]


@pytest.mark.parametrize("argv, message", [
    ([], "the following arguments are required: command"),
    (["render", "p"], "the following arguments are required: --host"),
    (["client-config", "p"], "the following arguments are required: name"),
    (["import-config", "c", "--out", "o"], "the following arguments are required: --key-file"),
    (["import-config", "c", "--key-file", "k"], "the following arguments are required: --out"),
    (["join", "p", "g", "--platform", "bsd"], "argument --platform: invalid choice: 'bsd' (choose from 'linux', 'macos', 'windows', 'ios', 'android')"),
    (["plan", "--format", "html"], "argument --format: invalid choice: 'html' (choose from 'text', 'json', 'markdown')"),
    (["validate", "p", "--today", "15.06.2025"], "argument --today: invalid fromisoformat value: '15.06.2025'"),
    (["plan", "--today", "soon"], "argument --today: invalid fromisoformat value: 'soon'"),
    (["join", "p", "g", "--expires", "never"], "argument --expires: invalid fromisoformat value: 'never'"),
    (["validate", "p", "--max-pillar-bytes", "4M"], "argument --max-pillar-bytes: invalid int value: '4M'"),
    (["status", "--stale-after", "10m"], "argument --stale-after: invalid int value: '10m'"),
    (["status", "--soon-days", "2w"], "argument --soon-days: invalid int value: '2w'"),
])
def test_usage_errors_exit_2_naming_the_argument(argv, message):
    done = run_wgmesh(*argv)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith("usage: wgmesh") and done.stderr.rstrip().endswith(message)


def test_twin_takes_its_own_options_help_included():
    """`wgmesh twin` hands everything after it to the twin (lab/twin.py): its --help is the twin's."""
    done = run_wgmesh("twin", "--help")
    assert done.returncode == 0 and done.stdout.startswith("usage: wgmesh twin [-h] {up,test,down}")
    done = run_wgmesh("twin")
    assert done.returncode == 2 and done.stderr.rstrip().endswith("the following arguments are required: cmd")


def test_twin_outside_a_checkout_says_what_it_needs(monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "lab.twin", None)     # what an installed wgmesh without lab/ finds
    done = run_wgmesh("twin", "up", "pillar/")
    assert_clean_failure(done, 2, "wgmesh twin: runs from a checkout of the wgmesh repository (its lab/ package): ")
    assert done.stdout == ""


def test_twin_imports_the_lab_package_of_the_checkout_it_runs_from(monkeypatch):
    """The twin is lab/twin.py of the checkout wgmesh_core lives in: put first on sys.path, once."""
    import sys
    from pathlib import Path
    checkout = Path(cli.__file__).resolve().parents[2]
    monkeypatch.setattr(sys, "path", [p for p in sys.path if Path(p or ".").resolve() != checkout])
    for name in [m for m in sys.modules if m == "lab" or m.startswith("lab.")]:
        monkeypatch.delitem(sys.modules, name)
    done = run_wgmesh("twin", "--help")
    assert done.returncode == 0 and done.stdout.startswith("usage: wgmesh twin")
    assert sys.path[0] == str(checkout)
    assert Path(sys.modules["lab.twin"].__file__).resolve() == checkout / "lab" / "twin.py"
    assert run_wgmesh("twin", "--help").returncode == 0 and sys.path.count(str(checkout)) == 1
