"""This host's running firewall brought to the plan, or cleared of wgmesh: the core
(``wgmesh_core.firewall``) says what to run from what the host lists; this lists it, runs the
commands through ``Commands`` (Salt's ``cmd.run_all``, or firewalld's D-Bus) and cuts the
connections that removed rules had admitted. The execution module's ``firewall`` and ``absent``
are its callers."""
from __future__ import annotations

from typing import Callable, Optional

from salt.exceptions import CommandExecutionError

from wgmesh_core import addresssets, firewall, teardown

from .commands import CommandFailed, Commands

FIREWALLD_STATE = ("firewall-cmd", "--state")


def _installed(name: str) -> bool:
    import salt.utils.path
    return bool(salt.utils.path.which(name))


class HostFirewall:
    def __init__(self, commands: Commands, read_text: Callable[[str], Optional[str]],
                 remove_files: Callable[[list], None]):
        self.commands = commands
        self.read_text = read_text         # a file's text, None when it cannot be read
        self.remove_files = remove_files   # deletes files wgmesh wrote (disabling a unit among them)

    def apply(self, fw: firewall.Firewall, test: bool, permanent_current: Callable[[], bool]) -> dict:
        """The execution module's ``firewall``: ``permanent_current()`` tells whether firewalld's
        files on disk are already the plan's (then a large change is one reload)."""
        if fw.backend == "firewalld":
            changes = self._firewalld(fw, test, permanent_current)
            leftovers = {"removed_files": self._boot_rules_leftovers(test), "removed_sets": self._set_leftovers(test)}
            return {**changes, **{key: found for key, found in leftovers.items() if found}}
        if self.firewalld_running():
            raise CommandExecutionError(
                "wgmesh: firewall backend is iptables but firewalld is running: its own filtering would "
                "reject what the allow-list admits, and its reloads drop wgmesh's chains. Stop firewalld, or "
                "set firewall: firewalld.")
        try:
            if firewall.address_sets(fw) and not _installed("ipset"):
                raise CommandExecutionError(
                    "wgmesh: this host's allow-lists are ipsets (more than "
                    f"{firewall.GROUP_ABOVE} addresses each) but the ipset command is missing: install ipset "
                    "(state wgmesh installs it with the iptables backend)")
            change = firewall.iptables_change(fw, *self._iptables_listings())
        except ValueError as error:      # an unsafe value, or a set of wgmesh's name made by hand, of another type
            raise CommandExecutionError(str(error)) from None
        if change and not test:
            self.commands.each(change.commands)
            self._cut(change.cuts)
        return {"iptables": change.as_dict()} if change else {}

    def remove(self, removed_files: list, test: bool) -> list:
        """firewalld's wgmesh configuration (a reload once its files are gone), then wgmesh's
        iptables chains and the jumps to them; what was (or would be) removed."""
        removed = []
        if set(teardown.FIREWALLD_FILES) & set(removed_files) and self.firewalld_running():
            removed.append("firewalld: direct rules, zone and policy (reloaded)")
            if not test:
                self.commands.run(["firewall-cmd", "--reload"])
        if _installed("iptables"):
            chains, commands = firewall.removal(*self._iptables_listings())
            removed += chains
            if not test:
                self.commands.each(commands)
        return removed

    def firewalld_running(self) -> bool:
        return _installed("firewall-cmd") and self.commands.run(list(FIREWALLD_STATE), check=False)["retcode"] == 0

    def _cut(self, cuts) -> None:
        """Cut the connections removed rules admitted: the flows are listed once, and only the cuts
        that find one are run (each deletion walks the whole conntrack table)."""
        if not cuts:
            return
        listing = self.commands.run(list(firewall.CONNTRACK_LISTING), check=False)
        self.commands.each(firewall.cut_commands(cuts, listing["stdout"] if listing["retcode"] == 0 else None))

    def _iptables_listings(self) -> list:
        """`iptables -S` of the filter and the nat table and `ipset save` (empty without ipset), as
        the core's firewall functions take them."""
        tables = [self.commands.run(["iptables", "-w", *table, "-S"])["stdout"] for table in ([], ["-t", "nat"])]
        return tables + [self._set_listing()]

    def _set_listing(self) -> str:
        """`ipset save` (empty without ipset)."""
        return self.commands.run(list(addresssets.LISTING))["stdout"] if _installed("ipset") else ""

    def _set_leftovers(self, test: bool) -> list:
        """The iptables backend's ipsets, on a host switched to firewalld: no rule of firewalld's
        matches them. Each is destroyed once no leftover rule uses it (the kernel refuses before:
        it is left to the next run, and not reported as removed); what was (or would be) removed."""
        found, commands = firewall.sets_removal(self._set_listing(), check=False)
        if not found or test:
            return found
        return [name for name, done in zip(found, self.commands.each(commands)) if done["retcode"] == 0]

    def _boot_rules_leftovers(self, test: bool) -> list:
        """The iptables backend's boot files, on a host switched to firewalld: at boot they would put
        wgmesh's chains in front of firewalld's. Removed (and the unit disabled) when wgmesh wrote them."""
        found = [path for path in teardown.IPTABLES_BOOT_FILES
                 if teardown.is_wgmesh_file(path, self.read_text(path) or "")]
        if found and not test:
            self.remove_files(found)
        return found

    def _firewalld_live(self):
        """(whether firewalld runs, what it and the kernel hold, or None when it does not run)."""
        if not _installed("firewall-cmd"):
            return False, None
        names = list(firewall.FIREWALLD_LISTINGS)
        commands = [firewall.Command(FIREWALLD_STATE, check=False)] + [
            firewall.Command(argv, check=False) for argv in firewall.FIREWALLD_LISTINGS.values()]
        state, *results = self.commands.at_once(commands)
        if state["retcode"] != 0:
            return False, None
        for name, result in zip(names, results):
            if result["retcode"] != 0 and name not in ("zone", "policy"):   # those two may not exist yet
                raise CommandFailed.of(firewall.FIREWALLD_LISTINGS[name], result)
        return True, firewall.FirewalldLive(
            **{name: result["stdout"] if result["retcode"] == 0 else None for name, result in zip(names, results)})

    def _firewalld(self, fw, test, permanent_current) -> dict:
        running, live = self._firewalld_live()
        if not running:
            raise CommandExecutionError(
                "wgmesh: firewall backend is firewalld but firewalld is not running: the hardening "
                "would only be a file. Start firewalld, or set firewall: iptables for this host.")
        # a large change goes in as one reload once the state run has written the files (one batch)
        change = firewall.firewalld_change(fw, live, permanent_current=permanent_current)
        if not change or test:
            return {"firewalld": change.as_dict()} if change else {}
        self.commands.in_stages(change.commands)
        if change.reload:
            after = firewall.firewalld_change(fw, self._firewalld_live()[1])
            if after.reload:
                raise CommandExecutionError("wgmesh: firewalld did not load wgmesh's configuration ("
                                            + "; ".join(after.other) + "): see firewalld's log")
            self.commands.in_stages(after.commands)
        self._cut(change.cuts)
        return {"firewalld": change.as_dict()}
