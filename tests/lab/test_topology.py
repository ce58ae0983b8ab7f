"""The article's topology: LANs behind NAT, only z and master public."""
import os
import time

import pytest

from lab import plan

Z, MASTER = plan.HUB_IP, plan.MASTER_IP
R1_WAN = "203.0.113.21"
A_LAN, D_LAN = "192.168.201.247", "192.168.200.244"


def test_lan_devices_reach_their_router(lab):
    res = lab.connectivity_matrix([("b", "192.168.201.1"), ("a", "192.168.201.1"),
                                   ("a", "192.168.201.10"), ("d", "192.168.200.1"),
                                   ("c", "192.168.200.1"), ("c", D_LAN),
                                   ("e", "172.16.5.1"), ("f", "172.16.6.1")])
    assert all(res.values()), res


def test_master_reachable(lab):
    res = lab.connectivity_matrix([(h, MASTER) for h in ("z", "a", "c", "r1", "e", "f")])
    assert all(res.values()), res


def test_interface_names_and_routes(lab):
    assert "dev eth1" in lab.route_get("a", Z) and "via 192.168.201.1" in lab.route_get("a", Z)
    assert "dev eth2" in lab.route_get("c", Z) and "via 192.168.200.1" in lab.route_get("c", Z)
    assert "via 172.16.5.1" in lab.route_get("e", Z)
    assert "via 172.16.6.1" in lab.route_get("f", Z)
    # /sys is per host: a sees its own links only
    links = lab.exec("a", ["ls", "/sys/class/net"]).stdout.split()
    assert sorted(links) == ["eth1", "lo"]
    # forwarding is the product's job on a, c, z; the NAT routers forward
    fwd = {h: lab.exec(h, ["sysctl", "-n", "net.ipv4.ip_forward"]).stdout.strip()
           for h in ("a", "c", "z", "r1", "r2")}
    assert fwd == {"a": "0", "c": "0", "z": "0", "r1": "1", "r2": "1"}


def test_outbound_is_masqueraded(lab):
    """a -> z works, and z sees r1's WAN address, not a's."""
    name = "tcpdump-nat"
    lab.spawn("z", ["tcpdump", "-n", "-l", "-i", "eth0", "-c", "1",
                    "icmp[icmptype] == icmp-echo"], name)
    deadline = time.monotonic() + 10
    while "listening on" not in lab.log("z", name):
        assert time.monotonic() < deadline, lab.log("z", name)
        time.sleep(0.05)
    try:
        assert lab.ping("a", Z, count=2)
        deadline = time.monotonic() + 5
        while lab.pid("z", name) and time.monotonic() < deadline:
            time.sleep(0.05)
        captured = lab.log("z", name)
        assert f"{R1_WAN} > {Z}" in captured, captured
        assert A_LAN not in captured, captured
    finally:
        lab.stop("z", name)
    ct = lab.exec("r1", ["conntrack", "-L", "-p", "icmp"]).stdout
    assert f"src={A_LAN} dst={Z}" in ct and f"dst={R1_WAN}" in ct, ct


def test_private_lans_unreachable_from_internet(lab):
    res = lab.connectivity_matrix([("z", A_LAN), ("z", D_LAN), ("z", "192.168.201.10"),
                                   ("master", A_LAN), ("r2", A_LAN), ("e", D_LAN),
                                   ("f", A_LAN), ("a", D_LAN), ("c", A_LAN)])
    assert not any(res.values()), res
    # even with a route pointing at r1, nothing gets in: no port forwarding
    lab.exec("z", ["ip", "route", "add", "192.168.201.0/24", "via", R1_WAN])
    try:
        assert not lab.ping("z", A_LAN, timeout=1)
    finally:
        lab.exec("z", ["ip", "route", "del", "192.168.201.0/24", "via", R1_WAN])


def test_hosts_have_private_files(lab):
    p = lab.host_path("a", "/etc/systemd/network/99-lab-probe.network")
    p.write_text("[Match]\nName=probe\n")
    try:
        assert lab.exec("a", ["cat", "/etc/systemd/network/99-lab-probe.network"]).stdout \
            == "[Match]\nName=probe\n"
        assert lab.exec("c", ["ls", "/etc/systemd/network"]).stdout.strip() == ""
        assert not os.path.exists("/etc/systemd/network/99-lab-probe.network")
    finally:
        p.unlink()
    lab.exec("c", ["sh", "-c", "echo 'net.ipv4.ip_forward = 1' > /etc/sysctl.d/10-ip-forward.conf"])
    try:
        assert lab.host_path("c", "/etc/sysctl.d/10-ip-forward.conf").read_text() \
            == "net.ipv4.ip_forward = 1\n"
        assert not lab.host_path("a", "/etc/sysctl.d/10-ip-forward.conf").exists()
        assert lab.host_path("c", "/var/run/salt") == lab.host_path("c", "/run/salt")
    finally:
        lab.host_path("c", "/etc/sysctl.d/10-ip-forward.conf").unlink()
    assert lab.exec("d", ["hostname"]).stdout.strip() == "d"
    with pytest.raises(ValueError):
        lab.host_path("a", "/usr/bin/ls")


def test_e_in_the_lan2_office(lab):
    """The route-conflict setup: e gets a second link 192.168.200.27/24 in LAN2."""
    assert "via 172.16.5.1" in lab.route_get("e", D_LAN)
    lab.join_office("e")
    try:
        assert "dev eth1" in lab.route_get("e", D_LAN)
        assert lab.ping("e", D_LAN)
        assert lab.ping("d", "192.168.200.27")
        assert lab.ping("e", Z)      # still online through its home router
    finally:
        lab.leave_office("e")
    assert "via 172.16.5.1" in lab.route_get("e", D_LAN)
    assert not lab.ping("e", D_LAN, timeout=1)
