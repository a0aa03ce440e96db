"""A synthetic chain-of-thought task: left-to-right modular arithmetic with worked steps.

Prompt ``3+4*2-5=``; response ``3+4=7|7*2=4|4-5=9|#9;`` (each step mod ``modulus``, answer after
``#``). Character-level tokens, so a tiny randomly initialized model can be trained on CPU in
seconds. Loss and token accuracy count only response tokens: the prompt is labelled -100.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from repetita.errors import require
from repetita.sft.accuracy import IGNORE_INDEX

PAD, BOS = 0, 1
CHARS = "0123456789+-*=|#;"
STOI = {c: i + 2 for i, c in enumerate(CHARS)}
ITOS = {i: c for c, i in STOI.items()}
VOCAB_SIZE = len(CHARS) + 2
OPS = "+-*"


@dataclass(frozen=True)
class ArithmeticTask:
    n_ops: int = 3
    modulus: int = 10

    def __post_init__(self):
        require(1 <= self.n_ops <= 8, f"n_ops must be in 1..8, got {self.n_ops}")
        require(2 <= self.modulus <= 10, f"modulus must be in 2..10 (single-digit tokens), got {self.modulus}")

    def sample(self, rng: np.random.Generator) -> tuple[str, str, int]:
        m = self.modulus
        x = int(rng.integers(m))
        prompt, steps = str(x), []
        for _ in range(self.n_ops):
            op, d = OPS[int(rng.integers(3))], int(rng.integers(m))
            y = (x + d) % m if op == "+" else (x - d) % m if op == "-" else (x * d) % m
            prompt += f"{op}{d}"
            steps.append(f"{x}{op}{d}={y}|")
            x = y
        return prompt + "=", "".join(steps) + f"#{x};", x

    def pool(self, size: int, seed: int) -> list[tuple[str, str, int]]:
        rng = np.random.default_rng(seed)
        return [self.sample(rng) for _ in range(size)]

    @property
    def prompt_len(self) -> int:
        return 1 + 1 + 2 * self.n_ops + 1  # BOS, first operand, op/digit pairs, "="

    @property
    def response_len(self) -> int:
        return 6 * self.n_ops + 3  # "a+b=c|" per step, then "#x;"


def encode(text: str) -> list[int]:
    return [STOI[c] for c in text]


def decode(ids) -> str:
    return "".join(ITOS.get(int(i), "") for i in ids)


def make_batch(examples):
    """input_ids and labels ([B, T] long tensors); prompt and padding labels are -100."""
    import torch

    seqs = [[BOS] + encode(p) + encode(r) for p, r, _ in examples]
    plens = [1 + len(p) for p, _, _ in examples]
    T = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), T), PAD, dtype=torch.long)
    labels = torch.full((len(seqs), T), IGNORE_INDEX, dtype=torch.long)
    for i, (s, pl) in enumerate(zip(seqs, plens, strict=True)):
        ids[i, : len(s)] = torch.tensor(s)
        labels[i, pl : len(s)] = torch.tensor(s[pl:])
    return ids, labels


def parse_answer(text: str) -> int | None:
    """The digit after '#' in a generated response, None when malformed."""
    if "#" not in text:
        return None
    tail = text.split("#", 1)[1][:1]
    return int(tail) if tail.isdigit() else None
