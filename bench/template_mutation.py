"""Mutation score of the file templates (_utils/wgmesh_core/templates.py).

mutmut mutates code inside functions only; the templates are module-level strings, so it makes
no mutant of them (bench/mutation.sh reports templates.py as 0/0). Here each mutant deletes one
line of one template (every non-blank line of every template, in turn), and the tests run
against a copy of the core holding it (PYTHONPATH first); a mutant is killed when they fail.

    nice -n 15 .venv/bin/python bench/template_mutation.py            # every line (minutes)
    .venv/bin/python bench/template_mutation.py --tests tests/core/test_article_match.py
    .venv/bin/python bench/template_mutation.py --only CLIENT NETDEV   # some templates
"""
from __future__ import annotations

import argparse
import ast
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CORE = REPO / "_utils" / "wgmesh_core"
TESTS = ["tests/core/test_article_match.py", "tests/core/test_render_values.py", "tests/core/test_firewall.py",
         "tests/core/test_client_routes.py", "tests/core/test_plan.py", "tests/core/test_teardown.py",
         "tests/core/test_render_files.py", "tests/core/test_client_import_check.py",
         "tests/unit/test_module.py", "tests/unit/test_states.py"]     # the tests that render files


def templates(source: str) -> dict:
    """Template name -> (first line, last line) of its string in templates.py (1-based, inclusive)."""
    found = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            found[node.targets[0].id] = (node.value.lineno, node.value.end_lineno)
    return found


def mutants(source: str, only=()):
    """(template, line number, line) for each line a mutant deletes: the template's own lines,
    not the line that opens the string (it holds the assignment) when it has more."""
    lines = source.splitlines()
    for name, (first, last) in templates(source).items():
        if only and name not in only:
            continue
        for number in range(first + 1 if last > first else first, last + 1):
            text = lines[number - 1]
            if text.strip() and text.strip() not in ('"""', '"""\\'):
                yield name, number, text


def without_line(source: str, number: int) -> str:
    """templates.py without that template line (a last line keeps the quotes that close the string)."""
    lines = source.splitlines(keepends=True)
    closing = ['"""\n'] if lines[number - 1].rstrip().endswith('"""') else []
    return "".join(lines[:number - 1] + closing + lines[number:])


def killed_by(source: str, number: int, tests: list, workspace: Path) -> str:
    """The first test that fails against the mutant ("" when every test passes)."""
    (workspace / "wgmesh_core" / "templates.py").write_text(without_line(source, number))
    env = dict(os.environ, PYTHONPATH=f"{workspace}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    done = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-rf", *tests],
                          cwd=REPO, env=env, capture_output=True, text=True)
    if done.returncode == 0:
        return ""
    failed = [line.split()[1] for line in done.stdout.splitlines() if line.startswith(("FAILED ", "ERROR "))]
    return failed[0] if failed else f"pytest exit {done.returncode}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tests", nargs="+", default=TESTS, help="the tests to run against each mutant")
    parser.add_argument("--only", nargs="+", default=(), help="template names (e.g. CLIENT NETDEV)")
    args = parser.parse_args(argv)
    source = (CORE / "templates.py").read_text()
    with tempfile.TemporaryDirectory(prefix="wgmesh-template-mutants-") as tmp:
        workspace = Path(tmp)
        shutil.copytree(CORE, workspace / "wgmesh_core", ignore=shutil.ignore_patterns("__pycache__"))
        (workspace / "wgmesh_core" / "templates.py").write_text(source)
        check = subprocess.run([sys.executable, "-c", "import wgmesh_core; print(wgmesh_core.__file__)"], cwd=REPO,
                               env=dict(os.environ, PYTHONPATH=str(workspace)), capture_output=True, text=True)
        assert check.stdout.startswith(str(workspace)), f"the copy is not imported first: {check.stdout}{check.stderr}"
        results = {}
        for name, number, text in mutants(source, args.only):
            test = killed_by(source, number, args.tests, workspace)
            results[(name, number, text)] = bool(test)
            print(f"{'killed  ' if test else 'SURVIVED'} {name} line {number}: {text.strip()}"
                  + (f"  [{test}]" if test else ""), flush=True)
    by_template = {}
    for (name, _, _), dead in results.items():
        by_template.setdefault(name, []).append(dead)
    for name, outcome in by_template.items():
        print(f"{name:<18} {sum(outcome)}/{len(outcome)} killed")
    total = sum(results.values())
    print(f"total              {total}/{len(results)} killed ({100 * total / max(len(results), 1):.1f}%)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
