"""The README's example pull-request summary is what `wgmesh plan --format markdown` prints
for that pull request today (scripts/readme_example.py makes it; `--write` refreshes the README)."""
from __future__ import annotations

import importlib.util
import re

import pytest

from tests.conftest import REPO

_spec = importlib.util.spec_from_file_location("readme_example", REPO / "scripts" / "readme_example.py")
example = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(example)


@pytest.fixture(scope="module")
def printed():
    """What `wgmesh plan --format markdown` prints for alice's pull request (made once)."""
    return example.summary()


def test_the_readme_shows_the_summary_wgmesh_prints_for_alice(printed):
    readme = (REPO / "README.md").read_text()
    shown = example.README_BLOCK.search(readme).group(2)
    assert example.without_revisions(shown) == example.without_revisions(printed), \
        "README.md's example summary is stale: run `python scripts/readme_example.py --write`"
    # the diagram shown on its own above the folded summary is the summary's own
    assert readme.count(example.mermaid(printed)) == 2


def test_the_text_diff_example_matches_the_summarys_matrix(printed):
    header = re.search(r"^\| from \\ to \| (.+) \|$", printed, re.M).group(1).split(" | ")
    readme = (REPO / "README.md").read_text()
    assert "  from \\ to  " + "  ".join(header) in readme
