"""wgmesh core: model, validate, plan and render a WireGuard hub-and-spoke network.

No Salt imports here: the Salt modules in _modules/, _states/ and _runners/
are thin adapters around this package, and the CLI and tests use it alone.
"""
import importlib as _importlib
import os as _os
import sys as _sys

#: the package's names, each from the module that defines it
_EXPORTS = {
    "derive_psk": "keys", "generate_private_key": "keys", "key_problem": "keys", "public_key": "keys",
    "NetworkSpec": "model",
    "HostConfig": "plan", "client_routes": "plan", "host_config": "plan", "managed_hosts": "plan",
    "static_route_instructions": "plan",
    "FileSpec": "render", "client_config": "render", "host_files": "render", "iptables_restore": "render",
    "wg_setconf": "render",
    "InvalidNetwork": "validate", "Problem": "validate", "load_network": "validate",
}
__all__ = sorted(_EXPORTS)
#: what a long-lived Salt process imports up front (``load_all``)
_MODULES = ("addresssets", "addressing", "adopt", "firewall", "hostkeys", "keys", "live", "pins", "plan", "render", "teardown",
            "validate")


def __getattr__(name):
    """The package's names and modules, imported when first used: the `wgmesh` command is a new
    process each time and imports only what its command needs (`wgmesh validate` needs neither
    Jinja nor the firewall)."""
    if name in _EXPORTS:
        value = getattr(_importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    elif not name.startswith("_") and _os.path.isfile(_os.path.join(_os.path.dirname(__file__), f"{name}.py")):
        value = _importlib.import_module(f"{__name__}.{name}")
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def load_all() -> None:
    """Import the core's modules now: a minion or master forks each job from a process that keeps
    its imports, so a module imported there is not imported again in every job."""
    for name in _MODULES:
        _importlib.import_module(f"{__name__}.{name}")


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
