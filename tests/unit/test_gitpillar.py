"""git_pillar as the gate sees it (``wgmesh_salt.gitpillar``), on Salt's own ``GitPillar`` and
its ``git_pillar.update`` runner, with real git repositories on disk (gitpython): which remotes
serve the gate's repository, the pillar environment they serve it in, and whether a fetch made
them serve a revision. No master runs: the lab's tests do that (tests/lab/test_gate.py)."""
import git
import pytest
import salt.config
import salt.runners.git_pillar

from wgmesh_salt.gitpillar import GitPillar

AUTHOR = git.Actor("t", "t@example.com")


class Upstream:
    """A bare repository (what git_pillar fetches) and a work tree that pushes commits to it."""

    def __init__(self, path):
        self.bare = git.Repo.init(path / "pillar.git", bare=True)
        self.path = str(path / "pillar.git")
        self.work = git.Repo.init(path / "work")
        self.count = 0

    def commit(self, branch="main") -> str:
        self.count += 1
        with open(f"{self.work.working_dir}/top.sls", "w") as handle:
            handle.write(f"# {self.count}\nbase: {{}}\n")
        self.work.index.add(["top.sls"])
        commit = self.work.index.commit(str(self.count), author=AUTHOR, committer=AUTHOR)
        self.work.git.push(self.path, f"HEAD:refs/heads/{branch}")
        return commit.hexsha


@pytest.fixture
def upstream(tmp_path):
    return Upstream(tmp_path / "upstream")


@pytest.fixture
def opts(tmp_path, upstream, monkeypatch):
    opts = salt.config.master_config(str(tmp_path / "master"))
    opts.update(cachedir=str(tmp_path / "cache"), git_pillar_provider="gitpython",
                ext_pillar=[{"wgmesh_secrets": {}}, {"git": [f"main file://{upstream.path}"]}])
    monkeypatch.setattr(salt.runners.git_pillar, "__opts__", opts, raising=False)
    return opts


def served(opts, upstream, update=None):
    return GitPillar(opts, upstream.path, update or salt.runners.git_pillar.update)


def test_the_remotes_are_the_git_entries_whose_url_is_the_gates_repository(opts, upstream, tmp_path):
    other = Upstream(tmp_path / "other")
    opts["ext_pillar"] = [{"git": [f"main file://{other.path}", f"main file://{upstream.path}/"]},
                          {"wgmesh_secrets": {}}, "not a dict", {"git": [f"dev file://{upstream.path}"]}]
    remotes = list(served(opts, upstream).remotes())
    assert [(remote.url, remote.branch) for remote in remotes] == [(f"file://{upstream.path}/", "main"),
                                                                    (f"file://{upstream.path}", "dev")]
    assert list(GitPillar(opts, str(tmp_path / "elsewhere.git"), None).remotes()) == []


@pytest.mark.parametrize("branch, remote_env, env", [
    ("main", None, "main"),             # the branch's name
    ("master", None, "base"),           # git_pillar_base (master) serves the base environment
    ("main", "prod", "prod"),           # the remote's own env
])
def test_the_environment_is_the_one_git_pillar_serves_the_repository_in(opts, upstream, branch, remote_env, env):
    remote = f"{branch} file://{upstream.path}"
    opts["ext_pillar"] = [{"git": [{remote: [{"env": remote_env}]} if remote_env else remote]}]
    assert served(opts, upstream).env() == env


def test_no_remote_serves_the_base_environment(opts, upstream):
    opts["ext_pillar"] = [{"wgmesh_secrets": {}}]
    assert served(opts, upstream).env() == "base"


def test_a_fetch_that_brings_the_revision_is_no_failure_and_a_stale_one_names_what_is_served(opts, upstream):
    first = upstream.commit()
    assert served(opts, upstream).fetch_failure(first) is None
    second = upstream.commit()
    nothing_new = lambda: {remote.id: None for remote in served(opts, upstream).remotes()}  # noqa: E731
    failure = served(opts, upstream, nothing_new).fetch_failure(second)
    assert failure == f"git_pillar serves {first[:12]} (main file://{upstream.path}), not {second[:12]}"
    assert served(opts, upstream).fetch_failure(second) is None


def test_a_failed_fetch_counts_only_when_the_revision_is_not_served(opts, upstream):
    """``update`` says False while the master's maintenance loop holds the lock: fine when that
    loop fetched the revision first, a failure naming the remote otherwise."""
    revision = upstream.commit()
    locked = lambda: {f"main file://{upstream.path}": False}  # noqa: E731
    failure = served(opts, upstream, locked).fetch_failure(revision)
    assert failure == (f"git_pillar.update failed for main file://{upstream.path} "
                       "(update lock held, or fetch error: see the master log)")
    assert served(opts, upstream).fetch_failure(revision) is None     # the loop's fetch
    assert served(opts, upstream, locked).fetch_failure(revision) is None


def test_a_deploy_retries_a_held_lock_until_its_patience_ends(opts, upstream, monkeypatch):
    import wgmesh_salt.gitpillar
    naps = []
    monkeypatch.setattr(wgmesh_salt.gitpillar.time, "sleep", naps.append)
    revision = upstream.commit()
    answers = [False, False, True]
    update = lambda: {f"main file://{upstream.path}": answers.pop(0)} if answers[0] is not True \
        else salt.runners.git_pillar.update()  # noqa: E731
    assert served(opts, upstream, update).deploy_failure(revision, patience=60) is None
    assert naps == [0.5, 0.5]
    stuck = upstream.commit()
    held = lambda: {f"main file://{upstream.path}": False}  # noqa: E731
    naps.clear()
    assert "update lock held" in served(opts, upstream, held).deploy_failure(stuck, patience=0)
    assert naps == []


def test_a_remote_that_cannot_be_read_leaves_update_to_say(opts, upstream, caplog):
    """Before git_pillar's first fetch its copy has no fetched branch: what ``update`` said is
    trusted (a False is a failure, nothing else is)."""
    revision = upstream.commit()
    assert served(opts, upstream, lambda: {"x": None}).fetch_failure(revision) is None
    assert "cannot read git_pillar's fetched revision" in caplog.text
    assert served(opts, upstream, lambda: {"x": False}).fetch_failure(revision) == \
        "git_pillar.update failed for x (update lock held, or fetch error: see the master log)"
