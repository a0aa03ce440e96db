"""Scaling-law forms as pure, vectorized functions of parameters and data columns.

Every form returns **log predicted loss** with shape ``(S, n)`` for a batch of ``S`` parameter
vectors ``theta`` (shape ``(S, P)``) and ``n`` data rows. Working in log space is what the fits
minimise (Huber on log loss, after Hoffmann et al. 2022 and Muennighoff et al. 2023), and a batch
axis lets the fitter score a whole initialisation grid in one call.

The functions only use operations that are analytic in ``theta`` (exp, log, powers) or that select
a branch by the real part (``np.minimum``/``np.maximum`` compare complex numbers by real part
first), so they accept complex ``theta``: that is how :mod:`repetita.laws.fit` gets exact
gradients by complex-step differentiation without a hand-written derivative per law.

Amplitudes and the irreducible loss are fitted as logs (``a = ln A``, ``b = ln B``, ``e = ln E``),
as in both reference fits; the natural values are reported by :func:`natural_params`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from repetita.laws.law import Law, col, lse, param, register_law

Array = np.ndarray


# --- Chinchilla: L = E + A / N^alpha + B / D^beta ---------------------------------------------


def chinchilla(theta: Array, X: dict[str, Array]) -> Array:
    """theta = (a, b, e, alpha, beta)."""
    a, b, e, alpha, beta = (param(theta, i) for i in range(5))
    return lse(a - alpha * col(X, "log_params"), b - beta * col(X, "log_tokens"), e)


def chinchilla_jac(theta: Array, X: dict[str, Array]) -> tuple[Array, Array]:
    """Log loss (S, n) and its Jacobian (S, 5, n) for a batch of theta, in closed form.

    log L = lse(t1, t2, t3) with t1 = a - alpha ln N, t2 = b - beta ln D, t3 = e, so each derivative is a
    softmax weight w_k (times -ln N or -ln D for the exponents). Real arithmetic: about 4x cheaper than
    the complex step, which matters when a bootstrap refines a thousand resamples at once.
    """
    a, b, e, alpha, beta = (theta[:, i : i + 1] for i in range(5))
    ln_n, ln_d = col(X, "log_params"), col(X, "log_tokens")
    t = np.stack(np.broadcast_arrays(a - alpha * ln_n, b - beta * ln_d, e + 0.0 * ln_n))  # (3, S, n)
    m = t.max(axis=0)
    w = np.exp(t - m)
    tot = w.sum(axis=0)
    w /= tot
    jac = np.stack([w[0], w[1], w[2], -w[0] * ln_n, -w[1] * ln_d], axis=1)
    return m + np.log(tot), jac


# --- Data-constrained (Muennighoff et al. 2023) ------------------------------------------------


def compute_optimal_params(tokens: Array, a, b, alpha, beta) -> Array:
    """Chinchilla compute-optimal parameter count for a token count: N = G (D G)^(beta/alpha).

    G = (alpha A / (beta B))^(1/(alpha+beta)) is the scale of the Chinchilla-optimal allocation
    (Muennighoff et al. 2023, App. A); datablations uses it to define U_N, the largest model the
    unique data can feed at compute optimality.
    """
    log_g = (np.log(alpha) + a - np.log(beta) - b) / (alpha + beta)
    return np.exp(log_g + (beta / alpha) * (np.log(tokens) + log_g))


def effective_data(unique: Array, tokens: Array, rd_star) -> Array:
    """D' = min(D, U) + U R_D* (1 - exp(-R_D / R_D*)), with R_D = max(D/U - 1, 0) repeated epochs.

    The one implementation of effective data (the laws' data term and planning both call it). Below one
    epoch only the tokens seen count (D' = D); the published form credits D' = U there, which would let a
    planner pick absurdly small token counts on a large corpus. Every published run has D >= U, so the
    published fits are unchanged.
    """
    repeats = np.maximum(tokens / unique - 1.0, 0.0)
    return np.minimum(tokens, unique + 0.0 * tokens) + unique * rd_star * (1.0 - np.exp(-repeats / rd_star))


def effective_params(params: Array, unique: Array, a, b, alpha, beta, rn_star) -> Array:
    """N' = U_N + U_N R_N* (1 - exp(-R_N / R_N*)), U_N = min(N, N_opt(U)), R_N = max(N/U_N - 1, 0)."""
    u_n = np.minimum(params, compute_optimal_params(unique, a, b, alpha, beta))
    excess = np.maximum(params / u_n - 1.0, 0.0)
    return u_n + u_n * rn_star * (1.0 - np.exp(-excess / rn_star))


def _dc_core(theta: Array, X: dict[str, Array], rd_star: Array) -> Array:
    a, b, e, alpha, beta = (param(theta, i) for i in range(5))
    rn_star = theta[:, -1:]
    n_eff = effective_params(col(X, "params"), col(X, "unique_tokens"), a, b, alpha, beta, rn_star)
    d_eff = effective_data(col(X, "unique_tokens"), col(X, "tokens"), rd_star)
    return lse(a - alpha * np.log(n_eff), b - beta * np.log(d_eff), e)


def data_constrained(theta: Array, X: dict[str, Array]) -> Array:
    """theta = (a, b, e, alpha, beta, rd_star, rn_star): constant R_D* as published."""
    return _dc_core(theta, X, param(theta, 5))


# --- N-aware reuse: R_D* grows with the dataset ------------------------------------------------

# How R_D* depends on the unique-token count U. Multi-epoch SGD theory puts the saturation epoch
# count at Theta(log N) samples, so "log" is the default; the others exist to be compared against
# it with held-out error. Each maps (coefficients (S, 2), log U (1, n)) -> R_D* (S, n).
RD_FORMS: dict[str, Callable[[Array, Array, Array], Array]] = {
    # R_D*(U) = r0 + r1 ln U
    "log": lambda r0, r1, log_u: r0 + r1 * log_u,
    # R_D*(U) = r0 * U^r1 (a power law; r1 = 0 recovers the constant law)
    "power": lambda r0, r1, log_u: r0 * np.exp(r1 * log_u),
}


# R_D* must stay positive: a negative value would make repeated data worth exponentially *more*
# than fresh data. Below the floor, repeats are worth nothing (D' -> U), the physical limit; without
# it the unconstrained log form fits datablations with R_D* < 0 for the smallest datasets.
RD_FLOOR = 1e-3


def _floored(r: Array) -> Array:
    return np.maximum(r, RD_FLOOR + 0.0 * r)  # complex-safe: picks by real part, keeps the derivative


def make_reuse(form: str = "log") -> Callable[[Array, Array], Array]:
    rd = RD_FORMS[form]

    def reuse(theta: Array, X: dict[str, Array]) -> Array:
        """theta = (a, b, e, alpha, beta, r0, r1, rn_star)."""
        return _dc_core(theta, X, _floored(rd(param(theta, 5), param(theta, 6), col(X, "log_unique"))))

    return reuse


def rd_star_of(form: str, r0, r1, unique) -> Array:
    """R_D*(U) of a fitted reuse law, for planning."""
    return _floored(RD_FORMS[form](np.asarray(r0), np.asarray(r1), np.log(np.asarray(unique, dtype=float))))


# --- Power law along one axis: L = E + A x^-alpha ----------------------------------------------


def power(theta: Array, X: dict[str, Array]) -> Array:
    """theta = (e, a, alpha); x is whichever column was chosen as the axis."""
    e, a, alpha = (param(theta, i) for i in range(3))
    return lse(a - alpha * col(X, "log_x"), e)


# --- Multi-power law (Luo et al. 2025) ---------------------------------------------------------


def multipower(theta: Array, X: dict[str, Array]) -> Array:
    """L(t) = L0 + A (S1(t) + S_W)^-alpha - LD(t), LD(t) = B sum_k (eta_{k-1} - eta_k) G(eta_k^-gamma S_k(t)),

    G(x) = 1 - (C x + 1)^-beta, S_k(t) = sum_{tau=k..t} eta_tau. theta = (L0, A, alpha, B, C, beta, gamma).

    The schedule is pre-binned by :func:`repetita.laws.multipower.prepare`: ``X["area"]`` is
    S1 + S_W per row, and the LR drops are given on a coarse grid of bins (``drop``, ``eta_k``,
    ``S_bin`` = S_k(t) for each (row, bin) pair, zero where the bin lies after t).
    """
    l0, amp, alpha, b, c, beta, gamma = (param(theta, i) for i in range(7))
    area = col(X, "area")
    drop = X["drop"]  # (n, m): LR decrease in bin k for the curve of row i, 0 where k > t
    s_k = X["s_k"]  # (n, m): S_k(t_i)
    log_eta_k = X["log_eta_k"]  # (n, m)
    # x = eta_k^-gamma S_k(t), evaluated for every (S, n, m) triple
    x = np.exp(-gamma[:, :, None] * log_eta_k[None]) * s_k[None]
    g = 1.0 - (c[:, :, None] * x + 1.0) ** (-beta[:, :, None])
    ld = b * np.einsum("snm,nm->sn", g, drop)
    loss = l0 + amp * area ** (-alpha) - ld
    return np.log(loss)


def multipower_grad(theta: Array, X: dict[str, Array]) -> tuple[Array, Array]:
    """Log loss (n,) and its Jacobian (7, n) at one theta, in closed form.

    The multi-power design is (rows x LR-drop bins), so complex-step differentiation would cost
    seven complex passes over it; the analytic Jacobian costs about two real ones.
    """
    l0, amp, alpha, b, c, beta, gamma = (float(v) for v in theta)
    area, drop, s_k, log_eta = X["area"], X["drop"], X["s_k"], X["log_eta_k"]
    x = np.exp(-gamma * log_eta) * s_k
    u = c * x + 1.0
    u_pow = u ** (-beta)
    g = 1.0 - u_pow
    pw = area ** (-alpha)
    loss = l0 + amp * pw - b * np.einsum("nm,nm->n", g, drop)
    dg_du = beta * u_pow / u  # d g / d u
    jac = np.stack(
        [
            np.ones_like(area),
            pw,
            -amp * pw * np.log(area),
            -np.einsum("nm,nm->n", g, drop),
            -b * np.einsum("nm,nm->n", dg_du * x, drop),
            -b * np.einsum("nm,nm->n", u_pow * np.log(u), drop),
            b * c * np.einsum("nm,nm->n", dg_du * x * log_eta, drop),
        ]
    )
    return np.log(loss), jac / loss


_INF = np.inf


def _chinchilla_data_term(p: dict, n: Array) -> tuple:
    """E_rest(N) = E + A / N^alpha, then B and beta (shared by every Chinchilla-based law)."""
    return np.exp(p["e"]) + np.exp(p["a"]) / n ** p["alpha"], float(np.exp(p["b"])), float(p["beta"])


def _power_data_term(p: dict, n: Array) -> tuple:
    return np.asarray(np.exp(p["e"])), float(np.exp(p["a"])), float(p["alpha"])


def _reuse_rd(form: str):
    return lambda p, u: rd_star_of(form, p["r0"], p["r1"], u)


# Seeds for the repetition constants: log-spaced over what the data can tell apart (R* from a fraction
# of an epoch to far beyond any table's epochs), crossed with the nested Chinchilla fit.
_R_SEEDS = (0.5, 2.0, 6.0, 20.0, 60.0, 300.0)


def _dc_seeds(parent: dict, X: dict) -> list[dict]:
    return [parent | {"rd_star": rd, "rn_star": rn} for rd in _R_SEEDS for rn in _R_SEEDS]


def _reuse_seeds(form: str):
    def seeds(parent: dict, X: dict) -> list[dict]:
        """R_D*(U) through the constant law's R_D* at the median U, with slopes from steeply falling to
        steeply rising. Falling slopes matter: on datablations R_D* falls with U (docs/laws.md), and with
        rising slopes only, which of two optima (objectives 0.01212 and 0.01246) the fit reached depended
        on the CPU the grid was ranked on."""
        log_u = float(np.median(X["log_unique"]))
        out = []
        slopes = (0.5, 1.0, 2.0, 4.0, 8.0) if form == "log" else (0.05, 0.1, 0.2, 0.4, 0.8)
        for r1 in (0.0, *slopes, *(-r for r in slopes)):
            r0 = parent["rd_star"] - r1 * log_u if form == "log" else parent["rd_star"] * np.exp(-r1 * log_u)
            out.append({k: v for k, v in parent.items() if k != "rd_star"} | {"r0": r0, "r1": r1})
        return out

    return seeds


_CHIN_BOUNDS = {
    "a": (-_INF, _INF),
    "b": (-_INF, _INF),
    "e": (-_INF, _INF),
    "alpha": (1e-6, 5.0),
    "beta": (1e-6, 5.0),
}
# Besiroglu et al. 2024's 4,500-start grid (alpha, beta in 0..2 by 0.5; e in -1..1 by 0.5; a, b in
# 0..25 by 5). alpha = beta = 0 is a degenerate start, kept because their count includes it.
_CHIN_GRID = {
    "a": (0.0, 5.0, 10.0, 15.0, 20.0, 25.0),
    "b": (0.0, 5.0, 10.0, 15.0, 20.0, 25.0),
    "e": (-1.0, -0.5, 0.0, 0.5, 1.0),
    "alpha": (0.0, 0.5, 1.0, 1.5, 2.0),
    "beta": (0.0, 0.5, 1.0, 1.5, 2.0),
}
# datablations' grid for the repetition constants; 0 is a singular start they include, clipped to
# the lower bound by the fitter.
_RSTAR_GRID = (0.0, 6.67, 13.3, 20.0)
_DC_COLUMNS = ("params", "tokens", "unique_tokens")

for _law in (
    Law(
        "chinchilla",
        chinchilla,
        ("a", "b", "e", "alpha", "beta"),
        _CHIN_BOUNDS,
        _CHIN_GRID,
        ("params", "tokens"),
        log_params=("a", "b", "e"),
        doc="L = E + A/N^alpha + B/D^beta (Hoffmann et al. 2022)",
        batch_grad=chinchilla_jac,
        rd_star=lambda p, u: np.full_like(u, np.inf),  # no repetition penalty: every epoch counts fully
        data_term=_chinchilla_data_term,
        axis="tokens",
    ),
    Law(
        "data-constrained",
        data_constrained,
        ("a", "b", "e", "alpha", "beta", "rd_star", "rn_star"),
        {**_CHIN_BOUNDS, "rd_star": (1e-3, 1e6), "rn_star": (1e-3, 1e6)},
        {**_CHIN_GRID, "rd_star": _RSTAR_GRID, "rn_star": _RSTAR_GRID},
        _DC_COLUMNS,
        log_params=("a", "b", "e"),
        doc="Chinchilla on effective data D' and params N' with constant R_D*, R_N* (Muennighoff et al. 2023)",
        study=True,
        parent="chinchilla",
        seeds=_dc_seeds,
        rd_star=lambda p, u: np.full_like(u, p["rd_star"]),
        data_term=_chinchilla_data_term,
        axis="tokens",
    ),
    Law(
        "reuse",
        make_reuse("log"),
        ("a", "b", "e", "alpha", "beta", "r0", "r1", "rn_star"),
        {**_CHIN_BOUNDS, "r0": (-1e4, 1e4), "r1": (-1e3, 1e3), "rn_star": (1e-3, 1e6)},
        {**_CHIN_GRID, "r0": (-60.0, -20.0, 0.0, 10.0), "r1": (0.0, 1.0, 2.0, 4.0), "rn_star": _RSTAR_GRID},
        _DC_COLUMNS,
        log_params=("a", "b", "e"),
        doc="data-constrained with R_D*(U) = r0 + r1 ln U (saturation grows like log of the dataset)",
        study=True,
        parent="data-constrained",
        seeds=_reuse_seeds("log"),
        rd_star=_reuse_rd("log"),
        data_term=_chinchilla_data_term,
        axis="tokens",
    ),
    Law(
        "reuse-power",
        make_reuse("power"),
        ("a", "b", "e", "alpha", "beta", "r0", "r1", "rn_star"),
        {**_CHIN_BOUNDS, "r0": (1e-6, 1e6), "r1": (-2.0, 2.0), "rn_star": (1e-3, 1e6)},
        {**_CHIN_GRID, "r0": (0.01, 0.3, 3.0, 15.0), "r1": (0.0, 0.1, 0.2, 0.4), "rn_star": _RSTAR_GRID},
        _DC_COLUMNS,
        log_params=("a", "b", "e"),
        doc="data-constrained with R_D*(U) = r0 U^r1",
        parent="data-constrained",
        seeds=_reuse_seeds("power"),
        rd_star=_reuse_rd("power"),
        data_term=_chinchilla_data_term,
        axis="tokens",
    ),
    Law(
        "power",
        power,
        ("e", "a", "alpha"),
        {"e": (-_INF, _INF), "a": (-_INF, _INF), "alpha": (1e-6, 10.0)},
        {
            "e": (-3.0, -2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5, 2.0),
            "a": (-5.0, -2.0, 0.0, 2.0, 5.0, 10.0, 15.0),
            "alpha": (0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 1.5, 2.0),
        },
        ("x",),
        log_params=("e", "a"),
        doc="L = E + A x^-alpha along one axis (params, members, tokens, ...)",
        data_term=_power_data_term,
        needs_axis=True,
    ),
    Law(
        "multipower",
        multipower,
        ("L0", "A", "alpha", "B", "C", "beta", "gamma"),
        {
            "L0": (0.0, 100.0),
            "A": (1e-8, 1e3),
            "alpha": (1e-4, 5.0),
            "B": (0.0, 1e6),
            "C": (1e-6, 1e3),
            "beta": (1e-4, 5.0),
            "gamma": (1e-4, 5.0),
        },
        {
            "L0": (2.0, 2.5, 3.0, 3.5),
            "A": (0.3, 0.6, 1.0),
            "alpha": (0.3, 0.5),
            "B": (100.0, 300.0, 600.0, 1000.0),
            "C": (0.5, 2.0),
            "beta": (0.4, 0.6),
            "gamma": (0.4, 0.6),
        },
        ("step", "lr", "loss"),
        doc="multi-power law: loss curve as a function of the LR schedule (Luo et al. 2025)",
        grad=multipower_grad,
        axis="step",
        curves=True,
    ),
):
    register_law(_law)
