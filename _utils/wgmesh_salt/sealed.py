"""Data only one minion can read, sent in a job's arguments: sealed on the master for the
minion's public key (the one it was accepted with), opened on the minion with its private key.

Salt encrypts a minion's pillar this way (``salt.channel.server``: a fresh AES key, RSA-OAEP for
the minion's key, Salt's ``Crypticle``: AES-CBC with HMAC-SHA256); a job's arguments are only
under the key every minion shares, and are stored in the master's job cache and fired on its
event bus. The same primitives from ``salt.crypt`` serve here, base64 so the job's arguments
stay text.
"""
from __future__ import annotations

import base64
import binascii
import os

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
import salt.crypt

# Salt's own mark on a sealed value, and what it holds: {"sealed_for": minion id, "key", "data"}
_FIELDS = {"sealed_for", "key", "data"}


def seal(opts, minion_id: str, value) -> dict:
    """``value`` (plain data) sealed for ``minion_id``'s accepted key (on the master)."""
    public = salt.crypt.PublicKey.from_file(os.path.join(opts["pki_dir"], "minions", minion_id))
    key = salt.crypt.Crypticle.generate_key_string()
    return {"sealed_for": minion_id,
            "key": base64.b64encode(public.encrypt(key)).decode(),
            "data": base64.b64encode(salt.crypt.Crypticle(opts, key).dumps(value)).decode()}


def unseal(opts, sealed):
    """The value in ``sealed``, opened with this minion's private key; ValueError when it is not
    sealed for this minion or was changed on the way (the HMAC fails)."""
    if not isinstance(sealed, dict) or set(sealed) != _FIELDS or sealed["sealed_for"] != opts["id"]:
        raise ValueError(f"not a value sealed for {opts['id']}")
    try:
        key = _own_private_key(opts).decrypt(base64.b64decode(sealed["key"], validate=True), _OAEP)
        return salt.crypt.Crypticle(opts, key.decode()).loads(base64.b64decode(sealed["data"], validate=True))
    except (binascii.Error, ValueError, TypeError, salt.crypt.AuthenticationError) as error:
        raise ValueError(f"cannot open the sealed value: {error}") from None


# salt.crypt's OAEP_SHA1, what PublicKey.encrypt seals with
_OAEP = padding.OAEP(mgf=padding.MGF1(algorithm=hashes.SHA1()), algorithm=hashes.SHA1(), label=None)


def _own_private_key(opts):
    """The minion's own key, loaded without OpenSSL's consistency check of an RSA key (about
    40 ms, on the path from a push to the hub's new peer; salt.crypt.PrivateKey always runs
    it): the key is this minion's own file, not something received."""
    with open(os.path.join(opts["pki_dir"], "minion.pem"), "rb") as handle:
        return serialization.load_pem_private_key(handle.read(), password=None, unsafe_skip_rsa_key_validation=True)
