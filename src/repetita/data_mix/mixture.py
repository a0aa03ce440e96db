"""The training mixture that minimises expected test error at a fixed sample budget.

Problem: the test distribution puts weight ``p_k`` on subpopulation ``k``; a model trained on
``n_k = q_k N`` samples of group ``k`` has test error ``e_k`` there. Choose ``q`` on the simplex to
minimise ``R(q) = sum_k p_k e_k(q_k, N)``. The test mix ``q = p`` is rarely optimal ("positive
distribution shift", Medvedev, Lyu, Li, Srebro 2025).

Derivation (assumes each ``e_k`` is convex and non-increasing in ``q_k``): the Lagrangian
``sum_k p_k e_k(q_k) + lam (sum_k q_k - 1)`` gives the KKT conditions

    p_k de_k/dq (q_k) = -lam   if q_k > 0,        p_k de_k/dq (0) >= -lam   if q_k = 0.

For fixed ``lam`` each ``q_k(lam)`` solves a one-dimensional convex problem and decreases in
``lam``; an outer bisection on ``lam`` finds ``sum_k q_k(lam) = 1`` (water-filling).

Closed forms recovered as special cases (tests check both against the general solver):

* ``e_k(n) = c n^-gamma`` with a shared ``gamma``: ``q_k ∝ (c_k p_k)^(1/(1+gamma))``. For 1/n
  curves and equal ``c`` a 90/10 test mix is best trained as ``sqrt(.9):sqrt(.1)`` = 75/25.
* Memorising atoms: an atom is answered correctly iff it was seen at least once in ``N`` i.i.d.
  draws, so its error is the miss probability ``(1 - q_k)^N``. KKT gives
  ``N p_k (1 - q_k)^(N-1) = lam``, i.e. ``q_k = max(0, 1 - beta p_k^(-1/(N-1)))`` with
  ``beta = (lam/N)^(1/(N-1))`` set by normalisation.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from repetita.errors import UserError, require

_BISECT_ITERS = 200


def check_weights(p: Sequence[float], name: str = "weights") -> np.ndarray:
    """Validate a probability vector: finite, non-negative, summing to 1 (within 1e-6)."""
    arr = np.asarray(p, dtype=float)
    require(arr.ndim == 1 and arr.size >= 1, f"{name}: need a non-empty list of numbers")
    require(bool(np.all(np.isfinite(arr))), f"{name}: non-finite value in {arr.tolist()}")
    bad = np.flatnonzero(arr < 0)
    require(bad.size == 0, f"{name}: negative weight {arr[bad[0]] if bad.size else ''} at index {bad[:1].tolist()}")
    require(abs(arr.sum() - 1.0) <= 1e-6, f"{name}: must sum to 1, sum is {arr.sum():.6g}")
    return arr


class Curve:
    """Error of one group as a function of its mixture share ``q`` at budget ``N``."""

    def error(self, q: float, budget: float) -> float:
        raise NotImplementedError

    def slope(self, q: float, budget: float) -> float:
        """d error / d q; default is a central difference (callables without derivatives)."""
        # Relative step so that callables singular at n = 0 (like 1/n) are never evaluated there.
        q = max(float(q), 1e-12)
        h = max(1e-6 * q, 1e-9)
        lo, hi = max(q - h, 0.5 * q), min(q + h, 1.0)
        return (self.error(hi, budget) - self.error(lo, budget)) / (hi - lo)

    def best_share(self, weight: float, lam: float, budget: float) -> float:
        """argmin over q in [0, 1] of ``weight * error(q) + lam * q`` (convex, so a root of the slope)."""
        if weight * self.slope(1e-12, budget) + lam >= 0:
            return 0.0
        if weight * self.slope(1.0, budget) + lam <= 0:
            return 1.0
        lo, hi = 1e-12, 1.0
        for _ in range(_BISECT_ITERS):
            mid = 0.5 * (lo + hi)
            if weight * self.slope(mid, budget) + lam < 0:
                lo = mid
            else:
                hi = mid
            if hi - lo < 1e-15:
                break
        return 0.5 * (lo + hi)


@dataclass(frozen=True)
class PowerCurve(Curve):
    """``e(n) = floor + coef * n^-exponent`` with ``n = q N`` samples of the group."""

    coef: float = 1.0
    exponent: float = 1.0
    floor: float = 0.0

    def __post_init__(self):
        require(self.coef > 0, f"coef must be > 0, got {self.coef}")
        require(self.exponent > 0, f"exponent must be > 0, got {self.exponent}")

    def error(self, q, budget):
        n = np.maximum(np.asarray(q, dtype=float) * budget, 1e-300)
        return self.floor + self.coef * n ** (-self.exponent)

    def slope(self, q, budget):
        n = np.maximum(np.asarray(q, dtype=float) * budget, 1e-300)
        return -self.coef * self.exponent * budget * n ** (-self.exponent - 1)

    def best_share(self, weight, lam, budget):
        # Stationary point in closed form: w c g N n^-(g+1) = lam; slope(0) = -inf so q > 0 when w > 0.
        if weight <= 0:
            return 0.0
        n = (weight * self.coef * self.exponent * budget / lam) ** (1.0 / (self.exponent + 1.0))
        return float(min(n / budget, 1.0))


@dataclass(frozen=True)
class MissCurve(Curve):
    """Memorisation: error = probability the atom is never drawn in ``N`` samples, ``(1 - q)^N``."""

    def error(self, q, budget):
        return (1.0 - np.asarray(q, dtype=float)) ** budget

    def slope(self, q, budget):
        return -budget * (1.0 - np.asarray(q, dtype=float)) ** (budget - 1)

    def best_share(self, weight, lam, budget):
        if weight <= 0 or weight * budget <= lam:
            return 0.0
        return float(1.0 - (lam / (weight * budget)) ** (1.0 / (budget - 1.0)))


class CallableCurve(Curve):
    """Any user function ``e(n)`` of the group's sample count (assumed convex, non-increasing)."""

    def __init__(self, fn: Callable[[float], float]):
        self.fn = fn

    def error(self, q, budget):
        return float(self.fn(float(q) * budget))


def expected_error(p: Sequence[float], q: Sequence[float], curves: Sequence[Curve], budget: float) -> float:
    """Test risk ``sum_k p_k e_k(q_k, N)``."""
    return float(sum(pk * float(c.error(qk, budget)) for pk, qk, c in zip(p, q, curves, strict=True)))


def optimal_mixture(p: Sequence[float], curves: Sequence[Curve], budget: float) -> np.ndarray:
    """Minimise ``sum_k p_k e_k(q_k N)`` over the simplex by bisection on the Lagrange multiplier."""
    p = check_weights(p, "test weights")
    require(len(curves) == p.size, f"need one curve per group: {p.size} weights, {len(curves)} curves")
    require(budget > 1, f"budget must be > 1 sample, got {budget}")

    def shares(lam: float) -> np.ndarray:
        return np.array([c.best_share(pk, lam, budget) for pk, c in zip(p, curves, strict=True)])

    # Bracket lam in log space: total share falls from >= 1 to <= 1 as lam grows.
    lo, hi = 1e-12, 1.0
    while shares(hi).sum() > 1.0:
        hi *= 10.0
        require(hi < 1e300, "could not bracket the Lagrange multiplier; are the curves decreasing?")
    while shares(lo).sum() < 1.0:
        lo /= 10.0
        if lo < 1e-300:
            # Every group saturates below 1 total: no trade-off binds, spread the rest uniformly.
            q = shares(lo)
            return q + (1.0 - q.sum()) / q.size
    for _ in range(_BISECT_ITERS):
        mid = np.sqrt(lo * hi)
        if shares(mid).sum() > 1.0:
            lo = mid
        else:
            hi = mid
        if hi / lo - 1.0 < 1e-14:
            break
    q = shares(np.sqrt(lo * hi))
    return q / q.sum()


def power_law_mixture(p: Sequence[float], exponent: float, coefs: Sequence[float] | None = None) -> np.ndarray:
    """Closed form for a shared exponent: ``q_k ∝ (c_k p_k)^(1/(1+gamma))`` (budget-free)."""
    p = check_weights(p, "test weights")
    c = np.ones_like(p) if coefs is None else np.asarray(coefs, dtype=float)
    w = (c * p) ** (1.0 / (1.0 + exponent))
    return w / w.sum()


def memorization_mixture(p: Sequence[float], budget: int) -> np.ndarray:
    """Closed form ``q_k = max(0, 1 - beta p_k^(-1/(N-1)))``, ``beta`` set so that ``sum q = 1``."""
    p = check_weights(p, "test weights")
    require(budget >= 2, f"budget must be >= 2 samples, got {budget}")
    with np.errstate(divide="ignore"):
        r = np.where(p > 0, p ** (-1.0 / (budget - 1.0)), np.inf)
    lo, hi = 0.0, 1.0 / r.min()  # at beta = 1/min(r) every share is <= 0 except the top one at 0
    for _ in range(_BISECT_ITERS):
        beta = 0.5 * (lo + hi)
        if np.maximum(0.0, 1.0 - beta * r).sum() > 1.0:
            lo = beta
        else:
            hi = beta
    q = np.maximum(0.0, 1.0 - 0.5 * (lo + hi) * r)
    return q / q.sum()


def zipf(n_groups: int, alpha: float) -> np.ndarray:
    """Test frequencies ``p_k ∝ k^-alpha`` for k = 1..n_groups."""
    require(n_groups >= 1, f"groups must be >= 1, got {n_groups}")
    w = np.arange(1, n_groups + 1, dtype=float) ** (-alpha)
    return w / w.sum()


def fit_curves(df, group: str = "group", axis: str = "n") -> tuple[list[str], list[PowerCurve], list[dict]]:
    """Fit ``e_k(n) = E + A n^-alpha`` per group with the law engine; returns names, curves, params."""
    from repetita.laws.fit import LawFit

    for col in (group, axis, "loss"):
        if col not in df.columns:
            raise UserError(f"learning-curve table needs a '{col}' column, has {list(df.columns)}")
    names, curves, params = [], [], []
    for name, sub in df.groupby(group, sort=True):
        require(sub[axis].nunique() >= 3, f"group {name}: needs >= 3 distinct {axis} values to fit a power law")
        # The law engine canonicalises column aliases (``n`` means parameters), so fit on a neutral name.
        table = sub[[axis, "loss"]].rename(columns={axis: "samples_seen"})
        nat = LawFit("power", axis="samples_seen").fit(table).natural_params()
        names.append(str(name))
        curves.append(PowerCurve(coef=float(nat["A"]), exponent=float(nat["alpha"]), floor=float(nat["E"])))
        params.append({k: float(v) for k, v in nat.items()})
    return names, curves, params
