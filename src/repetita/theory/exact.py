"""Exact one-pass SGD risk for linear regression with a diagonal covariance.

One SGD step on a fresh sample (x, y), with e = w - w*:

    e' = (I - eta x x^T) e + eta xi x

so the second moment M = E e e^T obeys

    M' = M - eta (H M + M H) + eta^2 E[x x^T M x x^T] + eta^2 sigma^2 H.

For x = H^(1/2) z with independent z_i (E z^2 = 1, E z^4 = kappa) the fourth-moment term is
2 H M H + tr(H M) H + (kappa - 3) H^(1/2) diag(H^(1/2) M H^(1/2)) H^(1/2) (kappa = 3 for Gaussian x
gives the familiar 2HMH + tr(HM)H).  With H = diag(lambda) the diagonal m_i = M_ii closes on itself:

    m_i' = a_i m_i + eta^2 lambda_i (sum_j lambda_j m_j + sigma^2),
    a_i  = 1 - 2 eta lambda_i + (kappa - 1) eta^2 lambda_i^2,

i.e. m' = A m + eta^2 sigma^2 lambda with A = diag(a) + eta^2 lambda lambda^T (symmetric), m_0 = w*^2,
and the excess risk is R = 1/2 lambda^T m.  Stepping it costs O(d) per step
(``risk_by_recursion``); diagonalizing A once gives R after any (even non-integer) number of steps n:

    R(n) = 1/2 sum_k u_k [ mu_k^n v_k + eta^2 sigma^2 u_k (1 - mu_k^n) / (1 - mu_k) ],
    u = Q^T lambda, v = Q^T m_0, A = Q diag(mu) Q^T                          (``one_pass_risk``)

Stability: A - diag(a) is positive semi-definite, so by the secular equation of a diagonal plus
rank-one matrix the top eigenvalue is < 1 iff every a_i < 1 and eta^2 sum_i lambda_i^2 / (1 - a_i) < 1:

    s(eta) = sum_i eta lambda_i / (2 - (kappa - 1) eta lambda_i) < 1.

s increases with eta, so the stable range is 0 < eta < eta_max with s(eta_max) = 1 (``eta_max``).
For Gaussian x, s(eta) <= eta tr H / (2 - 2 eta lambda_max) gives the simpler sufficient bound
eta < 2 / (tr H + 2 lambda_max).  The bottom eigenvalue stays above -1 for the designs offered
(min a_i >= 1 - 1/(kappa - 1) > -1 for kappa > 3/2, and a_i = (1 - eta lambda_i)^2 >= 0 for kappa = 1).
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import brentq

from repetita.errors import UserError, require
from repetita.theory.spectra import Problem


def eta_max(problem: Problem) -> float:
    """Largest stable constant learning rate of one-pass SGD (exclusive bound); see module docstring."""
    lam, k1 = problem.lam, problem.kappa - 1.0
    hi = 2.0 / (k1 * lam.max()) if k1 > 0 else np.inf  # every a_i < 1 needs eta lambda_i (kappa-1) < 2

    def s(eta: float) -> float:
        return float(np.sum(eta * lam / (2.0 - k1 * eta * lam))) - 1.0

    if not np.isfinite(hi):
        return 2.0 / float(lam.sum())  # kappa = 1: s(eta) = eta tr H / 2 exactly
    return brentq(s, 0.0, hi * (1.0 - 1e-15), xtol=1e-300, rtol=1e-14)


def check_eta(problem: Problem, eta) -> np.ndarray:
    """Raise a UserError naming the bound when any learning rate is outside (0, eta_max)."""
    etas = np.atleast_1d(np.asarray(eta, dtype=float))
    top = eta_max(problem)
    require(bool(np.all(np.isfinite(etas)) and np.all(etas > 0)), f"learning rate must be positive, got {eta}")
    bad = etas[etas >= top]
    if bad.size:
        raise UserError(
            f"learning rate {bad[0]:.6g} is outside the stable range 0 < eta < {top:.6g} "
            f"(one-pass SGD diverges there for this spectrum and design)"
        )
    return etas


def second_moment_map(problem: Problem, eta: float) -> tuple[np.ndarray, np.ndarray]:
    """(A, b) of the diagonal recursion m' = A m + b."""
    lam, eta = problem.lam, float(eta)
    a = 1.0 - 2.0 * eta * lam + (problem.kappa - 1.0) * eta**2 * lam**2
    A = np.diag(a) + eta**2 * np.outer(lam, lam)
    return A, eta**2 * problem.sigma**2 * lam


def risk_by_recursion(problem: Problem, eta: float, n_steps: int) -> np.ndarray:
    """R after 0, 1, ..., n_steps one-pass steps by stepping the O(d) recursion (the reference)."""
    lam, eta = problem.lam, float(eta)
    a = 1.0 - 2.0 * eta * lam + (problem.kappa - 1.0) * eta**2 * lam**2
    m = problem.wstar**2
    out = np.empty(int(n_steps) + 1)
    out[0] = 0.5 * lam @ m
    for t in range(1, int(n_steps) + 1):
        m = a * m + eta**2 * lam * (lam @ m + problem.sigma**2)
        out[t] = 0.5 * lam @ m
    return out


def _spectral_parts(problem: Problem, eta: float):
    """Eigenpairs of I - A scaled by 1/eta (kept in that form so 1 - mu keeps its relative precision)."""
    lam, eta = problem.lam, float(eta)
    # (I - A)/eta = diag(lambda (2 - (kappa-1) eta lambda)) - eta lambda lambda^T
    B = np.diag(lam * (2.0 - (problem.kappa - 1.0) * eta * lam)) - eta * np.outer(lam, lam)
    nu_scaled, Q = np.linalg.eigh(B)
    return nu_scaled, Q.T @ lam, Q.T @ (problem.wstar**2)


def one_pass_risk(problem: Problem, eta: float, n) -> np.ndarray:
    """Exact expected excess risk after n one-pass steps at constant eta (n may be an array, real >= 0)."""
    eta = float(check_eta(problem, eta)[0])
    n = np.asarray(n, dtype=float)
    require(bool(np.all(n >= 0)), "the number of steps must be non-negative")
    return _risk_from_parts(_spectral_parts(problem, eta), eta, problem.sigma, n)


def _risk_from_parts(parts, eta: float, sigma: float, n: np.ndarray) -> np.ndarray:
    nu_scaled, u, v = parts
    nu = eta * nu_scaled  # 1 - mu, in (0, 2) inside the stable range
    mu = 1.0 - nu
    nn = n[..., None]
    # mu^n; a negative mu (possible only at large eta) takes the sign of an integer power.
    pw = np.exp(nn * np.log(np.abs(mu))) * np.where(mu < 0, np.where(np.floor(nn) % 2 == 1, -1.0, 1.0), 1.0)
    noise = eta * sigma**2 * u / nu_scaled  # eta^2 sigma^2 u / (1 - mu)
    return 0.5 * np.sum(u * (pw * v + noise * (1.0 - pw)), axis=-1)


def optimal_one_pass(problem: Problem, n, *, per_decade: int = 100, eta_lo: float | None = None):
    """Tuned one-pass risk R*(1, n) = min_eta R(1, n; eta) and its argmin, for an array of n.

    The risk is exact and smooth in log eta, so a dense log grid (``per_decade`` points per decade)
    followed by a parabola through the three points around the grid minimum (in log R vs log eta)
    is accurate to well below Monte Carlo precision.  Returns (eta_star, risk_star) arrays.
    """
    n = np.atleast_1d(np.asarray(n, dtype=float))
    require(bool(np.all(n >= 1)), "one-pass sample sizes must be >= 1")
    top = eta_max(problem)
    hi = top * (1.0 - 1e-6)
    # The tuned rate is ~ log(n) / (n lambda) or larger; 1e-2 / n_max of eta_max sits well below it.
    lo = eta_lo if eta_lo is not None else top * 1e-2 / n.max()
    m = max(8, int(np.ceil(per_decade * np.log10(hi / lo))) + 1)
    grid = np.geomspace(lo, hi, m)
    logr = np.empty((m, n.size))
    for j, eta in enumerate(grid):
        logr[j] = np.log(np.maximum(_risk_from_parts(_spectral_parts(problem, eta), eta, problem.sigma, n), 1e-300))
    return _parabola_min(np.log(grid), logr)


def _parabola_min(x: np.ndarray, y: np.ndarray):
    """Vertex of the parabola through the grid minimum and its neighbours, per column of y (x uniform)."""
    j = np.argmin(y, axis=0)
    cols = np.arange(y.shape[1])
    jc = np.clip(j, 1, x.size - 2)
    y0, y1, y2 = y[jc - 1, cols], y[jc, cols], y[jc + 1, cols]
    h = x[1] - x[0]
    curv = y0 - 2 * y1 + y2
    ok = (j == jc) & (curv > 0)
    shift = np.where(ok, 0.5 * (y0 - y2) / np.where(ok, curv, 1.0), 0.0)  # in grid steps, |shift| <= 1/2
    xs = x[jc] + shift * h
    ys = y1 - 0.25 * (y0 - y2) * shift
    xs = np.where(ok, xs, x[j])
    ys = np.where(ok, ys, y[j, cols])
    return np.exp(xs), np.exp(ys)


class OnePassCurve:
    """n -> R*(1, n) on a dense log grid of n, with its inverse (the map behind E(K, N) = N'/N).

    The tuned one-pass risk decreases in n; it is made monotone with a running minimum (a guard,
    never active by more than the grid's rounding in the problems tested) and interpolated linearly
    in log-log coordinates.
    """

    def __init__(self, problem: Problem, n_max: float = 1e9, points_per_decade: int = 50):
        self.problem = problem
        self.n_ = np.geomspace(1.0, float(n_max), int(points_per_decade * np.log10(n_max)) + 1)
        self.eta_, risk = optimal_one_pass(problem, self.n_)
        self.risk_ = np.minimum.accumulate(risk)

    def risk(self, n) -> np.ndarray:
        return np.exp(np.interp(np.log(n), np.log(self.n_), np.log(self.risk_)))

    def eta(self, n) -> np.ndarray:
        return np.exp(np.interp(np.log(n), np.log(self.n_), np.log(self.eta_)))

    def equivalent_n(self, risk) -> np.ndarray:
        """N' with R*(1, N') = risk; NaN where risk lies outside the tabulated range."""
        r = np.asarray(risk, dtype=float)
        x, y = -np.log(self.risk_), np.log(self.n_)  # x increasing
        with np.errstate(divide="ignore", invalid="ignore"):
            lr = -np.log(r)
        out = np.exp(np.interp(lr, x, y))
        return np.where((lr < x[0]) | (lr > x[-1]) | ~np.isfinite(lr), np.nan, out)
