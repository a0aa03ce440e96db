"""A fixed model size on a fixed corpus: the loss and the worth of each epoch count under a fitted law,
with intervals from the fit's parameter draws (``repetita plan --params``)."""

from __future__ import annotations

import numpy as np

from repetita.errors import UserError, require
from repetita.laws.forms import compute_optimal_params
from repetita.laws.law import get_law
from repetita.laws.record import sampled_records
from repetita.laws.worth import (
    data_term,
    effective_tokens,
    epochs_until_worth_below,
    next_epoch_worth,
    rd_star_for,
    reuse_rate,
    saturation_epochs,
    tokens_from_loss,
)


def plan_table(record: dict, params: float, unique_tokens: float, epochs, fraction: float = 0.5):
    """Per-epoch-count predictions and the repetition summary for one (N, U)."""
    import pandas as pd

    from repetita.decide.allocate import check_limits
    from repetita.laws.fit import LawFit

    check_limits("params", params)
    check_limits("unique tokens", unique_tokens)
    k = np.asarray(epochs, dtype=float)
    require(k.size > 0, "epochs: no values given")
    check_limits("epochs", k)
    est = LawFit.from_result(record)  # validates the record (law, spec, every parameter) first
    law = get_law(record["law"])
    # a penalty law has no R_D*: its E(K) columns are left empty and its turn says where repetition hurts
    rd = float(rd_star_for(record, unique_tokens)) if law.rd_star is not None else float("nan")
    rows = pd.DataFrame({"params": params, "tokens": k * unique_tokens, "unique_tokens": unique_tokens})
    loss = est.predict(rows)
    table = pd.DataFrame(
        {
            "epochs": k,
            "tokens": k * unique_tokens,
            "effective_tokens": effective_tokens(unique_tokens, k, rd),
            "reuse_rate": reuse_rate(k, rd),
            "next_epoch_worth": next_epoch_worth(k, rd),
            "loss": loss,
        }
    )
    summary = {
        "law": record["law"],
        "params": params,
        "unique_tokens": unique_tokens,
        "rd_star": rd,
        "plateau_reuse_rate": 1.0 + rd,
        "saturation_epochs": float(saturation_epochs(rd)),
        "worth_fraction": fraction,
        "epochs_until_worth_below": float(epochs_until_worth_below(fraction, rd)) if np.isfinite(rd) else None,
        "best_epochs": float(k[int(np.argmin(loss))]),
        "best_loss": float(np.min(loss)),
        "turn_epochs": float(law.turn(record["params"], params, unique_tokens)),
    }
    if "rn_star" in record["params"]:  # laws with effective params N' know the compute-optimal N for U
        p = record["params"]
        summary["compute_optimal_params_for_U"] = float(
            compute_optimal_params(np.asarray(unique_tokens), p["a"], p["b"], p["alpha"], p["beta"])
        )
    return table, summary


# --- Uncertainty carried into a plan ---------------------------------------------------------------

PLAN_SAMPLES = 400  # parameter draws propagated through a plan (percentiles of 95% intervals to ~1%)


def plan_intervals(record: dict, params: float, unique_tokens: float, epochs, fraction: float = 0.5,
                   level: float | None = None) -> dict | None:
    """Percentile intervals of every plan quantity under the fit's parameter uncertainty."""
    samples = sampled_records(record, n=PLAN_SAMPLES)
    if samples is None:
        return None
    level = level or record["uncertainty"].get("level", 0.95)
    tables, sums = [], []
    for rec in samples:
        with np.errstate(all="ignore"):
            t, s = plan_table(rec, params, unique_tokens, epochs, fraction)
        tables.append(t)
        sums.append(s)
    from repetita.laws.fit import LawFit
    from repetita.laws.uncertainty import percentile_band, prediction_interval

    cols = ("effective_tokens", "reuse_rate", "next_epoch_worth", "loss")
    # an overfitting law has no E(K) columns: their bands are NaN by design
    stack = {c: np.stack([t[c].to_numpy() for t in tables]) for c in cols}
    bands = {c: percentile_band(stack[c], level).T.tolist() for c in cols}
    rows = [{c: bands[c][i] for c in cols} for i in range(len(tables[0]))]

    est = LawFit.from_result(record)
    for i, row in enumerate(rows):
        row["loss_prediction"] = prediction_interval(stack["loss"][:, i], est, level)
    summary = {}
    for k in ("rd_star", "saturation_epochs", "epochs_until_worth_below", "best_epochs", "best_loss"):
        vals = np.array([np.nan if s.get(k) is None else s[k] for s in sums], dtype=float)
        summary[k] = percentile_band(vals, level).tolist()
    return {"level": level, "samples": len(samples), "method": record["uncertainty"]["method"],
            "table": rows, "summary": summary}


def fixed_plan(record: dict, params: float, unique_tokens: float, epochs, fraction: float = 0.5,
               losses: list[float] | None = None) -> dict:
    """``repetita plan --params N``: the per-epoch table with its intervals, the repetition summary and turn,
    and optionally losses expressed as fresh tokens (data efficiency against the first)."""
    table, summary = plan_table(record, params, unique_tokens, epochs, fraction=fraction)
    out = {"summary": summary, "table": table.to_dict(orient="records"), "_table": table}
    try:
        intervals = plan_intervals(record, params, unique_tokens, epochs, fraction=fraction)
    except UserError as exc:  # a fit with unidentified parameters still plans, without an interval
        intervals, out["warnings"] = None, [str(exc)]
    if intervals is not None:
        out["intervals"] = intervals
    elif "warnings" not in out:
        out["warnings"] = ["the fit file holds no uncertainty (refit with this repetita to save intervals): "
                           "the plan is a point estimate"]
    if losses:
        e_rest, b, beta = data_term(record, params)
        toks = tokens_from_loss(losses, e_rest, b, beta)
        out["effective_tokens_for_loss"] = [{"loss": lo, "tokens": float(t)} for lo, t in zip(losses, toks, strict=True)]
        if len(losses) > 1:  # data efficiency of each loss against the first one (the baseline recipe)
            out["data_efficiency_vs_first"] = [float(t / toks[0]) for t in toks]
    return out
