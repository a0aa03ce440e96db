"""Diagnostics of a fit: the reasons not to trust it, as one-line warnings.

Each check returns sentences naming what it found; ``LawFit.result()`` stores them under ``warnings``
and the command line prints each as one line on stderr. A fit can be the global optimum of its
objective and still be useless: a parameter pinned at a bound, a term that vanished, a direction the
data do not determine, or a table that mixes things the law treats as one.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

# Below this robust log-scale R^2 (``robust_log_r2``) the law explains too little of the loss to plan with.
# Judged on log loss, where the law is fitted, with the Huber weights that discount the rows the fit itself
# discounts: the published data-constrained law (Muennighoff et al. 2023) scores 0.833 on its own 182 runs,
# where raw R^2 is 0.772, driven by 7-35M-param runs at losses 5.8-8.1; a law that misses the trend scores
# far below (tests/test_laws_diagnostics.py).
R2_WARN = 0.8
HUBER_K = 1.345  # the classic Huber tuning constant: 95% efficiency under normal errors
TERM_SHARE = 1e-4  # a term below this share of the predicted loss on every row has vanished
MULTIMODAL_REL = 0.01  # another optimum within 1% of the best objective ...
PARAM_REL = 0.05  # ... with some parameter 5% away is a different answer the data cannot rule out


def robust_log_r2(pred, y) -> float:
    """R^2 of log loss with Huber weights: rows whose log residual exceeds HUBER_K robust scales (1.4826 x the
    median absolute deviation) count with weight scale/|residual|, as in one reweighting step of a Huber fit."""
    y, pred = np.log(np.asarray(y, dtype=float)), np.log(np.asarray(pred, dtype=float))
    r = y - pred
    if len(y) < 2 or not np.all(np.isfinite(r)):
        return float("nan")
    scale = 1.4826 * np.median(np.abs(r - np.median(r)))
    w = np.minimum(1.0, HUBER_K * scale / np.maximum(np.abs(r), 1e-300)) if scale > 0 else np.ones_like(r)
    spread = np.sum(w * (y - np.average(y, weights=w)) ** 2)
    return float(1.0 - np.sum(w * r ** 2) / spread) if spread > 0 else float("nan")


def at_bounds(problem, z: np.ndarray) -> list[str]:
    out = []
    for name, v, lo, hi in zip(problem.free, z, problem.lo, problem.hi, strict=True):
        for edge, side in ((lo, "lower"), (hi, "upper")):
            if np.isfinite(edge) and abs(v - edge) <= 1e-6 * max(1.0, abs(edge)):
                out.append(f"{name} = {v:.6g} sits at its {side} bound {edge:g}: the optimum may lie beyond it")
    return out


def at_start(problem, z: np.ndarray, start: np.ndarray | None) -> list[str]:
    if start is None:
        return []
    moved = np.abs(z - start) > 1e-8 * np.maximum(1.0, np.abs(start))
    return [f"{name} = {v:.6g} never moved from its start value: the objective does not depend on it here"
            for name, v, m in zip(problem.free, z, moved, strict=True) if not m]


def identifiability(problem, z: np.ndarray) -> list[str]:
    """Near-singular curvature: combinations of free parameters the rows do not determine."""
    from repetita.laws.uncertainty import batched_log_pred_jac, weak_directions

    if len(problem.free) < 2:
        return []
    _, J = batched_log_pred_jac(problem, z[None, :])
    weak = weak_directions(J[0])
    names = np.array(problem.free)
    if weak["broken"].any():
        return [f"the loss's derivative in {', '.join(names[weak['broken']])} is not finite at the optimum "
                "(a term over- or underflows): not identified"]
    if weak["dead"].any():
        return [f"the loss does not depend on {', '.join(names[weak['dead']])} at the optimum (not identified)"]
    out = []
    for rel, v in weak["singular"]:
        v = v / weak["scale"]  # back to parameter units
        v = v / np.abs(v).max()
        combo = " + ".join(f"{c:.2g} {p}" for p, c in zip(problem.free, v, strict=True) if abs(c) > 0.05)
        out.append(f"parameters not identified: {combo} can change without changing the fit "
                   f"(relative curvature {rel:.1e})")
    return out


def vanished_terms(law, params: dict, X: dict) -> list[str]:
    """Additive terms (the log-parametrised amplitudes) whose share of the prediction is negligible."""
    out = []
    names = [p for p in law.log_params if p in params]
    if not names:
        return out
    theta = np.array([[params[p] for p in law.params]])
    base = law.func(theta, X)[0]
    for name in names:
        t2 = theta.copy()
        t2[0, law.params.index(name)] = -700.0  # the term set to ~0
        share = 1.0 - np.exp(law.func(t2, X)[0] - base)
        if np.all(np.abs(share) < TERM_SHARE):
            what = ("so the law has no loss floor" if name == "e" else "and its exponent is meaningless")
            out.append(f"the {name.upper()} term contributes under {TERM_SHARE:.0e} of the loss on every row "
                       f"({name} = {params[name]:.3g}): it has vanished, {what}")
    return out


def exponent_flat(params: dict) -> list[str]:
    return [f"{p} = {params[p]:.3g}: its term no longer varies across rows (it acts as a constant)"
            for p in ("alpha", "beta") if p in params and params[p] < 1e-3]


def mixed_rows(df: pd.DataFrame, axis: str | None) -> list[str]:
    """Rows that mix recipes, ensemble sizes or seeds in a table fitted as one law."""
    out = []
    if "recipe" in df.columns and df["recipe"].nunique() > 1:
        out.append(f"rows mix recipes ({', '.join(map(str, sorted(df['recipe'].dropna().unique())))}); "
                   "fit one recipe at a time (filter the table)")
    if "members" in df.columns and axis != "members" and df["members"].nunique() > 1:
        out.append("rows mix single models and ensembles (members " +
                   ", ".join(str(int(m)) for m in sorted(df["members"].unique())) + "); filter members == 1 "
                   "or fit along --axis members")
    keys = [c for c in ("params", "tokens", "unique_tokens", "x", "step", "curve") if c in df.columns]
    if "seed" in df.columns and keys and df.duplicated(keys).any():
        out.append("several seeds share a configuration: each seed is fitted as its own row (average them "
                   "first for a per-configuration fit)")
    return out


def multimodal(problem, optima: list) -> list[str]:
    """Distinct optima with nearly the best objective: the answer depends on where the search started."""
    if len(optima) < 2:
        return []
    f0, z0 = optima[0]
    for f, z in optima[1:]:
        if not np.isfinite(f) or f > f0 * (1 + MULTIMODAL_REL) + 1e-12:
            continue
        rel = np.abs(z - z0) / np.maximum(np.abs(z0), 1e-3)
        if np.any(rel > PARAM_REL):
            j = int(np.argmax(rel))
            return [f"flat or multi-modal objective: another optimum within {100 * (f / f0 - 1):.2g}% of the best "
                    f"objective has {problem.free[j]} = {z[j]:.4g} instead of {z0[j]:.4g}; intervals, not the "
                    "point, are the answer"]
    return []


def diagnose(est, df: pd.DataFrame) -> list:
    """Every caveat (``laws.caveats.Caveat``, typed by kind) for a fitted estimator on its table."""
    from repetita.laws.caveats import Kind, typed

    problem, z = est.problem_, est.z_
    law = est.spec.law_obj
    out = typed(Kind.AT_BOUND, at_bounds(problem, z)) + typed(Kind.NOT_MOVED, at_start(problem, z, est.start_))
    with np.errstate(all="ignore"):
        out += typed(Kind.NOT_IDENTIFIED, identifiability(problem, z))
        out += typed(Kind.VANISHED, vanished_terms(law, est.params_, problem.X) if not law.curves else [])
    out += typed(Kind.FLAT_EXPONENT, exponent_flat(est.params_))
    out += typed(Kind.MULTIMODAL, multimodal(problem, est.optima_))
    out += typed(Kind.MIXED_ROWS, mixed_rows(df, est.spec.axis))
    r2 = est.r2_log_
    if np.isfinite(r2) and r2 < R2_WARN:
        out += typed(Kind.LOW_FIT, [f"robust log-scale R^2 = {r2:.3f} is below {R2_WARN}: the law explains too "
                                    "little of the loss to plan with"])
    return out
