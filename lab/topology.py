"""The article's topology in Linux namespaces.

Every simulated host gets its own network namespace (``ip netns``), its own
persistent mount namespace and its own UTS namespace (hostname).  Inside the
mount namespace the lab bind-mounts per-host directories from
``<workdir>/hosts/<host>/`` over the paths the product writes to
(``/etc/systemd/network``, ``/etc/wireguard``, ``/run/wireguard``,
``/etc/salt`` ...), so two hosts can each run wireguard-go for ``wg0`` with
their own ``/run/wireguard/wg0.sock``.  All segments are bridges inside one
extra "switch" namespace; nothing is ever added to the root network namespace.

Everything created is recorded in ``<workdir>/state.json`` (and a copy in
``/run/wgmesh-lab/<lab_id>/state.json``) *before* it is created, so
``down()`` works after a partial ``up()`` and from another process.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from . import plan
from .probes import LabCommandError, LabError, ProbesMixin
from .services import ServicesMixin
from .saltctl import SaltMixin

REPO = Path(__file__).resolve().parent.parent
LAB_PKG = Path(__file__).resolve().parent
WRAPPER = LAB_PKG / "bin" / "wireguard-go-fg"
RUN_ROOT = Path("/run/wgmesh-lab")
NETNS_PREFIX = "wgl-"
SWITCH = "sw"
OFFICE_IF = "eth1"     # a laptop's link into an office LAN (join_office)

#: directories each host gets privately (bind-mounted from <workdir>/hosts/<h>)
BIND_DIRS: tuple[str, ...] = (
    "/etc/systemd/network",
    "/etc/sysctl.d",
    "/etc/firewalld",
    "/etc/wgmesh",        # the iptables backend's boot rules
    "/etc/systemd/system",  # and their unit
    "/etc/wireguard",
    "/etc/iptables",
    "/etc/salt",
    "/srv",               # Salt's default file/pillar roots, the master's pillar repository
    "/var/cache/salt",
    "/var/log/salt",
    "/run/salt",          # == /var/run/salt on Debian (/var/run -> /run)
    "/run/wireguard",     # wireguard-go control sockets
    "/run/dbus",          # the host's own system bus (lab.services)
    "/run/firewalld",
    "/run/systemd",       # systemd-networkd's state (netif)
)
#: files each host gets privately (only if the file exists on the machine)
BIND_FILES: tuple[str, ...] = ("/etc/hosts", "/etc/resolv.conf", "/etc/hostname",
                               "/etc/machine-id")

_ID_RE = re.compile(r"^[a-z0-9]{1,10}$")


# --------------------------------------------------------------------------
# process helpers

def _starttime(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            data = fh.read()
    except OSError:
        return None
    try:
        return int(data[data.rindex(b")") + 2:].split()[19])
    except (ValueError, IndexError):
        return None


def _alive(pid: int, start: int | None = None) -> bool:
    st = _starttime(pid)
    if st is None:
        return False
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            data = fh.read()
        if data[data.rindex(b")") + 2:].split()[0] == b"Z":
            return False
    except OSError:
        return False
    return start is None or st == start


def _kill_all(pids: Iterable[int], grace: float = 5.0) -> list[int]:
    """SIGTERM, wait up to grace seconds, SIGKILL the rest.  Returns survivors."""
    me = os.getpid()
    pids = {p for p in pids if p != me and p > 1}
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 3.0)):
        for p in list(pids):
            try:
                os.kill(p, sig)
            except ProcessLookupError:
                pids.discard(p)
        deadline = time.monotonic() + wait
        while pids and time.monotonic() < deadline:
            for p in list(pids):
                try:  # reap our own children
                    os.waitpid(p, os.WNOHANG)
                except ChildProcessError:
                    pass
                if not _alive(p):
                    pids.discard(p)
            if pids:
                time.sleep(0.05)
        if not pids:
            break
    return sorted(pids)


def _process_group(pgid: int) -> list[int]:
    """Every live process in process group ``pgid`` (a spawned process and what it forked)."""
    members = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.getpgid(int(entry)) == pgid:
                    members.append(int(entry))
            except (ProcessLookupError, PermissionError):
                pass
    return members


def _ns_id(path: str | Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def _pids_in_namespaces(net_files: Iterable[str], mnt_files: Iterable[str]) -> set[int]:
    """Every process whose net or mount namespace is one of the given ns files."""
    net_ids = {i for i in map(_ns_id, net_files) if i}
    mnt_ids = {i for i in map(_ns_id, mnt_files) if i}
    out = set()
    if not net_ids and not mnt_ids:
        return out
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        if (_ns_id(f"/proc/{pid}/ns/net") in net_ids
                or _ns_id(f"/proc/{pid}/ns/mnt") in mnt_ids):
            out.add(pid)
    return out


def _mountpoints() -> list[str]:
    out = []
    with open("/proc/self/mountinfo") as fh:
        for line in fh:
            out.append(line.split()[4].encode().decode("unicode_escape"))
    return out


def _is_mountpoint(path: str | os.PathLike) -> bool:
    """Like os.path.ismount, but also true for same-filesystem bind mounts."""
    return os.path.abspath(path) in _mountpoints()


def _run(cmd: Sequence[str], check=True, input=None, timeout=60) -> subprocess.CompletedProcess:
    cp = subprocess.run(list(cmd), capture_output=True, text=True, input=input, timeout=timeout)
    if check and cp.returncode != 0:
        raise LabCommandError("root", cp.returncode, list(cmd), cp.stdout, cp.stderr)
    return cp


def _umount(path: str) -> None:
    if subprocess.run(["umount", path], capture_output=True).returncode != 0:
        subprocess.run(["umount", "-l", path], capture_output=True)


def _venv_bin() -> Path:
    return Path(sys.executable).parent


# --------------------------------------------------------------------------

class Lab(SaltMixin, ServicesMixin, ProbesMixin):
    """The article's network, in namespaces.  See lab/README.md."""

    def __init__(self, lab_id: str | None = None, workdir: str | os.PathLike | None = None,
                 extra_bind_dirs: Sequence[str] = (), path_prepend: Sequence[str] = (),
                 address_plan: plan.AddressPlan | None = None):
        lab_id = lab_id or ("t" + secrets.token_hex(3))
        if not _ID_RE.match(lab_id):
            raise ValueError(f"lab_id must match {_ID_RE.pattern}: {lab_id!r}")
        self.lab_id = lab_id
        self.workdir = Path(workdir or REPO / ".lab" / lab_id).resolve()
        self.statedir = RUN_ROOT / lab_id
        self.bind_dirs = tuple(BIND_DIRS) + tuple(extra_bind_dirs)
        #: directories put first on PATH of every host command (e.g. fakes)
        self.path_prepend = [str(p) for p in path_prepend]
        self._procs: dict[int, subprocess.Popen] = {}
        self._lock = threading.RLock()
        self.state = self._load_state() or self._fresh_state()
        #: the network laid out (lab.plan): given, else the one this lab was built with, else the article's
        recorded = self.state.get("plan")
        self.plan = address_plan or (plan.AddressPlan.from_dict(recorded) if recorded else plan.article())
        for d in self.state.get("bind_dirs", []):   # a lab built by another process
            if d not in self.bind_dirs:
                self.bind_dirs += (d,)

    # ------------------------------------------------------------ state
    @property
    def state_file(self) -> Path:
        return self.workdir / "state.json"

    def _fresh_state(self) -> dict:
        return {"lab_id": self.lab_id, "workdir": str(self.workdir),
                "statedir": str(self.statedir), "status": "new",
                "owner_pid": os.getpid(), "owner_start": _starttime(os.getpid()),
                "persistent": False, "netns": [], "ns_files": [], "root_mounts": [],
                "pids": {}, "links": [], "bind_dirs": list(self.bind_dirs),
                "plan": self.plan.to_dict() if hasattr(self, "plan") else None}

    def _load_state(self) -> dict | None:
        for f in (self.state_file, self.statedir / "state.json"):
            try:
                st = json.loads(f.read_text())
            except (OSError, ValueError):
                continue
            if st.get("lab_id") == self.lab_id:
                return st
        return None

    def _save(self) -> None:
        with self._lock:
            data = json.dumps(self.state, indent=1, sort_keys=True)
            for f in (self.state_file, self.statedir / "state.json"):
                if not f.parent.is_dir():
                    continue
                tmp = f.with_suffix(".tmp")
                tmp.write_text(data)
                tmp.replace(f)

    def _record(self, key: str, value) -> None:
        with self._lock:
            if value not in self.state[key]:
                self.state[key].append(value)
            self._save()

    # ------------------------------------------------------------ names
    @property
    def hosts(self) -> tuple[str, ...]:
        return tuple(self.plan.hosts)

    def netns(self, host: str) -> str:
        return f"{NETNS_PREFIX}{self.lab_id}-{host}"

    def _check_host(self, host: str) -> None:
        if host not in self.plan.hosts:
            raise ValueError(f"unknown host {host!r}; hosts: {', '.join(self.plan.hosts)}")

    def hostdir(self, host: str) -> Path:
        return self.workdir / "hosts" / host

    def _mnt_file(self, host: str) -> Path:
        return self.statedir / "mnt" / f"{host}.mnt"

    def _uts_file(self, host: str) -> Path:
        return self.statedir / "mnt" / f"{host}.uts"

    @property
    def logdir(self) -> Path:
        return self.workdir / "logs"

    def host_path(self, host: str, path: str | os.PathLike) -> Path:
        """On-disk location of a host-private path (e.g. ``/etc/wireguard/wg0.conf``)."""
        self._check_host(host)
        p = os.path.normpath(str(path))
        if p == "/var/run" or p.startswith("/var/run/"):
            p = p[len("/var"):]
        for d in self.bind_dirs + BIND_FILES:
            d = os.path.normpath(d)
            if d.startswith("/var/run/"):
                d = d[len("/var"):]
            if p == d or p.startswith(d + "/"):
                return self.hostdir(host) / p.lstrip("/")
        raise ValueError(f"{path} is not host-private in the lab (private: {', '.join(self.bind_dirs)})")

    # ------------------------------------------------------------ env / exec
    def host_env(self, host: str, env: Mapping[str, str] | None = None) -> dict[str, str]:
        e = {
            "PATH": ":".join(self.path_prepend + [
                str(_venv_bin()), "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]),
            "HOME": "/root", "USER": "root", "LOGNAME": "root", "SHELL": "/bin/bash",
            "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "TERM": os.environ.get("TERM", "dumb"),
            "LAB_ID": self.lab_id, "LAB_HOST": host,
            "LAB_PIDDIR": str(self.hostdir(host) / "pids"),
            "LAB_LOGDIR": str(self.logdir),
            "WG_QUICK_USERSPACE_IMPLEMENTATION": str(WRAPPER),
            "WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD": "1",
            "PYTHONDONTWRITEBYTECODE": "1",
        }
        if env:
            e.update(env)
        return e

    def prefix(self, host: str) -> list[str]:
        """argv prefix that runs a command inside host's namespaces."""
        self._check_host(host)
        return ["nsenter", f"--net=/run/netns/{self.netns(host)}",
                f"--mount={self._mnt_file(host)}", f"--uts={self._uts_file(host)}",
                "--wd=/", "--"]

    def exec(self, host: str, cmd: Sequence[str], check: bool = True, timeout: float = 60,
             env: Mapping[str, str] | None = None, input: str | None = None
             ) -> subprocess.CompletedProcess:
        """Run cmd in host's namespaces, capture text output."""
        cmd = [str(c) for c in cmd]
        try:
            cp = subprocess.run(self.prefix(host) + cmd, capture_output=True, text=True,
                                input=input, timeout=timeout, env=self.host_env(host, env))
        except subprocess.TimeoutExpired as exc:
            raise LabCommandError(host, -1, cmd, exc.stdout, (exc.stderr or "") +
                                  f"\n(timeout after {timeout}s)") from None
        if check and cp.returncode != 0:
            raise LabCommandError(host, cp.returncode, cmd, cp.stdout, cp.stderr)
        return cp

    def sh(self, host: str, script: str, **kw) -> subprocess.CompletedProcess:
        return self.exec(host, ["sh", "-ec", script], **kw)

    def spawn(self, host: str, cmd: Sequence[str], name: str,
              env: Mapping[str, str] | None = None) -> int:
        """Start a long-running process in host; output to logs/<host>-<name>.log."""
        key = f"{host}:{name}"
        with self._lock:
            old = self.state["pids"].get(key)
            if old and _alive(old["pid"], old.get("start")):
                raise LabError(f"{key} already running as pid {old['pid']}")
            self.logdir.mkdir(parents=True, exist_ok=True)
            log = self.logdir / f"{host}-{name}.log"
            with open(log, "ab") as fh:
                p = subprocess.Popen(self.prefix(host) + [str(c) for c in cmd],
                                     stdin=subprocess.DEVNULL, stdout=fh, stderr=subprocess.STDOUT,
                                     env=self.host_env(host, env), start_new_session=True)
            self._procs[p.pid] = p
            self.state["pids"][key] = {"pid": p.pid, "start": _starttime(p.pid),
                                       "host": host, "cmd": [str(c) for c in cmd],
                                       "log": str(log)}
            self._save()
            return p.pid

    def pid(self, host: str, name: str) -> int | None:
        rec = self.state["pids"].get(f"{host}:{name}")
        if rec and _alive(rec["pid"], rec.get("start")):
            return rec["pid"]
        return None

    def stop(self, host: str, name: str, grace: float = 3.0) -> None:
        """Stop a spawned process (SIGTERM, SIGKILL after grace seconds)."""
        self.stop_many([f"{host}:{name}"], grace)

    def stop_many(self, keys: Iterable[str], grace: float = 3.0) -> None:
        """Stop several spawned processes ("host:name") in parallel."""
        with self._lock:
            recs = [r for r in (self.state["pids"].pop(k, None) for k in keys) if r]
            self._save()
        live = [r["pid"] for r in recs if _alive(r["pid"], r.get("start"))]
        # spawn() starts a new session: its group holds the process and what it forked
        # (salt-minion forks workers; killing only the parent would leave them serving)
        _kill_all(live + [member for pid in live for member in _process_group(pid)], grace)
        for r in recs:
            p = self._procs.pop(r["pid"], None)
            if p:
                p.poll()

    def log(self, host: str, name: str) -> str:
        try:
            return (self.logdir / f"{host}-{name}.log").read_text(errors="replace")
        except OSError:
            return ""

    # ------------------------------------------------------------ up
    def is_up(self) -> bool:
        return (self.state.get("status") == "up"
                and all(os.path.exists(f"/run/netns/{n}") for n in self.state["netns"])
                and all(_is_mountpoint(f) for f in self.state["ns_files"]))

    def up(self) -> "Lab":
        """Build the topology (no salt, no WireGuard).  Idempotent-ish: an intact
        lab is left alone; leftovers of a partial up() are torn down first."""
        if self.is_up():
            return self
        if self.state.get("status") not in (None, "new", "down"):
            self.down()
        self.state = self._fresh_state()
        for tool in ("ip", "nsenter", "unshare", "mount", "umount"):
            if not shutil.which(tool):
                raise LabError(f"{tool} not found")
        t0 = time.monotonic()
        self.workdir.mkdir(parents=True, exist_ok=True)
        # a new lab starts from nothing: a previous run's keys, gate repository or pinned host keys
        # in the same workdir would make it another network
        for stale in (self.workdir / "hosts", self.logdir):
            shutil.rmtree(stale, ignore_errors=True)
        self.logdir.mkdir(exist_ok=True)
        self.state["status"] = "starting"
        self._save()
        # private bind mount that holds the persistent mount/uts ns files
        mntdir = self.statedir / "mnt"
        mntdir.mkdir(parents=True, exist_ok=True)
        self._save()  # now also in statedir (found by cleanup_stale)
        self._record("root_mounts", str(mntdir))
        if not _is_mountpoint(mntdir):
            _run(["mount", "--bind", str(mntdir), str(mntdir)])
        _run(["mount", "--make-private", str(mntdir)])

        for d in self.bind_dirs:  # bind targets must exist on the machine
            os.makedirs(os.path.realpath(d), exist_ok=True)

        self._make_switch()
        for host in self.plan.hosts:
            self._make_host(host)
        self._wire()
        for host in self.plan.hosts:
            self._configure_host(host)
        self.state["status"] = "up"
        self.state["up_seconds"] = round(time.monotonic() - t0, 2)
        self._save()
        return self

    def _add_netns(self, name: str) -> None:
        self._record("netns", name)
        if not os.path.exists(f"/run/netns/{name}"):
            _run(["ip", "netns", "add", name])

    def _make_switch(self) -> None:
        ns = self.netns(SWITCH)
        self._add_netns(ns)
        cmds = ["link set lo up"]
        for br, _prefix in self.plan.segments.values():
            cmds += [f"link add {br} type bridge stp_state 0 forward_delay 0",
                     f"link set {br} up"]
        _run(["ip", "netns", "exec", ns, "sh", "-c",
              "sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1;"
              "sysctl -qw net.bridge.bridge-nf-call-iptables=0 2>/dev/null; true"])
        _run(["ip", "-n", ns, "-batch", "-"], input="\n".join(cmds) + "\n")

    def _host_dirs(self, host: str) -> None:
        hd = self.hostdir(host)
        for d in self.bind_dirs:
            (hd / d.lstrip("/")).mkdir(parents=True, exist_ok=True)
        (hd / "pids").mkdir(parents=True, exist_ok=True)
        (hd / "etc").mkdir(parents=True, exist_ok=True)
        (hd / "etc/hosts").write_text(self.plan.etc_hosts(host))
        (hd / "etc/resolv.conf").write_text("# wgmesh lab: no DNS\noptions timeout:1 attempts:1\n")
        (hd / "etc/hostname").write_text(host + "\n")
        (hd / "etc/machine-id").write_text(secrets.token_hex(16) + "\n")
        os.chmod(hd / "etc/wireguard", 0o700)

    def _make_host(self, host: str) -> None:
        ns = self.netns(host)
        self._add_netns(ns)
        self._host_dirs(host)
        hd = self.hostdir(host)
        mnt, uts = self._mnt_file(host), self._uts_file(host)
        for f in (mnt, uts):
            self._record("ns_files", str(f))
            f.touch()
        if _is_mountpoint(mnt):
            return
        lines = [
            # drop copies of other namespaces' nsfs mounts (they would pin them)
            "umount -l /run/netns 2>/dev/null || true",
            "for m in $(awk '$5 ~ \"^/run/wgmesh-lab/\" {print $5}' /proc/self/mountinfo"
            " | sort -r); do umount -l \"$m\" 2>/dev/null || true; done",
        ]
        for d in self.bind_dirs:
            lines.append(f"mount --bind {shlex.quote(str(hd / d.lstrip('/')))} "
                         f"{shlex.quote(os.path.realpath(d))}")
        for f in BIND_FILES:
            if os.path.exists(f):
                lines.append(f"mount --bind {shlex.quote(str(hd / f.lstrip('/')))} "
                             f"{shlex.quote(os.path.realpath(f))}")
        lines += [
            # /sys/class/net shows this host's links; read-only, as in a container: systemd-networkd
            # then knows no udev will initialize them
            "mount -t sysfs -o ro sysfs /sys",
            f"hostname {host}",
            "sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1",
            "sysctl -qw net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.default.arp_ignore=1",
            "sysctl -qw net.ipv4.conf.all.arp_announce=2 net.ipv4.conf.default.arp_announce=2",
            "ip link set lo up",
        ]
        _run(["nsenter", f"--net=/run/netns/{ns}", "unshare", f"--mount={mnt}",
              f"--uts={uts}", "--propagation", "private", "sh", "-ec", "\n".join(lines)])

    def _veth_name(self, host: str, ifname: str) -> str:
        name = f"{host}-{ifname}"
        if len(name) > 15:   # IFNAMSIZ: a long host or interface name gets a stable short one
            name = "v" + hashlib.sha1(name.encode()).hexdigest()[:12]
        return name

    def _wire(self) -> None:
        sw = self.netns(SWITCH)
        cmds = []
        for h in self.plan.hosts.values():
            for i in h.ifaces:
                v = self._veth_name(h.name, i.name)
                br = self.plan.segments[i.segment][0]
                cmds += [f"link add {v} type veth peer name {i.name} netns {self.netns(h.name)}",
                         f"link set {v} master {br} up"]
        _run(["ip", "-n", sw, "-batch", "-"], input="\n".join(cmds) + "\n")

    def _configure_host(self, host: str) -> None:
        h = self.plan.hosts[host]
        lines = []
        for i in h.ifaces:
            lines += [f"ip addr add {i.address} dev {i.name}", f"ip link set {i.name} up"]
        lines += [f"ip addr add {alias} dev {h.ifaces[0].name}" for alias in h.aliases]
        if h.gateway:
            lines.append(f"ip route add default via {h.gateway}")
        elif h.default_dev:
            lines.append(f"ip route add default dev {h.default_dev}")
        for r in h.extra_routes:
            lines.append(f"ip route add {r}")
        if h.forwarding:
            lines.append("sysctl -qw net.ipv4.ip_forward=1")
        if h.router_nat:
            wan, lan = h.router_nat
            lan_if = next(i.name for i in h.ifaces if i.name != wan)
            lines += [
                f"iptables -t nat -A POSTROUTING -s {lan} -o {wan} -j MASQUERADE",
                # a home/office NAT router: nothing from the WAN side gets in
                # unless it belongs to a connection opened from inside
                f"iptables -A FORWARD -i {wan} -o {lan_if} -m conntrack "
                "--ctstate ESTABLISHED,RELATED -j ACCEPT",
                f"iptables -A FORWARD -i {wan} -o {lan_if} -j DROP",
            ]
        self.sh(host, "\n".join(lines))

    # ------------------------------------------------------------ extra links
    def add_link(self, host: str, segment: str, ifname: str, address: str,
                 default_via: str | None = None) -> None:
        """Plug host into a segment with a new interface (e.g. e into LAN2)."""
        self._check_host(host)
        br = self.plan.segments[segment][0]
        v = self._veth_name(host, ifname)
        self._record("links", {"host": host, "ifname": ifname, "segment": segment,
                               "address": address, "switch_if": v})
        _run(["ip", "-n", self.netns(SWITCH), "-batch", "-"], input=(
            f"link add {v} type veth peer name {ifname} netns {self.netns(host)}\n"
            f"link set {v} master {br} up\n"))
        script = f"ip addr add {address} dev {ifname}\nip link set {ifname} up\n"
        if default_via:
            script += f"ip route replace default via {default_via}\n"
        self.sh(host, script)

    def remove_link(self, host: str, ifname: str) -> None:
        v = self._veth_name(host, ifname)
        _run(["ip", "-n", self.netns(SWITCH), "link", "del", v], check=False)
        with self._lock:
            self.state["links"] = [l for l in self.state["links"]
                                   if not (l["host"] == host and l["ifname"] == ifname)]
            self._save()

    def join_office(self, host: str = "e", gateway: str = "c") -> None:
        """A laptop in a gateway's office (the article's route-conflict case: e in the LAN2
        office, DHCP gave it 192.168.200.27/24) on a second link, eth1.  Its default route
        stays at home, so its tunnel to the hub keeps working."""
        segment = self.plan.lans[gateway][0]
        self.add_link(host, segment, OFFICE_IF, self.plan.office_address(gateway))

    def leave_office(self, host: str = "e") -> None:
        self.remove_link(host, OFFICE_IF)

    # ------------------------------------------------------------ down
    def down(self, grace: float = 1.0) -> list[str]:
        """Tear everything down using the recorded state.  Returns problems
        (empty list = clean).  Safe to call twice, after a partial up(), or
        from another process.  Processes get SIGTERM, then SIGKILL after grace
        seconds (salt-minion needs ~8 s to stop cleanly; nobody needs that here)."""
        st = self._load_state() or self.state
        # merge in-memory records (they may be newer than the file)
        for key in ("netns", "ns_files", "root_mounts", "links"):
            for v in self.state.get(key, []):
                if v not in st.setdefault(key, []):
                    st[key].append(v)
        st.setdefault("pids", {}).update(self.state.get("pids", {}))
        self.state = st
        problems = []
        netns_files = [f"/run/netns/{n}" for n in st.get("netns", [])]
        mnt_files = [f for f in st.get("ns_files", []) if f.endswith(".mnt")]
        # 1. processes: recorded ones + anything living in our namespaces
        pids = {r["pid"] for r in st.get("pids", {}).values()
                if _alive(r["pid"], r.get("start"))}
        for piddir in (self.workdir / "hosts").glob("*/pids"):
            for pf in piddir.glob("*.pid"):
                try:
                    p = int(pf.read_text().strip())
                except (OSError, ValueError):
                    continue
                if _ids_match(p, netns_files, mnt_files):
                    pids.add(p)
        for _ in range(3):
            pids |= _pids_in_namespaces(netns_files, mnt_files)
            if not pids:
                break
            survivors = _kill_all(pids, grace)
            if survivors:
                problems.append(f"could not kill {survivors}")
            pids = set()
        for p in list(self._procs.values()):
            p.poll()
        self._procs.clear()
        st["pids"] = {}
        # 2. persistent mount/uts namespaces
        for f in st.get("ns_files", []):
            if _is_mountpoint(f):
                _umount(f)
        # 3. network namespaces (veths and bridges go with them)
        for n in st.get("netns", []):
            if os.path.exists(f"/run/netns/{n}"):
                cp = _run(["ip", "netns", "del", n], check=False)
                if cp.returncode != 0:
                    problems.append(f"ip netns del {n}: {cp.stderr.strip()}")
        # 4. the private bind mount + state dir
        for m in reversed(st.get("root_mounts", [])):
            while _is_mountpoint(m):
                before = _mountpoints().count(m)
                _umount(m)
                if _mountpoints().count(m) >= before:
                    problems.append(f"could not unmount {m}")
                    break
        statedir = Path(st.get("statedir", self.statedir))
        if statedir.parent == RUN_ROOT and statedir.is_dir():
            shutil.rmtree(statedir, ignore_errors=True)
        st.update(netns=[], ns_files=[], root_mounts=[], links=[], status="down")
        if self.workdir.is_dir():
            self._save()
        leftovers = self.leftovers()
        problems += leftovers
        return problems

    def leftovers(self) -> list[str]:
        """Anything of this lab still present (netns, mounts, processes)."""
        out = []
        pre = f"{NETNS_PREFIX}{self.lab_id}-"
        if os.path.isdir("/run/netns"):
            out += [f"netns {n}" for n in os.listdir("/run/netns") if n.startswith(pre)]
        for m in _mountpoints():
            if m.startswith(str(self.statedir)) or m.startswith(f"/run/netns/{pre}"):
                out.append(f"mount {m}")
        return out

    # ------------------------------------------------------------ context
    def __enter__(self) -> "Lab":
        try:
            self.up()
        except BaseException:
            self.down()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.down()

    def __repr__(self):
        return f"<Lab {self.lab_id} {self.state.get('status')} {self.workdir}>"

    # ------------------------------------------------------------ WireGuard
    def genkey(self, host: str) -> tuple[str, str]:
        """(private, public) generated inside host."""
        priv = self.exec(host, ["wg", "genkey"]).stdout.strip()
        pub = self.exec(host, ["wg", "pubkey"], input=priv + "\n").stdout.strip()
        return priv, pub

    def wg_quick(self, host: str, action: str, conf_text: str | None = None,
                 ifname: str = "wg0", check: bool = True) -> subprocess.CompletedProcess:
        """Write /etc/wireguard/<ifname>.conf (0600) in host if given, run wg-quick."""
        if action not in ("up", "down", "strip", "save"):
            raise ValueError(action)
        if conf_text is not None:
            p = self.host_path(host, f"/etc/wireguard/{ifname}.conf")
            p.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(conf_text)
            os.chmod(p, 0o600)
        return self.exec(host, ["wg-quick", action, ifname], check=check, timeout=60)

    def wg_show(self, host: str, ifname: str = "wg0", *what: str) -> str:
        return self.exec(host, ["wg", "show", ifname, *what]).stdout


def _ids_match(pid: int, net_files, mnt_files) -> bool:
    net = {i for i in map(_ns_id, net_files) if i}
    mnt = {i for i in map(_ns_id, mnt_files) if i}
    return (_ns_id(f"/proc/{pid}/ns/net") in net or _ns_id(f"/proc/{pid}/ns/mnt") in mnt)
