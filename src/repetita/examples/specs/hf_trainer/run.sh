#!/usr/bin/env bash
# The walk-through of docs/study.md: your own trainer (Hugging Face Trainer) in a repetita study.
# Run from the repository root after `make venv`.
set -euo pipefail
R=.venv/bin/repetita
PY=.venv/bin/python
$PY examples/hf_trainer/make_inputs.py out/hf_inputs
[ -d out/hf_corpus ] || $R corpus prepare out/hf_inputs/plays.jsonl --tokenizer out/hf_inputs/tokenizer.json \
    --out out/hf_corpus --budgets 2048,8192,32768
$R run examples/hf_trainer/study.toml --dir out/hf_study --workers 2
$R report out/hf_study
$R export out/hf_study out/hf_study/runs.csv
$R fit out/hf_study/runs.csv --law data-constrained --json > out/hf_study/fit.json || true
