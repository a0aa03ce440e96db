"""Advice for a user's own skill or domain mix, from the power-law composition result (``repetita mix advise``).

Wang, Dang, Lee and Lyu (2026, arXiv 2604.22951) prove, for k-fold multiplicative skill composition, that
training skills drawn from a power law ``pi_s ∝ s^-a`` are learned from far fewer samples than uniform
ones: uniform sampling needs about ``d^(k/2)`` samples, a power law about ``d^(2a)`` (as the result is
stated in the talk; the theorem's exact conditions on ``a`` are in the paper). The practical reading is
*do not flatten a long-tailed mix toward uniform*; a nearly flat mix may even gain from being skewed.

This module turns a table of skill (or domain) counts into that advice:

- the observed exponent ``a`` (maximum likelihood for a rank power law over the ``d`` skills seen, with a
  95% interval from the Fisher information) and how well a power law describes the counts;
- the target exponent: the observed one when it is already a power law of at least ``min_exponent``,
  otherwise ``target`` (default 1.0, where repetita's testbed saw the power law help);
- per-skill sampling weights that move the observed mix to the target (weight = target share / observed
  share, so the weighted data has the target shares), and the sample counts the bound names, with the
  expected number of examples of the rarest skill at the user's budget.

It is a hypothesis tested on synthetic tasks only (docs/data_mix.md reports what repetita's testbed
reproduces), not a measured result for language-model data; every result says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from repetita.errors import require

CAVEAT = ("a hypothesis from a theorem about synthetic k-fold skill composition (Wang et al. 2026), partly "
          "reproduced in repetita's testbed (docs/data_mix.md); not measured on language-model data")
MIN_EXPONENT = 0.5  # below this a mix is treated as near-uniform (the testbed's power laws that helped: 0.75-1.5)


@dataclass(frozen=True)
class MixAdvice:
    skills: tuple[str, ...]  # by observed count, largest first
    counts: np.ndarray
    observed: np.ndarray  # observed shares
    exponent: float  # fitted a of the observed mix
    exponent_interval: tuple[float, float]
    fit_r2: float  # R^2 of log share on log rank under the fitted law (how power-law-like the mix is)
    target_exponent: float
    target: np.ndarray  # target shares
    weights: np.ndarray  # target / observed, per skill
    reweight: bool
    reason: str
    k: int | None = None
    budget: float | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def d(self) -> int:
        return len(self.counts)

    def bounds(self) -> dict:
        """The sample counts the result names: d^(k/2) for uniform, d^(2a) for the observed and target mixes."""
        out = {"power_law_observed": float(self.d) ** (2 * self.exponent),
               "power_law_target": float(self.d) ** (2 * self.target_exponent)}
        if self.k is not None:
            out["uniform"] = float(self.d) ** (self.k / 2)
        return out

    @property
    def rarest_expected(self) -> float | None:
        """Examples of the rarest skill the target mix holds at the budget (k positions per example)."""
        if self.budget is None:
            return None
        return float(self.budget * (self.k or 1) * self.target[self.target > 0][-1])

    def to_dict(self) -> dict:
        return {
            "skills": self.d, "exponent": self.exponent, "exponent_interval": list(self.exponent_interval),
            "fit_r2": self.fit_r2, "target_exponent": self.target_exponent, "reweight": self.reweight,
            "reason": self.reason, "k": self.k, "budget": self.budget, "bounds": self.bounds(),
            "rarest_skill_expected_examples": self.rarest_expected, "warnings": list(self.warnings), "caveat": CAVEAT,
            "table": [{"skill": s, "count": float(c), "observed_share": float(o), "target_share": float(t),
                       "weight": float(w)}
                      for s, c, o, t, w in zip(self.skills, self.counts, self.observed, self.target, self.weights,
                                               strict=True)],
        }


def rank_shares(d: int, a: float) -> np.ndarray:
    """Shares of a rank power law over ``d`` skills: ``s^-a / sum``."""
    w = np.arange(1, d + 1, dtype=float) ** (-a)
    return w / w.sum()


def fit_exponent(counts: np.ndarray) -> tuple[float, tuple[float, float], float]:
    """Maximum-likelihood ``a`` of a rank power law for counts sorted largest first; a 95% interval from the
    Fisher information (n Var_pi(log rank)); and R^2 of log share on log rank under the fitted law."""
    from scipy.optimize import minimize_scalar

    n = counts.sum()
    log_rank = np.log(np.arange(1, counts.size + 1))

    def nll(a: float) -> float:
        return float(a * (counts * log_rank).sum() + n * math.log(np.exp(-a * log_rank).sum()))

    res = minimize_scalar(nll, bounds=(0.0, 8.0), method="bounded", options={"xatol": 1e-10})
    a = float(res.x)
    pi = rank_shares(counts.size, a)
    var = float((pi * log_rank ** 2).sum() - (pi * log_rank).sum() ** 2)
    half = 1.96 / math.sqrt(n * var) if var > 0 else math.inf
    seen = counts > 0
    y, f = np.log(counts[seen] / n), np.log(pi[seen])
    ss = float(((y - y.mean()) ** 2).sum())
    r2 = 1.0 - float(((y - f) ** 2).sum()) / ss if ss > 0 else 1.0
    return a, (max(0.0, a - half), a + half), r2


def advise(counts, names=None, *, k: int | None = None, budget: float | None = None, target: float = 1.0,
           min_exponent: float = MIN_EXPONENT) -> MixAdvice:
    """The advice for one mix (module docstring). ``counts`` per skill in any order; ``budget`` is the number
    of training examples, ``k`` the skills composed per example (both optional)."""
    c = np.asarray(counts, dtype=float)
    require(c.ndim == 1 and c.size >= 2, f"give counts for at least 2 skills, got {c.size}")
    require(np.isfinite(c).all() and (c >= 0).all(), "skill counts must be finite and >= 0")
    require(c.sum() > 0, "every skill count is 0")
    require(math.isfinite(target) and target > 0, f"--target exponent must be > 0, got {target}")
    require(k is None or k >= 1, f"k must be >= 1, got {k}")
    require(budget is None or (math.isfinite(budget) and budget >= 1), f"budget must be >= 1 example, got {budget}")
    names = [str(i + 1) for i in range(c.size)] if names is None else [str(x) for x in names]
    require(len(names) == c.size, "one name per count")
    order = np.argsort(-c, kind="stable")
    c, names = c[order], tuple(names[i] for i in order)
    warnings = []
    unseen = int((c == 0).sum())
    if unseen:
        warnings.append(f"{unseen} skill(s) have count 0: no reweighting can sample them; they stay unseen")
    a, interval, r2 = fit_exponent(c)
    observed = c / c.sum()
    if a >= 7.99:
        warnings.append(f"the exponent sits at the top of its search range (8): the largest count dominates the mix "
                        f"({observed[0]:.1%} of it), and a power law says little more")
    if r2 < 0.8 and a >= min_exponent:  # a near-uniform mix has almost no spread in log share: R^2 means little
        warnings.append(f"a power law describes these counts poorly (R^2 {r2:.2f} in log share vs log rank): "
                        "the fitted exponent summarises the mix only roughly")
    if a >= min_exponent:
        t, reweight = a, False
        reason = (f"the mix already follows a power law (a = {a:.2f} >= {min_exponent}); the result advises against "
                  "flattening it toward uniform, so keep it")
    else:
        t, reweight = target, True
        reason = (f"the mix is close to uniform (a = {a:.2f} < {min_exponent}); the result suggests skewing it to a "
                  f"power law with a = {target:g} (frequent skills first, rare skills learned through them)")
    shares = rank_shares(c.size, t) if reweight else observed
    if reweight and unseen:  # unseen skills cannot be sampled: renormalise the target over the seen ones
        shares = np.where(c > 0, shares, 0.0)
        shares = shares / shares.sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        weights = np.where(observed > 0, shares / observed, 0.0)
    advice = MixAdvice(names, c, observed, a, interval, r2, t, shares, weights, reweight, reason, k, budget, warnings)
    if k is not None and t >= k / 4:
        warnings.append(f"at a = {t:.2f} >= k/4 = {k / 4:g} the result's bound for the power law, d^(2a) = "
                        f"{c.size ** (2 * t):.3g}, is not below uniform's d^(k/2) = {c.size ** (k / 2):.3g}: the gain it "
                        f"promises is for flatter power laws (a < {k / 4:g})")
    if budget is not None:
        rare = advice.rarest_expected
        if rare < 1:
            warnings.append(f"at {budget:,.0f} examples the rarest skill is expected {rare:.2g} times under the target "
                            "mix: the tail is not seen at this budget")
        b = advice.bounds()
        if b["power_law_target"] > budget:
            warnings.append(f"d^(2a) = {b['power_law_target']:.3g} exceeds the budget of {budget:,.0f} examples: "
                            "the result's bound does not promise learning at this size")
    return advice
