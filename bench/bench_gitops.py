"""Benchmark: git push -> a new developer's first ping, and pings lost by unchanged peers,
wgmesh's live GitOps loop side by side with the article's method, in the same lab run.

    .venv/bin/python bench/bench_gitops.py [--runs 5]        (root; about 3 minutes)

The article's network is brought up in the namespace lab (lab/article.py). Developer g's
laptop is host `ne`, configured once and left running. Each run:
- wgmesh: `git push` adding g (post-receive hook -> reactor -> gate -> hub converged with
  `wg syncconf`), timed to g's first successful ping of the hub; then a push revoking g.
- the article's method: the hub's config file edited (the same content wgmesh rendered) and
  the interface restarted (`wg-quick down` + `up`, as `systemctl restart systemd-networkd`
  would), timed the same way; then the same to remove g.
Meanwhile f pings d (LAN2, through z and c) and a pings c (gateway to gateway, through z)
every 20 ms; their lost replies are counted per change. Medians over the runs.
"""
import argparse
import json
import statistics
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from lab import Lab  # noqa: E402
from lab.article import D, VPN, ArticleLab  # noqa: E402

ICMP = REPO / "lab" / "icmp.py"
G_ADDRESS = "10.70.0.6"

# Runs inside g's laptop: ping the hub every 20 ms until it answers; print the CLOCK_MONOTONIC
# time of the first reply (the clock is shared by all namespaces of the machine).
FIRST_REPLY = f"""
import socket, sys, time
sys.path.insert(0, {str(ICMP.parent)!r})
from icmp import probe_round
sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
deadline = time.monotonic() + float(sys.argv[1])
seq = 0
while time.monotonic() < deadline:
    seq += 1
    rtt, _ = probe_round(sock, {{"hub": ({VPN['z']!r}, 4242, seq)}}, 0.02)["hub"]
    if rtt is not None:
        print(time.monotonic()); break
"""


class Watch(threading.Thread):
    """src pings dst every 20 ms for ``seconds``; ``lost`` replies are counted."""

    def __init__(self, lab, src, dst, seconds):
        super().__init__(daemon=True)
        self.lab, self.src, self.dst, self.count = lab, src, dst, int(seconds / 0.02)
        self.start()

    def run(self):
        out = self.lab.exec(self.src, [sys.executable, str(ICMP), self.dst, "-c", str(self.count),
                                       "-i", "0.02", "-W", "0.2", "--json"], timeout=self.count + 60)
        self.lost = self.count - json.loads(out.stdout)[self.dst]


def watched(lab, seconds, change):
    """Run ``change()`` while f->d and a->c are pinged; returns (change's result, pings lost)."""
    watchers = [Watch(lab, "f", D, seconds), Watch(lab, "a", VPN["c"], seconds)]
    time.sleep(0.5)
    result = change()
    for watcher in watchers:
        watcher.join()
    return result, sum(w.lost for w in watchers)


def first_reply_after(lab, action, limit=30.0):
    """Seconds from ``action()`` to g's first reply from the hub."""
    box = {}
    waiter = threading.Thread(target=lambda: box.update(out=lab.exec(
        "ne", [sys.executable, "-c", FIRST_REPLY, str(limit)], timeout=limit + 30).stdout))
    waiter.start()
    time.sleep(0.3)
    start = time.monotonic()
    action()
    waiter.join()
    if not box["out"].strip():
        return float("nan")
    return float(box["out"]) - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with Lab("bench") as lab:
        article = ArticleLab(lab)
        article.up()
        lab.sh("ne", "umask 077; wg genkey > /etc/wireguard/private.key")
        g_key = lab.exec("ne", ["sh", "-c", "wg pubkey < /etc/wireguard/private.key"]).stdout.strip()
        with_g = article.developers()
        with_g["g"] = {"address": G_ADDRESS, "public_key": g_key}
        without_g = article.developers()
        conf = lab.host_path("z", "/etc/wireguard/wg0.conf")
        conf_without_g = conf.read_text()
        article.push_and_wait("g joins", article.developers_file(with_g))
        conf_with_g = conf.read_text()
        article.laptop_up("g", host="ne")
        article.push_and_wait("g leaves", article.developers_file(without_g))

        def push(developers, message):
            return lambda: article.push_and_wait(message, article.developers_file(developers))

        def restart_hub(text):
            def change():
                conf.write_text(text)
                lab.exec("z", ["wg-quick", "down", "wg0"])
                lab.exec("z", ["wg-quick", "up", "wg0"])
            return change

        rows = {"wgmesh (git push, wg syncconf)": ([], [], []), "article (edit + restart)": ([], [], [])}
        for run in range(args.runs):
            for label, add, remove in (
                    ("wgmesh (git push, wg syncconf)", push(with_g, f"g joins {run}"), push(without_g, f"g leaves {run}")),
                    ("article (edit + restart)", restart_hub(conf_with_g), restart_hub(conf_without_g))):
                to_ping, lost_add = watched(lab, 8, lambda: first_reply_after(lab, add))
                _, lost_revoke = watched(lab, 8, remove)
                for values, value in zip(rows[label], (to_ping, lost_add, lost_revoke)):
                    values.append(value)
                print(f"run {run + 1} {label:<32} to first ping {to_ping:5.2f} s, "
                      f"pings lost: add {lost_add}, revoke {lost_revoke}", flush=True)
        print(f"\nmedian of {args.runs} runs; pings lost are f->d and a->c at 20 ms intervals, 8 s windows")
        print(f"{'method':<34} {'change to first ping':>21} {'lost (add)':>11} {'lost (revoke)':>14}")
        for label, (to_ping, lost_add, lost_revoke) in rows.items():
            print(f"{label:<34} {statistics.median(to_ping):>19.2f} s {statistics.median(lost_add):>11} "
                  f"{statistics.median(lost_revoke):>14}")


if __name__ == "__main__":
    main()
