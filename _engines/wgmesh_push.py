"""
Master engine: the pillar repository's post-receive hook (reactor/hooks/post-receive) tells
it of a push over a local socket, and it fires ``wgmesh/push`` on the master's event bus, where
the reactor gates the push. Without it the hook starts ``salt-run event.send``, a Salt process of
its own: about 0.4 s of CPU between ``git push`` and the gate's start, on every push.

The hook's note is a datagram of JSON, ``{"old": sha, "new": sha, "ref": "refs/heads/..."}``; a
note that is not exactly that is dropped and logged. The gate trusts none of it anyway (it
fetches the branch itself), so whoever may write to the socket can at most start a gate run,
as they could by pushing.

.. code-block:: yaml

    # /etc/salt/master.d/wgmesh.conf
    engines:
      - wgmesh_push:
          socket_path: /var/run/salt/master/wgmesh-push.sock   # the default: in the master's sock_dir
          group: git          # the git server's user may write to it (mode 0660; default: the master's user only)
"""
import grp
import json
import logging
import os
import re
import socket

import salt.utils.event

log = logging.getLogger(__name__)
__virtualname__ = "wgmesh_push"

SOCKET_NAME = "wgmesh-push.sock"                  # in the master's sock_dir unless socket_path says
TAG = "wgmesh/push"
MAX_NOTE = 1024                                   # bytes; a hook's note is about 150
SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")    # SHA-1 or SHA-256 object names
REF = re.compile(r"refs/heads/[A-Za-z0-9._/-]{1,200}")


def __virtual__():
    if __opts__.get("__role") != "master":
        return False, "wgmesh_push: a master engine (it fires the pillar repository's pushes on the master's bus)"
    return __virtualname__


def note_of(datagram: bytes):
    """The hook's note as event data, or None when it is not exactly one."""
    try:
        note = json.loads(datagram.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        return None
    if not isinstance(note, dict) or sorted(note) != ["new", "old", "ref"]:
        return None
    if not all(isinstance(note[key], str) for key in note):
        return None
    if not (SHA.fullmatch(note["old"]) and SHA.fullmatch(note["new"]) and REF.fullmatch(note["ref"])):
        return None
    return note


def listen(path: str, group=None) -> socket.socket:
    """A datagram socket at ``path`` (a stale one replaced), writable by its owner and ``group``."""
    if os.path.exists(path) and not os.path.isdir(path):
        os.unlink(path)
    os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    old_umask = os.umask(0o117)          # no moment with the socket writable by others
    try:
        sock.bind(path)
    finally:
        os.umask(old_umask)
    if group is not None:
        os.chown(path, -1, grp.getgrnam(group).gr_gid)
    os.chmod(path, 0o660)
    return sock


def relay(sock: socket.socket, fire):
    """Receive one datagram: fire it as ``wgmesh/push`` when it is a note, else log and drop it."""
    datagram = sock.recv(MAX_NOTE + 1)
    note = note_of(datagram) if len(datagram) <= MAX_NOTE else None
    if note is None:
        log.warning("wgmesh_push: dropped a note that is not a push (%d bytes)", len(datagram))
        return None
    fire(note, TAG)
    return note


def start(socket_path=None, group=None):
    """Relay the hook's notes to the master's event bus (runs for the master's lifetime)."""
    socket_path = socket_path or os.path.join(__opts__["sock_dir"], SOCKET_NAME)
    sock = listen(socket_path, group)
    fire = salt.utils.event.get_master_event(__opts__, __opts__["sock_dir"], listen=False).fire_event
    log.info("wgmesh_push: listening on %s", socket_path)
    while True:
        relay(sock, fire)
