"""wgmesh core: model, validate, plan and render a WireGuard hub-and-spoke network.

No Salt imports here: the Salt modules in _modules/, _states/ and _runners/
are thin adapters around this package, and the CLI and tests use it alone.
"""
import os as _os
import sys as _sys

from . import addressing, adopt, firewall, hostkeys, keys, live, pins, render, teardown
from . import plan
from .keys import derive_psk, generate_private_key, key_problem, public_key
from .model import NetworkSpec
from .plan import HostConfig, client_routes, host_config, managed_hosts, static_route_instructions
from .render import FileSpec, client_config, host_files, iptables_restore, wg_setconf
from .validate import InvalidNetwork, Problem, load_network

__all__ = [
    "FileSpec", "HostConfig", "InvalidNetwork", "NetworkSpec", "Problem", "client_config", "client_routes",
    "derive_psk", "generate_private_key", "host_config", "host_files", "iptables_restore", "key_problem",
    "load_network", "managed_hosts", "public_key", "static_route_instructions", "wg_setconf",
]


# --- a minion or master that synced another wgmesh and was not restarted --------------------
_PACKAGES = ("wgmesh_core", "wgmesh_salt")


def _source_stamp() -> tuple:
    """(package, file, mtime, size) of every module of wgmesh's packages, as they are on disk."""
    parent = _os.path.dirname(_os.path.dirname(_os.path.abspath(__file__)))
    stamp = []
    for package in _PACKAGES:
        folder = _os.path.join(parent, package)
        for name in sorted(_os.listdir(folder)) if _os.path.isdir(folder) else ():
            if name.endswith(".py"):
                stat = _os.stat(_os.path.join(folder, name))
                stamp.append((package, name, stat.st_mtime_ns, stat.st_size))
    return tuple(stamp)


_IMPORTED = _source_stamp()


def forget_if_changed() -> bool:
    """Drop wgmesh's packages from ``sys.modules`` when their files changed since they were
    imported (``saltutil.sync_all`` brought another wgmesh), so that the next import reads the
    files on disk; True when they were dropped. A minion forks each job from a process that keeps
    its imports, and Salt reloads only its own modules after a sync: without this, the new
    execution module would run on the old core until the minion restarts."""
    if _source_stamp() == _IMPORTED:
        return False
    for name in [name for name in _sys.modules if name.split(".")[0] in _PACKAGES]:
        del _sys.modules[name]
    return True
