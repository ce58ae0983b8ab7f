#!/usr/bin/env bash
# The main job (README): install, then validate and render the article's network
# from the embedded example pillar, then bring it up live in the namespace lab.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
PILLAR=${1:-pillar}   # further arguments go to `python -m lab.article up` (e.g. --keep)
echo "== wgmesh validate $PILLAR"
.venv/bin/wgmesh validate "$PILLAR"
for host in z a c r1; do
    echo; echo "== wgmesh render $PILLAR --host $host"
    .venv/bin/wgmesh render "$PILLAR" --host "$host"
done
for dev in e f; do
    echo; echo "== wgmesh client-config $PILLAR $dev"
    .venv/bin/wgmesh client-config "$PILLAR" "$dev"
done

echo; echo "== the article's network, live (namespaces, wireguard-go, salt-master + minions, GitOps push)"
exec .venv/bin/python -m lab.article up "${@:2}"
