"""Planning with a fitted law: what repeated data is worth, where repetition saturates.

All functions are pure and vectorized. Terms (Muennighoff et al. 2023):

- effective data D' = U + U R_D* (1 - exp(-(K - 1)/R_D*)) after K >= 1 epochs over U unique tokens;
- effective reuse rate E(K) = D'/U: how many epochs of fresh data K epochs are worth (= K while
  K - 1 << R_D*, plateauing at 1 + R_D*);
- worth of epoch K + 1 = E(K + 1) - E(K), in units of one epoch of fresh data;
- with the N-aware law, R_D* = R_D*(U) grows with the dataset, so the saturation epoch count
  K* = 1 + R_D*(U) grows like log U, as multi-epoch SGD theory predicts.

Data efficiency backs a loss out into tokens through a baseline law's data term:
D_eff = (B / (L - E_rest))^(1/beta), with E_rest the loss the model would have with infinite data.
"""

from __future__ import annotations

import numpy as np

from repetita.errors import UserError, require
from repetita.laws.forms import compute_optimal_params, effective_data, get_law


def reuse_rate(epochs, rd_star) -> np.ndarray:
    """E(K) = D'/U (``forms.effective_data`` at U = 1). Below one epoch every token is fresh, so E = K there;
    with no repetition penalty (R_D* = inf) E = K everywhere."""
    k = np.asarray(epochs, dtype=float)
    r = np.asarray(rd_star, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        e = effective_data(np.ones_like(k), k, r)
    return np.where(np.isinf(r), k, e)


def effective_tokens(unique_tokens, epochs, rd_star) -> np.ndarray:
    """D' = U E(K)."""
    return np.asarray(unique_tokens, dtype=float) * reuse_rate(epochs, rd_star)


def next_epoch_worth(epochs, rd_star) -> np.ndarray:
    """Fresh-data epochs gained by training epoch K + 1 after K epochs: E(K + 1) - E(K)."""
    k = np.asarray(epochs, dtype=float)
    return reuse_rate(k + 1.0, rd_star) - reuse_rate(k, rd_star)


def epochs_until_worth_below(fraction, rd_star) -> np.ndarray:
    """The smallest whole K >= 1 after which epoch K + 1 is worth less than ``fraction`` of fresh data.

    Epoch K + 1 (K >= 1) is worth R (1 - e^(-1/R)) e^(-(K-1)/R); solving for K gives the closed form
    below; it is then nudged to the exact integer boundary.
    """
    f = np.asarray(fraction, dtype=float)
    r = np.asarray(rd_star, dtype=float)
    if np.any((f <= 0) | (f >= 1)):
        raise UserError("the worth fraction must lie strictly between 0 and 1")
    first = r * (1.0 - np.exp(-1.0 / r))  # worth of the second epoch
    k = np.maximum(1.0, np.ceil(1.0 + r * np.log(first / f)))
    k = np.where(next_epoch_worth(k, r) >= f, k + 1, k)  # rounding guard at the boundary
    k = np.where((k > 1) & (next_epoch_worth(k - 1, r) < f), k - 1, k)
    return k


def saturation_epochs(rd_star) -> np.ndarray:
    """K* = 1 + R_D*: the e-folding epoch count of the reuse curve (E reaches 63% of its plateau gain)."""
    return 1.0 + np.asarray(rd_star, dtype=float)


def tokens_from_loss(loss, e_rest, b, beta) -> np.ndarray:
    """Invert L = E_rest + B / D^beta: the tokens a baseline law needs to reach ``loss``.

    Returns inf where the loss is at or below E_rest (no amount of data reaches it under the
    baseline: the recipe moved the asymptote).
    """
    gap = np.asarray(loss, dtype=float) - np.asarray(e_rest, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(gap > 0, (np.asarray(b, dtype=float) / gap) ** (1.0 / np.asarray(beta, dtype=float)), np.inf)


def data_efficiency(loss_recipe, loss_baseline, e_rest, b, beta) -> np.ndarray:
    """How many times more data the baseline needs to match the recipe: D_eff(L_recipe) / D_eff(L_base)."""
    return tokens_from_loss(loss_recipe, e_rest, b, beta) / tokens_from_loss(loss_baseline, e_rest, b, beta)


# --- Reading a fitted law -----------------------------------------------------------------------


def rd_star_for(record: dict, unique_tokens) -> np.ndarray:
    """R_D* of a fitted law at dataset size U (the law object knows its own form)."""
    return get_law(record["law"]).repetition(record["params"], unique_tokens)


def data_term(record: dict, params) -> tuple[np.ndarray, float, float]:
    """(E_rest, B, beta) of the law's data term at model size N: L = E_rest + B / D'^beta."""
    law = get_law(record["law"])
    if law.needs_axis:
        require(record["spec"].get("axis") in ("tokens", "unique_tokens", "x"), "a power fit must be along tokens")
    return law.data_terms(record["params"], params)


def plan_table(record: dict, params: float, unique_tokens: float, epochs, fraction: float = 0.5):
    """Per-epoch-count predictions and the repetition summary for one (N, U)."""
    import pandas as pd

    from repetita.laws.allocate import check_limits
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


def sampled_records(record: dict, n: int = PLAN_SAMPLES, seed: int = 0) -> list[dict] | None:
    """Fit records with parameters drawn from the fit's saved uncertainty (``uncertainty.theta_draws``);
    None when the fit saved none, one line when a parameter has no finite interval."""
    from repetita.laws.fit import LawFit
    from repetita.laws.uncertainty import theta_draws

    est = LawFit.from_result(record)
    thetas = theta_draws(est, n, seed=seed)
    if thetas is None:
        return None
    names = est.spec.law_obj.params
    return [record | {"params": dict(zip(names, map(float, t), strict=True))} for t in thetas]


def plan_intervals(record: dict, params: float, unique_tokens: float, epochs, fraction: float = 0.5,
                   level: float | None = None) -> dict | None:
    """Percentile intervals of every plan quantity under the fit's parameter uncertainty."""
    samples = sampled_records(record)
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
