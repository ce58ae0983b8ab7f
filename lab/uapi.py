"""One request to a wireguard-go interface over its UAPI control socket, as `wg` sends them
(https://www.wireguard.com/xplatform/): the standard library only, so that a script the
benchmarks run inside a host with ``python -I -S`` can import it from this folder."""
from __future__ import annotations

import socket

SOCKET = "/run/wireguard/wg0.sock"


def request(text: str, path: str = SOCKET) -> bytes:
    """Send ``text`` (``get=1`` or ``set=1`` and its lines, ending with an empty line) and return
    the whole answer, up to the empty line that ends it (at 10,000 peers a get is about 3 MB)."""
    chunks, tail = [], b""
    with socket.socket(socket.AF_UNIX) as control:
        control.connect(path)
        control.sendall(text.encode())
        while not tail.endswith(b"\n\n"):
            chunk = control.recv(1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
            tail = (tail + chunk)[-2:]
    return b"".join(chunks)
