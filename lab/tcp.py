"""TCP probes for the lab (run inside a host, like icmp.py).

    python -I tcp.py serve [--udp] PORT                 # echo server, until killed
    python -I tcp.py connect [-W SECONDS] [--udp] [--source IP] IP:PORT ...
        # JSON {target: connected (UDP: a datagram sent) and echoed}
    python -I tcp.py hold IP:PORT --seconds S [--interval I] [--give-up G]
        # one connection kept open, a byte sent every I s, until S s pass or none is answered
        # for G s; JSON {"opened", "sent", "answered", "last_answer": seconds after opening, or null}

A probe succeeds only when the listener answers, so a firewall that drops (timeout) or
rejects (connection refused, host unreachable) both count as blocked.
"""
from __future__ import annotations

import argparse
import json
import socket
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor


def serve_udp(port: int) -> None:
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    server.bind(("0.0.0.0", port))
    while True:
        data, peer = server.recvfrom(4096)
        server.sendto(data, peer)


def serve(port: int) -> None:
    server = socket.create_server(("0.0.0.0", port), reuse_port=True)

    def echo(conn):
        with conn:
            while data := conn.recv(4096):
                conn.sendall(data)

    while True:
        conn, _ = server.accept()
        threading.Thread(target=echo, args=(conn,), daemon=True).start()


def _target(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)


def connect_udp(target: str, timeout: float, source: str | None = None) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as conn:
        conn.settimeout(timeout / 3)
        if source:
            conn.bind((source, 0))
        for _ in range(3):      # a lost datagram is not a firewall
            try:
                conn.sendto(b"probe\n", _target(target))
                return conn.recv(16) == b"probe\n"
            except socket.timeout:
                continue
            except OSError:
                return False
    return False


def connect(target: str, timeout: float, source: str | None = None) -> bool:
    try:
        with socket.create_connection(_target(target), timeout=timeout,
                                      source_address=(source, 0) if source else None) as conn:
            conn.sendall(b"probe\n")
            return conn.recv(16) == b"probe\n"
    except OSError:
        return False


def hold(target: str, seconds: float, interval: float, give_up: float) -> dict:
    result = {"opened": False, "sent": 0, "answered": 0, "last_answer": None}
    try:
        conn = socket.create_connection(_target(target), timeout=2)
    except OSError:
        return result
    result["opened"] = True
    start = time.monotonic()
    conn.settimeout(interval)
    with conn:
        while time.monotonic() - start < seconds:
            if time.monotonic() - start - (result["last_answer"] or 0) > give_up:
                break       # silent for give_up seconds: cut
            try:
                conn.sendall(b"x")
                result["sent"] += 1
                if conn.recv(1) == b"x":
                    result["answered"] += 1
                    result["last_answer"] = round(time.monotonic() - start, 2)
                    time.sleep(interval)
            except socket.timeout:
                continue
            except OSError:
                break
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="TCP probes for the wgmesh lab")
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("serve")
    p.add_argument("--udp", action="store_true")
    p.add_argument("port", type=int)
    p = sub.add_parser("connect")
    p.add_argument("-W", "--timeout", type=float, default=1.0)
    p.add_argument("--udp", action="store_true")
    p.add_argument("--source", help="connect from this local address")
    p.add_argument("targets", nargs="+")
    p = sub.add_parser("hold")
    p.add_argument("target")
    p.add_argument("--seconds", type=float, required=True)
    p.add_argument("--interval", type=float, default=0.2)
    p.add_argument("--give-up", type=float, default=5.0, help="stop after this long without an answer")
    args = parser.parse_args(argv)
    if args.cmd == "serve":
        (serve_udp if args.udp else serve)(args.port)
    elif args.cmd == "connect":
        probe = connect_udp if args.udp else connect
        with ThreadPoolExecutor(max_workers=16) as pool:
            results = dict(zip(args.targets, pool.map(lambda t: probe(t, args.timeout, args.source), args.targets)))
        print(json.dumps(results))
    else:
        print(json.dumps(hold(args.target, args.seconds, args.interval, args.give_up)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
