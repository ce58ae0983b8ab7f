"""`wgmesh plan` on real pull requests: a pillar repo in tmp_path, `main` plus a PR branch.

Each scenario is checked twice: ``plan_change`` called directly on the two revisions
(read back from git with ``gitsource``), and the `wgmesh plan` command (json and text),
which must agree with it. The command runs in process (``run_wgmesh``: mutation testing sees
it); the installed command's own runs are in test_plan_intent.py and test_pipelines.py.
"""
from __future__ import annotations

import json
from pathlib import Path

import netaddr
import pytest

from wgmesh_core.diff import plan_change
from wgmesh_core.plan import RFC1918, client_routes

from tests.conftest import assert_clean_failure, run_wgmesh

from .conftest import TODAY, developer_entry, new_public_key

NETDEV = "/etc/systemd/network/wg0.netdev"
NETWORK = "/etc/systemd/network/wg0.network"
DIRECT_XML = "/etc/firewalld/direct.xml"
HOSTS = ["z", "a", "c", "r1"]   # hub, gateways, LAN router of a: every managed host of the example


def plan_json(repo, *extra):
    done = run_wgmesh("plan", repo.path, "--head", "HEAD", "--target", "main", "--format", "json",
                  "--today", TODAY, *extra)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def plan_text(repo, *extra):
    done = run_wgmesh("plan", repo.path, "--head", "HEAD", "--target", "main", "--today", TODAY, *extra)
    assert done.returncode == 0, done.stderr
    return done.stdout


def direct_plan(repo, head="HEAD"):
    base = repo.git("merge-base", "main", head)
    return plan_change(repo.spec_at(base), repo.spec_at(head), TODAY)


def by_host(hosts):
    return {h["host"] if isinstance(h, dict) else h.host: h for h in hosts}


def assert_unchanged(host):
    """A host entry (json dict) that the plan leaves alone."""
    assert host["changed"] is False, host
    for key in ("peers_added", "peers_removed", "peers_changed", "allow_added", "allow_removed",
                "routes_added", "routes_removed", "masquerade_added", "masquerade_removed"):
        assert host[key] == [], (host["host"], key, host[key])
    assert host["file_diffs"] == {}


def assert_json_matches_direct(doc, plan):
    """The command's json says exactly what plan_change says."""
    assert doc["valid"] is True
    assert doc["affected"] == plan.affected
    assert doc["clients_changed"] == plan.clients_changed
    assert doc["clients_removed"] == plan.clients_removed
    assert [h["host"] for h in doc["hosts"]] == [h.host for h in plan.hosts]
    for entry, change in zip(doc["hosts"], plan.hosts):
        for key in ("role", "changed", "peers_added", "peers_removed", "peers_changed", "allow_added",
                    "allow_removed", "routes_added", "routes_removed", "masquerade_added", "masquerade_removed",
                    "file_diffs"):
            assert entry[key] == getattr(change, key), (change.host, key)


def open_pr(repo, branch, change, message):
    repo.branch(branch)
    change(repo)
    return repo.commit(message)


# --- onboarding --------------------------------------------------------------------------

def test_adding_a_developer_without_lan_access_only_touches_the_hub(pillar_repo):
    main = pillar_repo.git("rev-parse", "main")
    public = new_public_key()
    head = open_pr(pillar_repo, "onboard-g",
                   lambda r: r.add_developer("g", "10.70.0.6", public, lan_access="none"), "onboard g")

    plan = direct_plan(pillar_repo)
    assert plan.affected == ["z"]
    hosts = by_host(plan.hosts)
    assert [h.host for h in plan.hosts] == HOSTS
    assert hosts["z"].peers_added == ["g"]
    assert hosts["z"].summary() == "+peer g"
    assert (hosts["z"].peers_removed, hosts["z"].peers_changed, hosts["z"].routes_added) == ([], [], [])
    assert list(hosts["z"].file_diffs) == [DIRECT_XML, NETDEV]    # direct.xml: g may reach e and f
    for host in ("a", "c", "r1"):
        assert not hosts[host].changed and hosts[host].summary() == "unchanged"
    assert plan.clients_changed == ["g"] and plan.clients_removed == []

    doc = plan_json(pillar_repo)
    assert (doc["base"], doc["head"]) == (main, head)
    assert doc["affected"] == ["z"]
    hub = by_host(doc["hosts"])["z"]
    assert hub["peers_added"] == ["g"] and hub["allow_added"] == [] and hub["routes_added"] == []
    diff = hub["file_diffs"][NETDEV]
    added = [line[1:] for line in diff.splitlines() if line.startswith("+") and not line.startswith("+++")]
    assert f"PublicKey={public}" in added and "AllowedIPs=10.70.0.6/32" in added
    assert not [line for line in diff.splitlines() if line.startswith("-") and not line.startswith("---")]
    for host in ("a", "c", "r1"):
        assert_unchanged(by_host(doc["hosts"])[host])
    assert doc["clients_changed"] == ["g"]
    assert doc["clients_removed"] == []
    assert_json_matches_direct(doc, plan)


def test_adding_a_developer_with_access_to_lan2_opens_gateway_c_only(pillar_repo):
    open_pr(pillar_repo, "onboard-g",
            lambda r: r.add_developer("g", "10.70.0.6", new_public_key(), lan_access=["c"]), "onboard g")
    plan = direct_plan(pillar_repo)
    assert plan.affected == ["z", "c"]
    hosts = by_host(plan.hosts)
    assert hosts["c"].allow_added == ["10.70.0.6/32"] and hosts["c"].allow_removed == []
    assert hosts["c"].peers_added == [] and hosts["c"].summary() == "+allow 10.70.0.6/32"
    assert list(hosts["c"].file_diffs) == [DIRECT_XML]
    assert ('+  <rule ipv="ipv4" table="filter" chain="WGMESH-FORWARD" priority="2">-s 10.70.0.6/32 '
            '-d 192.168.200.0/24 -i wg0 -o eth2 -m conntrack --ctstate NEW -j ACCEPT</rule>'
            ) in hosts["c"].file_diffs[DIRECT_XML].splitlines()
    assert hosts["z"].allow_added == ["10.70.0.6/32 -> 10.70.0.3/32", "10.70.0.6/32 -> 192.168.200.0/24"]
    assert not hosts["a"].changed and not hosts["r1"].changed
    assert plan.clients_changed == ["g"]

    doc = plan_json(pillar_repo)
    entries = by_host(doc["hosts"])
    assert doc["affected"] == ["z", "c"]
    assert entries["z"]["peers_added"] == ["g"]
    assert entries["c"]["allow_added"] == ["10.70.0.6/32"]
    assert_unchanged(entries["a"])
    assert_unchanged(entries["r1"])
    assert_json_matches_direct(doc, plan)


def test_plan_compares_with_the_merge_base_not_the_moved_target(pillar_repo):
    """main moves on after the PR branched: the PR's plan still shows only what the PR does."""
    open_pr(pillar_repo, "onboard-g",
            lambda r: r.add_developer("g", "10.70.0.6", new_public_key()), "onboard g")
    pillar_repo.git("checkout", "-q", "main")
    pillar_repo.add_developer("h", "10.70.0.7", new_public_key(), lan_access="all")
    pillar_repo.commit("onboard h (merged meanwhile)")
    pillar_repo.git("checkout", "-q", "onboard-g")
    doc = plan_json(pillar_repo)
    assert doc["base"] == pillar_repo.git("rev-parse", "main~1")
    assert doc["affected"] == ["z"]
    assert by_host(doc["hosts"])["z"]["peers_added"] == ["g"]
    assert by_host(doc["hosts"])["z"]["peers_removed"] == []
    # --base overrides the merge base: against today's main, h disappears from the hub.
    doc = plan_json(pillar_repo, "--base", "main")
    assert by_host(doc["hosts"])["z"]["peers_removed"] == ["h"]


# --- revoking ----------------------------------------------------------------------------

REVOCATIONS = {
    "entry removed": lambda data: data["wgmesh"]["developers"].pop("g"),
    "revoked: true": lambda data: data["wgmesh"]["developers"]["g"].update(revoked=True),
    "expired": lambda data: data["wgmesh"]["developers"]["g"].update(expires="2025-06-14"),
}


@pytest.mark.parametrize("how", list(REVOCATIONS))
def test_revoking_a_developer_plans_the_reverse_of_onboarding(pillar_repo, how):
    # g (lan_access [c]) was onboarded by an earlier, merged pull request.
    pillar_repo.add_developer("g", "10.70.0.6", new_public_key(), lan_access=["c"])
    pillar_repo.commit("onboard g")
    open_pr(pillar_repo, "offboard-g",
            lambda r: r.edit_yaml("wgmesh/developers.sls", REVOCATIONS[how]), f"offboard g ({how})")

    plan = direct_plan(pillar_repo)
    assert plan.affected == ["z", "c"]
    hosts = by_host(plan.hosts)
    assert hosts["z"].peers_removed == ["g"] and hosts["z"].peers_added == []
    assert hosts["c"].allow_removed == ["10.70.0.6/32"] and hosts["c"].allow_added == []
    assert not hosts["a"].changed and not hosts["r1"].changed
    assert plan.clients_removed == ["g"] and plan.clients_changed == []

    doc = plan_json(pillar_repo)
    assert doc["affected"] == ["z", "c"]
    entries = by_host(doc["hosts"])
    assert entries["z"]["peers_removed"] == ["g"]
    assert entries["c"]["allow_removed"] == ["10.70.0.6/32"]
    assert_unchanged(entries["a"])
    assert doc["clients_removed"] == ["g"]
    assert_json_matches_direct(doc, plan)


def test_revoking_a_developer_with_access_everywhere_shrinks_both_allow_lists(pillar_repo):
    open_pr(pillar_repo, "revoke-f",
            lambda r: r.edit_yaml("wgmesh/developers.sls",
                                  lambda d: d["wgmesh"]["developers"]["f"].update(revoked=True)), "revoke f")
    doc = plan_json(pillar_repo)
    entries = by_host(doc["hosts"])
    assert doc["affected"] == ["z", "a", "c"]
    assert entries["z"]["peers_removed"] == ["f"]
    assert entries["a"]["allow_removed"] == ["10.70.0.5/32"]
    assert entries["c"]["allow_removed"] == ["10.70.0.5/32"]
    assert_unchanged(entries["r1"])
    assert doc["clients_removed"] == ["f"] and doc["clients_changed"] == []
    text = plan_text(pillar_repo)
    assert "\nhub z: -peer f, -allow 10.70.0.5/32 -> 10.70.0.2/32, -allow 10.70.0.5/32 -> 10.70.0.3/32, " in text
    assert "\ngateway a: -allow 10.70.0.5/32\n" in text
    assert "developers cut off (revoked, expired or removed): f" in text


# --- changing a LAN ----------------------------------------------------------------------

def move_lan2(repo, lan, lan_address):
    repo.replace("wgmesh/network.sls", "lan: 192.168.200.0/24", f"lan: {lan}")
    repo.replace("wgmesh/network.sls", "lan_address: 192.168.200.248", f"lan_address: {lan_address}")


def test_renumbering_lan2_plans_the_hub_route_and_gateway_c(pillar_repo):
    open_pr(pillar_repo, "lan2", lambda r: move_lan2(r, "192.168.210.0/24", "192.168.210.248"), "LAN2 renumbered")
    plan = direct_plan(pillar_repo)
    assert plan.affected == ["z", "c"]
    hosts = by_host(plan.hosts)
    assert hosts["z"].routes_added == ["192.168.210.0/24"]
    assert hosts["z"].routes_removed == ["192.168.200.0/24"]
    assert hosts["z"].peers_changed == ["c"]                  # c's AllowedIPs carry the LAN
    assert sorted(hosts["z"].file_diffs) == [DIRECT_XML, NETDEV, NETWORK]   # the hub's LAN2 rules follow
    assert "+Destination=192.168.210.0/24" in hosts["z"].file_diffs[NETWORK].splitlines()
    assert "-Destination=192.168.200.0/24" in hosts["z"].file_diffs[NETWORK].splitlines()
    # c masquerades into its LAN: the NAT rule follows the LAN.
    c_diff = hosts["c"].file_diffs[DIRECT_XML]
    assert "-d 192.168.210.0/24 -o eth2 -j MASQUERADE" in c_diff
    assert not hosts["a"].changed and not hosts["r1"].changed
    assert_json_matches_direct(plan_json(pillar_repo), plan)


def test_renumbering_lan2_keeps_the_clients_covering_prefix(pillar_repo):
    """192.168.0.0/16 still covers both LANs: e's and f's AllowedIPs do not change (what the code does)."""
    open_pr(pillar_repo, "lan2", lambda r: move_lan2(r, "192.168.210.0/24", "192.168.210.248"), "LAN2 renumbered")
    base, head = pillar_repo.spec_at("main"), pillar_repo.spec_at("HEAD")
    for name in ("e", "f"):
        assert client_routes(base, name).allowed_ips == ("10.70.0.0/16", "192.168.0.0/16")
        assert client_routes(head, name).allowed_ips == ("10.70.0.0/16", "192.168.0.0/16")


def test_renumbering_lan2_inside_the_covering_prefix_needs_no_reimport(pillar_repo):
    open_pr(pillar_repo, "lan2", lambda r: move_lan2(r, "192.168.210.0/24", "192.168.210.248"), "LAN2 renumbered")
    assert direct_plan(pillar_repo).clients_changed == []
    assert plan_json(pillar_repo)["clients_changed"] == []


def test_moving_lan2_out_of_192_168_changes_the_client_configs(pillar_repo):
    open_pr(pillar_repo, "lan2", lambda r: move_lan2(r, "172.20.0.0/24", "172.20.0.248"), "LAN2 moved")
    plan = direct_plan(pillar_repo)
    assert plan.affected == ["z", "c"]
    assert plan.clients_changed == ["e", "f"] and plan.clients_removed == []
    head = pillar_repo.spec_at("HEAD")
    for name in ("e", "f"):
        routes = [netaddr.IPNetwork(n) for n in client_routes(head, name).allowed_ips]
        # one covering prefix per private block: 172.16.0.0/12 and 192.168.0.0/16
        assert routes[1:] == [netaddr.IPNetwork("172.16.0.0/12"), netaddr.IPNetwork("192.168.0.0/16")]
        for lan in ("172.20.0.0/24", "192.168.201.0/24"):
            assert any(netaddr.IPNetwork(lan) in route for route in routes), (name, lan, routes)
    doc = plan_json(pillar_repo)
    assert doc["clients_changed"] == ["e", "f"]
    assert by_host(doc["hosts"])["z"]["routes_added"] == ["172.20.0.0/24"]


def test_moving_lan2_out_of_192_168_keeps_client_routes_private(pillar_repo):
    open_pr(pillar_repo, "lan2", lambda r: move_lan2(r, "172.20.0.0/24", "172.20.0.248"), "LAN2 moved")
    head = pillar_repo.spec_at("HEAD")
    for name in ("e", "f"):
        for route in client_routes(head, name).allowed_ips:
            net = netaddr.IPNetwork(route)
            assert any(net in block for block in RFC1918), f"{name}: AllowedIPs {route} is not private address space"


# --- refusals ----------------------------------------------------------------------------

def test_a_pr_with_a_duplicate_address_is_refused(pillar_repo, tmp_path, monkeypatch):
    import tempfile
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temporary))
    open_pr(pillar_repo, "dup", lambda r: r.add_developer("g", "10.70.0.5", new_public_key()), "g takes f's address")
    for extra in ((), ("--format", "json")):
        done = run_wgmesh("plan", pillar_repo.path, "--target", "main", "--today", TODAY, *extra)
        assert_clean_failure(done, 1, "developers.g.address: 10.70.0.5 is already taken by developers.f")
        assert done.stderr.splitlines() == ["developers.g.address: 10.70.0.5 is already taken by developers.f"]
        assert done.stdout == ""
        # the base's child, killed once the head is refused, leaves no checkout behind
        assert list(temporary.iterdir()) == []


@pytest.mark.parametrize("args", [("--head", "no-such-branch"), ("--base", "0123456789abcdef"),
                                  ("--target", "no-such-target")])
def test_a_bad_revision_exits_2(pillar_repo, args):
    done = run_wgmesh("plan", pillar_repo.path, *args)
    assert_clean_failure(done, 2, args[1])
    assert done.stderr.startswith("wgmesh plan: ") and done.stdout == ""


def test_a_folder_that_is_no_repository_exits_2(tmp_path):
    done = run_wgmesh("plan", tmp_path)
    assert_clean_failure(done, 2, str(tmp_path))
    assert done.stderr.startswith("wgmesh plan: ")


# --- text output -------------------------------------------------------------------------

def test_text_output_names_every_host_shows_diffs_and_expiry(pillar_repo):
    public = new_public_key()
    head = open_pr(pillar_repo, "onboard-g",
                   lambda r: r.add_developer("g", "10.70.0.6", public, lan_access=["c"], expires="2025-07-01"),
                   "onboard g until July")
    text = plan_text(pillar_repo)
    lines = text.splitlines()
    main = pillar_repo.git("rev-parse", "main")
    assert lines[0] == f"wgmesh plan {main[:12]}..{head[:12]}: valid; 2 host(s) change"
    assert "hub z: +peer g, +allow 10.70.0.6/32 -> 10.70.0.3/32, +allow 10.70.0.6/32 -> 192.168.200.0/24" in lines
    assert "gateway a: unchanged" in lines
    assert "gateway c: +allow 10.70.0.6/32" in lines
    assert "lan_router r1: unchanged" in lines
    # unified diffs of the rendered files, indented under their host
    assert f"    --- a{NETDEV}" in lines and f"    +++ b{NETDEV}" in lines
    assert f"    +PublicKey={public}" in lines
    assert "    +AllowedIPs=10.70.0.6/32" in lines
    assert f"    --- a{DIRECT_XML}" in lines
    assert any(line.startswith("    +") and "-s 10.70.0.6/32" in line for line in lines)
    # nothing printed under an unchanged host
    a_at = lines.index("gateway a: unchanged")
    assert lines[a_at + 1] == ""
    actions = lines.index("manual actions (a person must do these):")
    assert lines[actions - 1:actions + 5] == [
        "", "manual actions (a person must do these):",
        "  developer g: re-import the client config (salt-run wgmesh.client_config g)", "",
        "client configs that change (their owners re-import): g", "developer g expires 2025-07-01 (16 day(s) left)"]
    assert "removed (lose their role" not in text and "developers cut off" not in text

    doc = plan_json(pillar_repo)
    assert doc["expiring"] == {"g": "2025-07-01"}


def test_expiry_of_existing_developers_is_listed_soonest_first(pillar_repo):
    def change(repo):
        repo.edit_yaml("wgmesh/developers.sls", lambda d: (d["wgmesh"]["developers"]["e"].update(expires="2025-09-01"),
                                                           d["wgmesh"]["developers"]["f"].update(expires="2025-06-15")))
    open_pr(pillar_repo, "expiry", change, "e and f get end dates")
    lines = plan_text(pillar_repo).splitlines()
    expiry = [line for line in lines if line.startswith("developer ")]
    assert expiry == ["developer f expires 2025-06-15 (0 day(s) left)",
                      "developer e expires 2025-09-01 (78 day(s) left)"]
    assert "hub z: unchanged" in lines            # an end date changes no host until it passes
    assert "wgmesh plan" in lines[0] and lines[0].endswith("valid; 0 host(s) change")


def test_the_base_is_compiled_for_a_host_only_the_pull_request_names(pillar_repo):
    """Both revisions are compiled for every minion either names. On main, a top.sls target that
    matches no host gives web* minions other developers; the pull request drops it and adds a
    gateway web1: compiled for web1, main does not pass, so the whole network is planned as new."""
    from tests.security.attacks import add_to_top
    pillar_repo.file("wgmesh/web.sls").write_text(
        "#!yaml\nwgmesh:\n  developers:\n" + developer_entry("w", "10.70.0.66", new_public_key()))
    add_to_top(pillar_repo.path, "web*", "wgmesh.web")
    pillar_repo.commit("web developers for web* minions")
    assert run_wgmesh("validate", pillar_repo.path).returncode == 0          # no host of main is a web* minion

    def add_gateway(repo):
        repo.file("wgmesh/web.sls").unlink()
        repo.edit_yaml("top.sls", lambda top: top["base"].pop("web*"))
        repo.edit_yaml("wgmesh/network.sls", lambda net: net["wgmesh"]["gateways"].update(
            web1={"address": "10.70.0.9", "lan": "192.168.9.0/24", "lan_address": "192.168.9.1"}))
    open_pr(pillar_repo, "gateway-web1", add_gateway, "gateway web1")
    doc = plan_json(pillar_repo)
    head = pillar_repo.spec_at("HEAD")
    assert doc["affected"] == plan_change(None, head, TODAY).affected
    assert by_host(doc["hosts"])["a"]["changed"] is True     # planned from nothing


def test_a_top_sls_change_shows_its_diff_and_what_each_minion_gets(pillar_repo):
    """Only the hosts keep the wgmesh SLS: web1 (an accepted minion) got it through '*' before."""
    open_pr(pillar_repo, "top", lambda r: r.file("top.sls").write_text(
        "#!yaml\nbase:\n  'z,a,c,r1':\n    - match: list\n    - wgmesh.network\n    - wgmesh.mine\n"
        "    - wgmesh.developers\n"), "only the hosts get wgmesh")
    text = plan_text(pillar_repo, "--known-minions", "z,a,c,r1,web1")
    sls = "base:wgmesh.network, base:wgmesh.mine, base:wgmesh.developers"
    top = text[text.index("\ntop.sls changes"):text.index("\nreachability: ")]
    example = (Path(__file__).parents[2] / "pillar" / "top.sls").read_text().splitlines()
    comments = [line for line in example if line.startswith("# ")]
    assert top.splitlines() == [
        "", "top.sls changes (which minion gets which SLS):",
        "    --- a/top.sls", "    +++ b/top.sls", f"    @@ -1,{len(example)} +1,7 @@", "     #!yaml",
        *(f"    -{line}" for line in comments),
        "     base:", "    -  '*':", "    +  'z,a,c,r1':", "    +    - match: list",
        "         - wgmesh.network", "         - wgmesh.mine", "         - wgmesh.developers",
        f"  minion a: {sls}; gets the network", f"  minion c: {sls}; gets the network",
        f"  minion r1: {sls}; gets the network", f"  minion web1: {sls} -> nothing; no wgmesh pillar",
        f"  minion z: {sls}; gets the network"]
    doc = plan_json(pillar_repo, "--known-minions", "z,a,c,r1,web1")
    assert doc["top"]["changed"] is True and doc["top"]["diff"].startswith("--- a/top.sls\n+++ b/top.sls\n")
    assert doc["top"]["minions"]["web1"] == {"base": sls.split(", "), "head": [], "gets_network": False}
    assert doc["top"]["minions"]["z"] == {"base": sls.split(", "), "head": sls.split(", "), "gets_network": True}
    assert plan_json(pillar_repo, "--base", "HEAD")["top"] == {"changed": False}


def test_text_output_names_removed_hosts_and_developers_cut_off(pillar_repo):
    def drop_gateway_a(repo):
        repo.edit_yaml("wgmesh/network.sls", lambda d: (d["wgmesh"]["gateways"].pop("a"),
                                                        d["wgmesh"]["gateways"]["c"].pop("lan_access", None)))
        repo.edit_yaml("wgmesh/developers.sls", lambda d: (d["wgmesh"]["developers"]["f"].update(revoked=True),
                                                           d["wgmesh"]["developers"]["e"].update(expires="2025-06-14")))
    open_pr(pillar_repo, "drop-a", drop_gateway_a, "gateway a leaves, f is revoked, e expired")
    lines = plan_text(pillar_repo).splitlines()
    removed = lines.index("removed (lose their role; the gate runs wgmesh.absent on them): a, r1")
    assert lines[removed - 1:removed + 3] == ["", lines[removed], "developers cut off (revoked, expired or removed): e, f", ""]
    assert "manual actions (a person must do these):" not in lines
    assert not [line for line in lines if line.startswith(("client configs that change", "developer f expires"))]
    doc = plan_json(pillar_repo)
    assert (doc["removed"], doc["clients_removed"], doc["manual_actions"]) == (["a", "r1"], ["e", "f"], [])


def test_hosts_that_leave_are_still_shown_in_a_top_sls_change(pillar_repo):
    """Both revisions are compiled for the minions either names: a and r1, named only by the
    base, still get the pillar through '*' in the head, which the reviewer sees."""
    def drop_gateway_a(repo):
        repo.edit_yaml("wgmesh/network.sls", lambda d: (d["wgmesh"]["gateways"].pop("a"),
                                                        d["wgmesh"]["gateways"]["c"].pop("lan_access", None)))
        repo.append("top.sls", "# gateway a leaves\n")
    open_pr(pillar_repo, "drop-a", drop_gateway_a, "gateway a leaves")
    text = plan_text(pillar_repo)
    sls = "base:wgmesh.network, base:wgmesh.mine, base:wgmesh.developers"
    assert [line for line in text.splitlines() if line.startswith("  minion ")] == [
        f"  minion {m}: {sls}; gets the network" for m in ("a", "c", "r1", "z")]


def test_a_first_deployment_plans_every_host_from_nothing(tmp_path):
    """main holds no pillar yet, or an invalid one: the pull request's network is all new."""
    import shutil
    from .conftest import PILLAR, PillarRepo, git
    work = tmp_path / "repo"
    work.mkdir()
    git(work, "init", "-q", "-b", "main")
    (work / "README").write_text("the pillar comes in the first pull request\n")
    repo = PillarRepo(work)
    repo.commit("empty")
    head = open_pr(repo, "first", lambda r: shutil.copytree(PILLAR, work / "pillar"), "the pillar")
    doc = plan_json(repo, "--subdir", "pillar")
    assert (doc["base"], doc["head"]) == (repo.git("rev-parse", "main"), head)
    assert doc["affected"] == ["z", "a", "c", "r1"] and doc["clients_changed"] == ["e", "f"]
    assert doc["top"] == {"changed": False} and doc["valid"] is True


@pytest.mark.parametrize("rel, old, new", [("wgmesh/developers.sls", "address: 10.70.0.5", "address: 10.70.0.4"),
                                         ("top.sls", "- wgmesh.mine", "- wgmesh.missing")],
                         ids=["f takes e's address", "an SLS that does not exist"])
def test_a_pull_request_fixing_a_broken_base_plans_every_host_from_nothing(pillar_repo, rel, old, new):
    """main is invalid, or Salt cannot compile it: the pull request that fixes it plans the network as new."""
    pillar_repo.replace(rel, old, new)
    pillar_repo.commit("main is broken")
    pillar_repo.branch("fix")
    pillar_repo.git("revert", "--no-edit", "HEAD")
    doc = plan_json(pillar_repo)
    assert doc["affected"] == ["z", "a", "c", "r1"] and doc["clients_changed"] == ["e", "f"]
    assert doc["top"] == {"changed": False}
    assert_json_matches_direct(doc, plan_change(None, pillar_repo.spec_at("HEAD"), TODAY))


def test_text_output_lists_each_manual_action_and_every_client_that_changes(pillar_repo):
    def onboard_two(repo):
        repo.add_developer("g", "10.70.0.6", new_public_key(), contact="g@example.com")
        repo.add_developer("h", "10.70.0.7", new_public_key())
    open_pr(pillar_repo, "onboard-g-h", onboard_two, "onboard g and h")
    text = plan_text(pillar_repo)
    assert ("\nmanual actions (a person must do these):\n"
            "  developer g (g@example.com): re-import the client config (salt-run wgmesh.client_config g)\n"
            "  developer h: re-import the client config (salt-run wgmesh.client_config h)\n"
            "\nclient configs that change (their owners re-import): g, h\n") in text
    doc = plan_json(pillar_repo)
    assert set(doc) == {"base", "head", "valid", "affected", "hosts", "clients_changed", "clients_removed", "removed",
                        "manual_actions", "expiring", "top", "reachability", "intent", "problems"}
    assert doc["manual_actions"] == [
        "developer g (g@example.com): re-import the client config (salt-run wgmesh.client_config g)",
        "developer h: re-import the client config (salt-run wgmesh.client_config h)"]
    assert (doc["removed"], doc["valid"], doc["problems"]) == ([], True, [])
    hub = text[text.index("\nhub z: "):text.index("\n\ngateway a: ")].splitlines()   # one blank line after the diffs
    assert hub[2].startswith("    --- a/") and all(line.startswith("    ") for line in hub[2:])
    assert hub[-1] == "    +PersistentKeepalive=15"


def test_a_new_gateway_is_planned_against_the_base_compiled_for_it_too(pillar_repo):
    """The head names a minion the base does not: the base is compiled again for it (it gets the
    same network there), so only what the new gateway changes is planned, not everything."""
    open_pr(pillar_repo, "gateway-web1", lambda r: r.edit_yaml("wgmesh/network.sls", lambda net: net["wgmesh"]["gateways"].update(
        web1={"address": "10.70.0.9", "lan": "192.168.9.0/24", "lan_address": "192.168.9.1"})), "gateway web1")
    doc = plan_json(pillar_repo)
    assert doc["affected"] == ["z", "web1"] and doc["clients_changed"] == []
    assert by_host(doc["hosts"])["z"]["peers_added"] == ["web1"]
    assert_json_matches_direct(doc, direct_plan(pillar_repo))


def test_plan_checks_the_hosts_against_the_known_minions(pillar_repo):
    open_pr(pillar_repo, "g", lambda r: r.add_developer("g", "10.70.0.6", new_public_key()), "onboard g")
    done = run_wgmesh("plan", pillar_repo.path, "--target", "main", "--known-minions", "z,a,c")
    assert_clean_failure(done, 1, "gateways.a.lan_router: unknown minion id 'r1' (not among the master's accepted minions)")
    assert run_wgmesh("plan", pillar_repo.path, "--target", "main", "--known-minions", "z,a,c,r1").returncode == 0


def test_plan_refuses_a_revision_larger_than_the_limit_given(pillar_repo):
    open_pr(pillar_repo, "g", lambda r: r.add_developer("g", "10.70.0.6", new_public_key()), "onboard g")
    done = run_wgmesh("plan", pillar_repo.path, "--target", "main", "--max-pillar-bytes", "1000")
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.startswith("wgmesh/network.sls: refused unread: ")       # before the checkout is read
    assert done.stderr.endswith(", more than the limit of 1000\n") and len(done.stderr.splitlines()) == 1


def test_the_base_compiled_again_keeps_the_allowed_pillar_keys(pillar_repo):
    """A pillar with a key the operator allows (--allow-key users) and a new gateway in the head:
    the base is compiled again for it with the same allowed keys, so it is still valid."""
    from tests.security.attacks import add_to_top
    pillar_repo.file("users.sls").write_text("#!yaml\nusers:\n  alice: {shell: /bin/bash}\n")
    add_to_top(pillar_repo.path, "*", "users")
    pillar_repo.commit("users for every minion")
    open_pr(pillar_repo, "gateway-web1", lambda r: r.edit_yaml("wgmesh/network.sls", lambda net: net["wgmesh"]["gateways"].update(
        web1={"address": "10.70.0.9", "lan": "192.168.9.0/24", "lan_address": "192.168.9.1"})), "gateway web1")
    assert plan_json(pillar_repo, "--allow-key", "users")["affected"] == ["z", "web1"]


def _new_gateway(repo):
    repo.edit_yaml("wgmesh/network.sls", lambda net: net["wgmesh"]["gateways"].update(
        web1={"address": "10.70.0.9", "lan": "192.168.9.0/24", "lan_address": "192.168.9.1"}))


def _gateway_a_leaves(repo):
    repo.edit_yaml("wgmesh/network.sls", lambda d: (d["wgmesh"]["gateways"].pop("a"),
                                                    d["wgmesh"]["gateways"]["c"].pop("lan_access", None)))


@pytest.mark.parametrize("change, code", [
    pytest.param(lambda r: r.add_developer("g", "10.70.0.6", new_public_key()), 0, id="onboard"),
    pytest.param(_new_gateway, 0, id="new gateway"),            # the base is compiled again for web1
    pytest.param(_gateway_a_leaves, 0, id="gateway leaves"),    # the head is compiled again for a and r1
    pytest.param(lambda r: r.edit_yaml("wgmesh/network.sls", lambda d: d["wgmesh"]["hub"].update(address="10.70.0.2")),
                 1, id="refused")])     # gateway a's address
def test_the_plan_made_with_two_children_is_the_plan_made_in_one_process(pillar_repo, monkeypatch, change, code):
    """`wgmesh plan` reads the base in a child process beside the head, and makes the hub's
    change in another beside the other hosts' (aside.py): on one CPU it does all of it in its own
    process, and says exactly the same."""
    import os
    from wgmesh_core import aside
    open_pr(pillar_repo, "pr", change, "the change")
    forks, fork = [], os.fork
    monkeypatch.setattr(aside.os, "fork", lambda: forks.append(os.getpid()) or fork())
    args = ("plan", pillar_repo.path, "--head", "HEAD", "--target", "main", "--format", "json", "--today", TODAY)
    both = run_wgmesh(*args)
    assert both.returncode == code and len(forks) == (2 if code == 0 else 1), both.stderr
    forks.clear()
    monkeypatch.setattr(aside, "cpus", lambda: 1)
    alone = run_wgmesh(*args)
    assert forks == []
    assert (alone.returncode, alone.stdout, alone.stderr) == (both.returncode, both.stdout, both.stderr)


@pytest.mark.parametrize("change, compiled", [
    pytest.param(lambda r: r.add_developer("g", "10.70.0.6", new_public_key()),
                 [["a", "c", "r1", "z"], ["a", "c", "r1", "z"]], id="onboard"),
    pytest.param(_new_gateway, [["a", "c", "r1", "web1", "z"], ["a", "c", "r1", "z"], ["a", "c", "r1", "web1", "z"]],
                 id="the base again"),
    pytest.param(_gateway_a_leaves, [["c", "z"], ["a", "c", "r1", "z"], ["a", "c", "r1", "z"]], id="the head again")])
def test_each_revision_is_compiled_once_unless_the_other_names_more_minions(pillar_repo, monkeypatch, change, compiled):
    """The head is compiled for the minions it names, the base for its own; only the one that
    names fewer is compiled again, for all of them (counted on one CPU, where the base's
    compile runs in this process: the head's first, then the base's when its result is asked)."""
    import wgmesh_salt
    from wgmesh_core import aside
    monkeypatch.setattr(aside, "cpus", lambda: 1)
    calls, compile_document = [], wgmesh_salt.compile_document
    monkeypatch.setattr(wgmesh_salt, "compile_document",
                        lambda tree, ids, *args: calls.append(sorted(ids)) or compile_document(tree, ids, *args))
    open_pr(pillar_repo, "pr", change, "the change")
    plan_json(pillar_repo)
    assert calls == compiled


def test_the_head_compiled_again_keeps_the_allowed_pillar_keys(pillar_repo):
    """Gateway a leaves: the head is compiled again for a and r1, which only the base names, with
    the same allowed keys (--allow-key users), so it is still valid."""
    from tests.security.attacks import add_to_top
    pillar_repo.file("users.sls").write_text("#!yaml\nusers:\n  alice: {shell: /bin/bash}\n")
    add_to_top(pillar_repo.path, "*", "users")
    pillar_repo.commit("users for every minion")
    open_pr(pillar_repo, "drop-a", _gateway_a_leaves, "gateway a leaves")
    assert plan_json(pillar_repo, "--allow-key", "users")["removed"] == ["a", "r1"]
