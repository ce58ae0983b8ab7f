"""gitsource: the pillar files of a git revision (a real repository made with git), checked
before any blob is read."""
from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from wgmesh_core.gitsource import checked_out, merge_base, resolve
from wgmesh_core.source import MAX_MINIONS_FILE_BYTES, MAX_TESTS_FILE_BYTES, Limits
from wgmesh_core.validate import InvalidNetwork

from .conftest import PILLAR


def git(repo, *args) -> str:
    return subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.org", *args],
                          check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def repo(tmp_path):
    """The example pillar under pillar/, one commit, plus files that are not pillar files."""
    work = tmp_path / "repo"
    shutil.copytree(PILLAR, work / "pillar")
    (work / "README.md").write_text("not pillar\n")
    (work / "pillar" / "notes.txt").write_text("not pillar either\n")
    (work / "pillar" / "minions.txt").write_text("z\nr2\n")
    git(work, "init", "-q", "-b", "main")
    git(work, "add", "-A")
    git(work, "commit", "-q", "-m", "the example pillar")
    return work


def files_of(root) -> set:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def test_a_revision_checks_out_its_sls_files_minions_and_tests_only(repo):
    with checked_out(repo, "HEAD", "pillar") as root:
        assert files_of(root) == {"top.sls", "minions.txt", "tests.yaml", "wgmesh/developers.sls", "wgmesh/mine.sls",
                                  "wgmesh/network.sls"}
        assert (root / "wgmesh/network.sls").read_bytes() == (PILLAR / "wgmesh/network.sls").read_bytes()
        assert (root / "minions.txt").read_text() == "z\nr2\n"
        assert root.name.startswith("wgmesh-rev-")
    assert not root.exists()                     # removed on leaving
    with checked_out(repo, "HEAD", "/pillar/") as root:
        assert "top.sls" in files_of(root)


def test_the_repository_root_is_the_pillar_without_a_subdir(repo):
    with checked_out(repo, "HEAD") as root:
        assert "pillar/top.sls" in files_of(root) and "README.md" not in files_of(root)


def test_an_earlier_revision_is_what_it_was(repo):
    first = resolve(repo, "HEAD")
    (repo / "pillar" / "wgmesh" / "more.sls").write_text("#!yaml\nwgmesh: {}\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "more")
    with checked_out(repo, first, "pillar") as root:
        assert "wgmesh/more.sls" not in files_of(root)
    with checked_out(repo, "main", "pillar") as root:
        assert "wgmesh/more.sls" in files_of(root)
    assert resolve(repo, first) == first != resolve(repo, "HEAD")


def test_folder_and_file_names_are_kept_whole(repo):
    """Only slashes are stripped from the folder named, and from the paths below it."""
    (repo / "pillar").rename(repo / "X")
    (repo / "X" / "Xtra.sls").write_text("#!yaml\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "renamed")
    with checked_out(repo, "HEAD", "X/") as root:
        assert {"Xtra.sls", "top.sls"} <= files_of(root)
    with checked_out(repo, "HEAD", "/") as root:        # "/" is the repository's root
        assert {"X/Xtra.sls", "X/top.sls"} <= files_of(root)


def test_a_missing_folder_is_named_with_the_revision(repo):
    rev = resolve(repo, "HEAD")
    with pytest.raises(FileNotFoundError) as info, checked_out(repo, rev, "nope"):
        pass
    assert str(info.value) == f"nope: no such folder at {rev[:12]}"


@pytest.mark.parametrize("what", ["link", "file"])
def test_a_pillar_folder_that_is_no_folder_is_refused_by_name(repo, what):
    """A pull request that moves the pillar's folder and leaves a link (or a file) in its place."""
    os.rename(repo / "pillar", repo / "other")
    if what == "link":
        os.symlink("other", repo / "pillar")
    else:
        (repo / "pillar").write_text("base: {}\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "moved")
    with pytest.raises(InvalidNetwork) as info, checked_out(repo, "HEAD", "pillar/"):
        pass
    assert [str(p) for p in info.value.problems] == [
        "pillar: the pillar's folder is a file, a symbolic link or a submodule here: it must be a folder of the repository"]


def test_links_in_the_revision_are_refused(repo):
    os.symlink("/etc/passwd", repo / "pillar" / "wgmesh" / "evil.sls")
    os.symlink("wgmesh", repo / "pillar" / "linked")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "links")
    with pytest.raises(InvalidNetwork) as info, checked_out(repo, "HEAD", "pillar"):
        pass
    assert sorted(str(p) for p in info.value.problems) == [
        f"{path}: symbolic links and submodules are not allowed in the pillar repository"
        for path in ("linked", "wgmesh/evil.sls")]


def test_a_submodule_is_refused(repo, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    git(other, "init", "-q", "-b", "main")
    git(other, "commit", "-q", "--allow-empty", "-m", "x")
    git(repo, "update-index", "--add", "--cacheinfo", f"160000,{resolve(other, 'HEAD')},pillar/sub")
    git(repo, "commit", "-q", "-m", "a submodule")
    with pytest.raises(InvalidNetwork) as info, checked_out(repo, "HEAD", "pillar"):
        pass
    assert [str(p) for p in info.value.problems] == [
        "sub: symbolic links and submodules are not allowed in the pillar repository"]


def test_the_size_limits_apply_before_any_blob_is_read(repo):
    rev = resolve(repo, "HEAD")
    total = sum(p.stat().st_size for p in (repo / "pillar").rglob("*.sls"))
    with checked_out(repo, rev, "pillar", Limits(max_bytes=total)) as root:
        assert "top.sls" in files_of(root)
    with pytest.raises(InvalidNetwork) as info, checked_out(repo, rev, "pillar", Limits(max_bytes=total - 1)):
        pass
    [problem] = info.value.problems
    assert problem.what.endswith(f"SLS files {total} bytes together, more than the limit of {total - 1}")
    with pytest.raises(InvalidNetwork) as info, checked_out(repo, rev, "pillar", Limits(max_files=3)):
        pass
    assert [str(p) for p in info.value.problems] == [f"{rev[:12]}:pillar: 4 SLS files; at most 3 are read"]
    with pytest.raises(InvalidNetwork) as info, checked_out(repo, rev, "", Limits(max_files=3)):
        pass
    assert [str(p) for p in info.value.problems] == [f"{rev[:12]}:.: 4 SLS files; at most 3 are read"]


def test_oversized_minions_and_tests_files_are_refused_unread(repo):
    (repo / "pillar" / "minions.txt").write_text("z" * MAX_MINIONS_FILE_BYTES)
    (repo / "pillar" / "tests.yaml").write_text("#" * MAX_TESTS_FILE_BYTES)
    git(repo, "commit", "-qam", "at the limits")
    with checked_out(repo, "HEAD", "pillar") as root:
        assert (root / "minions.txt").stat().st_size == MAX_MINIONS_FILE_BYTES
    (repo / "pillar" / "minions.txt").write_text("z" * (MAX_MINIONS_FILE_BYTES + 1))
    (repo / "pillar" / "tests.yaml").write_text("#" * (MAX_TESTS_FILE_BYTES + 1))
    git(repo, "commit", "-qam", "over the limits")
    with pytest.raises(InvalidNetwork) as info, checked_out(repo, "HEAD", "pillar"):
        pass
    assert [str(p) for p in info.value.problems] == [f"minions.txt: larger than {MAX_MINIONS_FILE_BYTES} bytes",
                                                     f"tests.yaml: larger than {MAX_TESTS_FILE_BYTES} bytes"]


def test_merge_base_and_resolve(repo):
    base = resolve(repo, "HEAD")
    assert len(base) == 40 and base == git(repo, "rev-parse", "HEAD")
    git(repo, "checkout", "-q", "-b", "pr")
    git(repo, "commit", "-q", "--allow-empty", "-m", "pr")
    git(repo, "checkout", "-q", "main")
    git(repo, "commit", "-q", "--allow-empty", "-m", "main moved")
    assert merge_base(repo, "main", "pr") == base
    git(repo, "checkout", "-q", "--orphan", "alone")
    git(repo, "commit", "-q", "--allow-empty", "-m", "unrelated")
    with pytest.raises(ValueError, match="alone and main have no common ancestor"):
        merge_base(repo, "alone", "main")
