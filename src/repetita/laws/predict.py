"""``repetita predict``: the loss curve a fitted multi-power law expects for a new learning-rate schedule.

A schedule is a CSV of ``step, lr`` (a logged or planned schedule) or a named one built by the one
schedule module of the LM lab (``repetita.schedules``): ``cosine:STEPS``, ``wsd:STEPS:DECAY`` (flat,
then a linear cool-down over the last DECAY steps), ``constant:STEPS``, each after a linear warm-up
(``--warmup``, default 2,160 steps as in Luo et al. 2025's runs) to ``--peak-lr`` (default 3e-4, theirs).
Named schedules are evaluated every ``--every`` steps plus at each kink (end of warm-up, start of the
cool-down), which is also where the law's schedule integrals are taken from (linear between points).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from repetita.errors import UserError, require

NAMED = ("cosine", "wsd", "constant")


# The law sums the LR over every step up to each point: memory and time grow with the step count (a schedule
# of 1e10 steps asked for 74.5 GiB). Ten million steps is far past any LM run's length.
MAX_STEPS = 10**7


def named_schedule(text: str, *, warmup: int = 2160, peak_lr: float = 3e-4, final_frac: float | None = None,
                   every: int | None = None) -> pd.DataFrame:
    """``cosine:STEPS`` | ``wsd:STEPS:DECAY`` | ``constant:STEPS`` -> a (step, lr) table."""
    from repetita.schedules import lr_multiplier

    kind, *rest = text.split(":")
    require(kind in NAMED, f"schedule {text!r}: use a CSV of step,lr or one of cosine:STEPS, wsd:STEPS:DECAY, "
            "constant:STEPS")
    require(len(rest) == (2 if kind == "wsd" else 1), f"schedule {text!r}: expected {kind}:STEPS"
            + (":DECAY" if kind == "wsd" else ""))
    try:
        nums = [int(float(v)) for v in rest]
    except ValueError:
        raise UserError(f"schedule {text!r}: STEPS{'/DECAY' if kind == 'wsd' else ''} must be whole numbers") from None
    total = nums[0]
    require(total <= MAX_STEPS, f"schedule {text!r}: {total:,} steps is above the limit of {MAX_STEPS:,}")
    require(total > warmup >= 1, f"schedule {text!r}: STEPS must exceed the warm-up ({warmup} steps)")
    require(math.isfinite(peak_lr) and peak_lr > 0, f"--peak-lr must be positive, got {peak_lr}")
    require(final_frac is None or (math.isfinite(final_frac) and 0 <= final_frac <= 1),
            f"--final-frac must lie in [0, 1] (a fraction of the peak LR), got {final_frac}")
    require(every is None or every >= 1, f"--every must be >= 1, got {every}")
    every = every or max(1, total // 500)
    kinks = [warmup, total]
    final = final_frac
    if kind == "wsd":
        decay = nums[1]
        require(0 < decay < total - warmup, f"schedule {text!r}: DECAY must lie in (0, STEPS - warm-up)")
        kinks.append(total - decay)
        final = 0.0 if final_frac is None else final_frac

    def lr_at(step: int) -> float:
        # the schedule module counts 0-based steps about to be taken; the law's step t has taken t steps
        if kind == "wsd":
            from repetita.schedules import wsd

            return peak_lr * wsd(step - 1, total, warmup, final, decay_frac=decay / total)
        return peak_lr * lr_multiplier(kind, step - 1, total, warmup, final)

    steps = np.union1d(np.arange(warmup, total + 1, every), kinks)
    return pd.DataFrame({"step": steps, "lr": [lr_at(int(s)) for s in steps]})


def read_schedule(path: str | Path, columns: dict[str, str] | None = None) -> pd.DataFrame:
    from repetita.laws.data import numeric_column, read_table, require_columns

    df = read_table(path, columns)
    require_columns(df, ("step", "lr"), "a schedule")
    out = pd.DataFrame({"step": numeric_column(df, "step"), "lr": numeric_column(df, "lr")})
    require(len(out) and out["step"].max() <= MAX_STEPS, f"{path}: steps up to {out['step'].max():,.0f} are above "
            f"the limit of {MAX_STEPS:,}")
    return out


def predict_curve(record: dict, schedule: pd.DataFrame) -> pd.DataFrame:
    """Loss the fitted law predicts at every step of ``schedule`` (step, lr) -> (step, lr, loss)."""
    from repetita.laws.fit import LawFit

    require(record.get("law") == "multipower", f"predict needs a multi-power fit, this file holds a "
            f"{record.get('law')!r} fit (repetita fit ... --law multipower --out FIT.json)")
    est = LawFit.from_result(record)
    table = schedule.assign(loss=1.0, curve="predicted")
    return schedule.assign(loss=est.predict(table))
