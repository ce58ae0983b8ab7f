"""Execution module for wgmesh: this minion's part of the WireGuard network.

A thin adapter: the model, validation, plan and rendering live in the
``wgmesh_core`` package (installed with saltext-wgmesh, or synced to minions from ``_utils/`` by
``saltutil.sync_all``); this module feeds it the pillar, the Salt mine and the
host's live state, and runs ``wg``/``ip``/``iptables``.

Pillar read: ``wgmesh`` (the network), ``wgmesh_psk`` (this host's preshared
keys, from the master's ``wgmesh_secrets`` ext_pillar), optionally
``wgmesh_host_keys`` (minion id -> public key, for hosts outside the mine).
"""
import contextlib
import datetime
import functools
import logging
import os
import pathlib
import shutil

from salt.exceptions import CommandExecutionError

try:
    # installed with saltext-wgmesh, or synced from _utils/ (Salt puts that folder on sys.path)
    import wgmesh_core
    # synced anew since this process imported it (a wgmesh_core from before forget_if_changed: kept)
    if getattr(wgmesh_core, "forget_if_changed", bool)():
        import wgmesh_core
    wgmesh_core.load_all()
    import wgmesh_core.diff
    import wgmesh_core.handoff
    import wgmesh_salt.commands
    import wgmesh_salt.firewalld_bus
    import wgmesh_salt.hostfirewall
    import wgmesh_salt.laps
    import wgmesh_salt.records
    import wgmesh_salt.sealed
    import wgmesh_salt.tunnel
except ImportError as error:
    wgmesh_core = None
    IMPORT_ERROR = str(error)

log = logging.getLogger(__name__)
__virtualname__ = "wgmesh"


def __virtual__():
    if wgmesh_core is None:
        return (False, f"wgmesh: cannot import the wgmesh_core package ({IMPORT_ERROR}); run "
                       "`salt-pip install saltext-wgmesh`, or saltutil.sync_all and install its requirements "
                       "(netaddr, pydantic>=2, jinja2, cryptography)")
    return "wgmesh"


def _commands():
    # firewall-cmd's requests go to firewalld over D-Bus when it answers there (no process each)
    bus = __context__.setdefault("wgmesh_firewalld_bus", wgmesh_salt.firewalld_bus.FirewalldBus())
    return wgmesh_salt.commands.Commands(__salt__["cmd.run_all"], serve=bus.serve)


def _run(cmd, check=True, stdin=None):
    return _commands().run(cmd, check, stdin)


def _tunnel():
    return wgmesh_salt.tunnel.Tunnel(_commands())


def _today():
    return datetime.date.today()


def network():
    """
    The validated network definition from pillar, as a dict (defaults filled in).

    Raises an error listing every problem when the pillar is invalid.

    CLI Example:

    .. code-block:: bash

        salt '*' wgmesh.network
    """
    return _spec().model_dump(mode="json")


def _pillar():
    """The pillar to plan from: a freshly compiled one (``_fresh_pillar``), else the minion's."""
    return __context__.get("wgmesh_fresh_pillar") or __pillar__


@contextlib.contextmanager
def _fresh_pillar():
    """Plan from the pillar the master compiles now, not the minion's cached copy, in the block.
    A salt-call process compiled its pillar as it started (its ``__pillar__`` is that one): it
    is not compiled twice (about 1.5 s at 10,000 developers)."""
    if __opts__.get("__cli") == "salt-call":
        yield
        return
    __context__["wgmesh_fresh_pillar"] = __salt__["pillar.items"](unmask=True)
    try:
        yield
    finally:
        __context__.pop("wgmesh_fresh_pillar", None)


def _spec():
    """The validated network of the pillar; validated once per pillar value and day (a state run
    asks about ten times: at 10,000 developers each validation takes about 0.2 s)."""
    data = _pillar().get("wgmesh")
    if data is None:
        raise CommandExecutionError("wgmesh: no 'wgmesh' pillar for this minion")
    validated = __context__.get("wgmesh_spec")
    if validated and validated[0] is data and validated[1] == _today():
        return validated[2]
    try:
        with wgmesh_core.source.collector_paused():
            spec = wgmesh_core.load_network(data)
    except wgmesh_core.InvalidNetwork as error:
        raise CommandExecutionError("wgmesh: invalid network definition:\n" + str(error)) from None
    __context__["wgmesh_spec"] = (data, _today(), spec)   # holds ``data``: its id is not reused meanwhile
    return spec


def role():
    """
    This minion's role in the network: hub, gateway, lan_router or none.

    CLI Example:

    .. code-block:: bash

        salt '*' wgmesh.role
    """
    return _host_config().role


def host_keys():
    """
    Public keys of the hub and gateways this minion plans with, and the hosts left out because
    of the key they published. With the master's ``wgmesh_secrets`` ext_pillar, these are the
    keys it pinned at first publish (served as the ``wgmesh_keys`` pillar); without it
    (masterless), the Salt mine and the ``wgmesh_host_keys`` pillar, checked here.

    CLI Example:

    .. code-block:: bash

        salt z wgmesh.host_keys
    """
    resolved = _resolved_keys(_spec())
    return {"accepted": resolved.accepted, "refused": resolved.refused}


def _resolved_keys(spec):
    served = _pillar().get("wgmesh_keys")
    if served is not None:
        return wgmesh_core.hostkeys.served_host_keys(spec, served)
    published = dict(_pillar().get("wgmesh_host_keys") or {})
    try:
        hosts = ",".join(wgmesh_core.hostkeys.keyed_hosts(spec))
        mined = __salt__["mine.get"](hosts, wgmesh_core.hostkeys.MINE_FUNCTION, tgt_type="list") or {}
    except Exception as error:  # pylint: disable=broad-except
        # no silent fallback: planning without the mine would take live peers for revoked
        raise CommandExecutionError(f"wgmesh: cannot read public keys from the Salt mine: {error}")
    published.update({host: key for host, key in mined.items() if key})
    own = public_key()
    if own:
        published[__opts__["id"]] = own
    resolved = wgmesh_core.hostkeys.resolve_host_keys(spec, published)
    for host, why in resolved.refused.items():
        log.error("wgmesh: %s is left out: %s", host, why)
    return resolved


def _plan():
    """(spec, this host's config, the resolved host keys)."""
    spec = _spec()
    resolved = _resolved_keys(spec)
    psks = _pillar().get("wgmesh_psk") or {}
    # the same inputs plan the same host: a state run asks about five times (a hub of 10,000
    # developers takes about 0.4 s to plan)
    inputs = (_today(), sorted(resolved.accepted.items()), sorted(resolved.refused.items()))
    planned = __context__.get("wgmesh_host_config")
    if planned and planned[0] is spec and planned[1] is psks and planned[2] == inputs:
        cfg = planned[3]
    else:
        with wgmesh_core.source.collector_paused():
            cfg = wgmesh_core.host_config(spec, __opts__["id"], _today(), resolved.accepted, psks, resolved.refused)
        __context__["wgmesh_host_config"] = (spec, psks, inputs, cfg)   # holds spec and psks: ids not reused
    return spec, cfg, resolved


def _host_config():
    return _plan()[1]


def config():
    """
    This minion's desired state (peers, addresses, firewall, routes), preshared keys hidden.

    CLI Example:

    .. code-block:: bash

        salt z wgmesh.config
    """
    import dataclasses
    cfg = dataclasses.asdict(_host_config())
    for peer in cfg["peers"]:
        if peer["preshared_key"]:
            peer["preshared_key"] = "(hidden)"
    if cfg["firewall"]:     # each access as source and destination by name, not a pair
        cfg["firewall"]["forward"] = [access._asdict() for access in cfg["firewall"]["forward"]]
    return cfg


def setup():
    """
    This minion's role, and a hub's or gateway's interface, backend and firewall backend: what
    the packages and services it needs depend on; and the drift schedule's period. The state
    tree asks for this on every run: it is ``wgmesh.config`` without the peers and
    ``wgmesh.network`` without the developers (on a hub, 10,000 of them take about 50 ms more).
    A host without a tunnel (a LAN router, or one with no role, which ``wgmesh.absent`` cleans
    up) gets the network's interface name.

    CLI Example:

    .. code-block:: bash

        salt z wgmesh.setup
    """
    spec, cfg, _ = _plan()
    return {"role": cfg.role, "interface": cfg.interface or spec.interface, "backend": cfg.backend,
            "firewall": {"backend": cfg.firewall.backend} if cfg.firewall else None,
            "drift_minutes": spec.schedule.drift_minutes}


def files(show_secrets=False):
    """
    The files this minion should have: path, content, mode, group. Content of files holding
    keys is hidden unless ``show_secrets=True`` (the state tree uses that).

    CLI Example:

    .. code-block:: bash

        salt z wgmesh.files
    """
    out = []
    for spec_file in _host_files(_host_config()):
        item = {"path": spec_file.path, "content": spec_file.content, "mode": spec_file.mode,
                "group": spec_file.group, "secret": spec_file.secret}
        if spec_file.secret and not show_secrets:
            item["content"] = "(hidden: holds key material)"
        out.append(item)
    return out


def _host_files(cfg):
    """``host_files`` of ``cfg``, rendered once per planned config: a state run asks for them to
    stage the files, to record the footprint and to compare firewalld's files (a hub of 10,000
    developers: about 0.4 s each time). A config planned anew but equal (a first apply plans
    again once the host's key exists) has the same files: comparing costs about 0.02 s."""
    rendered = __context__.get("wgmesh_host_files")
    if rendered and (rendered[0] is cfg or rendered[0] == cfg):
        return rendered[1]
    with wgmesh_core.source.collector_paused():
        files = wgmesh_salt.rendered(wgmesh_core.host_files, cfg)
    __context__["wgmesh_host_files"] = (cfg, files)    # holds cfg: its id is not reused
    return files


def _staging_folder():
    return os.path.join(__opts__["cachedir"], "wgmesh", "staged")


#: longer files change without Salt's diff in the state's output: its diff of a hub's firewall file
#: (20,000 lines at 10,000 developers) took about 1 s of every state run; wgmesh.firewall names the rules
DIFF_SHOWN_LINES = 10000


def staged_files():
    """
    This host's files rendered into the minion's staging folder (``<cachedir>/wgmesh/staged``,
    mode 0700, each file 0600: some hold keys), for the state tree's ``file.managed`` to copy
    from: path, source (the staged copy), mode, group, secret, and whether the state shows the
    file's diff (``show_changes``: not for key material, nor past ``DIFF_SHOWN_LINES`` lines). The contents stay out of the
    compiled state: a hub of 10,000 developers has files of megabytes, which Salt would
    otherwise carry through Jinja, its YAML and its data decoding, and join line by line.
    A staged copy is rewritten only when its content changed.

    CLI Example:

    .. code-block:: bash

        salt z wgmesh.staged_files
    """
    import hashlib
    folder = _staging_folder()
    os.makedirs(folder, mode=0o700, exist_ok=True)
    os.chmod(folder, 0o700)
    out = []
    for item in files(show_secrets=True):
        # named by the target's path (a hash: no separator or dot of it reaches the name)
        name = hashlib.sha256(item["path"].encode()).hexdigest()[:16] + "-" + os.path.basename(item["path"])
        item["source"] = os.path.join(folder, name)
        content = item.pop("content")
        item["show_changes"] = not item["secret"] and content.count("\n") <= DIFF_SHOWN_LINES
        if _read_text(item["source"]) != content:
            wgmesh_core.keys.replace_secret_file(item["source"], content)
        out.append(item)
    return out


def private_key_path():
    """
    Where this minion keeps its WireGuard private key (depends on the backend).

    CLI Example:

    .. code-block:: bash

        salt z wgmesh.private_key_path
    """
    cfg = _keyless_config()
    return wgmesh_core.render.private_key_file(cfg) if cfg.role in ("hub", "gateway") else None


def _keyless_config():
    """This host's role, interface and backend: enough for its key file, with no Salt mine
    round trip (nor recursion through ``host_keys``) and no planning of its peers."""
    return wgmesh_core.plan.host_setup(_spec(), __opts__["id"])


def genkey(test=False):
    """
    Make this minion's private key if it has none, and keep its file's mode and group tight
    (0600 root, or 0640 root:systemd-network for networkd); returns what it did (or would do,
    with ``test=True``), {} when nothing was needed. The key never leaves the minion: only its
    public key is published (``public_key``, through the mine).

    CLI Example:

    .. code-block:: bash

        salt z wgmesh.genkey
    """
    cfg = _keyless_config()
    if cfg.role not in ("hub", "gateway"):
        return {}
    path = wgmesh_core.render.private_key_file(cfg)
    group = wgmesh_core.render.private_key_group(cfg)
    mode = 0o600 if group == "root" else 0o640
    if os.path.exists(path):
        return {**_key_permissions(path, mode, group, test), **_replaced_live_key(cfg, path)}
    existing = _existing_key(cfg)
    if not test:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        key = existing[0] if existing else wgmesh_core.generate_private_key()
        wgmesh_core.keys.replace_secret_file(path, key + "\n", mode)   # a link there is replaced, not followed
        __salt__["file.chown"](path, "root", group)
    if existing:
        return {"path": path, "adopted_from": existing[1]}
    return {"path": path, "created": True}


def _read_text(path):
    try:
        with open(path) as handle:
            return handle.read()
    except (OSError, UnicodeDecodeError):
        return None


def _live_private_key(interface):
    if not _tunnel().exists(interface):
        return None
    return _run(["wg", "show", interface, "private-key"], check=False)["stdout"].strip() or None


def _existing_key(cfg):
    """(key, where) of a key this host already has (hand-built from the article, another
    backend's file, the minion option ``wgmesh_adopt_key_file``, or the live interface,
    which wins: its peers know that key), else None."""
    return wgmesh_core.adopt.find_existing_key(cfg.interface, _read_text, __opts__.get("wgmesh_adopt_key_file"),
                                               _live_private_key(cfg.interface))


def _private_key(cfg):
    """This host's private key: its key file's, or (under test=True, before the key state made
    the file) the key the key state would adopt; None when a new key would be made."""
    text = _read_text(wgmesh_core.render.private_key_file(cfg))
    if text is not None:
        return text.strip()
    existing = _existing_key(cfg)
    return existing[0] if existing else None


def _key_permissions(path, mode, group, test):
    """An existing key keeps its content; a mode or group wider than planned is corrected."""
    import grp
    stat = os.stat(path)
    wanted_gid = grp.getgrnam(group).gr_gid
    if stat.st_mode & 0o777 == mode and stat.st_uid == 0 and stat.st_gid == wanted_gid:
        return {}
    if not test:
        os.chmod(path, mode)
        os.chown(path, 0, wanted_gid)
    return {"path": path, "permissions": f"{oct(stat.st_mode & 0o777)} -> {oct(mode)} root:{group}"}


def _replaced_live_key(cfg, path):
    """A key file whose key is not the live interface's: the admin re-keyed the host (the tunnel
    state puts the file's key live). Reported as a change, so the new public key is published
    to the mine at once (the key state's onchanges) rather than at the mine's next interval."""
    live = _live_private_key(cfg.interface)
    text = _read_text(path)
    if not live or not text or text.strip() == live:
        return {}
    try:
        new = wgmesh_core.public_key(text.strip())
    except ValueError as exc:
        raise CommandExecutionError(f"wgmesh: {path} does not hold a WireGuard private key: {exc}")
    return {"rekeyed": f"{cfg.interface} gets the key of {path} (public key {new})"}


def public_key():
    """
    This minion's WireGuard public key, or None before the key exists (the mine function).

    CLI Example:

    .. code-block:: bash

        salt z wgmesh.public_key
    """
    try:
        path = private_key_path()
    except CommandExecutionError:
        return None
    text = _read_text(path) if path else None
    return wgmesh_core.public_key(text.strip()) if text else None


def status():
    """
    Live state of this minion's tunnel: every peer with its name, endpoint, last handshake
    (seconds ago) and traffic.

    CLI Example:

    .. code-block:: bash

        salt z wgmesh.status
    """
    cfg, tunnel = _host_config(), _tunnel()
    if not tunnel.exists(cfg.interface):
        return {"interface": cfg.interface, "up": False, "peers": {}}
    live = tunnel.live(cfg.interface)
    names = {p.public_key: p.name for p in cfg.peers}
    now = int(datetime.datetime.now().timestamp())
    peers = {}
    for key, peer in live.peers.items():
        peers[names.get(key, key)] = {
            "public_key": key, "endpoint": peer.endpoint, "allowed_ips": sorted(peer.allowed_ips),
            "latest_handshake": peer.latest_handshake,
            "handshake_age": now - peer.latest_handshake if peer.latest_handshake else None,
            "rx_bytes": peer.rx_bytes, "tx_bytes": peer.tx_bytes, "managed": key in names}
    return {"interface": cfg.interface, "up": True, "public_key": live.public_key,
            "listen_port": live.listen_port, "peers": peers}


def _ensure_addressing(cfg, test):
    """Address, MTU, state, reverse-path filter and tunnel routes of an existing interface;
    returns what changed."""
    addressing = wgmesh_core.addressing
    listings = {name: _run(list(argv))["stdout"] for name, argv in addressing.interface_listings(cfg.interface).items()}
    rp_filter = str(__salt__["sysctl.get"](addressing.rp_filter_key(cfg.interface))) if cfg.strict_rp_filter else ""
    changes, commands = addressing.interface_change(cfg, addressing.InterfaceLive(rp_filter=rp_filter, **listings))
    if not test:
        _run_commands(commands)
    return changes


def sync(test=False):
    """
    Bring the live tunnel to the desired state without resetting unchanged peers: creates the
    interface if missing, then applies peer additions, removals and updates with one ``wg set``
    naming only the changed peers (and the interface's own key or port with another ``wg set``
    when they differ), so untouched peers keep their sessions; and fixes address, MTU and routes.

    Returns the changes (peer names added/updated, public keys removed), or what would change
    with ``test=True``.

    CLI Example:

    .. code-block:: bash

        salt z wgmesh.sync
        salt z wgmesh.sync test=True
    """
    return _sync(test)


def _sync(test=False, record_footprint=True):
    """``sync``; ``record_footprint=False``: the fast path's, on an interface an apply made
    before, whose state run follows and records it (rendering every file for their paths costs
    about 0.7 s at 10,000 developers)."""
    planned = _plan()    # before the pause: the mine's keys come through Salt's transport
    with wgmesh_core.source.collector_paused():      # the live peers, compared with the planned ones
        return _sync_planned(*planned, test, record_footprint)


def _sync_planned(spec, cfg, resolved, test, record_footprint):
    if cfg.role not in ("hub", "gateway"):
        return {}
    tunnel = _tunnel()
    changes = {}
    if cfg.pending:
        changes["pending"] = cfg.pending
    if cfg.left_out:
        changes["left_out"] = cfg.left_out
    manual = _manual_actions(spec, cfg)
    if manual:
        changes["manual"] = manual
    if not tunnel.exists(cfg.interface):
        changes["interface"] = f"created by {cfg.backend}"
        if test:
            changes["peers"] = {"added": [p.name for p in cfg.peers]}
            return changes
    private_key = _private_key(cfg)
    if private_key is None and not test:
        raise CommandExecutionError(f"wgmesh: no private key at {wgmesh_core.render.private_key_file(cfg)}")
    if "interface" in changes:
        tunnel.bring_up(cfg, private_key)
    live = tunnel.live(cfg.interface)
    records = _records()
    installed = records.installed_peers(cfg.interface)
    known = wgmesh_core.live.known_keys(spec, cfg, resolved.seen, installed)
    diff = wgmesh_core.live.peer_diff(cfg, live, private_key and wgmesh_core.public_key(private_key), known,
                                      resolve=_resolve)
    if diff:
        changes["peers"] = diff.as_dict()
        if not test:
            if diff.interface:
                tunnel.set_interface(cfg, private_key, diff)
            tunnel.set_peers(cfg, diff)
    if not test:
        still_live = set(live.peers) - set(diff.removed)
        record = {key: name for key, name in installed.items() if key in still_live}
        record.update((peer.public_key, peer.name) for peer in cfg.peers)
        wgmesh_salt.records.write(records.peers_path(cfg.interface), record, current=installed)
    addressing = _ensure_addressing(cfg, test)
    if addressing:
        changes["addressing"] = addressing
    leftovers = _other_backend_leftovers(cfg, private_key)
    if leftovers:
        changes["removed_files"] = leftovers
        if not test:
            for path in leftovers:
                os.unlink(path)
    if not test and record_footprint:
        _remember(cfg)
    return changes


def _other_backend_leftovers(cfg, private_key):
    """The other backend's files of this host (after a backend switch): they would bring the
    interface up a second way at boot."""
    found = []
    for kind, path in wgmesh_core.teardown.other_backend_files(cfg):
        text = _read_text(path)
        if text is not None and private_key and wgmesh_core.teardown.is_leftover(kind, text, private_key):
            found.append(path)
    return found


def _manual_actions(spec, cfg):
    """What a person must do for this host's part to work: the static route the router of a
    route-mode LAN needs when no wgmesh minion carries it."""
    route = wgmesh_core.diff.unmanaged_routes(spec).get(cfg.host) if cfg.role == "gateway" else None
    if route is None:
        return []
    network, via, lan = route
    return [f"on the router of LAN {lan} (not a wgmesh minion): ip route replace {network} via {via}"]


def _resolve(name):
    """The addresses of a DNS name (a hub endpoint given by name), IPv4 and IPv6 as wg(8) asks
    for them; empty when it does not resolve."""
    import socket
    try:
        return {info[4][0] for info in socket.getaddrinfo(name, None, socket.AF_UNSPEC)}
    except (OSError, UnicodeError):
        return set()


def firewall(test=False):
    """
    Make this hub's or gateway's firewall match the plan, both ways: rules missing are added,
    rules nobody planned (added by hand, or left from a revoked peer) are removed, and the
    connections that removed rules had admitted are cut (conntrack). iptables backend: chains
    WGMESH-* edited in place with ``iptables-restore --noflush`` and jumped to first. firewalld backend:
    the state tree writes its permanent configuration (direct.xml, zone wgmesh, the hub's port
    policy); this applies the differences to the running firewalld one rule at a time, and
    reloads it only when it lacks the zone or policy, the kernel lost its rules, or more than
    200 rules change while those files are already current (firewalld loads them in one batch). Fails when
    the backend cannot hold the rules (firewalld not running; firewalld running under iptables).

    CLI Example:

    .. code-block:: bash

        salt a wgmesh.firewall test=True
    """
    cfg = _host_config()
    if cfg.firewall is None:
        return {}
    files_current = functools.partial(_firewalld_files_current, cfg)    # the config planned here, not again
    try:
        with wgmesh_core.source.collector_paused():  # the live rules and sets, compared with the planned ones
            return _host_firewall().apply(cfg.firewall, test, permanent_current=files_current)
    except ValueError as error:     # a rule with a newline or control character: found before any change
        raise CommandExecutionError(str(error)) from None


def _host_firewall():
    return wgmesh_salt.hostfirewall.HostFirewall(_commands(), _read_text, _remove_files)


def _remove_files(paths):
    """Delete files wgmesh wrote; a systemd unit among them is disabled first (on a host booted
    with systemd), so no dangling link is left in its target's .wants."""
    import salt.utils.systemd
    units = wgmesh_core.teardown.unit_names(paths)
    systemd = bool(units) and salt.utils.systemd.booted(__context__)
    if systemd:
        _run(["systemctl", "disable", *units], check=False)
    for path in paths:
        os.unlink(path)
    if systemd:
        _run(["systemctl", "daemon-reload"], check=False)


def _firewalld_files_current(cfg):
    """firewalld's permanent files on disk are ``cfg``'s (the state run writes them before the
    firewall): a reload would then load exactly the plan."""
    wanted = [f for f in _host_files(cfg) if f.path in wgmesh_core.teardown.FIREWALLD_FILES]
    return bool(wanted) and all(_read_text(f.path) == f.content for f in wanted)


def _run_commands(commands):
    """Run the core's commands in turn (a failure is a CommandExecutionError)."""
    return _commands().each(commands)


def routes(test=False):
    """
    On a LAN router minion: the static route(s) to the VPN via the LAN's gateway
    (``ip route replace 10.70.0.0/16 via 192.168.201.247``).

    CLI Example:

    .. code-block:: bash

        salt r1 wgmesh.routes
    """
    cfg = _host_config()
    changes, commands = wgmesh_core.addressing.static_routes_change(cfg.static_routes, _routes_shown(cfg.static_routes))
    if not test:
        _run_commands(commands)
    if not test and cfg.static_routes:
        _remember(cfg)
    return {"routes": changes} if changes else {}


def drift():
    """
    What differs between this host's live state and its desired state, without fixing it.

    CLI Example:

    .. code-block:: bash

        salt '*' wgmesh.drift
    """
    found = {}
    for name, func in (("tunnel", sync), ("firewall", firewall), ("routes", routes)):
        result = func(test=True)
        for note in ("pending", "left_out", "manual"):
            result.pop(note, None)
        if result:
            found[name] = result
    cfg = _host_config()
    if cfg.forwarding and __salt__["sysctl.get"]("net.ipv4.ip_forward") != "1":
        found["sysctl"] = {"net.ipv4.ip_forward": __salt__["sysctl.get"]("net.ipv4.ip_forward")}
    for item in files(show_secrets=True):
        path = pathlib.Path(item["path"])
        if not path.exists() or path.read_text() != item["content"]:
            found.setdefault("files", []).append(item["path"])
    return found


def converge():
    """
    The scheduled run: compile fresh pillar, note what drifted from the desired state, apply
    ``wgmesh`` (which puts it back and drops expired developers), and report each correction
    as a ``wgmesh/drift/<minion id>`` event on the master naming the host and what drifted.

    CLI Example:

    .. code-block:: bash

        salt z wgmesh.converge
    """
    with _fresh_pillar():
        found = drift()
    states = __salt__["state.apply"]("wgmesh", queue=True)   # a push's apply in flight: wait for it
    ok = isinstance(states, dict) and all(s.get("result") is not False for s in states.values())
    if found:
        __salt__["event.send"](f"wgmesh/drift/{__opts__['id']}",
                               {"host": __opts__["id"], "drift": found, "corrected": ok})
    return {"drift": found, "applied": ok}


def update_live(peers_first=False):
    """
    The gate's fast path, run on a hub or gateway just before its ``state.apply wgmesh``: with
    the pillar the master compiles now, put the firewall and then the peers live (the same
    functions the state run calls, in the same order), so a new developer's first packets pass
    one job after the gate's decision. ``peers_first``: the peers, then the firewall; the gate
    asks for it when the change takes no access from a peer that stays (``wgmesh_core.diff.
    peers_before_firewall``: a new peer meanwhile meets the old firewall's DROP, a revoked one
    is cut sooner). Nothing is skipped: the state run that follows writes
    the files and finds the live parts done. A host without its interface yet is left to the
    state run. Returns the firewall's and the tunnel's changes, and the ``timings`` of its steps
    (seconds: the pillar from the master, the plan, the firewall, the peers, in their order).

    CLI Example:

    .. code-block:: bash

        salt z wgmesh.update_live
        salt z wgmesh.update_live peers_first=True
    """
    lap = wgmesh_salt.laps.Laps()
    with _fresh_pillar():
        lap("pillar")
        cfg = _host_config()
        lap("planned")
        if cfg.role not in ("hub", "gateway") or not _tunnel().exists(cfg.interface):
            return {"skipped": f"no {cfg.interface or 'tunnel'} yet: the state run sets it up"}
        steps = (("firewall", firewall), ("tunnel", functools.partial(_sync, record_footprint=False)))
        changes = {}
        for name, step in reversed(steps) if peers_first is True else steps:
            changes[name] = step()
            lap(name)
        return dict(changes, timings=lap.timings)


def set_peers(sealed):
    """
    The gate's hand-off (``wgmesh_core.handoff``): the developer peers a push adds, re-keys or
    revokes, planned on the master with the keys it serves this hub and sealed for this
    minion's key, set with `wg addconf` through a pipe (and `wg set` for the removed): no pillar
    compile, plan or `wg show` first. Every value is checked before it reaches `wg`; a hand-off
    not sealed for this minion, changed on the way, or malformed is refused and nothing changes.
    The gate sends it in a job of its own, then ``wgmesh.update_live`` once git_pillar serves
    the revision, and the state run follows, as for any push. Returns the peers set and the
    keys removed, or ``skipped`` when the interface is not up yet.

    CLI Example (the gate sends it; by hand it takes what ``wgmesh_salt.sealed.seal`` makes):

    .. code-block:: bash

        salt z wgmesh.set_peers '{"sealed_for": "z", "key": "...", "data": "..."}'
    """
    lap = wgmesh_salt.laps.Laps()
    try:
        handoff = wgmesh_core.handoff.read_handoff(wgmesh_salt.sealed.unseal(__opts__, sealed), __opts__["id"])
    except ValueError as error:
        raise CommandExecutionError(f"wgmesh: refusing the peer hand-off: {error}") from None
    tunnel = _tunnel()
    if not tunnel.exists(handoff.interface):
        return {"skipped": f"no {handoff.interface} yet: the state run sets it up"}
    config, diff = handoff.diff()
    if diff:
        tunnel.set_peers(config, diff)
    lap("set")
    return {"set": [peer.name for peer in handoff.peers], "removed": diff.removed, "timings": lap.timings}


# --- cleanup: a host that lost its role -------------------------------------------------

def _records():
    """The peers wgmesh installed (once such a peer is deleted from the pillar, its key still
    names it, so it is removed even while another peer is pending), and the footprint."""
    return wgmesh_salt.records.Records(__opts__["cachedir"])


def _remember(cfg):
    """Record what this host's apply leaves (interface, backend, files, firewall, routes) for ``absent``."""
    path = _records().footprint_path
    record = wgmesh_core.teardown.footprint(cfg, _host_files(cfg))
    wgmesh_salt.records.write(path, record, current=wgmesh_salt.records.read(path))


def _role_now():
    """This host's role in the (fresh) pillar: 'none' when the pillar names no wgmesh network for it."""
    if _pillar().get("wgmesh") is None:
        return "none", None
    cfg = _keyless_config()
    return cfg.role, cfg.interface


def absent(test=False):
    """
    Take down everything wgmesh set up on this host, once the pillar gives it no role (a revoked
    gateway, a replaced LAN router): the WireGuard interface, its files and key, the sysctl file,
    firewalld's files (then reloads it) and the iptables chains and jumps, the static routes and the
    drift schedule. Refuses while the host still has a role. ``net.ipv4.ip_forward`` is left as
    it is live (something else on the host may forward). Returns what it removed (or would).

    CLI Example:

    .. code-block:: bash

        salt a wgmesh.absent test=True
        salt a wgmesh.absent
    """
    teardown = wgmesh_core.teardown
    with _fresh_pillar():
        role_now, pillar_interface = _role_now()
    if role_now != "none":
        raise CommandExecutionError(f"wgmesh: {__opts__['id']} is still a {role_now} in the pillar: not removing it")
    records = _records()
    record = wgmesh_salt.records.read(records.footprint_path)
    problems = teardown.record_problems(record)
    if problems:
        raise CommandExecutionError(f"wgmesh: the footprint record {records.footprint_path} holds values no apply "
                                    f"records ({'; '.join(problems)}): nothing was removed; correct or delete it")
    interface = record.get("interface") or pillar_interface or wgmesh_core.model.NetworkSpec.model_fields["interface"].default
    changes = {}
    recorded, defaults = teardown.owned_files(interface, record)
    files = [p for p in recorded if os.path.exists(p)]
    files += teardown.owned_defaults({p: _read_text(p) or "" for p in defaults if os.path.exists(p)})
    # an interface is wgmesh's only when wgmesh recorded it or its files are still there
    # (a minion that never had a role may run a WireGuard of its own)
    delete_link = bool(record.get("interface") or teardown.tunnel_files(files)) and _tunnel().exists(interface)
    if delete_link:
        changes["interface"] = f"{interface} deleted"
        if not test and os.path.exists(f"{wgmesh_core.render.WG_QUICK_DIR}/{interface}.conf"):
            _run(["wg-quick", "down", interface], check=False)   # it needs its file
    if files:
        changes["files"] = files
        if not test:
            _remove_files(files)
            if record.get("backend") == "networkd" or any(p.endswith(".netdev") for p in files):
                _run(["networkctl", "reload"], check=False)
    # the link goes after its files: whatever creates links from them (networkd on a reload)
    # finds nothing to bring it back from
    if delete_link and not test:
        _run(["ip", "link", "del", "dev", interface], check=False)
    firewall = _host_firewall().remove(files, test)
    if firewall:
        changes["firewall"] = firewall
    routes = _remove_static_routes(record, test)
    if routes:
        changes["routes"] = routes
    offline = __opts__.get("file_client") == "local"   # salt-call --local: no minion daemon, edit the file
    if teardown.SCHEDULE_JOB in (__salt__["schedule.list"](return_yaml=False, show_all=True, offline=offline) or {}):
        changes["schedule"] = f"{teardown.SCHEDULE_JOB} deleted"
        if not test:
            __salt__["schedule.delete"](teardown.SCHEDULE_JOB, offline=offline)
    if not test:
        for path in (records.footprint_path, records.peers_path(interface)):
            if os.path.exists(path):
                os.unlink(path)
        shutil.rmtree(_staging_folder(), ignore_errors=True)   # the staged copies of its files
    return changes


def _remove_static_routes(record, test):
    routes = [tuple(route) for route in record.get("static_routes") or []]
    removed, commands = wgmesh_core.addressing.static_routes_removal(routes, _routes_shown(routes, check=False))
    if not test:
        _run_commands(commands)
    return removed


def _routes_shown(routes, check=True):
    """`ip -4 route show <destination>` of each destination."""
    return {destination: _run(["ip", "-4", "route", "show", destination], check=check)["stdout"]
            for destination, _ in routes}
