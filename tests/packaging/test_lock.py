"""requirements.txt is the hashed lock of requirements.in, and covers what the package declares.

Catches a dependency added to requirements.in or pyproject.toml without re-running
`bash scripts/lock.sh` (setup.sh installs only requirements.txt, with --require-hashes).
"""
from __future__ import annotations

import re
import tomllib

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.conftest import REPO


def locked() -> dict[str, tuple[str, int]]:
    """{name: (version, number of hashes)} of requirements.txt."""
    entries = re.split(r"\n(?=[A-Za-z0-9])", (REPO / "requirements.txt").read_text())
    found = {}
    for entry in entries:
        pin = re.match(r"([A-Za-z0-9._-]+)==(\S+)", entry)
        if pin:
            found[canonicalize_name(pin[1])] = (pin[2], entry.count("--hash=sha256:"))
    return found


def direct() -> list[Requirement]:
    lines = (REPO / "requirements.in").read_text().splitlines()
    return [Requirement(line.split("#")[0]) for line in lines if line.split("#")[0].strip()]


def test_every_locked_package_is_pinned_with_hashes():
    lock = locked()
    assert len(lock) > 50
    assert not [name for name, (_, hashes) in lock.items() if hashes == 0]
    text = (REPO / "requirements.txt").read_text()
    assert not re.search(r"^\s*(-e|--index-url|--extra-index-url|--find-links|file:)", text, re.M)


def test_requirements_in_is_locked_at_versions_it_allows():
    lock = locked()
    for req in direct():
        name = canonicalize_name(req.name)
        assert name in lock, f"{req.name} is in requirements.in but not in requirements.txt: run scripts/lock.sh"
        assert req.specifier.contains(lock[name][0], prereleases=True), (req, lock[name][0])


def test_the_package_dependencies_and_extras_are_direct_requirements():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    declared = project["dependencies"] + [d for extra in project["optional-dependencies"].values() for d in extra]
    declared_names = {canonicalize_name(Requirement(text).name) for text in declared}
    listed = {canonicalize_name(req.name) for req in direct()}
    assert declared_names <= listed, declared_names - listed
