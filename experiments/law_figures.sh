#!/usr/bin/env bash
# Every figure type of the law commands, rendered into docs/figures from the shipped published data:
#   bash experiments/law_figures.sh            (needs the venv: make venv)
# fit (with the band of parameter draws), fit with a holdout, plan contours for two laws, the frontier,
# and E(K, U) of the datablations curves.
set -euo pipefail
cd "$(dirname "$0")/.."
R=.venv/bin/repetita
OUT=docs/figures
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
# the published Chinchilla part, read from the shipped fit file (the one place it is written)
FROZEN=$(.venv/bin/python -c "from repetita.laws.record import freeze_args, published_chinchilla as p; print(' '.join(freeze_args(p())))")
$R fit --example datablations --law data-constrained $FROZEN --plot $OUT/law_fit.png --out "$TMP/dc.json" > /dev/null 2>&1
$R fit --example datablations --law reuse $FROZEN --out "$TMP/reuse.json" > /dev/null 2>&1
$R fit --example datablations --law reuse-power $FROZEN --holdout largest:params:2 --plot $OUT/law_holdout.png > /dev/null 2>&1
$R plan --law-file "$TMP/dc.json" --law-file "$TMP/reuse.json" --compute 1e22 --unique-tokens 25e9 \
    --plot $OUT/plan_contours.png > /dev/null 2>&1
$R plan --law-file "$TMP/dc.json" --compute 1e20:1e25:6 --unique-tokens 25e9 --plot $OUT/plan_frontier.png > /dev/null 2>&1
$R reuse --example datablations-curves --law-file "$TMP/dc.json" --anchor --plot $OUT/reuse_curves.png > /dev/null 2>&1
echo "wrote $OUT/law_fit.png law_holdout.png plan_contours.png plan_frontier.png reuse_curves.png"
