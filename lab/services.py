"""What runs in a lab host besides its network: real system daemons (its own D-Bus system bus,
firewalld, systemd-networkd), and Docker-style containers on a bridge.

Each host has private ``/run/dbus``, ``/run/firewalld``, ``/run/systemd`` and ``/etc/firewalld``
(bind mounts, see topology.BIND_DIRS), so ``firewall-cmd`` and ``networkctl`` in a host talk to
that host's daemons, and nothing reaches the machine's own. No systemd as PID 1 is needed:
the daemons are spawned like the lab's other processes and stopped by their recorded pid.
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

FIREWALLD_BACKENDS = ("nftables", "iptables")
LAB_PKG = Path(__file__).resolve().parent
TCP_PROBE = LAB_PKG / "tcp.py"
NETWORKD = "/lib/systemd/systemd-networkd"
#: networkd's view of /etc/systemd/network without the WireGuard .netdevs (lab/netdev_standin.py)
NETWORKD_VIEW = "/run/systemd/lab-view"
ZONES = Path("/usr/lib/firewalld/zones")


def networkd_parse_command(files: Path, seconds: float = 3) -> list[str]:
    """A real systemd-networkd loading every file of ``files`` (a copy of a host's
    /etc/systemd/network with its modes and owners: WireGuard .netdevs included), for
    ``seconds``, in a scratch network, mount and pid namespace; its log is the output. Parse
    problems and unreadable key files show there; creating a WireGuard link fails with
    "Operation not supported" (no kernel module here)."""
    script = f"""set -e
mount -t tmpfs tmpfs /run; mkdir -p /run/dbus /run/systemd
mount -t sysfs -o ro sysfs /sys
mount --bind {files} /etc/systemd/network
ip link set lo up
dbus-daemon --system --fork --nopidfile
SYSTEMD_LOG_TARGET=console SYSTEMD_LOG_LEVEL=info timeout -s INT {seconds} {NETWORKD} 2>&1 || true
"""
    return ["unshare", "--net", "--mount", "--pid", "--fork", "--propagation", "private", "sh", "-c", script]


#: what networkd logs about a WireGuard netdev on a kernel without the module: expected here
NO_MODULE = "netdev could not be created: Operation not supported"


def networkd_problems(log: str) -> list[str]:
    """Lines of a networkd log that report a problem (a warning, an error, something ignored),
    but the missing WireGuard module's."""
    words = ("warn", "fail", "could not", "cannot", "unknown", "invalid", "ignor", "error", "not supported")
    return [line for line in log.splitlines()
            if any(word in line.lower() for word in words) and NO_MODULE not in line]


class ServicesMixin:
    def start_dbus(self, host: str, timeout: float = 10) -> None:
        """A private system bus for host (firewall-cmd and networkctl use it)."""
        if self.pid(host, "dbus"):
            return
        socket = self.host_path(host, "/run/dbus/system_bus_socket")
        socket.unlink(missing_ok=True)
        self.spawn(host, ["dbus-daemon", "--system", "--nofork", "--nopidfile"], "dbus")
        self._wait(lambda: socket.exists(), timeout, f"{host}: dbus-daemon did not start", host, "dbus")

    def start_firewalld(self, host: str, backend: str = "nftables", lan_zone: dict | None = None,
                        timeout: float = 60) -> None:
        """firewalld with ``backend`` (FirewallBackend in firewalld.conf); ``lan_zone`` binds
        interfaces to zones in its permanent config ({interface: zone}), as NetworkManager or an
        admin would. Its own log: logs/<host>-firewalld.log."""
        if backend not in FIREWALLD_BACKENDS:
            raise ValueError(f"firewalld backend must be one of {FIREWALLD_BACKENDS}")
        self.host_path(host, "/etc/firewalld/firewalld.conf").write_text(
            f"# wgmesh lab: firewalld's backend\nDefaultZone=public\nFirewallBackend={backend}\n")
        for interface, zone in (lan_zone or {}).items():
            zones = self.host_path(host, "/etc/firewalld/zones")
            zones.mkdir(exist_ok=True)
            text = (ZONES / f"{zone}.xml").read_text()
            (zones / f"{zone}.xml").write_text(text.replace("</zone>", f'  <interface name="{interface}"/>\n</zone>'))
        self.start_dbus(host)
        self.spawn(host, ["firewalld", "--nofork", "--nopid", "--log-target", "console"], "firewalld")
        self._wait(lambda: self.exec(host, ["firewall-cmd", "--state"], check=False).returncode == 0,
                   timeout, f"{host}: firewalld did not start", host, "firewalld")

    def stop_firewalld(self, host: str) -> None:
        """SIGTERM: firewalld removes its rules as it stops, as `systemctl stop firewalld` would."""
        self.stop(host, "firewalld", grace=10)

    def restart_firewalld(self, host: str, timeout: float = 60) -> None:
        conf = self.host_path(host, "/etc/firewalld/firewalld.conf").read_text()
        self.stop_firewalld(host)
        backend = next(line.split("=", 1)[1] for line in conf.splitlines() if line.startswith("FirewallBackend="))
        self.start_firewalld(host, backend, timeout=timeout)

    def start_networkd(self, host: str, timeout: float = 30) -> None:
        """The real systemd-networkd of host, and the stand-in for the WireGuard kernel module
        (lab/netdev_standin.py: networkd reads NETWORKD_VIEW, /etc/systemd/network minus the
        WireGuard .netdevs, which the stand-in turns into wireguard-go links). Log:
        logs/<host>-networkd.log."""
        self.start_dbus(host)
        self.host_path(host, NETWORKD_VIEW).mkdir(parents=True, exist_ok=True)
        self.spawn(host, [sys.executable, "-I", LAB_PKG / "netdev_standin.py", NETWORKD_VIEW], "netdev-standin")
        self.spawn(host, ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                          f"mount --bind {NETWORKD_VIEW} /etc/systemd/network && exec {NETWORKD}"],
                   "networkd", env={"SYSTEMD_LOG_TARGET": "console", "SYSTEMD_LOG_LEVEL": "info"})
        self._wait(lambda: self.exec(host, ["networkctl", "list"], check=False).returncode == 0,
                   timeout, f"{host}: systemd-networkd did not start", host, "networkd")

    def networkd_parse_log(self, host: str) -> str:
        """What a real systemd-networkd logs loading host's /etc/systemd/network (see
        ``networkd_parse_command``)."""
        command = networkd_parse_command(self.host_path(host, "/etc/systemd/network"))
        done = subprocess.run(command, capture_output=True, text=True, timeout=60)
        return done.stdout + done.stderr

    def _wait(self, ready, timeout: float, message: str, host: str, name: str) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            if self.pid(host, name) is None or time.monotonic() > deadline:
                raise RuntimeError(f"{message}:\n{self.log(host, name)[-3000:]}")
            time.sleep(0.1)

    def add_container(self, host: str, name: str, bridge: str = "docker0", subnet: str = "172.17.0") -> str:
        """A Docker-style container on ``host``: its own network namespace (recorded, removed by
        down()) behind bridge ``bridge``, with Docker's FORWARD and MASQUERADE rules; where
        firewalld runs, the bridge goes into a zone "docker" (target ACCEPT) at runtime, as
        Docker does. Returns the container's namespace."""
        ns = f"{self.netns(host)}-{name}"
        self._record("netns", ns)
        subprocess.run(["ip", "netns", "add", ns], check=True, capture_output=True)
        subprocess.run(["ip", "-n", self.netns(host), "-batch", "-"], check=True, capture_output=True, text=True, input=(
            f"link add {bridge} type bridge\naddress add {subnet}.1/16 dev {bridge}\nlink set {bridge} up\n"
            f"link add veth-{name} type veth peer name eth0 netns {ns}\nlink set veth-{name} master {bridge} up\n"))
        subprocess.run(["ip", "-n", ns, "-batch", "-"], check=True, capture_output=True, text=True, input=(
            f"address add {subnet}.2/16 dev eth0\nlink set eth0 up\nlink set lo up\n"
            f"route add default via {subnet}.1\n"))
        script = ""
        if self.pid(host, "firewalld"):     # first: a reload drops iptables rules others made
            script += f"""
firewall-cmd --get-zones | grep -qw docker || firewall-cmd -q --permanent --new-zone=docker
firewall-cmd -q --permanent --zone=docker --set-target=ACCEPT
firewall-cmd -q --reload
firewall-cmd -q --zone=docker --change-interface={bridge}
"""
        script += f"""
iptables -w -t nat -A POSTROUTING -s {subnet}.0/16 ! -o {bridge} -j MASQUERADE
iptables -w -A FORWARD -o {bridge} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
iptables -w -A FORWARD -i {bridge} ! -o {bridge} -j ACCEPT
"""
        self.sh(host, script, timeout=120)
        return ns

    def tcp_matrix(self, pairs, port: int, timeout: float = 1.0) -> dict:
        """{(src, dst): connected and echoed} for TCP probes to dst:port (lab/tcp.py), each
        source's probes at once."""
        by_src: dict = {}
        for src, dst in pairs:
            by_src.setdefault(src, []).append(dst)

        def one(src):
            cmd = [sys.executable, "-I", TCP_PROBE, "connect", "-W", timeout] + [f"{d}:{port}" for d in by_src[src]]
            got = json.loads(self.exec(src, cmd, timeout=timeout + 30).stdout)
            return {(src, d): got[f"{d}:{port}"] for d in by_src[src]}

        out: dict = {}
        with ThreadPoolExecutor(max_workers=8) as pool:
            for result in pool.map(one, list(by_src)):
                out.update(result)
        return out
