"""firewall-cmd's requests served over firewalld's D-Bus API (``wgmesh_salt.firewalld_bus``),
checked against the real firewall-cmd on a real firewalld (its own namespaces, a private system
bus): the same exit status and, for every listing wgmesh reads, the same content as the core
parses it; changes made over the bus are what firewall-cmd then lists."""
import json
import shlex
import sys

from tests.conftest import REPO
from wgmesh_core import firewall

from .conftest import fails

# runs inside the host: serves each argv (a JSON list of argvs on stdin) and prints the results
PROBE = f"""
import json, sys
sys.path.insert(0, {str(REPO / '_utils')!r})
from wgmesh_salt.firewalld_bus import FirewalldBus
bus = FirewalldBus()
print(json.dumps([bus.serve(argv) for argv in json.load(sys.stdin)]))
"""


def served(host, argvs) -> str:
    """A host step: the bus's results for ``argvs``, as JSON on its stdout."""
    script = host.dir / "probe.py"
    script.write_text(PROBE)
    return f"echo {shlex.quote(json.dumps(argvs))} | {sys.executable} -I {script}"


def by_cli(argv) -> str:
    """A host step: firewall-cmd itself, its exit status on the last line."""
    return f"{shlex.join(argv)}; echo \"rc=$?\""


def cli_result(output: str) -> tuple[int, str]:
    text, _, code = output.rstrip("\n").rpartition("rc=")
    return int(code), text.rstrip("\n")


SETUP = [
    "firewall-cmd -q --permanent --new-zone=wgmesh", "firewall-cmd -q --permanent --zone=wgmesh --set-target=ACCEPT",
    "firewall-cmd -q --permanent --new-policy=wgmesh-wireguard",
    "firewall-cmd -q --permanent --policy=wgmesh-wireguard --add-ingress-zone=ANY",
    "firewall-cmd -q --permanent --policy=wgmesh-wireguard --add-egress-zone=HOST",
    "firewall-cmd -q --permanent --policy=wgmesh-wireguard --add-port=51820/udp",
    "firewall-cmd -q --reload",
    "ip link add wgt0 type veth peer name wgt1",
    "firewall-cmd -q --zone=wgmesh --change-interface=wgt1",
    "firewall-cmd -q --zone=wgmesh --change-interface=wgt0",
    "firewall-cmd -q --direct --add-chain ipv4 filter WGMESH-FORWARD",
    "firewall-cmd -q --direct --add-rule ipv4 filter WGMESH-FORWARD 1 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
    # an argument with a space: the listing quotes it, the core's parser takes it apart again
    "firewall-cmd -q --direct --add-rule ipv4 filter WGMESH-FORWARD 2 -s 10.70.0.5/32 -m comment --comment 'dev e' -j ACCEPT",
]
LISTINGS = [["firewall-cmd", "--state"], *[list(argv) for argv in firewall.FIREWALLD_LISTINGS.values()
                                           if argv[0] == "firewall-cmd"],
            ["firewall-cmd", "--info-zone=nosuchzone"], ["firewall-cmd", "--info-policy=nosuchpolicy"]]


def test_the_bus_lists_what_firewall_cmd_lists(local_host):
    host = local_host("c", {"wgmesh": None})
    *_, bus, firewalld_state, zone, policy, chains, rules, no_zone, no_policy = host.run(
        *SETUP, served(host, LISTINGS), *[by_cli(argv) for argv in LISTINGS], firewalld="nftables")
    results = json.loads(bus)
    cli = [cli_result(output) for output in (firewalld_state, zone, policy, chains, rules, no_zone, no_policy)]
    assert [r["retcode"] for r in results[:5]] == [0] * 5 and [code for code, _ in cli[:5]] == [0] * 5
    assert results[0]["stdout"] == cli[0][1] == "running"
    for result, (_, text) in zip(results[1:3], cli[1:3]):      # zone, policy: the keys the core reads
        assert firewall.parse_info(result["stdout"]) == {
            key: value for key, value in firewall.parse_info(text).items() if key in firewall.parse_info(result["stdout"])}
    assert firewall.parse_info(results[1]["stdout"]) == {"target": "ACCEPT", "interfaces": "wgt0 wgt1", "sources": ""}
    assert firewall.parse_info(results[2]["stdout"])["ports"] == "51820/udp"
    for result, (_, text) in zip(results[3:5], cli[3:5]):      # direct chains, rules
        assert firewall.parse_direct_rules(result["stdout"]) == firewall.parse_direct_rules(text)
    assert "ipv4 filter WGMESH-FORWARD 2 -s 10.70.0.5/32 -m comment --comment dev e -j ACCEPT" in \
        firewall.parse_direct_rules(results[4]["stdout"])
    # a zone or policy firewalld does not have: an error, as firewall-cmd's
    for result, (code, _) in zip(results[5:], cli[5:]):
        assert result["retcode"] != 0 and code != 0 and "INVALID_" in result["stderr"]


CHANGES = [
    ["firewall-cmd", "--direct", "--add-chain", "ipv4", "filter", "WGMESH-INPUT"],
    ["firewall-cmd", "--direct", "--add-rule", "ipv4", "filter", "WGMESH-INPUT", "10", "-j", "DROP"],
    ["firewall-cmd", "--direct", "--add-rule", "ipv4", "filter", "WGMESH-INPUT", "10", "-j", "DROP"],   # again
    ["firewall-cmd", "--direct", "--remove-rule", "ipv4", "filter", "WGMESH-FORWARD", "1",
     "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", "ACCEPT"],
    ["firewall-cmd", "--direct", "--remove-rule", "ipv4", "filter", "WGMESH-FORWARD", "7", "-j", "REJECT"],  # never there
    ["firewall-cmd", "--zone=wgmesh", "--remove-interface=wgt1"],
    ["firewall-cmd", "--zone=wgmesh", "--change-interface=wgt0"],       # already there
    ["firewall-cmd", "--direct", "--add-rule", "ipv4", "filter", "NO-SUCH-CHAIN", "1", "-j", "ACCEPT"],
    ["firewall-cmd", "--direct", "--remove-chain", "ipv4", "filter", "WGMESH-NOTHING"],
]


def test_changes_over_the_bus_are_what_firewall_cmd_then_lists(local_host):
    host = local_host("c", {"wgmesh": None})
    *_, bus, rules, chains, interfaces, kernel = host.run(
        *SETUP, served(host, CHANGES), "firewall-cmd --direct --get-all-rules", "firewall-cmd --direct --get-all-chains",
        "firewall-cmd --zone=wgmesh --list-interfaces", "nft list ruleset", firewalld="nftables")
    results = json.loads(bus)
    # firewall-cmd exits 0 with a warning on ALREADY_ENABLED / NOT_ENABLED / ZONE_ALREADY_SET
    assert [r["retcode"] for r in results[:7]] == [0] * 7
    assert "ALREADY_ENABLED" in results[2]["stderr"] and "NOT_ENABLED" in results[4]["stderr"]
    assert results[7]["retcode"] != 0 and results[7]["stderr"].startswith("Error: ")    # the kernel refuses it
    assert firewall.parse_direct_rules(rules) == [
        "ipv4 filter WGMESH-FORWARD 2 -s 10.70.0.5/32 -m comment --comment dev e -j ACCEPT",
        "ipv4 filter WGMESH-INPUT 10 -j DROP"]
    assert sorted(chains.split("\n")[:-1]) == ["ipv4 filter WGMESH-FORWARD", "ipv4 filter WGMESH-INPUT"]
    assert interfaces.split() == ["wgt0"]
    assert "chain WGMESH-INPUT" in kernel and "drop" in kernel.split("chain WGMESH-INPUT")[1].split("}")[0]


def test_firewalld_not_on_the_bus_reads_as_not_running(local_host):
    host = local_host("c", {"wgmesh": None})
    bus, cli = host.run(served(host, [["firewall-cmd", "--state"], ["firewall-cmd", "--direct", "--get-all-rules"]]),
                        "firewall-cmd --state 2>&1; echo \"rc=$?\"")
    state, rules = json.loads(bus)
    assert (state["retcode"], state["stdout"] + state["stderr"]) == cli_result(cli) == (252, "not running")
    assert rules["retcode"] == 252 and "not running" in rules["stderr"]
