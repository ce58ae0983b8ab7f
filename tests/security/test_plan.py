"""Every attack as a pull request on a real git repository, through `wgmesh plan` (what the
pull request's pipeline runs): refused, exit 1, one line per problem naming the file and line
or the entry, no traceback, and no code run (the marker file never appears).

The controls show the payloads are live: rendered the way the old reader did (plain Jinja2),
or compiled by Salt without the ``#!yaml`` rule (as git_pillar would), they do run.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

import jinja2
import pytest
import yaml

from tests.onboard.conftest import make_pillar_repo, wgmesh

from .attacks import ATTACKS, DEVELOPERS, by_name


@pytest.fixture
def pillar_repo(tmp_path):
    return make_pillar_repo(tmp_path / "pillar-repo")


def open_pull_request(repo, attack, marker):
    repo.branch(f"pr-{attack.name}")
    attack.change(repo.path, marker)
    repo.commit(f"pull request: {attack.name}")


@pytest.mark.parametrize("attack", ATTACKS, ids=lambda a: a.name)
def test_plan_refuses_the_attack(attack, pillar_repo, tmp_path):
    marker = tmp_path / "marker"
    open_pull_request(pillar_repo, attack, marker)
    done = wgmesh("plan", pillar_repo.path, "--head", "HEAD", "--target", "main")
    assert done.returncode == 1, f"not refused:\n{done.stdout}{done.stderr}"
    for fragment in attack.refusal:
        assert fragment in done.stderr, f"{fragment!r} not in:\n{done.stderr}"
    assert "Traceback" not in done.stderr and done.stdout == ""
    assert not marker.exists(), "the pull request ran code"


@pytest.mark.parametrize("name", ["jinja-cycler", "jinja-lipsum", "jinja-joiner", "jinja-namespace"])
def test_control_plain_jinja_runs_the_payload(name, pillar_repo, tmp_path):
    """What the reader did before: jinja2.Template(text).render() on every SLS."""
    marker = tmp_path / "marker"
    by_name(name).change(pillar_repo.path, marker)
    jinja2.Template((pillar_repo.path / DEVELOPERS).read_text()).render()
    assert marker.exists()


def salt_compiles_without_the_yaml_rule(tree, tmp_path):
    """salt-call --local compiling ``tree`` with Salt's default renderer (jinja|yaml) and the
    `salt` object, as git_pillar does for files without the ``#!yaml`` line."""
    for sls in tree.rglob("*.sls"):
        sls.write_text(sls.read_text().removeprefix("#!yaml\n"))
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "minion").write_text(yaml.safe_dump({
        "id": "z", "file_client": "local", "pillar_roots": {"base": [str(tree)]},
        "cachedir": str(tmp_path / "cache"), "pki_dir": str(tmp_path / "pki"),
        "log_file": str(tmp_path / "minion.log"), "sock_dir": str(tmp_path / "sock")}))
    salt_call = os.path.join(os.path.dirname(sys.executable), "salt-call")
    return subprocess.run([salt_call, "--local", "-c", str(conf), "--out=json", "pillar.items"],
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("name", ["jinja-salt-defined", "renderer-py"])
def test_control_salt_runs_the_payload_without_the_yaml_rule(name, tmp_path):
    marker = tmp_path / "marker"
    tree = tmp_path / "tree"
    shutil.copytree(make_pillar_repo(tmp_path / "repo").path, tree, ignore=shutil.ignore_patterns(".git"))
    by_name(name).change(tree, marker)
    done = salt_compiles_without_the_yaml_rule(tree, tmp_path)
    assert marker.exists(), done.stdout + done.stderr
