"""The reachability matrix of a network, and what a change does to it.

Rows (sources): the hub, each gateway, each developer and a stand-in host of each gateway's
LAN.  Columns (destinations): the hub, each gateway, each LAN's stand-in host and
``developers`` (another developer: the hub forwards between developers, or it does not).
Every cell is a ``reach.Prediction``.  ``reach_diff`` lists the cells a change flips, so
granting c's LAN to alice reads as ``alice -> LAN of c: blocked -> reach``.

When only developers changed (the usual pull request), only their rows are evaluated: a
developer's row depends on its own entry and on the rest of the network, never on the
other developers' entries.
"""
from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Optional

from .model import NetworkSpec
from .plan import active_gateways
from .reach import Endpoint, Prediction, Reachability

DEVELOPERS = "developers"


@dataclass(frozen=True)
class ReachChange:
    source: str
    destination: str
    before: Prediction
    after: Prediction

    @property
    def opened(self) -> bool:
        return self.after.reach and not self.before.reach


@dataclass
class ReachDiff:
    changes: list           # ReachChange, in row order then column order

    def columns(self) -> list:
        return list(dict.fromkeys(c.destination for c in self.changes))

    def groups(self) -> list:
        """[(sources, {destination: ReachChange of the first source})]: sources whose changes are alike
        (same destinations, same outcomes before and after), so a thousand developers gaining a new
        LAN make one row."""
        by_source: dict[str, list] = {}
        for change in self.changes:
            by_source.setdefault(change.source, []).append(change)
        groups: dict[tuple, tuple[list, dict]] = {}
        for source, changes in by_source.items():
            key = tuple((c.destination, c.before.outcome, c.after.outcome) for c in changes)
            sources, cells = groups.setdefault(key, ([], {c.destination: c for c in changes}))
            sources.append(source)
        return list(groups.values())


class Matrix:
    """Rows and columns of one revision, evaluated on demand."""

    def __init__(self, reach: Reachability):
        self.reach = reach
        spec = reach.spec
        gateways = list(active_gateways(spec))
        self.columns: dict[str, Endpoint] = {spec.hub.minion: reach.endpoint(spec.hub.minion)}
        self.columns.update({gid: reach.endpoint(gid) for gid in gateways})
        self.columns.update({f"LAN of {gid}": reach.lan_host(gid) for gid in gateways})
        self.host_rows: dict[str, Endpoint] = {spec.hub.minion: self.columns[spec.hub.minion]}
        self.host_rows.update({gid: self.columns[gid] for gid in gateways})
        self.host_rows.update({f"LAN of {gid}": self.columns[f"LAN of {gid}"] for gid in gateways})
        self._some_developers = [p.name for p in reach.hub.peers if p.kind == "developer"][:2]

    def source(self, row: str) -> Optional[Endpoint]:
        if row in self.host_rows:
            return self.host_rows[row]
        if row in self.reach.spec.developers:
            return self.reach.endpoint(row)
        return None

    def row(self, name: str) -> dict[str, Prediction]:
        """Every column's prediction from row ``name`` (all blocked when the row does not exist here)."""
        source = self.source(name)
        if source is None:
            missing = _blocked(f"{name} is not in this revision of the network")
            return {column: missing for column in self.columns} | {DEVELOPERS: missing}
        cells = {column: self.reach.predict(source, target) for column, target in self.columns.items()
                 if target.address != source.address}
        other = next((d for d in self._some_developers if d != name), None)
        cells[DEVELOPERS] = (self.reach.predict(source, self.reach.endpoint(other)) if other
                             else _blocked("there is no other active developer"))
        return cells


def _blocked(reason: str) -> Prediction:
    return Prediction(False, None, reason)


def _without_developers(spec: Optional[NetworkSpec]):
    return spec.model_dump(exclude={"developers"}) if spec is not None else None


def _changed_developers(old: Optional[NetworkSpec], new: NetworkSpec) -> list:
    old_devs = old.developers if old is not None else {}
    names = list(dict.fromkeys([*new.developers, *old_devs]))
    if _without_developers(old) != _without_developers(new):
        return names
    return [name for name in names if old_devs.get(name) != new.developers.get(name)]


def reach_diff(old: Optional[NetworkSpec], new: NetworkSpec, today: datetime.date,
               configs: tuple = (None, None)) -> ReachDiff:
    """The cells of the reachability matrix that differ between ``old`` (None: nothing) and ``new``;
    ``configs``: the revisions' stand-in configs when planned already (``plan_change``'s)."""
    after = Matrix(Reachability(new, today, configs[1]))
    before = Matrix(Reachability(old, today, configs[0])) if old is not None else None
    rows = list(dict.fromkeys([*after.host_rows, *(before.host_rows if before else {}),
                               *_changed_developers(old, new)]))
    changes = []
    for row in rows:
        was = before.row(row) if before else {}
        now = after.row(row)
        for column in dict.fromkeys([*now, *was]):
            old_cell = was.get(column) or _blocked(f"{column} is not in the network" if before else "no network yet")
            new_cell = now.get(column) or _blocked(f"{column} is not in the network")
            if (old_cell.reach, old_cell.via) != (new_cell.reach, new_cell.via):
                changes.append(ReachChange(row, column, old_cell, new_cell))
    return ReachDiff(changes)
