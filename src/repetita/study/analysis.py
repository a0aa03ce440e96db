"""What a study's runs say, as typed results: pure functions from the store's tables, no files, no figures.

``analyse(tidy, results)`` takes the store's tidy rows and run results and returns a :class:`StudyAnalysis`:
the reuse laws fitted to the standard runs up to their turning point, the best loss per recipe and
(N, U), ensemble scaling in K with its fitted power law, the two-step asymptote, every recipe's data
efficiency under the fitted law, the decision for the corpus, and E(K, U) from a reuse recipe.
``repetita.study.report`` renders it; nothing here draws or writes.

Recipe labels come from the recipe registry (``ensemble:4``, ``ensemble member``), the same names
``repetita plan --efficiency`` takes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from repetita.errors import UserError
from repetita.study import recipes as _builtin_recipes  # noqa: F401  (the recipes a study's rows name)


@dataclass(frozen=True)
class StudyAnalysis:
    tidy: pd.DataFrame
    fits: dict  # law name -> fit record (or {"error": ...})
    law: object | None  # the fitted data-constrained LawFit, None when it could not be fitted
    standard: pd.DataFrame  # the standard runs the laws were fitted to (up to their turning point)
    best: pd.DataFrame  # best loss per (recipe label, N, U)
    ensembles: pd.DataFrame  # loss vs members K per (N, U, epochs)
    ensemble_fits: list  # power law in K per (N, U, epochs) with enough K
    two_step: dict
    efficiency: pd.DataFrame
    decision: dict
    reuse: dict | None
    headline: object  # decide.decision.Decision: the report's first screen


def singles(tidy: pd.DataFrame) -> pd.DataFrame:
    """Single-model rows (ensemble members included), averaged over seeds per configuration."""
    df = tidy[tidy["members"] == 1]
    keys = ["recipe", "params", "unique_tokens", "epochs", "lr", "weight_decay"]
    return df.groupby(keys, as_index=False, dropna=False)["loss"].mean()  # runs of your own trainer carry no lr or weight decay


def past_turn(std: pd.DataFrame) -> pd.Series:
    """Which standard runs lie past the best epoch count of their (N, U): the loss turned before them."""
    best = std.groupby(["params", "unique_tokens"])["loss"].transform("idxmin")
    return std["epochs"] > std.loc[best, "epochs"].to_numpy()


def before_turn(single: pd.DataFrame) -> pd.DataFrame:
    """Standard runs up to the best epoch count of each (N, U): the envelope the laws describe.

    Both reuse laws are non-increasing in epochs (an extra epoch is worth at least nothing), which
    is the loss of *tuned* training; runs past the turning point overfit a fixed recipe, and one
    collapsed 64-epoch run can outweigh the rest of the fit (measured on the demo study: R^2 0.31
    with them, see docs/study.md).
    """
    std = single[single["recipe"] == "standard"]
    turned = past_turn(std)
    kept = std[~turned].reset_index(drop=True)
    kept.attrs["excluded"] = int(turned.sum())
    return kept




def _tie(law: str) -> dict:
    """A study has few runs: where the law has both exponents, the data's is tied to the model's (beta = alpha)."""
    from repetita.laws.law import get_law

    return {"beta": "alpha"} if {"alpha", "beta"} <= set(get_law(law).params) else {}


def study_laws() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The registered laws a study fits (``Law.study``): (monotone, fitted up to each (N, U)'s turn; turning,
    whose loss rises past its turn (laws/overfit.py), fitted to every standard run)."""
    from repetita.laws.law import LAWS

    chosen = [law for law in LAWS.values() if law.study]
    return tuple(x.name for x in chosen if x.monotone), tuple(x.name for x in chosen if not x.monotone)
STUDY_HOLDOUT = "kfold:5"
MIN_ROWS_COMPARED = 12  # fewer standard runs than this: 5 folds of 2 rows say nothing


def fit_reuse_laws(tidy: pd.DataFrame) -> tuple[dict, object, pd.DataFrame]:
    """Fit the constant-R* and the N-aware law to the standard runs up to their turn, and the laws that can
    turn (``study_laws``) to all of them (alpha tied to beta: few runs); then score every law by its held-out
    error over all standard runs (``compare_laws``: the data-constrained law against the turning laws, the
    comparison that decides whether it may move the decision), past-turn runs included.

    The N-aware law extends the constant one (r1 = 0, r0 = R_D*): the estimator seeds it from that
    nested fit itself, which matters here because its default grid suits ln U ~ 20 (published runs)
    and can leave every start where R_D*(U) sits on its floor and the gradient in r0, r1 vanishes.
    """
    from repetita.laws.fit import LawFit

    every = singles(tidy)
    every = every[every["recipe"] == "standard"].reset_index(drop=True)
    turned = past_turn(every)
    std = before_turn(every)
    named = [[float(r.params), float(r.unique_tokens), float(r.epochs), float(r.loss)]
             for r in every[turned].itertuples()]
    out: dict = {}
    dc = None
    monotone, turning = study_laws()
    for law in monotone + turning:
        rows = std if law in monotone else every
        try:
            est = LawFit(law, tie=_tie(law)).fit(rows)
            out[law] = est.result() | ({"excluded_past_turn": len(named), "excluded_past_turn_runs": named}
                                       if law in monotone else {"excluded_past_turn": 0})
            dc = est if law == "data-constrained" else dc
        except UserError as exc:
            out[law] = {"error": str(exc)}
    compared = [k for k, v in out.items() if "error" not in v and (k == "data-constrained" or k in turning)]
    for law, score in compare_laws(every, compared, turned).items():
        out[law]["study_holdout"] = score
    return out, dc, std


def compare_laws(every: pd.DataFrame, laws: list[str], turned: pd.Series) -> dict[str, dict]:
    """Held-out error of each law over every standard run (``STUDY_HOLDOUT``): a monotone law is fitted on
    its training folds' runs up to their turn and scored on every held-out run, so the runs past the turn
    count as evidence against it instead of being dropped silently (``turned``: ``past_turn(every)``). {} below
    MIN_ROWS_COMPARED runs."""
    import numpy as np

    from repetita.laws.fit import LawFit
    from repetita.laws.holdout import parse_holdout

    if len(every) < MIN_ROWS_COMPARED or not laws:
        return {}
    monotone, _ = study_laws()
    errors: dict[str, list] = {law: [] for law in laws}
    for _, train, test in parse_holdout(STUDY_HOLDOUT).splits(every):
        for law in laws:
            rows = every.iloc[train]
            rows = before_turn(rows) if law in monotone else rows
            try:
                # unit weights: a fold's fit skips the diagnostics the user reads only of the full fit
                est = LawFit(law, tie=_tie(law)).fit(rows, weights=np.ones(len(rows)))
                pred = est.predict(every.iloc[test])
            except UserError:
                errors[law] = None  # a fold it cannot fit: no comparison for this law
                continue
            if errors[law] is not None:
                errors[law] += [(int(i), float(np.log(p) - np.log(o)))
                                for i, p, o in zip(test, pred, every["loss"].iloc[test], strict=True)]
    out = {}
    for law, errs in errors.items():
        if not errs:
            continue
        e = np.array([x for _, x in errs])
        past = np.array([bool(turned.iloc[i]) for i, _ in errs])
        out[law] = {"holdout": STUDY_HOLDOUT, "rows": int(len(e)), "rmse_log": float(np.sqrt(np.mean(e ** 2))),
                    "past_turn_rows": int(past.sum()),
                    "rmse_log_past_turn": float(np.sqrt(np.mean(e[past] ** 2))) if past.any() else None}
    return out


def best_by_recipe(tidy: pd.DataFrame) -> pd.DataFrame:
    """Lowest loss per (recipe label, N, U): over epochs and, for regularized, over the LR x WD grid.
    Labels are the registry's: an ensemble's members are ``ensemble member`` (the K = 1 point), the
    ensembles ``ensemble:K``."""
    from repetita.recipe_registry import get

    def label(recipe: str, members: int) -> str:
        try:
            return get(recipe).label(members)
        except UserError:  # a recipe this install does not know (a study from a user's own registry)
            return recipe if members == 1 else f"{recipe}:{members}"

    rows = []
    single = singles(tidy)
    for (recipe, n, u), g in single.groupby(["recipe", "params", "unique_tokens"]):
        best = g.loc[g["loss"].idxmin()]
        # single rows of an ensemble run are its members (seed-averaged: the K = 1 point)
        rows.append({"recipe": label(recipe, 1), "params": n, "unique_tokens": u, "loss": best["loss"], "epochs": best["epochs"],
                     "lr": best["lr"], "weight_decay": best["weight_decay"], "members": 1})
    ens = tidy[(tidy["members"] > 1) & (tidy.get("combiner", "logits") == "logits")]
    for (recipe, n, u, m), g in ens.groupby(["recipe", "params", "unique_tokens", "members"]):
        best = g.loc[g["loss"].idxmin()]
        rows.append({"recipe": label(recipe, int(m)), "params": n, "unique_tokens": u, "loss": best["loss"],
                     "epochs": best["epochs"], "lr": best["lr"], "weight_decay": best["weight_decay"], "members": m})
    return pd.DataFrame(rows)


def ensemble_table(tidy: pd.DataFrame) -> pd.DataFrame:
    """Loss vs members K per (N, U, epochs): K = 1 is the mean member of the ensembles."""
    rows = []
    ens = tidy[tidy["recipe"] == "ensemble"]
    for (n, u, k), g in ens.groupby(["params", "unique_tokens", "epochs"]):
        single = g[g["members"] == 1]["loss"].mean()
        rows.append({"params": n, "unique_tokens": u, "epochs": k, "members": 1, "loss": single})
        logits = g[(g["members"] > 1) & (g.get("combiner", "logits") == "logits")]
        for m, gm in logits.groupby("members"):
            rows.append({"params": n, "unique_tokens": u, "epochs": k, "members": m, "loss": gm["loss"].mean()})
    return pd.DataFrame(rows)


def ensemble_fits(table: pd.DataFrame) -> list[dict]:
    """loss(K) = E + A K^-alpha per (N, U, epochs) with at least ``MIN_POINTS`` member counts."""
    from repetita.laws.asymptote import MIN_POINTS, fit_power

    fits = []
    if table.empty:
        return fits
    for (n, u, k), g in table.groupby(["params", "unique_tokens", "epochs"]):
        if g["members"].nunique() >= MIN_POINTS:
            fit = fit_power(g.sort_values("members"), "members")
            nat = fit.natural_params()
            fits.append({"params": n, "unique_tokens": u, "epochs": k, "asymptote": nat["E"], "A": nat["A"],
                         "alpha": nat["alpha"], "r2": fit.r2_})
    return fits


def two_step(table: pd.DataFrame) -> dict:
    from repetita.laws.asymptote import two_step_asymptote

    if table.empty:
        return {"skipped": "no ensemble runs"}
    # one (U, epochs) cell per size: the largest U, at its most common epoch count
    u = table["unique_tokens"].max()
    sub = table[table["unique_tokens"] == u]
    k = sub["epochs"].mode().iloc[0]
    sub = sub[sub["epochs"] == k]
    try:
        res = two_step_asymptote(sub, "members", "params") | {"unique_tokens": u, "epochs": k}
    except UserError as exc:
        return {"skipped": str(exc)}
    # E + A N^-alpha has three parameters: with three sizes the outer fit passes through every point
    # and its E is not identified (any value fits); say so rather than report it as an estimate.
    res["exactly_determined"] = len(res["groups"]) <= 3
    return res


def efficiency(best: pd.DataFrame, fits: dict) -> pd.DataFrame:
    """Fresh tokens each recipe's best loss is worth under the fitted standard law, per unique token."""
    from repetita.laws.worth import data_term, tokens_from_loss

    rec = fits.get("data-constrained", {})
    if "error" in rec or best.empty or not rec:
        return pd.DataFrame()
    out = best.copy()
    e_rest, b, beta = data_term(rec, out["params"].to_numpy())
    out["effective_tokens"] = tokens_from_loss(out["loss"].to_numpy(), e_rest, b, beta)
    out["tokens_per_unique_token"] = out["effective_tokens"] / out["unique_tokens"]
    from repetita.decide.efficiency import equivalent_data

    # the data multiplier m with law(N, m D, m U) = the best loss: how the planner applies a recipe
    out["data_multiplier"] = equivalent_data(rec, out["loss"].to_numpy(), out["params"].to_numpy(),
                                             (out["epochs"] * out["unique_tokens"]).to_numpy(),
                                             out["unique_tokens"].to_numpy())
    return out


def decision(tidy: pd.DataFrame, dc, std: pd.DataFrame, eff: pd.DataFrame, fits: dict) -> dict:
    """What the study says to do on its own corpus (``decide/study.py``); a stated reason when it cannot."""
    from repetita.decide.study import decide, decision_lines

    if dc is None:
        return {"skipped": "the data-constrained law could not be fitted", "lines": []}
    try:
        d = decide(singles(tidy), dc, std, eff.to_dict(orient="records"), fits["data-constrained"])
    except UserError as exc:
        return {"skipped": str(exc), "lines": []}
    return d | {"lines": decision_lines(d)}


def measured_reuse(results: dict[str, dict], history: Callable[[str], list]) -> dict | None:
    """E(K, U) from the study's reuse recipe (``study/reuse_lab.py``), None when it ran none."""
    from repetita.study.reuse_lab import measure

    try:
        return measure(results, history=history)
    except UserError as exc:
        return {"skipped": str(exc), "table": [], "k_star": []}


def analyse(tidy: pd.DataFrame, results: dict[str, dict], history: Callable[[str], list],
            name: str = "study") -> StudyAnalysis:
    """Everything the report shows, from the store's tidy rows, run results and ``history(run_id)``."""
    from repetita.decide.decision import headline

    fits, dc, std = fit_reuse_laws(tidy)
    best = best_by_recipe(tidy)
    ens = ensemble_table(tidy)
    eff = efficiency(best, fits)
    d = decision(tidy, dc, std, eff, fits)
    return StudyAnalysis(tidy=tidy, fits=fits, law=dc, standard=std, best=best, ensembles=ens,
                         ensemble_fits=ensemble_fits(ens), two_step=two_step(ens), efficiency=eff,
                         decision=d, reuse=measured_reuse(results, history),
                         headline=headline(d, singles(tidy), fits, name, replicates=tidy[tidy["members"] == 1]))
