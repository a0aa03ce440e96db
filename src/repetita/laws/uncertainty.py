"""Uncertainty of a law fit: a vectorized bootstrap and a sandwich (Laplace) interval.

Bootstrap. Each resample is a vector of row counts used as Huber weights (the same thing as
duplicating rows; it also works for loss curves, whose steps must stay unique). All resamples are
refined *together*: one batched call of the law form gives every resample's log predictions and, by
complex-step differentiation along each parameter, their exact Jacobians; a damped Gauss-Newton step
on the iteratively reweighted Huber objective (weights min(1, delta/|r|), which majorize the Huber
loss, Holland and Welsch 1977) is then solved for every resample at once. Resamples start at the
full-data optimum and, where the fit found other distinct optima, from those too (the objective can be
multi-modal, as on datablations); each resample keeps its best. No Python loop runs over resamples.

Laplace. The local linearisation at the optimum with a robust residual scale gives normal intervals
on the fitted scale (ln A for log-parametrised amplitudes, so intervals on A stay positive). It costs
one Jacobian: the fast default.
"""

from __future__ import annotations

import numpy as np

from repetita.blas import single_threaded
from repetita.errors import UserError, require

_H = 1e-20  # complex step
_CHUNK = 4_000_000  # complex elements per law call


def batched_log_pred_jac(problem, Z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Log predictions (B, n) and Jacobians w.r.t. the free parameters (B, F, n) for a batch of free vectors."""
    with np.errstate(all="ignore"):  # overflow in an untaken branch (N' at huge N): non-finite rows are handled
        return _batched_log_pred_jac(problem, Z)


def _batched_log_pred_jac(problem, Z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    Z = np.atleast_2d(Z)
    B, F = Z.shape
    theta = problem.theta(Z)  # (B, P)
    P, n = theta.shape[1], problem.logy.size
    logp, jac = np.empty((B, n)), np.empty((B, P, n))
    if problem.law.batch_grad is not None:
        logp, jac = problem.law.batch_grad(theta, problem.X)
    elif problem.law.grad is not None:  # closed-form Jacobian (multipower): one theta at a time
        for b in range(B):
            logp[b], jac[b] = problem.law.grad(theta[b], problem.X)
    else:
        step = max(1, _CHUNK // (n * (P + 1)))
        eye = 1j * _H * np.eye(P)
        for s in range(0, B, step):
            th = theta[s : s + step]
            batch = np.concatenate([th[:, None, :].astype(complex), th[:, None, :] + eye[None]], axis=1)
            out = problem.law.func(batch.reshape(-1, P), problem.X).reshape(len(th), P + 1, n)
            logp[s : s + step], jac[s : s + step] = out[:, 0].real, out[:, 1:].imag / _H
    return logp, np.einsum("bpn,pf->bfn", jac, problem.M)


def refine_batch(problem, Z0: np.ndarray, W: np.ndarray, max_iter: int = 200, tol: float = 1e-10) -> tuple:
    """Minimise every row-weighted objective ``W[b]`` from ``Z0[b]`` at once (damped IRLS Gauss-Newton).

    Returns (Z (B, F), objectives (B,), iterations run).
    """
    Z = np.clip(np.array(Z0, dtype=float), problem.lo, problem.hi)
    B, F = Z.shape
    d = problem.delta
    f = problem.objectives(Z, W)
    lam = np.full(B, 1e-3)
    active = np.isfinite(f)
    iters = 0
    while iters < max_iter:
        idx = np.flatnonzero(active)
        if idx.size == 0:
            break
        iters += 1
        with np.errstate(all="ignore"):
            logp, J = batched_log_pred_jac(problem, Z[idx])
            r = logp - problem.logy
            w = W[idx]
            g = np.einsum("bfn,bn->bf", J, w * np.clip(r, -d, d))
            irls = w * np.where(np.abs(r) <= d, 1.0, d / np.maximum(np.abs(r), 1e-300))
            H = np.einsum("bfn,bgn,bn->bfg", J, J, irls)
            diag = np.einsum("bff->bf", H)
            A = H + (lam[idx, None] * np.maximum(diag, 1e-12))[:, :, None] * np.eye(F)[None]
            try:
                step = -np.linalg.solve(A, g[..., None])[..., 0]
            except np.linalg.LinAlgError:
                step = -np.linalg.lstsq(A.reshape(-1, F), g.reshape(-1), rcond=None)[0].reshape(g.shape)
        step = np.where(np.isfinite(step), step, 0.0)
        trial = np.clip(Z[idx] + step, problem.lo, problem.hi)
        ft = problem.objectives(trial, w)
        better = ft < f[idx]
        gain = np.where(better, (f[idx] - ft) / np.maximum(np.abs(f[idx]), 1e-300), 0.0)
        Z[idx[better]] = trial[better]
        f[idx[better]] = ft[better]
        lam[idx] = np.where(better, np.maximum(lam[idx] / 3.0, 1e-9), lam[idx] * 4.0)
        # converged: an accepted step gained less than ``tol`` (relative), or steps keep failing even with
        # strong damping (the objective is flat to rounding there), or the step vanished
        done = (better & (gain < tol)) | (lam[idx] > 1e4) | (np.abs(step).max(axis=1) < 1e-14)
        active[idx[done]] = False
    return Z, f, iters


SINGULAR = 1e-6  # relative singular value of the unit-scaled Jacobian below which a direction is unidentified


def weak_directions(J: np.ndarray) -> dict:
    """What the rows do not determine, from the Jacobian (F, n) of the log predictions at an optimum.

    Columns are scaled to unit norm first: parameters on very different scales (r0 = 7000 beside
    alpha = 0.3) would otherwise hide or invent singular directions. Returns ``broken`` (a non-finite
    derivative: a term over- or underflows), ``dead`` (no dependence at all), the unit-scaled Jacobian
    ``unit`` (those rows zeroed), ``scale``, and ``singular``: (relative singular value, unit-space vector)
    for every direction below ``SINGULAR``. The one test of identifiability (diagnostics and intervals).
    """
    broken = ~np.all(np.isfinite(J), axis=1)
    J = np.where(np.isfinite(J), J, 0.0)
    scale = np.linalg.norm(J, axis=1)
    dead = ~broken & (scale <= 1e-9 * max(scale.max(), 1e-300))
    bad = broken | dead
    unit = J / np.where(bad, 1.0, scale)[:, None]
    unit[bad] = 0.0
    singular = []
    if J.shape[0] > 1 and not bad.all():
        _, sv, vt = np.linalg.svd(unit[~bad].T, full_matrices=False)
        for sing, v in zip(sv, vt, strict=True):
            if sing < SINGULAR * sv[0]:
                full = np.zeros(J.shape[0])
                full[~bad] = v
                singular.append((float(sing / sv[0]), full))
    return {"broken": broken, "dead": dead, "unit": unit, "scale": scale, "singular": singular}


def resample_counts(rng: np.random.Generator, n_rows: int, n_boot: int) -> np.ndarray:
    """Multinomial row counts of ``n_boot`` resamples of ``n_rows`` rows, shape (n_boot, n_rows)."""
    return rng.multinomial(n_rows, np.full(n_rows, 1.0 / n_rows), size=n_boot).astype(float)


@single_threaded
def bootstrap(est, df, n_boot: int, *, seed: int = 0, level: float = 0.95, starts: np.ndarray | None = None) -> dict:
    """Percentile intervals of every free parameter from ``n_boot`` row resamples, refined all at once.

    Returns ``{"params": {name: {lo, hi, median, std}}, "samples": (n_boot, free), ...}``. ``starts``
    (extra free vectors, e.g. other optima of the full fit) are tried for every resample as well.
    """
    require(n_boot >= 2, f"a bootstrap needs at least 2 resamples, got {n_boot}")
    require(0 < level < 1, f"level must lie in (0, 1), got {level}")
    est._check_fitted()
    problem = est.problem_for(df)
    free = problem.free
    rng = np.random.default_rng(seed)
    # counts over the design rows in table order (a curve table's design order is its own)
    W = resample_counts(rng, problem.logy.size, n_boot)
    z0 = np.array([est.params_[p] for p in free], dtype=float)
    candidates = [z0] + ([] if starts is None else list(np.atleast_2d(starts)))
    best_Z, best_f = None, None
    for z in candidates:
        Z, f, _ = refine_batch(problem, np.repeat(z[None, :], n_boot, axis=0), W)
        if best_Z is None:
            best_Z, best_f = Z, f
        else:
            take = f < best_f
            best_Z[take], best_f[take] = Z[take], f[take]
    q = (1 - level) / 2
    out = {
        p: {"lo": float(np.quantile(best_Z[:, j], q)), "hi": float(np.quantile(best_Z[:, j], 1 - q)),
            "median": float(np.median(best_Z[:, j])), "std": float(np.std(best_Z[:, j], ddof=1))}
        for j, p in enumerate(free)
    }
    return {"method": "bootstrap", "level": level, "n_boot": n_boot, "seed": seed, "params": out,
            "samples": best_Z, "objectives": best_f, "free": list(free)}


@single_threaded
def laplace(est, df, *, level: float = 0.95) -> dict:
    """Normal intervals of the free parameters at the optimum from the local linearisation (module docstring).

    The heteroscedasticity-consistent sandwich of the linearised fit (White 1980, with the n/(n-F)
    correction): Cov = (J^T J)^-1 (J^T diag(r^2) J) (J^T J)^-1, J the Jacobian of the log predictions
    w.r.t. the free parameters, r the log residuals. It does not assume equal noise on every row (the
    digitised or logged losses rarely have it). Compared with the 4,000-resample bootstrap on Epoch's
    240 Chinchilla points in docs/laws.md: within a factor 1.6 either way, so the bootstrap remains the
    interval to quote.
    """
    from scipy.stats import norm

    require(0 < level < 1, f"level must lie in (0, 1), got {level}")
    est._check_fitted()
    problem = est.problem_for(df)
    free = problem.free
    z = np.array([est.params_[p] for p in free], dtype=float)
    logp, J = batched_log_pred_jac(problem, z[None, :])
    r, J = logp[0] - problem.logy, J[0]
    n, F = r.size, len(free)
    # Unit-norm Jacobian columns: otherwise J J^T can be so ill-conditioned that a pseudo-inverse silently
    # drops a direction and reports a zero width for it.
    weak = weak_directions(J)
    Jn, scale = weak["unit"], weak["scale"]
    unknown = weak["broken"] | weak["dead"]
    r = np.where(np.isfinite(r), r, 0.0)
    Hinv = np.linalg.pinv(Jn @ Jn.T)
    cov = Hinv @ ((Jn * r**2) @ Jn.T) @ Hinv * n / max(n - F, 1)
    inv_scale = 1.0 / np.where(unknown, 1.0, scale)
    cov = cov * np.outer(inv_scale, inv_scale)
    sd = np.sqrt(np.maximum(np.diag(cov), 0.0))
    # A direction the rows do not determine, or a parameter pinned at a bound, has no normal interval:
    # its width is unbounded, not the zero a pseudo-inverse would report.
    for _, v in weak["singular"]:
        unknown |= np.abs(v) > 0.05
    tol = 1e-6 * np.maximum(1.0, np.abs(z))
    unknown |= (np.isfinite(problem.lo) & (z - problem.lo <= tol)) | (np.isfinite(problem.hi) & (problem.hi - z <= tol))
    sd = np.where(unknown, np.inf, sd)
    cov = np.where(unknown[:, None] | unknown[None, :], np.where(np.eye(F, dtype=bool), np.inf, 0.0), cov)
    zq = float(norm.ppf(0.5 + level / 2))
    out = {p: _interval(z[j], sd[j], zq, problem.lo[j], problem.hi[j]) for j, p in enumerate(free)}
    return {"method": "laplace", "level": level, "params": out, "cov": cov, "free": list(free)}


def _interval(z: float, sd: float, zq: float, lo_bound: float, hi_bound: float) -> dict:
    """A normal interval; for a parameter that must be positive (lower bound >= 0, e.g. R_D*, R_N*, the
    exponents) it is taken on the log scale (delta method: sd(ln z) = sd / z), so it is never negative.
    An interval that reaches a bound is clipped there and flagged: the data do not bound it on that side."""
    if lo_bound >= 0 and z > 0 and np.isfinite(sd):
        s = sd / z
        lo, hi = z * np.exp(-zq * s), z * np.exp(zq * s)
    else:
        lo, hi = z - zq * sd, z + zq * sd
    at_bound = bool(lo < lo_bound or hi > hi_bound)
    out = {"lo": float(max(lo, lo_bound)), "hi": float(min(hi, hi_bound)), "median": float(z), "std": float(sd)}
    if at_bound:
        out["at_bound"] = True
    return out


def draw(intervals: dict, n: int, seed: int = 0) -> np.ndarray:
    """Parameter samples (n, free) from a saved uncertainty record: its bootstrap samples, or normal
    draws from its Laplace covariance (for propagating uncertainty into plans)."""
    if intervals.get("samples") is not None:
        s = np.asarray(intervals["samples"], dtype=float)
        return s if len(s) <= n else s[np.random.default_rng(seed).choice(len(s), n, replace=False)]
    mean = np.array([intervals["params"][p]["median"] for p in intervals["free"]])
    cov = np.asarray(intervals["cov"], dtype=float)
    # parameters that must stay positive (``positive``: R_D*, R_N*, exponents) are drawn on the log scale
    # with the delta-method covariance, as their printed intervals are, so no draw goes negative
    pos = np.array([bool(x) for x in intervals.get("positive", [False] * len(mean))]) & (mean > 0)
    scale = np.where(pos, 1.0 / np.where(pos, mean, 1.0), 1.0)
    centre = np.where(pos, np.log(np.where(pos, mean, 1.0)), mean)
    z = np.random.default_rng(seed).multivariate_normal(centre, cov * np.outer(scale, scale), size=n)
    return np.where(pos, np.exp(np.where(pos, z, 0.0)), z)  # exp only where taken: no overflow elsewhere


def theta_draws(est, n: int, seed: int = 0, hold: list | None = None, log_positive: bool = True) -> np.ndarray | None:
    """Full parameter vectors (n, P) in the law's order, drawn from a fitted estimator's saved uncertainty
    (``est.uncertainty_``, read back from a fit file): the vectorized input of every planning function.

    None when the fit saved none; one line (``UserError``) when a parameter has no finite interval, unless
    ``hold`` is a list: those parameters are then held at their fitted value in every draw (their names
    are appended to ``hold``), so the draws carry the uncertainty of the identified ones only.
    ``log_positive=False`` draws every parameter on the fitted scale, as the sandwich itself is (the law
    benchmark's intervals, ``laws.intervals``), instead of positive ones on the log scale.
    """
    u = est.uncertainty_
    if not u or not u.get("free"):
        return None
    if u.get("cov") is not None:
        cov = np.array([[np.inf if v is None else v for v in row] for row in u["cov"]], dtype=float)
        bad = [p for p, v in zip(u["free"], np.diag(cov), strict=True) if not np.isfinite(v)]
        if bad and hold is not None and len(bad) < len(u["free"]):
            held = [i for i, p in enumerate(u["free"]) if p in bad]
            cov[held, :] = 0.0
            cov[:, held] = 0.0
            cov[~np.isfinite(cov)] = 0.0
            hold.extend(bad)
            bad = []
        if bad:
            raise UserError(f"the fit's parameters {', '.join(bad)} are not identified (no finite interval); "
                            "the plan has no interval")
        law = est.spec.law_obj
        u = u | {"cov": cov, "params": {p: {"median": est.params_[p]} for p in u["free"]},
                 "positive": [log_positive and law.bounds[p][0] >= 0 for p in u["free"]]}
    Z = draw(u, n, seed=seed)
    law = est.spec.law_obj
    theta = np.tile([est.params_[p] for p in law.params], (len(Z), 1))
    for j, p in enumerate(u["free"]):
        theta[:, law.params.index(p)] = Z[:, j]
    for follower, leader in (est.tie or {}).items():  # a tied parameter follows its leader in every draw
        theta[:, law.params.index(follower)] = theta[:, law.params.index(leader)]
    return theta


def prediction_interval(losses, est, level: float = 0.95, seed: int = 0) -> list[float] | None:
    """Interval of the loss a new run will *reach*, not of the law's mean: the predicted losses under the
    parameter draws (``losses``, shape (S,); one value without draws) times the scatter the fit shows,
    exp(eps) with eps ~ s t_dof (s = the fit's RMS log residual, Student t with the fit's degrees of
    freedom). The law benchmark (docs/laws.md) measures how often it covers held-out runs: 0.90-1.00 in
    size, compute and budget extrapolation on the datablations tables, 0.3-0.9 past the fitted epochs.
    None when the fit file records no residual scale."""
    from scipy.stats import t as student_t

    s, dof = est.residual_log_sd_, est.dof_
    if s is None or dof is None:
        return None
    losses = np.asarray(losses, dtype=float).ravel()
    losses = losses[np.isfinite(losses)]
    if losses.size == 0:
        return None
    q = ((1 - level) / 2, (1 + level) / 2)
    if losses.size == 1:
        half = float(student_t.ppf(q[1], dof)) * s
        return [float(losses[0] * np.exp(-half)), float(losses[0] * np.exp(half))]
    rng = np.random.default_rng(seed)
    reps = max(1, 4000 // losses.size)
    eps = s * rng.standard_t(dof, size=(reps, losses.size))
    return np.quantile((losses[None, :] * np.exp(eps)).ravel(), q).tolist()


def percentile_band(values, level: float) -> np.ndarray:
    """(2, ...) lower and upper percentiles over the draws (axis 0), ignoring draws without a value; a
    quantity no draw has (an overfitting law's E(K)) is NaN without numpy's all-NaN warning."""
    import warnings

    q = ((1 - level) / 2, (1 + level) / 2)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanquantile(np.asarray(values, dtype=float), q, axis=0)
