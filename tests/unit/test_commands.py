"""wgmesh_salt.commands: the core's commands through Salt's ``cmd.run_all``, one after another,
side by side, or in stages. ``run_all`` here is a recording stand-in (MOCK) for Salt's
``cmd.run_all``: what is tested is how Commands calls it, in which order and concurrency, and what
it makes of the results; the real ``cmd.run_all`` runs these commands in tests/salt and tests/lab."""
from __future__ import annotations

import contextvars
import threading
import time

import pytest
from salt.exceptions import CommandExecutionError

from wgmesh_core.firewall import Command
from wgmesh_salt.commands import CommandFailed, Commands

from .conftest import failed, ok


class RecordingRunAll:
    """Answers every command with ``ok(<argv joined>)`` (or ``failed`` for those in ``fail``) after
    ``pause`` seconds, recording each call's keyword arguments and its start and end."""

    def __init__(self, pause=0.0, fail=()):
        self.pause, self.fail = pause, {tuple(argv) for argv in fail}
        self.calls, self.events, self.lock = [], [], threading.Lock()

    def __call__(self, argv, **kwargs):
        with self.lock:
            self.calls.append((argv, kwargs))
            self.events.append(("start", tuple(argv)))
        time.sleep(self.pause)
        with self.lock:
            self.events.append(("end", tuple(argv)))
        return failed(f"{argv[0]}: refused") if tuple(argv) in self.fail else ok(" ".join(argv))


def test_run_calls_cmd_run_all_without_a_shell_quietly_and_checks_the_exit():
    run_all = RecordingRunAll()
    result = Commands(run_all).run(("wg", "show", "wg0"), stdin="input")
    assert result == ok("wg show wg0")
    assert run_all.calls == [(["wg", "show", "wg0"], {"python_shell": False, "stdin": "input",
                                                       "ignore_retcode": False, "output_loglevel": "quiet"})]
    Commands(run_all).run(["conntrack", "-D"], check=False)
    assert run_all.calls[1] == (["conntrack", "-D"], {"python_shell": False, "stdin": None,
                                                      "ignore_retcode": True, "output_loglevel": "quiet"})


def test_a_failing_checked_command_raises_naming_the_command_and_its_stderr():
    commands = Commands(RecordingRunAll(fail=[["firewall-cmd", "--reload"]]))
    # Salt reports it as any failed execution function: "ERROR: <message>", no traceback
    with pytest.raises(CommandExecutionError) as raised:
        commands.run(["firewall-cmd", "--reload"])
    assert isinstance(raised.value, CommandFailed)
    assert str(raised.value) == "firewall-cmd --reload failed: firewall-cmd: refused"
    assert commands.run(["firewall-cmd", "--reload"], check=False) == failed("firewall-cmd: refused")


def test_a_failure_without_stderr_is_described_by_its_stdout():
    error = CommandFailed.of(["iptables-restore", "-w"], {"retcode": 2, "stdout": "line 3 failed", "stderr": ""})
    assert str(error) == "iptables-restore -w failed: line 3 failed"
    error = CommandFailed.of(("ip", "link"), {"retcode": 1, "stdout": "ignored", "stderr": "no device"})
    assert str(error) == "ip link failed: no device"


def test_each_runs_in_order_with_each_commands_stdin_and_check():
    run_all = RecordingRunAll(fail=[["conntrack", "-D"]])
    results = Commands(run_all).each([Command(("iptables-restore",), stdin="*filter\nCOMMIT\n"),
                                      Command(("conntrack", "-D"), check=False)])
    assert results == [ok("iptables-restore"), failed("conntrack: refused")]
    assert [(argv, kw["stdin"], kw["ignore_retcode"]) for argv, kw in run_all.calls] == [
        (["iptables-restore"], "*filter\nCOMMIT\n", False), (["conntrack", "-D"], None, True)]


def test_at_once_runs_side_by_side_and_returns_the_results_in_order():
    both_running = threading.Barrier(2, timeout=10)    # broken unless two commands run at the same time

    def run_all(argv, **kwargs):
        if argv[0] in ("first", "second"):
            both_running.wait()
        time.sleep(0.05 if argv[0] == "first" else 0)    # the first finishes last
        return ok(argv[0])
    results = Commands(run_all).at_once(Command((name,)) for name in ("first", "second", "third"))
    assert results == [ok("first"), ok("second"), ok("third")]


def test_at_once_feeds_each_command_its_own_stdin_and_check():
    run_all = RecordingRunAll()
    Commands(run_all).at_once([Command(("ipset", "restore"), stdin="create a hash:net\n"),
                               Command(("iptables-restore",), stdin="*filter\nCOMMIT\n", check=False),
                               Command(("conntrack", "-L"))])
    assert sorted((argv, kw["stdin"], kw["ignore_retcode"]) for argv, kw in run_all.calls) == [
        (["conntrack", "-L"], None, False), (["ipset", "restore"], "create a hash:net\n", False),
        (["iptables-restore"], "*filter\nCOMMIT\n", True)]


def test_at_once_raises_the_failure_of_a_checked_command():
    commands = Commands(RecordingRunAll(fail=[["b"]]))
    with pytest.raises(CommandFailed, match="^b failed: b: refused$"):
        commands.at_once([Command(("a",)), Command(("b",)), Command(("c",))])
    assert commands.at_once([Command(("a",)), Command(("b",), check=False)]) == [ok("a"), failed("b: refused")]


def test_at_once_runs_each_command_in_the_callers_context():
    """Salt's loader keeps ``__salt__`` in a context variable: the threads must see the caller's."""
    loader = contextvars.ContextVar("loader")
    loader.set("the caller's")
    seen = []
    Commands(lambda argv, **kwargs: seen.append(loader.get(None)) or ok()).at_once([Command(("a",)), Command(("b",))])
    assert seen == ["the caller's", "the caller's"]


def test_at_once_of_one_or_no_command_runs_it_here():
    run_all = RecordingRunAll()
    assert Commands(run_all).at_once([]) == []
    thread = []
    assert Commands(lambda argv, **kwargs: thread.append(threading.current_thread()) or ok("x")).at_once(
        iter([Command(("a",))])) == [ok("x")]
    assert thread == [threading.main_thread()]


def test_in_stages_a_removal_ends_before_an_addition_starts():
    """firewall-cmd changes of one kind run at once; each kind waits for the one before to end."""
    def direct(action, *rule):
        return Command(("firewall-cmd", "--direct", action, *rule))
    stages = [[direct("--add-chain", "ipv4", "filter", "WGMESH-NEW")],
              [direct("--remove-rule", "ipv4", "filter", "WGMESH-FORWARD", "2", "-s", ip) for ip in ("10.70.0.4/32", "10.70.0.5/32")],
              [direct("--add-rule", "ipv4", "filter", "WGMESH-FORWARD", "2", "-s", ip) for ip in ("10.70.0.6/32", "10.70.0.7/32", "10.70.0.8/32")],
              [direct("--remove-chain", "ipv4", "filter", "WGMESH-OLD")]]
    run_all = RecordingRunAll(pause=0.05)
    additions_together = threading.Barrier(3, timeout=10)   # broken unless the three additions run at once

    def run_all_additions_at_once(argv, **kwargs):
        if argv[2] == "--add-rule":
            additions_together.wait()
        return run_all(argv, **kwargs)
    assert Commands(run_all_additions_at_once).in_stages(command for stage in stages for command in stage) is None
    stage_of = {command.argv: number for number, stage in enumerate(stages) for command in stage}
    order = [(event, stage_of[argv]) for event, argv in run_all.events]
    for number, stage in enumerate(stages):
        ends = max(i for i, (event, s) in enumerate(order) if (event, s) == ("end", number))
        later = [i for i, (event, s) in enumerate(order) if event == "start" and s > number]
        assert all(i > ends for i in later), f"stage {number} still running when a later one started: {order}"
    assert sorted(argv for argv, _ in run_all.calls) == sorted(list(c.argv) for stage in stages for c in stage)


def test_in_stages_stops_at_a_failing_stage():
    removal = Command(("firewall-cmd", "--direct", "--remove-rule", "x"))
    addition = Command(("firewall-cmd", "--direct", "--add-rule", "y"))
    run_all = RecordingRunAll(fail=[list(removal.argv)])
    with pytest.raises(CommandFailed, match="^firewall-cmd --direct --remove-rule x failed: firewall-cmd: refused$"):
        Commands(run_all).in_stages([removal, addition])
    assert [argv for argv, _ in run_all.calls] == [list(removal.argv)]     # nothing more open after a failure
