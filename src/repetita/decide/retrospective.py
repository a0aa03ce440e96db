"""Retrospective check of experiment design: replay a finished grid in different orders.

Pool-based, as in active-learning benchmarks: every run of a published grid is in the pool with its
measured loss hidden. All orders start from the same cheapest runs (enough to fit). At each step an
order picks one more run from the pool, its loss is revealed, the law is refitted, and the plan at the
target is remade. The measure is the compute spent until the plan (N*, K* and predicted loss) is
within ``tol`` of the reference plan and stays there. Orders compared:

- ``suggest``: the run ``design.greedy_batch`` values most per FLOP, from the current fit's Laplace draws;
- ``suggest-doubling``: the run valued most among those that cost no more than everything spent so far
  (each step may at most double the compute): value per FLOP favours the cheapest runs for ever, while a
  decision at a large budget often rests on the large runs (docs/plan.md);
- ``suggest-budget``: the run valued most among those costing at most a tenth of the decision's compute,
  ``repetita suggest``'s default budget (for one run at a time, its better-of-two-passes batch is the
  pass by value);
- ``random``: a seeded random permutation of the pool (``seeds`` of them);
- ``cheapest``: cheapest first, the way grids are usually run.

Refits are warm-started and run for every order at once: each order is a row-weight vector over the
pool (1 = revealed) and ``uncertainty.refine_batch`` minimises all of them together from the previous
step's optimum, the machinery of the vectorised bootstrap. The reference plan is the plan of the law
fitted (multi-start) to every run; the synthetic check replaces the measured losses by a known law's,
so the reference is that law's exact plan.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from repetita.decide.design import (
    DEFAULT_BUDGET_SHARE,
    Candidates,
    decision_compute,
    greedy_batch,
    plausible,
    predictions,
)
from repetita.errors import require
from repetita.laws.data import FLOPS_PER_PARAM_TOKEN
from repetita.laws.evaluate import point_theta


@dataclass(frozen=True)
class Replay:
    """One order's path: the compute spent after each step and the plan then (log N*, log K*, loss)."""

    name: str
    spent: np.ndarray  # (T,)
    plans: np.ndarray  # (T, 3)
    order: list[int]  # pool rows revealed, in order (after the start set)

    def reached(self, reference: np.ndarray, tol: float) -> float | None:
        """Compute spent when the plan entered ``tol`` of the reference for good (None if it never did)."""
        err = relative_error(self.plans, reference)
        ok = np.all(err <= tol, axis=1)
        if not ok[-1]:
            return None
        bad = np.flatnonzero(~ok)
        first = 0 if bad.size == 0 else bad[-1] + 1
        return float(self.spent[first])


def relative_error(plans: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """|N*/N*_ref - 1|, |K*/K*_ref - 1| and |loss/loss_ref - 1| for plans given as (log N*, log K*, loss)."""
    return np.stack([np.abs(np.exp(plans[:, 0] - reference[0]) - 1), np.abs(np.exp(plans[:, 1] - reference[1]) - 1),
                     np.abs(plans[:, 2] / reference[2] - 1)], axis=1)


def laplace_draws(problem, z: np.ndarray, weights: np.ndarray, n: int,
                  rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """Normal draws (n, F) of the free parameters around ``z`` for the rows with weight 1: the linearised fit's
    covariance s^2 (J J')^+ with s^2 the residual variance in log loss (returned too: the noise of a new run);
    directions the rows leave undetermined get no spread."""
    from repetita.laws.uncertainty import batched_log_pred_jac

    logp, J = batched_log_pred_jac(problem, z[None, :])
    rows = weights > 0
    r = (logp[0] - problem.logy)[rows]
    Jr = J[0][:, rows]
    F = len(z)
    s2 = float(np.sum(r ** 2) / max(rows.sum() - F, 1))
    scale = np.sqrt(np.maximum(np.sum(Jr ** 2, axis=1), 1e-300))
    cov = np.linalg.pinv((Jr / scale[:, None]) @ (Jr / scale[:, None]).T, rcond=1e-8) * s2 / np.outer(scale, scale)
    cov = 0.5 * (cov + cov.T)
    z_draws = rng.multivariate_normal(z, cov, size=n, check_valid="ignore", method="eigh")
    return np.clip(z_draws, problem.lo, problem.hi), s2


class Refit:
    """A multi-start refit of every order at once, as ``LawFit.fit`` does for one table: the law's start grid is
    scored on each order's revealed rows (one matrix product: the per-row Huber terms of every grid point are
    computed once), and the ``n_starts`` best grid points plus the order's previous optimum are refined
    together by ``uncertainty.refine_batch``; each order keeps its best. Warm starts alone were tried first
    and stay in the basin of the first small fit: on the datablations grid they ended 2.3x off the multi-start
    fit of the same rows."""

    def __init__(self, est, problem, n_starts: int):
        from repetita.laws.fit import huber, init_grid

        self.problem, self.n_starts = problem, n_starts
        self.grid = init_grid(est.spec)
        with np.errstate(all="ignore"):
            H = huber(problem.law.func(problem.theta(self.grid), problem.X) - problem.logy, problem.delta)
        self.H = np.where(np.isfinite(H), H, 1e300)  # (G, n): a point that gives no finite loss never wins

    def __call__(self, Z: np.ndarray, W: np.ndarray) -> np.ndarray:
        from repetita.laws.uncertainty import refine_batch

        B, F = Z.shape
        best = np.argsort(W @ self.H.T, axis=1, kind="stable")[:, : self.n_starts]  # (B, m)
        starts = np.concatenate([Z[:, None, :], self.grid[best]], axis=1).reshape(-1, F)
        Zr, f, _ = refine_batch(self.problem, starts, np.repeat(W, self.n_starts + 1, axis=0))
        f = np.where(np.isfinite(f), f, np.inf).reshape(B, -1)
        return Zr.reshape(B, self.n_starts + 1, F)[np.arange(B), f.argmin(axis=1)]


def replay(est, df, compute: float, unique_tokens: float, *, start: int, seeds: int = 20, draws: int = 200,
           flops_per_token: float = FLOPS_PER_PARAM_TOKEN, seed: int = 0, orders=("suggest", "suggest-doubling", "random", "cheapest"),
           n_starts: int = 4, log=None) -> list[Replay]:
    """Replay the pool ``df`` (fitted by ``est``, which defines the law and its fitting problem) in every order;
    ``start`` cheapest runs are known to all orders at the outset."""
    problem = est.problem_for(df)
    law = est.spec.law_obj
    n = problem.logy.size
    require(len(df) == n, "the retrospective needs one design row per run (a run table, not curves)")
    require(n > start >= len(problem.free) + 2, f"start with at least {len(problem.free) + 2} runs and leave some in "
            f"the pool (the table has {n})")
    params = df["params"].to_numpy(float)
    tokens = df["tokens"].to_numpy(float)
    unique = df["unique_tokens"].to_numpy(float)
    cost = flops_per_token * params * tokens
    cheap = np.argsort(cost, kind="stable")
    first = cheap[:start]
    names, perms = [], []
    rng = np.random.default_rng(seed)
    rest = cheap[start:]
    for name in orders:
        if name == "random":
            for s in range(seeds):
                names.append(f"random-{s}")
                perms.append(list(np.random.default_rng([seed, s]).permutation(rest)))
        elif name == "cheapest":
            names.append("cheapest")
            perms.append(list(rest))
        else:
            require(name in ("suggest", "suggest-doubling", "suggest-budget"), f"unknown order {name!r}")
            names.append(name)
            perms.append(None)  # chosen as it goes
    B = len(names)
    W = np.zeros((B, n))
    W[:, first] = 1.0
    z0 = np.array([est.params_[p] for p in problem.free], dtype=float)
    Z = np.repeat(z0[None, :], B, axis=0)
    cand = Candidates(params, unique, tokens / unique, cost)
    order = [[] for _ in range(B)]
    spent = np.full(B, cost[first].sum())
    hist_spent, hist_plans = [], []

    def plans(Z):
        theta = problem.theta(Z)
        return decision_compute(law, theta, compute, unique_tokens, flops_per_token)

    refit = Refit(est, problem, n_starts)
    for step in range(n - start + 1):
        Z = refit(Z, W)
        hist_spent.append(spent.copy())
        hist_plans.append(plans(Z))
        if step == n - start:
            break
        for b, name in enumerate(names):
            if name.startswith("suggest"):
                pool = np.flatnonzero(W[b] == 0)
                if name == "suggest-doubling":
                    pool = pool[cost[pool] <= max(spent[b], cost[pool].min())]
                elif name == "suggest-budget":  # suggest's default: by value, a run within a tenth of the decision
                    pool = pool[cost[pool] <= max(DEFAULT_BUDGET_SHARE * compute, cost[pool].min())]
                zs, noise = laplace_draws(problem, Z[b], W[b], draws, rng)
                theta = problem.theta(zs)
                G = decision_compute(law, theta, compute, unique_tokens, flops_per_token)
                sub = cand.take(pool)
                F = predictions(law, theta, sub)
                ok = plausible(G, F)
                F = F[ok]
                per = sub.cost if name == "suggest" else np.ones(len(sub))  # the others: value alone, within reach
                picks = greedy_batch(G[ok], F, np.ones(int(ok.sum())), max(noise, 1e-8), per, 1,
                                     counted=np.array([False, True, True]))
                j = int(pool[picks[0].index]) if picks else int(pool[np.argmin(cost[pool])])
            else:
                j = int(perms[b][len(order[b])])
            W[b, j] = 1.0
            order[b].append(j)
            spent[b] += cost[j]
        if log is not None and step % 20 == 0:
            log(f"step {step}: {int(W[0].sum())} runs known")
    hist_spent = np.array(hist_spent)  # (T, B)
    hist_plans = np.stack(hist_plans)  # (T, B, 3)
    return [Replay(names[b], hist_spent[:, b], hist_plans[:, b], order[b]) for b in range(B)]


def reference_plan(est, compute: float, unique_tokens: float, flops_per_token: float = FLOPS_PER_PARAM_TOKEN):
    """(log N*, log K*, loss) of a fitted estimator's point parameters."""
    return decision_compute(est.spec.law_obj, point_theta(est), compute, unique_tokens, flops_per_token)[0]
