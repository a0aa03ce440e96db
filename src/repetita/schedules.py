"""Learning-rate schedules: a small registry of pure functions ``f(step, total, warmup, final) -> multiplier``.

``step`` is 0-based (the step about to be taken); ``final`` is the multiplier the schedule ends at
(cosine decays to 0.1 by default, as in the LM lab's runs; the SFT demonstration decays to 0).
The one schedule module: every training loop (``repetita.lm.trainer``) reads its LR from here.
"""

from __future__ import annotations

import math

from repetita.errors import require


def cosine(step: int, total: int, warmup: int, final: float = 0.1) -> float:
    if step < warmup:
        return (step + 1) / warmup
    t = min(1.0, (step - warmup) / max(1, total - warmup))
    return final + (1 - final) * 0.5 * (1 + math.cos(math.pi * t))


def wsd(step: int, total: int, warmup: int, final: float = 0.0, decay_frac: float = 0.2) -> float:
    """Warmup-stable-decay (Hu et al. 2024): flat, then a linear cool-down over the last ``decay_frac``."""
    if step < warmup:
        return (step + 1) / warmup
    decay_start = total - int(decay_frac * total)
    if step < decay_start:
        return 1.0
    t = (step - decay_start) / max(1, total - decay_start)
    return 1.0 - (1.0 - final) * t


def constant(step: int, total: int, warmup: int, final: float = 1.0) -> float:
    return (step + 1) / warmup if step < warmup else 1.0


SCHEDULES = {"cosine": cosine, "wsd": wsd, "constant": constant}


def lr_multiplier(name: str, step: int, total: int, warmup: int, final: float | None = None) -> float:
    require(name in SCHEDULES, f"schedule {name!r} must be one of {sorted(SCHEDULES)}")
    if final is None:
        return SCHEDULES[name](step, total, warmup)
    return SCHEDULES[name](step, total, warmup, final)
