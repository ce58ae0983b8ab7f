"""Unit tests of the Salt adapters (_modules, _states, _runners, _pillar), without root or namespaces.

The adapters are loaded from their files and given their Salt dunders (``__salt__``,
``__opts__``, ``__pillar__``, ...) by pytest-salt-factories' loader mock: a test module defines
the ``configure_loader_modules`` fixture. What cannot run unprivileged is a MOCK, and says so:
``FakeHost`` answers the ``cmd.run_all`` calls (`ip`, `wg`, `wg-quick up`, `iptables -S`) of a host's
WireGuard interface and firewall from a small in-memory model of them (and of a running firewalld's
`firewall-cmd` listings, when a test gives it one).
"""
from __future__ import annotations

import base64
import importlib.util
import shlex
import pytest

from wgmesh_core.firewall import FIREWALLD_LISTINGS
from wgmesh_core.live import LiveInterface, LivePeer

from tests.conftest import REPO
from tests.core.conftest import addconf_applied


def load_adapter(folder: str, name: str):
    """Import ``<folder>/<name>.py`` (e.g. ``_modules``, ``wgmesh``) as a module of its own."""
    spec = importlib.util.spec_from_file_location(f"wgmesh_test_{folder.strip('_')}_{name}", REPO / folder / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def key(n: int) -> str:
    """A well-formed WireGuard key, distinct for each ``n``."""
    return base64.b64encode(bytes([n % 256, n // 256]) + bytes(29) + b"\x01").decode()


def ok(stdout=""):
    return {"retcode": 0, "stdout": stdout, "stderr": "", "pid": 1}


def failed(stderr):
    return {"retcode": 1, "stdout": "", "stderr": stderr, "pid": 1}


class FakeHost:
    """MOCK of a host's `ip`, `wg`, `iptables -S`, `ipset`, `conntrack -L` and `firewall-cmd` for ``cmd.run_all``: one
    WireGuard interface and its firewall chains (no kernel module or namespace is available to a
    unit test). ``firewalld``: None (not running) or the ``FirewalldLive`` its listings print;
    ``firewall-cmd --reload`` makes them ``after_reload`` when that is set. Every command is
    recorded in ``calls``, what it was fed in ``stdin``, and ``fail`` names commands (argv prefixes)
    that exit 1. `wg addconf` and `wg set ... remove` change its peers as wg(8) does, `wg set`'s
    listen-port and private-key its own port and key."""

    def __init__(self, interface="wg0", private_key=None, public_key=None, listen_port=51820,
                 address=None, routes=(), mtu=1280, up=True):
        self.interface, self.exists = interface, private_key is not None
        self.live = LiveInterface(private_key or "", public_key or "", listen_port, {})
        self.address, self.routes, self.mtu, self.up = address, list(routes), mtu, up
        self.iptables = {"filter": "", "nat": ""}       # `iptables -S` per table; no firewalld runs
        self.firewalld = self.after_reload = None
        self.conntrack = ""         # what `conntrack -L` prints
        self.ipsets = ""            # what `ipset save` prints; `ipset destroy` takes a set out of it
        self.sets_in_use: set[str] = set()    # sets a rule still matches: the kernel refuses to destroy them
        self.fail: list[list[str]] = []
        self.calls: list[list[str]] = []
        self.stdin: dict[int, str] = {}     # index in calls -> input
        self.read: dict[int, str] = {}      # index in calls -> the file `wg-quick up` or `wg syncconf` read

    def add_peer(self, public_key, allowed_ips, preshared_key=None, endpoint=None, keepalive=0):
        self.live.peers[public_key] = LivePeer(public_key, preshared_key, endpoint, frozenset(allowed_ips),
                                               0, 0, 0, keepalive)

    def ran(self, *prefix) -> list:
        return [call for call in self.calls if call[:len(prefix)] == list(prefix)]

    def __call__(self, cmd, python_shell=False, stdin=None, **_):
        assert python_shell is False, "adapters never run a shell"
        cmd = shlex.split(cmd) if isinstance(cmd, str) else list(cmd)
        self.calls.append(cmd)
        if stdin is not None:
            self.stdin[len(self.calls) - 1] = stdin
        if any(cmd[:len(prefix)] == list(prefix) for prefix in self.fail):
            return failed(f"{cmd[0]}: failed")
        if self.firewalld is not None:
            for name, argv in FIREWALLD_LISTINGS.items():
                if cmd == list(argv):
                    text = getattr(self.firewalld, name)
                    return failed("INVALID_ZONE") if text is None else ok(text)
            if cmd == ["firewall-cmd", "--reload"] and self.after_reload is not None:
                self.firewalld = self.after_reload
        if cmd[:3] == ["ip", "link", "show"] or cmd[:4] == ["ip", "-o", "link", "show"]:
            if not self.exists:
                return failed(f'Device "{self.interface}" does not exist.')
            flags = "POINTOPOINT,NOARP" + (",UP,LOWER_UP" if self.up else "")
            return ok(f"5: {self.interface}: <{flags}> mtu {self.mtu} qdisc noqueue state UNKNOWN\n")
        if cmd[:4] == ["ip", "-o", "-4", "addr"]:
            line = f"5: {self.interface}    inet {self.address} scope global {self.interface}\n"
            return ok(line if self.address else "")
        if cmd[:4] == ["ip", "-4", "route", "show"]:
            return ok("".join(f"{route} scope link\n" for route in self.routes))
        if cmd[:3] == ["wg", "show", self.interface] and cmd[3:] == ["dump"]:
            return ok(self.dump())
        if cmd == ["wg", "show", self.interface, "private-key"]:
            return ok(self.live.private_key + "\n") if self.exists else failed("No such device")
        if cmd == ["firewall-cmd", "--state"]:
            return ok("running") if self.firewalld is not None else failed("not running")
        if cmd == ["conntrack", "-L"]:
            return ok(self.conntrack)
        if cmd == ["ipset", "save"]:
            return ok(self.ipsets)
        if cmd[:2] == ["ipset", "destroy"] and len(cmd) == 3:
            if cmd[2] in self.sets_in_use:
                return failed("ipset v7.17: Set cannot be destroyed: it is in use by a kernel component")
            self.ipsets = "".join(line for line in self.ipsets.splitlines(True) if line.split()[1:2] != [cmd[2]])
            return ok()
        if cmd[0] == "iptables" and cmd[-1] == "-S":
            return ok(self.iptables["nat" if "nat" in cmd else "filter"])
        if cmd[:2] == ["wg", "addconf"]:
            assert cmd[2:] == [self.interface, "/dev/stdin"], cmd
            self.live.peers = addconf_applied(self.live.peers, stdin)
            return ok()
        if cmd[:2] == ["wg", "set"] and cmd[3::3] == ["peer"] * len(cmd[3::3]) and set(cmd[5::3]) == {"remove"}:
            for key in cmd[4::3]:
                self.live.peers.pop(key, None)
            return ok()
        if cmd[:3] == ["wg", "set", self.interface] and cmd[3] in ("listen-port", "private-key"):
            self._set_interface(dict(zip(cmd[3::2], cmd[4::2])), stdin)
            return ok()
        if cmd[:2] == ["wg-quick", "up"] or cmd[:2] == ["wg", "syncconf"]:
            if cmd[-1] == "/dev/stdin":
                self.read[len(self.calls) - 1] = stdin
            else:
                with open(cmd[-1]) as handle:
                    self.read[len(self.calls) - 1] = handle.read()
            self._configure(self.read[len(self.calls) - 1], created=cmd[0] == "wg-quick")
        return ok()

    def _set_interface(self, options: dict, stdin):
        """`wg set IF [listen-port N] [private-key /dev/stdin]`: the port and key, the peers untouched."""
        from wgmesh_core.keys import public_key
        assert set(options) <= {"listen-port", "private-key"}, options
        if "listen-port" in options:
            self.live.listen_port = int(options["listen-port"])
        if "private-key" in options:
            assert options["private-key"] == "/dev/stdin", "a private key is read from a pipe, never a file"
            private = stdin.strip()
            self.live.private_key, self.live.public_key = private, public_key(private)

    def _configure(self, text: str, created: bool):
        """What `wg-quick up FILE` (a new interface: its PostUp sets the key file's key) or
        `wg syncconf IF FILE` (the key, port and exactly the file's peers) make of a file."""
        from wgmesh_core.keys import public_key
        from tests.core.conftest import parse_ini
        sections: list[dict] = []
        for index, section, name, value in parse_ini(text):
            if index == len(sections):
                sections.append({"section": section})
            sections[index].setdefault(name, []).append(value)
        interface, peers = sections[0], sections[1:]
        if created:     # wg-quick: the address, MTU and its PostUp lines' key and routes
            self.exists, self.up = True, True
            self.address, self.mtu = interface["Address"][0], int(interface["MTU"][0])
            self.routes = [line.split()[3] for line in interface["PostUp"] if line.startswith("ip route replace ")]
            (key_file,) = [line.split()[-1] for line in interface["PostUp"] if "private-key" in line]
            with open(key_file) as handle:
                private = handle.read().strip()
        else:
            (private,) = interface["PrivateKey"]
            self.live.peers.clear()
        self.live.private_key, self.live.public_key = private, public_key(private)
        self.live.listen_port = int(interface["ListenPort"][0])
        for peer in peers:
            self.add_peer(peer["PublicKey"][0], peer["AllowedIPs"][0].split(", "), peer.get("PresharedKey", [None])[0],
                          peer.get("Endpoint", [None])[0], int(peer.get("PersistentKeepalive", [0])[0]))

    def dump(self) -> str:
        live = self.live
        lines = [[live.private_key, live.public_key, str(live.listen_port), "off"]]
        for peer in live.peers.values():
            lines.append([peer.public_key, peer.preshared_key or "(none)", peer.endpoint or "(none)",
                          ",".join(sorted(peer.allowed_ips)) or "(none)", str(peer.latest_handshake),
                          str(peer.rx_bytes), str(peer.tx_bytes), str(peer.keepalive or "off")])
        return "\n".join("\t".join(cols) for cols in lines) + "\n"


@pytest.fixture(autouse=True)
def private_boot_files(tmp_path, monkeypatch):
    """The iptables backend's boot files under tmp_path: a unit test never reads or removes the
    machine's own /etc/wgmesh or /etc/systemd/system."""
    import wgmesh_core.teardown
    monkeypatch.setattr(wgmesh_core.teardown, "IPTABLES_BOOT_FILES",
                        tuple(str(tmp_path / "boot" / path.lstrip("/")) for path in wgmesh_core.teardown.IPTABLES_BOOT_FILES))


@pytest.fixture(autouse=True)
def no_system_bus(monkeypatch, tmp_path):
    """No system bus answers a unit test (firewall-cmd's requests would go to firewalld over it):
    ``FakeHost`` plays firewall-cmd instead, whatever bus the machine itself runs."""
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", f"unix:path={tmp_path / 'no-system-bus'}")


@pytest.fixture
def warm_state(monkeypatch):
    """Nothing kept by ``wgmesh_salt.warm`` before the test, and Python's collector given back
    the objects a ``keep`` froze after it (the rest of the session collects as usual)."""
    import gc
    import wgmesh_salt.warm
    monkeypatch.setattr(wgmesh_salt.warm, "_deployed", None)
    yield
    gc.unfreeze()
