"""ext_pillar giving the hub and each gateway the preshared keys they need, and nothing else.

Preshared keys never enter git: they are derived on the master from one secret
(32 random bytes made at first use, kept in ``secret_file`` mode 0600 on the
master) with wgmesh_core's ``derive_psk``.  The hub gets every hub<->peer key,
a gateway only its own, under the ``wgmesh_psk`` pillar key.  A developer's key
reaches the developer only through the ``wgmesh.client_config`` runner.

Master config::

    ext_pillar:
      - wgmesh_secrets:
          secret_file: /etc/salt/wgmesh/psk.secret
"""
import logging

try:
    # installed with saltext-wgmesh, or synced from _utils/ (Salt puts that folder on sys.path)
    import wgmesh_core
except ImportError as error:
    wgmesh_core = None
    IMPORT_ERROR = str(error)

log = logging.getLogger(__name__)
DEFAULT_SECRET_FILE = "/etc/salt/wgmesh/psk.secret"


def __virtual__():
    if wgmesh_core is None:
        return (False, f"wgmesh_secrets: cannot import the wgmesh_core package ({IMPORT_ERROR}); run `salt-pip install 'saltext-wgmesh[master]'` "
                       "or `salt-run saltutil.sync_all`")
    return "wgmesh_secrets"


def ext_pillar(minion_id, pillar, secret_file=DEFAULT_SECRET_FILE):
    data = pillar.get("wgmesh")
    if not data:
        return {}
    try:
        spec = wgmesh_core.load_network(data)
    except wgmesh_core.InvalidNetwork as error:
        log.error("wgmesh: invalid network, no preshared keys for %s:\n%s", minion_id, error)
        return {}
    if not spec.preshared_keys:
        return {}
    psks = wgmesh_core.plan.preshared_keys_for(spec, minion_id, wgmesh_core.keys.load_master_secret(secret_file), spec.preshared_key_epoch)
    return {"wgmesh_psk": psks} if psks else {}
