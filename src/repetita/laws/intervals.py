"""Predictions with intervals for every row of a table: one implementation behind ``repetita predict TABLE``,
the coverage of ``fit --holdout`` and the law benchmark (``laws.benchmark``).

Two intervals per row, both at ``level`` (95% by default):

* the interval of the law's *mean*: the prediction under ``DRAWS`` parameter draws from the fit's saved
  uncertainty (normal draws from the sandwich covariance, or the bootstrap samples themselves). It is what
  a parameter interval promises, and what users misread as the range of their run's loss;
* the *prediction* interval: each draw times the scatter the fit shows about the law
  (``uncertainty.prediction_interval``): the range the loss a new run reaches is expected in.

A fit without finite parameter intervals gets the scatter alone for the second and NaN for the first
(counted as not covering). ``coverage`` scores both against observed losses; ``width_warning`` says when
the Laplace interval is so wide that it carries no information (a 7B run's [1.62, 4.34] where the bootstrap
gives [2.12, 2.55] on a public isoFLOP table).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

DRAWS = 200  # parameter draws per row, as the plan's intervals use
LEVEL = 0.95
# A mean's interval wider than this many times the 95% scatter band of the fitted rows is no information
# about a run: the linearisation has failed along a weak direction (measured: 60x on the isoFLOP table's
# largest models, where the bootstrap interval is 6x narrower than Laplace).
WIDTH_MULTIPLE = 5.0


@dataclass(frozen=True)
class RowIntervals:
    """Per-row prediction and bounds, in the table's row order (arrays of equal length)."""

    predicted: np.ndarray
    mean_lo: np.ndarray
    mean_hi: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    level: float
    source: str  # "laplace", "bootstrap" or "scatter" (no finite parameter interval)

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame({"predicted": self.predicted, "mean_lo": self.mean_lo, "mean_hi": self.mean_hi,
                             "pred_lo": self.lo, "pred_hi": self.hi})


def row_intervals(est, df: pd.DataFrame, level: float = LEVEL, n: int = DRAWS,
                  prediction: bool = True) -> RowIntervals:
    """Both intervals for every row of ``df`` under a fitted estimator (with its saved uncertainty);
    ``prediction=False`` leaves the prediction interval NaN (the mean's alone is what a width check needs)."""
    from repetita.errors import UserError
    from repetita.laws import data as tables
    from repetita.laws.uncertainty import prediction_interval, theta_draws

    df = tables.canonical(df).reset_index(drop=True)
    pred = est.predict(df)
    rows = len(df)
    try:  # normal draws on the fitted scale, as the sandwich is; or the bootstrap samples
        theta = theta_draws(est, n, seed=0, log_positive=False)
    except UserError:  # a parameter without a finite interval: the scatter alone
        theta = None
    source = "scatter" if theta is None else ("bootstrap" if est.uncertainty_.get("samples") is not None
                                              else "laplace")
    if theta is None:
        bands = np.array([prediction_interval([p], est, level) or [np.nan, np.nan] for p in pred]).reshape(rows, 2)
        nan = np.full(rows, np.nan)
        return RowIntervals(pred, nan, nan, bands[:, 0], bands[:, 1], level, "scatter")
    from repetita.laws.fit import prepare

    law = est.spec.law_obj
    X, _, order = prepare(est.spec, df.assign(loss=1.0))  # the fit's own design (its --axis, its bins)
    losses = np.full((len(theta), rows), np.nan)
    with np.errstate(all="ignore"):
        losses[:, order] = np.exp(law.func(theta, X))
        losses = np.where(np.isfinite(losses), losses, np.nan)
        q = ((1 - level) / 2, (1 + level) / 2)
        mean_lo, mean_hi = np.nanquantile(losses, q, axis=0)
    bands = np.array([(prediction_interval(losses[:, i], est, level, seed=i) if prediction else None)
                      or [np.nan, np.nan] for i in range(rows)]).reshape(rows, 2)
    return RowIntervals(pred, mean_lo, mean_hi, bands[:, 0], bands[:, 1], level, source)


def held_out_intervals(est, train: pd.DataFrame, test: pd.DataFrame, level: float = LEVEL) -> RowIntervals:
    """Both intervals for held-out rows from a fit of ``train``: its sandwich covariance, saved on the
    estimator as a fit file saves it (so ``predict`` on that fit file gives the same bounds)."""
    from repetita.laws.record import uncertainty_block
    from repetita.laws.uncertainty import laplace

    if est.free_:
        est.uncertainty_ = uncertainty_block(laplace(est, train, level=level))
    return row_intervals(est, test, level)


def coverage(iv: RowIntervals, observed) -> dict:
    """How the intervals score against observed losses: the share inside each, and the mean |log residual|."""
    obs = np.asarray(observed, dtype=float)
    inside = (obs >= iv.lo) & (obs <= iv.hi)
    inside_mean = (obs >= iv.mean_lo) & (obs <= iv.mean_hi)
    return {"rows": int(obs.size), "coverage": float(np.mean(inside)), "coverage_mean": float(np.mean(inside_mean)),
            "mean_abs_log_residual": float(np.mean(np.abs(np.log(iv.predicted / obs)))), "level": iv.level}


def width_warning(iv: RowIntervals, est) -> str | None:
    """One line when the mean's interval on some row is wider than ``WIDTH_MULTIPLE`` times the 95% scatter
    band of the fitted rows (``residual_log_sd``): Laplace has linearised a direction the data barely bound."""
    s = est.residual_log_sd_
    if iv.source != "laplace" or not s or not np.isfinite(s) or s <= 0:
        return None
    with np.errstate(all="ignore"):
        width = np.log(iv.mean_hi / iv.mean_lo)
    width = np.where(np.isfinite(width), width, np.inf)
    worst = int(np.argmax(width))
    ratio = float(width[worst] / (2 * 1.96 * s))
    if ratio <= WIDTH_MULTIPLE:
        return None
    return (f"the Laplace interval of the law's mean is up to {ratio:.0f}x wider than the fit's own scatter (row "
            f"{worst + 1}: {iv.mean_lo[worst]:.4g}-{iv.mean_hi[worst]:.4g} around {iv.predicted[worst]:.4g}): it "
            "linearises a direction the data barely bound; --bootstrap B gives intervals that follow the data")
