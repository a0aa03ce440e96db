"""Experiment design: the next runs that would settle a data-constrained decision at the least compute.

The decision is what ``repetita plan`` answers at a target: at compute C and U unique tokens, the model
size N*, the epochs K* and the loss there (``target_compute``); or at a fixed size N, the epochs K* and
the loss (``target_params``). Each fitted law carries parameter draws (its Laplace or bootstrap
uncertainty, ``uncertainty.theta_draws``); a candidate run (N, U', K) is worth what observing its loss
would remove from the decision's uncertainty, per FLOP (6 N U' K).

Method: ensemble linearisation (the update of an ensemble Kalman filter). The draws of every law are
pooled, each law's draws weighted by its weight, and give the joint mean and covariance of the
decision ``g`` (log N*, log K*, loss) and of every candidate's predicted log loss ``f_m``. Observing
``f_m`` with noise variance ``s^2`` (the fits' residual scatter in log loss) removes
``Cov(g_j, f_m)^2 / (Var f_m + s^2)`` from ``Var g_j``: within a law this is parameter uncertainty, and
between laws it is discrimination, because where the laws' predictions differ the pooled draws differ,
and in proportion to how much their decisions differ. It is exact for a linear-Gaussian model and a
first-order answer otherwise; the retrospective checks in docs/plan.md measure how well it ranks runs.

A batch is chosen greedily with conditioning: after a run is picked, the joint covariance is updated as
if it had been observed (a rank-one update), so the next pick is valued given the first, and a picked
run is never offered again. All functions are pure and vectorised over draws and candidates.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from repetita.decide.allocate import solve
from repetita.errors import UserError, require
from repetita.laws.data import FLOPS_PER_PARAM_TOKEN
from repetita.laws.law import law_loss

DECISION = ("log_params", "log_epochs", "loss")  # the components of g
EPOCH_GRID = np.geomspace(1.0, 256.0, 97)  # K searched at a fixed size (target_params)


@dataclass(frozen=True)
class Candidates:
    """Feasible runs: model size, unique tokens (a prefix of the corpus), epochs, and their cost in FLOPs."""

    params: np.ndarray
    unique_tokens: np.ndarray
    epochs: np.ndarray
    cost: np.ndarray

    def __len__(self) -> int:
        return len(self.params)

    @property
    def tokens(self) -> np.ndarray:
        return self.unique_tokens * self.epochs

    def take(self, which) -> Candidates:
        """The candidates at ``which`` (indices or a mask)."""
        return Candidates(self.params[which], self.unique_tokens[which], self.epochs[which], self.cost[which])


def decision_candidates(fits: dict, target: Target, budget: float | None, max_run_flops: float | None = None,
                        flops_per_token: float = FLOPS_PER_PARAM_TOKEN) -> tuple[Candidates, list[str]]:
    """Runs that test the decision itself, beside the grid: each law's recommendation at the target when it
    is affordable, else its frontier point at the largest affordable compute (the budget, the per-run cap
    and the target, whichever is least), on the target's U, and where that point lies beyond the law's trust
    region, the best plan on the region's edge. Returns the candidates and what each one is."""
    from repetita.decide.allocate import TRUST_FACTOR, allocate, beyond_trust, supported_allocation

    if target.compute is None:
        return Candidates(*(np.empty(0) for _ in range(4))), []
    cap = min(x for x in (budget, max_run_flops, target.compute) if x is not None)
    rows, what = [], []
    for name, est in fits.items():
        try:
            a = allocate(est, cap, target.unique_tokens, flops_per_token=flops_per_token)
        except UserError:
            continue
        rows.append((a.params, target.unique_tokens, a.epochs, flops_per_token * a.params * a.tokens))
        what.append(f"{name}'s recommendation" if cap >= target.compute else
                    f"{name}'s plan at {cap:.3g} FLOPs, the largest affordable budget on U")
        # where that plan lies beyond the trust region, the edge of the region is the run that tests it
        if beyond_trust(est.region_, a.params, cap, TRUST_FACTOR, a.epochs, a.tokens):
            edge = supported_allocation(est, cap, target.unique_tokens, TRUST_FACTOR, flops_per_token)
            if edge is not None:
                rows.append((edge.params, target.unique_tokens, edge.epochs, flops_per_token * edge.params * edge.tokens))
                what.append(f"the edge of {name}'s trust region at {cap:.3g} FLOPs")
    cols = [np.array([r[i] for r in rows], dtype=float) for i in range(4)] if rows else [np.empty(0)] * 4
    return Candidates(*cols), what


def joined(a: Candidates, b: Candidates) -> Candidates:
    return Candidates(*(np.concatenate([getattr(a, f), getattr(b, f)]) for f in ("params", "unique_tokens", "epochs",
                                                                                    "cost")))


def candidate_grid(sizes, budgets, epochs, *, flops_per_token: float = FLOPS_PER_PARAM_TOKEN,
                   max_run_flops: float | None = None) -> Candidates:
    """Every (N, U', K) of the three lists whose cost ``flops_per_token x N x U' x K`` fits the cap."""
    n, u, k = (np.asarray(v, dtype=float).ravel() for v in np.meshgrid(sizes, budgets, epochs, indexing="ij"))
    require(n.size > 0, "the feasible set is empty: give model sizes, unique-token budgets and epochs")
    require(np.all(np.isfinite(n) & (n > 0) & np.isfinite(u) & (u > 0) & np.isfinite(k) & (k > 0)),
            "model sizes, budgets and epochs must be positive numbers")
    cost = flops_per_token * n * u * k
    keep = np.ones(n.size, dtype=bool) if max_run_flops is None else cost <= max_run_flops
    if not keep.any():
        raise UserError(f"the feasible set is empty after the per-run compute cap of {max_run_flops:.3g} FLOPs "
                        f"(the cheapest candidate costs {cost.min():.3g})")
    return Candidates(n[keep], u[keep], k[keep], cost[keep])


def decision_compute(law, thetas: np.ndarray, compute: float, unique_tokens: float,
                     flops_per_token: float = FLOPS_PER_PARAM_TOKEN) -> np.ndarray:
    """(S, 3): log N*, log K* and the loss at compute C on U unique tokens, per draw (NaN for a draw whose law
    gives no finite loss on the compute line: a draw far in a tail can)."""
    from repetita.decide.allocate import N_RANGE

    out = np.full((len(thetas), 3), np.nan)
    n = np.geomspace(N_RANGE[0], min(N_RANGE[1], compute / flops_per_token), 64)[None, :]
    d = compute / (flops_per_token * n)
    ok = np.isfinite(law_loss(law, thetas, n, d, unique_tokens)).any(axis=1)
    if ok.any():
        plan = solve(law, thetas[ok], [compute], unique_tokens, flops_per_token=flops_per_token)
        out[ok] = np.stack([np.log(plan["params"][:, 0]), np.log(plan["epochs"][:, 0]), plan["loss"][:, 0]], axis=1)
    return out


def curvature(law, theta: np.ndarray, log_params: float, compute: float, unique_tokens: float,
              flops_per_token: float = FLOPS_PER_PARAM_TOKEN, step: float = 0.05) -> float:
    """d^2 L / d(ln N)^2 along the compute line at ln N (central difference): how fast the loss rises as the
    model size misses its optimum. The expected regret of a decision whose ln N* has variance v is about
    h v / 2 (the second-order expansion of the loss about its minimum, where the slope is zero)."""
    n = np.exp(log_params + np.array([-step, 0.0, step]))[None, :]
    loss = law_loss(law, np.asarray(theta)[None, :] if np.ndim(theta) == 1 else theta, n,
                    compute / (flops_per_token * n), unique_tokens)[0]
    return float(max((loss[0] - 2 * loss[1] + loss[2]) / step ** 2, 0.0))


def decision_params(law, thetas: np.ndarray, params: float, unique_tokens: float) -> np.ndarray:
    """(S, 3): log N (fixed), log K* over ``EPOCH_GRID`` and the loss there, per draw."""
    k = EPOCH_GRID[None, :]
    loss = law_loss(law, thetas, params, unique_tokens * k, unique_tokens)
    loss = np.where(np.isfinite(loss), loss, np.inf)
    i = loss.argmin(axis=1)
    rows = np.arange(len(thetas))
    return np.stack([np.full(len(thetas), np.log(params)), np.log(EPOCH_GRID[i]), loss[rows, i]], axis=1)


def predictions(law, thetas: np.ndarray, cand: Candidates) -> np.ndarray:
    """(S, M): each draw's predicted log loss at every candidate."""
    with np.errstate(all="ignore"):
        return np.log(law_loss(law, thetas, cand.params[None, :], cand.tokens[None, :], cand.unique_tokens[None, :]))


# A draw that predicts a loss above e^50 for some candidate lies where no law speaks (Laplace draws of a fit
# to a few runs reach such corners); its squares overflow the moments, so it is dropped.
PLAUSIBLE_LOG_LOSS = 50.0


def plausible(G: np.ndarray, F: np.ndarray) -> np.ndarray:
    """(S,) mask of draws with a finite decision and no absurd prediction (a NaN one only masks that candidate)."""
    with np.errstate(invalid="ignore"):
        return np.isfinite(G).all(axis=1) & ~np.any(np.abs(F) > PLAUSIBLE_LOG_LOSS, axis=1)


def pooled_moments(G: np.ndarray, F: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weighted covariances of the pooled draws: Var(g) (q, q), Cov(g, f) (q, M), Cov(f, f) (M, M)."""
    w = np.asarray(w, dtype=float) / np.sum(w)
    gc, fc = G - w @ G, F - w @ F
    wg, wf = gc * w[:, None], fc * w[:, None]
    return gc.T @ wg, wg.T @ fc, fc.T @ wf


def values(cov_gf: np.ndarray, var_f: np.ndarray, var_g: np.ndarray, noise_var: float,
           counted: np.ndarray | None = None) -> np.ndarray:
    """(M,) expected fraction of each decision component's variance removed by observing a candidate,
    summed over the ``counted`` components that vary (a component fixed by the target, such as N at a
    fixed size, counts for nothing; at a fixed compute K* is a function of N*, so it is not counted twice)."""
    keep = var_g > 1e-12 * max(float(var_g.max()), 1e-300)
    if counted is not None:
        keep &= counted
    red = cov_gf[keep] ** 2 / (var_f[None, :] + noise_var)
    return (red / var_g[keep, None]).sum(axis=0)


def discrimination(means: np.ndarray, variances: np.ndarray, weights: np.ndarray, noise_var: float) -> np.ndarray:
    """(M,) how well a candidate tells the laws apart: sum over pairs of w_a w_b (mu_a - mu_b)^2 /
    (v_a + v_b + 2 s^2), the expected squared z-score between two laws' predictions (``means`` and
    ``variances`` are (L, M) per law)."""
    L = len(means)
    out = np.zeros(means.shape[1])
    for a in range(L):
        for b in range(a + 1, L):
            out += weights[a] * weights[b] * (means[a] - means[b]) ** 2 / (variances[a] + variances[b] + 2 * noise_var)
    return out


@dataclass(frozen=True)
class Pick:
    index: int  # into the candidates
    value: float  # fraction of decision variance removed (given the picks before it)
    value_per_flop: float
    sd_before: np.ndarray  # (q,) decision sds before this pick
    sd_after: np.ndarray  # (q,) expected sds once it is observed
    discrimination: float


MIN_VALUE = 0.005  # a run that removes less than 0.5% of the decision's variance is not worth its compute
# A compute target without a stated budget gets this share of its compute to spend: room for runs at a tenth
# of the decision's scale, where a per-FLOP order spends a fraction of a percent (docs/plan.md).
DEFAULT_BUDGET_SHARE = 0.1
# A decision whose expected regret is below this many nats is settled: a tenth of the smallest seed range
# measured in the demo study (0.018 nats), far below what a run can resolve.
SETTLED_REGRET = 1e-3


def greedy_batch(G: np.ndarray, F: np.ndarray, w: np.ndarray, noise_var: float, cost: np.ndarray, k: int,
                 disc: np.ndarray | None = None, budget: float | None = None,
                 counted: np.ndarray | None = None) -> list[Pick]:
    """The next ``k`` runs, chosen one at a time, each valued given the ones before it (rank-one conditioning
    of the joint covariance); never the same run twice.

    Without ``budget``: by value per FLOP. With a total ``budget`` of FLOPs, the batch that removes the most
    of the decision's variance within it: the better of two greedy passes, one by value per FLOP and one by
    value alone (the modified greedy of budgeted submodular selection, Khuller, Moss and Naor 1999; Krause
    and Guestrin 2005), because per FLOP the cheapest runs always win (a run's value grows far slower than its
    cost) and a budget is then left unspent on runs that cannot move a decision made at a large budget.
    A pass stops when the next run would remove less than ``MIN_VALUE`` of the variance."""
    require(k >= 1, f"k must be >= 1, got {k}")
    require(noise_var > 0, "the noise level must be positive")
    passes = [True] if budget is None else [True, False]
    best = None
    for per_flop in passes:
        picks = _greedy(G, F, w, noise_var, cost, k, disc, budget, counted, per_flop)
        if best is None or sum(p.value for p in picks) > sum(p.value for p in best) + 1e-12:
            best = picks
    return best


def _greedy(G, F, w, noise_var, cost, k, disc, budget, counted, per_flop: bool) -> list[Pick]:
    ok = np.all(np.isfinite(F), axis=0)  # a candidate some draw cannot predict is not offered
    var_g, cov_gf, cov_ff = pooled_moments(G, np.where(ok, F, 0.0), w)
    var_g0 = np.diag(var_g).copy()
    taken = np.zeros(F.shape[1], dtype=bool)
    spent, picks = 0.0, []
    for _ in range(min(k, F.shape[1])):
        v = values(cov_gf, np.diag(cov_ff), var_g0, noise_var, counted)
        score = np.where(ok & ~taken, v / cost if per_flop else v, -np.inf)
        score = np.where(v >= MIN_VALUE, score, -np.inf)
        if budget is not None:
            score = np.where(spent + cost <= budget, score, -np.inf)
        m = int(np.argmax(score))
        if not np.isfinite(score[m]):
            break
        before = np.sqrt(np.maximum(np.diag(var_g), 0))
        s = cov_ff[m, m] + noise_var
        var_g = var_g - np.outer(cov_gf[:, m], cov_gf[:, m]) / s
        cov_gf = cov_gf - np.outer(cov_gf[:, m], cov_ff[m]) / s
        cov_ff = cov_ff - np.outer(cov_ff[:, m], cov_ff[m]) / s
        taken[m] = True
        spent += float(cost[m])
        picks.append(Pick(m, float(v[m]), float(v[m] / cost[m]), before, np.sqrt(np.maximum(np.diag(var_g), 0)),
                          float(disc[m]) if disc is not None else float("nan")))
    return picks


@dataclass(frozen=True)
class Target:
    """The decision to settle: at ``compute`` FLOPs (N* and K*), or at a fixed size ``params`` (K*), on
    ``unique_tokens`` unique tokens."""

    unique_tokens: float
    compute: float | None = None
    params: float | None = None

    def __post_init__(self):
        require((self.compute is None) != (self.params is None), "give the target as --compute C or --params N "
                "(with --unique-tokens U)")
        for name in ("unique_tokens", "compute", "params"):
            v = getattr(self, name)
            require(v is None or (np.isfinite(v) and v > 0), f"target {name} must be a positive number, got {v}")

    def decisions(self, law, thetas, flops_per_token: float) -> np.ndarray:
        if self.compute is not None:
            return decision_compute(law, thetas, self.compute, self.unique_tokens, flops_per_token)
        return decision_params(law, thetas, self.params, self.unique_tokens)


NO_UNCERTAINTY = ("has no parameter uncertainty; refit it with `repetita fit RUNS --law LAW --out FIT.json` "
                  "(Laplace intervals are saved by default; --bootstrap B for resampled ones)")


def law_draws(name: str, est, target: Target, cand: Candidates, n_draws: int, seed: int,
              flops_per_token: float, held: list | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(G (S, 3), F (S, M)) of one fitted law: decisions and candidate predictions under its draws; draws
    whose decision is not finite are dropped. Parameters the fit leaves unidentified (no finite Laplace
    interval) are held at their fitted value and named in ``held``."""
    from repetita.laws.uncertainty import theta_draws

    thetas = theta_draws(est, n_draws, seed=seed, hold=held)
    require(thetas is not None, f"fit {name} {NO_UNCERTAINTY}")
    law = est.spec.law_obj
    G = target.decisions(law, thetas, flops_per_token)
    F = predictions(law, thetas, cand)
    ok = plausible(G, F)
    require(ok.sum() >= 10, f"fit {name}: fewer than 10 of {len(G)} parameter draws give a finite decision and "
            "plausible predictions")
    return G[ok], F[ok]


def suggest(fits: dict, target: Target, cand: Candidates, k: int, *, n_draws: int = 500, seed: int = 0,
            flops_per_token: float = FLOPS_PER_PARAM_TOKEN, budget: float | None = None,
            weights: dict | None = None) -> dict:
    """The next ``k`` runs for the decision at ``target`` (module docstring), from fitted estimators by name."""
    require(k >= 1, f"k must be >= 1, got {k}")
    require(n_draws >= 20, f"draws must be >= 20, got {n_draws}")
    names = list(fits)
    w_law = np.array([(weights or {}).get(n, 1.0) for n in names], dtype=float)
    require(np.all(w_law > 0), "law weights must be positive")
    w_law = w_law / w_law.sum()
    Gs, Fs, sds = [], [], []
    warnings = []
    for i, name in enumerate(names):
        held: list = []
        G, F = law_draws(name, fits[name], target, cand, n_draws, seed + i, flops_per_token, held)
        if held:
            warnings.append(f"{name}: {', '.join(held)} not identified by the fit (no finite interval): held at the "
                            "fitted value in the draws, so runs that would pin them down are not valued for it")
        Gs.append(G)
        Fs.append(F)
        sd = fits[name].residual_log_sd_
        sds.append(sd if sd else np.nan)
    if any(not np.isfinite(s) for s in sds):
        warnings.append("a fit records no residual scatter: the noise of a new run is taken as 1% in log loss")
    noise_var = float(np.nansum(w_law * np.nan_to_num(np.array(sds), nan=0.01) ** 2))
    G = np.concatenate(Gs)
    F = np.concatenate(Fs)
    w = np.concatenate([np.full(len(g), wl / len(g)) for g, wl in zip(Gs, w_law, strict=True)])
    means = np.stack([np.nanmean(f, axis=0) for f in Fs])
    variances = np.stack([np.nanvar(f, axis=0) for f in Fs])
    disc = discrimination(means, variances, w_law, noise_var) if len(names) > 1 else np.zeros(len(cand))
    counted = np.array([target.compute is None, True, True])  # at a fixed compute, log K* = const - log N*
    regret_now = None
    if target.compute is not None:  # expected regret of the decision: h Var(ln N*) / 2, h pooled over the laws
        from repetita.laws.evaluate import point_theta

        h = float(np.sum([wl * curvature(fits[n].spec.law_obj, point_theta(fits[n])[0], float(np.median(g[:, 0])),
                                         target.compute, target.unique_tokens, flops_per_token)
                          for n, g, wl in zip(names, Gs, w_law, strict=True)]))
        var_n = float(w @ (G[:, 0] - w @ G[:, 0]) ** 2)
        regret_now = 0.5 * h * var_n
    if budget is not None and budget < cand.cost.min():
        raise UserError(f"the budget of {budget:.3g} FLOPs is below the cheapest run offered ({cand.cost.min():.3g}): "
                        "raise --total-flops or offer smaller runs")
    picks = greedy_batch(G, F, w, noise_var, cand.cost, k, disc=disc, budget=budget, counted=counted)
    spent = float(sum(cand.cost[p.index] for p in picks))
    settled = None
    if regret_now is not None and regret_now < SETTLED_REGRET:
        settled = (f"the decision is settled to within {regret_now:.2g} nats: that is its expected regret (the loss "
                   f"its model size costs against the best one, under the laws' draws), below {SETTLED_REGRET:g}")
        picks = []
    elif not picks:
        settled = (f"the decision is settled for these candidates: no run offered would remove {100 * MIN_VALUE:g}% "
                   "of its variance (its sd now: " + ", ".join(
                       f"{c} {v:.3g}" for c, v in zip(DECISION, np.sqrt(w @ (G - w @ G) ** 2), strict=True)) + ")")
    unspent = None
    if budget is not None and picks:
        left = budget - spent
        rest = np.setdiff1d(np.arange(len(cand)), [p.index for p in picks])
        why = (f"the run limit ({k}) was reached" if len(picks) == k else
               f"no other run costs at most the {left:.3g} FLOPs left" if not rest.size or cand.cost[rest].min() > left
               else f"no other run within it would remove {100 * MIN_VALUE:g}% of the decision's variance")
        unspent = {"flops": left, "share": left / budget, "why": why}
        if left > 0.5 * budget:
            warnings.append(f"{left:.3g} of the {budget:.3g} FLOPs ({100 * left / budget:.0f}%) are left unspent: {why}")
    elif len(picks) < k and picks:
        warnings.append(f"only {len(picks)} of the {k} runs asked for are worth their compute (each removes at "
                        f"least {100 * MIN_VALUE:g}% of the decision's variance)")
    edge = [p for p in picks if cand.params[p.index] in (cand.params.max(), cand.params.min())]
    if edge:
        warnings.append(f"{len(edge)} suggested run(s) sit at the edge of the sizes offered: offer sizes beyond "
                        "them to see whether a run there would be worth more")
    per_law = {n: {c: _band(g[:, j], c) for j, c in enumerate(DECISION)} for n, g in zip(names, Gs, strict=True)}
    from repetita.decide.allocate import outside_evidence

    for n, d in per_law.items():  # the decision each law makes, against the runs it was fitted to
        size = d["log_params"]["median"]
        tokens = d["log_epochs"]["median"] * target.unique_tokens
        beyond = outside_evidence(fits[n].region_, size, tokens, target.unique_tokens,
                                  target.compute or flops_per_token * size * tokens)
        if beyond:
            warnings.append(f"{n}: the decision lies outside the fitted runs ({'; '.join(beyond)})")
    if target.params is not None:
        edge_laws = [n for n, g in zip(names, Gs, strict=True) if np.median(g[:, 1]) >= np.log(EPOCH_GRID[-1]) - 1e-9]
        if edge_laws:
            warnings.append(f"{', '.join(edge_laws)}: K* is the largest epoch count searched ({EPOCH_GRID[-1]:g}): the "
                            "law's loss never turns up with epochs, so only the loss part of the decision is informative")
    return {
        "target": {"compute": target.compute, "params": target.params, "unique_tokens": target.unique_tokens},
        "method": "ensemble linearisation: Kalman update of the pooled parameter draws of every law (weighted)",
        "laws": names, "law_weights": dict(zip(names, w_law.tolist(), strict=True)), "draws": int(n_draws),
        "noise_log_sd": float(np.sqrt(noise_var)), "candidates": len(cand), "decision_now": per_law,
        "pooled_sd": dict(zip(DECISION, np.sqrt(w @ (G - w @ G) ** 2).tolist(), strict=True)),
        "runs": [{"params": float(cand.params[p.index]), "unique_tokens": float(cand.unique_tokens[p.index]),
                  "epochs": float(cand.epochs[p.index]), "tokens": float(cand.tokens[p.index]),
                  "flops": float(cand.cost[p.index]), "value": p.value, "value_per_exaflop": p.value_per_flop * 1e18,
                  "sd_before": dict(zip(DECISION, p.sd_before.tolist(), strict=True)),
                  "sd_after": dict(zip(DECISION, p.sd_after.tolist(), strict=True)),
                  "discrimination": p.discrimination} for p in picks],
        "total_flops": spent, "budget": budget, "unspent": unspent, "settled": settled,
        "expected_regret": None if regret_now is None else {
            "now": regret_now, "after": regret_now * (picks[-1].sd_after[0] ** 2 / max(picks[0].sd_before[0] ** 2, 1e-300))
            if picks else regret_now},
        "selection": ("per FLOP" if budget is None else "the better of per FLOP and by value, within the budget"),
        "warnings": warnings,
    }


def _band(x: np.ndarray, component: str) -> dict:
    lo, med, hi = np.percentile(x, [2.5, 50, 97.5])
    if component.startswith("log_"):
        return {"median": float(np.exp(med)), "interval": [float(np.exp(lo)), float(np.exp(hi))]}
    return {"median": float(med), "interval": [float(lo), float(hi)]}
