"""What to train for a compute budget on a fixed corpus, with every law given: the typed result of
``repetita plan --compute`` (JSON only at the edge, ``PlanResult.to_json``).

With several laws the headline decision is the law the held-out errors favour, by stacking of predictive
distributions (Yao et al. 2018; ``stacking``) where every fit file carries its held-out rows, else by
pseudo-BMA weights: each law's held-out log residuals under a normal model with its own RMSE give an
expected log predictive density, ELPD = -n/2 (ln(2 pi RMSE^2) + 1), and w_k is proportional to
exp(ELPD_k). Either needs every law fitted with the same ``--holdout``; otherwise the first law leads and
the result says so. Either way the headline interval spans the laws' disagreement: the union of the
prediction intervals of the laws with weight >= 0.05 (of every law without weights), and each law's
own decision is kept beside it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from repetita.cliargs import format_quantity
from repetita.decide.allocate import Allocation, Frontier, FrontierRow, Supported
from repetita.decide.engine import Settled
from repetita.errors import UserError
from repetita.laws.data import FLOPS_PER_PARAM_TOKEN

MIN_WEIGHT = 0.05  # laws below this pseudo-BMA weight leave the headline interval


@dataclass(frozen=True)
class LawChoice:
    """Which law leads the decision across several fitted laws, how it was chosen, and their spread."""

    law: str
    method: str  # "held-out favoured (pseudo-BMA)" | "only law" | "first law (no common held-out error)"
    params: float
    tokens: float
    epochs: float
    loss: float
    loss_interval: list[float] | None  # 95% prediction interval widened to the laws' disagreement
    params_range: list[float]
    epochs_range: list[float]
    weights: dict[str, float] | None


@dataclass(frozen=True)
class LawPlan:
    """One law's answer: its allocation (one budget) or frontier (several), intervals, warnings, holdout."""

    allocation: Allocation | None
    frontier: Frontier | None
    intervals: dict | None
    warnings: list[str]
    fit_warnings: list[str]
    holdout: dict | None
    beyond: str | None = None  # why this law's single-budget plan lies beyond the trust region
    supported: Supported | None = None  # then: its best plan inside the region (None: there is none)
    # a frontier's allocation at its largest budget (what the contour figure draws); not part of the JSON
    at_largest: Allocation | None = None

    def to_dict(self) -> dict:
        base = self.allocation.to_dict() if self.allocation is not None else self.frontier.to_dict()
        holdout = {k: v for k, v in self.holdout.items() if k != "rows"} if self.holdout else None
        extra = {"intervals": self.intervals, "holdout": holdout, "beyond_trust": self.beyond,
                 "supported": asdict(self.supported) if self.supported else None}
        return base | {k: v for k, v in extra.items() if v is not None} | {
            "warnings": self.warnings, "fit_warnings": self.fit_warnings}


@dataclass(frozen=True)
class PlanResult:
    """Every law's allocation (or frontier), the headline, the comparison, recipes and the caveats."""

    laws: dict[str, LawPlan]
    warnings: list[str]
    decision: list[str]
    headline: LawChoice | None = None
    comparison: dict | None = None
    frontier: list[FrontierRow] | None = None
    recipes: dict | None = None
    measured_k_star: dict | None = None
    caveats: list = field(default_factory=list)  # the warnings as laws.caveats.Caveat, typed by kind
    settled: Settled | None = None  # the decision after the measured runs had their say (decide/engine.py)

    def to_json(self) -> dict:
        out = {"laws": {k: v.to_dict() for k, v in self.laws.items()}, "warnings": self.warnings,
               "caveats": [c.to_dict() for c in self.caveats], "decision": self.decision}
        if self.settled is not None:
            d = self.settled
            out["settled"] = {k: getattr(d, k) for k in ("source", "recipe", "params", "epochs", "loss", "interval",
                                                         "why")} | {"best": asdict(d.best) if d.best else None}
        for key in ("comparison", "recipes", "measured_k_star"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        if self.frontier is not None:
            out["frontier"] = [asdict(r) for r in self.frontier]
        if self.headline is not None:
            h = self.headline
            out["headline"] = asdict(h)
            out["allocation"] = {"params": h.params, "tokens": h.tokens, "epochs": h.epochs, "loss": h.loss,
                                 "law": h.law, "method": h.method} | (
                {"intervals": self.laws[h.law].intervals} if self.laws[h.law].intervals else {})
        return out


def draws(est, n: int = 200):
    """Parameter draws for intervals, or (None, why not)."""
    from repetita.laws.uncertainty import theta_draws

    try:
        return theta_draws(est, n), None
    except UserError as exc:
        return None, str(exc)


def pseudo_bma(laws: dict[str, LawPlan]) -> tuple[dict[str, float] | None, str | None]:
    """Weights from held-out errors when every law carries one of the same holdout; (None, spec or None)."""
    held = {k: r.holdout for k, r in laws.items() if r.holdout}
    specs = {h.get("spec") for h in held.values()}
    if len(laws) < 2 or len(held) != len(laws) or len(specs) != 1:
        return None, None
    elpd = {k: -0.5 * h["n"] * (np.log(2 * np.pi * max(h["rmse_log"], 1e-12) ** 2) + 1) for k, h in held.items()}
    top = max(elpd.values())
    w = {k: float(np.exp(v - top)) for k, v in elpd.items()}
    total = sum(w.values())
    return {k: v / total for k, v in w.items()}, next(iter(specs))


STACK_ITERATIONS = 500


def stacking(laws: dict[str, LawPlan]) -> dict[str, float] | None:
    """Stacking of predictive distributions (Yao, Vehtari, Simpson and Gelman 2018): the weights w on the
    simplex that maximise sum_i log sum_k w_k p_k(y_i) over the held-out rows, each law's density of row i
    normal on the log scale with its own held-out RMSE. Unlike pseudo-BMA, which multiplies the laws'
    whole-table likelihoods and so hands one law nearly all the weight (for the data-constrained, reuse and
    overfit-1 laws fitted to datablations with kfold:5: 0.0015, 0.998 and 2e-19, where stacking gives 7e-9,
    0.948 and 0.052), it keeps a law that predicts some rows best. Needs every law's held-out rows, matched
    by (split, row); None otherwise. Solved by the fixed-point (EM) update of mixture weights."""
    held = {k: r.holdout for k, r in laws.items()}
    if len(laws) < 2 or not all(h and isinstance(h.get("rows"), list) and h["rows"] for h in held.values()):
        return None
    keyed = [{(r.get("split"), r.get("row")): r.get("log_error") for r in h["rows"] if isinstance(r, dict)}
             for h in held.values()]
    keys = sorted(set.intersection(*(set(k) for k in keyed)), key=str)
    if len(keys) < 2 or any(len(k) != len(keys) for k in keyed):
        return None  # not the same held-out rows: the laws were not fitted like for like
    err = np.array([[float(k[key]) for key in keys] for k in keyed])  # laws x rows
    if not np.isfinite(err).all():
        return None
    sd = np.maximum(np.sqrt(np.mean(err ** 2, axis=1)), 1e-12)[:, None]
    logp = -0.5 * np.log(2 * np.pi * sd ** 2) - 0.5 * (err / sd) ** 2
    dens = np.exp(logp - logp.max(axis=0))  # per row: a common factor leaves the weights unchanged
    w = np.full(len(laws), 1.0 / len(laws))
    for _ in range(STACK_ITERATIONS):
        mix = w @ dens
        w = w * (dens / mix).mean(axis=1)
        w = w / w.sum()
    return {k: float(v) for k, v in zip(laws, w, strict=True)}


def choose_law(laws: dict[str, LawPlan]) -> LawChoice:
    """The decision to read first (module docstring); every law must hold an allocation (one budget)."""
    weights, method = stacking(laws), "held-out stacking (Yao et al. 2018)"
    if weights is None:
        weights, method = pseudo_bma(laws)[0], "held-out favoured (pseudo-BMA)"
    if weights:
        lead = max(weights, key=weights.get)
        counted = [k for k, w in weights.items() if w >= MIN_WEIGHT]
    else:
        lead = next(iter(laws))
        method = "only law" if len(laws) == 1 else "first law (no common held-out error to weigh the laws)"
        counted = list(laws)
    bands = []
    for k in counted:
        a = laws[k].allocation
        pi = (laws[k].intervals or {}).get("loss_prediction") or a.loss_prediction
        bands.append(pi if pi else [a.loss, a.loss])
    n = [laws[k].allocation.params for k in counted]
    e = [laws[k].allocation.epochs for k in counted]
    r = laws[lead].allocation
    return LawChoice(lead, method, r.params, r.tokens, r.epochs, r.loss,
                    [float(min(b[0] for b in bands)), float(max(b[1] for b in bands))] if bands else None,
                    [float(min(n)), float(max(n))], [float(min(e)), float(max(e))], weights)


def compare_laws(laws: dict) -> dict:
    """Which law the held-out errors favour (same holdout only) and whether the decision depends on the law."""
    weights, spec = pseudo_bma(laws)
    n = np.array([r.allocation.params for r in laws.values()])
    k = np.array([r.allocation.epochs for r in laws.values()])
    changes = bool(n.max() / n.min() > 1.1 or k.max() / k.min() > 1.1)
    return {"favoured_by_holdout": max(weights, key=weights.get) if weights else None, "holdout": spec,
            "weights": weights, "decision_changes": changes,
            "spread": {"params": [float(n.min()), float(n.max())], "epochs": [float(k.min()), float(k.max())]}}


def regret_table(ests: list, laws: dict[str, LawPlan]) -> dict[str, dict[str, float]]:
    """regret[i][j]: how much higher law j predicts the loss of law i's decision than of its own (nats, >= 0
    up to the search tolerance). A decision whose worst regret is small is safe whichever law is right."""
    from repetita.laws.evaluate import point_theta
    from repetita.laws.law import law_loss

    out = {}
    for i, _, _ in ests:
        a = laws[i].allocation
        out[i] = {j: float(law_loss(est.spec.law_obj, point_theta(est), a.params, a.tokens, a.unique_tokens)[0, 0]
                           - laws[j].allocation.loss) for j, est, _ in ests if j != i}
    return out


def regret_lines(table: dict[str, dict[str, float]], laws: dict[str, LawPlan]) -> list[str]:
    """Each law's decision with its worst regret under the others, and the minimax-regret law."""
    worst = {i: max(r.values()) for i, r in table.items()}
    lines = ["  each law's decision, and its worst regret under the others:"]
    for i in table:
        a, j = laws[i].allocation, max(table[i], key=table[i].get)
        lines.append(f"    {i}: {a.params:.3g} params x {a.epochs:.3g} epochs, loss {a.loss:.4f}; regret "
                     f"{worst[i]:.4f} under {j}")
    best = min(worst, key=worst.get)
    lines.append(f"    least worst-case regret: {best} ({worst[best]:.4f} nats)")
    return lines


def plan_laws(records: list[tuple[str, dict]], budgets, u: float, *, flops_per_token: float = FLOPS_PER_PARAM_TOKEN,
              max_params: float | None = None, wall_gain: float = 0.01,
              trust: float | None = None) -> tuple[dict[str, LawPlan], list, list]:
    """Each law's allocation (one budget, with intervals) or frontier (several): (laws, estimators, caveats),
    the caveats typed (laws.caveats): the plan's own notes and each fit's diagnostics."""
    from repetita.decide.allocate import (
        TRUST_FACTOR,
        allocate,
        allocation_intervals,
        beyond_trust,
        frontier,
        supported_allocation,
    )
    from repetita.laws.caveats import Caveat, Kind
    from repetita.laws.record import estimator, same_data

    kw = {"flops_per_token": flops_per_token, "max_params": max_params}
    laws, ests = {}, []
    differ = same_data(dict(records))
    if differ:  # weights, regrets and a pooled interval of laws fitted to different runs compare nothing
        raise UserError(differ[0].replace("their decisions are compared, not pooled", "plan compares laws only "
                                          "when they were fitted to the same runs; plan each file on its own"))
    caveats = []
    for path, record in records:
        est = estimator(record)
        name = f"{path} ({est.law})"
        thetas, why = draws(est)
        ests.append((name, est, thetas))
        allocation = front = intervals = untrusted = supported = at_largest = None
        if len(budgets) > 1:
            front = frontier(est, budgets, u, wall_gain=wall_gain, thetas=thetas, trust=trust or TRUST_FACTOR, **kw)
            points, edge = front.rows, any(r.at_search_edge for r in front.rows)
            at_largest = allocate(est, float(budgets[-1]), u, **kw)
        else:
            allocation = allocate(est, float(budgets[0]), u, **kw)
            untrusted = beyond_trust(est.region_, allocation.params, allocation.compute,
                                     trust or TRUST_FACTOR, allocation.epochs, allocation.tokens)
            if untrusted:
                supported = supported_allocation(est, float(budgets[0]), u, trust or TRUST_FACTOR, flops_per_token)
            if thetas is not None:
                intervals = allocation_intervals(est, float(budgets[0]), u, thetas=thetas, **kw)
            points, edge = [allocation], allocation.at_search_edge
        kinds = [(Kind.NO_INTERVAL, why)] if why else []
        beyond = sorted({w for r in points for w in r.outside_evidence})
        if beyond:
            kinds.append((Kind.OUTSIDE_RUNS, "the decision lies outside the runs the fit rests on: " + "; ".join(beyond)
                          + "; read its intervals as too narrow there (the law benchmark's coverage is 0.90-1.00 for "
                          "size, compute and budget extrapolation on the datablations tables, 0.3-0.9 past the "
                          "fitted epochs, down to 0.17-0.33 on the 48 curve finals)"))
        if edge:
            kinds.append((Kind.SEARCH_EDGE, "the optimum lies at the edge of the model sizes searched (or at "
                          "--max-params)"))
        flat = [r.compute for r in points if r.size_undetermined]
        if flat:
            kinds.append((Kind.SIZE_UNDETERMINED, f"from C = {min(flat):.3g} the predicted loss is flat in N along "
                          "the compute line (10% either way changes it by < 1e-12): the loss is decided, the model "
                          "size and epochs are not"))
        law_obj = est.spec.law_obj
        if law_obj.monotone and not np.isfinite(law_obj.repetition(est.params_, u)):
            kinds.append((Kind.NO_REPETITION, "this law has no repetition penalty: the allocation is the naive "
                          "Chinchilla one, as if every token were fresh"))
        notes = [t for _, t in kinds]
        holdout = None
        if est.holdout_ and "rmse_log" in est.holdout_:
            rows = est.holdout_.get("rows")
            holdout = {"spec": est.holdout_.get("spec"), "rmse_log": est.holdout_["rmse_log"],
                       "n": len(rows) if isinstance(rows, list) else int(rows or 0),
                       "rows": [{k: r.get(k) for k in ("split", "row", "log_error")} for r in rows
                                if isinstance(r, dict)] if isinstance(rows, list) else None}
        plan = LawPlan(allocation, front, intervals, notes, list(est.warnings_), holdout, untrusted,
                       supported, at_largest)
        laws[name] = plan
        caveats += [Caveat(k, t, path) for k, t in kinds]
        caveats += [Caveat(c.kind, c.text, path, c.split) for c in est.caveats_]
    return laws, ests, caveats


def measured_k_star_line(path: str, u: float, ests: dict) -> dict:
    """A measured K*(U) law (``repetita reuse --out``) beside each law's own K* at this U."""
    from repetita.io import read_json
    from repetita.laws.reuse import law_k_star, measured_k_star

    m = measured_k_star(read_json(path, "reuse file"), u)
    laws = {}
    for name, est in ests.items():
        rd = est.spec.law_obj.repetition(est.params_, u) if est.spec.law_obj.rd_star else np.inf
        laws[name] = float(law_k_star(rd, m["lambda"])[0]) if np.isfinite(rd) else None
    said = ", ".join(f"{n.split(' ')[0]}: {k:.3g}" for n, k in laws.items() if k is not None)
    line = (f"measured K*(U = {u:.4g}; lambda {m['lambda']:g}) = {m['k_star']:.3g} [{m['interval'][0]:.3g}, "
            f"{m['interval'][1]:.3g}]" + (" (extrapolated in U)" if m["extrapolated"] else "")
            + (f"; the laws' own K*: {said}" if said else ""))
    return m | {"laws": laws, "line": line}



def decision_lines(budgets, u, first: LawPlan, recipes: dict | None, cap, disagree: bool = False) -> list[str]:
    """The answer first: what to train (and with which recipe), the loss and how sure it is; a plan beyond
    the trust region is replaced by the best plan inside it (``disagree``: the laws' plans differ)."""
    lines = []
    a = first.allocation
    seen = (a.evidence or {}).get("epochs") if a is not None else None
    if a is not None and seen is not None and seen <= 1.0 + 1e-9 and a.epochs > 1.01:
        # a fit on one-epoch runs cannot measure what repetition is worth (R_D* is its start value): no number
        lines.append(f"decision withheld: the law was fitted on one-epoch runs only, so what repeating a token is "
                     f"worth is not measured, and its plan here repeats U = {u:.4g} {a.epochs:.3g} times; fit a law "
                     "to runs that repeat their data (repetita suggest names which), or plan a budget that needs "
                     "at most one epoch")
        return lines
    if first.allocation is not None and first.beyond:
        a, b = first.allocation, first.supported
        said = ("the laws disagree beyond the runs" if disagree else "this law's plan lies beyond the runs")
        lines.append(f"decision: {said}: its optimum, {a.params:.3g} params on {a.tokens:.3g} tokens ({a.epochs:.3g} "
                     f"epochs), is {first.beyond}; " + (
                         f"best supported: train N = {b.params:.4g} params on D = {b.tokens:.4g} tokens ({b.epochs:.3g} "
                         f"epochs of U = {u:.4g}); predicted loss {b.loss:.4f}"
                         + (f" [95% prediction interval {b.loss_prediction[0]:.4f}-{b.loss_prediction[1]:.4f}]"
                            if b.loss_prediction else "")
                         + ", the lowest this law predicts inside the trust region (--trust F widens it)" if b else
                         "no model size at this budget stays inside the trust region: decision withheld (--trust F "
                         "widens it; a smaller budget, or runs nearer this one, would settle it)"))
    elif first.allocation is not None:
        a, iv = first.allocation, first.intervals
        pi = (iv or {}).get("loss_prediction") or a.loss_prediction
        sure = (f" [95% prediction interval {pi[0]:.4f}-{pi[1]:.4f}]" if pi else "") + ((
            f" [{100 * iv['level']:g}% of the law's mean: {iv['loss'][0]:.4f}-{iv['loss'][1]:.4f}; "
            f"N* {iv['params'][0]:.3g}-{iv['params'][1]:.3g}, K* {iv['epochs'][0]:.3g}-{iv['epochs'][1]:.3g}]")
            if iv else " (no parameter interval)")
        lines.append(f"decision: train N* = {a.params:.4g} params on D* = {a.tokens:.4g} tokens "
                     f"({a.epochs:.3g} epochs of U = {u:.4g}); predicted loss {a.loss:.4f}{sure}")
    else:
        f = first.frontier
        limit = (f"lowest {f.loss_limit:.4f} on this frontier; this law overfits as C grows"
                 if f.loss_limit_is else f"limit {f.loss_limit:.4f} as C -> infinity")
        held = [r for r in f.rows if r.withheld]
        if held:  # the rows that are no plan: say where the supported ones end, never a size beyond it
            top = next((r for r in f.rows if r.compute == f.supported_up_to), None)
            lines.append(f"decision: on U = {u:.4g} plans are supported up to C = {f.supported_up_to:.3g} (loss "
                         f"{top.loss:.4f} there); from C = {held[0].compute:.3g} no better plan: spend at most "
                         f"{f.supported_up_to:.3g} ({held[0].withheld})" if top else
                         f"decision: on U = {u:.4g} no budget of this range has a supported plan ({held[0].withheld})")
        lines.append(f"{'  the frontier: ' if held else 'decision: '}on U = {u:.4g} the loss reaches "
                     f"{f.rows[-1].loss:.4f} at C = {budgets[-1]:.3g} ({limit}); "
                     + (f"beyond C = {f.data_wall:.3g} another 10x of compute buys < {f.wall_gain:g} nats: "
                        "more data, not compute, is what helps" if f.data_wall else "no data wall in this range"))
        if f.spend_at_most:
            lines.append(f"  the loss is lowest at C = {f.spend_at_most:.3g}: larger budgets overfit this corpus "
                         "under this law (more epochs past its turn, or a larger model it cannot feed); spend at "
                         "most that, or add data")
    if recipes:
        for key, label in (("best", "recipe"), ("best_within_cap", f"within the serving cap ({cap:.3g} params)" if cap else "")):
            if key not in recipes:
                continue
            best, per = recipes[key], recipes["recipes" if key == "best" else "recipes_within_cap"]
            names = [b["recipe"] for b in best]
            b = best[-1]
            row = next(x for x in per[b["recipe"]]["rows"] if x["compute"] == b["compute"])
            share = b.get("share_best", {}).get(b["recipe"])
            where = "" if len(budgets) == 1 else f" at C = {b['compute']:.3g}"
            lines.append(f"{label}: {b['recipe']}{where}: {row['served_params']:.3g} params served "
                         f"({row['member_params']:.3g} per model), {row['epochs']:.3g} epochs, loss {b['loss']:.4f} "
                         f"(standard {b['loss_standard']:.4f})"
                         + (f"; best in {100 * share:.0f}% of the fit's draws" if share is not None else ""))
            if len(set(names)) > 1:
                changes = [f"{names[i]} from C = {best[i]['compute']:.3g}" for i in range(1, len(names)) if names[i] != names[i - 1]]
                lines.append(f"  the best recipe changes with the budget: {names[0]} first, then " + ", ".join(changes))
    return lines


def settle_plan(records, ests, laws: dict[str, LawPlan], head: LawChoice, compute: float, u: float) -> Settled | None:
    """The lead law's single-budget plan settled against the runs its fit file carries (decide/engine.py):
    inside the trust region its own optimum, beyond it the best plan inside (``LawPlan.supported``). None
    when the fit file carries no runs (written before runs were stored, or a table without N, D, U)."""
    from repetita.decide.engine import Proposal, law_problem, predictor, settle, table_runs
    from repetita.decide.measured import seed_noise

    name, est, _ = next(e for e in ests if e[0] == head.law)
    runs = table_runs(est.runs_)
    if not runs:
        return None
    record = dict(zip([e[0] for e in ests], [r for _, r in records], strict=True))[name]
    lp = laws[name]
    a, b = lp.allocation, lp.supported
    pi = (lp.intervals or {}).get("loss_prediction") or a.loss_prediction
    if lp.beyond and b is not None:
        proposal = Proposal(name, "standard", b.params, b.epochs, b.loss, b.loss_prediction, law_problem(record),
                            predict=predictor(est, u))
    else:
        proposal = Proposal(name, "standard", a.params, a.epochs, a.loss, pi, law_problem(record), lp.beyond,
                            predictor(est, u))
    return settle(proposal, runs, u, compute, seed_noise(runs)[0])


def settled_line(d: Settled, u: float) -> str:
    """The decision line when the runs, not the law, settle it."""
    if d.source == "withheld":
        return f"decision withheld: {d.why}"
    b = d.best
    return (f"decision: the runs decide: train N = {b.params:.4g} params on D = {b.epochs * u:.4g} "
            f"tokens ({b.epochs:.3g} epochs of U = {u:.4g}), the best run measured at this U within the budget "
            f"(loss {b.loss:.4f}); {d.why}")


def plan_compute(records: list[tuple[str, dict]], budgets, u: float, *, flops_per_token: float = FLOPS_PER_PARAM_TOKEN,
                 max_params: float | None = None, wall_gain: float = 0.01, effects=(), effect_warnings=(),
                 reuse_file: str | None = None, trust: float | None = None) -> tuple[PlanResult, list]:
    """The whole ``plan --compute`` answer; also returns the (name, estimator, draws) of each law.
    ``trust``: the trust-region factor of a frontier (allocate.TRUST_FACTOR by default)."""
    from repetita.decide.efficiency import plan_recipes
    from repetita.laws.caveats import Caveat, Kind

    laws, ests, caveats = plan_laws(records, budgets, u, flops_per_token=flops_per_token,
                                    max_params=max_params, wall_gain=wall_gain, trust=trust)
    said = {w for r in laws.values() for w in r.fit_warnings}
    caveats += [c if isinstance(c, Caveat) else Caveat(Kind.OTHER, str(c)) for c in effect_warnings
                if getattr(c, "text", c) not in said]  # a fit's diagnostic is said once
    warnings = [c.line for c in caveats]
    single = len(budgets) == 1
    head = choose_law(laws) if single else None
    first = laws[head.law] if head else next(iter(laws.values()))
    recipes = None
    if effects:  # recipes on the law that leads the decision
        name, est, thetas = next((e for e in ests if head and e[0] == head.law), ests[0])
        recipes = plan_recipes(est, list(effects), budgets, u, thetas=thetas, flops_per_token=flops_per_token,
                               max_params=max_params) | {"law": name}
    comparison = compare_laws(laws) if len(laws) > 1 and single else None
    lines = decision_lines(budgets, u, first, recipes, max_params,
                           disagree=bool(comparison and comparison["decision_changes"]))
    if comparison:
        table = regret_table(ests, laws)
        worst = {i: max(r.values()) for i, r in table.items()}
        comparison |= {"regret": table, "minimax_regret": min(worst, key=worst.get)}
    if head and len(laws) > 1:
        lines[0] += f" -- {head.method}: {head.law}"
        lines.append(f"  across the laws{' weighed' if head.weights else ''}: loss {head.loss_interval[0]:.4f}-"
                     f"{head.loss_interval[1]:.4f}, N* {head.params_range[0]:.3g}-{head.params_range[1]:.3g}, "
                     f"K* {head.epochs_range[0]:.3g}-{head.epochs_range[1]:.3g}")
        lines += regret_lines(comparison["regret"], laws)
    settled = settle_plan(records, ests, laws, head, float(budgets[0]), u) if head else None
    if settled is not None and settled.source != "law":
        lines[0] = settled_line(settled, u)
    elif settled is not None and settled.best is not None:
        b, p = settled.best, settled.proposal
        gain = p.predict(b.params, b.epochs)[0] - p.loss if p.predict else None
        lines.insert(1, f"  best run measured at this U within C: {format_quantity(b.params)} params x {b.epochs:.3g} "
                        f"epochs, loss {b.loss:.4f}" + (f"; the law expects its plan to beat it by {gain:.4f} nats "
                                                        "(in its own terms)" if gain is not None else ""))
    elif settled is None and head is not None:
        lines.insert(1, "  no run of the fitted table is stored in the fit file: the decision rests on the law "
                        "alone (refit to store them)")
    measured = None
    if reuse_file:
        measured = measured_k_star_line(reuse_file, u, {n: e for n, e, _ in ests})
        lines.append(measured["line"])
    return PlanResult(laws, warnings, lines, head, comparison,
                      None if single else first.frontier.rows, recipes, measured, caveats, settled), ests
