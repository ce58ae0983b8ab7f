"""The firewall-cmd commands wgmesh runs, served over firewalld's own D-Bus API instead.

Every ``firewall-cmd`` is a Python process of its own (0.1 s on an idle host, 0.3 s on a busy
one), and firewall-cmd itself only forwards the request to firewalld over D-Bus. The core keeps
speaking firewall-cmd (what ``test=True`` shows and what an operator can run by hand); this asks
firewalld the same over the system bus, in the running process, and answers as firewall-cmd
would: its exit status (0 for the errors it reports as warnings, such as ALREADY_ENABLED) and,
for the listings, the lines the core reads. An argv it does not know, a host without jeepney or
without a system bus: ``serve`` returns None and the command runs as a process.
"""
from __future__ import annotations

import os
import shlex
import threading
from typing import Callable, NamedTuple, Optional

try:
    from jeepney import DBusAddress, DBusErrorResponse, new_method_call
    from jeepney.io.blocking import open_dbus_connection
    from jeepney.wrappers import unwrap_msg
except ImportError:     # firewall-cmd runs instead
    open_dbus_connection = None

FIREWALLD = "org.fedoraproject.FirewallD1"
PATH = "/org/fedoraproject/FirewallD1"
ZONE, POLICY, DIRECT = f"{FIREWALLD}.zone", f"{FIREWALLD}.policy", f"{FIREWALLD}.direct"
PROPERTIES = "org.freedesktop.DBus.Properties"
# firewalld errors firewall-cmd prints as a warning and exits 0 on (firewall/command.py)
WARNINGS = ("ALREADY_ENABLED", "NOT_ENABLED", "ZONE_ALREADY_SET", "ALREADY_SET")
NOT_RUNNING = 252                   # firewall-cmd's exit status when firewalld does not answer
DEFAULT_ZONE_TARGET = "{chain}_{zone}"   # how firewalld stores a zone's target "default"
TIMEOUT = 30.0                      # seconds firewalld gets to answer a call
# A reload rebuilds every direct rule, and firewalld's store of a chain's rules is a list it scans
# for each rule it adds: 20,000 rules took 41 s on a busy 2-core host (firewall-cmd gives up after 25).
RELOAD_TIMEOUT = 900.0


class Request(NamedTuple):
    interface: str
    method: str
    signature: str
    args: tuple
    output: Callable[[tuple], str]  # the reply's body -> what firewall-cmd would print
    timeout: float = TIMEOUT


def _nothing(_body) -> str:
    return ""


def _state(body) -> str:
    return "running" if body[0][1] == "RUNNING" else "not running"


def _info(name: str, keys: tuple) -> Callable[[tuple], str]:
    """``--info-zone``/``--info-policy``'s lines for ``keys`` (the ones the core reads)."""
    def output(body) -> str:
        settings = {key: value for key, (_signature, value) in body[0].items()}
        lines = [name]
        for key in keys:
            value = settings.get(key.replace("-", "_"), [])
            if key == "target":
                value = "default" if value == DEFAULT_ZONE_TARGET else value
            elif key == "ports":
                value = " ".join(f"{port}/{protocol}" for port, protocol in value)
            else:
                value = " ".join(sorted(value) if key == "interfaces" else value)
            lines.append(f"  {key}: {value}")
        return "\n".join(lines) + "\n"
    return output


def _chains(body) -> str:
    return "".join(f"{ipv} {table} {chain}\n" for ipv, table, chain in body[0])


def _rules(body) -> str:
    return "".join(f"{ipv} {table} {chain} {priority} {shlex.join(args)}\n"
                   for ipv, table, chain, priority, args in body[0])


_DIRECT_LISTINGS = {"--get-all-chains": ("getAllChains", _chains), "--get-all-rules": ("getAllRules", _rules)}
_DIRECT_CHANGES = {"--add-chain": "addChain", "--remove-chain": "removeChain",
                   "--add-rule": "addRule", "--remove-rule": "removeRule"}
_ZONE_CHANGES = {"--change-interface": "changeZoneOfInterface", "--remove-interface": "removeInterface",
                 "--remove-source": "removeSource"}
_ZONE_KEYS = ("target", "interfaces", "sources")
_POLICY_KEYS = ("target", "ingress-zones", "egress-zones", "ports")


def request(argv) -> Optional[Request]:
    """The D-Bus call that does what ``argv`` (a firewall-cmd command line) asks; None: not served."""
    if len(argv) < 2 or argv[0] != "firewall-cmd":
        return None
    option, *rest = argv[1:]
    name, _, value = option.partition("=")
    if option == "--state" and not rest:
        return Request(PROPERTIES, "Get", "ss", (FIREWALLD, "state"), _state)
    if option == "--reload" and not rest:
        return Request(FIREWALLD, "reload", "", (), _nothing, RELOAD_TIMEOUT)
    if name == "--info-zone" and value and not rest:
        return Request(ZONE, "getZoneSettings2", "s", (value,), _info(value, _ZONE_KEYS))
    if name == "--info-policy" and value and not rest:
        return Request(POLICY, "getPolicySettings", "s", (value,), _info(value, _POLICY_KEYS))
    if name == "--zone" and value and len(rest) == 1:
        change, _, operand = rest[0].partition("=")
        if change in _ZONE_CHANGES and operand:
            return Request(ZONE, _ZONE_CHANGES[change], "ss", (value, operand), _nothing)
        return None
    if option != "--direct" or not rest:
        return None
    action, *words = rest
    if action in _DIRECT_LISTINGS and not words:
        method, output = _DIRECT_LISTINGS[action]
        return Request(DIRECT, method, "", (), output)
    if action in ("--add-chain", "--remove-chain") and len(words) == 3:
        return Request(DIRECT, _DIRECT_CHANGES[action], "sss", tuple(words), _nothing)
    if action in ("--add-rule", "--remove-rule") and len(words) >= 4 and words[3].lstrip("-").isdigit():
        ipv, table, chain, priority, *args = words
        return Request(DIRECT, _DIRECT_CHANGES[action], "sssias", (ipv, table, chain, int(priority), args),
                       _nothing)
    return None


class FirewalldBus:
    """One connection to the system bus, opened at the first command it serves and shared by
    the threads that run commands side by side (calls take turns: each is about a millisecond)."""

    def __init__(self, connect=None):
        self._connect = connect or (lambda: open_dbus_connection(bus="SYSTEM"))
        self._connection = None
        self._pid = None        # a child forked with the connection opens its own (one socket, two readers: no)
        self._unavailable = open_dbus_connection is None and connect is None
        self._lock = threading.Lock()

    def serve(self, argv) -> Optional[dict]:
        """``cmd.run_all``'s result for ``argv`` from firewalld over D-Bus; None: run the process."""
        call = request(argv)
        if call is None or self._unavailable:
            return None
        message = new_method_call(DBusAddress(PATH, bus_name=FIREWALLD, interface=call.interface),
                                  call.method, call.signature or None, call.args)
        with self._lock:
            try:
                if self._connection is None or self._pid != os.getpid():
                    self._connection, self._pid = self._connect(), os.getpid()
            except OSError:     # no system bus here: the process reports it
                self._unavailable, self._connection = True, None
                return None
            try:
                reply = self._connection.send_and_get_reply(message, timeout=call.timeout)
            except TimeoutError:
                # firewalld has the request and may still be at it: running the command as well
                # would ask twice (a second reload behind the first), so this is the answer
                self._connection.close()
                self._connection = None     # a late reply must not meet the next call
                return {"retcode": 1, "stdout": "", "pid": 0, "stderr":
                        f"Error: firewalld did not answer {call.method} within {call.timeout:.0f} s"}
            except OSError:     # the bus went away: the process reports it
                self._unavailable, self._connection = True, None
                return None
        try:
            body = unwrap_msg(reply)
        except DBusErrorResponse as error:
            return _failed(argv, error)
        return {"retcode": 0, "stdout": call.output(body), "stderr": "", "pid": 0}

    def close(self):
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None


def _failed(argv, error) -> dict:
    """firewall-cmd's answer to a firewalld error: a warning and exit 0, or an error."""
    message = str(error.data[0]) if error.data else error.name
    if error.name.startswith("org.freedesktop.DBus.Error."):     # firewalld is not on the bus
        stderr = "not running" if list(argv) == ["firewall-cmd", "--state"] else f"FirewallD is not running ({error.name})"
        return {"retcode": NOT_RUNNING, "stdout": "", "stderr": stderr, "pid": 0}
    if message.split(":")[0] in WARNINGS:
        return {"retcode": 0, "stdout": "", "stderr": f"Warning: {message}", "pid": 0}
    return {"retcode": 1, "stdout": "", "stderr": f"Error: {message}", "pid": 0}
