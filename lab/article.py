"""The article's network, live, converged by wgmesh through a real salt-master.

    python -m lab.article up [--keep] [--profile variants]   # bring it up, print the connectivity matrix
    python -m lab.article status        # peers, handshakes, matrix of a running lab
    python -m lab.article down

What `up` does, in order (each step timed):
1. the namespace topology (lab.topology): hub z, gateways a and c behind their
   routers' NAT, LAN devices b and d, routers r1 and r2, laptops e and f behind
   home NAT, a salt-master; then the real systemd-networkd and firewalld (own
   D-Bus) on the hosts whose profile has them (PROFILES: "article" runs both on
   z, a, c), and TCP echo servers;
2. e and f make their own key pairs (the private keys stay in their hosts);
3. the pillar repository: a bare git repo holding the example pillar
   (`pillar/`, the article's network) with the lab's differences written
   into its files (each host's tunnel and firewall backend, the hub's lab address, e's and
   f's lab public keys), with the GitOps post-receive hook installed;
4. salt-master (git_pillar on the gate's `deployed` branch, the wgmesh_secrets
   ext_pillar, the reactor) and salt-minions z, a, c, r1;
5. a `git push` of the pillar: hook -> `wgmesh/push` -> reactor ->
   `wgmesh.on_push` validates, deploys and converges every host;
6. `salt '*' state.apply wgmesh`, which must now report no changes;
7. e and f fetch their configs (`salt-run wgmesh.client_config` writes them on the master), add their
   private key with `wgmesh import-config` and run `wg-quick up`;
8. the connectivity matrix, every cell checked against the article.
"""
from __future__ import annotations

import argparse
import datetime
import json
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from wgmesh_core.jsondata import dump_json_sls
from wgmesh_core.source import TESTS_FILE, dump_sls

from .plan import ARTICLE_PILLAR, MASTER_IP, read_pillar
from .saltctl import MASTER_USER, served_extensions
from .topology import LAB_PKG, REPO, Lab

MINIONS = ("z", "a", "c", "r1")
LAPTOPS = ("e", "f")
HUB_ENDPOINT = "203.0.113.1:51820"   # stands in for the article's 39.101.166.124
SALT_API_PORT = 8000
UPSTREAM = "/srv/git/wgmesh-pillar.git"                 # the pillar repository pushed to
GATE_REPO = "/var/cache/salt/master/wgmesh/pillar.git"  # the gate's (wgmesh_gitops:repo default)
GIT_USER = ["-c", "user.name=wgmesh lab", "-c", "user.email=lab@example.invalid"]

VPN = {"z": "10.70.0.1", "a": "10.70.0.2", "c": "10.70.0.3", "e": "10.70.0.4", "f": "10.70.0.5"}
D, B = "192.168.200.244", "192.168.201.10"

#: (source, destination, expected): the article's paths, and what the hardening forbids.
EXPECTED_MATRIX = [
    ("e", D, True), ("e", B, True), ("f", D, True), ("f", B, True),
    ("e", VPN["f"], True), ("f", VPN["e"], True),      # developer <-> developer through the hub
    ("e", VPN["z"], True), ("a", VPN["z"], True), ("c", VPN["z"], True),
    ("c", VPN["a"], True),                              # c may reach LAN1, and so a itself
    ("z", D, False), ("z", B, False),           # the hub may not open connections into a LAN,
    ("z", VPN["a"], False), ("z", VPN["c"], False),     # nor to a gateway itself,
    ("a", VPN["c"], False),                             # nor a gateway not allowed into LAN2
]


def _deep_update(target: dict, changes: dict) -> None:
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _deep_update(target[key], value)
        else:
            target[key] = value


@dataclass(frozen=True)
class Profile:
    """How the lab's hub and gateways run: wgmesh's tunnel backend, and per host its firewall
    ("firewalld/nftables", "firewalld/iptables": a real firewalld on that backend; "iptables")
    and the interfaces firewalld's permanent config binds to a zone before wgmesh comes."""
    backend: str
    firewalls: dict          # minion id -> firewall
    lan_zones: dict = field(default_factory=dict)
    pillar_says: bool = False    # the pillar's own choices: nothing to write into it

    def firewalld(self) -> dict:
        """host -> firewalld backend, for the hosts that run firewalld."""
        return {host: fw.split("/")[1] for host, fw in self.firewalls.items() if fw.startswith("firewalld/")}

    @classmethod
    def of(cls, spec) -> "Profile":
        """What a pillar itself says: its backend, and firewalld (on its default nftables) or
        wgmesh's iptables chains on the hub and each gateway."""
        hosts = {spec.hub.minion: spec.hub, **spec.gateways}
        return cls(spec.backend, {minion: {"firewalld": "firewalld/nftables", "iptables": "iptables"}[
            host.firewall or spec.firewall] for minion, host in hosts.items()}, pillar_says=True)


PROFILES = {
    # The article's defaults: systemd-networkd, and firewalld (its default nftables backend) on z,
    # a and c. c's LAN interface sits in zone public, as NetworkManager binds it on RHEL; a's in
    # none, as ifupdown leaves it on Debian.
    "article": Profile("networkd", {"z": "firewalld/nftables", "a": "firewalld/nftables", "c": "firewalld/nftables"},
                       {"c": {"eth2": "public"}}),
    # The other backends: wg-quick, firewalld on iptables (a), wgmesh's own iptables chains (z, c).
    "variants": Profile("wgquick", {"z": "iptables", "a": "firewalld/iptables", "c": "iptables"}),
}


def lab_overrides(dev_public_keys: dict, profile: Profile, spec) -> dict:
    """What the lab changes in a pillar (written into its files): the hub's endpoint on the lab's
    internet, the developers' public keys (made on their laptops), and the profile's backend and
    firewalls unless they are the pillar's own."""
    endpoint = f"{HUB_ENDPOINT.split(':')[0]}:{spec.listen_port}"
    overrides = {"hub": {"endpoint": endpoint},
                 "developers": {name: {"public_key": key} for name, key in dev_public_keys.items()}}
    if not profile.pillar_says:
        firewall = {host: fw.split("/")[0] for host, fw in profile.firewalls.items()}
        overrides["backend"] = profile.backend
        overrides["hub"]["firewall"] = firewall[spec.hub.minion]
        overrides["gateways"] = {gw: {"firewall": firewall[gw]} for gw in spec.gateways}
    return {"wgmesh": overrides}


#: TCP echo servers the probes connect to: LAN hosts and the gateways themselves.
ECHO_PORT = 8080


class ArticleLab:
    """A network converged by wgmesh through a real salt-master: the article's (the repository's
    example pillar, on a profile of PROFILES), or any pillar's on its own profile (lab.twin).
    ``lab`` is laid out for that pillar (``lab.plan.derive``)."""

    def __init__(self, lab: Lab, profile: str | None = "article", pillar: Path = ARTICLE_PILLAR):
        self.lab = lab
        self.pillar = Path(pillar)
        self.spec, self.tests = read_pillar(self.pillar)
        self.profile = PROFILES[profile] if profile else Profile.of(self.spec)
        self.gitdir = lab.workdir / "git"
        self.work = self.gitdir / "work"
        # the shipped paths, in the master's own /srv and /var/cache/salt (owned by user salt)
        self.upstream = lab.host_path("master", UPSTREAM)
        self.deployed = lab.host_path("master", GATE_REPO)
        self.timings: dict[str, float] = {}

    # ------------------------------------------------------------------ steps
    def _timed(self, name, func, *args):
        start = time.monotonic()
        result = func(*args)
        self.timings[name] = round(time.monotonic() - start, 2)
        return result

    def up(self, apply_again: bool = True) -> dict:
        """Bring it up; ``apply_again``: then `state.apply` everywhere (the tests check it changes nothing)."""
        self._timed("topology", self.lab.up)
        self._timed("networkd, firewalld, echo servers", self.start_services)
        keys = self._timed("developer keys", self.make_developer_keys)
        self._timed("pillar repository", self.make_pillar_repo, keys)
        self.start_salt()
        self._timed("git push -> converged", self.push_and_wait, "the article's network")
        if apply_again:
            self.converge_result = self._timed("salt '*' state.apply wgmesh", self.apply_all)
        self._timed("laptops up", self.laptops_up)
        self._timed("first handshakes", self.wait_tunnels)
        return self.timings

    def start_services(self) -> None:
        """What runs on the hosts before wgmesh: systemd-networkd (with its stand-in for the
        WireGuard kernel module) and firewalld where the profile has them, and the echo servers
        TCP probes connect to."""
        def start(minion):
            host = self.lab.plan.minions[minion]
            if self.profile.backend == "networkd":
                self.lab.start_networkd(host)
            if minion in self.profile.firewalld():
                self.lab.start_firewalld(host, self.profile.firewalld()[minion], self.profile.lan_zones.get(minion))
        with ThreadPoolExecutor() as pool:
            list(pool.map(start, self.profile.firewalls))
        for host in self.echo_hosts():
            self.lab.spawn(host, [sys.executable, "-I", LAB_PKG / "tcp.py", "serve", ECHO_PORT], "echo")

    def echo_hosts(self) -> list:
        """The LAN hosts and the gateways: the article's probes connect to them."""
        lans = self.lab.plan.lans
        return [lans[gid][2] for gid in self.spec.gateways] + [self.lab.plan.minions[gid] for gid in self.spec.gateways]

    @property
    def minions(self) -> list:
        return list(self.lab.plan.minions)

    @property
    def laptops(self) -> dict:
        """developer -> the host of its laptop, for the developers active today."""
        today = datetime.date.today()
        return {dev: host for dev, host in self.lab.plan.laptops.items()
                if self.spec.is_active(self.spec.developers[dev], today)}

    def make_developer_keys(self) -> dict:
        """Each laptop makes its own key pair; only the public key leaves it."""
        def make(host):
            self.lab.sh(host, "umask 077; wg genkey > /etc/wireguard/private.key")
            return self.lab.exec(host, ["sh", "-c", "wg pubkey < /etc/wireguard/private.key"]).stdout.strip()
        with ThreadPoolExecutor(max_workers=8) as pool:
            laptops = self.lab.plan.laptops
            return dict(zip(laptops, pool.map(make, laptops.values())))

    def make_pillar_repo(self, dev_public_keys: dict) -> None:
        for old in (self.gitdir, self.upstream, self.deployed):    # a previous run's repositories
            shutil.rmtree(old, ignore_errors=True)
        self.gitdir.mkdir(parents=True)
        self.prepare_master_host()
        hook = self.upstream / "hooks" / "post-receive"
        hook.write_text((REPO / "reactor" / "hooks" / "post-receive").read_text())
        hook.chmod(0o755)
        # the repository is served as the master's user (git refuses a repository owned by another
        # user), so the hook and its salt-run run as that user, as on a git server run by it
        self.lab.exec("master", ["git", "clone", "-q", "--no-local", "--upload-pack", self.served_as_salt("git-upload-pack"),
                                 UPSTREAM, str(self.work)])
        self.git("config", "remote.origin.receivepack", self.served_as_salt("git-receive-pack"))
        subprocess.run(["cp", "-r", f"{self.pillar}/.", str(self.work)], check=True)
        # no intent tests: the GitOps tests change reachability push by push (test_intent_gate adds
        # them), and a twin measures what its tests predict even where the gate would refuse them
        (self.work / TESTS_FILE).unlink(missing_ok=True)
        # each entry lives in one file (the gate refuses an override from another file)
        overrides = lab_overrides(dev_public_keys, self.profile, self.spec)["wgmesh"]
        for group in ("developers", "gateways"):
            for name, changes in overrides.pop(group, {}).items():
                self.edit_sls(self.file_defining(group, name), lambda net: _deep_update(net[group][name], changes))
        self.edit_sls(self.file_defining("hub"), lambda net: _deep_update(net, overrides))

    def file_defining(self, *keys: str) -> str:
        """The SLS file of the working clone whose ``wgmesh`` value holds ``keys`` (a path)."""
        for path in sorted(self.work.rglob("*.sls")):
            found = (yaml.safe_load(path.read_text()) or {}).get("wgmesh")
            for key in keys:
                found = found.get(key) if isinstance(found, dict) else None
            if found is not None:
                return str(path.relative_to(self.work))
        raise LookupError(f"no SLS file of {self.pillar} defines wgmesh:{':'.join(keys)}")

    def edit_sls(self, relpath: str, change) -> None:
        """Let ``change`` modify the ``wgmesh`` value of a file of the working clone."""
        path = self.work / relpath
        data = yaml.safe_load(path.read_text())
        change(data["wgmesh"])
        path.write_text(dump_sls(data, "Edited by the lab (lab/article.py)."))

    def master_config(self) -> dict:
        """The shipped reactor/master.conf.example, with only the reactor SLS paths replaced, a
        single reactor worker thread, and salt-api's webhook settings for the tests that start salt-api (`start_salt_api`)."""
        text = (REPO / "reactor" / "master.conf.example").read_text()
        for shipped in (UPSTREAM, GATE_REPO, "/etc/salt/wgmesh/psk.secret"):
            assert shipped in text, f"reactor/master.conf.example no longer mentions {shipped}"
        text = text.replace("/srv/salt/reactor/", f"{REPO}/reactor/")
        # one reactor worker thread (Salt's default is 10): a gate run must not need more
        return dict(yaml.safe_load(text), worker_threads=4, reactor_worker_threads=1,
                    rest_cherrypy={"host": MASTER_IP, "port": SALT_API_PORT, "disable_ssl": True,
                                   "webhook_url": "/hook", "webhook_disable_auth": True})

    def prepare_master_host(self) -> None:
        """What README's "Master setup" asks of an admin on a packaged master (user salt): the
        pillar repository the hook serves, the gate's repository and /etc/salt/wgmesh, owned by salt."""
        self.lab.add_master_user()
        self.lab.exec("master", ["install", "-d", "-o", MASTER_USER, "-g", MASTER_USER, "-m", "0700",
                                 "/etc/salt/wgmesh", "/var/cache/salt/master/wgmesh", "/srv/git"])
        for repo in (UPSTREAM, GATE_REPO):
            self.lab.exec("master", self.lab.as_master_user(["git", "init", "-q", "--bare", "-b", "main", repo]))

    def served_as_salt(self, git_command: str) -> str:
        """A git ``--upload-pack``/``receivepack`` command run as the master's user."""
        return " ".join(self.lab.as_master_user([git_command]))

    def fetch_deployed(self) -> None:
        """Fetch the gate's ``deployed`` branch into the working clone (FETCH_HEAD)."""
        self.git("fetch", "-q", "--upload-pack", self.served_as_salt("git-upload-pack"), GATE_REPO, "deployed")

    def file_roots(self) -> list[Path]:
        """The state tree and the extension folders (the master walks its file roots every minute)."""
        return [REPO / "salt", served_extensions(self.lab.workdir / "extensions", REPO)]

    def start_salt(self) -> None:
        """The master, then the minions while the master syncs its own extension modules."""
        self._timed("salt-master", self.lab.start_master, self.file_roots(), [], self.master_config())
        with ThreadPoolExecutor(max_workers=1) as pool:
            runners = pool.submit(self.lab.salt_run, ["saltutil.sync_all"])
            self._timed("salt-minions up, synced", self.start_minions)
            runners.result()

    def start_minions(self) -> None:
        for minion, host in self.lab.plan.minions.items():
            self.lab.start_minion(host, minion, wait=False)
        self.lab.wait_minions(self.minions, timeout=120)
        self.lab.salt(["*", "saltutil.sync_all"], timeout=120)

    def start_salt_api(self, timeout: float = 60) -> None:
        """salt-api (rest_cherrypy) in the master's host, serving the push webhook."""
        self.lab.spawn("master", [str(Path(sys.executable).parent / "salt-api"), "-c", "/etc/salt"], "salt-api")
        deadline = time.monotonic() + timeout
        while not self.lab.exec("master", ["ss", "-Hltn", f"sport = :{SALT_API_PORT}"]).stdout.strip():
            if time.monotonic() > deadline:
                raise TimeoutError(f"salt-api not listening after {timeout}s:\n" + self.lab.log("master", "salt-api"))
            time.sleep(0.2)

    def git(self, *args, check=True) -> subprocess.CompletedProcess:
        """git in the working clone, run in the master's host so the hook reaches its event bus."""
        return self.lab.exec("master", ["git", *GIT_USER, "-C", str(self.work), *args], check=check, timeout=300)

    def commit(self, message: str, files: dict | None = None) -> None:
        for relpath, text in (files or {}).items():
            (self.work / relpath).write_text(text)
        self.git("add", "-A")
        self.git("commit", "-q", "-m", message)

    def developers(self) -> dict:
        return yaml.safe_load((self.work / "wgmesh" / "developers.sls").read_text())["wgmesh"]["developers"]

    def developers_file(self, developers: dict, as_json: bool = False) -> dict:
        """{path: text} of developers.sls holding ``developers`` (for ``push_and_wait``), in YAML
        or, ``as_json``, in JSON."""
        dump = dump_json_sls if as_json else dump_sls
        return {"wgmesh/developers.sls": dump({"wgmesh": {"developers": developers}})}

    def wait_event(self, tagmatch: str, timeout: float = 180, count: int = 1, until=None) -> "EventWaiter":
        return EventWaiter(self.lab, tagmatch, timeout, count, until)

    def push_and_wait(self, message: str, files: dict | None = None,
                      tag: str = "wgmesh/applied|wgmesh/gate/*") -> dict:
        """Commit, push, and wait for the gate's verdict event (applied or refused)."""
        self.commit(message, files)
        return self.push_committed(tag)

    def push_committed(self, tag: str = "wgmesh/applied|wgmesh/gate/*", waiter: "EventWaiter | None" = None) -> dict:
        """Push what is committed and wait for the gate's verdict event (``waiter``: one already
        listening for it)."""
        waiter = waiter or self.wait_event(tag)
        pushed = self.last_push = self.git("push", "origin", "main")
        try:
            return waiter.result()
        except TimeoutError as error:
            log = self.lab.exec("master", ["sh", "-c", "grep -E 'ERROR|wgmesh|reactor|Traceback' "
                                           "/var/log/salt/master | tail -n 40"], check=False).stdout
            raise TimeoutError(f"{error}\ngit push said: {pushed.stdout}{pushed.stderr}\n"
                               f"master log:\n{log}") from None

    def apply_all(self) -> dict:
        # queue=True: wait for a run the reactor or a schedule may have in flight
        return self.lab.salt(["*", "state.apply", "wgmesh", "queue=True"], timeout=300)

    def laptop_config(self, dev: str) -> str:
        """What ops sends the developer: the runner writes it 0600 on the master (never into
        its return, which Salt keeps in the job cache) and says where."""
        deadline = time.monotonic() + 60
        while True:
            written = self.lab.salt_run(["wgmesh.client_config", dev])
            if isinstance(written, dict) and "path" in written:
                return self.lab.exec("master", ["cat", written["path"]]).stdout
            # the runner refuses until it knows the hub's key (pinned when the hub's pillar was
            # first compiled, or in the mine): a lab that has just come up may not be there yet
            if time.monotonic() > deadline:
                raise RuntimeError(f"salt-run wgmesh.client_config {dev} wrote no config: {written!r}")
            time.sleep(1)

    def laptop_up(self, dev: str, host: str | None = None) -> None:
        """The developer's own steps: take the config from ops, add the private key, import it."""
        host = host or dev
        self.lab.exec(host, ["wgmesh", "import-config", "-", "--key-file", "/etc/wireguard/private.key",
                             "--out", "/etc/wireguard/wg0.conf"], input=self.laptop_config(dev))
        self.lab.exec(host, ["wg-quick", "up", "wg0"], timeout=60)

    def laptops_up(self) -> None:
        with ThreadPoolExecutor(max_workers=4) as pool:
            list(pool.map(self.laptop_up, self.laptops, self.laptops.values()))

    def wait_tunnels(self, timeout: float = 60) -> None:
        hub = str(self.spec.hub.address)
        pending = self.lab.still_unreachable([(host, hub) for host in self.laptops.values()] +
                                             [(self.lab.plan.minions[gid], hub) for gid in self.spec.gateways],
                                             timeout)
        if pending:
            raise RuntimeError(f"no tunnel after {timeout}s: {pending}")

    def matrix(self) -> list[tuple[str, str, bool, bool]]:
        """(source, destination, expected, measured) for the article's paths."""
        measured = self.lab.connectivity_matrix([(s, d) for s, d, _ in EXPECTED_MATRIX], timeout=2, count=2)
        return [(s, d, want, measured[(s, d)]) for s, d, want in EXPECTED_MATRIX]


class EventWaiter:
    """Collects, in a thread, ``count`` master events whose tag matches ``tagmatch`` (fnmatch, `|` = or),
    or with ``until`` (a predicate on one event), every matching event up to the first one it accepts."""

    def __init__(self, lab: Lab, tagmatch: str, timeout: float, count: int = 1, until=None):
        self.lab, self.timeout, self.until = lab, timeout, until
        self.count = 0 if until else count     # 0: no count limit in the listener
        self.patterns = tagmatch.split("|")
        self.events: list = []
        self._listening = False
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._listen, daemon=True)
        self._thread.start()
        if not self._ready.wait(60) or not self._listening:
            raise RuntimeError("the event listener on the master did not start")

    def _listen(self):
        script = (
            "import fnmatch, json, salt.config, salt.utils.event\n"
            "opts = salt.config.client_config('/etc/salt/master')\n"
            f"patterns, count = {self.patterns!r}, {self.count}\n"
            "with salt.utils.event.get_master_event(opts, opts['sock_dir'], listen=True) as bus:\n"
            "    bus.subscribe('')\n"
            "    print('ready', flush=True)\n"
            "    for ev in bus.iter_events(full=True, auto_reconnect=True):\n"
            "        if ev and any(fnmatch.fnmatch(ev['tag'], p) for p in patterns):\n"
            "            print(json.dumps(ev, default=str), flush=True)\n"
            "            count -= 1\n"
            "            if count == 0:\n"
            "                break\n")
        proc = subprocess.Popen(self.lab.prefix("master") + [sys.executable, "-c", script],
                                stdout=subprocess.PIPE, text=True, env=self.lab.host_env("master"))
        timer = threading.Timer(self.timeout, proc.kill)
        timer.start()
        try:
            self._listening = proc.stdout.readline().startswith("ready")
            self._ready.set()
            if self._listening:
                for line in proc.stdout:
                    if line.strip():
                        self.events.append(json.loads(line))
                        if self.until and self.until(self.events[-1]):
                            break
        finally:
            self._ready.set()
            timer.cancel()
            proc.kill()
            proc.wait()

    def results(self) -> list:
        self._thread.join(self.timeout + 5)
        if self.until and not (self.events and self.until(self.events[-1])):
            raise TimeoutError(f"no event matching {self.patterns} ended the wait within {self.timeout}s: "
                               f"{self.events}")
        if len(self.events) < self.count:
            raise TimeoutError(f"{len(self.events)} of {self.count} events matching {self.patterns} "
                               f"within {self.timeout}s: {self.events}")
        return self.events

    def result(self) -> dict:
        return self.results()[0]


def format_matrix(rows) -> str:
    lines = [f"{'from':<5} {'to':<16} {'expected':<10} {'measured':<10}"]
    for src, dst, want, got in rows:
        mark = "ok" if want == got else "MISMATCH"
        lines.append(f"{src:<5} {dst:<16} {'reach' if want else 'blocked':<10} "
                     f"{'reach' if got else 'blocked':<10} {mark}")
    return "\n".join(lines)


def jid_now() -> str:
    """A job id as the master would make it now (for ``state_jobs_since``)."""
    return datetime.datetime.now().strftime("%Y%m%d%H%M%S%f")


def state_jobs(lab: Lab, jid: str) -> dict:
    """The state.apply jobs the master sent since ``jid``: job id -> job (jobs.list_jobs)."""
    def functions(job):
        return job["Function"] if isinstance(job["Function"], list) else [job["Function"]]
    return {job_id: job for job_id, job in lab.salt_run(["jobs.list_jobs"]).items()
            if job_id > jid and "state.apply" in functions(job)}


def state_jobs_since(lab: Lab, jid: str) -> set:
    """Minions that received a state.apply job from the master since ``jid``."""
    targets = set()
    for job in state_jobs(lab, jid).values():
        target = job["Target"]
        targets.update(target if isinstance(target, list) else [target])
    return targets


def changes_in(apply_result: dict) -> dict:
    """{minion: [state ids that changed or failed]} from `salt --out=json state.apply`."""
    changed = {}
    for minion, states in apply_result.items():
        if not isinstance(states, dict):
            changed[minion] = [f"error: {states}"]
            continue
        bad = [s.get("__id__") for s in states.values() if s.get("changes") or s.get("result") is not True]
        if bad:
            changed[minion] = bad
    return changed


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.article", description=__doc__.splitlines()[0])
    parser.add_argument("--id", default="article")
    sub = parser.add_subparsers(dest="cmd", required=True)
    up = sub.add_parser("up", help="bring the article's network up and print the connectivity matrix")
    up.add_argument("--keep", action="store_true", help="leave it running (tear down with `down`)")
    up.add_argument("--profile", choices=sorted(PROFILES), default="article",
                    help="article: networkd and firewalld (nftables) on z, a, c; variants: wg-quick, "
                         "firewalld on iptables (a), plain iptables (z, c)")
    sub.add_parser("status", help="handshakes and connectivity of a running lab")
    sub.add_parser("down", help="tear it down")
    args = parser.parse_args(argv)
    lab = Lab(args.id)
    if args.cmd == "down":
        problems = lab.down()
        print("down" if not problems else "\n".join(problems))
        return 1 if problems else 0
    article = ArticleLab(lab, getattr(args, "profile", "article"))
    if args.cmd == "status":
        print(json.dumps(lab.salt_run(["wgmesh.status"]), indent=1))
        print(format_matrix(article.matrix()))
        return 0
    try:
        start = time.monotonic()
        article.up()
        rows = article.matrix()
        total = time.monotonic() - start
        for step, seconds in article.timings.items():
            print(f"{step:<32} {seconds:6.1f} s")
        print(f"{'total':<32} {total:6.1f} s\n")
        print("salt '*' state.apply wgmesh after the push:",
              "no changes" if not changes_in(article.converge_result) else changes_in(article.converge_result))
        print()
        print(format_matrix(rows))
        ok = all(want == got for _, _, want, got in rows)
        print("\nevery cell as the article expects" if ok else "\nMISMATCH: see above")
        if args.keep:
            lab.state["persistent"] = True
            lab._save()
            print(f"\nlab '{lab.lab_id}' left running: python -m lab.article status | down; "
                  f"python -m lab --id {lab.lab_id} exec HOST -- CMD")
        return 0 if ok else 1
    finally:
        if not args.keep:
            lab.down()


if __name__ == "__main__":
    sys.exit(main())
