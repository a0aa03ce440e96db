"""Optimal learning rate per (K, N), the effective reuse rate E(K, N) and its phase transition.

Definitions (all risks are expected excess risks, the learning rate tuned for the expectation):

    R*(K, N) = min_eta E R(w after K epochs over N samples; eta)         (Monte Carlo, simulate.py)
    R*(1, n) = min_eta E R(w after n one-pass steps on fresh samples)     (exact, exact.py)
    E(K, N)  = N'/N  with  R*(1, N') = R*(K, N)

so E(K, N) counts how many fresh-data epochs K repeated epochs are worth; both sides tune eta in
the same way, for the expected risk.  Theory (multi-epoch SGD on well-conditioned linear regression)
predicts E ~ K while K << log N and a plateau Theta(log N) beyond, and
R*(K, N) ~ C1 log(KN)/(KN) in the first regime and ~ C2/N in the second.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import numpy as np

from repetita.errors import require
from repetita.theory.exact import OnePassCurve, eta_max
from repetita.theory.simulate import ORDERS, SimConfig, linear_control_mean, simulate, simulate_groups
from repetita.theory.spectra import Problem


@dataclass(frozen=True)
class ReuseConfig:
    """Everything a reuse table depends on; stored beside every result."""

    Ns: tuple[int, ...] = (1000, 10000)
    Ks: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64)
    spectrum: str = "well:0.05"
    d: int = 10
    sigma: float = 0.1
    wstar: str = "flat"
    design: str = "gaussian"
    replicates: int | tuple[int, ...] = 64  # one value, or one per N (in the order of Ns)
    fine_points: int = 9  # stage-2 learning rates per (K, N), spanning one coarse step either side
    coarse_ratio: float = 1.4  # stage-1 grid spacing
    order: str = "reshuffle"
    fraction: float = 0.5  # K*(N): where E(K, N) first falls below fraction * K
    n_boot: int = 200
    control: bool = True  # linearized-SGD control variate (see simulate.linear_control_mean)
    seed: int = 0
    threads: int | None = field(default=None, compare=False)

    def __post_init__(self):
        if isinstance(self.replicates, int | np.integer):
            reps = (int(self.replicates),) * len(self.Ns)
        else:
            reps = tuple(int(r) for r in self.replicates)
            require(len(reps) == len(self.Ns), f"replicates: {len(reps)} values for {len(self.Ns)} values of N")
        require(min(reps) >= 2, f"replicates must be >= 2 (standard errors need two), got {self.replicates}")
        require(len(set(self.Ns)) == len(self.Ns), f"N values must be distinct, got {self.Ns}")
        pairs = sorted(zip((int(n) if float(n) == int(n) else n for n in self.Ns), reps, strict=True),
                       key=lambda t: float(t[0]))
        object.__setattr__(self, "replicates", reps[0] if len(set(reps)) == 1 else tuple(r for _, r in pairs))
        for name in ("Ns", "Ks"):
            vals = getattr(self, name)
            require(len(vals) > 0, f"{name} must not be empty")
            for v in vals:
                require(float(v) == int(v) and int(v) >= 1, f"{name[0]} must be positive integers, got {v}")
            object.__setattr__(self, name, tuple(sorted({int(v) for v in vals})))
        require(isinstance(self.d, int) and self.d >= 1, f"d must be a positive integer, got {self.d}")
        require(np.isfinite(self.sigma) and self.sigma > 0, f"sigma must be positive, got {self.sigma}")
        require(self.fine_points >= 5, f"fine_points must be >= 5, got {self.fine_points}")
        require(1.05 < self.coarse_ratio <= 4, f"coarse_ratio must lie in (1.05, 4], got {self.coarse_ratio}")
        require(self.order in ORDERS, f"order '{self.order}' unknown; use one of {', '.join(ORDERS)}")
        require(0 < self.fraction < 1, f"fraction must lie in (0, 1), got {self.fraction}")
        require(self.n_boot >= 10, f"n_boot must be >= 10, got {self.n_boot}")

    def replicates_for(self, i: int) -> int:
        """Replicates for the i-th N (in sorted order)."""
        return self.replicates if isinstance(self.replicates, int) else self.replicates[i]

    def problem(self) -> Problem:
        return Problem.from_strings(self.spectrum, self.d, self.sigma, self.wstar, self.design)

    def to_dict(self) -> dict:
        out = asdict(self)
        out.pop("threads")
        return out


def coarse_grid(curve: OnePassCurve, N: int, k_max: int, ratio: float, top: float) -> np.ndarray:
    """Stage-1 learning rates for K = 1..k_max epochs over N samples.

    The tuned one-pass rate for n = K N steps is the natural guess in the linear regime; the grid spans
    a factor 2 below it at K = k_max to a factor 2 above it at K = 1 (capped at 0.9 eta_max), spaced
    by ``ratio``.
    """
    hi = min(2.0 * float(curve.eta(N)), 0.9 * top)
    lo = min(0.5 * float(curve.eta(k_max * N)), hi / 8.0)
    return np.geomspace(lo, hi, max(4, int(np.ceil(np.log(hi / lo) / np.log(ratio))) + 1))


def spline_min(etas: np.ndarray, risks: np.ndarray, points: int = 801):
    """Minimum of a cubic spline through (log eta, log mean risk), per column of ``risks`` (n_eta, n).

    The risk rises steeply on the small-eta side (bias decays like exp(-eta lambda K N)) and slowly on
    the other, so a parabola through three points misplaces the minimum badly on a grid of ratio 1.25
    (12% error on the exact one-pass curve, measured); a spline through a grid of ratio ~1.07 is within
    0.5%.  Returns (eta*, R*, index of the grid minimum).
    """
    from scipy.interpolate import CubicSpline

    x = np.log(etas)
    y = np.log(np.minimum(risks, 1e300))
    cs = CubicSpline(x, y, axis=0)
    xx = np.linspace(x[0], x[-1], points)
    yy = cs(xx).reshape(points, -1)
    j = np.argmin(yy, axis=0)
    cols = np.arange(yy.shape[1])
    # Never below the smallest sampled mean by more than the spline can justify: clamp to the data's
    # range so an overshoot between two noisy points cannot invent a deeper minimum.
    floor = y.reshape(y.shape[0], -1).min(axis=0)
    best = np.maximum(yy[j, cols], floor - np.log(1.05))
    return np.exp(xx[j]), np.exp(best), np.argmin(y.reshape(y.shape[0], -1), axis=0)


def cv_means(risks: np.ndarray, lin: np.ndarray | None, lin_mean: np.ndarray | None) -> np.ndarray:
    """Replicate means per learning rate, (n_eta,) from (reps, n_eta), with the control variate if given.

    mean(R) - beta (mean(L) - E L), beta = cov(R, L)/var(L) per learning rate: the optimal linear
    control-variate estimator (beta estimated from the same replicates; its O(1/reps) bias is far below
    the noise).  Measured variance reductions are 3x at N = 1e3, K = 1 up to ~200x at N = 1e4, K = 32.
    """
    mean = risks.mean(axis=0)
    if lin is None:
        return mean
    lm = lin.mean(axis=0)
    dr, dl = risks - mean, lin - lm
    with np.errstate(invalid="ignore", divide="ignore"):
        beta = (dr * dl).sum(axis=0) / (dl * dl).sum(axis=0)
    adj = mean - np.nan_to_num(beta) * (lm - lin_mean)
    return np.where(np.isfinite(mean) & (adj > 0), adj, np.where(np.isfinite(mean), mean, np.inf))


def tune(risks: np.ndarray, etas: np.ndarray, n_boot: int = 200, seed: int = 0, lin=None, lin_mean=None) -> dict:
    """Optimal learning rate and risk for one (K, N) from replicate risks (reps, n_eta).

    The replicate mean is taken per learning rate (common random numbers make it smooth in eta; the
    control variate ``lin`` with exact mean ``lin_mean`` shrinks its noise) and minimised through
    ``spline_min``.  Resampling replicates (bootstrap) gives standard errors in log units.  ``edge``
    says the minimum sits at an end of the grid (then eta* is a bound, not an optimum).
    """
    e, r, j = spline_min(etas, cv_means(risks, lin, lin_mean)[:, None])
    rng = np.random.default_rng(seed)
    reps = risks.shape[0]
    boot = np.empty((etas.size, n_boot))
    for b in range(n_boot):
        idx = rng.integers(0, reps, reps)
        boot[:, b] = cv_means(risks[idx], None if lin is None else lin[idx], lin_mean)
    be, br, _ = spline_min(etas, boot)
    return {
        "eta_star": float(e[0]),
        "risk_star": float(r[0]),
        "log_eta_se": float(np.log(be).std(ddof=1)),
        "log_risk_se": float(np.log(br).std(ddof=1)),
        "boot_risk": br,
        "edge": bool(j[0] == 0 or j[0] == etas.size - 1),
    }


def phase_transition(Ks, E, fraction: float = 0.5) -> float:
    """K*(N): the K where E(K, N)/K first falls below ``fraction`` (log-linear interpolation); NaN if never."""
    k = np.asarray(Ks, dtype=float)
    ratio = np.asarray(E, dtype=float) / k
    below = np.nonzero(ratio < fraction)[0]
    if below.size == 0:
        return float("nan")
    i = below[0]
    if i == 0:
        return float(k[0])
    x0, x1 = np.log(k[i - 1]), np.log(k[i])
    y0, y1 = ratio[i - 1] - fraction, ratio[i] - fraction
    return float(np.exp(x0 + (x1 - x0) * y0 / (y0 - y1)))


def plateau_fit(Ns, plateau, se) -> dict:
    """Weighted least squares of the plateau height on log N: E = C log N, and E = C log N + c0.

    Both are linear in their coefficients, so this is solved directly with numpy (weights 1/se^2) rather
    than through the general law-fitting engine, which is built for non-linear scaling laws.
    """
    logn = np.log(np.asarray(Ns, dtype=float))
    y = np.asarray(plateau, dtype=float)
    w = 1.0 / np.maximum(np.asarray(se, dtype=float), 1e-12 * np.abs(y).max()) ** 2
    out = {}
    for name, X in (("proportional", logn[:, None]), ("affine", np.stack([logn, np.ones_like(logn)], 1))):
        if X.shape[0] < X.shape[1]:
            continue
        A = X * np.sqrt(w)[:, None]
        coef, *_ = np.linalg.lstsq(A, y * np.sqrt(w), rcond=None)
        resid = y - X @ coef
        dof = max(X.shape[0] - X.shape[1], 1)
        chi2 = float(np.sum(w * resid**2))
        cov = np.linalg.pinv(A.T @ A)
        out[name] = {
            "C": float(coef[0]),
            "C_se": float(np.sqrt(cov[0, 0])),
            "offset": float(coef[1]) if coef.size > 1 else 0.0,
            "offset_se": float(np.sqrt(cov[1, 1])) if coef.size > 1 else 0.0,
            "chi2_per_dof": chi2 / dof,
            "max_rel_resid": float(np.max(np.abs(resid) / np.abs(y))),
        }
    return out


def asymptote_constants(Ks, Ns, risk, E, linear_tol: float = 0.1) -> dict:
    """Constants of R*(K, N) ~ C1 log(KN)/(KN) (cells with |E/K - 1| <= linear_tol) and ~ C2/N (K = K_max).

    Returned with the spread of the per-cell ratios, which says how well each form holds in its regime.
    """
    k = np.asarray(Ks, dtype=float)[None, :]
    n = np.asarray(Ns, dtype=float)[:, None]
    r = np.asarray(risk, dtype=float)
    c1_cells = r * k * n / np.log(k * n)
    lin = np.abs(np.asarray(E) / k - 1.0) <= linear_tol
    c2_cells = r[:, -1] * n[:, 0]
    out = {"C2": float(np.exp(np.mean(np.log(c2_cells)))), "C2_cells": c2_cells,
           "C2_spread": float(np.ptp(np.log(c2_cells))) if c2_cells.size > 1 else 0.0}
    if lin.any():
        vals = c1_cells[lin]
        out.update(C1=float(np.exp(np.mean(np.log(vals)))), C1_spread=float(np.ptp(np.log(vals))),
                   C1_cells=int(vals.size))
    else:
        out.update(C1=float("nan"), C1_spread=float("nan"), C1_cells=0)
    return out


@dataclass
class ReuseResult:
    """A filled E(K, N) table; arrays are indexed [N, K]."""

    config: ReuseConfig
    risk: np.ndarray
    risk_se: np.ndarray  # relative (log-scale) standard error
    eta: np.ndarray
    eta_se: np.ndarray
    E: np.ndarray
    E_se: np.ndarray
    edge: np.ndarray
    one_pass_risk: np.ndarray  # R*(1, K N) from the exact curve: what K N fresh samples would give
    k_star: np.ndarray
    plateau: dict
    asymptotes: dict
    eta_max: float
    seconds: np.ndarray
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "config": self.config.to_dict(),
            "eta_max": self.eta_max,
            "Ns": list(self.config.Ns),
            "Ks": list(self.config.Ks),
            "risk_star": self.risk,
            "risk_star_rel_se": self.risk_se,
            "eta_star": self.eta,
            "eta_star_rel_se": self.eta_se,
            "E": self.E,
            "E_se": self.E_se,
            "eta_at_grid_edge": self.edge,
            "one_pass_risk_KN": self.one_pass_risk,
            "k_star": self.k_star,
            "plateau_fit": self.plateau,
            "asymptotes": {k: v for k, v in self.asymptotes.items()},
            "seconds": self.seconds,
        }


def _fine_stage(problem, config, N, Ks, centers, top, reps) -> list[dict]:
    """Stage 2: per K a fine grid one coarse step either side of its centre, all K on the same datasets;
    a K whose optimum lands on an end of its window is rerun with the window slid there (twice at most)."""
    step = config.coarse_ratio
    results: list[dict | None] = [None] * len(Ks)
    todo = list(range(len(Ks)))
    centers = np.asarray(centers, dtype=float).copy()
    sim = SimConfig(N=N, epochs=(1,), etas=(1.0,), replicates=reps, order=config.order,
                    seed=config.seed)
    for _ in range(3):
        if not todo:
            break
        groups = []
        for b in todo:
            c = min(centers[b], 0.95 * top / step)  # keep the window inside the stable range
            groups.append((tuple(c * np.exp(np.linspace(-1.0, 1.0, config.fine_points) * np.log(step))), (Ks[b],)))
        risks, lin = simulate_groups(problem, sim, groups, threads=config.threads, with_control=True)
        again = []
        for g, b in enumerate(todo):
            etas = np.asarray(groups[g][0])
            if config.control:
                lm = linear_control_mean(problem, etas, N, (Ks[b],), config.order)[:, 0]
                results[b] = tune(risks[:, g, :, 0], etas, config.n_boot, config.seed + Ks[b], lin[:, g, :, 0], lm)
            else:
                results[b] = tune(risks[:, g, :, 0], etas, config.n_boot, config.seed + Ks[b])
            if results[b]["edge"]:
                centers[b] = results[b]["eta_star"]  # slide the window so that its end becomes its centre
                again.append(b)
        todo = again
    return results


def reuse_table(config: ReuseConfig, progress=None) -> ReuseResult:
    """Run the Monte Carlo for every N and fill R*(K, N), eta*(K, N), E(K, N) and the derived numbers.

    Two stages per N: a coarse learning-rate grid over all K at once (an eighth of the replicates, the
    K-epoch iterates read off one K_max-epoch trajectory) locates eta* roughly; then, per K, a fine grid
    one coarse step either side of it, with all replicates and independent seeds, gives eta*, R* and
    their standard errors.  ``progress(i, N)`` is called before each N (for a progress bar).
    """
    problem = config.problem()
    top = eta_max(problem)
    Ns, Ks = config.Ns, config.Ks
    curve = OnePassCurve(problem, n_max=max(1e9, 1e4 * max(Ns) * max(Ks)))
    shape = (len(Ns), len(Ks))
    risk, risk_se, eta, eta_se, E, E_se = (np.empty(shape) for _ in range(6))
    edge = np.zeros(shape, dtype=bool)
    seconds = np.empty(len(Ns))
    for a, N in enumerate(Ns):
        if progress is not None:
            progress(a, N)
        t0 = time.perf_counter()
        coarse = coarse_grid(curve, N, max(Ks), config.coarse_ratio, top)
        sim = SimConfig(N=N, epochs=Ks, etas=tuple(coarse), replicates=max(8, config.replicates_for(a) // 8),
                        order=config.order, seed=(config.seed + 104729) % 2**31)
        rc, lc = simulate(problem, sim, threads=config.threads, with_control=True)
        lmc = linear_control_mean(problem, coarse, N, Ks, config.order)
        means = np.stack([cv_means(rc[:, :, b], lc[:, :, b] if config.control else None, lmc[:, b])
                          for b in range(len(Ks))], axis=1)
        centers = coarse[np.argmin(means, axis=0)]
        for b, t in enumerate(_fine_stage(problem, config, N, Ks, centers, top, config.replicates_for(a))):
            risk[a, b], eta[a, b], edge[a, b] = t["risk_star"], t["eta_star"], t["edge"]
            risk_se[a, b], eta_se[a, b] = t["log_risk_se"], t["log_eta_se"]
            E[a, b] = curve.equivalent_n(t["risk_star"]) / N
            E_se[a, b] = np.nanstd(curve.equivalent_n(t["boot_risk"]) / N, ddof=1)
        seconds[a] = time.perf_counter() - t0
    k_star = np.array([phase_transition(Ks, E[a], config.fraction) for a in range(len(Ns))])
    plateau = plateau_fit(Ns, E[:, -1], E_se[:, -1]) if len(Ns) >= 2 else {}
    one_pass = curve.risk(np.outer(Ns, Ks).astype(float))
    return ReuseResult(config, risk, risk_se, eta, eta_se, E, E_se, edge, one_pass, k_star, plateau,
                       asymptote_constants(Ks, Ns, risk, E), top, seconds)
