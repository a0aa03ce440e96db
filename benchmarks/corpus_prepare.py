"""``repetita corpus prepare`` at scale: time, peak memory, nesting, and its two speed claims.

    .venv/bin/python benchmarks/corpus_prepare.py [--tokens 1e8] [--compare-docs 4000] [--keep DIR]

1. A corpus made on the fly: the Shakespeare plays cut into scene-sized documents, shuffled and repeated
   into a JSON-lines file of about ``--tokens`` tokens under the lab's BPE tokenizer (vocabulary 512, the
   ``tokenizer.json`` the lab trains once and caches).
2. ``repetita corpus prepare`` on it in a child process: wall time, tokens per second and the child's peak
   resident memory (getrusage), against the size of the corpus as text; budgets of 1% and 10% and the whole.
3. Nesting: each recorded budget is a prefix of the next (checked on the bytes of ``train.bin``).
4. Speed against a baseline in the same run: batched fast tokenization (what ``prepare`` does) against a
   plain loop calling the tokenizer one document at a time, on the first ``--compare-docs`` documents.
5. Reading: training batches (64 windows of 257 tokens) drawn from the memory map against the same
   windows held in memory.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def scene_documents() -> list[str]:
    from repetita.lm.corpora import load_shakespeare

    text = load_shakespeare().text
    docs, cur = [], []
    for block in text.split("\n\n"):
        cur.append(block)
        if sum(len(b) for b in cur) > 3000:
            docs.append("\n\n".join(cur))
            cur = []
    return docs + (["\n\n".join(cur)] if cur else [])


def lab_tokenizer() -> Path:
    from repetita.lm.corpora import load_shakespeare
    from repetita.lm.data import bpe_tokenizer, cache_dir

    bpe_tokenizer(load_shakespeare(), 512)  # trains once, cached
    return cache_dir() / f"bpe-{load_shakespeare().digest}-512.json"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokens", type=float, default=1e8)
    ap.add_argument("--compare-docs", type=int, default=4000)
    ap.add_argument("--keep", help="keep the prepared corpus here (default: a temporary folder)")
    args = ap.parse_args()
    from tokenizers import Tokenizer

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}")
    docs = scene_documents()
    tok_path = lab_tokenizer()
    tok = Tokenizer.from_file(str(tok_path))
    sample = docs[:200]
    per_char = sum(len(e.ids) for e in tok.encode_batch(sample)) / sum(len(d) for d in sample)
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "docs.jsonl"
        chars, n_docs = 0, 0
        with open(src, "w") as fh:
            while chars * per_char < args.tokens:
                for i in rng.permutation(len(docs)):
                    fh.write(json.dumps({"text": docs[i]}) + "\n")
                    chars += len(docs[i])
                    n_docs += 1
        text_bytes = src.stat().st_size
        print(f"corpus: {n_docs:,} documents, {text_bytes / 1e6:,.0f} MB as JSON lines, ~{chars * per_char:.3g} tokens")
        out = Path(args.keep) if args.keep else Path(tmp) / "prepared"
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "repetita.cli", "corpus", "prepare", str(src), "--tokenizer",
                        str(tok_path), "--out", str(out), "--budgets", f"{args.tokens / 100:.0f},{args.tokens / 10:.0f}", "--val-docs", "200", "--json"],
                       check=True, stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - t
        rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # kB -> MB on Linux
        m = json.loads((out / "manifest.json").read_text())
        n = m["tokens"]["train"] + m["tokens"]["val"]
        print(f"prepare: {n:,} tokens in {wall:.1f} s ({n / wall:,.0f} tokens/s), peak RSS {rss:,.0f} MB "
              f"(corpus as text {text_bytes / 1e6:,.0f} MB, as ids {n * 2 / 1e6:,.0f} MB)")
        train = np.memmap(out / "train.bin", dtype=m["dtype"], mode="r")
        prev = 0
        for b in sorted(int(k) for k in m["budgets"]) + [len(train)]:
            assert b >= prev and np.array_equal(train[:prev], train[:b][:prev])  # each budget a prefix of the next
            prev = b
        print(f"nesting: budgets {sorted(int(k) for k in m['budgets'])} and the whole are prefixes of train.bin")

        few = docs[: args.compare_docs] if args.compare_docs <= len(docs) else (docs * (args.compare_docs // len(docs) + 1))[: args.compare_docs]
        t = time.perf_counter()
        loop = sum(len(tok.encode(d).ids) for d in few)
        t_loop = time.perf_counter() - t
        t = time.perf_counter()
        batched = sum(len(e.ids) for e in tok.encode_batch(few))
        t_batch = time.perf_counter() - t
        assert loop == batched
        print(f"tokenize {len(few):,} documents ({loop:,} tokens): one at a time {loop / t_loop:,.0f} tokens/s, "
              f"batched {batched / t_batch:,.0f} tokens/s: {t_loop / t_batch:.2f}x")

        from repetita.lm.data import prepared_data

        data = prepared_data(str(out), 256, None, None)
        ram = np.array(data.train[: min(len(data.train), 200_000)])
        mapped = data.train[: len(ram)]
        idx = [np.random.default_rng(s).integers(0, len(ram), 64) for s in range(2000)]
        t = time.perf_counter()
        for i in idx:
            np.asarray(mapped[i], dtype=np.int64)
        t_map = time.perf_counter() - t
        t = time.perf_counter()
        for i in idx:
            np.asarray(ram[i], dtype=np.int64)
        t_ram = time.perf_counter() - t
        print(f"batches of 64 x 257 tokens: memory map {len(idx) / t_map:,.0f}/s, in memory {len(idx) / t_ram:,.0f}/s "
              f"({t_ram / t_map:.2f}x)")


if __name__ == "__main__":
    main()
