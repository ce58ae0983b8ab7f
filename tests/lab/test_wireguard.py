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


def test_a_live_peer_change_on_wireguard_go_reaches_the_plan_and_keeps_the_unchanged_session(lab, tunnel):
    """``Tunnel.set_peers`` on real wireguard-go: a stray peer removed (`wg set`), two added and
    gateway a's AllowedIPs widened (one `wg addconf` through a pipe), then one added peer's
    preshared key and keepalive cleared. Each time `wg show dump` then holds exactly the plan,
    no preshared key was on a command line, and a's tunnel still carries pings."""
    from wgmesh_core.keys import derive_psk
    from wgmesh_core.live import parse_wg_dump, peer_diff
    from wgmesh_core.plan import HostConfig, Peer
    from wgmesh_salt.commands import Commands
    from wgmesh_salt.tunnel import Tunnel

    def run_all(argv, stdin=None, **_):
        done = lab.exec("z", argv, input=stdin, check=False)
        return {"retcode": done.returncode, "stdout": done.stdout, "stderr": done.stderr}
    ran = []
    tunnel_z = Tunnel(Commands(lambda argv, **kw: ran.append(argv) or run_all(argv, **kw)))
    assert lab.ping("a", "10.70.0.1", count=2, timeout=2)
    stray = lab.genkey("z")[1]
    lab.exec("z", ["wg", "set", "wg0", "peer", stray, "allowed-ips", "10.70.99.99/32", "persistent-keepalive", "25"])
    g_key, h_key = lab.genkey("z")[1], lab.genkey("z")[1]
    g_psk, h_psk = derive_psk(bytes(32), "g"), derive_psk(bytes(32), "h")
    a = Peer("a", "gateway", tunnel, ("10.70.0.2/32", "192.168.201.0/24", "192.168.209.0/24"))
    g = Peer("g", "developer", g_key, ("10.70.0.9/32",), keepalive=25, preshared_key=g_psk)
    h = Peer("h", "developer", h_key, ("10.70.0.10/32",), endpoint="198.51.100.7:51820", preshared_key=h_psk)
    handshake_before = parse_wg_dump(lab.exec("z", ["wg", "show", "wg0", "dump"]).stdout).peers[tunnel].latest_handshake
    for peers in ([a, g, h], [a, Peer("g", "developer", g_key, ("10.70.0.9/32",)), h]):
        plan = HostConfig("z", "hub", interface="wg0", listen_port=51820, peers=peers)
        live = parse_wg_dump(lab.exec("z", ["wg", "show", "wg0", "dump"]).stdout)
        diff = peer_diff(plan, live)
        assert diff and not diff.interface
        tunnel_z.set_peers(plan, diff)
        after = parse_wg_dump(lab.exec("z", ["wg", "show", "wg0", "dump"]).stdout)
        assert not peer_diff(plan, after), peer_diff(plan, after)
        assert set(after.peers) == {tunnel, g_key, h_key}
    assert ran[0] == ["wg", "set", "wg0", "peer", stray, "remove"]
    assert [argv[:2] for argv in ran[1:]] == [["wg", "addconf"], ["wg", "addconf"]]
    g_live = after.peers[g_key]
    assert (g_live.preshared_key, g_live.keepalive) == (None, 0)          # cleared by the zero key and "off"
    assert after.peers[h_key].preshared_key == h_psk and after.peers[h_key].endpoint == "198.51.100.7:51820"
    assert not any(psk in " ".join(argv) for psk in (g_psk, h_psk) for argv in ran)
    # a's session went on: the same handshake, and pings still pass (192.168.209.0/24 only widened it)
    assert lab.ping("a", "10.70.0.1", count=2, timeout=2)
    assert after.peers[tunnel].latest_handshake == handshake_before != 0
