"""salt-master in host master, minions z, a, c, r1 (a and c behind NAT)."""
import pytest

MINIONS = ["z", "a", "c", "r1"]


@pytest.fixture(scope="module")
def salted(lab, tmp_path_factory):
    roots = tmp_path_factory.mktemp("saltroots")
    (roots / "file").mkdir()
    (roots / "pillar").mkdir()
    (roots / "pillar" / "top.sls").write_text("base:\n  '*':\n    - lab\n")
    (roots / "pillar" / "lab.sls").write_text("lab_probe: {{ grains['id'] }}\n")
    lab.start_master([str(roots / "file")], [str(roots / "pillar")])
    lab.start_minions(MINIONS, timeout=120)
    yield lab
    lab.stop_salt()


def test_all_minions_answer(salted):
    assert salted.salt(["*", "test.ping"]) == {m: True for m in MINIONS}


def test_runner_and_pillar(salted):
    assert sorted(salted.salt_run(["manage.up"])) == sorted(MINIONS)
    # salt 3008 masks pillar values in output unless asked
    assert salted.salt(["a", "pillar.get", "lab_probe", "unmask=True"]) == {"a": "a"}


def test_minions_run_in_their_hosts(salted):
    res = salted.salt(["-L", "a,c", "cmd.run",
                       "hostname; ip -o -4 addr show scope global | awk '{print $2, $4}';"
                       " echo $WG_QUICK_USERSPACE_IMPLEMENTATION"])
    assert res["a"].splitlines()[:2] == ["a", "eth1 192.168.201.247/24"]
    assert res["c"].splitlines()[:2] == ["c", "eth2 192.168.200.248/24"]
    assert res["a"].splitlines()[-1].endswith("lab/bin/wireguard-go-fg")
    # the minion's files are the host's own
    assert salted.host_path("c", "/etc/salt/minion_id").read_text() == "c"
    assert (salted.host_path("master", "/etc/salt/pki/master/minions") / "c").exists()
