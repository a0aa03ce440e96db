"""Allocation under two budgets: compute C and a fixed corpus of U unique tokens -> what to train.

Along the compute line C = k N D (k = 6 FLOPs per parameter per token by default, Kaplan et al. 2020;
an option), with D = K U, the predicted loss L(N, C / (k N), U) of a repetition-aware law is minimised
over N. Every function here is vectorized over parameter draws (S) and budgets (B) at once: a log scan
of 97 model sizes per budget brackets the minimum and a golden-section search, run on all (S, B) pairs
together, narrows the bracket to 3e-9 in ln N (1e-6 relative needs 1e-6). One solve serves the point
allocation (S = B = 1), its intervals (S draws of the fit's uncertainty) and the frontier (B budgets):
100 budgets x 1,000 draws x 3 laws take a few seconds (benchmarks/plan_allocate.py).

Beside it: the naive Chinchilla allocation for the same C (the same law with every token fresh), how
many unique tokens it would need, and the loss of following it with only U. A recipe enters as a data
efficiency m (the baseline needs m times the data for the same loss): the law evaluated at (N, m D, m U).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np

from repetita.blas import single_threaded
from repetita.errors import UserError, require
from repetita.laws.data import FLOPS_PER_PARAM_TOKEN
from repetita.laws.evaluate import point_theta
from repetita.laws.law import Law, law_loss
from repetita.laws.record import estimator
from repetita.laws.uncertainty import percentile_band

N_RANGE = (1e3, 1e15)  # the bracket search spans these model sizes (clipped to the compute line and a cap)
# What a plan can be asked about. Beyond these a number is a typo or a unit slip, not a plan: 1e30 FLOPs is
# ~1e5 times the largest training run to date, 1e16 unique tokens ~10x all text ever written (estimates of
# the indexed web are ~5e14 tokens), 1e6 epochs ~1,000x the most-repeated published run (datablations: 9,000
# epochs is their 146M corner; 1e6 leaves room). Below 1e3 unique tokens there is no corpus to plan for.
LIMITS = {"compute": (1.0, 1e30), "unique tokens": (1e3, 1e16), "params": (1.0, N_RANGE[1]),
          "epochs": (1.0, 1e6)}


def check_limits(what: str, values) -> None:
    """One line naming the value when it is not a positive finite number inside ``LIMITS[what]``."""
    v = np.atleast_1d(np.asarray(values, dtype=float))
    lo, hi = LIMITS[what]
    bad = ~np.isfinite(v) | (v < lo) | (v > hi)
    if bad.any():
        x = v[np.flatnonzero(bad)[0]]
        raise UserError(f"{what} {x:g} is outside what a plan can speak for ({lo:g} to {hi:g})"
                        + ("" if np.isfinite(x) and x > 0 else ": give a positive finite number"))
GRID = 97
GOLDEN_ITERS = 44  # 0.618^44 of a two-cell bracket (0.58 in ln N at the widest) is 3e-10
CHUNK = 400_000  # law evaluations per vectorized call (bounds the memory of the temporaries)
_PHI = (np.sqrt(5.0) - 1.0) / 2.0


def check_allocatable(est) -> Law:
    law = est.spec.law_obj
    require("params" in law.columns and "tokens" in law.columns,
            f"law {law.name!r} does not predict loss from model size and tokens; allocate with a "
            "chinchilla, data-constrained or reuse fit")
    return law


@single_threaded
def solve(law: Law, thetas: np.ndarray, computes, unique_tokens: float, *, flops_per_token: float = FLOPS_PER_PARAM_TOKEN,
          max_params: float | None = None, efficiency: float = 1.0, fresh: bool = False) -> dict:
    """N* minimising the loss along each compute line, for every draw x budget: arrays of shape (S, B).

    ``fresh`` evaluates every token as unique (the naive Chinchilla allocation); ``efficiency`` m scales
    the data (the law at (N, m D, m U)). ``at_edge`` marks optima at the end of the searched sizes.
    """
    thetas = np.atleast_2d(np.asarray(thetas, dtype=float))
    C = np.atleast_1d(np.asarray(computes, dtype=float))
    k, U, m = float(flops_per_token), float(unique_tokens), float(efficiency)
    check_limits("compute", C)
    check_limits("unique tokens", U)
    require(k > 0 and np.isfinite(k), f"flops per token must be positive, got {flops_per_token}")
    require(m > 0 and np.isfinite(m), f"a data-efficiency multiplier must be positive, got {efficiency}")
    lo = np.log(N_RANGE[0])
    hi = np.log(np.minimum(np.minimum(N_RANGE[1], C / k), max_params if max_params else np.inf))
    require(np.all(hi > lo + 1e-9), f"compute {C.min():g} is too small for any model of >= {N_RANGE[0]:g} "
            "params (or --max-params is below that)")

    def loss(logn, rows):  # logn (1 or S', B') -> loss (S', B')
        n = np.exp(logn)
        d = C[None, :] / (k * n)
        return law_loss(law, rows, n, m * d, m * d if fresh else m * U)

    S, B = len(thetas), len(C)
    grid = lo + (hi - lo)[:, None] * np.linspace(0.0, 1.0, GRID)[None, :]  # (B, G)
    step = max(1, CHUNK // max(B * GRID, 1))
    best_logn, best_loss, at_edge = np.empty((S, B)), np.empty((S, B)), np.empty((S, B), dtype=bool)
    for s0 in range(0, S, step):
        rows = thetas[s0:s0 + step]
        n = np.exp(grid).reshape(1, -1)
        d = np.repeat(C / k, GRID)[None, :] / n
        vals = law_loss(law, rows, n, m * d, m * d if fresh else m * U).reshape(len(rows), B, GRID)
        vals = np.where(np.isfinite(vals), vals, np.inf)
        if not law.monotone and not fresh:
            # never past the law's turn: where 1% more tokens at the same size would raise the loss, the
            # size is too small for this budget (the spare compute goes into the model instead). If the
            # whole compute line lies past the turn, its best point is kept and flagged (allocate.past_turn).
            up = law_loss(law, rows, n, m * d * 1.01, m * U).reshape(len(rows), B, GRID)
            past = np.isfinite(up) & (up > vals)
            vals = np.where(past & ~past.all(axis=2, keepdims=True), np.inf, vals)
        i = vals.argmin(axis=2)
        require(np.isfinite(np.take_along_axis(vals, i[..., None], 2)).all(),
                "the law gives no finite loss anywhere on this compute line")
        a = np.take_along_axis(np.broadcast_to(grid, vals.shape), np.maximum(i - 1, 0)[..., None], 2)[..., 0]
        b = np.take_along_axis(np.broadcast_to(grid, vals.shape), np.minimum(i + 1, GRID - 1)[..., None], 2)[..., 0]
        g_logn = np.take_along_axis(np.broadcast_to(grid, vals.shape), i[..., None], 2)[..., 0]
        g_loss = np.take_along_axis(vals, i[..., None], 2)[..., 0]
        # golden section on every (draw, budget) bracket at once; rows of theta align with rows of the bracket
        x1, x2 = b - _PHI * (b - a), a + _PHI * (b - a)
        f1, f2 = loss(x1, rows), loss(x2, rows)
        for _ in range(GOLDEN_ITERS):
            left = f1 <= f2
            a, b = np.where(left, a, x1), np.where(left, x2, b)
            x2n, x1n = np.where(left, x1, a + _PHI * (b - a)), np.where(left, b - _PHI * (b - a), x2)
            fx = loss(np.where(left, x1n, x2n), rows)
            f1, f2 = np.where(left, fx, f2), np.where(left, f1, fx)
            x1, x2 = x1n, x2n
        x = 0.5 * (a + b)
        fx = loss(x, rows)
        take = np.isfinite(fx) & (fx <= g_loss)
        if not law.monotone and not fresh:  # the refined point must not pass the turn either
            n_x = np.exp(x)
            d_x = C[None, :] / (k * n_x)
            take &= ~(law_loss(law, rows, n_x, m * d_x * 1.01, m * U) > fx)
        best_logn[s0:s0 + step] = np.where(take, x, g_logn)
        best_loss[s0:s0 + step] = np.where(take, fx, g_loss)
        at_edge[s0:s0 + step] = (i == 0) | (i == GRID - 1)
    # Beyond the data wall the loss can be flat in N to rounding (N' and D' both saturated): N* is then
    # any size along that stretch. Flag it when 10% either way changes the loss by under 1e-12 relative.
    flat = np.ones((S, B), dtype=bool)
    for shift in (-0.1, 0.1):
        for s0 in range(0, S, step):
            rows = thetas[s0:s0 + step]
            near = loss(best_logn[s0:s0 + step] + shift, rows)
            flat[s0:s0 + step] &= ~(near - best_loss[s0:s0 + step] > 1e-12 * best_loss[s0:s0 + step])
    params = np.exp(best_logn)
    tokens = C[None, :] / (k * params)
    return {"params": params, "tokens": tokens, "epochs": tokens / U, "loss": best_loss, "at_edge": at_edge,
            "flat": flat}


@dataclass(frozen=True)
class Naive:
    """The same law's allocation as if every token were fresh, and what it costs on this corpus."""

    params: float
    tokens: float
    unique_tokens_needed: float
    loss_with_fresh_data: float
    loss_with_U: float
    penalty_vs_optimum: float


@dataclass(frozen=True)
class Allocation:
    """What to train for compute C on U unique tokens under one fitted law (``allocate``)."""

    compute: float
    unique_tokens: float
    flops_per_token: float
    params: float
    tokens: float
    epochs: float
    loss: float
    at_search_edge: bool
    size_undetermined: bool
    turn_epochs: float
    evidence: dict | None
    outside_evidence: list[str]
    loss_prediction: list[float] | None  # the fit's scatter only; with parameter draws see allocation_intervals
    naive: Naive
    rd_star: float | None = None
    last_epoch_worth: float | None = None

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None or k in ("evidence", "loss_prediction")}


@dataclass(frozen=True)
class FrontierRow:
    compute: float
    params: float
    tokens: float
    epochs: float
    loss: float
    gain_from_10x: float
    at_search_edge: bool
    size_undetermined: bool
    turn_epochs: float
    outside_evidence: list[str]
    withheld: str | None = None  # why this row is no plan: past the law's turn, or beyond the trust region


@dataclass(frozen=True)
class Frontier:
    """N*(C), K*(C), L*(C) over budgets on one corpus under one law (``frontier``)."""

    rows: list[FrontierRow]
    data_wall: float | None
    wall_gain: float
    loss_limit: float
    loss_limit_is: str | None = None  # set when the law overfits: the lowest loss on the frontier, not a limit
    spend_at_most: float | None = None  # the budget past which the loss only rises (an overfitting law)
    bands: dict | None = None  # percentile bands under parameter draws
    supported_up_to: float | None = None  # the largest budget whose row is a plan (None: no row is)

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None or k == "data_wall"}


def allocate(fit, compute: float, unique_tokens: float, flops_per_token: float = FLOPS_PER_PARAM_TOKEN,
             max_params: float | None = None, efficiency: float = 1.0) -> Allocation:
    """N*, D*, K* = D*/U and the predicted loss for compute C on U unique tokens, and the naive allocation."""
    est = estimator(fit)
    law = check_allocatable(est)
    theta = point_theta(est)
    kw = {"flops_per_token": flops_per_token, "max_params": max_params, "efficiency": efficiency}
    r = solve(law, theta, [compute], unique_tokens, **kw)
    n, d, loss = float(r["params"][0, 0]), float(r["tokens"][0, 0]), float(r["loss"][0, 0])
    U = float(unique_tokens)
    from repetita.laws.uncertainty import prediction_interval

    rd = worth = None
    if law.rd_star is not None and law.monotone and np.isfinite(law.repetition(est.params_, U)) and d > U:
        from repetita.laws.worth import next_epoch_worth

        rd = float(law.repetition(est.params_, efficiency * U))
        worth = float(next_epoch_worth(d / U - 1.0, rd)) if d / U >= 2 else 1.0
    # the naive allocation: the same law as if every token were fresh (unique tokens = tokens)
    nv = solve(law, theta, [compute], U, fresh=True, **kw)
    nn, nd = float(nv["params"][0, 0]), float(nv["tokens"][0, 0])
    with_u = float(law_loss(law, theta, nn, efficiency * nd, efficiency * U)[0, 0])
    naive = Naive(nn, nd, nd, float(nv["loss"][0, 0]), with_u, with_u - loss)
    t = float(law.turn(est.params_, n, U))
    return Allocation(float(compute), U, float(flops_per_token), n, d, d / U, loss, bool(r["at_edge"][0, 0]),
                      bool(r["flat"][0, 0]), t, est.region_,
                      outside_evidence(est.region_, n, d, U, float(compute)) + past_turn(d / U, t),
                      prediction_interval([loss], est), naive, rd, worth)


def outside_evidence(region: dict | None, params: float, tokens: float, unique: float, compute: float) -> list[str]:
    """How far a decision lies beyond the fitted table: one phrase per quantity that exceeds it."""
    if not region:
        return []
    here = {"params": params, "epochs": tokens / unique, "compute": compute, "tokens_per_param": tokens / params}
    names = {"params": "model size", "epochs": "epochs", "compute": "compute", "tokens_per_param": "tokens per param"}
    out = [f"{names[k]} {v:.3g} is {v / region[k]:.3g}x the largest fitted ({region[k]:.3g})"
           for k, v in here.items() if region.get(k) and v > region[k] * 1.01]  # 1%: the rounding of a given budget
    by_size = region.get("epochs_by_params")
    if by_size and here["epochs"] > 1:
        # repetition is evidenced only by runs of a comparable size (within 10x of this model)
        near = [k for size, k in by_size if size >= params / 10]
        seen = max(near) if near else None
        if seen is None:
            out.append(f"no fitted run is within 10x of {params:.3g} params, so none shows how it repeats")
        elif here["epochs"] > seen * 1.01 and "epochs" not in [k for k in here if f"{names[k]} " in " ".join(out)]:
            out.append(f"{here['epochs']:.3g} epochs is {here['epochs'] / seen:.3g}x the most any fitted run of "
                       f">= {params / 10:.3g} params repeated ({seen:.3g})")
    return out


# How far beyond the fitted runs a plan is still presented as one. The law benchmark's size and compute
# splits fit on the smaller models and budgets and predict the held-out ones, up to about 3x beyond, with
# 95% interval coverage of 0.90-1.00 on the datablations tables (docs/laws.md); past the fitted epochs the
# coverage falls to 0.3-0.9, which the epoch phrases of outside_evidence say. `plan --trust F` widens it.
TRUST_FACTOR = 3.0
MAX_TRUST = 1e6  # beyond a million times the fitted runs a factor is a typo, not a wider region


def check_trust(factor: float) -> float:
    require(np.isfinite(factor) and 1 <= factor <= MAX_TRUST, f"--trust {factor:g}: the trust-region factor must be "
            f"at least 1 (1 = only inside the fitted runs) and at most {MAX_TRUST:g}")
    return float(factor)


def beyond_trust(region: dict | None, params: float, compute: float, factor: float = TRUST_FACTOR,
                 epochs: float | None = None, tokens: float | None = None) -> str | None:
    """Why a plan lies beyond the trust region, or None. The region is ``factor`` times the largest fitted
    model size N, compute C and epoch count K, and the tokens per parameter D/N within ``factor`` of the
    range that fitted runs of a comparable size (at least N/10) trained with: a ratio seen only at small
    models (0.09 tokens per parameter at 1.1B in datablations) does not speak for a 61B model."""
    if not region:
        return None
    out = [f"{what} {v:.3g} > {factor:g} x {region[k]:.3g} fitted" for k, what, v in
           (("params", "N", params), ("compute", "C", compute), ("epochs", "K", epochs))
           if v is not None and region.get(k) and v > factor * region[k] * 1.01]
    if tokens is not None:
        tpp = tokens / params
        by_size = region.get("tokens_per_param_by_params")
        near = [(lo, hi) for size, lo, hi in by_size if size >= params / 10] if by_size else []
        lo = min((x[0] for x in near), default=region.get("tokens_per_param_min"))
        hi = max((x[1] for x in near), default=region.get("tokens_per_param"))
        where = f"fitted runs of >= {params / 10:.3g} params" if near else "the fitted runs"
        if lo and tpp < lo / factor / 1.01:
            out.append(f"{tpp:.3g} tokens per param < {lo:.3g} / {factor:g}, the fewest of {where}")
        elif hi and tpp > factor * hi * 1.01:
            out.append(f"{tpp:.3g} tokens per param > {factor:g} x {hi:.3g}, the most of {where}")
    return "beyond the trust region (" + "; ".join(out) + ")" if out else None


@dataclass(frozen=True)
class Supported:
    """The best plan inside the trust region at one budget (``supported_allocation``)."""

    compute: float
    params: float
    tokens: float
    epochs: float
    loss: float
    loss_prediction: list[float] | None


SUPPORTED_GRID = 801  # ln N steps of < 0.03 across the widest admissible range (1e3-1e15 params)


def supported_allocation(fit, compute: float, unique_tokens: float, factor: float = TRUST_FACTOR,
                         flops_per_token: float = FLOPS_PER_PARAM_TOKEN) -> Supported | None:
    """The lowest predicted loss over model sizes whose plan at this budget stays inside the trust region
    (``beyond_trust``): what a law can still be held to where its free optimum lies beyond the runs. None
    when no size qualifies (the budget itself lies beyond, or the bounds leave no size)."""
    est = estimator(fit)
    law = check_allocatable(est)
    region = est.region_
    if not region or beyond_trust(region, 1.0, compute, factor) is not None:
        return None
    c, u = float(compute), float(unique_tokens)
    hi = factor * region["params"] if region.get("params") else N_RANGE[1]
    lo = c / (flops_per_token * u * factor * region["epochs"]) if region.get("epochs") else N_RANGE[0]
    lo, hi = max(lo, N_RANGE[0]), min(hi, c / flops_per_token)  # at least one token per run
    if not lo < hi:
        return None
    n = np.geomspace(lo, hi, SUPPORTED_GRID)
    d = c / (flops_per_token * n)
    ok = np.array([beyond_trust(region, float(a), c, factor, float(b / u), float(b)) is None
                   for a, b in zip(n, d, strict=True)])
    if not ok.any():
        return None
    loss = law_loss(law, point_theta(est), n[ok], d[ok], u)[0]
    j = int(np.nanargmin(loss))
    from repetita.laws.uncertainty import prediction_interval

    nn, dd = float(n[ok][j]), float(d[ok][j])
    return Supported(c, nn, dd, dd / u, float(loss[j]), prediction_interval([loss[j]], est))


def past_turn(epochs: float, turn: float) -> list[str]:
    """A penalty law can put the best use of a whole budget past its own turn: its penalty grows with model
    size too, so neither more epochs nor a larger model absorbs the compute. Said, never hidden."""
    if epochs <= turn * 1.05:
        return []
    return [f"{epochs:.3g} epochs lie past the law's turn ({turn:.3g}): at this size more repetition raises the "
            "loss, and this budget is more than the corpus can use; spend less, or add data"]


def allocation_intervals(fit, compute: float, unique_tokens: float, level: float = 0.95, n: int = 200,
                         thetas: np.ndarray | None = None, **kw) -> dict | None:
    """Percentile intervals of N*, D*, K* and the loss under the fit's saved parameter uncertainty
    (``thetas``: the draws, by default ``n`` from ``uncertainty.theta_draws``)."""
    from repetita.laws.uncertainty import theta_draws

    est = estimator(fit)
    thetas = theta_draws(est, n) if thetas is None else thetas
    if thetas is None:
        return None
    r = solve(check_allocatable(est), thetas, [compute], unique_tokens, **kw)
    from repetita.laws.uncertainty import prediction_interval

    return {k: percentile_band(r[k][:, 0], level).tolist() for k in ("params", "tokens", "epochs", "loss")} | {
        "level": level, "samples": len(thetas), "loss_prediction": prediction_interval(r["loss"][:, 0], est, level)}


def loss_limit(fit, unique_tokens, thetas: np.ndarray | None = None, efficiency: float = 1.0) -> np.ndarray | float:
    """The loss as C -> infinity on U unique tokens: the law with N and D unbounded (one value per draw
    with ``thetas``). Repetition-aware laws saturate (D' -> U (1 + R_D*), N' -> U_N (1 + R_N*));
    Chinchilla goes to E."""
    est = estimator(fit)
    th = point_theta(est) if thetas is None else thetas
    vals = law_loss(est.spec.law_obj, th, 1e30, 1e40, efficiency * float(unique_tokens))[:, 0]
    return float(vals[0]) if thetas is None else vals


def _wall(computes: np.ndarray, gains: np.ndarray, wall_gain: float) -> np.ndarray:
    """Per draw (rows of ``gains``), the first budget from which 10x more compute buys < wall_gain; NaN if none."""
    below = gains < wall_gain
    first = below.argmax(axis=-1)
    return np.where(below.any(axis=-1), computes[first], np.nan)


def frontier(fit, computes, unique_tokens: float, wall_gain: float = 0.01, flops_per_token: float = FLOPS_PER_PARAM_TOKEN,
             max_params: float | None = None, efficiency: float = 1.0, thetas: np.ndarray | None = None,
             level: float = 0.95, trust: float = TRUST_FACTOR) -> Frontier:
    """N*(C), K*(C), L*(C) over ``computes``, the data wall and the C -> infinity limit; with ``thetas``
    (parameter draws), percentile bands of each. A row past an overfitting law's turn (a budget above
    ``spend_at_most``) or beyond the trust region (``trust`` x the fitted N and C) is ``withheld``: the
    search would put the spare compute into ever larger models (7.5e13 params at 1e25 FLOPs on 25B tokens
    under overfit-1), which is no plan anyone can run.

    The data wall is the smallest budget in the range from which another 10x of compute improves the
    optimal loss by less than ``wall_gain`` nats: beyond it, this corpus, not compute, limits the loss.
    """
    require(wall_gain > 0, f"wall gain must be positive, got {wall_gain}")
    est = estimator(fit)
    law = check_allocatable(est)
    C = np.asarray(computes, dtype=float)
    kw = {"flops_per_token": flops_per_token, "max_params": max_params, "efficiency": efficiency}
    both = np.concatenate([C, 10 * C])
    point = solve(law, point_theta(est), both, unique_tokens, **kw)
    B = len(C)
    gain = point["loss"][0, :B] - point["loss"][0, B:]
    turns = law.turn(est.params_, point["params"][0, :B], unique_tokens)
    rows = [FrontierRow(float(c), float(point["params"][0, j]), float(point["tokens"][0, j]),
                        float(point["epochs"][0, j]), float(point["loss"][0, j]), float(gain[j]),
                        bool(point["at_edge"][0, j]), bool(point["flat"][0, j]), float(turns[j]),
                        outside_evidence(est.region_, float(point["params"][0, j]),
                                         float(point["tokens"][0, j]), float(unique_tokens), float(c))
                        + past_turn(float(point["epochs"][0, j]), float(turns[j])))
            for j, c in enumerate(C)]
    wall = _wall(C, gain[None, :], wall_gain)[0]
    out = {"rows": rows, "data_wall": None if np.isnan(wall) else float(wall), "wall_gain": wall_gain,
           "loss_limit": loss_limit(est, unique_tokens, efficiency=efficiency)}
    # an overfitting law can make the best loss of a larger budget worse than a smaller one's: past the
    # turn the corpus cannot use more compute, so the frontier names the budget worth spending
    if not law.monotone:  # an overfitting law has no limit as C -> infinity: its loss rises again
        out["loss_limit"] = float(min(r.loss for r in rows))
        out["loss_limit_is"] = "the lowest loss on this frontier (the law overfits as C grows)"
    best = int(np.argmin([r.loss for r in rows]))
    if best < len(rows) - 1 and rows[-1].loss > rows[best].loss + 1e-9:
        out["spend_at_most"] = float(C[best])
    region = est.region_
    for j, r in enumerate(rows):
        why = ("past the law's turn: the loss is lowest at a smaller budget" if out.get("spend_at_most") is not None
               and r.compute > out["spend_at_most"] * (1 + 1e-9) else beyond_trust(region, r.params, r.compute, trust, r.epochs, r.tokens))
        rows[j] = replace(r, withheld=why)
    kept = [r.compute for r in rows if r.withheld is None]
    out["supported_up_to"] = max(kept) if kept else None
    if thetas is not None:
        r = solve(law, thetas, both, unique_tokens, **kw)
        g = r["loss"][:, :B] - r["loss"][:, B:]
        from repetita.laws.uncertainty import prediction_interval

        out["bands"] = {k: percentile_band(r[k][:, :B], level).T.tolist() for k in ("params", "epochs", "loss")} | {
            "level": level, "samples": len(thetas),
            "loss_prediction": [prediction_interval(r["loss"][:, j], est, level) for j in range(B)]}
        walls = _wall(C, g, wall_gain)
        out["bands"]["data_wall"] = percentile_band(walls, level).tolist() if np.isfinite(walls).mean() >= 0.5 else None
        out["bands"]["data_wall_reached"] = float(np.isfinite(walls).mean())
        limits = loss_limit(est, unique_tokens, thetas, efficiency) if law.monotone else r["loss"][:, :B].min(axis=1)
        out["bands"]["loss_limit"] = percentile_band(limits, level).tolist()
    return Frontier(**out)


def parse_budgets(text: str) -> np.ndarray:
    """``9e21`` -> one budget; ``1e20:1e24:25`` -> 25 log-spaced budgets."""
    from repetita.cliargs import parse_number

    parts = text.split(":")
    require(len(parts) in (1, 3), f"--compute {text!r}: give C or FROM:TO:COUNT (log-spaced)")
    if len(parts) == 1:
        return np.array([parse_number(parts[0], "--compute")])
    lo, hi = parse_number(parts[0], "--compute"), parse_number(parts[1], "--compute")
    try:
        count = int(parts[2])
    except ValueError:
        count = 0
    require(0 < lo < hi and np.isfinite(hi), f"--compute {text!r}: need 0 < FROM < TO")
    require(2 <= count <= 1000, f"--compute {text!r}: COUNT must be a whole number from 2 to 1000")
    return np.geomspace(lo, hi, count)
