"""Running the core's commands (``wgmesh_core.firewall.Command``: argv, stdin, whether a
non-zero exit is a failure) through Salt's ``cmd.run_all``: one after another, side by side,
or in stages. No shell is ever involved."""
from __future__ import annotations

import contextvars
from concurrent.futures import ThreadPoolExecutor

from salt.exceptions import CommandExecutionError


class CommandFailed(CommandExecutionError):
    """A checked command exited non-zero: Salt reports it as it reports any CommandExecutionError."""

    @classmethod
    def of(cls, argv, result: dict) -> "CommandFailed":
        return cls(f"{' '.join(argv)} failed: {result['stderr'] or result['stdout']}")


class Commands:
    def __init__(self, run_all, serve=None):
        self.run_all = run_all      # Salt's cmd.run_all
        # argv -> run_all's result without a process, or None (``firewalld_bus.FirewalldBus.serve``)
        self.serve = serve

    def run(self, argv, check=True, stdin=None) -> dict:
        result = self.serve(argv) if self.serve and stdin is None else None
        if result is None:
            result = self.run_all(list(argv), python_shell=False, stdin=stdin, ignore_retcode=not check,
                                  output_loglevel="quiet")
        if check and result["retcode"] != 0:
            raise CommandFailed.of(argv, result)
        return result

    def each(self, commands) -> list[dict]:
        return [self.run(c.argv, c.check, c.stdin) for c in commands]

    def at_once(self, commands) -> list[dict]:
        """Independent commands side by side, their results in order: each process (a firewall-cmd
        when firewalld's D-Bus is not served, about 0.1 s) is waited for by the gate's fast path. Each
        thread runs in a copy of the caller's context (Salt's loader keeps ``__salt__`` there)."""
        commands = list(commands)
        if len(commands) < 2:
            return self.each(commands)
        with ThreadPoolExecutor(max_workers=min(len(commands), 8)) as pool:
            futures = [pool.submit(contextvars.copy_context().run, self.run, c.argv, c.check, c.stdin)
                       for c in commands]
            return [future.result() for future in futures]

    def in_stages(self, commands) -> None:
        """firewall-cmd changes: consecutive commands of one kind (add chains, remove rules, add
        rules, remove chains) at once, the kinds in their order (removals before additions, so
        nothing is more open meanwhile). Rules of one kind do not depend on each other's order:
        firewalld orders direct rules by priority, and within one priority they share a verdict."""
        stage = []
        for command in commands:
            if stage and command.argv[:3] != stage[0].argv[:3]:
                self.at_once(stage)
                stage = []
            stage.append(command)
        self.at_once(stage)
