"""The pillar repo's pipelines (GitLab CI, GitHub Actions): their plan step's own shell commands,
run with bash in a CI-like clone (remote `origin` = a bare repo holding `main`, PR branch checked out)."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import assert_clean_failure

from .conftest import BIN, REPO, git, make_pillar_repo, new_public_key

GITLAB = REPO / "pipelines" / "gitlab-ci.yml"
GITHUB = REPO / "pipelines" / "github" / "wgmesh-plan.yml"
INSTALL = re.compile(r"^\s*(pip3?|python3? -m pip|apt-get|apt)\b")


def without_install_lines(lines):
    return [line for line in lines if not INSTALL.match(line)]


def gitlab_plan_commands() -> list[str]:
    job = yaml.safe_load(GITLAB.read_text())["wgmesh-plan"]
    assert job["variables"]["GIT_DEPTH"] == 0            # the merge base must be in the clone
    script = job["script"]
    assert isinstance(script, list) and script
    return without_install_lines(script)


def github_plan_commands() -> list[str]:
    workflow = yaml.safe_load(GITHUB.read_text())
    steps = workflow["jobs"]["plan"]["steps"]
    checkout = next(s for s in steps if s.get("uses", "").startswith("actions/checkout"))
    assert checkout["with"]["fetch-depth"] == 0
    runs = [s for s in steps if "run" in s and "wgmesh plan" in s["run"]]
    assert len(runs) == 1, runs
    # `shell: bash` makes GitHub run it as `bash --noprofile --norc -eo pipefail {0}`
    assert runs[0]["shell"] == "bash"
    return without_install_lines(runs[0]["run"].splitlines())


def test_the_plan_steps_run_wgmesh_plan_against_the_target_branch():
    for commands, var in ((gitlab_plan_commands(), "CI_MERGE_REQUEST_TARGET_BRANCH_NAME"),
                          (github_plan_commands(), "GITHUB_BASE_REF")):
        plans = [c for c in commands if c.lstrip().startswith("wgmesh plan")]
        assert len(plans) == 3, commands
        assert all(f'--target "origin/${var}"' in c for c in plans)
        assert any("--format json" in c and "> wgmesh-plan.json" in c for c in plans)
        assert any("--format markdown" in c and "> wgmesh-plan.md" in c for c in plans)
        assert commands[0] == f'git fetch -q origin "${var}"'


def ci_env(home: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(PATH=f"{BIN}{os.pathsep}{env.get('PATH', '/usr/bin:/bin')}", HOME=str(home),
               CI_MERGE_REQUEST_TARGET_BRANCH_NAME="main", CI_PIPELINE_SOURCE="merge_request_event",
               GITHUB_BASE_REF="main", GITHUB_HEAD_REF="pr", CI="true",
               GITHUB_STEP_SUMMARY=str(home / "step-summary.md"),
               GIT_AUTHOR_NAME="ci", GIT_AUTHOR_EMAIL="ci@example.invalid",
               GIT_COMMITTER_NAME="ci", GIT_COMMITTER_EMAIL="ci@example.invalid")
    return env


@pytest.fixture
def ci_clone(tmp_path):
    """Returns make(pr_change) -> path of a CI checkout of a PR made by ``pr_change(repo)``.

    The developer's repository carries the pipeline files where the README says to copy them,
    pushes `main` and the PR branch to a bare `origin`; CI clones origin and checks out the PR.
    """
    def make(pr_change, intent=False):
        dev = make_pillar_repo(tmp_path / "dev", intent)
        (dev.path / ".github" / "workflows").mkdir(parents=True)
        shutil.copy(GITLAB, dev.path / ".gitlab-ci.yml")
        shutil.copy(GITHUB, dev.path / ".github" / "workflows" / "wgmesh-plan.yml")
        dev.commit("pipelines")
        origin = tmp_path / "origin.git"
        git(tmp_path, "init", "-q", "--bare", "-b", "main", str(origin))
        dev.git("remote", "add", "origin", str(origin))
        dev.git("push", "-q", "origin", "main")
        dev.branch("pr")
        pr_change(dev)
        dev.commit("the pull request")
        dev.git("push", "-q", "origin", "pr")
        checkout = tmp_path / "ci"
        git(tmp_path, "clone", "-q", "--branch", "pr", str(origin), str(checkout))
        # CI clones only fetch what they need: drop the local main so the step's own fetch must provide it
        assert git(checkout, "branch", "--list", "main") == ""
        git(checkout, "update-ref", "-d", "refs/remotes/origin/main")
        return checkout
    return make


def run_step(commands, checkout, home, bash_flags, env=None):
    script = "\n".join(commands) + "\n"
    return subprocess.run(["bash", "--noprofile", "--norc", *bash_flags, "-c", script], cwd=checkout,
                          env=env or ci_env(home), capture_output=True, text=True, timeout=120)


# GitLab runs its script lines under `set -eo pipefail`; GitHub's `shell: bash` is `bash -eo pipefail {0}`.
PIPELINES = {"gitlab": (gitlab_plan_commands, ["-eo", "pipefail"]),
             "github": (github_plan_commands, ["-eo", "pipefail"])}


@pytest.mark.parametrize("ci", list(PIPELINES))
def test_plan_step_shows_the_plan_of_a_valid_pr(ci_clone, tmp_path, ci):
    commands, flags = PIPELINES[ci]
    checkout = ci_clone(lambda r: r.add_developer("g", "10.70.0.6", new_public_key(), lan_access=["c"]))
    done = run_step(commands(), checkout, tmp_path, flags)
    assert done.returncode == 0, (done.stdout, done.stderr)
    if ci == "github":
        text = (checkout / "wgmesh-plan.txt").read_text()
        assert text == done.stdout                 # tee'd into the artifact
    else:
        text = done.stdout
    lines = text.splitlines()
    assert lines[0].endswith("valid; 2 host(s) change"), lines[0]
    assert "hub z: +peer g, +allow 10.70.0.6/32 -> 10.70.0.3/32, +allow 10.70.0.6/32 -> 192.168.200.0/24" in lines
    assert "gateway c: +allow 10.70.0.6/32" in lines
    assert "gateway a: unchanged" in lines
    doc = json.loads((checkout / "wgmesh-plan.json").read_text())
    assert doc["affected"] == ["z", "c"] and doc["clients_changed"] == ["g"]
    summary = (checkout / "wgmesh-plan.md").read_text()
    assert summary.startswith("## wgmesh plan") and "2 host(s) change (z, c)" in summary
    if ci == "github":
        assert (tmp_path / "step-summary.md").read_text() == summary   # the job summary
    assert doc["base"] == git(checkout, "rev-parse", "origin/main")
    assert doc["head"] == git(checkout, "rev-parse", "HEAD")


@pytest.mark.parametrize("ci", list(PIPELINES))
def test_plan_step_fails_a_pr_breaking_an_intent_test_and_still_writes_the_summary(ci_clone, tmp_path, ci):
    commands, flags = PIPELINES[ci]
    checkout = ci_clone(lambda r: r.replace("wgmesh/developers.sls", "lan_access: all\n      platform: macos",
                                            "lan_access: [c]\n      platform: macos"), intent=True)
    done = run_step(commands(), checkout, tmp_path, flags)
    assert done.returncode != 0, (done.stdout, done.stderr)
    assert "tests[2]: e -> b expected reach via tunnel: blocked by gateway a's allow-list" in done.stderr
    summary = (checkout / "wgmesh-plan.md").read_text()
    assert "❌ **refused**" in summary and "```mermaid" in summary
    if ci == "github":
        assert (tmp_path / "step-summary.md").read_text() == summary


@pytest.mark.parametrize("ci", list(PIPELINES))
def test_plan_step_fails_an_invalid_pr(ci_clone, tmp_path, ci):
    commands, flags = PIPELINES[ci]
    checkout = ci_clone(lambda r: r.add_developer("g", "10.70.0.5", new_public_key()))
    done = run_step(commands(), checkout, tmp_path, flags)
    assert_clean_failure(done, 1, "developers.g.address: 10.70.0.5 is already taken by developers.f")


PIP = re.compile(r"^\s*(pip3?|python3? -m pip)\b")
CHECKOUT = {"gitlab": "${TMPDIR:-/tmp}/wgmesh", "github": "$RUNNER_TEMP/wgmesh"}


def gitlab_install() -> tuple[dict, list[str]]:
    job = yaml.safe_load(GITLAB.read_text())["wgmesh-plan"]
    return job["variables"], job["before_script"]


def github_install() -> tuple[dict, list[str]]:
    workflow = yaml.safe_load(GITHUB.read_text())
    steps = workflow["jobs"]["plan"]["steps"]
    installs = [s for s in steps if "run" in s and "pip install" in s["run"]]
    assert len(installs) == 1, installs
    assert installs[0]["shell"] == "bash"
    return workflow["jobs"]["plan"]["env"], installs[0]["run"].splitlines()


INSTALLS = {"gitlab": gitlab_install, "github": github_install}


@pytest.mark.parametrize("ci", list(INSTALLS))
def test_install_step_takes_wgmesh_from_a_pinned_commit_and_its_dependencies_by_hash(ci):
    variables, lines = INSTALLS[ci]()
    checkout = CHECKOUT[ci]
    pips = [line.strip() for line in lines if PIP.match(line)]
    assert pips == [f'pip install -q --require-hashes -r "{checkout}/requirements.txt"',
                    f'pip install -q --no-deps --no-build-isolation "{checkout}"'], pips
    # the operator must fill in the commit: the shipped value is not one
    assert not re.fullmatch(r"[0-9a-f]{40}", variables["WGMESH_COMMIT"])
    assert (REPO / "requirements.txt").read_text().count("--hash=sha256:") > 100


@pytest.mark.parametrize("ci", list(INSTALLS))
def test_install_step_checks_out_exactly_the_configured_commit(ci, tmp_path):
    variables, lines = INSTALLS[ci]()
    steps = without_install_lines(lines)        # the git part; pip and apt are checked above

    def run(commit):
        env = ci_env(tmp_path)
        env.update({k: str(v) for k, v in variables.items()}, WGMESH_REPO=f"file://{REPO}", WGMESH_COMMIT=commit,
                   TMPDIR=str(tmp_path / "tmp"), RUNNER_TEMP=str(tmp_path / "tmp"))
        shutil.rmtree(tmp_path / "tmp", ignore_errors=True)
        (tmp_path / "tmp").mkdir()
        return run_step(steps, tmp_path, tmp_path, ["-eo", "pipefail"], env)

    for bad in (variables["WGMESH_COMMIT"], "main", git(REPO, "rev-parse", "--short", "HEAD")):
        done = run(bad)
        assert done.returncode != 0, done
        assert "WGMESH_COMMIT must be the full commit id of wgmesh" in done.stderr, done.stderr
        assert not (tmp_path / "tmp" / "wgmesh").exists()
    commit = git(REPO, "rev-parse", "HEAD~1")
    done = run(commit)
    assert done.returncode == 0, done.stderr
    assert git(tmp_path / "tmp" / "wgmesh", "rev-parse", "HEAD") == commit
    assert (tmp_path / "tmp" / "wgmesh" / "requirements.txt").exists()

