"""The address plan the lab derives from a pillar (lab/plan.py): the article's is the one its
tests and lab/README.md know; another network's follows its own names, LANs and modes."""
import shutil
from pathlib import Path

from lab import plan
from lab.plan import derive, named_hosts, read_pillar

NETWORKS = Path(__file__).parent / "twin_pillars"


def test_the_article_plan_comes_from_its_pillar():
    hosts = plan.HOSTS
    assert list(hosts) == ["master", "z", "r1", "a", "b", "r2", "c", "d", "ne", "e", "nf", "f"]
    assert [i.address for i in hosts["c"].ifaces] == ["192.168.200.248/24"]
    assert hosts["c"].ifaces[0].name == "eth2" and hosts["c"].gateway == "192.168.200.1"
    assert hosts["b"].primary_ip == "192.168.201.10" and hosts["d"].primary_ip == "192.168.200.244"
    assert [i.address for i in hosts["r1"].ifaces] == ["203.0.113.21/24", "192.168.201.1/24"]
    assert [i.address for i in hosts["nf"].ifaces] == ["203.0.113.32/24", "172.16.6.1/24"]
    assert hosts["e"].gateway == "172.16.5.1"
    assert plan.SEGMENTS["home_e"] == ("br-home-e", "172.16.5.0/24")
    assert plan.OFFICE_LINK["address"] == "192.168.200.27/24"
    assert plan.article().minions == {"z": "z", "a": "a", "r1": "r1", "c": "c"}


def test_a_plan_follows_the_pillar():
    spec, tests = read_pillar(NETWORKS / "offices")
    derived = derive(spec, named_hosts(tests), ["172.20.8.77"])
    assert derived.minions == {"hub": "hub", "sz": "sz", "sz-rt": "sz-rt", "bj": "bj", "hk": "hk"}
    assert derived.lans["bj"] == ("lan2", "r2", "db")       # bj's router is no minion: r2
    db = derived.hosts["db"]
    assert db.ifaces[0].address == "172.20.10.20/22" and db.aliases == ("172.20.8.77/22",)
    assert derived.hosts["r2"].ifaces[1].address == "172.20.8.1/22"
    assert derived.hosts["hk"].ifaces[0].name == "enp3s0"
    assert derived.owner_of("172.20.8.77") == "db"
    assert derived.lans["hk"] == ("lan3", "r3", "cam")
    # homes skip the network's own prefixes; each developer dials out through its own NAT
    assert derived.laptops == {d: d for d in ("alice", "bob", "carol", "dave")}
    assert derived.hosts["nbob"].ifaces[0].address == "203.0.113.32/24"
    assert derived.from_dict(derived.to_dict()) == derived


def test_long_or_unusual_names_get_lab_names():
    spec, _ = read_pillar(NETWORKS / "wgquick")
    spec = spec.model_copy(update={"developers": {"Frank.Long_Name": spec.developers["frank"]}})
    derived = derive(spec)
    assert derived.laptops == {"Frank.Long_Name": "dev1"}
    assert "ndev1" in derived.hosts


def test_twin_refuses_a_broken_tests_file_before_building_anything(tmp_path, capsys):
    from lab.twin import main
    pillar = tmp_path / "pillar"
    shutil.copytree(NETWORKS / "wgquick", pillar)
    with open(pillar / "tests.yaml", "a") as tests:
        tests.write("  - {from: nobody, to: core, expect: reach}\n")
    assert main(["test", str(pillar), "--id", "twbad"]) == 2
    assert "tests[14].from: 'nobody' is neither the hub" in capsys.readouterr().err
    assert not Path("/run/wgmesh-lab/twbad").exists()
