"""wgmesh lab: the article's network (hub z, gateways a/c behind NAT, LAN
devices, laptops e/f behind home NAT, salt-master) in Linux namespaces.

    from lab import Lab
    with Lab() as lab:
        lab.ping("a", "203.0.113.1")

See lab/README.md.
"""
from . import plan
from .labs import cleanup_stale, default_targets, format_matrix, list_labs, status_report
from .topology import BIND_DIRS, NETNS_PREFIX, RUN_ROOT, WRAPPER, Lab, LabCommandError, LabError
from .saltctl import salt_bin

__all__ = ["Lab", "LabError", "LabCommandError", "cleanup_stale", "format_matrix",
           "status_report", "list_labs", "default_targets", "plan", "salt_bin",
           "BIND_DIRS", "NETNS_PREFIX", "RUN_ROOT", "WRAPPER"]
