"""Which firewall-cmd command lines go to firewalld over D-Bus, and how ``Commands`` uses that
(no bus here: tests/salt/test_firewalld_bus.py checks the answers against a real firewalld)."""
import dataclasses

import pytest

from wgmesh_core import firewall, plan
from wgmesh_core.validate import load_network
from wgmesh_salt.commands import CommandFailed, Commands
from wgmesh_salt.firewalld_bus import DIRECT, POLICY, PROPERTIES, ZONE, FirewalldBus, request

from tests.conftest import TODAY, example_network_data
from tests.firewall_listings import firewalld_live

from .conftest import ok

SERVED = {
    ("firewall-cmd", "--state"): (PROPERTIES, "Get", ("org.fedoraproject.FirewallD1", "state")),
    ("firewall-cmd", "--reload"): ("org.fedoraproject.FirewallD1", "reload", ()),
    ("firewall-cmd", "--info-zone=wgmesh"): (ZONE, "getZoneSettings2", ("wgmesh",)),
    ("firewall-cmd", "--info-policy=wgmesh-wireguard"): (POLICY, "getPolicySettings", ("wgmesh-wireguard",)),
    ("firewall-cmd", "--direct", "--get-all-chains"): (DIRECT, "getAllChains", ()),
    ("firewall-cmd", "--direct", "--get-all-rules"): (DIRECT, "getAllRules", ()),
    ("firewall-cmd", "--zone=wgmesh", "--change-interface=wg0"): (ZONE, "changeZoneOfInterface", ("wgmesh", "wg0")),
    ("firewall-cmd", "--zone=wgmesh", "--remove-interface=eth1"): (ZONE, "removeInterface", ("wgmesh", "eth1")),
    ("firewall-cmd", "--zone=wgmesh", "--remove-source=10.9.0.0/16"): (ZONE, "removeSource", ("wgmesh", "10.9.0.0/16")),
    ("firewall-cmd", "--direct", "--add-chain", "ipv4", "filter", "WGMESH-INPUT"):
        (DIRECT, "addChain", ("ipv4", "filter", "WGMESH-INPUT")),
    ("firewall-cmd", "--direct", "--remove-chain", "ipv4", "nat", "WGMESH-POSTROUTING"):
        (DIRECT, "removeChain", ("ipv4", "nat", "WGMESH-POSTROUTING")),
    ("firewall-cmd", "--direct", "--add-rule", "ipv4", "filter", "WGMESH-FORWARD", "2", "-s", "10.70.0.5/32", "-j", "ACCEPT"):
        (DIRECT, "addRule", ("ipv4", "filter", "WGMESH-FORWARD", 2, ["-s", "10.70.0.5/32", "-j", "ACCEPT"])),
    ("firewall-cmd", "--direct", "--remove-rule", "ipv4", "filter", "WGMESH-INPUT", "10", "-j", "DROP"):
        (DIRECT, "removeRule", ("ipv4", "filter", "WGMESH-INPUT", 10, ["-j", "DROP"])),
}


@pytest.mark.parametrize("argv", SERVED, ids=" ".join)
def test_each_firewall_cmd_request_of_wgmesh_has_its_dbus_call(argv):
    call = request(argv)
    assert (call.interface, call.method, call.args) == SERVED[argv]


def test_every_command_the_core_runs_on_firewalld_is_served():
    """The listings, and the changes firewalld_change plans: rule by rule (a stray rule and
    interface, a missing rule and chain), or a reload (no zone)."""
    assert all(request(argv) for argv in firewall.FIREWALLD_LISTINGS.values() if argv[0] == "firewall-cmd")
    fw = plan.host_config(load_network(example_network_data()), "z", TODAY, {}, {}).firewall
    wanted = [r.direct for r in firewall.rules(fw)]
    stray = dataclasses.replace(
        firewalld_live(fw, direct=wanted[1:] + ["ipv4 filter WGMESH-FORWARD 2 -s 10.1.1.1/32 -j ACCEPT"],
                       interfaces="wg0 eth9", sources="10.9.0.0/16"),
        chains="ipv4 filter WGMESH-FORWARD\nipv4 filter WGMESH-OLD\n")
    change = firewall.firewalld_change(fw, stray)
    kinds = {command.argv[1:3] for command in change.commands}
    assert {("--direct", "--add-chain"), ("--direct", "--remove-chain"), ("--direct", "--add-rule"),
            ("--direct", "--remove-rule"), ("--zone=wgmesh", "--remove-interface=eth9"),
            ("--zone=wgmesh", "--remove-source=10.9.0.0/16")} <= kinds
    reload = firewall.firewalld_change(fw, firewalld_live(fw, zone=False)).commands
    assert all(request(command.argv) for command in change.commands + reload)


@pytest.mark.parametrize("argv", [
    ("iptables", "-w", "-S"), ("firewall-cmd",), ("firewall-cmd", "--permanent", "--add-port=51820/udp"),
    ("firewall-cmd", "--state", "--zone=x"), ("firewall-cmd", "--info-zone="),
    ("firewall-cmd", "--zone=wgmesh", "--add-interface=wg0"), ("firewall-cmd", "--zone=wgmesh", "--change-interface="),
    ("firewall-cmd", "--direct", "--add-rule", "ipv4", "filter", "X", "high", "-j", "DROP"),
    ("firewall-cmd", "--direct", "--add-chain", "ipv4", "filter"), ("firewall-cmd", "--direct"),
])
def test_anything_else_is_left_to_the_process(argv):
    assert request(argv) is None


class Recorder:
    def __init__(self):
        self.ran = []

    def __call__(self, argv, **_):
        self.ran.append(argv)
        return ok("from the process")


def test_commands_take_the_served_answer_and_run_the_rest():
    run_all = Recorder()
    served = {("firewall-cmd", "--state"): ok("running")}
    commands = Commands(run_all, serve=lambda argv: served.get(tuple(argv)))
    assert commands.run(["firewall-cmd", "--state"])["stdout"] == "running"
    assert commands.run(["iptables", "-S"])["stdout"] == "from the process"
    assert commands.run(["firewall-cmd", "--state"], stdin="x")["stdout"] == "from the process"  # input: a process
    assert run_all.ran == [["iptables", "-S"], ["firewall-cmd", "--state"]]


def test_a_served_failure_is_checked_like_a_process_one():
    commands = Commands(Recorder(), serve=lambda argv: {"retcode": 1, "stdout": "", "stderr": "Error: INVALID_RULE", "pid": 0})
    with pytest.raises(CommandFailed, match="firewall-cmd --direct --add-rule .* failed: Error: INVALID_RULE"):
        commands.run(["firewall-cmd", "--direct", "--add-rule", "ipv4", "filter", "X", "1", "-j", "DROP"])
    assert commands.run(["firewall-cmd", "--reload"], check=False)["retcode"] == 1


def test_without_a_system_bus_the_process_runs_and_the_bus_is_not_tried_again():
    attempts = []

    def connect():
        attempts.append(1)
        raise FileNotFoundError("no system bus")
    bus = FirewalldBus(connect)
    assert bus.serve(["firewall-cmd", "--state"]) is None
    assert bus.serve(["firewall-cmd", "--direct", "--get-all-rules"]) is None
    assert bus.serve(["iptables", "-S"]) is None
    assert attempts == [1]


class Connection:
    def __init__(self):
        self.sent = []

    def send_and_get_reply(self, message, timeout=None):
        self.sent.append(message)
        from jeepney import new_method_return
        return new_method_return(message, "v", (("s", "RUNNING"),))


def test_one_connection_per_process(monkeypatch):
    """A process forked from one that holds the connection (a minion's job) opens its own."""
    opened = []

    def connect():
        opened.append(Connection())
        return opened[-1]
    bus = FirewalldBus(connect)
    assert bus.serve(["firewall-cmd", "--state"])["stdout"] == "running"
    assert bus.serve(["firewall-cmd", "--state"])["retcode"] == 0 and len(opened) == 1
    import os
    monkeypatch.setattr(os, "getpid", lambda: -1)      # as in the forked child
    assert bus.serve(["firewall-cmd", "--state"])["stdout"] == "running"
    assert len(opened) == 2 and len(opened[0].sent) == 2 and len(opened[1].sent) == 1


class SlowConnection(Connection):
    """firewalld busy past the deadline (a reload of tens of thousands of direct rules)."""
    def __init__(self):
        super().__init__()
        self.timeouts, self.closed = [], False

    def send_and_get_reply(self, message, timeout=None):
        self.timeouts.append(timeout)
        raise TimeoutError

    def close(self):
        self.closed = True


def test_a_reload_firewalld_is_still_busy_with_fails_and_is_not_asked_twice():
    """firewall-cmd gives up on a reload after 25 s, and 20,000 direct rules took firewalld 41 s:
    the bus waits long for a reload, and a call past its deadline is a failure, not a reason to
    run the command again as a process (that would be a second reload queued behind the first)."""
    opened = []

    def connect():
        opened.append(SlowConnection())
        return opened[-1]
    bus = FirewalldBus(connect)
    answer = bus.serve(["firewall-cmd", "--reload"])
    assert answer is not None and answer["retcode"] == 1
    assert answer["stderr"] == "Error: firewalld did not answer reload within 900 s"
    assert opened[0].timeouts == [900.0] and opened[0].closed
    assert bus.serve(["firewall-cmd", "--state"])["retcode"] == 1     # a fresh connection, still served
    assert len(opened) == 2 and opened[1].timeouts == [30.0]
