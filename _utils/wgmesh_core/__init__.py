"""wgmesh core: model, validate, plan and render a WireGuard hub-and-spoke network.

No Salt imports here: the Salt modules in _modules/, _states/ and _runners/
are thin adapters around this package, and the CLI and tests use it alone.
"""
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
