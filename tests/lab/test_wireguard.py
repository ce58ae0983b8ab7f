"""wireguard-go in namespaces: a dials z through r1's NAT, per-host sockets."""
import os
import stat
import time

import pytest

from lab import plan


def _socket_inode(lab, host):
    st = os.stat(lab.host_path(host, "/run/wireguard/wg0.sock"))
    assert stat.S_ISSOCK(st.st_mode)
    return st.st_ino


@pytest.fixture()
def tunnel(lab):
    zpriv, zpub = lab.genkey("z")
    apriv, apub = lab.genkey("a")
    lab.wg_quick("z", "up", f"""[Interface]
PrivateKey = {zpriv}
Address = 10.70.0.1/16
ListenPort = 51820
MTU = 1280

[Peer]
PublicKey = {apub}
AllowedIPs = 10.70.0.2/32, 192.168.201.0/24
""")
    lab.wg_quick("a", "up", f"""[Interface]
PrivateKey = {apriv}
Address = 10.70.0.2/16
MTU = 1280

[Peer]
PublicKey = {zpub}
Endpoint = {plan.HUB_IP}:51820
AllowedIPs = 10.70.0.0/16
PersistentKeepalive = 15
""")
    yield apub
    for h in ("a", "z"):
        lab.wg_quick(h, "down", check=False)


def test_tunnel_through_nat(lab, tunnel):
    assert lab.ping("a", "10.70.0.1", count=3, timeout=2)   # a dials out first
    assert lab.ping("z", "10.70.0.2", count=2)
    dump = lab.wg_show("z", "wg0", "endpoints")
    assert tunnel in dump and "203.0.113.21:" in dump, dump   # seen behind r1's NAT
    # each host has its own control socket for the same interface name
    assert _socket_inode(lab, "z") != _socket_inode(lab, "a")
    for h in ("z", "a"):
        assert lab.exec(h, ["test", "-S", "/run/wireguard/wg0.sock"]).returncode == 0
    assert not os.path.exists("/run/wireguard/wg0.sock")
    # the wrapper recorded a foreground wireguard-go living in the host's netns
    for h in ("z", "a"):
        pid = _wg_pid(lab, h)
        assert os.stat(f"/proc/{pid}/ns/net").st_ino == \
            os.stat(f"/run/netns/{lab.netns(h)}").st_ino
        with open(f"/proc/{pid}/cmdline") as fh:
            assert fh.read().split("\0")[:3] == ["wireguard-go", "-f", "wg0"]
    assert "dev wg0" in lab.route_get("a", "10.70.0.1")
    bps = lab.iperf("a", "10.70.0.1", seconds=1)
    assert bps > 1e6, bps


def _wg_pid(lab, host):
    return int((lab.hostdir(host) / "pids" / "wireguard-go-wg0.pid").read_text())


def _gone(pid):
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(") ", 1)[1].startswith("Z")
    except FileNotFoundError:
        return True


def test_wg_quick_down_stops_wireguard_go(lab, tunnel):
    pid = _wg_pid(lab, "a")
    assert not _gone(pid)
    lab.wg_quick("a", "down")
    deadline = time.monotonic() + 5
    while not _gone(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _gone(pid)
    assert "wg0" not in lab.exec("a", ["ip", "-o", "link"]).stdout
    assert not lab.host_path("a", "/run/wireguard/wg0.sock").exists()
