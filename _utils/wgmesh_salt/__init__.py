"""The Salt side of wgmesh's adapters. What Salt serves: the pillar repository compiled by
Salt's own pillar compiler, per minion (``pillar``).

``wgmesh_core`` has no Salt imports; this package is the adapter that the
`wgmesh` command (validate, plan) and the master's gate runner share, so that
a reviewer, the gate and the minions see one document. ``commands`` runs the core's
commands through Salt's ``cmd.run_all``; ``hostfirewall`` lists the host's firewall and runs the
core's changes to it; ``tunnel`` creates the WireGuard interface and changes its peers;
``records`` keeps the minion's JSON records.
"""
from salt.exceptions import CommandExecutionError

from .pillar import Document, compile_document, read_document, read_document_at, salt_opts

__all__ = ["Document", "compile_document", "read_document", "read_document_at", "rendered", "salt_opts"]


def rendered(render_function, *args) -> str:
    """``render_function(*args)`` for a Salt module: a value the templates refuse (a newline or
    control character) fails the call with the core's message naming it, and nothing is written."""
    from wgmesh_core.render import UnsafeValue
    try:
        return render_function(*args)
    except UnsafeValue as error:
        raise CommandExecutionError(str(error)) from None
