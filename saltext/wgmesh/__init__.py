"""wgmesh as a Salt extension.

``pip install saltext-wgmesh`` (``salt-pip install`` on a onedir host) registers
:func:`loader_dirs` under Salt's ``salt.loader`` entry point group, so the
master and minions load wgmesh's execution module, states, runner and
ext_pillar without ``saltutil.sync_all``. Those modules have one source: the
repository's ``_modules/``, ``_states/``, ``_runners/`` and ``_pillar/``
folders (the ones ``saltutil.sync_all`` serves from file_roots). A built wheel
carries them as this package's ``modules/``, ``states/``, ``runners/`` and
``pillar/`` (pyproject.toml ``package-dir``); an editable install points here,
in the repository, and uses the folders themselves. The core, ``wgmesh_core``,
is an ordinary installed package the modules import.
"""
from pathlib import Path

LOADER_TYPES = ("modules", "states", "runners", "pillar", "engines")
PACKAGE = Path(__file__).resolve().parent
CHECKOUT = PACKAGE.parents[1]


def loader_dirs() -> dict[str, list[str]]:
    """Salt's loader asks this for the folders of each module type it loads."""
    dirs = {}
    for loader_type in LOADER_TYPES:
        for candidate in (PACKAGE / loader_type, CHECKOUT / f"_{loader_type}"):
            if candidate.is_dir():
                dirs[loader_type] = [str(candidate)]
                break
    return dirs
