"""This host's WireGuard interface: created the way its backend creates it at boot, and its peers
changed in place. The core (``wgmesh_core.live``, ``wgmesh_core.render``) says what to run; this
runs it through ``Commands`` (Salt's ``cmd.run_all``). The execution module's ``sync`` is its
caller."""
from __future__ import annotations

import os
import tempfile
import time

from salt.exceptions import CommandExecutionError

import wgmesh_core
from wgmesh_core import keys, live, render
from wgmesh_core.plan import HostConfig

from . import rendered
from .commands import Commands

WG_SET_PEERS = 1000   # peers one `wg set` removes: about 80 KB of arguments (the kernel's limit is 2 MB)
NETWORKD_TIMEOUT = 30   # seconds systemd-networkd gets to create and configure the interface
# networkd is done with the link. Not "unmanaged": a link made before networkd has read its
# .network (the lab's stand-in makes it so) is unmanaged until networkd's next reload
NETWORKD_SETTLED = ("configured", "failed")


class Tunnel:
    def __init__(self, commands: Commands):
        self.commands = commands

    def exists(self, interface: str) -> bool:
        return self.commands.run(["ip", "link", "show", "dev", interface], check=False)["retcode"] == 0

    def live(self, interface: str) -> live.LiveInterface:
        try:
            return live.parse_wg_dump(self.commands.run(["wg", "show", interface, "dump"])["stdout"])
        except ValueError as error:     # a state's failure with its reason, not a traceback
            raise CommandExecutionError(f"wgmesh: cannot read `wg show {interface} dump`: {error}") from None

    def bring_up(self, cfg: HostConfig, private_key: str | None) -> None:
        """Create the interface the way its backend does at boot. wg-quick brings it up from its
        file without the peers (a temporary copy; wg-quick names the interface after the file),
        which go in with one `wg syncconf`: at 10,000 peers wg-quick's own parse of the file
        takes about 10 s."""
        if cfg.backend != "networkd":
            with tempfile.TemporaryDirectory(prefix="wgmesh-") as folder:
                path = os.path.join(folder, f"{cfg.interface}.conf")
                keys.write_secret_file(path, rendered(render.wg_quick_without_peers, cfg))
                self.commands.run(["wg-quick", "up", path])
            if private_key and cfg.peers:
                self.syncconf(cfg, private_key)
            return
        self.commands.run(["networkctl", "reload"])
        # networkd creates the netdev, then applies the .network, after the reload has returned
        deadline = time.monotonic() + NETWORKD_TIMEOUT
        while not self.exists(cfg.interface):
            if time.monotonic() > deadline:
                raise CommandExecutionError(
                    f"wgmesh: systemd-networkd did not create {cfg.interface} within {NETWORKD_TIMEOUT} s of "
                    "`networkctl reload` (is the wireguard kernel module available? see `journalctl -u "
                    "systemd-networkd`)")
            time.sleep(0.2)
        # then its .network: the address and routes (proto static) are networkd's to set; the live
        # sync adding them meanwhile raced it. What networkd has not set by the deadline, the sync does.
        while time.monotonic() < deadline and self.networkd_setup_state(cfg.interface) not in NETWORKD_SETTLED:
            time.sleep(0.2)

    def networkd_setup_state(self, interface: str) -> str | None:
        """networkd's SETUP column for ``interface`` (`networkctl list`): configuring, configured..."""
        listing = self.commands.run(["networkctl", "list", "--no-pager", "--no-legend", interface], check=False)
        columns = listing["stdout"].split()
        return columns[4] if len(columns) >= 5 and columns[1] == interface else None

    def set_peers(self, cfg: HostConfig, diff: live.PeerDiff) -> None:
        """Apply only the changed peers: the removed ones with `wg set`, a thousand a command; the
        added and updated ones with one `wg addconf` through a pipe, so that their preshared keys
        are never written to a file (a temporary file would outlive a job killed meanwhile)."""
        for start in range(0, len(diff.removed), WG_SET_PEERS):
            self.commands.run(["wg", *live.wg_remove_args(cfg, diff.removed[start:start + WG_SET_PEERS])])
        peers = live.changed_peers(cfg, diff)
        if peers:
            self.commands.run(["wg", "addconf", cfg.interface, "/dev/stdin"], stdin=rendered(render.wg_addconf, peers))

    def set_interface(self, cfg: HostConfig, private_key: str, diff: live.PeerDiff) -> None:
        """Give the interface its planned port and key, whichever differ; its peers stay as they are."""
        args = live.wg_interface_args(cfg, diff)
        stdin = private_key + "\n" if "private_key" in diff.interface else None
        self.commands.run(["wg", *args], stdin=stdin)

    def syncconf(self, cfg: HostConfig, private_key: str) -> None:
        """The whole configuration at once, for an interface just brought up without its peers."""
        text = rendered(wgmesh_core.wg_setconf, cfg, private_key)
        # The known trap: an input without PrivateKey/ListenPort zeroes them, and one with
        # fewer peers than planned would drop peers. Check before handing it to wg.
        if f"PrivateKey = {private_key}" not in text or f"ListenPort = {cfg.listen_port}" not in text \
                or text.count("[Peer]") != len(cfg.peers):
            raise CommandExecutionError("wgmesh: refusing an incomplete wg configuration")
        # through a pipe: the private key is never written to a file (a temporary file would
        # outlive a job killed meanwhile)
        self.commands.run(["wg", "syncconf", cfg.interface, "/dev/stdin"], stdin=text)
