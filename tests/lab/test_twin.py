"""The live twin (`wgmesh twin test PILLAR`, lab/twin.py): every intent test of a pillar measured
on the network it describes, built in namespaces and converged by a real salt-master (real
wireguard-go, firewalld, systemd-networkd or wg-quick and iptables, as the pillar says), compared
with the model's prediction cell by cell.  Each test brings a twin up and down (about 1-2 min)."""
import io
import re
from pathlib import Path

import pytest

from lab.topology import REPO
from lab.twin import main, run

NETWORKS = Path(__file__).parent / "twin_pillars"


def twin_test(pillar, tmp_path, tamper=None) -> tuple[int, str]:
    out = io.StringIO()
    code = run(pillar, lab_id="tw" + tmp_path.name[-6:].replace("_", "").lower()[:6], tamper=tamper,
               out=out, workdir=tmp_path / "twin")
    return code, out.getvalue()


def rows(text: str) -> dict:
    """tests[i] -> its line of the printed table (predicted vs measured)."""
    return {line.split("]")[0] + "]": line for line in text.splitlines() if line.startswith("tests[")}


def agreeing(text: str, count: int) -> None:
    table = rows(text)
    assert len(table) == count, text
    assert all(line.endswith(" ok") for line in table.values()), text
    assert f"prediction and measurement agree on all {count} measured test(s)" in text, text


@pytest.mark.parametrize("pillar, count", [(REPO / "pillar", 24), (NETWORKS / "offices", 24),
                                           (NETWORKS / "wgquick", 14)], ids=["article", "offices", "wgquick"])
def test_prediction_and_measurement_agree_on_every_cell(pillar, count, tmp_path):
    code, text = twin_test(pillar, tmp_path)
    assert code == 0, text
    agreeing(text, count)
    # the route taken is measured where a test says via: on-link in an office, else the tunnel
    assert re.search(r"reach via on-link reach via on-link reach via on-link ok", text), text
    assert re.search(r"reach via tunnel +reach via tunnel +reach via tunnel +ok", text), text


def test_a_broken_firewall_rule_makes_twin_test_fail(tmp_path):
    """A DROP on gateway plant for erin's traffic into its LAN: the model still predicts reach,
    the twin measures blocked, and `twin test` exits 1 naming exactly those tests."""
    def tamper(twin):
        gateway = twin.plan.minions["plant"]
        twin.lab.exec(gateway, ["iptables", "-I", "FORWARD", "1", "-s", "10.99.0.10", "-d", "10.40.0.0/16",
                                "-j", "DROP"])

    code, text = twin_test(NETWORKS / "wgquick", tmp_path, tamper)
    assert code == 1, text
    table = rows(text)
    wrong = {index for index, line in table.items() if line.endswith("DISAGREE")}
    assert wrong == {"tests[0]", "tests[1]"}, text
    assert "2 of 14 measured test(s) DISAGREE with the prediction" in text
    assert "tests[0]: predicted reach via tunnel, measured blocked" in text


def test_twin_down_removes_a_twin_left_up(tmp_path, capsys):
    """`wgmesh twin down` finds a twin by its id (its recorded plan) and removes it."""
    from lab import Lab
    from lab.plan import derive, read_pillar
    spec, _tests = read_pillar(NETWORKS / "wgquick")
    lab = Lab("twdown", workdir=tmp_path / "lab", address_plan=derive(spec))
    lab.up()
    assert "core" in lab.hosts and lab.ping("erin", "203.0.113.1")
    assert main(["down", "--id", "twdown"]) == 0
    assert lab.leftovers() == []
