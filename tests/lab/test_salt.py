"""salt-master in host master, minions z, a, c, r1 (a and c behind NAT)."""
import subprocess

import pytest

MINIONS = ["z", "a", "c", "r1"]


@pytest.fixture(scope="module")
def salted(lab):
    # Salt's default roots, in the master's own /srv (readable by the master's user, salt)
    pillar = lab.host_path("master", "/srv/pillar")
    pillar.mkdir(parents=True, exist_ok=True)
    lab.host_path("master", "/srv/salt").mkdir(parents=True, exist_ok=True)
    (pillar / "top.sls").write_text("base:\n  '*':\n    - lab\n")
    (pillar / "lab.sls").write_text("lab_probe: {{ grains['id'] }}\n")
    lab.start_master(["/srv/salt"], ["/srv/pillar"])
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


def test_the_master_runs_as_user_salt_like_a_packaged_master(salted):
    """Salt 3006+ packages run the master as user ``salt``; the lab's exists only in the master
    host's own /etc/passwd (the machine's is left alone)."""
    uid = int(salted.exec("master", ["id", "-u", "salt"]).stdout)
    pid = salted.pid("master", "salt-master")
    workers = salted.exec("master", ["pgrep", "-s", str(pid)]).stdout.split()
    assert workers
    for worker in workers:
        uids = open(f"/proc/{worker}/status").read().split("Uid:")[1].split()[:4]
        assert uids == [str(uid)] * 4, (worker, uids)
    for path in ("/etc/salt/pki/master", "/var/cache/salt/master", "/var/run/salt/master"):
        assert salted.host_path("master", path).stat().st_uid == uid, path
    if subprocess.run(["getent", "passwd", "salt"], capture_output=True).returncode != 0:
        # the machine has no user salt: the master's is private to its host
        assert salted.exec("z", ["getent", "passwd", "salt"], check=False).returncode != 0
