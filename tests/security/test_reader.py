"""The reader's rules themselves: the same data as Salt's own loader, its bounds and options,
what reaches Salt's compiler (targeting by minions.txt, compile errors), and the top.sls
report of `wgmesh plan`."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections import OrderedDict

import pytest
import yaml

import salt.utils.yamlloader
from wgmesh_core.source import Limits, load_sls, plain, read_tree
from wgmesh_core.validate import InvalidNetwork
from wgmesh_salt import read_document
from tests.onboard.conftest import PILLAR, make_pillar_repo, new_public_key, wgmesh

from .attacks import add_to_top, developer

SAMPLE = """#!yaml
wgmesh:
  developers:
    e: {address: 10.70.0.4, expires: 2027-06-30, revoked: no, lan_access: [a, c]}
  mtu: 01270
  port: 0x10
  ratio: 1.5
  nothing: ~
  when: 2027-06-30 10:00:00
  anchored: &x [1, 2]
  again: *x
  quoted: "010"
"""


KEYS_SAMPLE = """#!yaml
keys:
  "1": one
  "2.5": [two, 010, "010", ~, true]
  int: 1
  float: 2.5
  nothing: null
  "no": no
  date: 2027-06-30
  nested: &n {inner: [x, {deeper: y}], "1": quoted}
  same: *n
"""


def typed(value):
    """``value`` with the type of each of its parts, to compare beyond ``==`` (1 == 1.0 == True)."""
    if isinstance(value, dict):     # (the checked compile's mappings: a subclass of the renderer's OrderedDict)
        kind = OrderedDict if isinstance(value, OrderedDict) else type(value)
        return kind, [(typed(key), typed(item)) for key, item in value.items()]
    if isinstance(value, list):
        return list, [typed(item) for item in value]
    return type(value), value


def salt_loads(text):
    return yaml.load(text, Loader=lambda s: salt.utils.yamlloader.SaltYamlSafeLoader(s, dictclass=OrderedDict))


def test_the_reader_builds_what_salts_loader_builds():
    assert load_sls(SAMPLE, "sample.sls") == plain(salt_loads(SAMPLE))
    assert load_sls(SAMPLE, "sample.sls")["wgmesh"]["mtu"] == 1270      # Salt: leading zeros are decimal (YAML 1.1: octal 696)


def test_salts_compile_builds_the_checked_files_from_their_one_parse_as_its_renderer_would(tmp_path):
    """The compile hands Salt's constructor the node graph the checks composed instead of parsing
    each file again; the pillar is the one Salt's own yaml renderer makes of the same tree."""
    from wgmesh_salt.pillar import compile_pillars, salt_opts
    root = tmp_path / "pillar"
    shutil.copytree(PILLAR, root)
    (root / "wgmesh" / "sample.sls").write_text(SAMPLE.replace("wgmesh:", "sample:"))
    (root / "wgmesh" / "empty.sls").write_text("#!yaml\n# nothing yet\n")
    (root / "wgmesh" / "keys.sls").write_text(KEYS_SAMPLE)
    for name in ("sample", "empty", "keys"):
        add_to_top(root, "*", f"wgmesh.{name}")
    tree = read_tree(root, ["sample", "keys"])
    parsed = {sls.text: sls.root for sls in tree.files.values() if sls.root is not None}
    built = []
    import salt.utils.yamlloader
    construct = salt.utils.yamlloader.SaltYamlSafeLoader.construct_document

    def counted(self, node):
        built.append(node)
        return construct(self, node)

    ids = ["z", "a", "c", "r1"]
    stock, _ = compile_pillars(root, ids, salt_opts(cachedir=str(tmp_path / "c1")))
    salt.utils.yamlloader.SaltYamlSafeLoader.construct_document = counted
    try:
        once, _ = compile_pillars(root, ids, salt_opts(cachedir=str(tmp_path / "c2")), parsed=parsed)
    finally:
        salt.utils.yamlloader.SaltYamlSafeLoader.construct_document = construct
    assert once == stock and plain(once["z"]["sample"]) == load_sls(SAMPLE, "s.sls")["wgmesh"]
    assert list(once["z"]["sample"]) == list(stock["z"]["sample"])          # Salt's OrderedDict order
    assert typed(once) == typed(stock)     # the same types, values of every plain type included
    for pillar in (once["z"], stock["z"]):    # an alias is one value, the anchor's
        assert pillar["sample"]["again"] is pillar["sample"]["anchored"]
        assert pillar["keys"]["same"] is pillar["keys"]["nested"]
    assert {id(node) for node in built} >= {id(node) for node in parsed.values()}   # the checks' graphs


def test_a_json_developers_file_compiles_with_salts_json_renderer_to_the_same_network(tmp_path):
    """developers.sls as ``#!json``: the gate's compile gives every minion what Salt's own
    compile of the tree gives (its stock json renderer, nothing of ours in between), and the
    network is the one of the YAML file it replaces."""
    import salt.pillar
    from wgmesh_core.jsondata import dump_json_sls
    from wgmesh_salt.pillar import _compile_opts, compile_pillars, salt_opts
    root = tmp_path / "pillar"
    shutil.copytree(PILLAR, root)
    developers = root / "wgmesh" / "developers.sls"
    as_yaml = read_document(root, ["z", "a"])
    developers.write_text(dump_json_sls(load_sls(developers.read_text(), "d.sls")))
    as_json = read_document(root, ["z", "a"])
    assert as_json.network == as_yaml.network and as_json.network["developers"]
    tree = read_tree(root)
    parsed = {sls.text: sls.root for sls in tree.files.values() if sls.root is not None}
    compiled, _ = compile_pillars(root, ["z"], salt_opts(cachedir=str(tmp_path / "c1")), parsed=parsed)
    fresh = salt.pillar.Pillar(dict(_compile_opts(salt_opts(cachedir=str(tmp_path / "c2")), root, "base"),
                                    lazy_loader_strict_matching=False), {}, "z", "base", functions={})
    try:
        assert compiled["z"] == fresh.compile_pillar(ext=False)
    finally:
        fresh.destroy()


@pytest.mark.parametrize("options, refused", [
    ({"renderer_whitelist": ["yaml"]}, ["wgmesh/developers.sls"]),
    ({"renderer_whitelist": "yaml,jinja"}, ["wgmesh/developers.sls"]),
    ({"renderer_blacklist": ["json"]}, ["wgmesh/developers.sls"]),
    ({"renderer_blacklist": ["yaml"]}, ["top.sls", "wgmesh/mine.sls", "wgmesh/network.sls"]),
    ({"renderer_whitelist": ["yaml", "json"], "renderer_blacklist": ["py"]}, []),
])
def test_a_file_whose_renderer_the_master_forbids_is_refused_not_served_empty(tmp_path, options, refused):
    """Salt skips a file whose renderer the master's options forbid, with a warning, and serves
    the pillar without it: the gate compiles with the master's options and refuses instead."""
    from wgmesh_core.jsondata import dump_json_sls
    from wgmesh_salt.pillar import compile_document, salt_opts
    root = tmp_path / "pillar"
    shutil.copytree(PILLAR, root)
    developers = root / "wgmesh" / "developers.sls"
    developers.write_text(dump_json_sls(load_sls(developers.read_text(), "d.sls")))
    opts = dict(salt_opts(), **options)
    if not refused:
        assert compile_document(read_tree(root), ["z"], opts=opts).network["developers"]
        return
    with pytest.raises(InvalidNetwork) as info:
        compile_document(read_tree(root), ["z"], opts=opts)
    assert [p.where for p in info.value.problems] == refused
    assert "renderer is not allowed by this master's renderer_whitelist/renderer_blacklist" in str(info.value)


def test_a_checked_mapping_deep_copies_as_copy_would_an_ordered_dict():
    import copy
    from wgmesh_salt.pillar import CheckedMapping
    shared = ["a", CheckedMapping(x="y")]
    original = CheckedMapping([("one", "1"), (2, shared), ("again", shared), ("inner", CheckedMapping(k=[1, 2.5]))])
    copied = copy.deepcopy(original)
    assert copied == copy.deepcopy(OrderedDict(original)) and list(copied) == list(original)
    assert type(copied) is CheckedMapping and type(copied["inner"]) is CheckedMapping
    assert copied[2] is copied["again"] and copied[2] is not shared      # one copy of a shared value
    copied[2][1]["x"] = "changed"
    copied["inner"]["k"].append(3)
    assert shared[1]["x"] == "y" and original["inner"]["k"] == [1, 2.5]


def test_a_file_that_changed_after_the_checks_is_parsed_again_by_salt(tmp_path):
    from wgmesh_salt.pillar import compile_pillars, salt_opts
    root = tmp_path / "pillar"
    shutil.copytree(PILLAR, root)
    tree = read_tree(root)
    parsed = {sls.text: sls.root for sls in tree.files.values() if sls.root is not None}
    network = root / "wgmesh" / "network.sls"
    network.write_text(network.read_text().replace("mtu: 1280", "mtu: 1300"))
    compiled, _ = compile_pillars(root, ["z"], salt_opts(cachedir=str(tmp_path / "c")), parsed=parsed)
    assert compiled["z"]["wgmesh"]["mtu"] == 1300


def test_salts_loader_refuses_a_duplicate_key_too():
    text = "#!yaml\nwgmesh:\n  developers:\n    e: 1\n    e: 2\n"
    with pytest.raises(yaml.constructor.ConstructorError):
        salt_loads(text)
    with pytest.raises(InvalidNetwork, match="dup.sls:5: duplicate key 'e' .first at line 4."):
        load_sls(text, "dup.sls")


def test_aliases_within_the_limit_are_data():
    text = "#!yaml\nwgmesh:\n  a: &all [x, y, z]\n  b: *all\n  c: *all\n"
    assert load_sls(text, "ok.sls")["wgmesh"]["c"] == ["x", "y", "z"]
    with pytest.raises(InvalidNetwork, match="aliases expand to more than 5 values"):
        load_sls(text, "tight.sls", Limits(max_alias_values=5))


def test_a_value_given_by_an_alias_cannot_hide_an_override_in_another_file(tmp_path):
    root = tmp_path / "pillar"
    shutil.copytree(PILLAR, root)
    (root / "wgmesh" / "more.sls").write_text("#!yaml\nwgmesh:\n  network: &n 10.70.0.0/16\n"
                                              "  developers: &d {}\n")
    add_to_top(root, "*", "wgmesh.more")
    with pytest.raises(InvalidNetwork) as refused:
        read_tree(root)
    problems = [str(p) for p in refused.value.problems]
    assert any(p.startswith("wgmesh.network: defined in both wgmesh/more.sls and wgmesh/network.sls")
               or p.startswith("wgmesh.network: defined in both wgmesh/network.sls and wgmesh/more.sls")
               for p in problems), problems


def test_the_size_limit_is_an_option(tmp_path):
    done = wgmesh("validate", PILLAR, "--max-pillar-bytes", "500")
    assert done.returncode == 1
    assert "refused unread" in done.stderr and "more than the limit of 500" in done.stderr
    assert wgmesh("validate", PILLAR).returncode == 0


def test_an_allowed_key_rides_along_and_host_keys_are_still_checked(pillar_repo):
    keys = pillar_repo.path / "wgmesh" / "keys.sls"
    keys.write_text(f"#!yaml\nwgmesh_host_keys:\n  a: {new_public_key()}\n")
    add_to_top(pillar_repo.path, "*", "wgmesh.keys")
    refused = wgmesh("validate", pillar_repo.path)
    assert refused.returncode == 1 and "top-level pillar key 'wgmesh_host_keys' is not allowed" in refused.stderr
    allowed = wgmesh("validate", pillar_repo.path, "--allow-key", "wgmesh_host_keys")
    assert allowed.returncode == 0, allowed.stderr
    keys.write_text("#!yaml\nwgmesh_host_keys:\n  a: not-a-key\n")
    bad = wgmesh("validate", pillar_repo.path, "--allow-key", "wgmesh_host_keys")
    assert bad.returncode == 1 and "wgmesh_host_keys.a: " in bad.stderr


@pytest.fixture
def pillar_repo(tmp_path):
    return make_pillar_repo(tmp_path / "pillar-repo")


def test_minions_listed_in_minions_txt_are_compiled_too(pillar_repo):
    """A target that matches no host of the network is only seen when its minion is named."""
    (pillar_repo.path / "wgmesh" / "web.sls").write_text(
        "#!yaml\nwgmesh:\n  developers:\n" + developer("mallory", "10.70.0.66"))
    add_to_top(pillar_repo.path, "web*", "wgmesh.web")
    assert wgmesh("validate", pillar_repo.path).returncode == 0          # no minion called web*
    (pillar_repo.path / "minions.txt").write_text("# every minion of the master\nweb1\n")
    done = wgmesh("validate", pillar_repo.path)
    assert done.returncode == 1
    assert "top.sls: minion web1: gets a different 'wgmesh' pillar" in done.stderr
    (pillar_repo.path / "minions.txt").unlink()
    assert wgmesh("validate", pillar_repo.path, "--known-minions", "z,a,c,r1,web1").returncode == 1


def test_a_compile_error_on_any_minion_refuses_the_revision(pillar_repo):
    add_to_top(pillar_repo.path, "c", "wgmesh.missing")
    done = wgmesh("validate", pillar_repo.path)
    assert done.returncode == 1
    assert "minion c: Salt's pillar compile failed: Specified SLS 'wgmesh.missing'" in done.stderr


def test_a_host_that_gets_no_network_is_refused(pillar_repo):
    top = yaml.safe_load((pillar_repo.path / "top.sls").read_text())
    top["base"] = {"* and not r1": [{"match": "compound"}, *top["base"]["*"]]}
    (pillar_repo.path / "top.sls").write_text("#!yaml\n" + yaml.safe_dump(top))
    done = wgmesh("validate", pillar_repo.path)
    assert done.returncode == 1
    assert "top.sls: minion r1: is a host of the network but gets no 'wgmesh' pillar" in done.stderr


def test_plan_shows_a_top_sls_change_with_the_result_per_minion(pillar_repo):
    """Splitting the developers out into a second file for everyone: same network, new top.sls."""
    pillar_repo.branch("split")
    developers = pillar_repo.path / "wgmesh" / "developers.sls"
    (pillar_repo.path / "wgmesh" / "contractors.sls").write_text(
        "#!yaml\nwgmesh:\n  developers:\n" + developer("g", "10.70.0.6").replace(
            "MyeHCD9sVXMXPgyEY79Yif8QskCjqm+SoJqmLXHN1RM=", new_public_key()))
    pillar_repo.append("top.sls", "    - wgmesh.contractors\n")        # the last entry of '*'
    assert developers.exists()
    pillar_repo.commit("contractors in their own file")
    text = wgmesh("plan", pillar_repo.path, "--target", "main")
    assert text.returncode == 0, text.stderr
    assert "top.sls changes (which minion gets which SLS):" in text.stdout
    assert "\n    +    - wgmesh.contractors\n" in text.stdout        # the diff, indented
    assert ("  minion a: base:wgmesh.network, base:wgmesh.mine, base:wgmesh.developers -> base:wgmesh.network, "
            "base:wgmesh.mine, base:wgmesh.developers, base:wgmesh.contractors; gets the network") in text.stdout
    doc = json.loads(wgmesh("plan", pillar_repo.path, "--target", "main", "--format", "json").stdout)
    assert doc["top"]["changed"] is True
    assert doc["top"]["minions"]["z"]["head"][-1] == "base:wgmesh.contractors"
    assert doc["top"]["minions"]["z"]["gets_network"] is True
    assert doc["affected"] == ["z"]


def test_plan_without_a_top_sls_change_says_nothing_about_it(pillar_repo):
    pillar_repo.branch("g")
    pillar_repo.add_developer("g", "10.70.0.6", new_public_key())
    pillar_repo.commit("g")
    done = wgmesh("plan", pillar_repo.path, "--target", "main", "--format", "json")
    assert json.loads(done.stdout)["top"] == {"changed": False}


def test_a_pillar_naming_too_many_hosts_is_not_compiled_for_each(tmp_path):
    """Each host the pillar names costs a compile in `wgmesh plan`: their number is bounded."""
    assert sorted(read_document(PILLAR).networked) == ["a", "c", "r1", "z"]
    with pytest.raises(InvalidNetwork, match="the pillar names 4 hosts and minions; .* at most 3 of them"):
        read_document(PILLAR, limits=Limits(max_named_hosts=3))


TARGETED_TOP = """#!yaml
base:
  '*':
    - common
  'gw*':
    - gateways
  'L@z,r1':
    - listed
  'os:Debian':
    - match: grain
    - debian
  'G@role:hub or E@^r[0-9]$':
    - match: compound
    - compound
  'roles:gateway':
    - match: grain
    - rolelist
  '^a.*':
    - match: pcre
    - pcre
  'os:(Deb|Ubu).*':
    - match: grain_pcre
    - grainpcre
  'r*':
    - match: glob
    - globbed
"""
TARGETED_GRAINS = {"z": {"os": "Debian", "role": "hub"}, "gw1": {"os": "Debian", "roles": ["gateway"]},
                   "gw2": {"os": "Ubuntu", "roles": ["gateway", "other"]}, "a": {}, "r1": {"os": "Debian"},
                   "ab": {"os": "Fedora", "role": "hub"}}


def test_the_compile_loads_no_file_server_it_does_not_use():
    """The file servers' modules are not scanned for the roots one's missing init (gitfs would bring
    GitPython): only what the pillar compile needs is loaded."""
    probe = ("import sys; from wgmesh_salt import read_document; read_document(sys.argv[1]); "
             "print(sorted(m for m in sys.modules if 'fileserver' in m or m.split('.')[0] == 'git'))")
    done = subprocess.run([sys.executable, "-c", probe, str(PILLAR)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == repr(["salt.fileserver", "salt.loaded.ext.fileserver", "salt.loaded.int.fileserver",
                                        "salt.loaded.int.fileserver.roots"])


@pytest.mark.parametrize("order", ["sorted", "reversed"])
def test_each_minion_gets_what_a_fresh_pillar_of_its_own_compiles(tmp_path, order):
    """compile_pillars renders the top and each SLS set with one Pillar and targets each minion
    with its own options and matchers: top.sls targeting by id (glob, compound's glob, list, pcre), by grains
    (grain, grain list, grain_pcre) and compound gives each minion exactly what Salt's own
    ``Pillar(...).compile_pillar(ext=False)`` of a Pillar made for that minion alone gives, in
    any order of the minions (nothing of one minion's targeting reaches the next)."""
    import salt.pillar
    from wgmesh_salt.pillar import _compile_opts, compile_pillars, salt_opts
    root = tmp_path / "pillar"
    root.mkdir()
    (root / "top.sls").write_text(TARGETED_TOP)
    names = ["common", "gateways", "listed", "debian", "compound", "rolelist", "pcre", "grainpcre", "globbed"]
    for name in names:
        (root / f"{name}.sls").write_text(f"#!yaml\n{name}: {{from: {name}}}\n")
    ids = sorted([*TARGETED_GRAINS, "x"])     # x: a minion without grains
    ids = ids if order == "sorted" else ids[::-1]
    compiled, matched = compile_pillars(root, ids, salt_opts(cachedir=str(tmp_path / "c1")), grains=TARGETED_GRAINS)
    # the fresh Pillars find their loaders' functions as Salt does by default (the loose way)
    compile_opts = dict(_compile_opts(salt_opts(cachedir=str(tmp_path / "c2")), root, "base"),
                        lazy_loader_strict_matching=False)
    for minion in ids:
        fresh = salt.pillar.Pillar(compile_opts, dict(TARGETED_GRAINS.get(minion) or {}), minion, "base", functions={})
        try:
            expected = fresh.compile_pillar(ext=False)
        finally:
            fresh.destroy()
        assert compiled[minion] == expected, minion
        assert matched[minion] == [f"base:{name}" for name in names if name in expected], minion
    gets = {minion: sorted(key for key in compiled[minion]) for minion in ids}
    assert gets["z"] == ["common", "compound", "debian", "grainpcre", "listed"]
    assert gets["gw2"] == ["common", "gateways", "grainpcre", "rolelist"]
    assert gets["ab"] == ["common", "compound", "pcre"] and gets["x"] == ["common"]
    assert gets["r1"] == ["common", "compound", "debian", "globbed", "grainpcre", "listed"]


def test_each_minion_is_targeted_with_one_matchers_loader(tmp_path, monkeypatch):
    """confirm_top finds the minion's matchers in its context instead of loading its own (a
    loader loads every matcher module anew: about 3 ms a minion, which the gate pays for every
    accepted minion)."""
    import salt.loader
    from wgmesh_salt.pillar import compile_pillars, salt_opts
    root = tmp_path / "pillar"
    root.mkdir()
    (root / "top.sls").write_text(TARGETED_TOP)
    for name in ["common", "gateways", "listed", "debian", "compound", "rolelist", "pcre", "grainpcre", "globbed"]:
        (root / f"{name}.sls").write_text(f"#!yaml\n{name}: {{from: {name}}}\n")
    made = []
    stock = salt.loader.matchers
    monkeypatch.setattr(salt.loader, "matchers", lambda *args, **kwargs: made.append(1) or stock(*args, **kwargs))
    compiled, _ = compile_pillars(root, sorted(TARGETED_GRAINS), salt_opts(cachedir=str(tmp_path / "c")),
                                  grains=TARGETED_GRAINS)
    assert sorted(compiled["gw2"]) == ["common", "gateways", "grainpcre", "rolelist"]
    assert len(made) == 1 + len(TARGETED_GRAINS)     # the Pillar's own, then one per minion
