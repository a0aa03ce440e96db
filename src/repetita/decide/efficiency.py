"""Recipes in the planner: measured recipe effects as data-efficiency multipliers with their costs.

Kim, Kotha, Liang and Hashimoto 2025 ("Pre-training under infinite compute") compare recipes by data
efficiency: how many times more data the baseline needs to reach the recipe's loss. The planner takes
that number literally: a recipe with efficiency m trains as if the corpus and every token were worth m
times as much, i.e. its loss at (N, D, U) is the fitted law's loss at (N, m D, m U). What each recipe
costs (the cost model behind the "best recipe" of a budget):

- ``standard``: m = 1, cost 1, serves N.
- ``regularized=m``: cost 1 (the weight-decay search is not counted: it is paid once, on small models).
- ``ensemble:K=m``: K members of N params, each trained on the full token count: K x the training
  compute, K x N served params.
- ``distill:K=m``: a K-member ensemble teacher and one student of the same size: (K + 1) x the compute,
  N served; ``self-distill=m`` (or ``distill=m``): a one-model teacher, 2 x the compute.

Each recipe declares its cost model once, in the recipe registry (``repetita.recipe_registry``); the
names are resolved there, so the law engine itself knows no recipe by name. An unknown name is one line
listing the registered recipes.

The multiplier comes from the user (``--efficiency``) or from a study's report.json, where it is the
median, over the (N, U) cells the recipe shares with the standard recipe, of m_recipe / m_standard, each
m solved from the cell's best loss in the planner's own model (:func:`equivalent_data`): dividing by the
standard recipe's m cancels the law's misfit at that cell.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from repetita import recipe_registry
from repetita.decide.report_schema import BASELINE, EfficiencyRow, efficiency_rows
from repetita.errors import UserError, require
from repetita.laws.data import FLOPS_PER_PARAM_TOKEN


@dataclass(frozen=True)
class RecipeEffect:
    """One recipe as the planner sees it: data efficiency m, training-compute and served-params factors."""

    name: str
    efficiency: float
    train_cost: float = 1.0
    serve_factor: float = 1.0
    source: str = "given"

    def __post_init__(self):
        require(np.isfinite(self.efficiency) and self.efficiency > 0,
                f"recipe {self.name!r}: the data-efficiency multiplier must be a positive number, got {self.efficiency}")
        require(self.train_cost >= 1 and self.serve_factor >= 1,
                f"recipe {self.name!r}: costs must be at least 1 (got {self.train_cost}, {self.serve_factor})")


STANDARD = RecipeEffect("standard", 1.0, source="the fitted law")


def effect(name: str, efficiency: float, source: str = "given") -> RecipeEffect:
    """A recipe's effect with the cost model its registry entry declares (``ensemble:4``: 4 x, 4 x)."""
    train_cost, serve_factor = recipe_registry.cost(name, "--efficiency")
    return RecipeEffect(recipe_registry.canonical(name), efficiency, train_cost, serve_factor, source)


def equivalent_data(fit, loss, params, tokens, unique_tokens, lo: float = 1e-4, hi: float = 1e6) -> np.ndarray:
    """The multiplier m at which the law's loss at (N, m D, m U) equals ``loss``: the inverse of how the
    planner applies a recipe, so a measured m plans back to the measured loss. Bisection in ln m, all
    rows at once; inf where even m = ``hi`` does not reach the loss (the recipe moved the asymptote),
    ``lo`` where m = ``lo`` is still better."""
    from repetita.laws.evaluate import point_theta
    from repetita.laws.law import law_loss
    from repetita.laws.record import estimator

    est = estimator(fit)
    law, theta = est.spec.law_obj, point_theta(est)
    target, n, d, u = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (loss, params, tokens, unique_tokens)))
    shape = target.shape
    target, n, d, u = (v.ravel() for v in (target, n, d, u))

    def f(logm):
        m = np.exp(logm)
        return law_loss(law, theta, n, m * d, m * u)[0] - target

    a, b = np.full(n.shape, np.log(lo)), np.full(n.shape, np.log(hi))
    for _ in range(80):  # 2^-80 of ln(1e10): far below any loss resolution
        mid = 0.5 * (a + b)
        above = f(mid) > 0  # the loss at mid is still above the target: more data needed
        a, b = np.where(above, mid, a), np.where(above, b, mid)
    m = np.exp(0.5 * (a + b))
    m = np.where(f(np.log(hi) * np.ones_like(a)) > 0, np.inf, m)
    return m.reshape(shape)


def parse_efficiency(items) -> list[RecipeEffect]:
    """``["regularized=2.3", "ensemble:4=3.1"]`` -> effects; one line for a malformed or non-positive one."""
    from repetita.cliargs import parse_number

    out = []
    for item in items or []:
        name, sep, value = item.partition("=")
        require(sep and name.strip(), f"--efficiency {item!r}: give NAME=MULTIPLIER (regularized=2.3, ensemble:4=3.1)")
        m = parse_number(value, f"--efficiency {name}")
        require(np.isfinite(m) and m > 0, f"--efficiency {name}: the multiplier must be a positive number, got {value}")
        out.append(effect(name.strip(), m))
    names = [e.name for e in out]
    require(len(set(names)) == len(names), f"--efficiency: a recipe is given twice ({', '.join(names)})")
    return out


def from_report(report: dict, path: str = "report.json") -> tuple[list[RecipeEffect], list]:
    """Multipliers measured by a study (its report.json ``efficiency`` rows, any schema version), and warnings
    about them (the study law's own caveats among them)."""
    from repetita.laws.caveats import of_record

    effects, warnings = measured_effects(efficiency_rows(report, path), path)
    fit = (report.get("fits") or {}).get("data-constrained") or {}
    return effects, warnings + of_record(fit, "the study's law")


def measured_effects(rows: list[EfficiencyRow], path: str = "the study") -> tuple[list[RecipeEffect], list]:
    """Each recipe's multiplier: the median over the (N, U) cells of its ratio to the baseline's, with a
    warning where the cells disagree."""
    std = {(r.params, r.unique_tokens): r.multiplier for r in rows if r.recipe == BASELINE and np.isfinite(r.multiplier)}
    require(std, f"{path}: the study has no {BASELINE} runs with an effective-token value; nothing to compare with")
    members = {r.member_label for r in recipe_registry.REGISTRY.values() if r.member_label}
    ratios: dict[str, list[float]] = {}
    for r in rows:
        if r.recipe == BASELINE or r.recipe in members:  # the baseline itself, and parts of a larger model
            continue
        base = std.get((r.params, r.unique_tokens))
        if base:
            ratios.setdefault(recipe_registry.canonical(r.recipe), []).append(r.multiplier / base)
    from repetita.laws.caveats import Caveat, Kind

    effects, warnings = [], []
    for name, vals in sorted(ratios.items()):
        v = np.asarray(vals, dtype=float)
        if not np.isfinite(v).all():
            warnings.append(Caveat(Kind.MULTIPLIER_VARIES, "some best losses lie below the fitted law's reach (it moved "
                                   "the asymptote); its multiplier uses the cells the law can express", name))
            v = v[np.isfinite(v)]
        if v.size == 0 or np.median(v) <= 0:
            warnings.append(Caveat(Kind.MULTIPLIER_VARIES, "no usable cell; left out", name))
            continue
        spread = f"{v.min():.3g}-{v.max():.3g}" if v.size > 1 else "one cell"
        effects.append(effect(name, float(np.median(v)), f"{path}: median of {v.size} cell(s), {spread}"))
        if v.size > 1 and v.max() / v.min() > 2:
            warnings.append(Caveat(Kind.MULTIPLIER_VARIES, f"the measured multiplier varies {v.max() / v.min():.1f}x "
                                   "across the study's cells; the median hides it", name))
    return effects, warnings


def plan_recipes(fit, effects, computes, unique_tokens: float, *, flops_per_token: float = FLOPS_PER_PARAM_TOKEN,
                 max_params: float | None = None, thetas: np.ndarray | None = None, level: float = 0.95) -> dict:
    """For every budget, each recipe's allocation and predicted loss and the best recipe; with a serving
    cap (``max_params``, on the params served: K x N for an ensemble), the best without the cap and the
    best that fits it. Each recipe's C -> infinity asymptote and data efficiency vs standard.

    With ``thetas`` (parameter draws), a loss interval per recipe and budget and the share of draws in
    which each recipe is the best: the recommendation's own uncertainty.
    """
    from repetita.decide.allocate import check_allocatable
    from repetita.laws.record import estimator

    est = estimator(fit)
    check_allocatable(est)
    C = np.atleast_1d(np.asarray(computes, dtype=float))
    effects = [STANDARD] + [e for e in effects if e.name != "standard"]
    args = (est, effects, C, unique_tokens, flops_per_token, thetas, level)
    per, draws = _evaluate(*args, None)
    out = {"recipes": per, "best": _best(per, draws, C), "max_params": max_params}
    if max_params is not None:
        capped, draws_c = _evaluate(*args, max_params)
        out["recipes_within_cap"] = capped
        out["best_within_cap"] = _best(capped, draws_c, C)
    base = per["standard"]["asymptote"]
    for r in per.values():
        if "error" not in r:
            r["asymptote_gain_vs_standard"] = base - r["asymptote"]
            r["data_efficiency_vs_standard"] = r["efficiency"]  # by the model: the law at m U as C -> infinity
    return out


def _evaluate(est, effects, C, unique_tokens, flops_per_token, thetas, level, max_params):
    from repetita.decide.allocate import N_RANGE, loss_limit, solve
    from repetita.laws.evaluate import point_theta
    from repetita.laws.uncertainty import prediction_interval

    law = est.spec.law_obj
    per, draws = {}, {}
    for e in effects:
        cap = None if max_params is None else max_params / e.serve_factor
        if C.min() / e.train_cost / flops_per_token <= N_RANGE[0] or (cap is not None and cap <= N_RANGE[0]):
            per[e.name] = {"error": "the budget (or the serving cap) is too small for this recipe's members"}
            continue
        kw = {"flops_per_token": flops_per_token, "max_params": cap, "efficiency": e.efficiency}
        r = solve(law, point_theta(est), C / e.train_cost, unique_tokens, **kw)
        rows = [{"compute": float(c), "member_params": float(r["params"][0, j]),
                 "served_params": float(r["params"][0, j] * e.serve_factor), "tokens": float(r["tokens"][0, j]),
                 "epochs": float(r["epochs"][0, j]), "loss": float(r["loss"][0, j]),
                 "at_cap": bool(cap is not None and r["params"][0, j] >= cap * (1 - 1e-6)),
                 "at_search_edge": bool(r["at_edge"][0, j])}
                for j, c in enumerate(C)]
        per[e.name] = {"efficiency": e.efficiency, "train_cost": e.train_cost, "serve_factor": e.serve_factor,
                       "source": e.source, "asymptote": loss_limit(est, unique_tokens, efficiency=e.efficiency),
                       "rows": rows}
        if thetas is not None:
            rs = solve(law, thetas, C / e.train_cost, unique_tokens, **kw)
            q = np.nanquantile(rs["loss"], ((1 - level) / 2, (1 + level) / 2), axis=0)
            for j, row in enumerate(rows):
                row["loss_interval"] = [float(q[0, j]), float(q[1, j])]
            draws[e.name] = rs["loss"]
        for j, row in enumerate(rows):
            # the loss a run will reach: the law's draws (or its point) times the fit's own scatter
            point = draws[e.name][:, j] if e.name in draws else [row["loss"]]
            row["prediction_interval"] = prediction_interval(point, est, level)
    require(any("error" not in r for r in per.values()), "no recipe fits this budget and serving cap")
    return per, draws


def _best(per: dict, draws: dict, C: np.ndarray) -> list[dict]:
    ok = [n for n in per if "error" not in per[n]]
    best = []
    for j, c in enumerate(C):
        loss = {n: per[n]["rows"][j]["loss"] for n in ok}
        name = min(loss, key=loss.get)
        entry = {"compute": float(c), "recipe": name, "loss": loss[name],
                 "loss_standard": per["standard"]["rows"][j]["loss"] if "standard" in ok else None}
        if draws:
            names = list(draws)
            stack = np.stack([draws[n][:, j] for n in names])  # (recipes, draws)
            wins = np.argmin(np.where(np.isfinite(stack), stack, np.inf), axis=0)
            entry["share_best"] = {n: float(np.mean(wins == i)) for i, n in enumerate(names)}
            if "standard" in draws and name in draws:
                # the gain over standard under the same parameter draw (the recipes share the law)
                gain = draws["standard"][:, j] - draws[name][:, j]
                gain = gain[np.isfinite(gain)]
                if gain.size:
                    entry["gain_interval"] = np.quantile(gain, (0.025, 0.975)).tolist()
        best.append(entry)
    return best


# --- Kim et al.'s data-efficiency arithmetic ---------------------------------------------------


def tokens_for_loss(loss, base_loss: float, unique_tokens: float, irreducible: float, exponent: float) -> np.ndarray:
    """Tokens a baseline needs for ``loss`` when its asymptote follows L(D) = E + B D^-alpha through
    (U, base_loss): D = U ((base_loss - E) / (loss - E))^(1/alpha); inf at or below E."""
    require(exponent > 0 and np.isfinite(exponent), f"the data exponent must be positive, got {exponent}")
    require(base_loss > irreducible, f"the baseline asymptote {base_loss} must lie above the irreducible loss {irreducible}")
    gap = np.asarray(loss, dtype=float) - irreducible
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(gap > 0, unique_tokens * ((base_loss - irreducible) / gap) ** (1.0 / exponent), np.inf)


def efficiency_from_asymptotes(asymptotes: dict[str, float], baseline: str, irreducible: float, exponent: float,
                               unique_tokens: float = 1.0) -> dict:
    """Each recipe's asymptote at U as the data its baseline would need: efficiency = D_needed / U.

    Kim et al. 2025 state their headline this way: at 200M tokens the standard recipe reaches 3.75, the
    regularized recipe's asymptote is 3.43 and the joint (regularized + ensemble) recipe's 3.17, and
    the regularized recipe's data-scaling law puts 3.17 at 5.17x the data.
    """
    require(baseline in asymptotes, f"baseline {baseline!r} is not among the asymptotes given ({', '.join(asymptotes)})")
    bad = [n for n, v in asymptotes.items() if not np.isfinite(v)]
    if bad:
        raise UserError(f"asymptote {bad[0]}: the loss must be a finite number")
    require(np.isfinite(irreducible), f"--irreducible must be a finite number, got {irreducible}")
    base = asymptotes[baseline]
    out = {}
    for name, loss in asymptotes.items():
        d = float(tokens_for_loss(loss, base, unique_tokens, irreducible, exponent))
        out[name] = {"asymptote": loss, "tokens_needed": d, "efficiency": d / unique_tokens}
    return out


def implied_exponent(base_loss: float, recipe_loss: float, efficiency: float, irreducible: float) -> float:
    """The data-scaling exponent alpha for which a recipe at ``recipe_loss`` is worth ``efficiency`` x the
    data of a baseline at ``base_loss`` (the inverse of :func:`efficiency_from_asymptotes`)."""
    require(base_loss > recipe_loss > irreducible and efficiency > 1,
            "need baseline > recipe > irreducible loss and an efficiency above 1")
    return float(np.log((base_loss - irreducible) / (recipe_loss - irreducible)) / np.log(efficiency))
