"""Allocation under two budgets: compute C and a fixed corpus of U unique tokens -> what to train.

Along the compute line C = k N D (k = 6 FLOPs per parameter per token by default, Kaplan et al. 2020;
an option), with D = K U, the predicted loss L(N, C / (k N), U) of a repetition-aware law is minimised
over N. The loss is scanned on a log grid to bracket the minimum, which Brent's method then solves to
1e-6 relative in N (bounded ``scipy.optimize.minimize_scalar`` to 1e-9 in ln N; the grid only brackets). Beside it: the naive
Chinchilla allocation for the same C (the same law with repetition ignored, i.e. every token fresh),
how many unique tokens it would need, and the loss of following it with only U.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from repetita.errors import require
from repetita.laws import data as tables
from repetita.laws.forms import get_law

FLOPS_PER_PARAM_TOKEN = 6.0
N_RANGE = (1e3, 1e15)  # the bracket search spans these model sizes (clipped to the compute line)


def predicted_loss(record: dict, params, tokens, unique_tokens) -> np.ndarray:
    """The law's loss at arbitrary (N, D, U), including D < U (a fraction of the corpus seen once)."""
    law = get_law(record["law"])
    n, d, u = np.broadcast_arrays(np.asarray(params, float), np.asarray(tokens, float), np.asarray(unique_tokens, float))
    X = tables.design(pd.DataFrame({c: v.ravel() for c, v in (("params", n), ("tokens", d), ("unique_tokens", u))
                                    if c in law.columns}))
    theta = np.array([[record["params"][p] for p in law.params]])
    with np.errstate(all="ignore"):
        return np.exp(law.func(theta, X)[0]).reshape(n.shape)


def _optimum(loss_of_logn, lo: float, hi: float) -> tuple[float, float, bool]:
    """``loss_of_logn`` takes an array of ln N: the bracketing scan is one vectorized call."""
    from scipy.optimize import minimize_scalar

    grid = np.linspace(lo, hi, 241)
    vals = np.asarray(loss_of_logn(grid), dtype=float)
    require(np.isfinite(vals).any(), "the law gives no finite loss anywhere on this compute line")
    i = int(np.nanargmin(np.where(np.isfinite(vals), vals, np.inf)))
    edge = i in (0, len(grid) - 1)
    if edge:
        return float(grid[i]), float(vals[i]), True
    # bounded Brent inside the bracketing cell pair (ties on a flat stretch would break a 3-point bracket)
    res = minimize_scalar(lambda x: float(loss_of_logn(np.array([x]))[0]), bounds=(grid[i - 1], grid[i + 1]),
                          method="bounded", options={"xatol": 1e-9})
    if res.fun > vals[i]:
        return float(grid[i]), float(vals[i]), False
    return float(res.x), float(res.fun), False


def allocate(record: dict, compute: float, unique_tokens: float, flops_per_token: float = FLOPS_PER_PARAM_TOKEN,
             max_params: float | None = None) -> dict:
    """N*, D*, K* = D*/U and the predicted loss for compute C on U unique tokens, and the naive allocation."""
    require(compute > 0 and np.isfinite(compute), f"--compute must be positive, got {compute}")
    require(unique_tokens > 0 and np.isfinite(unique_tokens), f"--unique-tokens must be positive, got {unique_tokens}")
    law = get_law(record["law"])
    require("params" in law.columns and "tokens" in law.columns,
            f"law {record['law']!r} does not predict loss from model size and tokens; allocate with a "
            "chinchilla, data-constrained or reuse fit")
    k, U = float(flops_per_token), float(unique_tokens)
    hi_n = min(N_RANGE[1], compute / k / 1.0, max_params or np.inf)  # at least one token
    lo_n = max(N_RANGE[0], 1.0)
    require(hi_n > lo_n, f"--compute {compute:g} is too small for any model (or --max-params too small)")

    def at(logn, u):
        n = np.exp(logn)
        return predicted_loss(record, n, compute / (k * n), u if u is not None else compute / (k * n))

    logn, loss, edge = _optimum(lambda x: at(x, U), np.log(lo_n), np.log(hi_n))
    n = float(np.exp(logn))
    d = compute / (k * n)
    out = {"params": n, "tokens": d, "epochs": d / U, "loss": loss, "at_search_edge": edge,
           "compute": compute, "unique_tokens": U, "flops_per_token": k}
    if law.rd_star is not None and d > U:
        from repetita.laws.plan import next_epoch_worth

        rd = float(law.repetition(record["params"], U))
        out["rd_star"] = rd
        out["last_epoch_worth"] = float(next_epoch_worth(d / U - 1.0, rd)) if d / U >= 2 else 1.0
    # the naive allocation: the same law as if every token were fresh (unique tokens = tokens)
    nlog, nloss, _ = _optimum(lambda x: at(x, None), np.log(lo_n), np.log(hi_n))
    nn = float(np.exp(nlog))
    nd = compute / (k * nn)
    naive_with_u = float(predicted_loss(record, nn, nd, U))
    out["naive"] = {"params": nn, "tokens": nd, "unique_tokens_needed": nd, "loss_with_fresh_data": nloss,
                    "loss_with_U": naive_with_u, "penalty_vs_optimum": naive_with_u - loss}
    return out


def allocation_intervals(record: dict, compute: float, unique_tokens: float, level: float = 0.95, **kw) -> dict | None:
    """Percentile intervals of N*, D*, K* and the loss under the fit's saved parameter uncertainty."""
    from repetita.laws.plan import sampled_records

    samples = sampled_records(record, n=200)
    if samples is None:
        return None
    runs = [allocate(rec, compute, unique_tokens, **kw) for rec in samples]
    q = ((1 - level) / 2, (1 + level) / 2)
    return {k: [float(np.quantile([r[k] for r in runs], q[0])), float(np.quantile([r[k] for r in runs], q[1]))]
            for k in ("params", "tokens", "epochs", "loss")} | {"level": level, "samples": len(runs)}


def loss_limit(record: dict, unique_tokens: float) -> float:
    """The loss as C -> infinity on U unique tokens (the standard recipe): the law with N and D unbounded.

    Repetition-aware laws saturate (D' -> U (1 + R_D*), N' -> U_N (1 + R_N*)); Chinchilla goes to E.
    """
    return float(predicted_loss(record, 1e30, 1e40, unique_tokens))


def frontier(record: dict, computes, unique_tokens: float, wall_gain: float = 0.01,
             flops_per_token: float = FLOPS_PER_PARAM_TOKEN, max_params: float | None = None) -> dict:
    """N*(C), K*(C), L*(C) over ``computes``, the data wall and the C -> infinity limit.

    The data wall is the smallest budget in the range from which another 10x of compute improves the
    optimal loss by less than ``wall_gain`` nats: beyond it, this corpus, not compute, limits the loss.
    """
    require(wall_gain > 0, f"--wall-gain must be positive, got {wall_gain}")
    kw = {"flops_per_token": flops_per_token, "max_params": max_params}
    rows = []
    for c in np.asarray(computes, dtype=float):
        a = allocate(record, c, unique_tokens, **kw)
        gain = a["loss"] - allocate(record, 10 * c, unique_tokens, **kw)["loss"]
        rows.append({k: a[k] for k in ("compute", "params", "tokens", "epochs", "loss")} | {"gain_from_10x": gain})
    wall = next((r["compute"] for r in rows if r["gain_from_10x"] < wall_gain), None)
    return {"rows": rows, "data_wall": wall, "wall_gain": wall_gain, "loss_limit": loss_limit(record, unique_tokens)}


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
