"""``repetita corpus prepare`` on one very long document: peak memory whole vs in pieces, same ids.

    .venv/bin/python benchmarks/prepare_long_document.py [--mb 20]

A JSON-lines corpus of one document of ``--mb`` million characters (random words, a line break every
twelve) plus 200 short documents, and a byte-level BPE tokenizer (vocabulary 2,000) trained on part of
it. Each variant runs ``repetita corpus prepare`` in a fresh child process that reports its own peak
resident memory (getrusage): ``whole`` hands the long document to the tokenizer at once (what prepare did
before), ``pieces`` cuts it after line breaks into pieces of at most ``CHUNK_CHARS`` characters (what it
does now). The two ``train.bin`` files must be byte-identical.
"""

from __future__ import annotations

import argparse
import filecmp
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

CHILD = """
import json, resource, sys, time
from repetita.lm import prepare
if sys.argv[1] == "whole":
    prepare.CHUNK_CHARS = 10**12
from repetita.cli import main
t0 = time.perf_counter()
code = main(["corpus", "prepare", sys.argv[2], "--tokenizer", sys.argv[3], "--out", sys.argv[4], "--val-docs", "5"])
print(json.dumps({"code": code, "seconds": time.perf_counter() - t0,
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def make_corpus(folder: Path, mb: float) -> tuple[Path, Path]:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    rng = np.random.default_rng(0)
    words = ["".join(rng.choice(list("abcdefghijklmnopqrstuvwxyz"), size=rng.integers(2, 9))) for _ in range(5000)]
    lines, n = [], 0
    while n < mb * 1e6:
        line = " ".join(rng.choice(words, size=12)) + "\n"
        lines.append(line)
        n += len(line)
    small = [" ".join(rng.choice(words, size=50)) for _ in range(200)]
    docs = folder / "docs.jsonl"
    with open(docs, "w") as f:
        f.write(json.dumps({"text": "".join(lines)}) + "\n")
        f.writelines(json.dumps({"text": s}) + "\n" for s in small)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(small + lines[:20000], trainer=trainers.BpeTrainer(
        vocab_size=2000, special_tokens=["<|endoftext|>"], show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok.save(str(folder / "tok.json"))
    return docs, folder / "tok.json"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=float, default=20.0, help="length of the long document, million characters")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        docs, tok = make_corpus(tmp, args.mb)
        out = {}
        for variant in ("whole", "pieces"):
            r = subprocess.run([sys.executable, "-c", CHILD, variant, str(docs), str(tok), str(tmp / variant)],
                               capture_output=True, text=True, check=True)
            out[variant] = json.loads(r.stdout.strip().splitlines()[-1])
        same = filecmp.cmp(tmp / "whole" / "train.bin", tmp / "pieces" / "train.bin", shallow=False)
    print(f"machine: {platform.machine()}, {platform.processor() or platform.platform()}, Python {platform.python_version()}")
    print(f"one document of {args.mb:g}M characters + 200 short ones; {time.strftime('%Y-%m-%d')}")
    for v, r in out.items():
        print(f"  {v:<7} peak {r['peak_mb']:8.0f} MB   {r['seconds']:6.1f} s")
    print(f"  peak memory whole / pieces: {out['whole']['peak_mb'] / out['pieces']['peak_mb']:.1f}x; "
          f"train.bin identical: {same}")


if __name__ == "__main__":
    main()
