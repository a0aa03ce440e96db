"""The walk-through's inputs: the Shakespeare plays shipped with repetita's LM lab cut into scene-sized
documents (``plays.jsonl``), and a byte-level BPE tokenizer of 512 tokens trained on them
(``tokenizer.json``), both in the folder given. Any corpus and any local Hugging Face tokenizer do as well.

    python examples/hf_trainer/make_inputs.py out/hf_inputs
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path


def main() -> None:
    from repetita.lm.corpora import load_shakespeare
    from repetita.lm.data import bpe_tokenizer, cache_dir

    out = Path(sys.argv[1] if len(sys.argv) > 1 else "out/hf_inputs")
    out.mkdir(parents=True, exist_ok=True)
    corpus = load_shakespeare()
    docs, cur = [], []
    for block in corpus.text.split("\n\n"):  # scenes of about 3,000 characters: documents to shuffle and hold out
        cur.append(block)
        if sum(len(b) for b in cur) > 3000:
            docs.append("\n\n".join(cur))
            cur = []
    docs += ["\n\n".join(cur)] if cur else []
    (out / "plays.jsonl").write_text("".join(json.dumps({"text": d}) + "\n" for d in docs))
    bpe_tokenizer(corpus, 512)  # the LM lab's tokenizer: trained once, cached
    shutil.copy(cache_dir() / f"bpe-{corpus.digest}-512.json", out / "tokenizer.json")
    print(f"{out}: {len(docs)} documents in plays.jsonl, tokenizer.json (BPE, 512 tokens)")


if __name__ == "__main__":
    main()
