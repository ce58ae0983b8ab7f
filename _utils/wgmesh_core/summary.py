"""What a reviewer reads: the reachability diff and the intent tests as text, and the whole plan
of a pull request as Markdown with a Mermaid diagram of the network after the change.

Every string that reaches the Markdown comes from validated data (names match
``model.NAME_PATTERN``, addresses are parsed, test names match ``TEST_NAME_PATTERN``);
table cells are escaped all the same, and file diffs sit in fences longer than any run of
backticks they hold.
"""
from __future__ import annotations

import datetime
import re
from typing import Optional

from .diff import NetworkPlan
from .intent import IntentResult
from .keys import one_line
from .matrix import ReachDiff
from .model import NetworkSpec
from .plan import active_gateways, reachable_gateways
from .reach import Prediction

# Developers drawn one by one in the diagram; the others are one node (GitHub renders
# Mermaid diagrams up to 500 edges and 50,000 characters).
MAX_DRAWN_DEVELOPERS = 24
MAX_LISTED_SOURCES = 6


def _sources(names: list) -> str:
    shown = ", ".join(names[:MAX_LISTED_SOURCES])
    return shown + (f" and {len(names) - MAX_LISTED_SOURCES:,} more" if len(names) > MAX_LISTED_SOURCES else "")


def _mark(before: Prediction, after: Prediction) -> str:
    if after.reach and not before.reach:
        return "+"
    if before.reach and not after.reach:
        return "-"
    return "~"     # still reaches, another way


def _explained(diff: ReachDiff) -> list[tuple[str, str, str]]:
    """(mark, 'sources -> destinations', reason) per group of alike changes."""
    lines = []
    for sources, cells in diff.groups():
        by_reason: dict[tuple, list] = {}
        for destination, change in cells.items():
            by_reason.setdefault((_mark(change.before, change.after), change.after.reason), []).append(destination)
        for (mark, reason), destinations in by_reason.items():
            lines.append((mark, f"{_sources(sources)} -> {', '.join(destinations)}", reason))
    return lines


def reach_diff_text(diff: ReachDiff) -> list[str]:
    if not diff.changes:
        return ["reachability: unchanged"]
    columns = diff.columns()
    rows = [(_sources(sources), cells) for sources, cells in diff.groups()]
    first = max(len("from \\ to"), *(len(label) for label, _ in rows))
    widths = [max(len(c), 1) for c in columns]
    lines = ["reachability (+ becomes reachable, - stops, ~ another way):",
             "  " + "  ".join(["from \\ to".ljust(first)] + [c.ljust(w) for c, w in zip(columns, widths)]).rstrip()]
    for label, cells in rows:
        marks = [(_mark(cells[c].before, cells[c].after) if c in cells else "").ljust(w) for c, w in zip(columns, widths)]
        lines.append("  " + "  ".join([label.ljust(first)] + marks).rstrip())
    lines += [f"  {mark} {what}: {reason}" for mark, what, reason in _explained(diff)]
    return lines


def intent_text(results: list) -> list[str]:
    failed = [r for r in results if not r.passed]
    lines = [f"intent tests: {len(results) - len(failed)} pass, {len(failed)} fail"]
    lines += [f"  FAIL {r.message}" for r in failed]
    return lines


def reach_json(diff: ReachDiff) -> list[dict]:
    return [{"from": c.source, "to": c.destination, "before": c.before.outcome, "after": c.after.outcome,
             "reason": c.after.reason} for c in diff.changes]


def intent_json(results: list) -> list[dict]:
    return [{"test": f"tests[{r.index}]", "name": r.test.name, "label": r.test.label, "expected": r.test.expected,
             "predicted": r.prediction.outcome, "passed": r.passed, "reason": r.prediction.reason,
             "path": list(r.prediction.path), "assumes": list(r.prediction.assumes)} for r in results]


# --- Markdown ------------------------------------------------------------------------------

MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]<|@~])")


def _flat(text) -> str:
    """``text`` on one line: its whitespace runs made one space, other control characters escaped."""
    return one_line(" ".join(str(text).split()))


def _cell(text) -> str:
    """Plain text for a Markdown table cell or list item: every character Markdown (or GitHub: @mentions)
    could act on is escaped, so even a refused pull request's own words render as words."""
    return MARKDOWN_SPECIAL.sub(r"\\\1", _flat(text))


def _code(text) -> str:
    """Text in a Markdown code span, on one line (a line break would end the span and start
    Markdown of the pull request's choosing: a heading, a verdict), its control characters
    written as escapes, without backticks."""
    return f"`{_flat(text).replace('`', '')}`"


def _fence(body: str, lang: str) -> str:
    longest = max((len(run) for run in re.findall(r"`+", body)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{lang}\n{body.rstrip()}\n{fence}"


def _intent_markdown(results: list) -> list[str]:
    if not results:
        return ["No intent tests (`tests.yaml`): add some to say what this network must allow and forbid."]
    failed = [r for r in results if not r.passed]
    rows = ["| | test | expected | predicted |", "| --- | --- | --- | --- |"]
    for r in sorted(results, key=lambda r: r.passed):
        name = f" {_cell(r.test.name)}" if r.test.name else ""
        rows.append(f"| {'✅' if r.passed else '❌'} | tests[{r.index}]{name}: {_code(r.test.label)} | "
                    f"{r.test.expected} | {_cell(r.prediction.reason)} |")
    head = f"**{len(results) - len(failed)} pass, {len(failed)} fail.**"
    if not failed:
        return [head, "", "<details><summary>every test</summary>", "", *rows, "", "</details>"]
    return [head, "", *rows]


def _reach_markdown(diff: ReachDiff) -> list[str]:
    if not diff.changes:
        return ["Nothing becomes reachable and nothing stops."]
    columns = diff.columns()
    symbol = {"+": "➕ reach", "-": "➖ blocked", "~": "🔀 other way"}
    lines = ["| from \\ to | " + " | ".join(map(_cell, columns)) + " |", "| --- |" + " --- |" * len(columns)]
    for sources, cells in diff.groups():
        marks = [symbol[_mark(cells[c].before, cells[c].after)] if c in cells else "" for c in columns]
        lines.append(f"| {_cell(_sources(sources))} | " + " | ".join(marks) + " |")
    lines.append("")
    lines += [f"- {symbol[mark]} {_code(what)}: {_cell(reason)}" for mark, what, reason in _explained(diff)]
    return lines


def _hosts_markdown(plan: NetworkPlan) -> list[str]:
    lines = ["| host | role | change |", "| --- | --- | --- |"]
    lines += [f"| {h.host} | {h.role} | {_cell(h.summary())} |" for h in plan.hosts]
    diffs = [(h.host, path, diff) for h in plan.hosts for path, diff in h.file_diffs.items()]
    if diffs:
        lines += ["", "<details><summary>rendered files that change</summary>", ""]
        for host, path, diff in diffs:
            lines += [f"{host}: {_code(path)}", "", _fence(diff, "diff"), ""]
        lines.append("</details>")
    if plan.clients_changed:
        lines += ["", f"Client configs that change (their owners re-import): {', '.join(plan.clients_changed)}."]
    if plan.clients_removed:
        lines += ["", f"Developers cut off (revoked, expired or removed): {', '.join(plan.clients_removed)}."]
    if plan.removed:
        lines += ["", f"Hosts that lose their role (the gate runs `wgmesh.absent` on them): {', '.join(plan.removed)}."]
    if plan.manual_actions:
        lines += ["", "Manual actions (a person must do these after the merge):", ""]
        lines += [f"- {_code(action)}" for action in plan.manual_actions]
    return lines


def _title(base: str, head: str) -> str:
    return f"## wgmesh plan {_code(base[:12] + '..' + head[:12])}"


def _problem_list(problems: list) -> list[str]:
    return [f"- {_code(p.where)}: {_cell(p.what)}" for p in problems]


def refused_markdown(base: str, head: str, problems: list) -> str:
    """The summary of a revision that is not a valid network: every problem, nothing planned."""
    return "\n".join([_title(base, head), "", f"❌ **refused**: {len(problems)} problem(s); nothing is planned.", "",
                      *_problem_list(problems)]) + "\n"


def markdown(plan: NetworkPlan, diff: ReachDiff, results: list, problems: list, old: Optional[NetworkSpec],
             new: NetworkSpec, base: str, head: str, today: datetime.date) -> str:
    """The pull request's summary: verdict, intent tests, reachability diff, diagram, per-host changes.
    ``problems``: the intent tests' refusals (a broken test, or the tests file's own problems)."""
    verdict = (f"❌ **refused**: {len(problems)} intent test problem(s)" if problems
               else "✅ **valid**: every intent test passes" if results else "✅ **valid**")
    intent = _intent_markdown(results) if results or not problems else _problem_list(problems)
    lines = [_title(base, head), "",
             f"{verdict}; {len(plan.affected)} host(s) change"
             + (f" ({', '.join(plan.affected)})" if plan.affected else "") + f"; evaluated as of {today}.", "",
             "### Intent tests", "", *intent, "",
             "### Reachability changes", "", *_reach_markdown(diff), "",
             "### The network after this change", "", _fence(mermaid(old, new, plan, diff, today), "mermaid"), "",
             "### Hosts", "", *_hosts_markdown(plan)]
    for name, date in sorted(plan.expiring.items(), key=lambda item: item[1]):
        lines.append(f"\nDeveloper {name} expires {date} ({(date - today).days} day(s) left).")
    return "\n".join(lines) + "\n"


# --- Mermaid -----------------------------------------------------------------------------------

CLASSES = {"added": "fill:#dafbe1,stroke:#1a7f37,stroke-width:3px",
           "removed": "fill:#ffebe9,stroke:#cf222e,stroke-width:2px,stroke-dasharray:5 3",
           "changed": "fill:#fff8c5,stroke:#9a6700,stroke-width:3px"}
EDGE_STYLES = {"added": "stroke:#1a7f37,stroke-width:3px",
               "removed": "stroke:#cf222e,stroke-width:2px,stroke-dasharray:5 3"}
SHAPES = {"box": ("[", "]"), "circle": ("((", "))"), "stadium": ("([", "])")}


class _Diagram:
    """A flowchart being written: nodes, edges (numbered, for linkStyle) and class marks."""

    def __init__(self):
        self.lines, self.marked, self.styled_edges, self.edge_count = ["flowchart LR"], {}, [], 0

    def node(self, ident: str, text: str, shape: str = "box", status: Optional[str] = None, indent: str = "  "):
        left, right = SHAPES[shape]
        self.lines.append(f'{indent}{ident}{left}"{text}"{right}')
        if status:
            self.marked.setdefault(status, []).append(ident)

    def edge(self, a: str, b: str, arrow: str = "---", label: str = "", status: Optional[str] = None):
        self.lines.append(f"  {a} {arrow}{f'|{label}|' if label else ''} {b}")
        if status in EDGE_STYLES:
            self.styled_edges.append((self.edge_count, status))
        self.edge_count += 1

    def text(self) -> str:
        out = self.lines + [f"  classDef {status} {style}" for status, style in CLASSES.items()]
        out += [f"  class {','.join(idents)} {status}" for status, idents in self.marked.items()]
        out += [f"  linkStyle {index} {EDGE_STYLES[status]}" for index, status in self.styled_edges]
        return "\n".join(out) + "\n"


def _status(name: str, old_entries: dict, new_entries: dict) -> Optional[str]:
    """added | removed (deleted or newly revoked) | changed | None, for one gateway or developer."""
    if name not in old_entries:
        return "added"
    was_revoked = old_entries[name].revoked
    if name not in new_entries or new_entries[name].revoked:
        return None if was_revoked else "removed"
    return "changed" if old_entries[name] != new_entries[name] else None


def _access_edges(d: _Diagram, ident: str, old: Optional[NetworkSpec], new: NetworkSpec, name: str,
                  entries: str, lan_ids: dict) -> None:
    """Dotted arrows to the LANs a gateway or developer may open connections into, new ones and
    withdrawn ones marked."""
    entry = getattr(new, entries)[name]
    was = getattr(old, entries).get(name) if old else None
    before = set(reachable_gateways(old, was.lan_access)) if was is not None and not was.revoked else set()
    now = reachable_gateways(new, entry.lan_access)
    for gid in now:
        if gid in lan_ids:
            d.edge(ident, lan_ids[gid], "-.->", "allowed", None if gid in before else "added")
    for gid in sorted(before - set(now)):
        if gid in lan_ids:
            d.edge(ident, lan_ids[gid], "-.->", "no longer", "removed")


def mermaid(old: Optional[NetworkSpec], new: NetworkSpec, plan: NetworkPlan, diff: ReachDiff,
            today: datetime.date) -> str:
    """A Mermaid flowchart of ``new``: the hub, each gateway inside its LAN, the developers and the
    LANs each may open connections into; what the change adds, removes or alters is marked."""
    d = _Diagram()
    old_gateways, old_developers = (old.gateways, old.developers) if old else ({}, {})
    reconfigured = {h.host for h in plan.hosts if h.changed}    # hosts whose files or rules change
    d.node("hub", f"{new.hub.minion} · hub<br/>{new.hub.address}", "circle",
           "changed" if new.hub.minion in reconfigured else None)
    lan_ids = {gid: f"lan{index}" for index, gid in enumerate(new.gateways)}
    for gid, gw in new.gateways.items():
        status = _status(gid, old_gateways, new.gateways) or ("changed" if gid in reconfigured else None)
        d.lines.append(f'  subgraph {lan_ids[gid]}["LAN {gw.lan} · {gw.lan_mode}"]')
        d.node(f"gw_{lan_ids[gid]}", f"{gid} · gateway<br/>{gw.address}" + (" · revoked" if gw.revoked else ""),
               status=status, indent="    ")
        d.lines.append("  end")
    for index, gid in enumerate(g for g in old_gateways if g not in new.gateways):
        d.node(f"gone{index}", f"{gid} · gateway removed", status="removed")
    for gid, gw in active_gateways(new).items():
        ident, status = f"gw_{lan_ids[gid]}", _status(gid, old_gateways, new.gateways)
        d.edge(ident, "hub", "===", status=status)
        _access_edges(d, ident, old, new, gid, "gateways", lan_ids)
    changed_rows = {c.source for c in diff.changes}
    first = [n for n in new.developers if n in changed_rows or old_developers.get(n) != new.developers[n]]
    first += [n for n in old_developers if n not in new.developers]
    names = list(dict.fromkeys([*first, *new.developers]))
    drawn, rest = names[:MAX_DRAWN_DEVELOPERS], names[MAX_DRAWN_DEVELOPERS:]
    for index, name in enumerate(drawn):
        ident, status = f"dev{index}", _status(name, old_developers, new.developers)
        dev = new.developers.get(name)
        if dev is None or not new.is_active(dev, today):
            why = "removed" if dev is None else "revoked" if dev.revoked else f"expired {dev.expires}"
            d.node(ident, f"{name}<br/>{(dev or old_developers[name]).address} · {why}", "stadium", status)
            continue
        until = f" · until {dev.expires}" if dev.expires else ""
        d.node(ident, f"{name}<br/>{dev.address}{until}", "stadium", status)
        d.edge(ident, "hub", status=status)
        _access_edges(d, ident, old, new, name, "developers", lan_ids)
    active = [n for n in rest if new.is_active(new.developers[n], today)]
    if rest:
        d.node("devmore", f"{len(rest):,} more developers<br/>{len(active):,} active, unchanged", "stadium")
        d.edge("devmore", "hub")
        gateways = active_gateways(new)
        for gid in gateways:
            count = sum(1 for n in active if gid in reachable_gateways(new, new.developers[n].lan_access))
            if count:
                d.edge("devmore", lan_ids[gid], "-.->", f"{count:,} allowed")
    return d.text()
