"""The `wgmesh status` listing: who is expired or about to be, and whose tunnel is silent."""
from __future__ import annotations

import datetime
from typing import Optional

from .model import NetworkSpec
from .plan import active_developers, active_gateways


def expired_or_expiring(spec: NetworkSpec, today: datetime.date, soon_days: int) -> dict:
    """developer -> 'expired' | 'expires in N day(s)', for revoked-by-date or soon-to-be ones."""
    flagged = {}
    active = active_developers(spec, today)
    for name, dev in spec.developers.items():
        if dev.expires is None or dev.revoked:
            continue
        if name not in active:
            flagged[name] = f"expired on {dev.expires}"
        elif (dev.expires - today).days <= soon_days:
            flagged[name] = f"expires in {(dev.expires - today).days} day(s) ({dev.expires})"
    return flagged


def status_report(spec: NetworkSpec, handshake_ages: dict, today: datetime.date,
                  stale_after: int = 600, soon_days: int = 14) -> list[dict]:
    """One row per peer of the hub: name, kind, handshake age, and the flags a reviewer acts on.

    ``handshake_ages``: peer name -> seconds since its last handshake with the hub (None: never),
    as `wgmesh.status` on the hub reports it.
    """
    expiry = expired_or_expiring(spec, today, soon_days)
    rows = []
    peers = [(gid, "gateway") for gid in active_gateways(spec)]
    peers += [(name, "developer") for name in spec.developers]
    for name, kind in peers:
        age: Optional[int] = handshake_ages.get(name)
        flags = []
        if kind == "developer" and spec.developers[name].revoked:
            flags.append("revoked")
        if name in expiry:
            flags.append(expiry[name])
        active = kind == "gateway" or name in active_developers(spec, today)
        if active and (age is None or age > stale_after):
            flags.append("no handshake yet" if age is None else f"silent for {age} s")
        rows.append({"name": name, "kind": kind, "handshake_age": age, "flags": flags})
    return rows
