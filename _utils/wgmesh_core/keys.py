"""WireGuard keys: checking, generating, and the preshared keys kept on the master.

A WireGuard key is 32 bytes, written in base64 (44 characters ending in '=').
Private keys are made on the host that uses them and never leave it.
Preshared keys are derived on the master from one secret that lives only in
the master's own files (see ``derive_psk``), so none is ever written to git.
"""
from __future__ import annotations

import base64
import binascii
import contextlib
import errno
import hashlib
import hmac
import os
import secrets
import stat
import tempfile

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

_RAW = serialization.Encoding.Raw

# Curve25519 points of small order (the all-zero key among them): X25519 with any
# of them gives a predictable shared secret, so no peer may use one as its key.
# Compared with bit 255 cleared, as X25519 ignores it (tests/core/test_keys.py
# checks each with a real key exchange).
LOW_ORDER_POINTS = frozenset(bytes.fromhex(point) for point in (
    "00" * 32, "01" + "00" * 31,
    "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
    "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
    "ec" + "ff" * 30 + "7f", "ed" + "ff" * 30 + "7f", "ee" + "ff" * 30 + "7f"))


def shown(value, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters: messages name a bad value without echoing a huge one."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(str(value))} characters)"


def one_line(text: str) -> str:
    """``text`` on one line, its line breaks and other control characters written as escapes."""
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode() for ch in text)


def key_problem(key, secret: bool = False) -> str | None:
    """Why ``key`` is not a usable WireGuard key, or None when it is one.

    A key is 32 bytes in canonical base64 (44 characters), and a public key is
    never a low-order point such as the all-zero key.  ``secret``: the key is
    private, so the message must not quote it.
    """
    if not isinstance(key, str):
        return f"expected a base64 string, got {type(key).__name__}"
    quoted = "the key" if secret else shown(key)
    if len(key) != 44:
        return f"{quoted} is {len(key)} characters long, a WireGuard key has 44"
    try:
        raw = base64.b64decode(key, validate=True)
    except (binascii.Error, ValueError):
        return f"{quoted} is not valid base64"
    if len(raw) != 32 or base64.b64encode(raw).decode() != key:
        return f"{quoted} does not encode 32 bytes"
    if not secret and raw[:31] + bytes([raw[31] & 0x7F]) in LOW_ORDER_POINTS:
        return f"{quoted} is {'the all-zero key' if not any(raw) else 'a low-order point'}: it is no one's key"
    return None


def generate_private_key() -> str:
    """A new private key, clamped as `wg genkey` does."""
    raw = X25519PrivateKey.generate().private_bytes(
        _RAW, serialization.PrivateFormat.Raw, serialization.NoEncryption())
    return base64.b64encode(raw).decode()


def public_key(private_key: str) -> str:
    """The public key of ``private_key`` (what `wg pubkey` prints)."""
    problem = key_problem(private_key, secret=True)
    if problem:
        raise ValueError(f"not a private key: {problem}")
    private = X25519PrivateKey.from_private_bytes(base64.b64decode(private_key))
    raw = private.public_key().public_bytes(_RAW, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def new_master_secret() -> bytes:
    return secrets.token_bytes(32)


def derive_psk(master_secret: bytes, peer: str, peer_public_key: str = "", epoch: int = 0) -> str:
    """The preshared key of the hub<->``peer`` pair.

    HMAC-SHA256 of the master secret over the peer's name and public key: the
    same pair always gets the same key (so hub and peer agree without storing
    it), a developer who re-keys gets a new one, and bumping ``epoch``
    rotates them all.
    """
    message = f"wgmesh-psk|{peer}|{peer_public_key}|{epoch}".encode()
    digest = hmac.new(master_secret, message, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def write_secret_file(path: str, content: str | bytes, mode: int = 0o600) -> None:
    """Create ``path`` with ``mode`` from the start, so it is never readable by others; a
    symbolic link at ``path`` is refused (OSError), never written through."""
    data = content.encode() if isinstance(content, str) else content
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, mode)
    try:
        os.fchmod(fd, mode)
        os.write(fd, data)
    finally:
        os.close(fd)


def create_secret_file(path: str, content: str | bytes, mode: int = 0o600) -> None:
    """Create ``path`` with ``mode`` holding ``content`` only if nothing is there, whatever
    appeared meanwhile (another run's key): FileExistsError, and that file stays as it is. Never
    seen half-written: written beside it under a name of its own, then linked to ``path`` (a
    link fails when the name exists, a link at it included)."""
    fd, written = tempfile.mkstemp(prefix=".wgmesh-", dir=os.path.dirname(path) or ".")
    try:
        os.fchmod(fd, mode)
        os.write(fd, content.encode() if isinstance(content, str) else content)
        os.fsync(fd)
        os.link(written, path)
    finally:
        os.close(fd)
        os.unlink(written)


def read_own_secret_file(path: str) -> str:
    """The text of a secret file that is this user's alone: a regular file, not read through a
    symbolic link, owned by this user, with no permission for group or others. ValueError
    saying what is wrong otherwise (a key others could read, or planted, is no private key)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)     # a FIFO planted there: no wait
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise ValueError(f"{path} is a symbolic link: give the key file itself") from None
        raise
    try:
        status = os.fstat(fd)
        if not stat.S_ISREG(status.st_mode):
            raise ValueError(f"{path} is not a regular file")
        if status.st_uid != os.getuid():
            raise ValueError(f"{path} belongs to user id {status.st_uid}, not to you: not your key")
        if status.st_mode & 0o077:
            raise ValueError(f"{path} has mode {stat.S_IMODE(status.st_mode):04o}: others may have read the "
                             "private key; make a new one (remove the file), or `chmod 600` it if nobody did")
        with os.fdopen(fd, closefd=False) as handle:
            return handle.read()
    finally:
        os.close(fd)


def replace_secret_file(path: str, content: str | bytes, mode: int = 0o600) -> None:
    """Replace ``path`` in one step with a file of ``mode`` (0600) holding ``content``: a crash
    leaves the old or the new, never a part (written beside it as ``<path>.new``, then renamed
    over it). What is at ``path`` or ``<path>.new``, a symbolic link included, is replaced, never
    written through."""
    new = path + ".new"
    with contextlib.suppress(FileNotFoundError):
        os.unlink(new)
    write_secret_file(new, content, mode)
    os.replace(new, path)


def load_master_secret(path: str) -> bytes:
    """The master's preshared-key secret, made (mode 0600, in a 0700 folder) on first use."""
    os.makedirs(os.path.dirname(path) or ".", mode=0o700, exist_ok=True)
    try:
        # O_EXCL: when several master workers start at once, one secret wins and all read it
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "w") as handle:
            handle.write(new_master_secret().hex() + "\n")
    with open(path) as handle:
        return bytes.fromhex(handle.read().strip())
