#!/usr/bin/env bash
# Mutation testing of the core (_utils/wgmesh_core) and of the Salt side's package
# (_utils/wgmesh_salt) with mutmut, against the fast suites (tests/core, tests/property with the
# small derandomized 'mutation' Hypothesis profile, tests/unit). Slow: every mutant runs the
# tests that cover its function, so name modules:
#
#   bash bench/mutation.sh 'wgmesh_core.live*' 'wgmesh_core.diff*'   # some modules
#   MUTATION_TESTS=tests/unit bash bench/mutation.sh 'wgmesh_salt.hostfirewall*'   # an adapter
#   bash bench/mutation.sh                                          # both packages (hours)
#   bash bench/mutation.sh NAME...     # re-run named mutants only (after adding tests for survivors)
#   MUTATION_TESTS='tests/core/test_firewall.py tests/unit' bash bench/mutation.sh 'wgmesh_core.firewall*'
#                                            # only those tests (faster; a narrower selection can only lower the score;
#                                            # mutmut drops earlier results when the selection changes)
#
# mutmut imports mutated code from mutants/src/, so both packages are copied to a src/ layout in
# .mutation/ (git-ignored); the score and the surviving mutants are printed at the end
# (`cd .mutation && ../.venv/bin/mutmut show NAME` shows one).
# README.md is copied for tests/core/test_cli_usage.py (the option reference it holds).
# tests/onboard/test_plan_intent.py parses the diagram with tests/mermaid/node_modules: linked into the
# copy when scripts/setup.sh installed it (mutmut's copy of tests/ then holds all of it, 170 MB).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
ws=$repo/.mutation
rm -rf "$ws/src" && mkdir -p "$ws/src"
# -p keeps modification times: mutmut then keeps the mutants (and results) of unchanged modules
git ls-files -z | grep -zv '^_utils/' | xargs -0 cp -p --parents -t "$ws"
cp -rp _utils/wgmesh_core _utils/wgmesh_salt "$ws/src/"
# Mermaid's parser (installed by scripts/setup.sh, not in git) for the tests of summary.py's diagram;
# mutmut copies tests/ into mutants/ following this link
if [ -d tests/mermaid/node_modules ]; then
    ln -sfn "$repo/tests/mermaid/node_modules" "$ws/tests/mermaid/node_modules"
fi
find "$ws" -name __pycache__ -prune -exec rm -rf {} +
tests=$(printf '"%s", ' ${MUTATION_TESTS:-tests/core tests/property tests/unit})
cat > "$ws/pyproject.toml" <<TOML
[tool.mutmut]
source_paths = ["src/wgmesh_core", "src/wgmesh_salt"]
pytest_add_cli_args_test_selection = [${tests%, }]
pytest_add_cli_args = ["-p", "no:cacheprovider", "-x", "-q", "--ignore=tests/unit/test_ci_skips.py"]
also_copy = ["README.md", "pillar", "lab", "salt", "reactor", "pipelines", "_modules", "_states", "_runners", "_pillar", "_engines", "saltext", "bench", "scripts"]
TOML
cd "$ws"
HYPOTHESIS_PROFILE=mutation "$repo/.venv/bin/mutmut" run --max-children "${MUTMUT_CHILDREN:-1}" "$@" >mutmut-run.log 2>&1 || true
"$repo/.venv/bin/python" "$repo/bench/mutation_score.py" "$@"
