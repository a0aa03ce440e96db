"""The decision a study supports for its own corpus: what the report opens with.

From the study's own runs: the best epoch count measured per (N, U) (flagged when it is the largest
count tried: the turn was not reached), the fitted R_D* of the data-constrained law with its sandwich
interval (``uncertainty.laplace``), and, for the compute budgets the study spans, the recommended
recipe per unique-token budget from the recipes' measured data-efficiency multipliers
(``decide.efficiency``), each with the caveats that apply (the fit's warnings, an unidentified parameter,
multipliers that vary across cells).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from repetita.errors import UserError
from repetita.laws.data import FLOPS_PER_PARAM_TOKEN


def best_epochs(single: pd.DataFrame) -> list[dict]:
    """Per (N, U) of the standard recipe: the epoch count with the lowest loss, and whether it is the edge."""
    std = single[single["recipe"] == "standard"]
    rows = []
    for (n, u), g in std.groupby(["params", "unique_tokens"]):
        best = g.loc[g["loss"].idxmin()]
        rows.append({"params": float(n), "unique_tokens": float(u), "best_epochs": float(best["epochs"]),
                     "loss": float(best["loss"]), "epochs_tried": sorted(float(k) for k in g["epochs"].unique()),
                     "at_largest_tried": bool(best["epochs"] == g["epochs"].max())})
    return rows


def _rd_interval(est, data: pd.DataFrame) -> tuple[dict, dict | None]:
    """R_D* with its 95% sandwich interval, and the uncertainty record a plan can draw from."""
    from repetita.laws.uncertainty import laplace

    u = laplace(est, data)
    out = {"value": est.params_["rd_star"]}
    if "rd_star" in u["params"]:
        lo, hi = u["params"]["rd_star"]["lo"], u["params"]["rd_star"]["hi"]
        out["interval"] = [max(lo, 0.0), hi] if np.isfinite(hi) else None
    from repetita.laws.record import uncertainty_block

    return out, uncertainty_block(u)


def decide(single: pd.DataFrame, est, data: pd.DataFrame, efficiency_rows: list[dict], fit_record: dict) -> dict:
    """The study's decision (module docstring). ``est`` is the fitted data-constrained ``LawFit`` on ``data``."""
    from repetita.decide.efficiency import measured_effects, plan_recipes
    from repetita.decide.report_schema import parse_rows
    from repetita.laws.caveats import Caveat, Kind, of_record
    from repetita.laws.uncertainty import theta_draws

    caveats = of_record(fit_record, "the law")
    epochs = best_epochs(single)
    if any(r["at_largest_tried"] for r in epochs):
        caveats.append(Caveat(Kind.TURN_UNMEASURED, "for some (N, U) the best epoch count is the largest tried: the "
                              "turn lies beyond the grid"))
    rd, unc = _rd_interval(est, data)
    est.uncertainty_ = unc
    if rd.get("interval") is None:
        caveats.append(Caveat(Kind.NOT_IDENTIFIED, "R_D* has no finite interval on these runs: how much repetition "
                              "is worth is not identified"))
    try:
        thetas = theta_draws(est, 200)
    except UserError as exc:
        thetas = None
        caveats.append(Caveat(Kind.NO_INTERVAL, f"recipe losses without intervals: {exc}"))
    out = {"best_epochs": epochs, "rd_star": rd, "caveats": caveats, "uncertainty": unc}
    try:
        effects, warnings = measured_effects(parse_rows(efficiency_rows))
    except UserError as exc:
        effects, warnings = [], [Caveat(Kind.OTHER, str(exc))]
    caveats += warnings
    std = single[single["recipe"] == "standard"]
    compute = FLOPS_PER_PARAM_TOKEN * std["params"] * std["epochs"] * std["unique_tokens"]
    budgets = np.geomspace(compute.min(), compute.max(), 3)
    out["budgets"] = budgets.tolist()
    plans = []
    for u in sorted(std["unique_tokens"].unique()):
        try:
            res = plan_recipes(est, effects, budgets, float(u), thetas=thetas)
        except UserError as exc:
            caveats.append(Caveat(Kind.OTHER, f"U = {u:g}: no plan ({exc})"))
            continue
        for b in res["best"]:
            row = next(x for x in res["recipes"][b["recipe"]]["rows"] if x["compute"] == b["compute"])
            if row["at_search_edge"] and not any(c.kind == Kind.SEARCH_EDGE for c in caveats):
                from repetita.decide.allocate import N_RANGE

                caveats.append(Caveat(Kind.SEARCH_EDGE, f"some optima lie at the edge of the model sizes searched "
                                      f"({N_RANGE[0]:g}-{N_RANGE[1]:g} params): at that budget the law wants a model "
                                      "outside the sizes it can speak for"))
            plans.append({"unique_tokens": float(u), "compute": b["compute"], "recipe": b["recipe"], "loss": b["loss"],
                          "loss_interval": row.get("loss_interval"), "member_params": row["member_params"],
                          "epochs": row["epochs"], "loss_standard": b["loss_standard"],
                          "prediction_interval": row.get("prediction_interval"),
                          "gain_interval": b.get("gain_interval"),
                          "share_best": (b.get("share_best") or {}).get(b["recipe"])})
    out["recipes"] = {e.name: {"efficiency": e.efficiency, "source": e.source} for e in effects}
    out["plans"] = plans
    if not effects:
        caveats.append(Caveat(Kind.NO_RECIPE, "no recipe besides standard was measured against it: the plan is the "
                              "standard recipe's"))
    out["caveats"] = [c.to_dict() for c in caveats]  # report.json stores the decision as it is
    return out


def decision_lines(d: dict) -> list[str]:
    """The decision in a few sentences (the report's first section, and the CLI's summary)."""
    lines = []
    be = d["best_epochs"]
    if be:
        by_u = {}
        for r in be:
            by_u.setdefault(r["unique_tokens"], []).append(r["best_epochs"])
        lines.append("best epochs measured (standard recipe): " + "; ".join(
            f"U = {u:,.0f}: {', '.join(f'{k:g}' for k in ks)} (over model sizes)" for u, ks in sorted(by_u.items())))
    rd = d["rd_star"]
    iv = rd.get("interval")
    lines.append(f"fitted R_D* = {rd['value']:.3g}" + (f" (95% [{iv[0]:.3g}, {iv[1]:.3g}])" if iv else " (no finite interval)")
                 + f": repeated tokens keep most of their worth for about {1 + rd['value']:.3g} epochs")
    for p in d["plans"]:
        iv = p.get("loss_interval")
        share = p.get("share_best")
        lines.append(f"U = {p['unique_tokens']:,.0f}, C = {p['compute']:.3g} FLOPs: {p['recipe']} "
                     f"({p['member_params']:,.0f} params per model, {p['epochs']:.3g} epochs), predicted loss {p['loss']:.4f}"
                     + (f" [{iv[0]:.4f}, {iv[1]:.4f}]" if iv else "") + f" vs standard {p['loss_standard']:.4f}"
                     + (f"; best in {100 * share:.0f}% of draws" if share is not None else ""))
    return lines
