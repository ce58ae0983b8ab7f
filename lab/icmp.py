"""Minimal ICMP echo ("ping") for the lab: the machine has no iputils-ping.

    python icmp.py DST... [-c COUNT] [-W TIMEOUT] [-i INTERVAL] [--json]

Run inside a host's namespaces (the lab does that).  Exit 0 if every
destination answered at least once, 1 otherwise.  Several destinations are
probed concurrently (one round of probes, then wait); --json prints
{dst: replies} instead.
Needs root (raw socket).  Standard library only.
"""
from __future__ import annotations

import argparse
import json
import os
import select
import socket
import struct
import sys
import time


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    s = (s >> 16) + (s & 0xFFFF)
    s += s >> 16
    return ~s & 0xFFFF


def _packet(ident: int, seq: int) -> bytes:
    payload = struct.pack("!d", time.monotonic()) + b"wgmesh-lab" * 4
    hdr = struct.pack("!BBHHH", 8, 0, 0, ident, seq)
    return struct.pack("!BBHHH", 8, 0, _checksum(hdr + payload), ident, seq) + payload


def probe_round(sock: socket.socket, probes: dict, timeout: float) -> dict:
    """Send one echo per (dst, ident, seq) in probes {key: (dst, ident, seq)},
    wait for replies.  -> {key: (rtt seconds | None, message)}"""
    res = {}
    t0 = time.monotonic()
    want = {}
    for key, (dst, ident, seq) in probes.items():
        try:
            sock.sendto(_packet(ident, seq), (dst, 0))
            want[(ident, seq)] = key
        except OSError as exc:
            res[key] = (None, f"send: {exc.strerror}")
    deadline = t0 + timeout
    while want:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        r, _, _ = select.select([sock], [], [], left)
        if not r:
            break
        data, addr = sock.recvfrom(65535)
        ihl = (data[0] & 0x0F) * 4
        icmp = data[ihl:]
        if len(icmp) < 8:
            continue
        typ, code, _, rid, rseq = struct.unpack("!BBHHH", icmp[:8])
        key = want.get((rid, rseq))
        if typ == 0 and key is not None and addr[0] == probes[key][0]:
            res[key] = (time.monotonic() - t0, f"reply from {addr[0]}")
            del want[(rid, rseq)]
        elif typ in (3, 11) and len(icmp) >= 8 + 20 + 8:
            # an error about one of our probes? (embedded IP header + 8 bytes)
            inner = icmp[8:]
            iihl = (inner[0] & 0x0F) * 4
            itype, _, _, iid, iseq = struct.unpack("!BBHHH", inner[iihl:iihl + 8])
            key = want.get((iid, iseq))
            if itype == 8 and key is not None:
                what = {3: "unreachable", 11: "time exceeded"}[typ]
                res[key] = (None, f"{what} (code {code}) from {addr[0]}")
                del want[(iid, iseq)]
    for key in want.values():
        res[key] = (None, "timeout")
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("dst", nargs="+")
    ap.add_argument("-c", "--count", type=int, default=1)
    ap.add_argument("-W", "--timeout", type=float, default=1.0)
    ap.add_argument("-i", "--interval", type=float, default=0.2)
    ap.add_argument("-q", "--quiet", action="store_true")
    ap.add_argument("-I", "--source", help="send from this local address")
    ap.add_argument("--json", action="store_true",
                    help="print {dst: replies received}; exit 0")
    ap.add_argument("--lost-at", action="store_true",
                    help="with --json: print {\"replies\": {dst: replies}, \"lost_at\": {dst: [CLOCK_MONOTONIC "
                         "time each unanswered probe was sent]}}")
    a = ap.parse_args(argv)
    dsts = {}
    for d in a.dst:
        try:
            dsts[d] = socket.gethostbyname(d)
        except OSError:
            dsts[d] = None
    sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    if a.source:
        sock.bind((a.source, 0))
    base = (os.getpid() * 7 + int(time.time() * 1000)) & 0xFFFF
    got = {d: 0 for d in dsts}
    lost_at = {d: [] for d in dsts}
    for seq in range(1, a.count + 1):
        probes = {d: (ip, (base + i) & 0xFFFF, seq)
                  for i, (d, ip) in enumerate(dsts.items()) if ip}
        sent = time.monotonic()
        res = probe_round(sock, probes, a.timeout)
        for d, (rtt, msg) in res.items():
            if rtt is not None:
                got[d] += 1
            else:
                lost_at[d].append(round(sent, 3))
            if not a.quiet and not a.json:
                print(f"seq={seq} {d}: {msg}" + (f" time={rtt * 1000:.2f} ms" if rtt else ""))
        if seq < a.count and a.interval:
            time.sleep(a.interval)
    if a.json:
        print(json.dumps({"replies": got, "lost_at": lost_at} if a.lost_at else got))
        return 0
    ok = all(got.values())
    if not a.quiet or not ok:
        for d, n in got.items():
            print(f"{d}: {a.count} sent, {n} received")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
