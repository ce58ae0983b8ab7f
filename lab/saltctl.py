"""Salt master / minions inside lab hosts (mixed into lab.Lab).

The master runs in host ``master`` (203.0.113.10), each minion in its host;
each uses its host's private /etc/salt, /var/cache/salt, /var/log/salt and
/var/run/salt.  The master runs as user ``salt``, as packaged masters (Salt 3006+) do: the
user exists only in the master host's own /etc/passwd and /etc/group (bind-mounted copies of
the machine's, in its mount namespace), and Salt itself drops privileges to it.  Binaries come from the running interpreter's bin directory
(the project's virtualenv): ``Path(sys.executable).parent / 'salt-master'``.
"""
from __future__ import annotations

import grp
import json
import pwd
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import yaml

from .probes import LabCommandError


MASTER_HOST = "master"
#: the user packaged salt-masters run as (Salt 3006+: ``user: salt`` in /etc/salt/master)
MASTER_USER = "salt"
MASTER_HOME = "/opt/saltstack/salt"   # its home in the packages (absent here: nothing reads it)


def salt_bin(name: str) -> str:
    p = Path(sys.executable).parent / name
    if not p.exists():
        raise FileNotFoundError(f"{p} not found (salt must be installed in the interpreter's venv)")
    return str(p)


def served_extensions(folder: Path, repo: Path) -> Path:
    """``folder``, made a file root holding links to ``repo``'s extension folders (``_modules``,
    ``_states``, ``_utils``, ``_runners``, ``_pillar``...): with the checkout itself as a file root,
    Salt would walk its 30,000 files (the virtualenv, the labs) for every file list, and serve them."""
    folder.mkdir(exist_ok=True)
    for extension in repo.glob("_*"):
        link = folder / extension.name
        if extension.is_dir() and not extension.name.startswith("__") and not link.is_symlink():
            link.symlink_to(extension)
    return folder


def _parse_json(text: str):
    text = text.strip()
    if not text:
        raise ValueError("empty output")
    try:
        return json.loads(text)
    except ValueError:
        pass
    # some runners print progress lines before the document: take the last
    # parseable JSON value that starts at the beginning of a line
    lines = text.splitlines()
    for i in range(len(lines)):
        if lines[i][:1] in "{[":
            try:
                return json.loads("\n".join(lines[i:]))
            except ValueError:
                continue
    raise ValueError(f"no JSON in output: {text[:500]}")


class SaltMixin:
    master_host = MASTER_HOST

    # ---------------------------------------------------------------- master
    def master_config(self, file_roots: Sequence[str], pillar_roots: Sequence[str],
                      extra_config: Mapping | None = None) -> dict:
        cfg = {
            "id": "master",
            "interface": self.plan.master_ip,
            "ipv6": False,
            "user": MASTER_USER,
            "root_dir": "/",
            "pki_dir": "/etc/salt/pki/master",
            "cachedir": "/var/cache/salt/master",
            "sock_dir": "/var/run/salt/master",
            "pidfile": "/var/run/salt/salt-master.pid",
            "log_file": "/var/log/salt/master",
            "key_logfile": "/var/log/salt/key",
            "log_level": "warning",
            "log_level_logfile": "info",
            "auto_accept": True,
            "worker_threads": 3,
            "timeout": 10,
            "file_roots": {"base": [str(p) for p in file_roots]},
            "pillar_roots": {"base": [str(p) for p in pillar_roots]},
            "enable_fqdns_grains": False,
        }
        cfg.update(dict(extra_config or {}))
        return cfg

    def start_master(self, file_roots: Sequence[str] = (), pillar_roots: Sequence[str] = (),
                     extra_config: Mapping | None = None, timeout: float = 60) -> int:
        """Write /etc/salt/master in host master, run salt-master in the
        foreground (spawned), wait until its ports and sockets are up."""
        cfg = self.master_config(file_roots, pillar_roots, extra_config)
        self.master_cfg = cfg
        self.add_master_user(cfg["user"])
        self.open_interpreter_path()
        conf = self.host_path(MASTER_HOST, "/etc/salt/master")
        conf.write_text(yaml.safe_dump(cfg, default_flow_style=False))
        pid = self.spawn(MASTER_HOST, [salt_bin("salt-master"), "-c", "/etc/salt"], "salt-master")
        deadline = time.monotonic() + timeout
        sock = self.host_path(MASTER_HOST, "/var/run/salt/master/publish_pull.ipc")
        while True:
            if self.pid(MASTER_HOST, "salt-master") is None:
                raise RuntimeError("salt-master exited:\n" + self.log(MASTER_HOST, "salt-master")[-3000:]
                                   + self._tail(MASTER_HOST, "/var/log/salt/master"))
            cp = self.exec(MASTER_HOST, ["ss", "-Hltn", "sport = :4506"], check=False)
            if cp.stdout.strip() and sock.exists():
                return pid
            if time.monotonic() > deadline:
                raise TimeoutError("salt-master not ready after %ss:\n%s" % (
                    timeout, self._tail(MASTER_HOST, "/var/log/salt/master")))
            time.sleep(0.1)

    def add_master_user(self, user: str = MASTER_USER) -> None:
        """Give the master's host ``user`` (a system user, as the packages make it) in private
        copies of /etc/passwd and /etc/group: the machine's files are never touched."""
        if user == "root" or self.exec(MASTER_HOST, ["getent", "passwd", user], check=False).returncode == 0:
            return
        taken = {u.pw_uid for u in pwd.getpwall()} | {g.gr_gid for g in grp.getgrall()}
        uid = next(i for i in range(999, 100, -1) if i not in taken)
        entries = {"passwd": f"{user}:x:{uid}:{uid}:Salt:{MASTER_HOME}:/usr/sbin/nologin",
                   "group": f"{user}:x:{uid}:"}
        for name, entry in entries.items():
            copy = self.hostdir(MASTER_HOST) / "etc" / name
            copy.write_text(Path("/etc", name).read_text() + entry + "\n")
            copy.chmod(0o644)
            self.exec(MASTER_HOST, ["mount", "--bind", str(copy), f"/etc/{name}"])

    def open_interpreter_path(self) -> None:
        """Packaged Salt brings its own Python; the lab's is the machine's, which may sit under a
        folder only root may enter (pyenv's /root/.pyenv). In the master's host that folder is
        covered by one holding only the way to the interpreter, so the master's user can run it."""
        prefix = Path(sys.base_prefix).resolve()
        blocked = next((d for d in [*reversed(prefix.parents), prefix] if not d.stat().st_mode & 0o001), None)
        if blocked is None or blocked == prefix or self.exec(
                MASTER_HOST, ["mountpoint", "-q", str(blocked)], check=False).returncode == 0:
            return
        inside = blocked / prefix.relative_to(blocked).parts[0]
        view = self.hostdir(MASTER_HOST) / "views" / str(blocked).strip("/").replace("/", "_")
        (view / inside.name).mkdir(parents=True, exist_ok=True)
        view.chmod(0o755)
        self.exec(MASTER_HOST, ["mount", "--bind", str(inside), str(view / inside.name)])
        self.exec(MASTER_HOST, ["mount", "--rbind", str(view), str(blocked)])

    def as_master_user(self, cmd: Sequence[str]) -> list[str]:
        """``cmd`` run as the master's user (in host master), e.g. an admin's ``sudo -u salt``."""
        user = getattr(self, "master_cfg", {}).get("user", MASTER_USER)
        # git dies on a HOME it may not read (the lab's is /root)
        return ["setpriv", f"--reuid={user}", f"--regid={user}", "--init-groups",
                "env", f"HOME={MASTER_HOME}", *cmd]

    def _tail(self, host: str, path: str, n: int = 3000) -> str:
        try:
            return self.host_path(host, path).read_text(errors="replace")[-n:]
        except OSError:
            return ""

    # ---------------------------------------------------------------- minions
    def minion_config(self, host: str, minion_id: str | None = None,
                      extra_config: Mapping | None = None) -> dict:
        cfg = {
            "id": minion_id or host,
            "master": self.plan.master_ip,
            "ipv6": False,
            "user": "root",
            "root_dir": "/",
            "pki_dir": "/etc/salt/pki/minion",
            "cachedir": "/var/cache/salt/minion",
            "sock_dir": "/var/run/salt/minion",
            "pidfile": "/var/run/salt/salt-minion.pid",
            "log_file": "/var/log/salt/minion",
            "log_level": "warning",
            "log_level_logfile": "info",
            "acceptance_wait_time": 1,
            "acceptance_wait_time_max": 2,
            "random_reauth_delay": 0,
            "recon_default": 200,
            "recon_max": 2000,
            "master_tries": -1,
            "auth_timeout": 10,
            "enable_fqdns_grains": False,
            "enable_gpu_grains": False,
            "grains": {"lab_host": host},
            # the lab's hosts are namespaces: no systemd as PID 1, no package installs
            "wgmesh_formula": {"manage_packages": False, "manage_services": False},
        }
        cfg.update(dict(extra_config or {}))
        return cfg

    def start_minion(self, host: str, minion_id: str | None = None,
                     extra_config: Mapping | None = None, env: Mapping[str, str] | None = None,
                     wait: bool = True, timeout: float = 90) -> str:
        """Run salt-minion in host (pointing at 203.0.113.10).  Returns the id."""
        cfg = self.minion_config(host, minion_id, extra_config)
        conf = self.host_path(host, "/etc/salt/minion")
        conf.write_text(yaml.safe_dump(cfg, default_flow_style=False))
        self.host_path(host, "/etc/salt/minion_id").write_text(cfg["id"])
        self.spawn(host, [salt_bin("salt-minion"), "-c", "/etc/salt"], "salt-minion", env=env)
        self.state.setdefault("minions", {})[cfg["id"]] = host
        self._save()
        if wait:
            self.wait_minions([cfg["id"]], timeout=timeout)
        return cfg["id"]

    def start_minions(self, hosts: Iterable[str], timeout: float = 120,
                      extra_config: Mapping | None = None,
                      env: Mapping[str, str] | None = None) -> list[str]:
        ids = [self.start_minion(h, extra_config=extra_config, env=env, wait=False)
               for h in hosts]
        self.wait_minions(ids, timeout=timeout)
        return ids

    def stop_minion(self, host: str) -> None:
        self.stop(host, "salt-minion", grace=1.0)

    def stop_master(self) -> None:
        self.stop(MASTER_HOST, "salt-master", grace=1.0)

    def stop_salt(self) -> None:
        """Stop the master and every minion at once (SIGTERM, SIGKILL after 1 s;
        salt-minion takes ~8 s to stop cleanly)."""
        keys = [k for k in self.state.get("pids", {})
                if k.endswith(":salt-minion") or k.endswith(":salt-master")]
        self.stop_many(keys, grace=1.0)

    def wait_minions(self, ids: Iterable[str], timeout: float = 90) -> None:
        """Bounded wait until every id answers test.ping (accepting keys if
        the master does not auto-accept)."""
        pending = set(ids)
        deadline = time.monotonic() + timeout
        auto = getattr(self, "master_cfg", {}).get("auto_accept", True)
        accepted_dir = self.host_path(MASTER_HOST, "/etc/salt/pki/master/minions")
        while pending:
            if not auto:
                pend_dir = self.host_path(MASTER_HOST, "/etc/salt/pki/master/minions_pre")
                for mid in pending:
                    if (pend_dir / mid).exists():
                        self.exec(MASTER_HOST, [salt_bin("salt-key"), "-c", "/etc/salt",
                                                "-y", "-a", mid], check=False)
            ready = [m for m in pending if (accepted_dir / m).exists()]
            if ready:
                try:
                    res = self.salt(["-L", ",".join(sorted(ready)), "test.ping"], timeout=5)
                except (subprocess.SubprocessError, ValueError):
                    res = {}
                if isinstance(res, dict):
                    pending -= {m for m, v in res.items() if v is True}
            if not pending:
                return
            if time.monotonic() > deadline:
                logs = ""
                for mid in sorted(pending):
                    host = self.state.get("minions", {}).get(mid, mid)
                    if host in self.plan.hosts:
                        logs += f"\n--- {host} minion log ---\n" + self._tail(
                            host, "/var/log/salt/minion", 1500)
                raise TimeoutError(f"minions not responding after {timeout}s: "
                                   f"{sorted(pending)}{logs}")
            time.sleep(0.5)

    # ---------------------------------------------------------------- CLIs
    def salt_raw(self, args: Sequence[str], timeout: float | None = None, bin: str = "salt",
                 json_out: bool = True):
        cmd = [salt_bin(bin), "-c", "/etc/salt"]
        if json_out:
            cmd += ["--out=json"]
            if bin == "salt":
                cmd += ["--static"]
        if timeout is not None:
            cmd += ["-t", str(int(timeout))]
        cmd += [str(a) for a in args]
        return self.exec(MASTER_HOST, cmd, check=False,
                         timeout=(timeout or 60) + 120)

    def salt(self, args: Sequence[str], timeout: float | None = None):
        """`salt --out=json --static ARGS` in host master -> parsed JSON."""
        cp = self.salt_raw(args, timeout=timeout)
        return self._json_or_raise(cp)

    def salt_run(self, args: Sequence[str], timeout: float | None = None):
        """`salt-run --out=json ARGS` in host master -> parsed JSON."""
        cp = self.salt_raw(args, timeout=timeout, bin="salt-run")
        return self._json_or_raise(cp)

    def salt_call(self, host: str, args: Sequence[str], timeout: float = 300,
                  local: bool = False):
        """`salt-call --out=json ARGS` in a minion host -> parsed JSON."""
        cmd = [salt_bin("salt-call"), "-c", "/etc/salt", "--out=json"]
        if local:
            cmd.append("--local")
        cp = self.exec(host, cmd + [str(a) for a in args], check=False, timeout=timeout)
        return self._json_or_raise(cp, host)

    def _json_or_raise(self, cp, host: str = MASTER_HOST):
        try:
            return _parse_json(cp.stdout)
        except ValueError:
            raise LabCommandError(host, cp.returncode, cp.args, cp.stdout, cp.stderr) from None
