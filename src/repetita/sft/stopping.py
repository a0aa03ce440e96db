"""The stop rule on windowed training token accuracy, and its plain-PyTorch hook.

Two reasons to stop (Kopiczko et al. 2026: gains plateau once training token accuracy reaches full
memorization): the windowed accuracy reaches ``threshold``, or it has stopped rising (least-squares
slope over the last ``plateau_window`` windowed values below ``plateau_tol`` per step). The HF
callback lives in ``hf.py`` and shares this rule.
"""

from __future__ import annotations

from collections import deque
from dataclasses import asdict, dataclass

import numpy as np

from repetita.errors import require
from repetita.sft.accuracy import WindowedAccuracy, token_accuracy


@dataclass(frozen=True)
class StopConfig:
    """threshold: stop when windowed accuracy >= this (None disables); window: steps averaged;
    plateau_window: windowed values the slope is fitted on (0 disables the plateau test);
    plateau_tol: slope (accuracy per step) below which accuracy has plateaued;
    min_steps: never stop before this many counted steps."""

    threshold: float | None = 0.99
    window: int = 20
    plateau_window: int = 50
    plateau_tol: float = 1e-4
    min_steps: int = 0

    def __post_init__(self):
        t = self.threshold
        require(t is None or 0.0 < t <= 1.0, f"threshold must be in (0, 1] or None, got {t!r}")
        require(isinstance(self.window, int) and self.window >= 1, f"window must be >= 1, got {self.window!r}")
        pw = self.plateau_window
        require(isinstance(pw, int) and (pw == 0 or pw >= 2), f"plateau_window must be 0 or >= 2, got {pw!r}")
        require(self.plateau_tol >= 0, f"plateau_tol must be >= 0, got {self.plateau_tol!r}")
        require(
            isinstance(self.min_steps, int) and self.min_steps >= 0, f"min_steps must be >= 0, got {self.min_steps!r}"
        )
        require(t is not None or pw > 0, "threshold=None and plateau_window=0 leave no way to stop")


@dataclass(frozen=True)
class StopDecision:
    reason: str  # "threshold" or "plateau"
    step: int
    accuracy: float
    slope: float | None = None
    epoch: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def slope(values) -> float:
    """Least-squares slope of ``values`` against their index (accuracy change per step)."""
    y = np.asarray(values, dtype=float)
    x = np.arange(y.size, dtype=float) - (y.size - 1) / 2.0
    return float((x * (y - y.mean())).sum() / (x * x).sum())


class StopRule:
    """State of the rule: feed it (correct, total) per optimizer step; it answers with a decision.

    The windowed mean only counts once the window is full, so the first lucky batch cannot stop a run.
    """

    def __init__(self, config: StopConfig | None = None):
        self.config = config or StopConfig()
        self.acc = WindowedAccuracy(self.config.window)
        self._recent: deque[float] = deque(maxlen=max(self.config.plateau_window, 1))
        self.history: list[tuple[int, float | None]] = []
        self.decision: StopDecision | None = None

    @property
    def skipped(self) -> int:
        return self.acc.skipped

    def update(self, step: int, correct: int, total: int, epoch: float | None = None) -> StopDecision | None:
        value = self.acc.update(correct, total)
        self.history.append((int(step), value))
        if self.decision is not None:
            return self.decision
        if value is None or not self.acc.full or self.acc.seen < self.config.min_steps:
            return None
        self._recent.append(value)
        cfg = self.config
        if cfg.threshold is not None and value >= cfg.threshold:
            self.decision = StopDecision("threshold", int(step), float(value), None, epoch)
        elif cfg.plateau_window and len(self._recent) == cfg.plateau_window:
            s = slope(self._recent)
            if s < cfg.plateau_tol:
                self.decision = StopDecision("plateau", int(step), float(value), s, epoch)
        return self.decision

    def update_accuracy(self, step: int, accuracy: float, epoch: float | None = None) -> StopDecision | None:
        """Feed an already computed batch accuracy (weighted as one token)."""
        require(0.0 <= accuracy <= 1.0, f"accuracy must be in [0, 1], got {accuracy!r}")
        # Scale to integer counts so windowed means of per-step accuracies stay exact to 1e-6.
        return self.update(step, round(accuracy * 1_000_000), 1_000_000, epoch)


class TokenAccuracyHook:
    """A plain callable for any PyTorch loop: ``stop = hook(step, logits, labels)``.

    Also ``hook(step, accuracy=0.93)`` when the loop computes accuracy itself, and ``mask=`` for
    loops that mark response tokens with a boolean mask instead of ``-100`` labels. Returns True once
    the rule has fired (and keeps returning True); ``decision`` says why, ``history`` holds the curve.
    """

    def __init__(self, config: StopConfig | None = None, *, shift: bool = True):
        self.rule = StopRule(config)
        self.shift = shift

    def __call__(
        self,
        step: int,
        logits=None,
        labels=None,
        mask=None,
        *,
        accuracy: float | None = None,
        epoch: float | None = None,
    ) -> bool:
        if accuracy is not None:
            return self.rule.update_accuracy(step, accuracy, epoch) is not None
        require(logits is not None and labels is not None, "TokenAccuracyHook needs logits and labels, or accuracy=")
        batch = token_accuracy(logits, labels, mask, shift=self.shift)
        return self.rule.update(step, batch.n_correct, batch.n_tokens, epoch) is not None

    @property
    def decision(self) -> StopDecision | None:
        return self.rule.decision

    @property
    def history(self) -> list[tuple[int, float | None]]:
        return self.rule.history
