"""Monte Carlo of multi-epoch SGD on a fixed sample of N linear-regression examples.

Per replicate: draw a dataset (x_i, y_i), i < N, from the problem; run K epochs of constant-LR SGD from
w = 0, visiting the sample in a fresh random order each epoch ("reshuffle"), one order drawn once
("fixed"), or N uniform draws with replacement per epoch ("replacement"); record the excess risk
R(w) = 1/2 (w - w*)^T H (w - w*) at chosen epoch counts.

Every learning rate of a run sees the same dataset, noise and orders (common random numbers), so
differences between learning rates are not blurred by sampling noise, and the K-epoch iterate is read
off the way to K_max (a constant-LR trajectory does not depend on how many epochs follow).  The inner
loop is compiled with numba, vectorized over learning rates, and the replicates run in parallel;
``reference_sgd`` is the same algorithm as a plain numpy per-step loop (for tests and the benchmark).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass

import numba as nb
import numpy as np

from repetita.errors import require
from repetita.theory.spectra import Problem

ORDERS = ("reshuffle", "fixed", "replacement")
_DESIGN_CODE = {"gaussian": 0, "rademacher": 1, "uniform": 2}
_ORDER_CODE = {name: i for i, name in enumerate(ORDERS)}
# A risk this many times the starting risk means the run left the basin; it is then frozen at +inf.
_DIVERGED = 1e12


@dataclass(frozen=True)
class SimConfig:
    """What one Monte Carlo run does (the problem is passed beside it)."""

    N: int
    epochs: tuple[int, ...]  # epoch counts K at which the risk is recorded
    etas: tuple[float, ...]
    replicates: int = 64
    order: str = "reshuffle"
    seed: int = 0

    def __post_init__(self):
        require(isinstance(self.N, int | np.integer) and self.N >= 1, f"N must be a positive integer, got {self.N}")
        ep = tuple(int(k) for k in self.epochs)
        require(len(ep) > 0 and all(k >= 1 for k in ep), f"epochs K must be positive integers, got {self.epochs}")
        require(list(ep) == sorted(set(ep)), f"epochs must be strictly increasing, got {self.epochs}")
        et = tuple(float(e) for e in self.etas)
        require(len(et) > 0 and all(np.isfinite(e) and e > 0 for e in et), f"learning rates must be positive, got {et}")
        require(self.replicates >= 1, f"replicates must be a positive integer, got {self.replicates}")
        require(self.order in ORDERS, f"order '{self.order}' unknown; use one of {', '.join(ORDERS)}")
        require(0 <= self.seed < 2**31, f"seed must lie in [0, 2^31), got {self.seed}")
        object.__setattr__(self, "N", int(self.N))
        object.__setattr__(self, "epochs", ep)
        object.__setattr__(self, "etas", et)

    def to_dict(self) -> dict:
        return asdict(self)


def replicate_seed(seed: int, N: int, r: int) -> int:
    """Seed of replicate r: distinct per (seed, N, r) so that tables over N use independent datasets."""
    return int(np.random.SeedSequence([seed, N, r]).generate_state(1)[0] & 0x7FFFFFFF)


# No 'nnan'/'ninf': the divergence check must see infinities.  'reassoc' lets LLVM vectorize the loops.
_FM = {"contract", "reassoc", "arcp", "nsz"}


@nb.njit(fastmath=_FM, cache=True)
def _gather(X, xi, idx, Xb, xb):
    """Copy the epoch's rows into visiting order: the SGD pass then streams memory sequentially, which
    measured 2.5-3x faster than indexing rows at random inside the pass (N = 1e4 and 1e5, d = 10)."""
    for t in range(idx.size):
        i = idx[t]
        xb[t] = xi[i]
        for k in range(X.shape[1]):
            Xb[t, k] = X[i, k]


@nb.njit(fastmath=_FM, cache=True)
def _sgd_pass(Xb, xb, E, etas, dot):
    """SGD over the rows of Xb in order; E is (d, n_eta): column j is the error w - w* of learning rate j.

    Learning rates are the innermost (contiguous) axis so that each sample's row is loaded once and
    the dot products and updates of all learning rates run as SIMD lanes.
    """
    d, m = E.shape
    for t in range(xb.size):
        for j in range(m):
            dot[j] = -xb[t]
        for k in range(d):
            xk = Xb[t, k]
            for j in range(m):
                dot[j] += xk * E[k, j]
        for j in range(m):
            dot[j] *= etas[j]
        for k in range(d):
            xk = Xb[t, k]
            for j in range(m):
                E[k, j] -= dot[j] * xk


@nb.njit(fastmath=_FM, cache=True)
def _linear_pass(xb, Xb, U, Q, etas):
    """The linearized recursion u' = (I - eta H) u + eta xi x on the same samples (control variate)."""
    d, m = U.shape
    for t in range(xb.size):
        for k in range(d):
            xk = Xb[t, k] * xb[t]
            for j in range(m):
                U[k, j] = Q[k, j] * U[k, j] + etas[j] * xk


@nb.njit(parallel=True, fastmath=_FM, cache=True)
def _run(sqrt_lam, wstar, sigma, design, order, N, etas, ckpts, seeds, out, out_lin):
    """etas (G, m): G groups of learning rates, each restarted from w = 0 on the replicate's dataset;
    ckpts (G, C): epoch counts at which group g records its risk, increasing, padded with 0."""
    reps = seeds.size
    d = sqrt_lam.size
    n_groups, m = etas.shape
    r0 = 0.0
    for k in range(d):
        r0 += 0.5 * sqrt_lam[k] ** 2 * wstar[k] ** 2
    for r in nb.prange(reps):
        np.random.seed(seeds[r])  # per-thread generator, reseeded per replicate: schedule-independent
        X = np.empty((N, d))
        xi = np.empty(N)
        for i in range(N):
            for k in range(d):
                if design == 0:
                    z = np.random.standard_normal()
                elif design == 1:
                    z = 1.0 if np.random.random() < 0.5 else -1.0
                else:
                    z = (2.0 * np.random.random() - 1.0) * np.sqrt(3.0)
                X[i, k] = sqrt_lam[k] * z
            xi[i] = sigma * np.random.standard_normal()
        E = np.empty((d, m))
        U = np.empty((d, m))
        Q = np.empty((d, m))
        dead = np.zeros(m, dtype=np.bool_)
        dot = np.empty(m)
        idx = np.arange(N)
        Xb = np.empty((N, d))
        xb = np.empty(N)
        for g in range(n_groups):
            kmax = 0
            for c in range(ckpts.shape[1]):
                kmax = max(kmax, ckpts[g, c])
            for k in range(d):
                for j in range(m):
                    E[k, j] = -wstar[k]
                    U[k, j] = -wstar[k]
                    Q[k, j] = 1.0 - etas[g, j] * sqrt_lam[k] ** 2
            dead[:] = False
            c = 0
            for epoch in range(1, kmax + 1):
                if order == 0 or (order == 1 and epoch == 1 and g == 0):
                    np.random.shuffle(idx)
                    _gather(X, xi, idx, Xb, xb)
                elif order == 2:
                    for t in range(N):
                        idx[t] = np.random.randint(0, N)
                    _gather(X, xi, idx, Xb, xb)
                _sgd_pass(Xb, xb, E, etas[g], dot)
                _linear_pass(xb, Xb, U, Q, etas[g])
                if epoch == ckpts[g, c]:
                    for j in range(m):
                        risk = 0.0
                        for k in range(d):
                            risk += 0.5 * sqrt_lam[k] ** 2 * E[k, j] ** 2
                        if dead[j] or not (risk < _DIVERGED * r0):
                            dead[j] = True
                            risk = np.inf
                            for k in range(d):
                                E[k, j] = 0.0
                        out[r, g, j, c] = risk
                        lin = 0.0
                        for k in range(d):
                            lin += 0.5 * sqrt_lam[k] ** 2 * U[k, j] ** 2
                        out_lin[r, g, j, c] = lin
                    c += 1
    return out


def simulate(problem: Problem, config: SimConfig, threads: int | None = None, with_control: bool = False):
    """Risks of shape (replicates, len(etas), len(epochs)); +inf marks a diverged (learning rate, replicate).

    With ``with_control``, a pair (risks, linearized-recursion risks)."""
    out = simulate_groups(problem, config, [(config.etas, config.epochs)], threads, with_control)
    if with_control:
        return out[0][:, 0], out[1][:, 0]
    return out[:, 0]


def linear_control_mean(problem: Problem, etas, N: int, epochs, order: str = "reshuffle") -> np.ndarray:
    """Exact expectation of the control variate: the risk of u' = (I - eta H) u + eta xi x, u_0 = -w*, run
    over the same K epochs of the same N samples as SGD (same orders).  Shape (len(etas), len(epochs)).

    u_k(T) = q^T u_k(0) + eta sum_s q^(T-s) xi_(i_s) x_(i_s, k) with q = 1 - eta lambda_k.  Terms of
    different samples are uncorrelated and E[xi^2 x_k^2] = sigma^2 lambda_k for every design, so
    E u_k^2 = q^(2T) w*_k^2 + eta^2 sigma^2 lambda_k E sum_i (sum_(s: i_s = i) a_s)^2 with a_s = q^(T-s).
    The last sum is sum_s a_s^2 plus the pairs s != s' on the same sample: probability 1/N for steps
    in different epochs (reshuffle) or any two steps (replacement); exactly the same position of every
    epoch (fixed).  All of it is geometric sums.  The SGD risk differs from this one only through the
    multiplicative noise (x x^T - H) e, small at the tuned learning rates, so the two are strongly
    correlated across replicates and the difference has a much smaller variance.
    """
    lam = problem.lam[None, None, :]
    w2 = (problem.wstar**2)[None, None, :]
    eta = np.asarray(etas, dtype=float)[:, None, None]
    K = np.asarray(epochs, dtype=float)[None, :, None]
    T = K * N
    q = 1.0 - eta * lam

    def geo(r, n):  # sum_{s=0}^{n-1} r^s, stable for r near 1
        return np.where(np.abs(1 - r) < 1e-12, n, -np.expm1(n * np.log(np.abs(r))) / (1 - r))

    s1 = geo(q, T)  # sum_s a_s
    s2 = geo(q**2, T)  # sum_s a_s^2
    if order == "fixed":
        pairs = geo(q**2, N) * geo(q**N, K) ** 2
    elif order == "replacement":
        pairs = s2 + (s1**2 - s2) / N
    else:
        per_epoch = geo(q, N) ** 2 * geo(q ** (2 * N), K)  # sum over epochs of (sum within the epoch)^2
        pairs = s2 + (s1**2 - per_epoch) / N
    m2 = q ** (2 * T) * w2 + eta**2 * problem.sigma**2 * lam * pairs
    return 0.5 * np.sum(lam * m2, axis=-1)


def simulate_groups(problem: Problem, config: SimConfig, groups, threads: int | None = None,
                    with_control: bool = False):
    """Several (etas, epochs) groups on the same replicate datasets (generated once per replicate).

    ``config`` supplies N, replicates, order and seed (its own etas/epochs are ignored); every group
    must have the same number of learning rates.  Returns risks (replicates, G, m, max len(epochs)),
    NaN where a group has fewer epoch counts.  With ``with_control`` also the risks of the linearized
    recursion on the same samples (see ``linear_control_mean``), same shape.
    """
    m = len(groups[0][0])
    require(all(len(e) == m for e, _ in groups), "every group needs the same number of learning rates")
    for e, k in groups:  # validate each group as a config of its own
        SimConfig(N=config.N, epochs=tuple(k), etas=tuple(e), replicates=config.replicates)
    C = max(len(k) for _, k in groups)
    etas = np.array([np.asarray(e, dtype=float) for e, _ in groups])
    ckpts = np.zeros((len(groups), C), dtype=np.int64)
    for g, (_, k) in enumerate(groups):
        ckpts[g, : len(k)] = k
    seeds = np.array([replicate_seed(config.seed, config.N, r) for r in range(config.replicates)], dtype=np.int64)
    out = np.full((config.replicates, len(groups), m, C), np.nan)
    out_lin = np.full_like(out, np.nan)
    want = threads or int(os.environ.get("NUMBA_NUM_THREADS", nb.config.NUMBA_NUM_THREADS))
    before = nb.get_num_threads()
    nb.set_num_threads(max(1, min(want, nb.config.NUMBA_NUM_THREADS)))
    try:
        _run(np.sqrt(problem.lam), problem.wstar, problem.sigma, _DESIGN_CODE[problem.design],
             _ORDER_CODE[config.order], config.N, etas, ckpts, seeds, out, out_lin)
    finally:
        nb.set_num_threads(before)
    if with_control:
        return out, out_lin
    return out


def sgd_epoch_compiled(X, xi, idx, E, etas) -> np.ndarray:
    """The compiled inner loop on given data (E is updated in place and returned); for tests."""
    E = np.ascontiguousarray(E, dtype=float)
    idx = np.asarray(idx, dtype=np.int64)
    Xb, xb = np.empty((idx.size, X.shape[1])), np.empty(idx.size)
    _gather(np.ascontiguousarray(X, dtype=float), np.asarray(xi, dtype=float), idx, Xb, xb)
    _sgd_pass(Xb, xb, E, np.asarray(etas, dtype=float), np.empty(len(etas)))
    return E


def reference_sgd(X, xi, orders, E0, etas) -> np.ndarray:
    """Plain numpy per-step SGD, vectorized over replicates and learning rates only.

    X (reps, N, d), xi (reps, N), orders (reps, steps) row indices, E0 (reps, n_eta, d) start errors.
    Returns the final errors (reps, n_eta, d).  This is the baseline the compiled kernel must match.
    """
    E = np.array(E0, dtype=float)
    etas = np.asarray(etas, dtype=float)[None, :]
    rows = np.arange(X.shape[0])
    for t in range(orders.shape[1]):
        i = orders[:, t]
        x = X[rows, i]  # (reps, d)
        resid = np.einsum("rjd,rd->rj", E, x) - xi[rows, i][:, None]
        E -= (etas * resid)[:, :, None] * x[:, None, :]
    return E
