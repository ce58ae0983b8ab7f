"""Benchmark: git push -> a new developer's first ping, and pings lost by unchanged peers,
wgmesh's live GitOps loop side by side with the article's method, in the same lab run.

    .venv/bin/python bench/bench_gitops.py [--runs 5] [--profile article|variants]   (root; about 4 minutes)
    .venv/bin/python bench/bench_gitops.py --profile variants --developers 10000 --runs 3   (a 10,000-developer hub)
    ... --format json   (developers.sls written as #!json, a developer per line)

The article's network is brought up in the namespace lab (lab/article.py). Developer g's
laptop is host `ne`; its config is made once. Each run, with g's tunnel up (brought up before
the clock starts) and g's laptop trying to reach the hub:
- wgmesh: `git push` adding g (committed before the clock starts; post-receive hook ->
  reactor -> gate -> the fast path's `wgmesh.set_peers` (the gate's sealed hand-off) and
  `wgmesh.update_live` on the hub, then its state run);
  timed until g's laptop has its first reply from the hub ("first ping"), until g is a peer
  of the hub's live interface ("hub ready": a watcher process in the hub asks wireguard-go
  over its UAPI socket, every 10 ms at the article's size), and until the gate's
  `wgmesh/applied` event ("converged": every state run done); then a push revoking g.
- the article's method: the hub's config file edited (the same content wgmesh rendered) and
  the interface restarted (`wg-quick down` + `up`, as `systemctl restart systemd-networkd`
  would), timed the same way; then the same to remove g.
Meanwhile f pings d (LAN2, through z and c) and a pings c (gateway to gateway, through z)
every 20 ms; their lost replies are counted per change, which starts once both answer (the
article's restart cuts them for about 15 s). Medians over the runs.

How g's laptop tries: it pings the hub with the hub's peer just set anew on its interface
(removed and set again over its UAPI socket), waiting up to 0.1 s for a reply, again and
again. WireGuard sends a handshake with a new peer's first packet, but tries again only 5 s
after a handshake that got no answer: a laptop that merely kept pinging would measure that
timer, and one brought up once the watcher saw g would measure the watcher (at 10,000 peers
each look is a 3 MB answer, so it looks every 0.15-0.45 s). So the first ping is the first
moment a client could have its answer, give or take 0.1 s. (Until 2026-11-27 the laptop
brought its tunnel up once the watcher had seen g: that first ping also held the watcher's
delay and the laptop's `wg-quick up`, 0.15-0.3 s.)
"""
import argparse
import ipaddress
import json
import statistics
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from lab import Lab  # noqa: E402
from lab.article import D, PROFILES, VPN, ArticleLab  # noqa: E402

ICMP = REPO / "lab" / "icmp.py"
G_ADDRESS = "10.70.0.6"

# Runs inside g's laptop, its tunnel up: until the hub answers, set the hub's peer anew (its
# own settings, removed and set again over the UAPI socket: a new peer's first packet starts a
# handshake at once) and ping the hub, waiting up to 0.1 s for the reply. Prints the
# CLOCK_MONOTONIC times of the first try and of the first reply (the clock is shared by all
# namespaces of the machine).
FIRST_REPLY = f"""
import socket, sys, time
sys.path.insert(0, {str(ICMP.parent)!r})
from icmp import probe_round
from uapi import request

def uapi(text):
    answer = request(text).decode()
    if "errno=0" not in answer:
        sys.exit("wireguard-go refused " + repr(text) + ": " + repr(answer))
    return answer

SETTINGS = ("public_key", "preshared_key", "endpoint", "persistent_keepalive_interval", "allowed_ip")
peer = uapi("get=1\\n\\n").split("public_key=", 1)[1]      # the laptop's one peer: the hub
lines = ["public_key=" + peer.splitlines()[0]] + [
    line for line in peer.splitlines()[1:] if line.split("=", 1)[0] in SETTINGS]
remove, add = "set=1\\n" + lines[0] + "\\nremove=true\\n\\n", "set=1\\n" + "\\n".join(lines) + "\\n\\n"
sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
first = time.monotonic()
deadline = first + float(sys.argv[1])
seq = 0
while time.monotonic() < deadline:
    seq += 1
    uapi(remove)
    uapi(add)
    rtt, _ = probe_round(sock, {{"hub": ({VPN['z']!r}, 4242, seq)}}, 0.1)["hub"]
    if rtt is not None:
        print(first, time.monotonic())
        break
"""

# Runs inside the hub: ask wireguard-go for its peers (its UAPI socket, as `wg show` does) every
# 10 ms until g's key is one of them; print the CLOCK_MONOTONIC times of its first look and of
# the look that saw it. One process: a
# `wg` process per look would load the 2 cores being measured. (A restart removes the socket
# for a moment: not there yet.) A hub of 10,000 peers answers with about 3 MB: the pause after a
# look is at least twice the look, so that the watcher (and wireguard-go answering it) takes at
# most a third of a core from what is measured.
HUB_SEES = f"""
import base64, sys, time
sys.path.insert(0, {str(ICMP.parent)!r})
from uapi import request
key = b"public_key=" + base64.b64decode(sys.argv[1]).hex().encode() + b"\\n"
first = time.monotonic()
deadline = first + float(sys.argv[2])
while time.monotonic() < deadline:
    look = time.monotonic()
    try:
        answer = request("get=1\\n\\n")
    except OSError:
        answer = b""
    if key in answer:
        print(first, time.monotonic())
        break
    time.sleep(max(0.01, 2 * (time.monotonic() - look)))
"""


class Watch(threading.Thread):
    """src pings dst every 20 ms for ``seconds``; ``lost`` replies are counted, and ``lost_at``
    holds the CLOCK_MONOTONIC time each unanswered probe was sent (the clock every namespace of
    the machine shares)."""

    def __init__(self, lab, src, dst, seconds):
        super().__init__(daemon=True)
        self.lab, self.src, self.dst, self.count = lab, src, dst, int(seconds / 0.02)
        self.start()

    def run(self):
        out = self.lab.exec(self.src, [sys.executable, str(ICMP), self.dst, "-c", str(self.count),
                                       "-i", "0.02", "-W", "0.2", "--json", "--lost-at"], timeout=self.count + 60)
        report = json.loads(out.stdout)
        self.lost, self.lost_at = self.count - report["replies"][self.dst], report["lost_at"][self.dst]


WATCHED = (("f", D), ("c", VPN["a"]))     # the unchanged peers' flows: f->d, c->a


def settled(lab, limit=60.0):
    """Wait until both watched flows answer. The article's restart cuts the gateways' flows for
    about 15 s (they handshake again only after 15 s without an answer), longer than its 10-s
    window at 10,000 developers, where the restart itself takes about 25 s: without this wait
    the next change's window (wgmesh's, in the next run) counted that outage's tail."""
    pending = lab.still_unreachable(WATCHED, limit)
    if pending:
        raise RuntimeError(f"the watched flows {pending} did not come back within {limit} s")


def watched(lab, seconds, change):
    """Run ``change()`` while f->d and c->a are pinged, once both answer; returns (change's
    result, pings lost, the CLOCK_MONOTONIC times the lost probes were sent, in order)."""
    settled(lab)
    watchers = [Watch(lab, src, dst, seconds) for src, dst in WATCHED]
    time.sleep(0.5)
    result = change()
    for watcher in watchers:
        watcher.join()
    return result, sum(w.lost for w in watchers), sorted(t for w in watchers for t in w.lost_at)


def hub_ready_then_first_ping(lab, g_key, action, limit=30.0):
    """Start ``action()`` (a push: it returns when the gate has converged every host) while the
    hub's watcher looks for g and g's laptop tries to reach the hub; returns (seconds until g is
    a live peer of the hub, seconds until g's first ping, seconds until ``action`` returned,
    its report, the start's CLOCK_MONOTONIC time)."""
    seen, replied = [], []
    looking = [threading.Thread(target=lambda: seen.append(lab.exec(
                   "z", [sys.executable, "-c", HUB_SEES, g_key, str(limit)], timeout=limit + 30).stdout), daemon=True),
               # a Python of the standard library only (-I -S): in the laptop, as quick to start as Python gets
               threading.Thread(target=lambda: replied.append(lab.exec(
                   "ne", [sys.executable, "-I", "-S", "-c", FIRST_REPLY, str(limit)], timeout=limit + 30).stdout),
                   daemon=True)]
    for thread in looking:
        thread.start()
    time.sleep(0.5)   # both are looking before the clock starts (checked below)
    start, started_at = time.monotonic(), time.time()
    finished = []
    worker = threading.Thread(target=lambda: finished.append((action(), time.monotonic())), daemon=True)
    worker.start()
    for thread in looking:
        thread.join(limit + 30)
    worker.join(limit + 180)
    done = finished[0][1] - start if finished else float("nan")
    report = finished[0][0] if finished else None
    data = report.get("data") if isinstance(report, dict) else None
    if isinstance(data, dict) and "started_at" in data:
        data["push_to_gate"] = round(data["started_at"] - started_at, 3)    # the push, hook, reactor
    times = []
    for out, who in ((seen, "the hub's watcher"), (replied, "g's laptop")):
        if not (out and out[0].strip()):
            times.append(float("nan"))
            continue
        first_look, saw = (float(t) for t in out[0].split())
        assert first_look < start, f"{who} started after the push: raise its head start"
        times.append(saw - start)
    return times[0], times[1], done, report, start


def crowd(count: int) -> dict:
    """``count`` developers without LAN access from 10.70.16.0 on (bench/pillars.py's keys)."""
    from pillars import developer
    first = ipaddress.IPv4Address("10.70.16.0")
    return {f"dev{i:05d}": {"address": str(first + i), "public_key": developer(i)["public_key"], "lan_access": "none"}
            for i in range(count)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--profile", choices=sorted(PROFILES), default="article",
                        help="the lab's backends: article (systemd-networkd, firewalld) or variants "
                             "(wg-quick, iptables on the hub)")
    parser.add_argument("--developers", type=int, default=0,
                        help="first push this many more developers (no LAN access: the hub's peers), "
                             "e.g. 10000 with --profile variants")
    parser.add_argument("--format", choices=("yaml", "json"), default="yaml",
                        help="developers.sls as #!yaml or #!json (a developer per line)")
    parser.add_argument("--hub-keepalive", type=int, metavar="SECONDS",
                        help="hub.keepalive with the first push (the example's: the article's 15; wgmesh's default: 0)")
    args = parser.parse_args()
    as_json = args.format == "json"
    with Lab("bench") as lab:
        article = ArticleLab(lab, args.profile)
        article.up()
        networkd = article.profile.backend == "networkd"
        lab.sh("ne", "umask 077; wg genkey > /etc/wireguard/private.key")
        g_key = lab.exec("ne", ["sh", "-c", "wg pubkey < /etc/wireguard/private.key"]).stdout.strip()
        without_g = {**article.developers(), **crowd(args.developers)}
        if args.hub_keepalive is not None:    # goes with the first push below
            article.edit_sls("wgmesh/network.sls", lambda net: net["hub"].update(keepalive=args.hub_keepalive))
        if args.developers:
            started = time.monotonic()
            article.push_and_wait(f"{args.developers} developers", article.developers_file(without_g, as_json))
            print(f"{args.developers} more developers pushed and converged in {time.monotonic() - started:.1f} s",
                  flush=True)
        with_g = dict(without_g, g={"address": G_ADDRESS, "public_key": g_key})
        conf = lab.host_path("z", "/etc/systemd/network/wg0.netdev" if networkd else "/etc/wireguard/wg0.conf")
        conf_without_g = conf.read_text()
        article.push_and_wait("g joins", article.developers_file(with_g, as_json))
        conf_with_g = conf.read_text()
        article.laptop_up("g", host="ne")
        article.push_and_wait("g leaves", article.developers_file(without_g, as_json))

        def push(developers, message):
            # the merge, and the bench's own listener for the gate's verdict: before the clock
            article.commit(message, article.developers_file(developers, as_json))
            waiter = article.wait_event("wgmesh/applied|wgmesh/gate/*")
            return lambda: article.push_committed(waiter=waiter)

        def restart_hub(text, _message=None):
            def change():
                conf.write_text(text)
                if networkd:
                    # `systemctl restart systemd-networkd` after editing wg0.netdev: the link is
                    # made again from the file (here by the lab's stand-in for the kernel module,
                    # lab/netdev_standin.py), then networkd configures it
                    lab.exec("z", ["ip", "link", "del", "wg0"])
                    lab.exec("z", ["networkctl", "reload"])
                else:
                    lab.exec("z", ["wg-quick", "down", "wg0"])
                    lab.exec("z", ["wg-quick", "up", "wg0"])
            return change

        methods = {"wgmesh (git push, live wg set)": (push, with_g, without_g),
                   "article (edit file + restart)": (restart_hub, conf_with_g, conf_without_g)}
        rows = {label: ([], [], [], [], []) for label in methods}
        for run in range(args.runs):
            for label, (how, added, removed) in methods.items():
                lab.exec("ne", ["wg-quick", "down", "wg0"], check=False)   # a fresh tunnel, up before the clock
                lab.exec("ne", ["wg-quick", "up", "wg0"])
                add = how(added, f"g joins {run}")
                (ready, first_ping, done, report, start), lost_add, lost_at = watched(
                    lab, 10, lambda: hub_ready_then_first_ping(lab, g_key, add))
                _, lost_revoke, _ = watched(lab, 10, how(removed, f"g leaves {run}"))
                for values, value in zip(rows[label], (ready, first_ping, done, lost_add, lost_revoke)):
                    values.append(value)
                print(f"run {run + 1} {label:<32} hub ready {ready:5.2f} s, first ping {first_ping:5.2f} s, "
                      f"all converged {done:5.2f} s, pings lost: add {lost_add}, revoke {lost_revoke}", flush=True)
                if lost_at:     # when unchanged peers lost their pings, in seconds after the push or restart
                    print(f"      lost at (s after the change): {', '.join(f'{t - start:.2f}' for t in lost_at)}",
                          flush=True)
                data = (report or {}).get("data") if isinstance(report, dict) else None
                if isinstance(data, dict) and data.get("timings"):
                    # the gate's steps and the hub's fast path (wgmesh/applied): where the time went
                    hub_steps = {m: r.get("timings") for m, r in (data.get("live_first") or {}).items()
                                 if isinstance(r, dict)}
                    handed = {m: r["wgmesh.set_peers"].get("timings") for m, r in (data.get("live_first") or {}).items()
                              if isinstance(r, dict) and isinstance(r.get("wgmesh.set_peers"), dict)}
                    print(f"      push -> gate {data.get('push_to_gate')} s, gate {data['timings']}, "
                          f"hand-off {handed}, fast path {hub_steps}", flush=True)
        print(f"\nmedian of {args.runs} runs; pings lost: f->d and c->a every 20 ms, 10 s windows")
        print(f"{'method':<32} {'hub ready':>10} {'first ping':>11} {'converged':>10} {'lost (add)':>11} "
              f"{'lost (revoke)':>14}")
        for label, (ready, first_ping, done, lost_add, lost_revoke) in rows.items():
            print(f"{label:<32} {statistics.median(ready):>8.2f} s {statistics.median(first_ping):>9.2f} s "
                  f"{statistics.median(done):>8.2f} s {statistics.median(lost_add):>11} "
                  f"{statistics.median(lost_revoke):>14}")


if __name__ == "__main__":
    main()
