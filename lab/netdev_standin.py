"""STAND-IN for the WireGuard kernel module under systemd-networkd, in one lab host.

    python -I netdev_standin.py VIEW_DIR

This machine has no WireGuard kernel module, so systemd-networkd cannot create a
``Kind=wireguard`` netdev ("netdev could not be created: Operation not supported"), and a
.netdev of that name makes it refuse the userspace link wireguard-go offers instead ("wrong
KIND tun"). So the real systemd-networkd of a lab host reads VIEW_DIR, a copy of
/etc/systemd/network without the WireGuard .netdev files, and applies everything else there
(the .network files: addresses, routes, link up) on the real link; this stand-in does what
networkd's netdev code and the kernel module would do with each WireGuard .netdev: create the
link (wireguard-go), set its MTU, private key file, listen port and peers. Every 0.2 s it copies
changed files into VIEW_DIR (then `networkctl reload`, as wgmesh's own reload was on
/etc/systemd/network) and, in a round where no file is being written, creates missing links: as
networkd does, a link comes after its .network has been read, never unmanaged before it. A file is copied only once it has stood still for
one round: Salt's file.managed creates a new file 0600 and sets its mode a moment later, and a
reload in between would make networkd log "Permission denied" for a file wgmesh got right. Whether networkd parses the .netdev files
cleanly is checked separately (lab.services.networkd_parse_log).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SOURCE = Path("/etc/systemd/network")


def entries(path: Path):
    """(section, key, value); a section header yields (section, None, None)."""
    section = None
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            yield section, None, None
        else:
            key, _, value = line.partition("=")
            yield section, key.strip(), value.strip()


def is_wireguard(path: Path) -> bool:
    return path.suffix == ".netdev" and ("NetDev", "Kind", "wireguard") in set(entries(path))


def signature(path: Path) -> tuple:
    stat = path.stat()
    return stat.st_mode, stat.st_uid, stat.st_gid, stat.st_size, stat.st_mtime_ns


def mirror(view: Path, last_seen: dict) -> tuple[bool, bool]:
    """Copy /etc/systemd/network into ``view`` minus WireGuard .netdevs: (whether anything
    changed, whether a file is still being written). ``last_seen`` holds each file's signature
    from the previous round: a file that changed since then waits for the next round."""
    changed = False
    files = [p for p in SOURCE.iterdir() if p.is_file()]
    seen = {p.name: signature(p) for p in files}
    previous = dict(last_seen)
    last_seen.clear()
    last_seen.update(seen)
    writing = any(seen[name] != previous.get(name) for name in seen)
    wanted = {p.name for p in files if not is_wireguard(p)}
    for name in wanted:
        src, dst = SOURCE / name, view / name
        if seen[name] != previous.get(name):
            continue
        if not dst.exists() or dst.read_bytes() != src.read_bytes() or dst.stat().st_mode != src.stat().st_mode:
            shutil.copy2(src, dst)
            os.chown(dst, src.stat().st_uid, src.stat().st_gid)
            changed = True
    for stale in [p for p in view.iterdir() if p.name not in wanted]:
        stale.unlink()
        changed = True
    return changed, writing


def create_link(netdev: Path) -> None:
    items = list(entries(netdev))
    name = next(v for s, k, v in items if s == "NetDev" and k == "Name")
    if subprocess.run(["ip", "link", "show", "dev", name], capture_output=True).returncode == 0:
        return
    subprocess.run([os.environ.get("WG_QUICK_USERSPACE_IMPLEMENTATION", "wireguard-go"), name], check=True)
    conf = ["[Interface]"]
    for section, key, value in items:
        if key is None and section == "WireGuardPeer":
            conf.append("[Peer]")
        elif section == "WireGuard" and key == "PrivateKeyFile":
            conf.append("PrivateKey = " + Path(value).read_text().strip())
        elif section == "WireGuard" and key == "PrivateKey":
            conf.append(f"PrivateKey = {value}")
        elif section == "WireGuard" and key == "ListenPort":
            conf.append(f"ListenPort = {value}")
        elif section == "WireGuardPeer" and key:
            conf.append(f"{key} = {value}")
        elif section == "NetDev" and key == "MTUBytes":
            subprocess.run(["ip", "link", "set", "dev", name, "mtu", value], check=True)
    with tempfile.NamedTemporaryFile("w", suffix=".conf") as handle:
        os.chmod(handle.name, 0o600)
        handle.write("\n".join(conf) + "\n")
        handle.flush()
        subprocess.run(["wg", "setconf", name, handle.name], check=True)
    print(f"stand-in: created {name} from {netdev}", flush=True)


def main(view_dir: str) -> int:
    view = Path(view_dir)
    view.mkdir(parents=True, exist_ok=True)
    last_seen: dict = {}
    while True:
        try:
            changed, writing = mirror(view, last_seen)
        except FileNotFoundError:   # a file removed while it was copied (wgmesh.absent): next round
            changed, writing = True, True
        if changed:
            subprocess.run(["networkctl", "reload"], check=False)
        if writing:     # networkd reads a .netdev with the .network beside it: links wait for both
            time.sleep(0.2)
            continue
        for netdev in sorted(SOURCE.glob("*.netdev")):
            if is_wireguard(netdev):
                try:
                    create_link(netdev)
                except (OSError, subprocess.CalledProcessError, StopIteration) as error:
                    print(f"stand-in: {netdev}: {error}", flush=True)
        time.sleep(0.2)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
