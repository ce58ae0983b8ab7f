"""Compile a checked pillar tree the way git_pillar does, for each minion, and agree on ``wgmesh``.

git_pillar (salt/pillar/git_pillar.py) compiles a branch's checkout with
``Pillar(opts, grains, minion_id, env).compile_pillar(ext=False)`` after
setting ``pillar_roots = {env: [checkout]}``; so does ``compile_pillar`` here.
The tree is checked as data first (``wgmesh_core.source.read_tree``: YAML only,
``#!yaml`` on every file), so Salt only ever runs its YAML renderer on it;
the renderer allow-list below says so to Salt as well.
"""
from __future__ import annotations

import copy
import json
import tempfile
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Optional

from wgmesh_core.source import TOP_FILE, Limits, PillarTree, agreed_network, read_tree
from wgmesh_core.validate import InvalidNetwork, Problem
from wgmesh_core.yamldata import YAML_TAG


@dataclass
class Document:
    """The ``wgmesh`` value every minion gets, and what each compiled minion gets from top.sls."""
    network: dict
    tree: PillarTree
    minions: dict = field(default_factory=dict)   # minion id -> ["base:wgmesh.network", ...]
    networked: list = field(default_factory=list)  # minion ids that get the network


def salt_opts(base: Optional[Mapping] = None, cachedir: Optional[str] = None) -> dict:
    """Options to compile with: the master's own (``base``) or Salt's master defaults."""
    import salt.config
    opts = copy.deepcopy(dict(base)) if base is not None else salt.config.master_config(None)
    if cachedir:
        opts.update(cachedir=cachedir, extension_modules=str(Path(cachedir) / "extmods"))
    return opts


RENDERERS = ("yaml", "json")    # the renderers of yamldata's and jsondata's files (SlsFile.renderer)


def _names(option) -> list:
    return [n.strip() for n in option.split(",")] if isinstance(option, str) else list(option or [])


def _renderer_problems(tree: PillarTree, opts: Mapping) -> list[Problem]:
    """A file whose renderer the master's ``renderer_whitelist``/``renderer_blacklist`` forbid:
    Salt would skip it with a warning and serve the pillar without it (a network without its
    developers, say), so the revision is refused instead."""
    whitelist, blacklist = _names(opts.get("renderer_whitelist")), _names(opts.get("renderer_blacklist"))
    problems = []
    for name, sls in tree.files.items():
        if (whitelist and sls.renderer not in whitelist) or sls.renderer in blacklist:
            problems.append(Problem(name, f"Salt's {sls.renderer} renderer is not allowed by this master's "
                                          "renderer_whitelist/renderer_blacklist: it would serve nothing of this file"))
    return problems


def _compile_opts(opts: Mapping, root: Path, env: str) -> dict:
    compile_opts = copy.deepcopy(dict(opts))
    compile_opts.update({
        "pillar_roots": {env: [str(root)]},
        "__git_pillar": True,
        "ext_pillar": [],
        "renderer": "yaml",
        "renderer_whitelist": list(RENDERERS),   # of a checked tree (_renderer_problems)
        "renderer_blacklist": [],
        "pillar_safe_render_error": False,   # the gate reports the real reason
        "pillar_opts": False,
        "decrypt_pillar": [],
        # Salt's loaders find a function in the module its file is named after (every matcher
        # and the roots file server are): without it, looking up the file server's missing
        # roots.init loads every other file server module, gitfs and GitPython with it (30 ms)
        "lazy_loader_strict_matching": True,
    })
    return compile_opts


class CheckedMapping(OrderedDict):
    """The OrderedDict the yaml renderer makes, deep-copied by a loop of its own: Salt's merge
    copies the pillar so far before each file's values go in (a file after developers.sls copies
    every developer), and copy's generic reconstruction of an OrderedDict costs three times as
    much. Keys are plain scalars and most values strings: neither needs a copy."""

    def __deepcopy__(self, memo):
        copied = memo[id(self)] = type(self)()
        for key, value in self.items():
            copied[key] = value if type(value) is str else copy.deepcopy(value, memo)
        return copied


def checked_yaml_renderer(stock_render, parsed: dict):
    """Salt's ``yaml`` renderer, without a second parse of the checked files.

    Salt's renderer is ``SaltYamlSafeLoader(text).get_single_data()``: libyaml composes the node
    graph (CSafeLoader), Salt's constructor builds the values from it.  ``read_tree`` composed
    the same text with libyaml already; for a text in ``parsed`` ({text: its root node}) Salt's
    own constructor builds the values from that graph.  Any other text goes to ``stock_render``.
    """
    from salt.utils.yamlloader import SaltYamlSafeLoader
    from yaml.nodes import ScalarNode
    str_tag = YAML_TAG + "str"

    class ComposedLoader(SaltYamlSafeLoader):
        def __init__(self, root):
            super().__init__("", dictclass=CheckedMapping)   # the yaml renderer's OrderedDict
            self.root = root

        def get_single_node(self):
            return self.root

        # The graph passed read_tree's checks: plain tags only, no merge keys, each key once,
        # so Salt's mapping and sequence constructors come down to the loops below. A plain
        # string scalar (nearly every node of a pillar) is its text, as Salt's str constructor
        # makes it; every other node goes to Salt's own construct_object (aliases included).
        def construct_mapping(self, node, deep=False):
            value = self._value
            mapping = self.dictclass()
            for key_node, value_node in node.value:
                mapping[value(key_node, deep)] = value(value_node, deep)
            return mapping

        def construct_sequence(self, node, deep=False):
            value = self._value
            return [value(child, deep) for child in node.value]

        def _value(self, node, deep):
            if node.tag == str_tag and type(node) is ScalarNode:
                return node.value
            return self.construct_object(node, deep=deep)

    def render(yaml_data, saltenv="base", sls="", argline="", **kwargs):
        text = yaml_data if isinstance(yaml_data, str) else yaml_data.read()
        if text not in parsed:
            return stock_render(text, saltenv, sls, argline=argline, **kwargs)
        loader = ComposedLoader(parsed[text])
        try:
            return loader.get_single_data() or {}   # keys are plain scalars: checked
        finally:
            loader.dispose()
    return render


def _targeting(pillar_class, opts: dict, minion: str, grains: dict, env: str):
    """A ``Pillar`` holding what its ``top_matches`` reads for ``minion``, made as
    ``Pillar.__init__`` makes it: the options (the minion's id and grains) and the matchers
    loaded with them. A whole Pillar per minion costs about 25 ms (file clients, renderers,
    loaders); this about 1 ms. It has no client of its own: its ``destroy`` closes nothing."""
    import salt.loader
    target = pillar_class.__new__(pillar_class)
    target._closing = True
    target.minion_id, target.ext = minion, None
    target.opts = target._Pillar__gen_opts(opts, grains, saltenv=env)
    pillar_data = target.opts.get("pillar", {})
    target.pillar_data = dict(pillar_data) if isinstance(pillar_data, dict) else {}
    target.opts["minion_id"] = minion
    context = {}
    target.matchers = salt.loader.matchers(target.opts, context=context, pillar=target.pillar_data)
    if hasattr(target.matchers, "pack"):
        target.matchers.pack["__pillar__"] = target.pillar_data
    # confirm_top (what top_matches calls) looks for its matchers in its __context__, and loads
    # another matchers loader for the same options and pillar when they are not there: these
    # are they (a loader per minion instead of two: each loads its modules anew, about 3 ms)
    context["matchers"] = target.matchers
    return target


def compile_pillars(root: Path, minion_ids: Iterable[str], opts: Mapping, env: str = "base",
                    grains: Optional[Mapping] = None, parsed: Optional[dict] = None) -> tuple[dict, dict]:
    """({minion: pillar}, {minion: the SLS top.sls gives it}) as git_pillar compiles ``root``.

    Per minion, the calls ``Pillar.compile_pillar(ext=False)`` makes: ``get_top``,
    ``top_matches`` (targeting with the minion's id and grains), ``render_pillar``.  The
    tree is YAML only, so what ``get_top`` and ``render_pillar`` make of it does not depend on
    the minion: one Pillar renders the top and each distinct set of SLS once (its pillar shared,
    read-only), and each minion's targeting is Salt's ``top_matches`` with that minion's options
    and matchers (``_targeting``).  ``parsed``: {text: root node} of the files already composed
    (``checked_yaml_renderer``).
    """
    import salt.pillar
    ids = list(minion_ids)
    if not ids:
        return {}, {}
    grains_of = lambda minion: dict((grains or {}).get(minion) or {})    # noqa: E731
    compile_opts = _compile_opts(opts, root, env)
    pillars, matched, rendered = {}, {}, {}
    pillar = salt.pillar.Pillar(compile_opts, grains_of(ids[0]), ids[0], env, functions={})
    if parsed:
        # the renderers a checked tree names (yamldata's and jsondata's first lines), nothing else
        pillar.rend = {"yaml": checked_yaml_renderer(pillar.rend["yaml"], parsed), "json": pillar.rend["json"]}
    try:
        top, top_errors = pillar.get_top()
        for minion in ids:
            matches = _targeting(type(pillar), compile_opts, minion, grains_of(minion), env).top_matches(top)
            key = json.dumps(matches)
            if key not in rendered:
                rendered[key] = pillar.render_pillar(matches)
            data, errors = rendered[key]
            errors = list(errors) + list(top_errors)
            pillars[minion] = dict(data, _errors=errors) if errors else data
            matched[minion] = [f"{saltenv}:{sls}" for saltenv, names in matches.items() for sls in names]
    finally:
        pillar.destroy()
    return pillars, matched


def compile_document(tree: PillarTree, minion_ids: Iterable[str] = (), allowed_keys: Iterable[str] = (),
                     opts: Optional[Mapping] = None, env: str = "base", grains: Optional[Mapping] = None,
                     named: bool = True, limits: Limits = Limits()) -> Document:
    """Compile ``tree`` for ``minion_ids`` (plus, with ``named``, the hosts the tree names and the
    ids in its minions.txt); the ``wgmesh`` value must be the same for every minion that gets
    one (``agreed_network``).  The gate passes ``named=False``: it compiles for the accepted
    minions, and a host that is not one is refused by the validation anyway."""
    ids = set(minion_ids)
    if named:
        extra = tree.named_minions() | set(tree.listed_minions)
        if len(extra) > limits.max_named_hosts:
            raise InvalidNetwork([Problem(TOP_FILE, f"the pillar names {len(extra)} hosts and minions; the pillar "
                                                    f"is compiled for at most {limits.max_named_hosts} of them")])
        ids |= extra
    ids = sorted(ids)
    problems = _renderer_problems(tree, opts or {})
    if problems:
        raise InvalidNetwork(problems)
    with tempfile.TemporaryDirectory(prefix="wgmesh-salt-") as cache:
        parsed = {sls.text: sls.root for sls in tree.files.values() if sls.renderer == "yaml" and sls.root is not None}
        compiled, matched = compile_pillars(tree.root, ids, salt_opts(opts, cachedir=cache), env, grains, parsed)
    network = agreed_network(compiled, allowed_keys)
    return Document(network, tree, matched, [m for m in ids if "wgmesh" in compiled[m]])


def read_document(root, minion_ids: Iterable[str] = (), allowed_keys: Iterable[str] = (),
                  limits: Limits = Limits(), **compile_args) -> Document:
    """The document of a pillar directory: checked as data, then compiled by Salt."""
    return compile_document(read_tree(root, allowed_keys, limits), minion_ids, allowed_keys, limits=limits,
                            **compile_args)


def read_document_at(repo_path, rev: str, subdir: str = "", minion_ids: Iterable[str] = (),
                     allowed_keys: Iterable[str] = (), limits: Limits = Limits(), **compile_args) -> Document:
    """The document of a revision of the pillar repository."""
    from wgmesh_core.gitsource import checked_out   # GitPython: the master's and the CLI's extra
    with checked_out(repo_path, rev, subdir, limits) as root:
        return read_document(root, minion_ids, allowed_keys, limits, **compile_args)

