"""Token accuracy over response tokens, the quantity SFT repetition is stopped on.

Kopiczko et al. (2026) observe that multi-epoch reasoning SFT stops improving once *training* token
accuracy reaches full memorization; they log it and stop by hand. Here it is computed per batch from
the logits the trainer already holds: only an argmax (an integer tensor of shape [batch, time]) is
created, never a second full-vocabulary tensor (no softmax, no one-hot), and shifting is done with
views.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from repetita.errors import UserError, require

IGNORE_INDEX = -100  # the label value HF/PyTorch cross-entropy ignores (prompt and padding)


@dataclass(frozen=True)
class BatchAccuracy:
    """Per-sample counts of one batch: ``correct[i]`` of ``total[i]`` response tokens predicted."""

    correct: list[int]
    total: list[int]

    @property
    def n_correct(self) -> int:
        return int(sum(self.correct))

    @property
    def n_tokens(self) -> int:
        return int(sum(self.total))

    @property
    def accuracy(self) -> float | None:
        """Token-weighted accuracy of the batch; None when it holds no response token."""
        return self.n_correct / self.n_tokens if self.n_tokens else None

    def per_sample(self) -> list[float | None]:
        return [c / t if t else None for c, t in zip(self.correct, self.total, strict=True)]


def token_accuracy(logits, labels, mask=None, *, shift: bool = True, ignore_index: int = IGNORE_INDEX):
    """Count argmax hits on response tokens.

    logits: [B, T, V] float tensor; labels: [B, T] integer tensor where prompt and padding positions
    hold ``ignore_index`` (the HF convention) unless ``mask`` ([B, T], true on response tokens) is
    given. ``shift=True`` follows causal-LM training (HF ``labels`` are the inputs; position t
    predicts token t+1); pass ``shift=False`` for labels already aligned with the logits.
    """
    import torch

    if logits.dim() != 3 or labels.dim() != 2 or tuple(logits.shape[:2]) != tuple(labels.shape):
        raise UserError(
            f"label/logit shape mismatch: logits {tuple(logits.shape)} need labels [B, T] = "
            f"{tuple(logits.shape[:2])}, got {tuple(labels.shape)}"
        )
    if mask is not None and tuple(mask.shape) != tuple(labels.shape):
        raise UserError(f"mask shape {tuple(mask.shape)} differs from labels shape {tuple(labels.shape)}")
    with torch.no_grad():
        if shift:
            logits, labels = logits[:, :-1], labels[:, 1:]
            mask = mask[:, 1:] if mask is not None else None
        valid = labels != ignore_index
        if mask is not None:
            valid = valid & mask.bool()
        pred = logits.argmax(dim=-1)  # [B, T] integers: the only new tensor besides booleans
        hits = (pred == labels) & valid
        correct = hits.sum(dim=1).tolist()
        total = valid.sum(dim=1).tolist()
    return BatchAccuracy(correct=[int(c) for c in correct], total=[int(t) for t in total])


class WindowedAccuracy:
    """Running mean of token accuracy over the last ``window`` steps that had response tokens.

    ``weighting="tokens"`` pools counts (a step with more response tokens weighs more);
    ``"steps"`` averages per-step accuracies. Steps with no response token are skipped and counted
    in ``skipped`` instead of dividing by zero.
    """

    def __init__(self, window: int = 20, weighting: str = "tokens"):
        require(isinstance(window, int) and window >= 1, f"window must be an integer >= 1, got {window!r}")
        require(weighting in ("tokens", "steps"), f"weighting must be 'tokens' or 'steps', got {weighting!r}")
        self.window = window
        self.weighting = weighting
        self._buf: deque[tuple[int, int]] = deque(maxlen=window)
        self.skipped = 0
        self.seen = 0

    def update(self, correct: int, total: int) -> float | None:
        """Add one step's counts; return the windowed mean (None until a step had tokens)."""
        require(0 <= correct <= total, f"need 0 <= correct <= total, got correct={correct}, total={total}")
        if total == 0:
            self.skipped += 1
            return self.value
        self._buf.append((int(correct), int(total)))
        self.seen += 1
        return self.value

    @property
    def full(self) -> bool:
        return len(self._buf) == self.window

    @property
    def value(self) -> float | None:
        if not self._buf:
            return None
        if self.weighting == "tokens":
            return sum(c for c, _ in self._buf) / sum(t for _, t in self._buf)
        return sum(c / t for c, t in self._buf) / len(self._buf)
