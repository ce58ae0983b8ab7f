"""The labs of this machine: a lab's status report, the labs recorded under /run/wgmesh-lab, and
the cleanup of those whose owner died (by their recorded ids)."""
from __future__ import annotations

import json
from typing import Mapping

from . import plan
from .topology import _ID_RE, RUN_ROOT, Lab, _alive


def format_matrix(results: Mapping[tuple[str, str], bool], labels: Mapping[str, str] | None = None
                  ) -> str:
    """Pretty table: one row per source, one column per destination."""
    srcs, dsts = [], []
    for s, d in results:
        if s not in srcs:
            srcs.append(s)
        if d not in dsts:
            dsts.append(d)
    labels = dict(labels or {})
    heads = [labels.get(d, d) for d in dsts]
    w0 = max([len(s) for s in srcs] + [4])
    widths = [max(len(h), 2) for h in heads]
    lines = [" " * w0 + " | " + " ".join(h.rjust(w) for h, w in zip(heads, widths))]
    lines.append("-" * len(lines[0]))
    for s in srcs:
        cells = []
        for d, w in zip(dsts, widths):
            v = results.get((s, d))
            cells.append(("." if v is None else "ok" if v else "--").rjust(w))
        lines.append(s.ljust(w0) + " | " + " ".join(cells))
    return "\n".join(lines)


def default_targets(address_plan: plan.AddressPlan | None = None) -> dict[str, str]:
    """label -> address, the columns of `python -m lab status` (the article's VPN addresses)."""
    t = {}
    home_nats = {f"n{laptop}" for laptop in (address_plan or plan.article()).laptops.values()}
    for h in (address_plan or plan.article()).hosts.values():
        if h.name in home_nats:
            continue
        t[h.name] = h.primary_ip
    for n, host in enumerate(("z", "a", "c", "e", "f"), start=1):
        t[f"{host}/vpn"] = f"10.70.0.{n}"
    return t


def status_report(lab: Lab, timeout: float = 1) -> str:
    targets = default_targets(lab.plan)
    pairs = [(s, ip) for s in lab.plan.hosts for ip in targets.values()]
    res = lab.connectivity_matrix(pairs, timeout=timeout)
    labels = {ip: label for label, ip in targets.items()}
    out = [f"lab {lab.lab_id} ({lab.state.get('status')}), workdir {lab.workdir}", ""]
    out.append(format_matrix(res, labels))
    procs = []
    for key, r in sorted(lab.state.get("pids", {}).items()):
        alive = _alive(r["pid"], r.get("start"))
        procs.append(f"  {key:24} pid {r['pid']:<7} {'running' if alive else 'dead'}")
    if procs:
        out += ["", "processes:"] + procs
    return "\n".join(out)


def list_labs() -> list[dict]:
    out = []
    if RUN_ROOT.is_dir():
        for d in sorted(RUN_ROOT.iterdir()):
            try:
                out.append(json.loads((d / "state.json").read_text()))
            except (OSError, ValueError):
                out.append({"lab_id": d.name, "statedir": str(d), "status": "unknown"})
    return out


def cleanup_stale(include_persistent: bool = False) -> list[str]:
    """Tear down labs whose owning process is gone, by their recorded ids.

    Labs started from the CLI (``python -m lab up``) are persistent and are
    only removed with include_persistent=True.  Returns the cleaned lab ids.
    """
    cleaned = []
    for st in list_labs():
        lab_id = st.get("lab_id", "")
        if not _ID_RE.match(lab_id or ""):
            continue
        owner = st.get("owner_pid")
        if st.get("persistent") and not include_persistent:
            continue
        if owner and _alive(owner, st.get("owner_start")) and not st.get("persistent"):
            continue
        lab = Lab(lab_id, workdir=st.get("workdir"))
        if st.get("status") == "unknown":   # no state file: only the run dir
            lab.state["root_mounts"] = [str(RUN_ROOT / lab_id / "mnt")]
            mnt = RUN_ROOT / lab_id / "mnt"
            if mnt.is_dir():
                lab.state["ns_files"] = [str(p) for p in mnt.iterdir()]
            lab.state["status"] = "stale"
        lab.down()
        cleaned.append(lab_id)
    return cleaned
