#!/usr/bin/env bash
# (d) Knowledge injection at a larger scale: 1,000 individuals, a 4-layer d 256 model, three budgets and
# three seeds, template rewrites K = 2, 4, 8 against repeat and QA mixing (bf16 on CUDA). About 48 runs;
# resumable (rows are kept as they finish), so a second call finishes what one 10-minute call did not.
source "$(dirname "$0")/env.sh"
if [ "$SMOKE" = 1 ]; then
    $PY -m repetita.cli inject --people 16 --passes 5 --qa-passes 5 --seeds 0 --d-model 32 --out "$OUT/inject"
    exit
fi
$PY -m repetita.cli inject --device cuda --people 1000 --n-layer 4 --d-model 256 --context 128 --batch 64 \
    --lr 1e-3 --rewrites 2,4,8 --passes 30,100,300 --qa-passes 100 --seeds 0,1,2 --out "$OUT/inject" \
    | tee "$OUT/inject.txt"
