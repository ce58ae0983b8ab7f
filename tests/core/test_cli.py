"""The `wgmesh` command: exit codes, one stderr line per problem, nothing written for a bad network."""
from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from wgmesh_core.cli import main
from wgmesh_core.source import dump_sls

from tests.conftest import assert_clean_failure, example_network_data, run_wgmesh

from .conftest import PILLAR


def write_pillar(root, data):
    """A pillar directory holding ``data`` as the wgmesh value, given to every minion by top.sls."""
    (root / "wgmesh").mkdir(parents=True)
    (root / "top.sls").write_text(dump_sls({"base": {"*": ["wgmesh.network"]}}))
    (root / "wgmesh" / "network.sls").write_text(dump_sls({"wgmesh": data}))
    return root


@pytest.fixture
def bad_pillar(tmp_path, data):
    data["developers"]["e"]["address"] = "10.71.0.4"      # outside the VPN
    data["developers"]["f"]["public_key"] = "short"       # malformed key
    return write_pillar(tmp_path / "bad", data)


def test_validate_example_exits_0(capsys):
    assert main(["validate", str(PILLAR)]) == 0
    out, err = capsys.readouterr()
    assert "valid (2 gateways, 2 developers, 24 intent tests pass)" in out
    assert err == ""


def test_a_command_runs_without_the_cycle_collector_and_gives_it_back(monkeypatch, capsys):
    """The pillar's millions of acyclic objects are not walked again and again by gc (a speed-up);
    the collector is on again afterwards, also when the command fails."""
    import gc
    import wgmesh_core.cli as cli
    seen = []

    def validate(args):
        seen.append(gc.isenabled())
        raise ValueError("stop")
    monkeypatch.setattr(cli, "cmd_validate", validate)
    assert gc.isenabled()
    assert main(["validate", str(PILLAR)]) == 2
    assert seen == [False] and gc.isenabled()


def test_validate_copy_of_example_exits_0(tmp_path, data, capsys):
    path = write_pillar(tmp_path / "good", data)
    assert main(["validate", str(path)]) == 0


def test_validate_bad_exits_1_one_line_per_problem(bad_pillar, capsys):
    assert main(["validate", str(bad_pillar)]) == 1
    out, err = capsys.readouterr()
    lines = err.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("developers.e.address: ") and "outside the VPN" in lines[0]
    assert lines[1].startswith("developers.f.public_key: ") and "characters long" in lines[1]
    assert "valid" not in out


def test_validate_known_minions(capsys):
    assert main(["validate", str(PILLAR), "--known-minions", "z,a,c"]) == 1
    err = capsys.readouterr().err
    assert err.splitlines() == [line for line in err.splitlines() if line.startswith("gateways.a.lan_router: ")]
    assert "'r1'" in err


def test_validate_unparseable_sls(tmp_path, capsys):
    path = tmp_path / "broken"
    path.mkdir()
    (path / "network.sls").write_text("#!yaml\nwgmesh:\n  network: [unclosed\n")
    assert main(["validate", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("network.sls:") and "not valid YAML" in err


def test_a_refusal_naming_a_hostile_file_name_or_key_is_one_printable_line_each(tmp_path, capsys):
    """A pull request names its files and keys: a line break would write a line of its own into
    the refusal, a terminal escape (here: clear the screen) would act on the reviewer's terminal."""
    path = tmp_path / "hostile"
    path.mkdir()
    (path / "network.sls\n\x1b[2Jall good.sls").write_text("#!yaml\nwgmesh:\n  network: [unclosed\n")
    assert main(["validate", str(path)]) == 1
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("network.sls\\n\\x1b[2Jall good.sls:") and "not valid YAML" in line
    assert line.isprintable()
    developers = {"e\x1b]0;title\x07": {"address": "10.70.0.9", "public_key": "x"}}
    write_pillar(tmp_path / "keyed", dict(example_network_data(), developers=developers))
    assert main(["validate", str(tmp_path / "keyed")]) == 1
    lines = capsys.readouterr().err.splitlines()
    assert lines and all(line.isprintable() for line in lines) and "\\x1b]0;title\\x07" in lines[0]


def test_validate_missing_dir_is_usage_error(tmp_path, capsys):
    assert main(["validate", str(tmp_path / "nowhere")]) == 2
    assert capsys.readouterr().err == f"wgmesh: {tmp_path / 'nowhere'}: no such file or directory\n"


def test_console_script_exit_status(bad_pillar):
    # The real process exit status, as a CI pipeline sees it.
    cmd = [sys.executable, "-m", "wgmesh_core.cli", "validate"]
    good = subprocess.run(cmd + [str(PILLAR)], capture_output=True, text=True, timeout=30)
    assert good.returncode == 0, good.stderr
    bad = subprocess.run(cmd + [str(bad_pillar)], capture_output=True, text=True, timeout=30)
    assert_clean_failure(bad, 1, "developers.e.address: 10.71.0.4 is outside the VPN network")
    assert len(bad.stderr.splitlines()) == 2


# An exit hook that says whether the interpreter's teardown ran, then the command as a program.
TEARDOWN_PROBE = ("import atexit, sys; atexit.register(lambda: print('teardown ran', file=sys.stderr)); "
                  "from wgmesh_core.cli import main; sys.exit(main())")


def test_reading_commands_end_without_teardown_their_output_written(tmp_path, bad_pillar):
    # validate, render, plan: the process ends once the output is flushed (os._exit), through a pipe too
    out = tmp_path / "out"
    render = subprocess.run([sys.executable, "-c", TEARDOWN_PROBE, "render", str(PILLAR), "--host", "z"],
                            capture_output=True, text=True, timeout=60)
    assert render.returncode == 0, render.stderr
    assert "teardown ran" not in render.stderr
    assert render.stdout.count("### /etc/") >= 5 and "# static routes the LAN routers need:" in render.stdout
    good = subprocess.run([sys.executable, "-c", TEARDOWN_PROBE, "validate", str(PILLAR)],
                          capture_output=True, text=True, timeout=60)
    assert (good.returncode, good.stderr) == (0, "")
    assert good.stdout.startswith(f"{PILLAR}: valid (")
    bad = subprocess.run([sys.executable, "-c", TEARDOWN_PROBE, "validate", str(bad_pillar)],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1 and "teardown ran" not in bad.stderr
    assert "developers.e.address: 10.71.0.4 is outside the VPN network" in bad.stderr
    assert not out.exists()


def test_other_commands_and_in_process_calls_keep_the_teardown(tmp_path, capsys):
    # a command that is not only reading (join writes a key file) exits the usual way
    key_file = tmp_path / "k.key"
    join = subprocess.run([sys.executable, "-c", TEARDOWN_PROBE, "join", str(PILLAR), "newdev", "--key-file",
                           str(key_file)], capture_output=True, text=True, timeout=60)
    assert join.returncode == 0, join.stderr
    assert join.stderr.rstrip().endswith("teardown ran") and key_file.exists()
    # main(argv) returns: the caller's process goes on
    assert main(["validate", str(PILLAR)]) == 0
    assert "valid" in capsys.readouterr().out


def test_render_bad_writes_nothing(bad_pillar, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    assert main(["render", str(bad_pillar), "--host", "z", "--out", str(out)]) == 1
    assert list(out.rglob("*")) == []
    assert len(capsys.readouterr().err.splitlines()) == 2


def test_render_good_writes_files_with_modes(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["render", str(PILLAR), "--host", "z", "--out", str(out)]) == 0
    written = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert written == ["etc/firewalld/direct.xml", "etc/firewalld/policies/wgmesh-wireguard.xml",
                       "etc/firewalld/zones/wgmesh.xml", "etc/sysctl.d/10-ip-forward.conf",
                       "etc/sysctl.d/10-wgmesh-rp-filter.conf", "etc/systemd/network/wg0.netdev",
                       "etc/systemd/network/wg0.network"]
    assert oct(os.stat(out / "etc/systemd/network/wg0.netdev").st_mode & 0o777) == "0o640"
    stdout = capsys.readouterr().out
    assert "ip route add 10.70.0.0/16 via 192.168.201.247" in stdout


def test_render_unknown_host_is_usage_error(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["render", str(PILLAR), "--host", "nobody", "--out", str(out)]) == 2
    assert not out.exists()
    assert capsys.readouterr().err == "wgmesh: 'nobody' is not a host of this network (hosts: z, a, c, r1)\n"


def test_client_config_command(capsys):
    assert main(["client-config", str(PILLAR), "e", "--hub-public-key",
                 "CmmeC0yqofMMZhEGHuK5dd2Mxyxe7tA8wSniDWiI5V0=", "--psk", "yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk="]) == 0
    out = capsys.readouterr().out
    assert "AllowedIPs = 192.168.0.0/16" in out
    assert "PublicKey = CmmeC0yqofMMZhEGHuK5dd2Mxyxe7tA8wSniDWiI5V0=\n" in out
    assert "PresharedKey = yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=\n" in out
    assert main(["client-config", str(PILLAR), "nobody"]) == 2
    assert capsys.readouterr().err == f"wgmesh: no developer 'nobody' in {PILLAR}\n"


@pytest.mark.parametrize("change, why", [
    ({"revoked": True}, "is revoked"),
    ({"expires": "2025-06-14"}, "expired on 2025-06-14"),
])
def test_client_config_refuses_a_revoked_or_expired_developer(tmp_path, capsys, change, why):
    """Like `salt-run wgmesh.client_config`: no config for someone who lost access."""
    data = example_network_data()
    data["developers"]["e"].update(change)
    pillar = tmp_path / "pillar"
    write_pillar(pillar, data)
    assert main(["client-config", str(pillar), "e", "--today", "2025-06-15"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and f"developer 'e' {why}" in captured.err
    assert main(["client-config", str(pillar), "f", "--today", "2025-06-15"]) == 0


@pytest.mark.parametrize("option", ["--hub-public-key", "--psk"])
def test_client_config_refuses_a_key_option_that_is_not_a_key(capsys, option):
    assert main(["client-config", str(PILLAR), "e", option, "A" * 43 + "=\nPostUp = id"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (f"wgmesh: {option}: 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\\nPostUp = id' is 56 "
                            "characters long, a WireGuard key has 44\n")


def stand_in_salt_run(tmp_path, rows, returncode=0, stderr=""):
    """A `salt-run` for `wgmesh status --salt-run` that records its arguments and answers as
    `salt-run --out=json wgmesh.status` does. A stand-in: the master's runner needs the root-only
    lab, where tests/lab/test_gitops.py runs `wgmesh status` against the real one."""
    import json
    script, answer = tmp_path / "salt-run", tmp_path / "answer.json"
    answer.write_text(json.dumps(rows))
    script.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {tmp_path}/argv\ncat {answer}\n'
                      f'printf "{stderr}" >&2\nexit {returncode}\n')
    script.chmod(0o755)
    return script


STATUS_ROWS = [{"name": "a", "kind": "gateway", "handshake_age": 30, "flags": []},
               {"name": "e", "kind": "developer", "handshake_age": 601, "flags": ["silent for 601 s"]},
               {"name": "developer-with-a-long-name", "kind": "developer", "handshake_age": None,
                "flags": ["expires 2025-06-20 (5 day(s))", "no handshake yet"]}]


def test_status_lists_each_peer_and_exits_1_when_one_is_flagged(tmp_path):
    salt_run = stand_in_salt_run(tmp_path, STATUS_ROWS)
    done = run_wgmesh("status", "--salt-run", salt_run)
    assert (done.returncode, done.stderr) == (1, "")
    assert done.stdout.splitlines() == [
        "peer             kind        handshake  flags",
        "a                gateway          30 s  ",
        "e                developer       601 s  silent for 601 s",
        "developer-with-a-long-name developer       never  expires 2025-06-20 (5 day(s)), no handshake yet"]
    assert (tmp_path / "argv").read_text().split() == ["--out=json", "wgmesh.status", "stale_after=600",
                                                       "soon_days=14"]
    run_wgmesh("status", "--salt-run", salt_run, "--stale-after", "60", "--soon-days", "3")
    assert (tmp_path / "argv").read_text().split()[2:] == ["stale_after=60", "soon_days=3"]


def test_status_exits_0_when_no_peer_is_flagged(tmp_path):
    done = run_wgmesh("status", "--salt-run", stand_in_salt_run(tmp_path, STATUS_ROWS[:1]))
    assert done.returncode == 0 and len(done.stdout.splitlines()) == 2


@pytest.mark.parametrize("stderr, said", [("master not running\\n", "master not running"),
                                          ("", "[]")])   # nothing on stderr: what it printed
def test_status_when_salt_run_fails_names_the_command_and_its_message(tmp_path, stderr, said):
    salt_run = stand_in_salt_run(tmp_path, [], returncode=1, stderr=stderr)
    done = run_wgmesh("status", "--salt-run", salt_run)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == (f"wgmesh status: {salt_run} --out=json wgmesh.status stale_after=600 soon_days=14 "
                           f"failed: {said}\n")


def printed_files(stdout):
    """The files `wgmesh render` prints: path -> (mode, group, content)."""
    sections = re.split(r"^### (\S+) \(mode (\d{4}), group (\S+)\)\n", stdout, flags=re.M)
    assert sections[0] == ""
    return {path: (mode, group, content) for path, mode, group, content in zip(*[iter(sections[1:])] * 4)}


@pytest.mark.parametrize("host", ["z", "a", "r1"])
def test_render_prints_what_it_would_write(tmp_path, host):
    out = tmp_path / "out"
    written = run_wgmesh("render", PILLAR, "--host", host, "--out", out, "--today", "2025-06-15")
    printed = run_wgmesh("render", PILLAR, "--host", host, "--today", "2025-06-15")
    assert written.returncode == printed.returncode == 0
    files = {"/" + str(p.relative_to(out)): p for p in out.rglob("*") if p.is_file()}
    body = printed.stdout
    tail = {"z": "# static routes the LAN routers need:\n"
                 "# a: ip route add 10.70.0.0/16 via 192.168.201.247   # on r1 (managed by wgmesh)\n",
            "a": "", "r1": "static route on r1: ip route replace 10.70.0.0/16 via 192.168.201.247\n"}[host]
    assert body.endswith(tail) and written.stdout.endswith(tail)
    sections = printed_files(body[:len(body) - len(tail)])
    assert sorted(sections) == sorted(files)
    assert written.stdout == "".join(f"wrote {out}{path} (mode {mode})\n" for path, (mode, _, _) in sections.items()) + tail
    for path, (mode, group, content) in sections.items():
        assert int(mode, 8) == files[path].stat().st_mode & 0o777
        assert content == files[path].read_text() + "\n"
        assert group in ("root", "systemd-network")


def test_render_without_keys_says_where_each_key_comes_from():
    done = run_wgmesh("render", PILLAR, "--host", "z")
    assert "PublicKey=<public key of a: Salt mine>\nPresharedKey=<preshared key of hub-a: master>\n" in done.stdout
    assert "# developer e\n[WireGuardPeer]\nPublicKey=" in done.stdout
    assert "PresharedKey=<preshared key of hub-e: master>\n" in done.stdout
    gateway = run_wgmesh("render", PILLAR, "--host", "a").stdout
    assert "PublicKey=<public key of z: Salt mine>\n" in gateway


def test_render_takes_the_hosts_public_keys_from_a_file(tmp_path):
    keys = tmp_path / "keys.yaml"
    keys.write_text("z: CmmeC0yqofMMZhEGHuK5dd2Mxyxe7tA8wSniDWiI5V0=\n")
    done = run_wgmesh("render", PILLAR, "--host", "a", "--keys", keys)
    assert done.returncode == 0 and "PublicKey=CmmeC0yqofMMZhEGHuK5dd2Mxyxe7tA8wSniDWiI5V0=\n" in done.stdout
    assert "Salt mine" not in done.stdout
    assert_clean_failure(run_wgmesh("render", PILLAR, "--host", "a", "--keys", tmp_path), 2,
                         f"wgmesh: [Errno 21] Is a directory: '{tmp_path}'")


def test_validate_one_sls_file_alone(tmp_path):
    path = tmp_path / "network.sls"
    path.write_text(dump_sls({"wgmesh": example_network_data()}))
    done = run_wgmesh("validate", path)
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout == f"{path}: valid (2 gateways, 2 developers, 0 intent tests pass)\n"
    assert_clean_failure(run_wgmesh("validate", path, "--known-minions", " z, a,,c "), 1,
                         "gateways.a.lan_router: unknown minion id 'r1' (not among the master's accepted minions)")
    assert run_wgmesh("validate", path, "--known-minions", " z, a,,c,r1 ").returncode == 0
    refused = run_wgmesh("validate", path, "--max-pillar-bytes", "100")
    assert refused.returncode == 1 and "100" in refused.stderr


def test_the_pillar_options_reach_the_pillar_reading(tmp_path, data):
    pillar = write_pillar(tmp_path / "pillar", data)
    (pillar / "users.sls").write_text(dump_sls({"users": {"alice": {"shell": "/bin/bash"}}}))
    (pillar / "top.sls").write_text(dump_sls({"base": {"*": ["wgmesh.network", "users"]}}))
    refused = run_wgmesh("validate", pillar)
    assert refused.returncode == 1 and "users" in refused.stderr
    assert run_wgmesh("validate", pillar, "--allow-key", "users").returncode == 0
    small = run_wgmesh("validate", pillar, "--allow-key", "users", "--max-pillar-bytes", "200")
    assert small.returncode == 1 and "200" in small.stderr


def test_a_salt_compile_error_is_one_problem_line_per_minion_not_salts_log(tmp_path, caplog):
    """Salt logs a compile error itself (ERROR records of salt.pillar): the command reports it as a
    problem line per minion instead, and Salt's own log stays quiet."""
    import shutil
    pillar = tmp_path / "pillar"
    shutil.copytree(PILLAR, pillar)
    top = pillar / "top.sls"
    top.write_text(top.read_text().replace("- wgmesh.developers", "- wgmesh.missing"))
    done = run_wgmesh("validate", pillar)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.splitlines() == [f"minion {m}: Salt's pillar compile failed: Specified SLS 'wgmesh.missing' "
                                        "in environment 'base' is not available on the salt master"
                                        for m in ("a", "c", "r1", "z")]
    assert [record for record in caplog.records if record.name.startswith("salt")] == []


def test_render_leaves_out_developers_expired_on_the_day_given(tmp_path):
    data = example_network_data()
    data["developers"]["e"]["expires"] = "2025-06-14"
    pillar = write_pillar(tmp_path / "pillar", data)
    before = run_wgmesh("render", pillar, "--host", "z", "--today", "2025-06-14")
    after = run_wgmesh("render", pillar, "--host", "z", "--today", "2025-06-15")
    assert before.returncode == after.returncode == 0
    assert "# developer e\n" in before.stdout and "# developer e\n" not in after.stdout
    assert "# developer f\n" in after.stdout


def test_render_of_the_hub_lists_every_static_route_the_lan_routers_need(tmp_path):
    data = example_network_data()
    data["gateways"]["c"]["lan_mode"] = "route"           # no lan_router: its LAN's own router
    done = run_wgmesh("render", write_pillar(tmp_path / "pillar", data), "--host", "z")
    assert done.returncode == 0 and done.stdout.endswith(
        "# static routes the LAN routers need:\n"
        "# a: ip route add 10.70.0.0/16 via 192.168.201.247   # on r1 (managed by wgmesh)\n"
        "# c: ip route add 10.70.0.0/16 via 192.168.200.248   # on the default router of 192.168.200.0/24\n")


def test_validate_runs_the_intent_tests_as_of_the_day_given(tmp_path):
    """e's access ends on 2025-06-14: the example's intent tests of e's reach pass that day and
    fail the day after."""
    import shutil
    pillar = tmp_path / "pillar"
    shutil.copytree(PILLAR, pillar)
    developers = pillar / "wgmesh" / "developers.sls"
    developers.write_text(developers.read_text().replace("    e:\n", "    e:\n      expires: 2025-06-14\n", 1))
    assert run_wgmesh("validate", pillar, "--today", "2025-06-14").returncode == 0
    after = run_wgmesh("validate", pillar, "--today", "2025-06-15")
    assert after.returncode == 1 and after.stdout == ""
    assert after.stderr.startswith("tests[0] (the article's test: ping 192.168.200.244): e -> d expected reach via "
                                   "tunnel: developer e expired on 2025-06-14 (as of 2025-06-15): the hub has no peer for it\n")


@pytest.mark.parametrize("last", ["+  - usersX", "+  - users  \t"])
def test_a_diff_is_printed_indented_line_for_line_to_its_last_character(capsys, last):
    """However a diff's last line ends (an SLS or interface name ending in X, trailing blanks a
    contributor left in top.sls), it is printed as it is, after the first lines' indent."""
    import datetime
    from wgmesh_core.cli import _print_plan, _print_top_change
    from wgmesh_core.diff import HostChange, NetworkPlan
    diff = f"--- a/top.sls\n+++ b/top.sls\n@@ -1 +1 @@\n-  - users\n{last}\n"
    indented = "".join(f"    {line}\n" for line in diff.splitlines())
    _print_top_change({"changed": True, "diff": diff, "minions": {}})
    assert capsys.readouterr().out == "\ntop.sls changes (which minion gets which SLS):\n" + indented
    change = HostChange("z", "hub", file_diffs={"/etc/x": diff})
    _print_plan(NetworkPlan([change], [], [], {}), "a" * 40, "b" * 40, datetime.date(2025, 6, 15))
    assert capsys.readouterr().out == (f"wgmesh plan {'a' * 12}..{'b' * 12}: valid; 1 host(s) change\n\n"
                                       f"hub z: files change\n{indented}")


def test_a_minion_that_got_nothing_before_is_shown_so(capsys):
    from wgmesh_core.cli import _print_top_change
    _print_top_change({"changed": True, "diff": "--- a/top.sls\n+++ b/top.sls\n", "minions": {
        "web2": {"base": [], "head": ["base:users"], "gets_network": False},
        "z": {"base": ["base:wgmesh.network"], "head": ["base:wgmesh.network", "base:users"], "gets_network": True}}})
    assert capsys.readouterr().out.splitlines()[-2:] == [
        "  minion web2: nothing -> base:users; no wgmesh pillar",
        "  minion z: base:wgmesh.network -> base:wgmesh.network, base:users; gets the network"]
