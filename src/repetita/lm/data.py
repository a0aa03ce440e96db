"""Tokens for data-constrained training: tokenizer, train/val split, unique-token budget, epoch order.

The corpus is tokenized once (cached), cut into non-overlapping windows of ``context + 1`` tokens, and the
windows are shuffled once with a fixed split seed (independent of the training seed). The last
``val_fraction`` of that order is the validation split, never seen in training; the training pool is the
rest, and a unique-token budget U takes its first ``U // context`` windows, so a smaller U is always a
prefix of a larger one (nested subsets, as in Muennighoff et al. 2023).

Epoch order: the stream of training windows is the concatenation of fresh permutations of the subset, one
per epoch, seeded by (seed, epoch); step s reads windows [s*B, (s+1)*B) of that stream. The position in the
data is thus a pure function of the step, which makes resuming exact and fractional epochs natural.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from repetita.errors import require
from repetita.io import save_npy, write_atomic
from repetita.lm.corpora import Corpus, load_corpus


def cache_dir() -> Path:
    root = os.environ.get("REPETITA_CACHE") or Path.home() / ".cache" / "repetita"
    path = Path(root) / "lm"
    path.mkdir(parents=True, exist_ok=True)
    return path


# ---------------------------------------------------------------- tokenizers
def parse_tokenizer(spec: str) -> tuple[str, int]:
    """``bytes`` -> ("bytes", 256); ``bpe:512`` -> ("bpe", 512)."""
    if spec == "bytes":
        return "bytes", 256
    kind, _, size = spec.partition(":")
    require(kind == "bpe" and size.isdigit(), f"tokenizer {spec!r} must be 'bytes' or 'bpe:VOCAB'")
    vocab = int(size)
    require(260 <= vocab <= 65536, f"tokenizer bpe vocab {vocab} must be in [260, 65536]")
    return "bpe", vocab


def bpe_tokenizer(corpus: Corpus, vocab: int):
    """Byte-level BPE trained on the corpus with HF ``tokenizers``; cached by corpus hash and vocab size."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    path = cache_dir() / f"bpe-{corpus.digest}-{vocab}.json"
    if path.exists():
        return Tokenizer.from_file(str(path))
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=[],
        show_progress=False,
    )
    lines = corpus.text.splitlines(keepends=True)
    tok.train_from_iterator((lines[i : i + 1000] for i in range(0, len(lines), 1000)), trainer=trainer)
    write_atomic(path, lambda tmp: tok.save(str(tmp)))
    return tok


def encode_corpus(corpus: Corpus, tokenizer: str) -> tuple[np.ndarray, int]:
    """Token ids (int32) and vocab size; symbol sources ignore the tokenizer."""
    if corpus.ids is not None:
        return corpus.ids.astype(np.int32), int(corpus.vocab_size)
    kind, vocab = parse_tokenizer(tokenizer)
    if kind == "bytes":
        return np.frombuffer(corpus.text.encode("utf-8"), dtype=np.uint8).astype(np.int32), 256
    path = cache_dir() / f"ids-{corpus.digest}-bpe{vocab}.npy"
    if path.exists():
        return np.load(path), vocab
    tok = bpe_tokenizer(corpus, vocab)
    lines = corpus.text.splitlines(keepends=True)
    # Encode line blocks in a batch; the ByteLevel pre-tokenizer never merges across a newline-ended block.
    blocks = ["".join(lines[i : i + 200]) for i in range(0, len(lines), 200)]
    ids = np.concatenate([np.asarray(e.ids, dtype=np.int32) for e in tok.encode_batch(blocks)])
    save_npy(path, ids)
    return ids, vocab


def decode(ids, corpus: Corpus, tokenizer: str) -> str:
    kind, vocab = parse_tokenizer(tokenizer)
    if corpus.ids is not None:
        return " ".join(str(int(i)) for i in ids)
    if kind == "bytes":
        return bytes(int(i) for i in ids).decode("utf-8", errors="replace")
    return bpe_tokenizer(corpus, vocab).decode([int(i) for i in ids])


# ---------------------------------------------------------------- split, budget, order
@dataclass
class TokenData:
    """Training windows of a unique-token budget, plus the held-out validation windows."""

    train: np.ndarray  # [n_train, context + 1] int64, the U-budget subset (prefix of the pool)
    val: np.ndarray  # [n_val, context + 1]
    vocab_size: int
    context: int
    pool_windows: int  # size of the full training pool the subset is a prefix of
    entropy_rate_nats: float | None = None

    @property
    def unique_tokens(self) -> int:
        """Predicted tokens in the subset (each window predicts ``context`` tokens)."""
        return int(self.train.shape[0] * self.context)

    def steps_for(self, epochs: float, batch_size: int) -> int:
        return max(1, int(round(epochs * self.train.shape[0] / batch_size)))

    def batch_indices(self, step: int, batch_size: int, seed: int) -> np.ndarray:
        """Window indices for ``step``: read from the concatenation of per-epoch permutations."""
        n = self.train.shape[0]
        start = step * batch_size
        out = np.empty(batch_size, dtype=np.int64)
        filled = 0
        while filled < batch_size:
            epoch, offset = divmod(start + filled, n)
            perm = epoch_permutation(n, seed, epoch)
            take = min(batch_size - filled, n - offset)
            out[filled : filled + take] = perm[offset : offset + take]
            filled += take
        return out

    def batch(self, step: int, batch_size: int, seed: int) -> np.ndarray:
        # int64 ids whatever the storage (a prepared corpus is a uint16/uint32 memory map)
        return np.asarray(self.train[self.batch_indices(step, batch_size, seed)], dtype=np.int64)


def epoch_permutation(n: int, seed: int, epoch: int) -> np.ndarray:
    """A fresh permutation every epoch, reproducible from (seed, epoch) alone."""
    return np.random.default_rng([int(seed), int(epoch), 0x5EED]).permutation(n)


def make_windows(ids: np.ndarray, context: int) -> np.ndarray:
    w = context + 1
    n = len(ids) // w
    return ids[: n * w].reshape(n, w).astype(np.int64)


def split_windows(windows: np.ndarray, val_fraction: float, split_seed: int) -> tuple[np.ndarray, np.ndarray]:
    order = np.random.default_rng([int(split_seed), 0x5717]).permutation(windows.shape[0])
    n_val = max(1, int(round(val_fraction * windows.shape[0])))
    return windows[order[:-n_val]], windows[order[-n_val:]]


_CACHE: dict[tuple, tuple[np.ndarray, np.ndarray, int, float | None]] = {}


def load_data(
    corpus: str,
    tokenizer: str,
    context: int,
    unique_tokens: int | None,
    val_fraction: float = 0.05,
    val_tokens: int | None = 65536,
    split_seed: int = 0,
) -> TokenData:
    """Build the train subset of ``unique_tokens`` (None: the whole pool) and the validation windows.

    ``val_tokens`` caps the evaluation set (taken as a prefix of the validation split, so it is the same
    set for every U); it keeps evaluation cheap on CPU.
    """
    if corpus.startswith("prepared:"):
        return prepared_data(corpus.split(":", 1)[1], context, unique_tokens, val_tokens)
    key = (corpus, tokenizer, context, val_fraction, split_seed)
    if key not in _CACHE:
        c = load_corpus(corpus)
        ids, vocab = encode_corpus(c, tokenizer)
        pool, val = split_windows(make_windows(ids, context), val_fraction, split_seed)
        _CACHE[key] = (pool, val, vocab, c.entropy_rate_nats)
    pool, val, vocab, h = _CACHE[key]
    if unique_tokens is None:
        n = pool.shape[0]
    else:
        n = unique_tokens // context
        require(n >= 1, f"unique_tokens={unique_tokens} is smaller than one context window ({context})")
        require(
            n <= pool.shape[0],
            f"unique_tokens={unique_tokens} exceeds the training pool ({pool.shape[0] * context} tokens)",
        )
    if val_tokens is not None:
        val = val[: max(1, val_tokens // context)]
    return TokenData(train=pool[:n], val=val, vocab_size=vocab, context=context, pool_windows=pool.shape[0],
                     entropy_rate_nats=h)



def prepared_data(folder: str, context: int, unique_tokens: int | None, val_tokens: int | None) -> TokenData:
    """A corpus from ``repetita corpus prepare`` (``lm/prepare.py``), read through its memory map: the
    windows are views of ``train.bin`` (no copy, no tokenizing), the budget is its first windows, the
    validation windows come from the documents held out as ``val.bin``."""
    from repetita.lm.prepare import open_prepared

    train, val, manifest = open_prepared(folder)
    w = context + 1
    n_pool, n_val = len(train) // w, len(val) // w
    require(n_pool >= 1 and n_val >= 1, f"{folder}: fewer tokens than one context window ({w})")
    pool = train[: n_pool * w].reshape(n_pool, w)
    val_w = val[: n_val * w].reshape(n_val, w)
    n = n_pool
    if unique_tokens is not None:
        n = unique_tokens // context
        require(n >= 1, f"unique_tokens={unique_tokens} is smaller than one context window ({context})")
        require(n <= n_pool, f"unique_tokens={unique_tokens} exceeds the prepared corpus {folder} "
                f"({n_pool * context:,} tokens in windows of {context})")
    if val_tokens is not None:
        val_w = val_w[: max(1, val_tokens // context)]
    return TokenData(train=pool[:n], val=val_w, vocab_size=int(manifest["vocab_size"]), context=context,
                     pool_windows=n_pool)
