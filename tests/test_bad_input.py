"""Bad input across every command: each case is one line with exit 2, or exit 0 with a sane answer.

Never a traceback, never a hang past 60 s, never an allocation above 2 GB: every case runs in a forked
child of this process (the heavy modules imported once, here) with its data segment limited to what it
had plus 2 GB (RLIMIT_DATA: numpy's and torch's buffers count) and killed after 60 s.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import sqlite3
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

LIMIT_SECONDS = 60
LIMIT_BYTES = 2 << 30
EXAMPLE_LAW = "example:datablations-published"

# (case id, argv with {d} for the fixture folder, expected exit code, text the output must hold)
CASES: list[tuple[str, list[str], int, str]] = []


def case(name: str, argv: str | list[str], code: int = 2, holds: str = "") -> None:
    CASES.append((name, argv.split() if isinstance(argv, str) else argv, code, holds))


# --- fit ---------------------------------------------------------------------------------------------------
for f in ("missing.csv", "nan.csv", "neg.csv", "text.csv", "empty.csv", "header.csv", "binary.bin",
          "badutf8.csv", "inf.csv", "zero_loss.csv", "nofile.csv", "onerow.csv", "dir_many"):
    case(f"fit-{f}", f"fit {{d}}/{f} --law chinchilla")
case("fit-unknown-law", "fit {d}/good.csv --law nolaw")
case("fit-no-law", "fit {d}/good.csv")
case("fit-bad-freeze", "fit {d}/good.csv --law chinchilla --freeze a=x")
case("fit-freeze-unknown", "fit {d}/good.csv --law chinchilla --freeze zz=1")
case("fit-freeze-nan", "fit {d}/good.csv --law chinchilla --freeze a=nan")
case("fit-bootstrap-neg", "fit {d}/good.csv --law chinchilla --bootstrap -3")
case("fit-seed-neg", "fit {d}/good.csv --law chinchilla --bootstrap 2 --seed -1")
case("fit-seed-huge", "fit {d}/good.csv --law chinchilla --bootstrap 2 --seed 1e30")
case("fit-level", "fit {d}/good.csv --law chinchilla --level 2")
case("fit-holdout", "fit {d}/good.csv --law chinchilla --holdout nonsense")
case("fit-out-dir", "fit {d}/good.csv --law chinchilla --out {d}")
case("fit-out-suffix", "fit {d}/good.csv --law chinchilla --out {d}/fit.txt")
case("fit-out-under-file", "fit {d}/good.csv --law chinchilla --out {d}/good.csv/fit.json")
case("fit-plot-suffix", "fit {d}/good.csv --law chinchilla --plot {d}/x.exe")
case("fit-columns", "fit {d}/good.csv --law chinchilla --columns nonsense")
case("fit-columns-missing", "fit {d}/good.csv --law chinchilla --columns loss=nosuch")
case("fit-example-unknown", "fit --example nosuch --law chinchilla")
case("fit-tab", "fit {d}/tab.csv --law chinchilla --json", 0, "the header holds tabs")  # read, and said
case("fit-where-bad", "fit {d}/good.csv --law chinchilla --where params==")
case("fit-where-empty", "fit {d}/good.csv --law chinchilla --where params<0")
case("fit-grid-bad", "fit {d}/good.csv --law chinchilla --grid a=x,y")
case("fit-n-refine", "fit {d}/good.csv --law chinchilla --n-refine -1")
case("fit-delta", "fit {d}/good.csv --law chinchilla --delta -1")
case("fit-tag-missing", "fit {d}/good.csv --law chinchilla --tag nosuch")
case("fit-tps", "fit {d}/good.csv --law chinchilla --tokens-per-step -5")
case("fit-meta", "fit {d}/good.csv --law chinchilla --meta {d}/binary.bin")
case("fit-dir-top", "fit {d}/dir_empty --law chinchilla")
case("fit-good", "fit {d}/good.csv --law chinchilla --json", 0, '"params"')

# --- laws --------------------------------------------------------------------------------------------------
case("laws-only", "laws --benchmark --only nolaw")
case("laws-splits", "laws --benchmark --splits nonsense")
case("laws-out", "laws --benchmark --out {d}/good.csv/x.csv")
case("laws-list", "laws", 0, "chinchilla")

# --- plan --------------------------------------------------------------------------------------------------
P = f"plan --law-file {EXAMPLE_LAW} --unique-tokens 25e9"
case("plan-good", f"{P} --compute 9.26e21", 0, "")
for name, extra in [("compute-neg", "--compute -1"), ("compute-nan", "--compute nan"), ("compute-inf", "--compute inf"),
                    ("compute-text", "--compute lots"), ("compute-huge", "--compute 1e300"),
                    ("compute-range", "--compute 1e20:1e24:0"), ("compute-range2", "--compute 1e24:1e20:5"),
                    ("compute-range-many", "--compute 1e20:1e24:100000000"),
                    ("params-neg", "--params -5 --epochs 1,2"), ("params-zero", "--params 0 --epochs 1"),
                    ("epochs-zero", "--params 1e9 --epochs 0"), ("epochs-huge", "--params 1e9 --epochs 1e300"),
                    ("epochs-text", "--params 1e9 --epochs x"), ("max-params", "--compute 1e21 --max-params -1"),
                    ("fpt", "--compute 1e21 --flops-per-token -6"), ("efficiency", "--compute 1e21 --efficiency x"),
                    ("efficiency-neg", "--compute 1e21 --efficiency regularized=-2"),
                    ("plot-suffix", "--compute 1e21 --plot {d}/x.txt"),
                    ("fraction", "--params 1e9 --fraction 2"), ("loss-neg", "--params 1e9 --loss -1"),
                    ("none", "")]:
    case(f"plan-{name}", f"{P} {extra}")
case("plan-u-neg", f"plan --law-file {EXAMPLE_LAW} --unique-tokens -1 --compute 1e21")
case("plan-u-text", f"plan --law-file {EXAMPLE_LAW} --unique-tokens many --compute 1e21")
for f in ("damaged.json", "list.json", "wronglaw.json", "binary.bin", "nofile.json", "empty.csv"):
    case(f"plan-lawfile-{f}", f"plan --law-file {{d}}/{f} --unique-tokens 25e9 --compute 1e21")
case("plan-law-unknown", "plan --law nolaw --unique-tokens 25e9 --compute 1e21")
case("plan-param-bad", "plan --law chinchilla --param a=x --unique-tokens 25e9 --compute 1e21")
case("plan-param-missing", "plan --law chinchilla --param a=1 --unique-tokens 25e9 --compute 1e21")
case("plan-efficiency-from", f"{P} --compute 1e21 --efficiency-from {{d}}/dir_empty")
case("plan-reuse-file", f"{P} --compute 1e21 --reuse-file {{d}}/damaged.json")

# --- predict -----------------------------------------------------------------------------------------------
PR = "predict --law-file {d}/mpl.json"
case("predict-good", f"{PR} --schedule cosine:3000 --json", 0, "loss")
for name, extra in [("final-frac", "--schedule cosine:3000 --final-frac 2"),
                    ("final-frac-neg", "--schedule cosine:3000 --final-frac -0.5"),
                    ("every-zero", "--schedule cosine:3000 --every 0"),
                    ("every-neg", "--schedule cosine:3000 --every -5"),
                    ("huge", "--schedule cosine:1e10"), ("huge2", "--schedule constant:1e12"),
                    ("unknown", "--schedule nosuch:100"), ("short", "--schedule cosine:10"),
                    ("text", "--schedule cosine:abc"), ("warmup-neg", "--schedule cosine:3000 --warmup -1"),
                    ("peak-lr", "--schedule cosine:3000 --peak-lr -1"), ("file-missing", "--schedule {d}/nofile.csv"),
                    ("file-bad", "--schedule {d}/text.csv"), ("file-binary", "--schedule {d}/binary.bin"),
                    ("out-suffix", "--schedule cosine:3000 --out {d}/x.exe"),
                    ("wsd-bad", "--schedule wsd:3000:5000")]:
    case(f"predict-{name}", f"{PR} {extra}")
case("predict-wrong-law", f"predict --law-file {EXAMPLE_LAW} --schedule cosine:3000")

# --- reuse -------------------------------------------------------------------------------------------------
for f in ("missing.csv", "nan.csv", "binary.bin", "empty.csv", "nofile.csv", "badutf8.csv", "dir_empty"):
    case(f"reuse-{f}", f"reuse {{d}}/{f}")
case("reuse-fresh-bad", "reuse {d}/good.csv --fresh {d}/binary.bin")
case("reuse-intervals-neg", "reuse {d}/good.csv --intervals -1")
case("reuse-seed-neg", "reuse {d}/good.csv --intervals 2 --seed -4")
case("reuse-where-empty", "reuse {d}/good.csv --law-file example:datablations-published --where params<0", 2, "selects no row")
case("reuse-lam", "reuse {d}/good.csv --lam -1")
case("reuse-lawfile", "reuse {d}/good.csv --law-file {d}/damaged.json")

# --- suggest -----------------------------------------------------------------------------------------------
S = f"suggest --law-file {EXAMPLE_LAW} --compute 9.26e21 --unique-tokens 25e9"
case("suggest-no-intervals", f"{S} --sizes 1e7:9e9:6 --budgets 1e8:25e9:5 --runs 2 --draws 50")
for name, extra in [("grid-huge", "--sizes 1e7:9e9:100000 --budgets 1e8:25e9:100000"),
                    ("sizes-huge", "--sizes 1e7:9e9:100000000 --budgets 1e8:25e9:3"),
                    ("sizes-bad", "--sizes x --budgets 1e8:25e9:3"), ("sizes-neg", "--sizes -1e7:9e9:5 --budgets 1e8:2e9:3"),
                    ("budgets-zero", "--sizes 1e7:9e9:5 --budgets 0:25e9:3"),
                    ("runs-zero", "--sizes 1e7:9e9:5 --budgets 1e8:25e9:3 --runs 0"),
                    ("runs-neg", "--sizes 1e7:9e9:5 --budgets 1e8:25e9:3 --runs -2"),
                    ("draws-zero", "--sizes 1e7:9e9:5 --budgets 1e8:25e9:3 --draws 0"),
                    ("draws-huge", "--sizes 1e7:9e9:5 --budgets 1e8:25e9:3 --draws 100000000"),
                    ("seed-neg", "--sizes 1e7:9e9:5 --budgets 1e8:25e9:3 --seed -1"),
                    ("epochs-bad", "--sizes 1e7:9e9:5 --budgets 1e8:25e9:3 --epochs 0"),
                    ("total-neg", "--sizes 1e7:9e9:5 --budgets 1e8:25e9:3 --total-flops -1"),
                    ("maxrun-nan", "--sizes 1e7:9e9:5 --budgets 1e8:25e9:3 --max-run-flops nan"),
                    ("done-bad", "--sizes 1e7:9e9:5 --budgets 1e8:25e9:3 --done {d}/binary.bin"),
                    ("done-missing", "--sizes 1e7:9e9:5 --budgets 1e8:25e9:3 --done {d}/missing.csv"),
                    ("csv-suffix", "--sizes 1e7:9e9:5 --budgets 1e8:25e9:3 --csv {d}/x.exe"),
                    ("spec-base-bad", "--sizes 1e7:9e9:5 --budgets 1e8:25e9:3 --spec-out {d}/n.toml --spec-base {d}/bad.toml"),
                    ("json-out-dir", "--sizes 1e7:9e9:5 --budgets 1e8:25e9:3 --json-out {d}")]:
    case(f"suggest-{name}", f"{S} {extra}")

# --- theory ------------------------------------------------------------------------------------------------
for name, extra in [("K-huge", "reuse --K 1e300"), ("N-huge", "reuse --N 1e300"), ("N-big", "reuse --N 1e12 --K 1"),
                    ("K-zero", "reuse --K 0"), ("N-neg", "reuse --N -5"), ("N-text", "reuse --N x"),
                    ("N-frac", "reuse --N 2.5"), ("reps-zero", "reuse --N 10 --K 1 --replicates 0"),
                    ("reps-huge", "reuse --N 10 --K 1 --replicates 1e12"), ("fraction", "reuse --N 10 --fraction 5"),
                    ("spectrum", "reuse --N 10 --spectrum nosuch"), ("d-zero", "reuse --N 10 --d 0"),
                    ("d-huge", "reuse --N 10 --d 100000000"), ("sigma", "reuse --N 10 --sigma -1"),
                    ("seed-neg", "reuse --N 10 --K 1 --seed -1"), ("fine-zero", "reuse --N 10 --fine-points 0"),
                    ("threads", "reuse --N 10 --threads 0"), ("save", "reuse --N 10 --save {d}/x.txt"),
                    ("n-huge", "onepass --n 1e300"), ("n-big", "onepass --n 1e20"), ("n-zero", "onepass --n 0"),
                    ("eta-neg", "onepass --n 100 --eta -1"), ("eta-huge", "onepass --n 100 --eta 1e9"),
                    ("eta-nan", "onepass --n 100 --eta nan"), ("onepass-d", "onepass --n 100 --d 0"),
                    ("wstar", "onepass --n 100 --wstar nosuch")]:
    case(f"theory-{name}", f"theory {extra}")
case("theory-onepass-good", "theory onepass --n 100,1000 --eta 0.05 --json", 0, "risk")

# --- train and corpus --------------------------------------------------------------------------------------
case("train-config-binary", "train --config {d}/binary.bin --out {d}/t1")
case("train-config-missing", "train --config {d}/nofile.json --out {d}/t2")
case("train-config-damaged", "train --config {d}/damaged.json --out {d}/t3")
case("train-epochs-neg", "train --epochs -1 --out {d}/t4")
case("train-u-neg", "train --unique-tokens -5 --out {d}/t5")
case("train-out-file", "train --epochs 1 --out {d}/good.csv")
case("train-recipe", "train --recipe nosuch --out {d}/t6")
case("train-context", "train --context 0 --out {d}/t7")
case("train-corpus", "train --corpus {d}/nofile.txt --out {d}/t8")
case("train-members", "train --recipe ensemble --ensemble-members 0 --out {d}/t9")
CP = "corpus prepare {d}/docs.jsonl --tokenizer {d}/tokenizer.json"
case("corpus-badutf8", "corpus prepare {d}/badutf8.jsonl --tokenizer {d}/tokenizer.json --out {d}/c1")
case("corpus-seed-neg", f"{CP} --out {{d}}/c2 --seed -1")
case("corpus-valdocs", f"{CP} --out {{d}}/c3 --val-docs 0")
case("corpus-valdocs-all", f"{CP} --out {{d}}/c4 --val-docs 1000")
case("corpus-tok-missing", "corpus prepare {d}/docs.jsonl --tokenizer {d}/nofile.json --out {d}/c5")
case("corpus-tok-bad", "corpus prepare {d}/docs.jsonl --tokenizer {d}/damaged.json --out {d}/c6")
case("corpus-input-missing", "corpus prepare {d}/nofile.jsonl --tokenizer {d}/tokenizer.json --out {d}/c7")
case("corpus-notjson", "corpus prepare {d}/text.jsonl --tokenizer {d}/tokenizer.json --out {d}/c8")
case("corpus-budgets", f"{CP} --out {{d}}/c9 --budgets -5")
case("corpus-budgets-big", f"{CP} --out {{d}}/c10 --budgets 1e9")
case("corpus-out-file", f"{CP} --out {{d}}/good.csv")
case("corpus-out-input", "corpus prepare {d}/docs.jsonl --tokenizer {d}/tokenizer.json --out {d}/docs.jsonl")
case("corpus-good", f"{CP} --out {{d}}/c11 --val-docs 5 --json", 0, '"train"')

# --- sft, mix, inject, rephrase ----------------------------------------------------------------------------
for name, extra in [("budget-neg", "--budget -1 --pool 10"), ("pool-zero", "--budget 10 --pool 0"),
                    ("factor", "--budget 64 --pool 64 --factor 1"), ("seed-neg", "--budget 64 --pool 64 --seed -1"),
                    ("samples", "--budget 64 --pool 64 --samples 0"), ("min", "--budget 64 --pool 64 --min-samples 0"),
                    ("huge", "--budget 1e300 --pool 64")]:
    case(f"sft-plan-{name}", ["sft", "plan", *extra.split()])
case("sft-plan-good", "sft plan --budget 64 --pool 64 --json", 0, "")
for name, extra in [("budget-huge", "--weights 0.9,0.1 --budget 1e300"), ("budget-neg", "--weights 0.9,0.1 --budget -5"),
                    ("budget-nan", "--weights 0.9,0.1 --budget nan"), ("weights-neg", "--weights -0.9,0.1"),
                    ("weights-text", "--weights a,b"), ("weights-zero", "--weights 0,0"),
                    ("zipf-bad", "--zipf x"), ("zipf-huge", "--zipf 100000000:1"),
                    ("exponents", "--weights 0.9,0.1 --exponents -1,2"), ("curves", "--curves {d}/binary.bin"),
                    ("none", "")]:
    case(f"mix-optimize-{name}", ["mix", "optimize", *extra.split()])
case("mix-optimize-good", "mix optimize --weights 0.9,0.1 --json", 0, "")
for name, extra in [("dims", "--dims 0"), ("k", "--dims 4 --k 9 --sampling distinct"), ("samples", "--samples 0"),
                    ("samples-huge", "--samples 1e15"), ("lr", "--lr -1"), ("batch", "--batch 0"),
                    ("evals", "--evals 0"), ("seed", "--seed -1"), ("exponent", "--exponent nan"),
                    ("out", "--out {d}/good.csv")]:
    case(f"mix-composition-{name}", ["mix", "composition", *extra.split()])
for name, extra in [("conditions", "--conditions nosuch"), ("passes", "--passes 0"), ("seeds", "--seeds x"),
                    ("people", "--people 0"), ("threads", "--threads -1"), ("lr", "--lr -1"),
                    ("out", "--out {d}/good.csv"), ("docs", "--docs {d}/binary.bin")]:
    case(f"inject-{name}", ["inject", *extra.split()])
for name, extra in [("docs-missing", "--docs {d}/nofile.jsonl --out {d}/r.jsonl --backend echo"),
                    ("docs-binary", "--docs {d}/binary.bin --out {d}/r2.jsonl --backend echo"),
                    ("docs-badutf8", "--docs {d}/badutf8.jsonl --out {d}/r3.jsonl --backend echo"),
                    ("samples", "--docs {d}/docs.jsonl --out {d}/r4.jsonl --backend echo --samples 0"),
                    ("temp", "--docs {d}/docs.jsonl --out {d}/r5.jsonl --backend echo --temperature -1"),
                    ("seed", "--docs {d}/docs.jsonl --out {d}/r6.jsonl --backend echo --seed -1"),
                    ("out-input", "--docs {d}/docs.jsonl --out {d}/docs.jsonl --backend echo"),
                    ("concurrency", "--docs {d}/docs.jsonl --out {d}/r7.jsonl --backend echo --concurrency 0")]:
    case(f"rephrase-{name}", ["rephrase", *extra.split()])

# --- studies -----------------------------------------------------------------------------------------------
for f in ("malformed.toml", "binary.bin", "nofile.toml", "empty.toml", "unknown_key.toml", "gpu.toml",
          "traversal.toml", "injection.toml", "unbalanced.toml", "neg_grid.toml"):
    case(f"run-{f}", f"run {{d}}/{f} --dir {{d}}/study_{f.split('.')[0]}")
case("run-workers", "run {d}/cmd.toml --dir {d}/study_w --workers 0")
case("run-dir-file", "run {d}/cmd.toml --dir {d}/good.csv")
case("run-dir-foreign", "run {d}/cmd.toml --dir {d}/dir_many")
case("run-other-spec", "run {d}/cmd2.toml --dir {d}/study_done")
case("run-example-unknown", "run example:nosuch --dir {d}/study_x")
for cmd in ("status", "report", "export"):
    for name, target in [("nodir", "{d}/nope"), ("file", "{d}/good.csv"), ("empty-store", "{d}/study_empty"),
                         ("damaged-store", "{d}/study_damaged"), ("not-study", "{d}/dir_many"),
                         ("bad-schema", "{d}/study_schema"), ("bad-cell", "{d}/study_cell")]:
        extra = [f"{{d}}/exp_{cmd}_{name}.csv"] if cmd == "export" else []
        # status reads no stored result: a damaged result cell leaves it a sane answer
        ok = cmd == "status" and name == "bad-cell"
        case(f"{cmd}-{name}", [cmd, target, *extra], 0 if ok else 2, "done 1" if ok else "")
case("report-zero-done", "report {d}/study_queued", 0, "no finished runs yet: nothing to decide")
case("status-zero-done", "status {d}/study_queued", 0, "queued 2")
case("export-zero-done", "export {d}/study_queued {d}/exp.csv")
case("export-suffix", "export {d}/study_done {d}/exp.exe")
case("status-done", "status {d}/study_done --json", 0, '"failed": []')


# --- fixtures ----------------------------------------------------------------------------------------------

def _table(path: Path, rows: list[dict], sep: str = ",") -> None:
    cols = list(rows[0])
    path.write_text(sep.join(cols) + "\n" + "".join(sep.join(str(r[c]) for c in cols) + "\n" for r in rows))


def _good_rows() -> list[dict]:
    rows = []
    for n in (1e7, 3e7, 1e8, 3e8):
        for d in (1e9, 3e9, 1e10):
            for k in (1, 4):
                loss = 1.7 + 400 / n ** 0.34 + 410 / (d * (1 if k == 1 else 0.8)) ** 0.28
                rows.append({"params": n, "tokens": d, "unique_tokens": d / k, "epochs": k, "loss": round(loss, 6)})
    return rows


def _tokenizer(path: Path) -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {"<|endoftext|>": 0, "[UNK]": 1} | {c: i + 2 for i, c in enumerate("abcdefghijklmnopqrstuvwxyz ")}
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]", max_input_chars_per_word=1000))
    tok.pre_tokenizer = pre_tokenizers.Split("", "isolated")
    tok.save(str(path))


def _spec(path: Path, command: str, extra: str = "", grid: str = "unique_tokens = [1000]\nepochs = [1]",
          result: str = 'result = {kind = "json", path = "result.json"}') -> None:
    path.write_text(f'name = "b"\nseeds = [0]\n[base]\n[[models]]\nparams = 1e6\n[grid]\n{grid}\n'
                    f'[recipes.command]\ncommand = {json.dumps(command)}\n{result}\n{extra}\n')


def _store(folder: Path, runs: int = 2) -> None:
    from types import SimpleNamespace

    from repetita.study.store import Store

    folder.mkdir()
    s = Store(folder / "store.sqlite")
    cfg = SimpleNamespace(to_json=lambda: json.dumps({"kind": "command"}))
    s.add_runs([SimpleNamespace(id=f"r{i}", recipe="command", config=cfg, depends_on=None) for i in range(runs)])
    s.close()


# Imported once here, so that each forked case starts with them loaded (seconds per case otherwise).
HEAVY = ("pandas", "scipy.optimize", "scipy.stats", "scipy.linalg", "matplotlib", "matplotlib.pyplot", "tokenizers",
         "repetita.laws.fit", "repetita.decide.allocate", "repetita.laws.record", "repetita.decide.design",
         "repetita.laws.plan", "repetita.decide.laws", "repetita.laws.curves", "repetita.laws.predict",
         "repetita.laws.benchmark", "repetita.laws.reuse", "repetita.study.driver", "repetita.study.report",
         "repetita.study.command", "repetita.theory.reuse", "repetita.theory.exact", "repetita.data_mix.mixture",
         "repetita.data_mix.composition", "repetita.lm.prepare", "torch", "repetita.lm.train")


@pytest.fixture(scope="module")
def fixtures():
    import importlib

    for name in HEAVY:
        try:
            importlib.import_module(name)
        except ImportError:  # an extra not installed: its cases say so in one line
            pass
    with tempfile.TemporaryDirectory(prefix="repetita-bad-") as tmp:
        d = Path(tmp)
        good = _good_rows()
        _table(d / "good.csv", good)
        _table(d / "tab.csv", good, sep="\t")
        _table(d / "missing.csv", [{"params": r["params"], "loss": r["loss"]} for r in good])
        _table(d / "nan.csv", [r | {"loss": "nan"} if i == 3 else r for i, r in enumerate(good)])
        _table(d / "inf.csv", [r | {"params": "inf"} if i == 3 else r for i, r in enumerate(good)])
        _table(d / "neg.csv", [r | {"params": -r["params"]} if i == 3 else r for i, r in enumerate(good)])
        _table(d / "zero_loss.csv", [r | {"loss": 0} if i == 3 else r for i, r in enumerate(good)])
        _table(d / "text.csv", [r | {"loss": "low"} if i == 3 else r for i, r in enumerate(good)])
        _table(d / "onerow.csv", good[:1])
        (d / "empty.csv").write_text("")
        (d / "header.csv").write_text("params,tokens,unique_tokens,epochs,loss\n")
        (d / "binary.bin").write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
        (d / "badutf8.csv").write_bytes(b"params,tokens,unique_tokens,epochs,loss\n1e7,1e9,1e9,1,3.\xff1\n")
        (d / "damaged.json").write_text('{"law": "chinchilla", "params": {"a": 1')
        (d / "list.json").write_text("[1, 2, 3]")
        (d / "wronglaw.json").write_text(json.dumps({"law": "nolaw", "params": {"a": 1}}))
        (d / "dir_empty").mkdir()
        many = d / "dir_many"
        (many / "a" / "b").mkdir(parents=True)
        for i in range(50):
            (many / "a" / "b" / f"events.out.tfevents.{i}").write_bytes(b"\0" * 16)
            (many / f"x{i}.txt").write_text("nothing")
        docs = ["the quick brown fox jumps over the lazy dog " * (i % 7 + 1) for i in range(40)]
        (d / "docs.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in docs))
        (d / "badutf8.jsonl").write_bytes(b'{"text": "ok"}\n{"text": "bad \xff byte"}\n')
        (d / "text.jsonl").write_text("not json at all\n")
        _tokenizer(d / "tokenizer.json")
        from repetita.cli import main

        mpl = {"L0": 3.0, "A": 0.5, "alpha": 0.5, "B": 300.0, "C": 1.0, "beta": 0.5, "gamma": 0.5}
        (d / "mpl.json").write_text(json.dumps({"law": "multipower", "params": mpl, "spec": {"law": "multipower"}}))
        trainer = Path(__file__).with_name("command_trainer.py")
        cmd = f"{{python}} {trainer} --params {{params}} --unique-tokens {{unique_tokens}} --epochs {{epochs}} --out {{run_dir}}"
        _spec(d / "cmd.toml", cmd)
        _spec(d / "cmd2.toml", cmd + " --seed 1")
        (d / "malformed.toml").write_text("name = [unclosed\n")
        (d / "empty.toml").write_text("")
        _spec(d / "unknown_key.toml", cmd, extra="colour = 3")
        _spec(d / "gpu.toml", cmd, extra="resources = {gpus = 64}")
        _spec(d / "traversal.toml", cmd, result='result = {kind = "json", path = "../../../victim.json"}')
        _spec(d / "injection.toml", "bash -c 'echo {run_dir}; touch PWNED'")
        _spec(d / "unbalanced.toml", "python 'train.py")
        _spec(d / "neg_grid.toml", cmd, grid="unique_tokens = [-1000]\nepochs = [1]")
        (d / "bad.toml").write_text("[[models]\n")
        _store(d / "study_queued")
        (d / "study_empty").mkdir()
        (d / "study_empty" / "store.sqlite").write_bytes(b"")
        (d / "study_damaged").mkdir()
        (d / "study_damaged" / "store.sqlite").write_bytes(b"SQLite format 3\0" + b"\x07" * 4000)
        _store(d / "study_schema")
        con = sqlite3.connect(d / "study_schema" / "store.sqlite")
        con.execute("UPDATE meta SET value='two' WHERE key='schema_version'")
        con.commit()
        con.close()
        _store(d / "study_cell")
        con = sqlite3.connect(d / "study_cell" / "store.sqlite")
        con.execute("UPDATE runs SET status='done', metrics='{not json' WHERE id='r0'")
        con.execute("INSERT INTO rows VALUES ('r0', 0, '{broken')")
        con.commit()
        con.close()
        with open(os.devnull, "w") as null:
            import contextlib

            with contextlib.redirect_stdout(null), contextlib.redirect_stderr(null):
                assert main(["run", str(d / "cmd.toml"), "--dir", str(d / "study_done")]) == 0
        yield d


def _run_case(argv: list[str], cwd: Path) -> tuple[int | None, str, str, float]:
    """main(argv) in a forked child with 2 GB more data segment and 60 s; (exit code or None, out, err, s)."""
    out_f, err_f = tempfile.TemporaryFile(), tempfile.TemporaryFile()
    t0 = time.time()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 70
        try:
            os.chdir(cwd)
            os.dup2(out_f.fileno(), 1)
            os.dup2(err_f.fileno(), 2)
            status = Path("/proc/self/status").read_text() if Path("/proc/self/status").exists() else ""
            used = next((int(line.split()[1]) * 1024 for line in status.splitlines() if line.startswith("VmData")), 0)
            resource.setrlimit(resource.RLIMIT_DATA, (used + LIMIT_BYTES, used + LIMIT_BYTES))
            import sys

            sys.stdout = os.fdopen(1, "w", buffering=1)
            sys.stderr = os.fdopen(2, "w", buffering=1)
            from repetita.cli import main

            code = main(argv)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException:
            import traceback

            traceback.print_exc()
            code = 71
        finally:
            try:
                sys.stdout.flush()
                sys.stderr.flush()
            finally:
                os._exit(code if isinstance(code, int) else 1)
    deadline = t0 + LIMIT_SECONDS
    code = None
    while time.time() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            code = os.waitstatus_to_exitcode(status)
            break
        time.sleep(0.01)
    else:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    out_f.seek(0)
    err_f.seek(0)
    return code, out_f.read().decode(errors="replace"), err_f.read().decode(errors="replace"), time.time() - t0


def test_the_matrix_is_large_enough():
    assert len(CASES) >= 180 and len({c[0] for c in CASES}) == len(CASES)


@pytest.mark.parametrize("name, argv, expected, holds", CASES, ids=[c[0] for c in CASES])
def test_bad_input(fixtures, name, argv, expected, holds):
    d = fixtures
    argv = [a.replace("{d}", str(d)) for a in argv]
    work = d / "cwd"
    work.mkdir(exist_ok=True)
    before = sorted(p.name for p in d.iterdir())
    code, out, err, seconds = _run_case(argv, work)
    assert code is not None, f"{name}: still running after {LIMIT_SECONDS} s"
    assert "Traceback" not in err and "Traceback" not in out, f"{name}: {err[-3000:]}"
    assert code == expected, f"{name}: exit {code}, expected {expected}; stderr: {err[-1500:]}"
    if expected == 2:
        errors = [line for line in err.splitlines() if line.strip() and ": note:" not in line
                  and ": warning:" not in line]
        assert len(errors) == 1 and errors[0].startswith("repetita"), f"{name}: {err}"
    else:
        assert holds in out, f"{name}: {out[-1500:]}"
    assert not list(work.iterdir()), f"{name}: wrote {list(work.iterdir())} in the working folder"
    # nothing beside the inputs but what the case was asked to write (a temp or partial file is a defect)
    after = sorted(p.name for p in d.iterdir())
    stray = [p for p in set(after) - set(before) if p.startswith(".") or "partial" in p or ".tmp" in p]
    assert not stray, f"{name}: left {stray}"
