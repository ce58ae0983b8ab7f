"""Boot persistence of the iptables backend and a LAN router's route (issue 11): iptables
keeps nothing across a reboot, so wgmesh writes the rules as /etc/wgmesh/iptables.rules and a unit loading them before the
network comes up. Here the unit's commands run as systemd runs them (ExecStartPre ignoring
failure, then ExecStart), in a fresh network namespace standing for the rebooted host: real
iptables, no Salt. systemd-analyze checks the unit offline (no systemd as PID 1 here)."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from lab.boot import unit_commands
from tests.conftest import BIN, REPO

UNIT = "etc/systemd/system/wgmesh-firewall.service"
RULES = "etc/wgmesh/iptables.rules"
SETS = "etc/wgmesh/ipsets"


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> Path:
    """c's files with `firewall: iptables` (the example pillar otherwise)."""
    tmp = tmp_path_factory.mktemp("boot")
    pillar = tmp / "pillar"
    subprocess.run(["cp", "-r", str(REPO / "pillar"), str(pillar)], check=True)
    network = pillar / "wgmesh" / "network.sls"
    text = network.read_text()
    assert "  firewall: firewalld" in text
    network.write_text(text.replace("  firewall: firewalld", "  firewall: iptables", 1))
    out = tmp / "c"
    subprocess.run([str(BIN / "wgmesh"), "render", str(pillar), "--host", "c", "--out", str(out)],
                   check=True, capture_output=True, text=True)
    return out


def unit_script(unit_text: str, rendered: Path) -> list[str]:
    """The unit's commands (lab.boot.unit_commands) as shell lines reading the files in ``rendered``."""
    return [" ".join(argv).replace(f"/{RULES}", str(rendered / RULES)).replace(f"/{SETS}", str(rendered / SETS))
            + (" || true" if ignored else "") for argv, ignored in unit_commands(unit_text)]


def boot(rendered: Path, times: int) -> dict:
    """Run the unit ``times`` times in a new network namespace; its iptables and ipset listings."""
    script = "\n".join(unit_script((rendered / UNIT).read_text(), rendered) * times)
    script += "\necho '#filter'; iptables -w -S; echo '#nat'; iptables -w -t nat -S; echo '#sets'; ipset save\n"
    done = subprocess.run(["unshare", "--net", "bash", "-euo", "pipefail", "-c", script],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    filter_part, rest = done.stdout.split("#nat\n")
    nat_part, sets_part = rest.split("#sets\n")
    return {"filter": filter_part.replace("#filter\n", ""), "nat": nat_part,
            # a set's members in order (ipset lists them in hash order), without its random hash seed
            "sets": "\n".join(sorted(line.rsplit(" initval ", 1)[0] for line in sets_part.splitlines()))}


def chain(listing: str, name: str) -> list[str]:
    return [line.split(" ", 2)[2] for line in listing.splitlines() if line.startswith(f"-A {name} ")]


def test_the_boot_unit_is_valid_for_systemd(rendered):
    unit = (rendered / UNIT).read_text()
    assert "WantedBy=sysinit.target" in unit and "Before=network-pre.target" in unit
    done = subprocess.run(["systemd-analyze", "verify", str(rendered / UNIT)], capture_output=True, text=True)
    assert done.returncode == 0 and done.stderr.strip() == "", done.stderr


def test_the_lan_routers_route_unit_is_valid_for_systemd(tmp_path):
    """r1's wgmesh-routes.service: after the network is online, retried while the gateway is not
    yet on-link (Restart= on a oneshot needs systemd 244; Debian 12 has 252)."""
    subprocess.run([str(BIN / "wgmesh"), "render", str(REPO / "pillar"), "--host", "r1", "--out", str(tmp_path)],
                   check=True, capture_output=True, text=True)
    path = tmp_path / "etc/systemd/system/wgmesh-routes.service"
    unit = path.read_text().splitlines()
    assert [line for line in unit if line.startswith(("ExecStart", "After", "Restart="))] == [
        "After=network-online.target", "ExecStart=ip route replace 10.70.0.0/16 via 192.168.201.247",
        "Restart=on-failure"]
    done = subprocess.run(["systemd-analyze", "verify", str(path)], capture_output=True, text=True)
    assert done.returncode == 0 and done.stderr.strip() == "", done.stderr


def test_a_rebooted_gateway_gets_its_hardening_before_the_network(rendered):
    live = boot(rendered, times=1)
    rules = (rendered / RULES).read_text()
    for table in ("filter", "nat"):
        section = rules.split(f"*{table}\n")[1].split("COMMIT")[0]
        for line in section.splitlines():
            if line.startswith("-A "):
                name, args = line[3:].split(" ", 1)
                assert chain(live[table], name).count(args) == 1, (table, line, live[table])
    # the jumps come first, so nothing inserted later above them bypasses the allow-list
    assert chain(live["filter"], "FORWARD") == ["-i wg0 -j WGMESH-FORWARD", "-o wg0 -j WGMESH-FORWARD"]
    assert chain(live["filter"], "INPUT") == ["-i wg0 -j WGMESH-INPUT"]
    assert chain(live["filter"], "WGMESH-FORWARD")[-1] == "-j DROP"
    assert "-s 10.70.0.0/16 -d 192.168.200.0/24 -o eth2 -j MASQUERADE" in chain(live["nat"], "WGMESH-POSTROUTING")


def test_restarting_the_unit_adds_nothing_twice(rendered):
    assert boot(rendered, times=2) == boot(rendered, times=1)


def test_a_rebooted_hub_of_many_developers_gets_its_sets_before_its_rules(tmp_path):
    """An iptables hub of 300 developers more: its developers' list is an ipset, which the unit
    restores before the rules that match it (iptables-restore refuses a rule naming a set that
    does not exist); a restart of the unit leaves each set exactly as planned."""
    import datetime

    from wgmesh_core import host_config, host_files, load_network
    from tests.conftest import example_network_data
    from tests.core import article_texts as art
    from tests.core.test_firewall_groups import crowd
    data = example_network_data()
    data["firewall"] = "iptables"
    data["developers"].update(crowd(300))
    for spec_file in host_files(host_config(load_network(data), "z", datetime.date.today(), art.PUBLIC_KEYS, art.PSKS)):
        path = tmp_path / spec_file.path.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(spec_file.content)
    live = boot(tmp_path, times=1)
    members = [line.split()[2] for line in live["sets"].splitlines() if line.startswith("add wgmesh-developers ")]
    assert len(members) == 302 and {"10.70.0.4", "10.70.2.43"} <= set(members)
    assert "-A WGMESH-DEVELOPERS -m set --match-set wgmesh-developers dst -j ACCEPT" in live["filter"].splitlines()
    assert "wgmesh-developers~" not in live["sets"]              # the temporary set is gone
    assert boot(tmp_path, times=2) == live
