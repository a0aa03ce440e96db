#!/usr/bin/env bash
# (a) Training throughput and MFU of repetita's GPT vs HF GPT-2, bf16 on CUDA, four shapes up to a
# ~85M-parameter model at context 1024; then the batched-or-separate ensemble timing on the GPU.
# Fits one 10-minute call. Writes $OUT/throughput.txt and $OUT/ensemble.txt.
source "$(dirname "$0")/env.sh"
if [ "$SMOKE" = 1 ]; then
    $PY benchmarks/lm_throughput.py --device cpu --shapes 2x64 --steps 2 --repeats 1 --adamw foreach,fused \
        | tee "$OUT/throughput.txt"
    $PY benchmarks/lm_ensemble.py --device cpu --steps 2 --repeats 1 --members 2 --d-model 32 | tee "$OUT/ensemble.txt"
    exit
fi
nvidia-smi --query-gpu=name,memory.total --format=csv | tee "$OUT/device.txt"
$PY benchmarks/lm_throughput.py --device cuda --shapes 2x64,4x128,6x256 --context 256 --batch 64 --steps 20 \
    --repeats 3 | tee "$OUT/throughput.txt"
$PY benchmarks/lm_throughput.py --device cuda --shapes 12x768 --context 1024 --batch 16 --steps 20 --repeats 3 \
    --adamw foreach,fused | tee -a "$OUT/throughput.txt"
$PY benchmarks/lm_throughput.py --device cuda --shapes 12x768 --context 1024 --batch 16 --steps 20 --repeats 2 \
    --compile | tee -a "$OUT/throughput.txt"
for d in 64 128; do
    $PY benchmarks/lm_ensemble.py --device cuda --steps 20 --repeats 3 --members 2,4,8 --d-model $d \
        | tee -a "$OUT/ensemble.txt"
done
