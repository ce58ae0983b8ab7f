"""The README's example pull-request summary (alice onboarded on the Beijing build server),
made the way a pipeline makes it: `wgmesh plan --format markdown` on a pillar repository
holding the example pillar, then alice's commit.

    python scripts/readme_example.py          # print the summary
    python scripts/readme_example.py --write  # replace the example in README.md

tests/onboard/test_readme_example.py checks that the README holds exactly this output."""
from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TODAY = "2026-11-25"
ALICE = """\
    alice:
      address: 10.70.0.6
      public_key: 5zZqnK0WpKGRb8YZ5k7Vx3c4Q2yq8f1Hh5fX9Rk0T0s=
      lan_access: [c]
      expires: 2026-12-31
"""
ALICE_TESTS = """\
  - {from: alice, to: d, proto: tcp, port: 22, expect: reach, name: alice builds in Beijing}
  - {from: alice, to: b, expect: blocked}
  - {from: alice, to: d, expect: blocked, date: 2027-01-01}
"""
#: the summary inside README.md's "the whole summary" block
README_BLOCK = re.compile(r"(````markdown\n)(.*?)(````\n)", re.S)


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), "-c", "user.name=wgmesh", "-c", "user.email=wgmesh@example.invalid",
                    *args], check=True, capture_output=True)


def summary() -> str:
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp) / "pillar"
        shutil.copytree(REPO / "pillar", repo)
        _git(repo, "init", "-q", "-b", "main")
        _git(repo, "add", "-A")
        _git(repo, "commit", "-q", "-m", "the article's network")
        with open(repo / "wgmesh" / "developers.sls", "a") as developers:
            developers.write(ALICE)
        with open(repo / "tests.yaml", "a") as tests:
            tests.write(ALICE_TESTS)
        _git(repo, "commit", "-q", "-am", "alice, contractor on the Beijing build server")
        wgmesh = Path(sys.executable).with_name("wgmesh")
        done = subprocess.run([str(wgmesh), "plan", str(repo), "--base", "HEAD~1", "--format", "markdown",
                               "--today", TODAY], capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"wgmesh plan failed:\n{done.stderr}")
        return done.stdout


def mermaid(text: str) -> str:
    """The summary's diagram block (the README shows it on its own too)."""
    return re.search(r"```mermaid\n.*?```\n", text, re.S).group(0)


def without_revisions(text: str) -> str:
    """Commit ids differ with every run (dates and authors go into them)."""
    return re.sub(r"`[0-9a-f]{12}\.\.[0-9a-f]{12}`", "`BASE..HEAD`", text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="replace the example in README.md")
    text = summary()
    if not parser.parse_args().write:
        sys.stdout.write(text)
        return
    readme = (REPO / "README.md").read_text()
    old = README_BLOCK.search(readme).group(2)
    readme = readme.replace(mermaid(old), mermaid(text), 1).replace(old, text, 1)
    (REPO / "README.md").write_text(readme)


if __name__ == "__main__":
    main()
