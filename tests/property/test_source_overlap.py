"""The pillar tree's check that no key path is set in two files, against its plain definition."""
from __future__ import annotations

from types import SimpleNamespace

from hypothesis import given
from hypothesis import strategies as st

from wgmesh_core.source import TOP_FILE, _overlap_problems

PATHS = st.dictionaries(st.lists(st.sampled_from(["wgmesh", "include", "developers", "e", "mtu"]), min_size=1,
                                 max_size=3).map(tuple), st.booleans(), max_size=12)
FILES = st.dictionaries(st.sampled_from([TOP_FILE, "a.sls", "b.sls", "c.sls", "d.sls"]), PATHS, max_size=5)


def overlaps_by_definition(files: dict) -> list[str]:
    """Each file in turn, each of its key paths in order: refused when an earlier file set the path
    and not both are mappings (include and the top file left out)."""
    owners, problems = {}, []
    for name, paths in files.items():
        if name == TOP_FILE:
            continue
        for path, is_mapping in paths.items():
            if path[0] == "include":
                continue
            first = owners.setdefault(path, (name, is_mapping))
            if first[0] != name and not (is_mapping and first[1]):
                problems.append(f"{'.'.join(path)}: defined in both {first[0]} and {name}: "
                                "define each entry in one file only")
    return problems


@given(FILES)
def test_the_overlap_check_refuses_what_its_definition_does_in_the_same_order(files):
    trees = {name: SimpleNamespace(paths=paths) for name, paths in files.items()}
    assert [str(problem) for problem in _overlap_problems(trees)] == overlaps_by_definition(files)
