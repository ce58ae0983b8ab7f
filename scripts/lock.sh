#!/usr/bin/env bash
# Regenerates requirements.txt from requirements.in: every package pinned, with the sha256 of
# every distribution the index has for that version (wheels for each platform and the sdist), so
# `pip install --require-hashes` accepts it on any machine. Existing pins are kept unless
# `--upgrade` or `--upgrade-package NAME` is passed (handed on to pip-compile).
set -euo pipefail
cd "$(dirname "$0")/.."
tools=.venv-lock
if [ ! -x "$tools/bin/pip-compile" ]; then
    "${PYTHON:-python3}" -m venv "$tools"
    "$tools/bin/pip" install -q --disable-pip-version-check pip-tools==7.6.2
fi
# --no-emit-*: the index and find-links of the machine that locks do not belong in the file.
"$tools/bin/pip-compile" -q --generate-hashes --allow-unsafe --strip-extras \
    --no-emit-index-url --no-emit-find-links --no-emit-trusted-host \
    --output-file requirements.txt requirements.in "$@"
