"""The core's package imports its modules when they are first used: `wgmesh validate` is a new
process every time and needs neither the renderer (Jinja) nor the firewall; a Salt process,
which forks its jobs, imports them all up front (``load_all``)."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import wgmesh_core

REPO = Path(__file__).resolve().parents[2]
LOADED = "import json; print(json.dumps(sorted(n for n in sys.modules if n.startswith('wgmesh_core.'))))"


def loaded_after(code: str) -> list:
    """The core's modules a new interpreter holds after running ``code``."""
    out = subprocess.run([sys.executable, "-c", f"import sys\n{code}\n{LOADED}"], capture_output=True, text=True,
                         cwd=REPO, env={"PYTHONPATH": str(REPO / "_utils"), "PATH": "/usr/bin:/bin"}, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.splitlines()[-1])


def test_validate_imports_neither_the_renderer_nor_the_firewall(tmp_path):
    shutil.copytree(REPO / "pillar", tmp_path / "pillar", ignore=shutil.ignore_patterns("tests.yaml"))
    loaded = loaded_after("from wgmesh_core.cli import main\n"
                          f"assert main(['validate', {str(tmp_path / 'pillar')!r}]) == 0")
    assert "wgmesh_core.validate" in loaded and "wgmesh_core.model" in loaded
    assert not {"wgmesh_core.render", "wgmesh_core.firewall", "wgmesh_core.diff"} & set(loaded), loaded


def test_intent_tests_bring_the_planner_when_they_predict():
    """reach imports diff (and the renderer) to plan the configs it predicts from (the example
    pillar has intent tests)."""
    loaded = loaded_after("import datetime, yaml, wgmesh_core.intent as intent\n"
                          "from wgmesh_salt import read_document\n"
                          "from wgmesh_core.validate import load_network\n"
                          f"doc = read_document({str(REPO / 'pillar')!r})\n"
                          "spec = load_network(doc.network)\n"
                          "results, broken = intent.verdict(doc.tree.tests, spec, datetime.date(2026, 1, 1))\n"
                          "assert results and not broken, broken")
    assert "wgmesh_core.diff" in loaded and "wgmesh_core.render" in loaded


def test_load_all_imports_what_the_package_imported_before():
    loaded = loaded_after("import wgmesh_core; wgmesh_core.load_all()")
    assert {f"wgmesh_core.{name}" for name in wgmesh_core._MODULES} <= set(loaded)


@pytest.mark.parametrize("adapter", ["_modules/wgmesh.py", "_runners/wgmesh.py"])
def test_the_salt_adapters_import_the_core_up_front(adapter):
    loaded = loaded_after("import importlib.util\n"
                          f"spec = importlib.util.spec_from_file_location('adapter', {str(REPO / adapter)!r})\n"
                          "module = importlib.util.module_from_spec(spec)\n"
                          "spec.loader.exec_module(module)\n"
                          "assert module.wgmesh_core is not None, module.IMPORT_ERROR")
    assert {f"wgmesh_core.{name}" for name in wgmesh_core._MODULES} <= set(loaded), loaded


def test_the_package_names_are_the_defining_modules_own():
    for name in wgmesh_core.__all__:
        module = wgmesh_core._EXPORTS[name]
        assert getattr(wgmesh_core, name) is getattr(getattr(wgmesh_core, module), name)
    assert wgmesh_core.live is sys.modules["wgmesh_core.live"]
    for missing in ("no_such_name", "_private", "__wrapped__"):
        with pytest.raises(AttributeError, match=missing):
            getattr(wgmesh_core, missing)
