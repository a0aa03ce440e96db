"""E(K, U) measured by a study's ``reuse`` recipe (Yan et al.'s protocol), for the report.

Each model size and seed has one one-pass reference run (constant LR, evaluated densely) and K-epoch
runs on nested U; the one-epoch runs join the reference (they are one-pass runs on U fresh tokens), so
it reaches down to the smallest U. Per (model, seed): E = D'/U against that seed's reference (``laws.reuse``), losses the
reference does not reach flagged, not dropped. Then, seeds averaged: K*(U; lambda) per model, the plateau,
and K*(U) = A ln U + B with its interval on A when three or more U have a K* (K* interpolated between the
grid's epoch counts: on a doubling grid the grid value alone cannot resolve a slope of order 1).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from repetita.errors import UserError
from repetita.laws.reuse import LAMBDA  # the one definition of the phase-transition threshold


def reuse_runs(results: dict[str, dict], history=None) -> tuple[pd.DataFrame, dict]:
    """The finished K-epoch runs (params, seed, unique_tokens, epochs, loss) and the references by (params, seed);
    ``history(run_id)`` reads a run's evaluations when the results do not carry them (a study's store)."""
    from repetita.lm.recipes import reference_curve

    rows, refs = [], {}
    for rid, r in results.items():
        c = r.get("config", {})
        if "failed" in r or r.get("val_loss") is None:
            continue
        if c.get("recipe") == "reuse":
            rows.append({"run_id": rid, "params": r["params"], "seed": c.get("seed", 0), "unique_tokens": r["unique_tokens"],
                         "epochs": float(c["epochs"]), "loss": float(r["val_loss"])})
        elif c.get("recipe") == "reuse-reference":
            if "history" not in r and history is not None:
                r = r | {"history": history(rid)}
            refs[(r["params"], c.get("seed", 0))] = reference_curve(r)
    return pd.DataFrame(rows), refs


def measure(results: dict[str, dict], history=None, lam: float = LAMBDA) -> dict | None:
    """The reuse section of a report, or None when the study ran no reuse recipe."""
    from repetita.laws.reuse import Reference, effective_reuse, fit_log_law, monotone_fit, phase_transition

    runs, refs = reuse_runs(results, history)
    if runs.empty:
        return None
    parts, skipped, adjust = [], [], []
    for (n, seed), g in runs.groupby(["params", "seed"]):
        if (n, seed) not in refs or len(refs[(n, seed)][0]) < 2:
            skipped.append(f"N = {n:,.0f}, seed {seed}: no finished reference run")
            continue
        # the one-epoch runs are one-pass runs on U fresh tokens too: they give the reference its short end,
        # below the long run's first evaluation
        pts = pd.concat([pd.DataFrame({"tokens": refs[(n, seed)][0], "loss": refs[(n, seed)][1]}),
                         g.loc[g["epochs"] == 1, ["unique_tokens", "loss"]].rename(columns={"unique_tokens": "tokens"})])
        pts = pts.groupby("tokens", as_index=False)["loss"].mean()
        d, fit, moved = monotone_fit(pts["tokens"], pts["loss"])
        adjust.append(moved)
        ref = Reference(d, fit, name=f"one-pass reference (N = {n:,.0f}, seed {seed})")
        parts.append(effective_reuse(g, ref, extrapolate=True))
    if not parts:
        return {"skipped": "; ".join(skipped), "table": [], "k_star": []}
    table = pd.concat(parts, ignore_index=True)
    # seeds: mean E and a t-interval half-width per (N, U, K) where there are two or more
    agg = table.groupby(["params", "unique_tokens", "epochs"]).agg(
        reuse_rate=("reuse_rate", "mean"), sd=("reuse_rate", "std"), seeds=("reuse_rate", "size"),
        loss=("loss", "mean"), extrapolated=("extrapolated", "any")).reset_index()
    agg["reuse_rate_se"] = agg["sd"] / np.sqrt(agg["seeds"])
    kstar = phase_transition(table, lam, by=("params", "unique_tokens"))
    fits = {}
    for n, g in kstar.groupby("params"):
        try:
            fits[f"{n:.0f}"] = fit_log_law(g, column="k_star_interp")
        except UserError as exc:
            fits[f"{n:.0f}"] = {"skipped": str(exc)}
    warnings = skipped[:]
    if adjust and max(adjust) > 0.005:
        warnings.append(f"the reference curves were made monotone (least squares); the largest loss moved "
                        f"{100 * max(adjust):.1f}%: evaluation noise of the same order limits E")
    if agg["extrapolated"].any():
        warnings.append(f"{int(agg['extrapolated'].sum())} (N, U, K) cell(s) have losses outside the reference run's "
                        "range: their E is extrapolated (flagged); a longer (or more densely evaluated) reference would measure them")
    if kstar["k_star_at_grid_edge"].any():
        warnings.append("K* is the largest K tried for some U: the transition lies beyond the grid")
    return {"lambda": lam, "reference_adjustment": max(adjust), "table": agg.drop(columns="sd").to_dict(orient="records"),
            "k_star": kstar.to_dict(orient="records"), "fits": fits, "warnings": warnings}
