"""The `wgmesh` command: what a pull request's pipeline and a developer run, no master needed.

Exit codes: 0 fine, 1 the network is invalid (one line per problem), 2 usage error.
"""
from __future__ import annotations

import argparse
import datetime
import logging
import os
import sys
from pathlib import Path

import yaml

from . import jsondata
from .keys import key_problem, public_key, read_own_secret_file
from .plan import host_config, managed_hosts, static_route_instructions
from .source import Limits, collector_paused, read_file_network
from .validate import InvalidNetwork, load_network


def _known(args):
    if not getattr(args, "known_minions", None):
        return None
    return [m.strip() for m in args.known_minions.split(",") if m.strip()]


def _limits(args) -> Limits:
    return Limits(max_bytes=args.max_pillar_bytes) if args.max_pillar_bytes else Limits()


def _load_with_tests(args):
    """(network, tests.yaml data or None) of a pillar directory as Salt compiles it (or of one
    SLS file on its own, which has no tests)."""
    known = _known(args)
    path = Path(args.path)
    if path.is_file():
        return load_network(read_file_network(path, _limits(args)), known_minions=known), None
    from wgmesh_salt import read_document
    document = read_document(path, known or (), args.allow_key, _limits(args))
    return load_network(document.network, known_minions=known), document.tree.tests


def _load(args):
    return _load_with_tests(args)[0]


def _today(args) -> datetime.date:
    return args.today or datetime.date.today()


def _offline_keys(spec, args) -> tuple[dict, dict]:
    """Public keys and PSKs for an offline render: from --keys, else placeholders that say where they come from."""
    keys = yaml.safe_load(Path(args.keys).read_text()) if getattr(args, "keys", None) else {}
    public_keys = {host: keys.get(host, f"<public key of {host}: Salt mine>") for host in managed_hosts(spec)}
    psks = {peer: f"<preshared key of hub-{peer}: master>" for peer in list(spec.gateways) + list(spec.developers)}
    return public_keys, psks


def cmd_validate(args) -> int:
    from .intent import verdict
    spec, tests = _load_with_tests(args)
    results, broken = verdict(tests, spec, _today(args))
    if broken:
        raise InvalidNetwork(broken)
    print(f"{args.path}: valid ({len(spec.gateways)} gateways, {len(spec.developers)} developers, "
          f"{len(results)} intent tests pass)")
    return 0


def cmd_render(args) -> int:
    from .render import host_files    # Jinja: only the commands that render import it
    spec = _load(args)
    if args.host not in managed_hosts(spec):
        print(f"wgmesh: {args.host!r} is not a host of this network (hosts: {', '.join(managed_hosts(spec))})", file=sys.stderr)
        return 2
    public_keys, psks = _offline_keys(spec, args)
    config = host_config(spec, args.host, _today(args), public_keys, psks)
    for spec_file in host_files(config):
        if args.out:
            target = Path(args.out) / spec_file.path.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(spec_file.content)
            target.chmod(int(spec_file.mode, 8))
            print(f"wrote {target} (mode {spec_file.mode})")
        else:
            print(f"### {spec_file.path} (mode {spec_file.mode}, group {spec_file.group})\n{spec_file.content}")
    if config.static_routes:
        print("\n".join(f"static route on {args.host}: ip route replace {dst} via {via}" for dst, via in config.static_routes))
    if config.role == "hub":
        print("# static routes the LAN routers need:\n# " + "\n# ".join(static_route_instructions(spec)))
    return 0


def cmd_client_config(args) -> int:
    from .render import client_config
    spec = _load(args)
    if args.name not in spec.developers:
        print(f"wgmesh: no developer {args.name!r} in {args.path}", file=sys.stderr)
        return 2
    developer = spec.developers[args.name]
    if not spec.is_active(developer, _today(args)):
        why = "is revoked" if developer.revoked else f"expired on {developer.expires}"
        print(f"wgmesh: developer {args.name!r} {why}: no client config", file=sys.stderr)
        return 2
    for option, key in (("--hub-public-key", args.hub_public_key), ("--psk", args.psk)):
        if key is not None and key_problem(key):
            print(f"wgmesh: {option}: {key_problem(key)}", file=sys.stderr)
            return 2
    sys.stdout.write(client_config(spec, args.name, hub_public_key=args.hub_public_key, psk=args.psk))
    return 0


def _plan_as_dict(plan, base, head) -> dict:
    return {
        "base": base, "head": head, "valid": True, "affected": plan.affected,
        "hosts": [{"host": h.host, "role": h.role, "changed": h.changed, "peers_added": h.peers_added,
                   "peers_removed": h.peers_removed, "peers_changed": h.peers_changed,
                   "allow_added": h.allow_added, "allow_removed": h.allow_removed,
                   "routes_added": h.routes_added, "routes_removed": h.routes_removed,
                   "masquerade_added": h.masquerade_added, "masquerade_removed": h.masquerade_removed,
                   "file_diffs": h.file_diffs} for h in plan.hosts],
        "clients_changed": plan.clients_changed, "clients_removed": plan.clients_removed,
        "removed": plan.removed, "manual_actions": plan.manual_actions,
        "expiring": {name: str(date) for name, date in plan.expiring.items()},
    }


def _print_plan(plan, base, head, today):
    print(f"wgmesh plan {base[:12]}..{head[:12]}: valid; {len(plan.affected)} host(s) change")
    for change in plan.hosts:
        print(f"\n{change.role} {change.host}: {change.summary()}")
        for diff in change.file_diffs.values():
            print("    " + diff.rstrip("\n").replace("\n", "\n    "))
    if plan.removed:
        print(f"\nremoved (lose their role; the gate runs wgmesh.absent on them): {', '.join(plan.removed)}")
    if plan.manual_actions:
        print("\nmanual actions (a person must do these):\n  " + "\n  ".join(plan.manual_actions))
    if plan.clients_changed:
        print(f"\nclient configs that change (their owners re-import): {', '.join(plan.clients_changed)}")
    if plan.clients_removed:
        print(f"developers cut off (revoked, expired or removed): {', '.join(plan.clients_removed)}")
    for name, date in sorted(plan.expiring.items(), key=lambda item: item[1]):
        days = (date - today).days
        print(f"developer {name} expires {date} ({days} day(s) left)")


def _top_change(old_doc, new_doc) -> dict:
    """top.sls's diff and, per minion, the SLS it gets before and after (when top.sls changed)."""
    from .diff import unified
    if old_doc is None or old_doc.tree.top_text == new_doc.tree.top_text:
        return {"changed": False}
    minions = {m: {"base": old_doc.minions.get(m, []), "head": new_doc.minions.get(m, []),
                   "gets_network": m in new_doc.networked} for m in sorted(set(old_doc.minions) | set(new_doc.minions))}
    return {"changed": True, "diff": unified("/top.sls", old_doc.tree.top_text, new_doc.tree.top_text),
            "minions": minions}


def _print_top_change(top):
    if not top["changed"]:
        return
    print("\ntop.sls changes (which minion gets which SLS):")
    print("    " + top["diff"].rstrip("\n").replace("\n", "\n    "))
    for minion, change in top["minions"].items():
        before, after = ", ".join(change["base"]) or "nothing", ", ".join(change["head"]) or "nothing"
        sls = after if before == after else f"{before} -> {after}"
        print(f"  minion {minion}: {sls}; {'gets the network' if change['gets_network'] else 'no wgmesh pillar'}")


def _tree_at(args, stack, rev):
    from .gitsource import checked_out
    from .source import read_tree
    limits = _limits(args)
    return read_tree(stack.enter_context(checked_out(args.repo, rev, args.subdir, limits)), args.allow_key, limits)


def _minions(tree) -> set:
    return tree.named_minions() | set(tree.listed_minions) if tree else set()


def _base_side(args, base, known: set, compiled) -> tuple:
    """(the ids the base is compiled for, its document, its network) as ``_plan_documents`` reads
    them; document and network None when the base has no valid network (a base without a pillar,
    or one that fails its checks: everything is new)."""
    import contextlib
    with contextlib.ExitStack() as stack:
        try:
            tree = _tree_at(args, stack, base)
        except (InvalidNetwork, FileNotFoundError):
            return known, None, None
        ids = known | _minions(tree)
        try:
            document = compiled(tree, ids)
            network = load_network(document.network)
        except InvalidNetwork:
            return ids, None, None
        document.network = None     # the spec holds it from here on (and it is not sent twice)
        return ids, document, network


def _plan_documents(args, base, head):
    """(old document, old network, new document, new network); the old ones are None when the
    base has no valid network.

    Both revisions are compiled for the same minions, every id either names and those given.
    The base is read, compiled and validated in a child process (``aside``) while the head is in
    this one, each for the ids it names itself; in the rare case that the two name different
    minions, the one that names fewer is compiled again for all of them. (Its network does not
    change: a minion more gets the same ``wgmesh`` value, none, or another, which the compile
    refuses; and a revision refused for some minions is refused for more.)"""
    import contextlib
    from wgmesh_salt import compile_document
    from .aside import Aside
    known = set(_known(args) or ())

    def compiled(tree, ids):
        document = compile_document(tree, ids, args.allow_key)
        tree.forget_graphs()
        return document

    with contextlib.ExitStack() as stack:
        with Aside(lambda: _base_side(args, base, known, compiled)) as base_side:
            new_tree = _tree_at(args, stack, head)
            new_ids = known | _minions(new_tree)
            new_doc = compiled(new_tree, new_ids)
            new = load_network(new_doc.network, known_minions=_known(args))
            old_ids, old_doc, old = base_side.result()
        ids = old_ids | new_ids
        if ids != new_ids:
            new_doc = compile_document(new_tree, ids, args.allow_key)
        if old is not None and ids != old_ids:
            _, old_doc, old = _base_side(args, base, ids, compiled)
    new_doc.network = None     # the specs hold it from here on (50,000 developers: about 25 MB)
    return old_doc, old, new_doc, new


def _host_changes(old, new, today, configs) -> tuple:
    """({host: its ``host_change``}, the reachability diff) of a plan. The hub's change, the largest
    (its files hold a peer and rules per developer: about 0.45 s at 10,000), is made in a child
    process (``aside``) while this one makes the other hosts' and the reachability diff. The hub's
    configs are planned before the fork, so that neither process plans them again. A host whose
    change fails (a value its files refuse) fails the plan as it would alone: the first in
    ``plan_change``'s order."""
    from .aside import Aside
    from .diff import host_change, planned_hosts
    from .matrix import reach_diff
    hub, outcomes = new.hub.minion, {}
    for configs_of in configs:
        if configs_of is not None:
            configs_of[hub]

    def outcome(host, change):
        try:
            outcomes[host] = (True, change())
        except Exception as error:
            outcomes[host] = (False, error)

    hosts = planned_hosts(old, new)
    with Aside(lambda: host_change(old, new, hub, today, configs)) as hub_change:
        for host in hosts:
            if host != hub:
                outcome(host, lambda: host_change(old, new, host, today, configs))
        diff = reach_diff(old, new, today, configs)
        outcome(hub, hub_change.result)
    for host in hosts:
        done, value = outcomes[host]
        if not done:
            raise value
    return {host: value for host, (_, value) in outcomes.items()}, diff


def cmd_plan(args) -> int:
    import json
    from . import summary
    from .diff import plan_change, stand_in_configs
    from .gitsource import merge_base, resolve
    from .intent import verdict
    try:
        head = resolve(args.repo, args.head)
        base = resolve(args.repo, args.base) if args.base else merge_base(args.repo, args.target, head)
    except Exception as error:  # GitPython raises several types for a bad repo or revision
        print(f"wgmesh plan: {error}", file=sys.stderr)
        return 2
    try:
        old_doc, old, new_doc, new = _plan_documents(args, base, head)
    except InvalidNetwork as error:
        if args.format == "markdown":
            sys.stdout.write(summary.refused_markdown(base, head, error.problems))
        raise
    today = _today(args)
    configs = (stand_in_configs(old, today), stand_in_configs(new, today))   # planned once, read by both
    planned, diff = _host_changes(old, new, today, configs)
    plan = plan_change(old, new, today, configs, planned=planned)
    top = _top_change(old_doc, new_doc)
    results, broken = verdict(new_doc.tree.tests, new, today)
    if args.format == "json":
        print(json.dumps(dict(_plan_as_dict(plan, base, head), top=top, valid=not broken,
                              reachability=summary.reach_json(diff), intent=summary.intent_json(results),
                              problems=[str(p) for p in broken]), indent=2))
    elif args.format == "markdown":
        sys.stdout.write(summary.markdown(plan, diff, results, broken, old, new, base, head, today))
    else:
        _print_plan(plan, base, head, today)
        _print_top_change(top)
        print("\n" + "\n".join(summary.reach_diff_text(diff) + summary.intent_text(results)))
    if broken:
        print(f"wgmesh plan: refused, {len(broken)} intent test(s) fail:", file=sys.stderr)
        for problem in broken:
            print(problem, file=sys.stderr)
        return 1
    return 0


def cmd_join(args) -> int:
    from .onboard import check_name, entry_indent, own_or_new_key, pillar_entry, save_new_key
    spec = _load(args)
    if args.name in spec.developers:
        raise ValueError(f"developer {args.name!r} already exists in {args.path}; pick another name")
    check_name(args.name)        # before it names the key file
    access = args.lan_access if args.lan_access in ("all", "none") else \
        [gateway.strip() for gateway in args.lan_access.split(",")]
    key_file = Path(args.key_file or Path.home() / ".config" / "wgmesh" / f"{args.name}.key").expanduser()
    private, new = own_or_new_key(key_file)
    developers = _developers_text(Path(args.path))
    as_json = developers.split("\n", 1)[0].rstrip() == jsondata.SHEBANG
    entry = pillar_entry(spec, args.name, public_key(private), access, args.expires, args.platform, as_json,
                         today=_today(args), indent=entry_indent(developers))
    if new:     # only once the entry is accepted: a refused join leaves no key behind
        save_new_key(key_file, private)
    print(f"# private key kept in {key_file} (mode 0600); it never leaves this machine.", file=sys.stderr)
    if as_json:
        print('# Add this line under "developers" (pillar/wgmesh/developers.sls, #!json) in your pull request, '
              "with a comma at the end of the line before it:", file=sys.stderr)
    else:
        print("# Add this under `wgmesh: developers:` (pillar/wgmesh/developers.sls) in your pull request, "
              "indented as its entries are:", file=sys.stderr)
    sys.stdout.write(entry)
    return 0


def _developers_text(path: Path) -> str:
    """The developers file of ``path`` (a pillar directory, or the one SLS file given): its
    format (#!json or YAML) and indentation shape the printed entry; "" when it cannot be read."""
    developers = path / "wgmesh" / "developers.sls" if path.is_dir() else path
    try:
        return developers.read_text(errors="replace")
    except OSError:
        return ""


def cmd_import_config(args) -> int:
    from .onboard import finish_client_config, qr_code, write_client_files
    text = sys.stdin.read() if args.config == "-" else Path(args.config).read_text()
    private_key = read_own_secret_file(str(Path(args.key_file).expanduser())).strip()
    finished = finish_client_config(text, private_key)
    write_client_files(finished, Path(args.out), Path(args.png) if args.png else None)
    print(f"wrote {args.out} (mode 0600){' and ' + args.png if args.png else ''}: import it in the WireGuard app",
          file=sys.stderr)
    if args.qr:
        qr_code(finished).terminal(compact=True)
    return 0


def cmd_status(args) -> int:
    import json
    import subprocess
    cmd = [args.salt_run, "--out=json", "wgmesh.status", f"stale_after={args.stale_after}",
           f"soon_days={args.soon_days}"]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        print(f"wgmesh status: {' '.join(cmd)} failed: {(done.stderr or done.stdout).strip()}", file=sys.stderr)
        return 2
    rows = json.loads(done.stdout)
    print(f"{'peer':<16} {'kind':<10} {'handshake':>10}  flags")
    for row in rows:
        age = "never" if row["handshake_age"] is None else f"{row['handshake_age']} s"
        print(f"{row['name']:<16} {row['kind']:<10} {age:>10}  {', '.join(row['flags'])}")
    return 1 if any(row["flags"] for row in rows) else 0


def cmd_twin(args) -> int:
    """The live twin lives in the repository's lab/ package (namespaces, Salt): imported only here."""
    checkout = Path(__file__).resolve().parents[2]
    if (checkout / "lab" / "twin.py").is_file() and str(checkout) not in sys.path:
        sys.path.insert(0, str(checkout))
    try:
        from lab.twin import main as twin_main
    except ImportError as error:
        print(f"wgmesh twin: runs from a checkout of the wgmesh repository (its lab/ package): {error}",
              file=sys.stderr)
        return 2
    return twin_main(args.argv)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="wgmesh", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name, func, help):
        p = sub.add_parser(name, help=help)
        p.add_argument("path", help="the pillar directory, or one SLS/YAML file")
        p.add_argument("--known-minions", help="comma-separated accepted minion ids to check the hosts against")
        p.add_argument("--today", type=datetime.date.fromisoformat, help="date for expiry checks (YYYY-MM-DD)")
        pillar_options(p)
        p.set_defaults(func=func)
        return p

    def pillar_options(p):
        p.add_argument("--allow-key", action="append", default=[], metavar="KEY",
                       help="a top-level pillar key the operator allows besides wgmesh (repeatable)")
        p.add_argument("--max-pillar-bytes", type=int, help="refuse a pillar larger than this (default 4 MiB)")

    command("validate", cmd_validate, "check a network definition")
    render = command("render", cmd_render, "print or write one host's files")
    render.add_argument("--host", required=True, help="minion id")
    render.add_argument("--out", help="write the files under this directory instead of printing them")
    render.add_argument("--keys", help="YAML file: minion id -> public key (default: placeholders)")
    client = command("client-config", cmd_client_config, "print a developer's wg-quick config")
    client.add_argument("name", help="developer name")
    client.add_argument("--hub-public-key", help="the hub's public key (salt-run wgmesh.client_config fills it in)")
    client.add_argument("--psk", help="this developer's preshared key (salt-run wgmesh.client_config fills it in; "
                                      "a command line is visible to this machine's other users)")
    join = command("join", cmd_join, "make your key pair and print your pillar entry for the pull request")
    join.add_argument("name", help="your developer name")
    join.add_argument("--key-file", help="where to keep the private key (default ~/.config/wgmesh/NAME.key)")
    join.add_argument("--lan-access", default="none", help="all, none, or comma-separated gateway ids")
    join.add_argument("--expires", type=datetime.date.fromisoformat, help="last day of access (YYYY-MM-DD)")
    join.add_argument("--platform", default="linux", choices=("linux", "macos", "windows", "ios", "android"))
    imp = sub.add_parser("import-config", help="put your private key into the config the master gave you")
    imp.add_argument("config", help="the config from `salt-run wgmesh.client_config NAME` (or - for stdin)")
    imp.add_argument("--key-file", required=True, help="your private key file (from `wgmesh join`)")
    imp.add_argument("--out", required=True, help="the .conf to write (mode 0600) for the WireGuard app")
    imp.add_argument("--png", help="also write a QR code PNG (for the mobile apps)")
    imp.add_argument("--qr", action="store_true", help="also print the QR code in the terminal")
    imp.set_defaults(func=cmd_import_config)
    status = sub.add_parser("status", help="peers, last handshakes, expired/expiring developers (via the master)")
    status.add_argument("--stale-after", type=int, default=600, help="flag peers silent for longer (s)")
    status.add_argument("--soon-days", type=int, default=14, help="flag developers expiring within (days)")
    status.add_argument("--salt-run", default="salt-run", help="the salt-run command to use")
    status.set_defaults(func=cmd_status)
    twin = sub.add_parser("twin", help="up|test|down: the pillar's network live in namespaces (root), "
                                       "its intent tests measured against the model's prediction", add_help=False)
    twin.add_argument("argv", nargs=argparse.REMAINDER)
    twin.set_defaults(func=cmd_twin)
    plan = sub.add_parser("plan", help="validate a revision of the pillar repo and show what it changes per host")
    plan.add_argument("repo", nargs="?", default=".", help="the pillar git repository (default: .)")
    plan.add_argument("--head", default="HEAD", help="the proposed revision (default: HEAD)")
    plan.add_argument("--base", help="the revision to compare with (default: merge base of --target and --head)")
    plan.add_argument("--target", default="main", help="target branch for the merge base (default: main)")
    plan.add_argument("--subdir", default="", help="folder of the pillar inside the repository")
    plan.add_argument("--format", choices=("text", "json", "markdown"), default="text",
                      help="markdown: the pull request's summary, with a Mermaid diagram of the network")
    plan.add_argument("--known-minions", help="comma-separated accepted minion ids")
    plan.add_argument("--today", type=datetime.date.fromisoformat, help="date for expiry checks (YYYY-MM-DD)")
    pillar_options(plan)
    plan.set_defaults(func=cmd_plan)
    return parser


#: Commands that only read and print. Run as a program, they end without the interpreter's
#: teardown, which would free what they built one object at a time (a pillar of 10,000
#: developers: millions of objects, about 0.1 s of `wgmesh plan`).
QUICK_EXIT = frozenset({"validate", "render", "client-config", "plan"})


def _run(args) -> int:
    try:
        with collector_paused():
            return args.func(args)
    except InvalidNetwork as error:
        for problem in error.problems:
            print(problem, file=sys.stderr)
        return 1
    except (OSError, ValueError) as error:     # a path that is none, a link refused, a bad value
        print(f"wgmesh: {error}", file=sys.stderr)
        return 2


def _quick_exit(code: int) -> int:
    """End the process with ``code`` once the output is written; when it cannot be (a closed
    pipe), return it and let the interpreter's exit report that as usual."""
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except OSError:
        return code
    logging.shutdown()
    os._exit(code)


def main(argv=None) -> int:
    """The command; ``argv`` None: run as the program (`wgmesh`, `python -m wgmesh_core.cli`)."""
    program = argv is None
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["twin"]:     # its own options, --help included
        return cmd_twin(argparse.Namespace(argv=argv[1:]))
    args = build_parser().parse_args(argv)
    logging.getLogger("salt").setLevel(logging.CRITICAL + 1)   # Salt's render errors come back as problems
    code = _run(args)
    return _quick_exit(code) if program and args.command in QUICK_EXIT else code


if __name__ == "__main__":
    sys.exit(main())
