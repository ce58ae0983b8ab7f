"""ext_pillar giving the hub and each gateway the keys they need, and nothing else.

Preshared keys never enter git: they are derived on the master from one secret
(32 random bytes made at first use, kept in ``secret_file`` mode 0600 on the
master) with wgmesh_core's ``derive_psk``.  The hub gets every hub<->peer key,
a gateway only its own, under the ``wgmesh_psk`` pillar key.  A developer's key
reaches the developer only through the ``wgmesh.client_config`` runner.

Host public keys are pinned here, on the master: the first key each host
publishes in the Salt mine is recorded in ``pin_file`` (default
``host_keys.json`` next to ``secret_file``); the hub and gateways get the
pinned keys, and the hosts whose published key was refused with the reason,
under ``wgmesh_keys``.  A refused key fires ``wgmesh/key/changed`` once, and
stays refused until ``salt-run wgmesh.accept_key HOST``.

Master config::

    ext_pillar:
      - wgmesh_secrets:
          secret_file: /etc/salt/wgmesh/psk.secret
          # pin_file: /etc/salt/wgmesh/host_keys.json
"""
import logging

try:
    # installed with saltext-wgmesh, or synced from _utils/ (Salt puts that folder on sys.path)
    import wgmesh_core
    # synced anew since this process imported it (a wgmesh_core from before forget_if_changed: kept)
    if getattr(wgmesh_core, "forget_if_changed", bool)():
        import wgmesh_core
    from wgmesh_core import hostkeys, pins
except ImportError as error:
    wgmesh_core = None
    IMPORT_ERROR = str(error)

log = logging.getLogger(__name__)
SERVED = ("wgmesh_psk", "wgmesh_keys")


def __virtual__():
    if wgmesh_core is None:
        return (False, f"wgmesh_secrets: cannot import the wgmesh_core package ({IMPORT_ERROR}); run `salt-pip install 'saltext-wgmesh[master]'` "
                       "or `salt-run saltutil.sync_all`")
    return "wgmesh_secrets"


def _fire(tag, data):
    import salt.utils.event
    with salt.utils.event.get_master_event(__opts__, __opts__["sock_dir"], listen=False) as bus:
        bus.fire_event(data, tag)


def _mine_of(minion_id):
    import salt.cache
    return salt.cache.factory(__opts__).fetch("mine", minion_id)


def host_keys_for(spec, pillar, pin_file):
    """Pin first publishes, refuse changed or borrowed keys (firing ``wgmesh/key/changed`` once
    per refusal); returns the resolved keys."""
    published = hostkeys.published_host_keys(spec, _mine_of, pillar.get("wgmesh_host_keys"))
    with pins.updating_pins(pin_file) as store:
        resolved, news = hostkeys.pin_host_keys(spec, published, store)
        pinned = dict(store["pinned"])
    for host, key in resolved.new_pins.items():
        log.info("wgmesh: pinned the public key of %s: %s", host, key)
    for host, why in news.items():
        log.error("wgmesh: %s is left out: %s", host, why)
        _fire("wgmesh/key/changed", {"host": host, "reason": why, "pinned": pinned.get(host)})
    return resolved


def ext_pillar(minion_id, pillar, secret_file=None, pin_file=None):
    # The pillar so far is the repository's: it may not supply what only the master serves. Salt
    # merges our result into it, so a forged value would survive the merge: drop it here.
    for key in SERVED:
        if key in pillar:
            log.error("wgmesh: ignoring the %r pillar key from the pillar repository (only the master serves it)", key)
            pillar.pop(key)
    data = pillar.get("wgmesh")
    if not data:
        return {}
    try:
        spec = wgmesh_core.load_network(data)
    except wgmesh_core.InvalidNetwork as error:
        log.error("wgmesh: invalid network, no keys for %s:\n%s", minion_id, error)
        return {}
    secret_file = secret_file or pins.DEFAULT_SECRET_FILE
    served = {}
    if minion_id in hostkeys.keyed_hosts(spec):
        resolved = host_keys_for(spec, pillar, pin_file or pins.default_pin_file(secret_file))
        served["wgmesh_keys"] = resolved.as_pillar()
    if spec.preshared_keys:
        psks = wgmesh_core.plan.preshared_keys_for(spec, minion_id, wgmesh_core.keys.load_master_secret(secret_file),
                                                   spec.preshared_key_epoch)
        if psks:
            served["wgmesh_psk"] = psks
    return served
