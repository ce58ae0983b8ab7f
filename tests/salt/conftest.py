"""salt-call --local on one simulated host: its own network and mount namespace.

Each host runs a scripted sequence of salt-call commands inside
`ip netns exec <ns> unshare --mount`, so /run/wireguard, /etc/wireguard,
/etc/systemd/network, /etc/sysctl.d and /etc/firewalld are the host's own and
nothing reaches the machine's real network or files.
"""
import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import yaml

from lab.saltctl import served_extensions
from tests.conftest import BIN, REPO, skip_root_only

FAKES = REPO / "tests" / "fakes"
PRIVATE_DIRS = ["/run/wireguard", "/etc/wireguard", "/etc/systemd/network", "/etc/sysctl.d", "/etc/firewalld",
                "/etc/wgmesh", "/etc/systemd/system"]


def require_root_netns():
    if os.geteuid() != 0 or shutil.which("ip") is None or shutil.which("wireguard-go") is None:
        skip_root_only("needs root, iproute2 and wireguard-go (run scripts/setup.sh)")


class fails(str):
    """A step of ``LocalHost.run`` that must exit non-zero (e.g. a state run that is meant to fail)."""


class LocalHost:
    def __init__(self, workdir: Path, minion_id: str, pillar: dict):
        self.id = minion_id
        self.dir = workdir / minion_id
        self.netns = f"wgmt-{uuid.uuid4().hex[:8]}"
        (self.dir / "pillar").mkdir(parents=True)
        (self.dir / "pillar" / "top.sls").write_text("base:\n  '*':\n    - net\n")
        (self.dir / "pillar" / "net.sls").write_text(yaml.safe_dump(pillar))
        for path in PRIVATE_DIRS:
            (self.dir / "root-fs" / path.lstrip("/")).mkdir(parents=True, exist_ok=True)
            Path(path).mkdir(parents=True, exist_ok=True)
        (self.dir / "conf").mkdir()
        # the repository's extension folders (_modules, _utils, ...) for saltutil.sync_all, not the
        # repository itself: every salt-call would walk its virtualenv and labs for the file list
        extensions = served_extensions(self.dir / "extensions", REPO)
        (self.dir / "conf" / "minion").write_text(yaml.safe_dump({
            "id": minion_id, "file_client": "local", "root_dir": str(self.dir / "salt-root"),
            "file_roots": {"base": [str(REPO / "salt"), str(extensions)]},
            "pillar_roots": {"base": [str(self.dir / "pillar")]},
            # no systemd as PID 1 here and no package installs (salt/wgmesh/defaults.yaml)
            "wgmesh_formula": {"manage_packages": False, "manage_services": False},
            "log_level_logfile": "info"}))
        subprocess.run(["ip", "netns", "add", self.netns], check=True)
        subprocess.run(["ip", "-n", self.netns, "link", "set", "lo", "up"], check=True)

    def path(self, path: str) -> Path:
        """Where the host's private copy of ``path`` lives on disk."""
        for private in PRIVATE_DIRS:
            if path == private or path.startswith(private + "/"):
                return self.dir / "root-fs" / path.lstrip("/")
        raise ValueError(path)

    def run(self, *commands, extra_path: str = "", firewalld: str = "", networkd: bool = False) -> list[str]:
        """Run shell commands in sequence inside the host; return each one's stdout.

        Every command must exit 0 unless wrapped in ``fails(...)`` (then it must not):
        a step that silently fails would leave the checks after it testing nothing.
        ``firewalld``: start a real firewalld with that backend (nftables, iptables) first, on a
        private D-Bus system bus; ``networkd``: the real systemd-networkd, with the lab's stand-in
        for the WireGuard kernel module (lab/netdev_standin.py). They stop with the host.
        """
        mounts = "\n".join(f"mount --bind {self.dir / 'root-fs' / p.lstrip('/')} {p}" for p in PRIVATE_DIRS)
        tag = uuid.uuid4().hex[:6]
        outputs = [self.dir / f"out-{tag}-{i}" for i in range(len(commands))]
        codes = [self.dir / f"rc-{tag}-{i}" for i in range(len(commands))]
        errors = [self.dir / f"err-{tag}-{i}" for i in range(len(commands))]
        steps = "\n".join(f"( {cmd} ) > {out} 2> {err}; echo $? > {rc}"
                          for cmd, out, err, rc in zip(commands, outputs, errors, codes))
        script = f"""set -u
mount -t tmpfs tmpfs /run
mkdir -p {' '.join(p for p in PRIVATE_DIRS if p.startswith('/run/'))} /run/dbus
{mounts}
export PATH={extra_path}{BIN}:$PATH WGMESH_PIDDIR={self.dir} WG_QUICK_USERSPACE_IMPLEMENTATION={FAKES / 'wireguard-go-fg'}
dbus-daemon --system --fork --nopidfile
{self._firewalld_script(firewalld) if firewalld else ''}
{self.start_networkd() if networkd else ''}
{steps}
"""
        subprocess.run(["ip", "netns", "exec", self.netns, "unshare", "--mount", "--propagation", "private",
                        "sh", "-c", script], check=True, timeout=600)
        for cmd, out, err, rc in zip(commands, outputs, errors, codes):
            code = int(rc.read_text())
            if (code != 0) != isinstance(cmd, fails):
                expected = "a failure" if isinstance(cmd, fails) else "exit 0"
                raise AssertionError(f"step {cmd!r} exited {code}, expected {expected}\n"
                                     f"stdout: {out.read_text()[-2000:]}\nstderr: {err.read_text()[-2000:]}")
        return [out.read_text() for out in outputs]

    def _firewalld_script(self, backend: str) -> str:
        conf = self.path("/etc/firewalld/firewalld.conf")
        conf.write_text(f"# written by the test: firewalld's backend\nDefaultZone=public\nFirewallBackend={backend}\n")
        log = self.dir / "firewalld.log"
        return f"""firewalld --nofork --nopid --log-target file --log-file {log} &
i=0; until firewall-cmd --state >/dev/null 2>&1; do i=$((i+1)); [ $i -lt 200 ] || exit 3; sleep 0.1; done
"""

    def start_networkd(self) -> str:
        """Shell lines starting the real systemd-networkd and the stand-in (``run(networkd=True)``
        puts them first; a test may run them as a later step); the host's D-Bus must run."""
        from lab.services import LAB_PKG, NETWORKD, NETWORKD_VIEW
        # read-only sysfs, as in a container: networkd then knows no udev will initialize the links
        return f"""mount -o remount,bind,ro /sys
mkdir -p {NETWORKD_VIEW}
{sys.executable} -I {LAB_PKG / 'netdev_standin.py'} {NETWORKD_VIEW} > {self.dir / 'netdev-standin.log'} 2>&1 &
SYSTEMD_LOG_TARGET=console unshare --mount --propagation private sh -c \
    'mount --bind {NETWORKD_VIEW} /etc/systemd/network && exec {NETWORKD}' > {self.dir / 'networkd.log'} 2>&1 &
i=0; until networkctl list >/dev/null 2>&1; do i=$((i+1)); [ $i -lt 200 ] || exit 3; sleep 0.1; done
"""

    def log(self, name: str) -> str:
        """A daemon's log: networkd, netdev-standin, firewalld."""
        path = self.dir / f"{name}.log"
        return path.read_text() if path.exists() else ""

    def salt_call(self, args: str) -> str:
        return f"salt-call -c {self.dir / 'conf'} --out=json {args}"

    def destroy(self):
        pids = subprocess.run(["ip", "netns", "pids", self.netns], capture_output=True, text=True).stdout.split()
        for pid in pids:
            subprocess.run(["kill", "-9", pid], check=False)
        subprocess.run(["ip", "netns", "del", self.netns], check=False)


@pytest.fixture
def local_host(tmp_path):
    require_root_netns()
    hosts = []

    def make(minion_id, pillar):
        host = LocalHost(tmp_path, minion_id, pillar)
        hosts.append(host)
        return host
    yield make
    for host in hosts:
        host.destroy()


def state_results(output: str) -> dict:
    """state.apply JSON -> {state id: result dict}."""
    data = json.loads(output)["local"]
    assert isinstance(data, dict), f"state.apply failed to render: {data}"
    return {value["__id__"]: value for value in data.values()}
