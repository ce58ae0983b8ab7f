"""States for wgmesh: converge this minion's part of the WireGuard network.

Each state delegates to the ``wgmesh`` execution module, which reports what it
changed (or would change, under ``test=True``); here that becomes Salt's
``name/changes/result/comment``.  The files themselves are managed with
Salt's own ``file.managed`` and ``sysctl.present`` in ``salt/wgmesh/init.sls``.
"""
from salt.exceptions import CommandExecutionError

__virtualname__ = "wgmesh"


def __virtual__():
    if "wgmesh.sync" not in __salt__:
        return (False, "wgmesh: the wgmesh execution module is not available (see its load error; "
                       "run saltutil.sync_all)")
    return __virtualname__


def _converge(name, function, what, done="updated"):
    """Run ``wgmesh.<function>`` in test mode or for real and report it as a state."""
    ret = {"name": name, "changes": {}, "result": True, "comment": ""}
    test = bool(__opts__.get("test"))
    try:
        changes = __salt__[f"wgmesh.{function}"](test=test)
    except CommandExecutionError as error:
        ret["result"] = False
        ret["comment"] = str(error)
        return ret
    pending = changes.pop("pending", None)
    left_out = changes.pop("left_out", None) or {}
    notes = [f"waiting for the public key of {', '.join(pending)} (Salt mine); re-applied later"] if pending else []
    notes += [f"left out {peer}: {why}" for peer, why in left_out.items()]
    notes += [f"manual action: {action}" for action in changes.pop("manual", None) or []]
    if not changes:
        ret["comment"] = "; ".join([f"{what} is in the desired state"] + notes)
    elif test:
        ret["result"] = None
        ret["changes"] = changes
        ret["comment"] = "; ".join([f"{what} would be {done}"] + notes)
    else:
        ret["changes"] = changes
        ret["comment"] = "; ".join([f"{what} {done}"] + notes)
    return ret


def private_key(name):
    """
    Ensure this minion has a WireGuard private key (made here, never sent anywhere).

    name
        The interface (for the state's name only; the path follows the backend).
    """
    return _converge(name, "genkey", "private key", done="set up")


def tunnel(name):
    """
    Ensure the WireGuard interface exists and its live peers, address, MTU and routes match the
    plan; only the changed peers are applied (``wg set``, ``wg addconf``), so unchanged peers keep
    their sessions.

    name
        The interface, e.g. wg0.
    """
    return _converge(name, "sync", f"tunnel {name}")


def firewall(name):
    """
    Ensure a hub's or gateway's firewall matches the plan both ways (missing rules added, extra
    ones removed and their connections cut): iptables chains, or firewalld's zone and direct
    rules applied at runtime; fails when they cannot be live.
    """
    return _converge(name, "firewall", "firewall")


def lan_routes(name):
    """
    Ensure a LAN router minion routes the VPN network via its LAN's gateway.
    """
    return _converge(name, "routes", "LAN routes")


def absent(name):
    """
    Ensure a host the pillar no longer gives a role (a revoked gateway, a replaced LAN router)
    keeps nothing of wgmesh: interface, files and key, firewall rules, static routes, drift
    schedule. Fails (and removes nothing) while the host still has a role.

    name
        The interface, e.g. wg0 (for the state's name; the host's own record says what to remove).
    """
    return _converge(name, "absent", f"wgmesh on this host ({name})", done="removed")
