"""Master-side wgmesh commands: developers' client configs, validation, status.

The network comes from the master's pillar (git_pillar in production, any
pillar source works); the core does the rest.
"""
import concurrent.futures
import contextvars
import datetime
import logging
import os
import time

import salt.pillar
from salt.exceptions import InvalidKeyError, SaltInvocationError

try:
    # installed with saltext-wgmesh, or synced from _utils/ (Salt puts that folder on sys.path)
    import wgmesh_core
    # synced anew since this process imported it (a wgmesh_core from before forget_if_changed: kept)
    if getattr(wgmesh_core, "forget_if_changed", bool)():
        import wgmesh_core
    wgmesh_core.load_all()
    import wgmesh_core.handoff
    import wgmesh_salt
    import wgmesh_salt.gitpillar
    import wgmesh_salt.jobs
    import wgmesh_salt.laps
    import wgmesh_salt.warm
except ImportError as error:
    wgmesh_core = None
    IMPORT_ERROR = str(error)

log = logging.getLogger(__name__)

# seconds a push waits for git_pillar's update lock, held while the master's maintenance
# loop fetches the same remote (a fetch of the pillar repository takes well under that)
GIT_PILLAR_LOCK_PATIENCE = 30


def __virtual__():
    if wgmesh_core is None:
        return (False, f"wgmesh: cannot import the wgmesh_core and wgmesh_salt packages ({IMPORT_ERROR}); run "
                       "`salt-pip install 'saltext-wgmesh[master]'` or `salt-run saltutil.sync_all`")
    return "wgmesh"


def _pillar(minion_id=None):
    """The pillar as the master compiles it for ``minion_id`` (default: the master's own id)."""
    minion_id = minion_id or __opts__["id"]
    pillar = salt.pillar.get_pillar(__opts__, {}, minion_id, saltenv=__opts__.get("saltenv") or "base",
                                    pillarenv=__opts__.get("pillarenv"))
    return pillar.compile_pillar()


def _spec(pillar=None):
    pillar = _pillar() if pillar is None else pillar
    if "wgmesh" not in pillar:
        raise SaltInvocationError("no 'wgmesh' pillar on this master")
    return wgmesh_core.load_network(pillar["wgmesh"])


def _secrets_options():
    """The ``wgmesh_secrets`` ext_pillar's options in the master config ({} when it is set
    without options), None when it is not set."""
    for entry in __opts__.get("ext_pillar") or []:
        if isinstance(entry, dict) and "wgmesh_secrets" in entry:
            return entry["wgmesh_secrets"] or {}
    return None


def _secret_file():
    """The master secret the ext_pillar derives the preshared keys from (its default when it is
    set without ``secret_file``, as the ext_pillar reads it), None when it is not set."""
    options = _secrets_options()
    return None if options is None else options.get("secret_file") or wgmesh_core.pins.DEFAULT_SECRET_FILE


def _pin_file():
    options = _secrets_options()
    if options is None:
        raise SaltInvocationError("the wgmesh_secrets ext_pillar (which keeps the pinned host keys) is not configured")
    return options.get("pin_file") or wgmesh_core.pins.default_pin_file(_secret_file())


def _master_secret():
    path = _secret_file()
    return wgmesh_core.keys.load_master_secret(path) if path else None


def validate():
    """
    Validate the network in the master's pillar; returns True or the list of problems.

    CLI Example:

    .. code-block:: bash

        salt-run wgmesh.validate
    """
    try:
        _spec()
    except wgmesh_core.InvalidNetwork as error:
        return [str(problem) for problem in error.problems]
    return True


def _mine_of(minion_id):
    import salt.cache
    return salt.cache.factory(__opts__).fetch("mine", minion_id)


def hub_public_key(spec=None):
    """
    The hub's public key: its pinned key when the master pins host keys (the ``wgmesh_secrets``
    ext_pillar), else its key in the Salt mine if that is a valid key. None when unknown.

    CLI Example:

    .. code-block:: bash

        salt-run wgmesh.hub_public_key
    """
    spec = spec or _spec()
    return _served_host_keys(spec).accepted.get(spec.hub.minion)


def _served_host_keys(spec):
    """The hub's and gateways' keys as the master serves them: published (mine), checked against
    the pins of the ``wgmesh_secrets`` ext_pillar when it is set (read only: it pins)."""
    published = wgmesh_core.hostkeys.published_host_keys(spec, _mine_of)
    pinned = wgmesh_core.pins.read_pins(_pin_file())["pinned"] if _secrets_options() is not None else None
    return wgmesh_core.hostkeys.resolve_host_keys(spec, published, pinned)


def accept_key(host, key=None):
    """
    Accept the public key ``host`` publishes now (in the Salt mine, or the ``wgmesh_host_keys``
    pillar) as its pinned key, after the master refused it as a change (``wgmesh/key/changed``),
    and apply ``wgmesh`` to the hosts that peer with it. Pass ``key`` to accept only that key
    (the one you verified with the host's admin): a different published key is refused.

    CLI Example:

    .. code-block:: bash

        salt-run wgmesh.accept_key c
        salt-run wgmesh.accept_key c key=Vq6+6RE0oYQ0bCkO7AB0Zp1bUZwy9rbY7DZhnN3qIkY=
    """
    spec = _spec()
    if host not in wgmesh_core.hostkeys.keyed_hosts(spec):
        raise SaltInvocationError(f"{host!r} is not the hub or a gateway of the network")
    published = wgmesh_core.hostkeys.published_host_keys(spec, _mine_of, _pillar(host).get("wgmesh_host_keys"))
    current = published.get(host)
    if current is None:
        raise SaltInvocationError(f"{host} has published no public key")
    if key is not None and key != current:
        raise SaltInvocationError(f"{host} publishes {wgmesh_core.keys.shown(current)}, not the key given")
    with wgmesh_core.pins.updating_pins(_pin_file()) as store:
        others = {other: pinned for other, pinned in store["pinned"].items() if other != host}
        problem = wgmesh_core.hostkeys.accept_problem(spec, host, current, others)
        if problem:
            raise SaltInvocationError(f"not accepting the key of {host}: {problem}")
        previous = store["pinned"].get(host)
        store["pinned"][host] = current
        store["refused"].pop(host, None)
    _fire("wgmesh/key/accepted", {"host": host, "key": current, "previous": previous})
    peers = list(wgmesh_core.plan.active_gateways(spec)) if host == spec.hub.minion else [host]
    applied = converge([spec.hub.minion, *peers], hub=spec.hub.minion)
    return {"host": host, "key": current, "previous": previous, "applied": applied}


def client_config(name):
    """
    Write developer ``name``'s wg-quick config, complete but for their private key (which never
    leaves their machine), to a 0600 file on the master and return its path: hub public key
    (pinned), preshared key derived on the master. The config carries the preshared key, so it
    is never the return value: Salt stores runner returns in the job cache and fires them on
    the event bus. Send the file to the developer over a private channel, then delete it.

    CLI Example:

    .. code-block:: bash

        salt-run wgmesh.client_config e
        salt-run wgmesh.client_config name="'007'"   # a name YAML reads as a number or boolean
    """
    spec = _spec()
    if not isinstance(name, str):     # Salt's command line reads 007, on, 1.5, null as YAML
        raise SaltInvocationError(f"the developer's name reached the runner as {name!r}, not as text: "
                                  f"Salt's command line reads it as YAML; quote it: name=\"'NAME'\"")
    if name not in spec.developers:
        raise SaltInvocationError(f"no developer {name!r} in the wgmesh pillar")
    if not spec.is_active(spec.developers[name], datetime.date.today()):
        raise SaltInvocationError(f"developer {name!r} is revoked or expired")
    secret = _master_secret() if spec.preshared_keys else None
    if spec.preshared_keys and secret is None:
        raise SaltInvocationError("the network uses preshared keys and the master has none to give (the "
                                  "wgmesh_secrets ext_pillar is not configured): no config was written")
    hub_key = hub_public_key(spec)
    if hub_key is None:
        raise SaltInvocationError(f"the hub {spec.hub.minion}'s public key is not known to the master yet (not "
                                  "published, or refused: `salt-run wgmesh.status`): no config was written")
    psk = wgmesh_core.plan.peer_psk(spec, name, secret, spec.preshared_key_epoch) if secret else None
    text = wgmesh_core.client_config(spec, name, hub_public_key=hub_key, psk=psk)
    folder = os.path.join(__opts__["cachedir"], "wgmesh", "clients")
    os.makedirs(folder, mode=0o700, exist_ok=True)
    os.chmod(folder, 0o700)
    path = os.path.join(folder, f"{name}.conf")
    wgmesh_core.keys.replace_secret_file(path, text)
    return {"developer": name, "path": path,
            "note": "mode 0600 on the master, it holds the preshared key: send it privately, then delete it"}


# --- GitOps: from a push to the converged hosts ------------------------------------------

def _gitops_opts():
    """The ``wgmesh_gitops`` master option: where the pillar repo is and how to fetch it.

    .. code-block:: yaml

        wgmesh_gitops:
          upstream: https://git.example.com/ops/wgmesh-pillar.git   # what developers push to
          branch: main
          repo: /var/cache/salt/master/wgmesh/pillar.git   # local: incoming + deployed branches
          subdir: ''                                        # pillar folder inside the repo
          known_minions: []          # ids to compile the pillar for besides the accepted ones
          allowed_pillar_keys: []    # top-level pillar keys allowed besides wgmesh, mine_functions
          max_pillar_bytes: 4194304  # a larger pillar is refused unread
          webhook_secret_file: /etc/salt/wgmesh/webhook.secret   # for salt-api's /hook/wgmesh/push
    """
    opts = dict(__opts__.get("wgmesh_gitops") or {})
    if "upstream" not in opts:
        raise SaltInvocationError("master option wgmesh_gitops:upstream is not set")
    opts.setdefault("branch", "main")
    opts.setdefault("repo", os.path.join(__opts__["cachedir"], "wgmesh", "pillar.git"))
    opts.setdefault("subdir", "")
    opts.setdefault("known_minions", [])
    opts.setdefault("allowed_pillar_keys", [])
    opts.setdefault("webhook_secret_file", "/etc/salt/wgmesh/webhook.secret")
    return opts


def _local_repo(path):
    import git
    if not os.path.exists(os.path.join(path, "HEAD")):
        os.makedirs(path, exist_ok=True)
        return git.Repo.init(path, bare=True)
    return git.Repo(path)


def _fire(tag, data):
    import salt.utils.event
    with salt.utils.event.get_master_event(__opts__, __opts__["sock_dir"], listen=False) as bus:
        bus.fire_event(data, tag)


def _accepted_minions():
    import salt.key
    with salt.key.get_key(__opts__) as keys:
        return keys.list_status("accepted").get("minions", [])


def deployed_revision():
    """
    The pillar revision the minions see now (the last one that passed the gate), or None.

    CLI Example:

    .. code-block:: bash

        salt-run wgmesh.deployed_revision
    """
    repo = _local_repo(_gitops_opts()["repo"])
    try:
        return repo.commit("refs/heads/deployed").hexsha
    except Exception:  # no deployed branch yet
        return None


def _apply(targets, timeout=15):
    """state.apply wgmesh on ``targets`` (minion ids), then refresh their pillar, in one job each.

    A state run compiles a fresh pillar of its own; the refresh after it only brings the
    minion's in-memory pillar (``pillar.get``, its mine's functions) to the revision, in the
    minion's own process, without holding the job: before the state run it was a second compile
    of the pillar on the master in every job (at 10,000 developers about 0.5 s of the hub's).

    Returns {minion: (ok, waiting_for_keys)}. ``timeout`` is Salt's: how long to wait before
    asking a silent minion whether it still runs the job (a down minion is given up then).
    """
    if not targets:
        return {}
    with _local_client() as client:
        # queue=True: a drift schedule run (or the minion-start reactor's) in flight delays this one
        returns = client.cmd(targets, ["state.apply", "saltutil.refresh_pillar"],
                             [["wgmesh", "queue=True"], ["wait=False"]], tgt_type="list", timeout=timeout)
    outcome = {}
    for minion in targets:
        ret = returns.get(minion)
        # a minion that is down returns a message string instead of {function: return}
        ret = ret.get("state.apply") if isinstance(ret, dict) else None
        states = ret.values() if isinstance(ret, dict) else []
        ok = bool(states) and all(s.get("result") is not False for s in states)
        waiting = any("waiting for the public key" in str(s.get("comment")) for s in states)
        outcome[minion] = (ok, waiting)
    return outcome


def converge(hosts, hub=None):
    """
    Apply ``wgmesh`` to ``hosts``: the hub first, then the others; hosts that were still waiting
    for a peer's public key (a new network: keys reach the mine during the first apply) are
    applied once more at the end. Returns {minion: ok}.

    CLI Example:

    .. code-block:: bash

        salt-run wgmesh.converge '[z, a, c, r1]' hub=z
    """
    return _converge(hosts, hub)


def _converge(hosts, hub=None, lap=lambda step: None):
    """``converge``; ``lap("hub applied")`` once the hub's job returned (the gate's timings)."""
    first = [h for h in hosts if h == hub]
    outcome = _apply(first)
    if first:
        lap("hub applied")
    outcome.update(_apply([h for h in hosts if h not in first]))
    retry = [minion for minion, (ok, waiting) in outcome.items() if waiting]
    outcome.update(_apply(retry))
    return {minion: ok for minion, (ok, _) in outcome.items()}


def on_push(allow_rewind=False, **_event):
    """
    Gate and converge a push to the pillar repository (called by the reactor on ``wgmesh/push``).

    Fetches the branch from the upstream (whatever revision the event names: only the
    branch's tip is ever deployed), checks it as data and compiles it with Salt's own pillar
    compiler for every accepted minion (``wgmesh_salt``), and only if every minion gets the
    same valid network, every intent test of ``tests.yaml`` passes against it (as of today)
    and the revision descends from the deployed one moves the
    ``deployed`` branch (what git_pillar serves) to it, updates git_pillar, puts the change
    live at once where no state run is needed for it (``wgmesh.update_live`` on hubs and
    gateways that keep their setup: peers, firewall rules), and applies ``wgmesh`` to the
    hosts whose desired state changed: the hub first, then gateways and LAN routers. An invalid revision, or one that would rewind the deployed history (a
    force-push, a replayed event; pass ``allow_rewind=True`` to deploy it on purpose), fires
    ``wgmesh/gate/refused`` naming every problem, and nothing changes; an unreachable
    upstream fires ``wgmesh/gate/unreachable`` and keeps the deployed network. Pushes are
    handled one at a time (a lock file), and pushes that piled up behind the lock are
    coalesced: a waiter whose push a later fetch already saw returns at once.

    CLI Example:

    .. code-block:: bash

        salt-run wgmesh.on_push
    """
    import fcntl
    arrived = time.time()
    gitops = _gitops_opts()
    repo = _local_repo(gitops["repo"])
    with open(os.path.join(repo.git_dir, "wgmesh-gate.lock"), "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)   # two pushes in flight: the second sees the first's result
        lock.seek(0)
        last_fetch = float(lock.read().strip() or 0)
        if last_fetch > arrived and not allow_rewind:
            # a fetch that started after this push arrived saw its revision (or a later one)
            return {"result": "coalesced", "revision": deployed_revision()}
        lock.seek(0)
        lock.truncate()
        lock.write(str(time.time()))
        lock.flush()
        return _gate_and_converge(repo, gitops, allow_rewind)


def on_push_async(allow_rewind=False):
    """
    Start ``on_push`` in a process of its own and return its job id at once: the reactor's entry
    point (reactor/push.sls). Runner reactions share a pool of ``reactor_worker_threads``
    threads; a gate run holds one for as long as its applies take, so the reactor hands it off
    the way ``salt-run --async`` does (``wgmesh_salt.warm.fork_job``: Salt's
    ``RunnerClient.asynchronous`` with a fork fewer). The job fires
    ``salt/run/<jid>/new`` and ``/ret`` with ``fun: runner.wgmesh.on_push`` like any runner
    job, and the gate's own events; the push lock and coalescing are ``on_push``'s.

    CLI Example:

    .. code-block:: bash

        salt-run wgmesh.on_push_async
    """
    return {"result": "started", "jid": _in_own_process("wgmesh.on_push", allow_rewind=bool(allow_rewind))}


def _in_own_process(fun, **kwargs):
    """Start runner ``fun`` as a job of its own process, forked from a client whose master-minion
    (config files, the master's grains) and runner modules are loaded once per process
    (``wgmesh_salt.warm.job_client``): each fork inherits them loaded instead of loading them
    again before the gate starts (about 0.3 s of every push). Returns the job's id."""
    client = wgmesh_salt.warm.job_client(_runner_stamp(), _loaded_runner_client)
    return wgmesh_salt.warm.fork_job(client, fun, kwargs, user="wgmesh")


def _runner_stamp():
    """This runner's file as it is on disk (a sync replaces it)."""
    stat = os.stat(__file__)
    return __file__, stat.st_mtime_ns, stat.st_size


def _loaded_runner_client():
    import salt.runner
    client = salt.runner.RunnerClient(__opts__)
    client.mminion  # pylint: disable=pointless-statement
    list(client.functions)   # the job's first act is to load every runner module
    _import_what_the_gate_imports()
    return client


def _import_what_the_gate_imports():
    """The modules this runner imports as the gate runs (GitPython, Salt's clients and
    git_pillar, the transports a LocalClient's first publish imports, the core's planning),
    imported in the process the gate's runs fork from."""
    # pylint: disable=import-outside-toplevel,unused-import
    import git  # noqa: F401
    import salt.cache  # noqa: F401
    import salt.client  # noqa: F401
    import salt.key  # noqa: F401
    import salt.pillar.git_pillar  # noqa: F401
    import salt.transport.tcp  # noqa: F401
    import salt.transport.zeromq  # noqa: F401
    import salt.utils.gitfs  # noqa: F401
    import tornado.platform.asyncio  # noqa: F401
    import wgmesh_core.diff  # noqa: F401
    import wgmesh_core.gitsource  # noqa: F401
    import wgmesh_core.intent  # noqa: F401
    import wgmesh_salt.sealed  # noqa: F401


def on_webhook(headers=None, body="", allow_rewind=False):
    """
    A push webhook from the git server (salt-api's ``/hook/wgmesh/push``): checked against the
    shared secret in ``wgmesh_gitops:webhook_secret_file`` (GitLab's ``X-Gitlab-Token``, or
    GitHub/Gitea's ``X-Hub-Signature-256`` HMAC of the body), then ``on_push`` is started in its
    own process (``on_push_async``). Without a secret file, or with a wrong or missing token,
    nothing is fetched.

    CLI Example:

    .. code-block:: bash

        salt-run wgmesh.on_webhook headers='{"X-Gitlab-Token": "..."}'
    """
    path = _gitops_opts()["webhook_secret_file"]
    try:
        with open(path, "rb") as handle:
            secret = handle.read().strip()
        why = ("the webhook's token or signature does not match the shared secret" if secret
               else f"no webhook secret ({path} is empty)")
    except OSError as error:
        secret, why = None, f"no webhook secret ({error.strerror}: {path})"
    if secret and _webhook_authentic(headers or {}, body or "", secret):
        return on_push_async(allow_rewind=allow_rewind)
    log.error("wgmesh: webhook push ignored: %s", why)
    _fire("wgmesh/gate/unauthenticated", {"problems": [why]})
    return {"result": "unauthenticated", "problems": [why]}


def _webhook_authentic(headers, body, secret: bytes) -> bool:
    import hashlib
    import hmac
    lower = {str(k).lower(): str(v) for k, v in headers.items()}
    token = lower.get("x-gitlab-token")
    if token is not None:
        return hmac.compare_digest(token.encode(), secret)
    signature = lower.get("x-hub-signature-256", "")
    expected = "sha256=" + hmac.new(secret, body.encode("utf-8"), hashlib.sha256).hexdigest()
    return hmac.compare_digest(signature.encode(), expected.encode())


def _refuse(revision, previous, problems):
    log.error("wgmesh: refused pillar revision %s:\n%s", revision, "\n".join(problems))
    _fire("wgmesh/gate/refused", {"revision": revision, "problems": problems, "deployed": previous})
    return {"result": "refused", "revision": revision, "problems": problems}


def _cached_grains(minions):
    """Grains from the master's minion data cache (its ``grains`` bank, as the master stores
    them), for top.sls targets that match on grains. Not Salt's ``get_minion_data``: it reads
    each minion's cached pillar too (a hub's holds every developer) with a cache of its own."""
    if not __opts__.get("minion_data_cache", False):
        return {minion: {} for minion in minions}
    import salt.cache
    cache = salt.cache.factory(__opts__)
    return {minion: cache.fetch("grains", minion) or {} for minion in minions}


def _candidate(repo, revision, gitops):
    """The document Salt will serve for ``revision``: checked as data, then compiled by Salt for
    every accepted and known minion (see wgmesh_salt; not for the ids the revision names: a
    host that is not accepted is refused by the validation)."""
    from wgmesh_core.source import Limits
    limits = Limits(max_bytes=int(gitops["max_pillar_bytes"])) if gitops.get("max_pillar_bytes") else Limits()
    minions = set(_accepted_minions()) | set(gitops["known_minions"])
    return wgmesh_salt.read_document_at(repo.git_dir, revision, gitops["subdir"], minions,
                                        gitops["allowed_pillar_keys"], limits, opts=__opts__,
                                        env=_git_pillar().env(), grains=_cached_grains(minions), named=False)


def _deployed_file(repo):
    return os.path.join(repo.git_dir, "wgmesh-deployed.json")


def deployed_network():
    """
    The ``wgmesh`` document the gate accepted for the deployed revision: what every minion's
    ``pillar.get wgmesh`` returns. {"revision": ..., "network": ...}, or None.

    CLI Example:

    .. code-block:: bash

        salt-run wgmesh.deployed_network
    """
    import json
    try:
        with open(_deployed_file(_local_repo(_gitops_opts()["repo"]))) as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return None


def _record_deployed(repo, revision, network):
    import json
    path = _deployed_file(repo)
    with open(path + ".tmp", "w") as handle:   # dumps: json.dump writes in small pieces, 4x slower
        handle.write(json.dumps({"revision": revision, "network": network}))
    os.replace(path + ".tmp", path)


def _previous_spec(repo, previous, gitops):
    """The deployed network (as the gate accepted it; compiled again if it was not recorded)."""
    recorded = deployed_network()
    try:
        if recorded and recorded.get("revision") == previous:
            return wgmesh_core.load_network(recorded["network"])
        return wgmesh_core.load_network(_candidate(repo, previous, gitops).network)
    except (wgmesh_core.InvalidNetwork, FileNotFoundError):
        return None   # nothing valid deployed before: every host is planned


def _previous(repo, previous, gitops, today):
    """(the deployed network, its stand-in configs to plan into, whether the reactor's process
    kept both for this gate: ``warm``); (None, None, False) when nothing valid is deployed."""
    from wgmesh_core.diff import StandInConfigs
    kept = wgmesh_salt.warm.recall(previous, today)
    if kept:
        return (*kept, True)
    spec = _previous_spec(repo, previous, gitops)
    return spec, StandInConfigs(spec, today) if spec else None, False


def warm():
    """
    Load and plan the deployed network in this process for the gates it forks: run by the
    reactor when a push has been applied (reactor/applied.sls), so that the next push's gate,
    forked from the reactor's process (``on_push_async``), plans only its new revision. In a
    ``salt-run`` process of its own it only checks that the deployed network loads.

    CLI Example:

    .. code-block:: bash

        salt-run wgmesh.warm
    """
    recorded = deployed_network()
    if not recorded or not recorded.get("revision"):
        return {"result": "nothing deployed"}
    from wgmesh_core.source import collector_paused
    try:
        with collector_paused():
            spec = wgmesh_core.load_network(recorded["network"])
            configs = wgmesh_salt.warm.keep(recorded["revision"], spec, datetime.date.today())
    except wgmesh_core.InvalidNetwork as error:   # recorded by another wgmesh: the gate compiles it again
        return {"result": "not kept", "revision": recorded["revision"], "problems": [str(p) for p in error.problems]}
    return {"result": "kept", "revision": recorded["revision"], "hosts": sorted(configs)}


class _SpareClient:
    """A LocalClient made ahead of need (``take``), destroyed on exit unless it was taken."""

    def __init__(self):
        self.client = _local_client()

    def take(self):
        client, self.client = self.client, None
        return client

    def __enter__(self):
        return self

    def __exit__(self, *_exc):
        if self.client is not None:
            self.client.destroy()


def _gate_and_converge(repo, gitops, allow_rewind):
    lap = wgmesh_salt.laps.Laps()   # the result's timings: where a slow push spent its time
    # The hub's hand-off goes out through a LocalClient made while git fetches the branch: a
    # LocalClient loads its modules (about 45 ms), and the fetch is git's own process.
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        fetching = pool.submit(repo.git.fetch, gitops["upstream"],
                               f"+refs/heads/{gitops['branch']}:refs/heads/incoming")
        spare = _SpareClient()
        error = fetching.exception()
    with spare:
        if error is not None:   # GitCommandError, or an unreadable path
            message = f"cannot fetch {gitops['upstream']}: {error}".replace("\n", " ")
            log.error("wgmesh: %s; the deployed network stays as it is", message)
            _fire("wgmesh/gate/unreachable", {"upstream": gitops["upstream"], "error": message,
                                              "deployed": deployed_revision()})
            return {"result": "unreachable", "error": message}
        return _gate_fetched(repo, gitops, allow_rewind, lap, spare)


def _gate_fetched(repo, gitops, allow_rewind, lap, spare):
    from wgmesh_core.diff import StandInConfigs, host_change, plan_change
    from wgmesh_core.intent import verdict
    from wgmesh_core.source import collector_paused
    revision = repo.commit("refs/heads/incoming").hexsha
    previous = deployed_revision()
    lap("fetched")
    if revision == previous:
        return {"result": "unchanged", "revision": revision}
    if previous and not allow_rewind and not repo.is_ancestor(previous, revision):
        return _refuse(revision, previous, [
            f"{revision[:12]} does not descend from the deployed {previous[:12]} (force-push or "
            "rollback?): revert with a new commit, or run salt-run wgmesh.on_push allow_rewind=True"])
    try:
        with collector_paused():
            document = _candidate(repo, revision, gitops)
            new_spec = wgmesh_core.load_network(document.network, known_minions=_accepted_minions())
            today = datetime.date.today()
            broken = verdict(document.tree.tests, new_spec, today)[1]   # tests.yaml
            old_spec, old_configs, warm_start = _previous(repo, previous, gitops, today) \
                if previous and not broken else (None, None, False)
    except wgmesh_core.InvalidNetwork as error:
        return _refuse(revision, previous, [str(p) for p in error.problems])
    except FileNotFoundError as error:
        return _refuse(revision, previous, [f"no pillar at {revision[:12]}: {error}"])
    if broken:
        return _refuse(revision, previous, [str(p) for p in broken])
    lap("checked")
    # The revision passed: git_pillar fetches it (git's own process, mostly) while the change is
    # planned (planning refuses nothing: it orders the hosts and the fast path). The hub's share
    # is planned first, and its developer peers are handed off as soon as they are sealed, in a
    # job of their own beside the rest of the planning and the fetch: every developer's first
    # packet goes to the hub.
    hub = new_spec.hub.minion
    with collector_paused(), concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        deploying = pool.submit(contextvars.copy_context().run, _deploy, repo, revision, document.network)
        configs = (old_configs, StandInConfigs(new_spec, today))
        hub_change = host_change(old_spec, new_spec, hub, today, configs, diffs=False)
        handoff = _sealed_handoff(hub_change, configs, new_spec, today) \
            if hub_change.live_first and hub_change.peers_first else None
        handing_off = _hand_off(hub, handoff, spare.take()) if handoff else None
        lap("sealed")
        plan = plan_change(old_spec, new_spec, today, configs, diffs=False, planned={hub: hub_change})
        lap("planned")
        failure = deploying.result()
    handed_off = handing_off() if handing_off else None
    if failure:
        if handed_off is not None:   # the hub has the revision's peers: back to what is served
            _update_live([hub])
        return _deploy_failed(repo, revision, previous, failure)
    lap("deployed")
    log.info("wgmesh: deployed pillar revision %s (was %s); converging %s", revision, previous,
             ", ".join(plan.affected) or "no host")
    # the fast path's job is the liveness check of its hosts: no test.ping round trip before it.
    # The hub first, on its own: the master then compiles one pillar, not the hub's beside every
    # gateway's.
    live, answered = _update_live([h for h in plan.live_first if h == hub], plan.peers_first)
    if isinstance(live.get(hub), dict) and handed_off is not None:
        live[hub] = dict(live[hub], **{"wgmesh.set_peers": handed_off})
    gateways_live, gateways_answered = _update_live([h for h in plan.live_first if h != hub], plan.peers_first)
    live.update(gateways_live)
    answered += gateways_answered
    lap("live")
    reachable, pending = _jobs().answering([h for h in plan.affected if h not in plan.live_first])
    reachable += answered
    pending += [h for h in plan.live_first if h not in answered]
    lap("reachable")
    # the hub's job (its pillar refreshed, then its state run) is timed alone: "hub applied"
    applied = _converge([h for h in plan.to_apply if h in reachable], hub=hub, lap=lap)
    removed = _remove([h for h in plan.removed if h in reachable])
    applied.update({minion: False for minion in pending})
    lap("applied")
    result = {"result": "applied", "revision": revision, "previous": previous,
              "affected": plan.affected, "live_first": live, "applied": applied, "removed": removed,
              "pending": {minion: "did not answer: converges when it reconnects" for minion in pending},
              "manual_actions": plan.manual_actions, "timings": lap.timings, "started_at": round(lap.started, 3),
              "warm_start": warm_start}
    _fire("wgmesh/applied", result)
    return result


def _deploy(repo, revision, network):
    """Move ``deployed`` to ``revision`` and have git_pillar fetch it, then record the network the
    gate accepted: None, or why git_pillar does not serve it."""
    repo.git.update_ref("refs/heads/deployed", revision)
    failure = _git_pillar().deploy_failure(revision, GIT_PILLAR_LOCK_PATIENCE)
    if not failure:
        _record_deployed(repo, revision, network)
    return failure


def _deploy_failed(repo, revision, previous, error):
    """git_pillar did not take the revision: put ``deployed`` back, so the minions are not told
    (nor served, at the next fetch) a revision that was never converged; the next push or
    ``salt-run wgmesh.on_push`` retries."""
    if previous:
        repo.git.update_ref("refs/heads/deployed", previous)
    else:
        repo.git.update_ref("-d", "refs/heads/deployed")
    log.error("wgmesh: pillar revision %s not deployed: %s", revision, error)
    _fire("wgmesh/gate/failed", {"revision": revision, "deployed": previous, "error": error})
    return {"result": "failed", "revision": revision, "error": error}


def _jobs():
    return wgmesh_salt.jobs.Jobs(_local_client)


def _git_pillar():
    return wgmesh_salt.gitpillar.GitPillar(__opts__, _gitops_opts()["repo"], __salt__["git_pillar.update"])


def _remove(hosts, timeout=30):
    """``wgmesh.absent`` on hosts the change takes out of the network (salt/top.sls no longer
    targets them, so no highstate would). Returns {minion: what it removed, or the error}."""
    return _jobs().call(hosts, "wgmesh.absent", timeout, refresh_pillar=True)[0]


def _update_live(hosts, peers_first=(), timeout=5):
    """The fast path: ``wgmesh.update_live`` on hosts whose change needs no state run to go live
    (peers, firewall rules), before their state run; sent without a ``test.ping`` first, so its
    own answers tell which of them are up (``timeout`` as the ping's: a minion still running the
    job is waited for). The peers go first when every one of ``hosts`` is in ``peers_first``
    (``NetworkPlan.peers_first``). Returns ({minion: its changes, or the error}, the minions that
    answered)."""
    args = ["peers_first=True"] if hosts and set(hosts) <= set(peers_first) else []
    # a minion that is down is given up as soon as the ping would give it up
    return _jobs().call(hosts, "wgmesh.update_live", timeout, gather_job_timeout=timeout, args=args)


def _hand_off(hub, sealed, client, timeout=5):
    """Send the hub's sealed hand-off (``_sealed_handoff``) to ``wgmesh.set_peers`` now, through
    ``client`` (a LocalClient, destroyed once answered); returns the function that waits for its
    return (or the error). The gate reads it before the hub's ``wgmesh.update_live``, which then
    finds those peers done."""
    answers = _jobs().send([hub], "wgmesh.set_peers", timeout, gather_job_timeout=timeout, args=[sealed], client=client)
    return lambda: answers()[0][hub]


def _sealed_handoff(change, configs, new_spec, today):
    """The hub's developer peer changes (``wgmesh_core.handoff``), planned with the keys the
    master serves the hub (its pinned host keys, the preshared keys of its secret) and sealed
    for the hub's minion key; None when the hub plans them itself (``wgmesh.update_live``):
    a change that is not only developers', no ``wgmesh_secrets`` ext_pillar, no minion key."""
    import wgmesh_salt.sealed
    if _secrets_options() is None or configs[0] is None:
        return None
    secret = _master_secret() if new_spec.preshared_keys else None
    if new_spec.preshared_keys and secret is None:
        return None
    hub = new_spec.hub.minion
    resolved = _served_host_keys(new_spec)
    psk = (lambda name: wgmesh_core.plan.peer_psk(new_spec, name, secret, new_spec.preshared_key_epoch)) \
        if secret else (lambda name: None)
    handoff = wgmesh_core.handoff.hub_handoff((change.peers_added, change.peers_removed, change.peers_changed),
                                              configs[0][hub], new_spec, today, resolved.accepted, psk)
    if handoff is None:
        return None
    try:
        return wgmesh_salt.sealed.seal(__opts__, hub, handoff.as_document())
    except (OSError, InvalidKeyError) as error:    # no usable accepted key: the hub plans it itself
        log.warning("wgmesh: no peer hand-off for %s: %s", hub, error)
        return None


def _local_client():
    """A LocalClient on this master's options as they are (Salt's thorium does the same):
    ``get_local_client(conf_file)`` reads the configuration files again, about 50 ms before
    each job the gate sends, the hub's hand-off among them."""
    import salt.client
    return salt.client.get_local_client(mopts=__opts__)


def status(stale_after=600, soon_days=14):
    """
    Every peer of the hub with its last handshake (from the hub's live ``wg show``), flagging
    expired or soon-expiring developers and peers silent for more than ``stale_after`` seconds.

    CLI Example:

    .. code-block:: bash

        salt-run wgmesh.status stale_after=300 soon_days=7
    """
    from wgmesh_core.report import status_report
    spec = _spec()
    with _local_client() as client:
        live = client.cmd(spec.hub.minion, "wgmesh.status", timeout=30).get(spec.hub.minion)
    if not isinstance(live, dict):
        raise SaltInvocationError(f"hub {spec.hub.minion} did not answer wgmesh.status: {live}")
    ages = {name: peer["handshake_age"] for name, peer in live["peers"].items()}
    return status_report(spec, ages, datetime.date.today(), int(stale_after), int(soon_days))
