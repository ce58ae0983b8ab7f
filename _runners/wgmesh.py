"""Master-side wgmesh commands: developers' client configs, validation, status.

The network comes from the master's pillar (git_pillar in production, any
pillar source works); the core does the rest.
"""
import datetime
import logging
import os
import sys

import salt.pillar
from salt.exceptions import SaltInvocationError

log = logging.getLogger(__name__)
MINE_FUNCTION = "wgmesh_public_key"


def _core():
    try:
        import wgmesh_core
    except ImportError:
        sys.path.append(os.path.join(__opts__["extension_modules"], "utils"))
        import wgmesh_core
    return wgmesh_core


def __virtual__():
    try:
        _core()
    except ImportError as error:
        return (False, f"wgmesh runner: cannot import wgmesh_core ({error}); run `salt-run saltutil.sync_all`")
    return "wgmesh"


def _pillar(minion_id=None):
    """The pillar as the master compiles it for ``minion_id`` (default: the master's own id)."""
    minion_id = minion_id or __opts__["id"]
    pillar = salt.pillar.get_pillar(__opts__, {}, minion_id, saltenv=__opts__.get("saltenv") or "base",
                                    pillarenv=__opts__.get("pillarenv"))
    return pillar.compile_pillar()


def _spec(pillar=None):
    core = _core()
    pillar = _pillar() if pillar is None else pillar
    if "wgmesh" not in pillar:
        raise SaltInvocationError("no 'wgmesh' pillar on this master")
    return core.load_network(pillar["wgmesh"])


def _secret_file():
    for entry in __opts__.get("ext_pillar") or []:
        if isinstance(entry, dict) and "wgmesh_secrets" in entry:
            return (entry["wgmesh_secrets"] or {}).get("secret_file")
    return None


def _master_secret():
    path = _secret_file()
    return _core().keys.load_master_secret(path) if path else None


def validate():
    """
    Validate the network in the master's pillar; returns True or the list of problems.

    CLI Example:

    .. code-block:: bash

        salt-run wgmesh.validate
    """
    core = _core()
    try:
        _spec()
    except core.InvalidNetwork as error:
        return [str(problem) for problem in error.problems]
    return True


def hub_public_key(spec=None):
    """
    The hub's public key, from the Salt mine.

    CLI Example:

    .. code-block:: bash

        salt-run wgmesh.hub_public_key
    """
    spec = spec or _spec()
    mined = __salt__["mine.get"](spec.hub.minion, MINE_FUNCTION) or {}
    return mined.get(spec.hub.minion)


def client_config(name):
    """
    Print developer ``name``'s wg-quick config, complete but for their private key (which
    never leaves their machine): hub public key from the mine, preshared key from the master.

    CLI Example:

    .. code-block:: bash

        salt-run wgmesh.client_config e
    """
    core = _core()
    spec = _spec()
    if name not in spec.developers:
        raise SaltInvocationError(f"no developer {name!r} in the wgmesh pillar")
    if not spec.is_active(spec.developers[name], datetime.date.today()):
        raise SaltInvocationError(f"developer {name!r} is revoked or expired")
    secret = _master_secret() if spec.preshared_keys else None
    psk = core.plan.peer_psk(spec, name, secret, spec.preshared_key_epoch) if secret else None
    return core.client_config(spec, name, hub_public_key=hub_public_key(spec), psk=psk)
