"""Loss-curve tables -> the schedule integrals the multi-power law needs.

The multi-power law (Luo et al. 2025) predicts the loss at step t from the whole LR schedule up to
t: the area S1(t) + S_W under it, and a sum over every LR drop eta_{k-1} - eta_k of a saturating
function of the area after the drop. Logged curves give the LR only every few steps, so the
per-step schedule is rebuilt by linear interpolation between logged points (a linear warmup from 0
before the first logged step, as in the published runs, unless ``warmup_steps`` says otherwise).

Summing over every step k for every logged t costs O(T * n) per evaluation (72,000 x 550 for the
long published curves); instead the drops are pooled into bins of at most ``bin_width`` steps whose
edges include every logged step (so no bin straddles an evaluation point), and each bin acts at
the drop-weighted mean step of its members. A step-decay schedule keeps its drop at the exact step;
smooth schedules see a midpoint rule whose error is second order in the bin width.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from repetita.errors import UserError, require
from repetita.laws.data import canonical, numeric_column, require_columns


def _rebuild_schedule(steps: np.ndarray, lrs: np.ndarray, warmup: int) -> np.ndarray:
    """Per-step LR eta_1..eta_T (index 0 holds eta_0 = 0)."""
    total = int(steps[-1])
    tau = np.arange(total + 1, dtype=float)
    eta = np.interp(tau, steps, lrs)
    ramp = tau <= warmup
    eta[ramp] = lrs[0] * tau[ramp] / max(warmup, 1)
    return eta


def _curve_bins(steps, lrs, warmup, bin_width):
    eta = _rebuild_schedule(steps, lrs, warmup)
    cum = np.concatenate([[0.0], np.cumsum(eta[1:])])  # cum[t] = S(t) = eta_1 + ... + eta_t
    total = len(eta) - 1
    edges = np.union1d(steps.astype(int), np.arange(warmup, total + 1, bin_width))
    edges = edges[edges >= warmup]
    if edges[0] != warmup:
        edges = np.concatenate([[warmup], edges])
    k = np.arange(warmup + 1, total + 1)
    drops = eta[k - 1] - eta[k]
    which = np.searchsorted(edges, k, side="left") - 1  # bin j covers (edges[j], edges[j+1]]
    m = len(edges) - 1
    delta = np.bincount(which, weights=drops, minlength=m)
    weight = np.bincount(which, weights=np.abs(drops), minlength=m)
    pos = np.bincount(which, weights=np.abs(drops) * k, minlength=m)
    mid = 0.5 * (edges[:-1] + 1 + edges[1:])
    k_bin = np.where(weight > 0, pos / np.where(weight > 0, weight, 1.0), mid)
    eta_bin = np.interp(k_bin, np.arange(total + 1), eta)
    cum_before = np.interp(k_bin - 1, np.arange(total + 1), cum)  # S(k - 1)
    return cum, edges[1:], delta, eta_bin, cum_before


def prepare(df: pd.DataFrame, *, warmup_steps: int | None = None, bin_width: int = 64):
    """Build the multi-power design from a (curve,) step, lr, loss table.

    Returns ``(X, loss, frame)`` where ``frame`` is the validated table in row order of ``X``.
    """
    require(bin_width >= 1, f"bin_width must be >= 1, got {bin_width}")
    df = canonical(df)
    require_columns(df, ("step", "lr", "loss"), "the multipower law")
    frame = pd.DataFrame(
        {
            "curve": df["curve"].astype(str) if "curve" in df.columns else "curve",
            "step": numeric_column(df, "step"),
            "lr": numeric_column(df, "lr"),
            "loss": numeric_column(df, "loss"),
        }
    )
    if (frame["step"] <= 0).any():
        i = int(np.flatnonzero(frame["step"].to_numpy() <= 0)[0])
        raise UserError(f"column 'step', row {i + 1}: steps must be positive")
    if (frame["lr"] < 0).any():
        i = int(np.flatnonzero(frame["lr"].to_numpy() < 0)[0])
        raise UserError(f"column 'lr', row {i + 1}: learning rate must be >= 0")
    if (frame["loss"] <= 0).any():
        i = int(np.flatnonzero(frame["loss"].to_numpy() <= 0)[0])
        raise UserError(f"column 'loss', row {i + 1}: loss must be positive")

    parts, blocks = [], []
    for name, cur in frame.groupby("curve", sort=False):
        cur = cur.sort_values("step", kind="stable")
        steps = cur["step"].to_numpy()
        if (np.diff(steps) <= 0).any():
            raise UserError(f"curve {name!r}: duplicate step {int(steps[np.flatnonzero(np.diff(steps) <= 0)[0]])}")
        lrs = cur["lr"].to_numpy()
        warm = int(steps[0]) if warmup_steps is None else int(warmup_steps)
        require(0 <= warm <= steps[0], f"curve {name!r}: warmup_steps {warm} must lie in [0, first step {steps[0]:g}]")
        require(lrs[0] > 0, f"curve {name!r}: the LR at the first logged step must be positive")
        cum, ends, delta, eta_bin, cum_before = _curve_bins(steps, lrs, warm, bin_width)
        t = steps.astype(int)
        counted = ends[None, :] <= t[:, None]
        drop = np.where(counted, delta[None, :], 0.0)
        s_k = np.where(counted, cum[t][:, None] - cum_before[None, :], 0.0)
        floor = 1e-12 * lrs.max()
        log_eta = np.where(counted, np.log(np.maximum(eta_bin, floor))[None, :], 0.0)
        blocks.append((cum[t], drop, s_k, log_eta))
        parts.append(cur)
    m = max(b[1].shape[1] for b in blocks)

    def pad(a):
        return np.pad(a, ((0, 0), (0, m - a.shape[1])))

    X = {
        "area": np.concatenate([b[0] for b in blocks]),
        "drop": np.concatenate([pad(b[1]) for b in blocks]),
        "s_k": np.concatenate([pad(b[2]) for b in blocks]),
        "log_eta_k": np.concatenate([pad(b[3]) for b in blocks]),
    }
    ordered = pd.concat(parts)
    return X, ordered["loss"].to_numpy(), ordered
