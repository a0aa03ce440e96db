"""Leave-one-out influence: the rows that alone move a fitted exponent by more than its own interval.

A public isoFLOP table with one row's params mistyped as 1e30 moves alpha from 0.20 to 0.33 while R^2
barely changes; nothing in the fit's own diagnostics points at that row. Refitting without each row names
it. The n refits are one batched damped Gauss-Newton solve (``uncertainty.refine_batch``) started at the
optimum, with row weights ``1 - I``: every leave-one-out fit at once, in chunks that bound the Jacobian's
memory. The yardstick is the exponent's Laplace half-width at the fit's level: a row whose removal moves
the exponent farther than the data's own uncertainty decides that exponent by itself.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from repetita.laws.caveats import Caveat, Kind

EXPONENTS = ("alpha", "beta")  # the parameters a reader of a scaling law compares across papers
MAX_ROWS = 2000  # n refits over n rows: 8.7 s at 1,745 rows (the fit itself 4.7 s); above this, not run
CHUNK = 64  # leave-one-out fits solved per batch (memory: CHUNK x free x rows Jacobian entries)
NAMED = 3  # rows named per exponent
# Gauss-Newton iterations per leave-one-out fit, from the full fit's optimum. Measured on the datablations
# one-epoch rows and a synthetic 120-row table: 10 iterations reach the converged (200-iteration) exponents
# to 0.003, and the solve stops short of them, never past them (a move is, if anything, understated).
# Converging fully costs 20x more on a data-constrained fit (3.6 s per 64 rows).
ITERATIONS = 12


def loo_params(est, df: pd.DataFrame, level: float = 0.95) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(the free parameters refitted without each design row (n, F), their sandwich half-widths at ``level``
    in that fit (n, F), the optimum (F,), each design row's table position (n,)). Huber objective and
    bounds as the fit's; the sandwich is ``uncertainty.laplace``'s, batched over the n fits."""
    from scipy.stats import norm

    from repetita.laws.fit import prepare
    from repetita.laws.uncertainty import batched_log_pred_jac, refine_batch

    df = df.reset_index(drop=True)
    problem = est.problem_for(df)
    _, _, order = prepare(est.spec, df)
    z = np.array([est.params_[p] for p in problem.free], dtype=float)
    n, F = problem.logy.size, z.size
    params, half = np.empty((n, F)), np.empty((n, F))
    zq = float(norm.ppf(0.5 + level / 2))
    for start in range(0, n, CHUNK):
        rows = np.arange(start, min(n, start + CHUNK))
        W = np.ones((rows.size, n))
        W[np.arange(rows.size), rows] = 0.0
        Z, _, _ = refine_batch(problem, np.tile(z, (rows.size, 1)), W, max_iter=ITERATIONS)
        logp, J = batched_log_pred_jac(problem, Z)
        r = np.where(np.isfinite(logp), logp - problem.logy, 0.0) * W  # the left-out row contributes nothing
        J = np.where(np.isfinite(J), J, 0.0) * W[:, None, :]
        Hinv = np.linalg.pinv(np.einsum("bfn,bgn->bfg", J, J))
        meat = np.einsum("bfn,bgn,bn->bfg", J, J, r**2)
        cov = Hinv @ meat @ Hinv * (n - 1) / max(n - 1 - F, 1)
        params[rows] = Z
        half[rows] = zq * np.sqrt(np.maximum(np.einsum("bff->bf", cov), 0.0))
    return params, half, z, np.asarray(order)


def influential_rows(est, df: pd.DataFrame, level: float = 0.95) -> list[Caveat]:
    """One caveat per exponent that some row alone moves by more than the exponent's interval (the
    narrower of its half-widths with and without the row), naming up to ``NAMED`` such rows."""
    free = list(est.free_)
    law = est.spec.law_obj
    if law.curves or not {"params", "tokens"} <= set(law.columns):
        return []  # the exponents of N and D; a schedule law's alpha and beta are other quantities
    wanted = [p for p in EXPONENTS if p in free]
    n = len(df)
    if not wanted or n > MAX_ROWS or n < 8:
        return []
    Z, half, z, order = loo_params(est, df, level)
    from repetita.laws.uncertainty import laplace

    own = laplace(est, df, level=level)["params"]
    # the yardstick: the narrower of the exponent's interval with every row (a row of high leverage that
    # alone pins the exponent) and without the row (an outlier that widens the interval it is judged by)
    half = np.minimum(half, [[own[p]["median"] - own[p]["lo"] if np.isfinite(own[p]["std"]) else np.inf
                              for p in free]])
    out = []
    for p in wanted:
        j = free.index(p)
        moved = np.abs(Z[:, j] - z[j])
        big = np.flatnonzero((moved > half[:, j]) & (half[:, j] > 0))
        if not big.size:
            continue
        big = big[np.argsort(-moved[big] / half[big, j])]
        named = "; ".join(f"without row {int(order[i]) + 1} it is {Z[i, j]:.3g}" for i in big[:NAMED])
        more = f" (and {big.size - NAMED} more rows)" if big.size > NAMED else ""
        out.append(Caveat(Kind.INFLUENTIAL, f"{p} = {z[j]:.3g} rests on single rows: {named}{more}, farther off "
                          f"than its own {100 * level:g}% interval; check those rows, or refit without them (--where)"))
    return out
