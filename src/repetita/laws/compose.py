"""One law from two sources: the user's own Chinchilla fit and a repetition term measured elsewhere.

The typical user has single-epoch scaling runs of their own and a fixed corpus that a large budget must
repeat. Their runs pin the Chinchilla part (E, A, B, alpha, beta) but say nothing about what a repeated
token is worth; a fit of the data-constrained law on them leaves R_D* at its start value, and the decision
engine withholds its plan (decide/laws.py). The repetition term has to come from runs that repeat: the
published one (Muennighoff et al. 2023: R_D* = 15.4, R_N* = 5.3, shipped as
``example:datablations-published``) or the user's own multi-epoch fit.

``compose`` writes one fit file of the repetition source's law with:

* the Chinchilla part from the base fit and the repetition parameters from the repetition fit;
* joint parameter draws, the product of both fits' uncertainties: independent draws from each (bootstrap
  samples or sandwich normals), side by side, so ``plan``, ``suggest`` and ``backtest`` see intervals. A
  source without uncertainty (the published point estimate) contributes its point, and the file says so;
* the evidence region the two sources share: on each axis the narrower of the sources that measured it
  (model size, compute and tokens per parameter from both; epochs from the repetition source only, since
  one-epoch runs say nothing about epochs);
* the base fit's runs, residual scatter and degrees of freedom: prediction intervals are about the user's
  runs, and a plan is checked against them.

Transplanting R_D* assumes that repetition is worth as much on the user's corpus as where it was measured
(C4 for the published term): the file's first caveat says it.
"""

from __future__ import annotations

import numpy as np

from repetita.errors import require
from repetita.laws.caveats import Caveat, Kind

CHINCHILLA = ("a", "b", "e", "alpha", "beta")
DRAWS = 1000  # joint draws saved (as a fit file's bootstrap samples)
AGREE = 1e-6  # relative difference under which two fitted Chinchilla parts are the same fit


def _chinchilla_part(est, name: str, what: str) -> None:
    law = est.spec.law_obj
    missing = [p for p in CHINCHILLA if p not in law.params]
    require(not missing, f"{name}: a {law.name!r} fit has no Chinchilla part ({', '.join(missing)} missing); "
            f"{what}")


def _draws(est, n: int, rng: np.random.Generator) -> np.ndarray | None:
    """(n, P) parameter vectors from a fit's saved uncertainty, resampled to exactly ``n`` rows."""
    from repetita.laws.uncertainty import theta_draws

    theta = theta_draws(est, n, seed=int(rng.integers(2**31)), hold=[])
    if theta is None:
        return None
    return theta if len(theta) == n else theta[rng.integers(len(theta), size=n)]


def shared_region(base: dict | None, rep: dict | None) -> dict | None:
    """The evidence region both sources speak for (module docstring)."""
    if not base or not rep:
        return None
    out = {}
    for key in ("params", "tokens", "compute", "tokens_per_param"):
        vals = [r[key] for r in (base, rep) if isinstance(r.get(key), int | float)]
        if vals:
            out[key] = float(min(vals))
    lows = [r["tokens_per_param_min"] for r in (base, rep) if isinstance(r.get("tokens_per_param_min"), int | float)]
    if lows:
        out["tokens_per_param_min"] = float(max(lows))
    if isinstance(rep.get("epochs"), int | float):
        out["epochs"] = float(rep["epochs"])
        by = rep.get("epochs_by_params") or []
        out["epochs_by_params"] = [row for row in by if row[0] <= out.get("params", np.inf) * 1.01]
    if base.get("tokens_per_param_by_params"):
        out["tokens_per_param_by_params"] = base["tokens_per_param_by_params"]
    return out


def compose(base_record: dict, rep_record: dict, *, base_name: str = "base", rep_name: str = "repetition",
            seed: int = 0) -> tuple[dict, list[str]]:
    """(the composed fit file, one-line notes on what it rests on)."""
    from repetita.laws.fit import FitSpec, LawFit
    from repetita.laws.fitted import FittedLaw

    base, rep = LawFit.from_result(base_record), LawFit.from_result(rep_record)
    _chinchilla_part(base, base_name, "give a fit of your single-epoch runs (repetita fit ... --law chinchilla)")
    own = [p for p in base.spec.law_obj.params if p not in CHINCHILLA]
    require(not own, f"{base_name}: a {base.law!r} fit has terms beyond the Chinchilla part ({', '.join(own)}); the "
            "base of a composition is a Chinchilla fit of one-epoch runs (repetita fit ... --law chinchilla)")
    rep_law = rep.spec.law_obj
    _chinchilla_part(rep, rep_name, "its repetition term cannot be separated from a Chinchilla part")
    require(rep_law.rd_star is not None and len(rep_law.params) > len(CHINCHILLA), f"{rep_name}: a {rep.law!r} fit "
            "has no repetition term; give a data-constrained or reuse fit of runs that repeat their data (or "
            "example:datablations-published)")
    fitted = set(rep.free_) | {f for f, lead in (rep.tie or {}).items() if lead in rep.free_}
    both = [p for p in CHINCHILLA if p in fitted]
    differ = [p for p in both if not np.isclose(base.params_[p], rep.params_[p], rtol=AGREE, atol=0.0)]
    require(not differ, f"{base_name} and {rep_name} both fitted the Chinchilla part and disagree ("
            + ", ".join(f"{p} {base.params_[p]:.4g} vs {rep.params_[p]:.4g}" for p in differ[:3])
            + f"): the repetition term of {rep_name} was measured against its own; refit it with the Chinchilla "
            "part frozen (repetita fit ... --freeze a=... --freeze b=...) or use example:datablations-published")
    extra = [p for p in rep_law.params if p not in CHINCHILLA]
    params = {p: float(base.params_[p]) for p in CHINCHILLA} | {p: float(rep.params_[p]) for p in extra}
    rng = np.random.default_rng(seed)
    b_theta, r_theta = _draws(base, DRAWS, rng), _draws(rep, DRAWS, rng)
    # a tied parameter (beta following alpha) varies with its leader in every draw
    moved = set(base.free_) | {f for f, lead in (base.tie or {}).items() if lead in base.free_}
    b_free = [p for p in CHINCHILLA if p in moved] if b_theta is not None else []
    r_free = [p for p in extra if p in rep.free_] if r_theta is not None else []
    columns = ([b_theta[:, base.spec.law_obj.params.index(p)] for p in b_free]
               + [r_theta[:, rep_law.params.index(p)] for p in r_free])
    free = b_free + r_free
    notes = [f"composed: the Chinchilla part from {base_name} ({base.n_rows_} runs), the repetition term "
             f"({', '.join(f'{p} = {params[p]:.4g}' for p in extra)}) from {rep_name}; it assumes repetition is "
             "worth as much on your corpus as on the runs that measured it"]
    for name, has in ((base_name, b_theta is not None), (rep_name, r_theta is not None)):
        if not has:
            notes.append(f"{name} carries no parameter interval: its part is a point in every draw, so the "
                         "intervals are narrower than the truth")
    uncertainty = None
    if free:
        uncertainty = {"method": "bootstrap", "level": 0.95, "free": free, "n": DRAWS, "seed": seed,
                       "composed": {"base": b_free, "repetition": r_free},
                       "samples": np.column_stack(columns).tolist()}
    # the spec freezes what has no draws, so every reader treats those as fixed, not as fitted
    spec = FitSpec(rep.law, freeze={p: v for p, v in params.items() if p not in free})
    fitted = FittedLaw(
        params=params, free=tuple(free), objective=base.objective_, r2=base.r2_, r2_log=base.r2_log_,
        n_rows=base.n_rows_, n_starts=0, region=shared_region(base.region_, rep.region_), runs=base.runs_,
        residual_log_sd=base.residual_log_sd_, dof=base.dof_,
        caveats=tuple(Caveat(Kind.OTHER, t) for t in notes) + tuple(base.caveats_),
        warnings=tuple(notes) + tuple(base.warnings_), uncertainty=uncertainty)
    est = LawFit(rep.law, freeze=spec.freeze)
    est.fitted_ = fitted
    record = est.result() | {"source": f"composed: {base_name} + {rep_name}",
                             "composed": {"base": base_name, "repetition": rep_name, "seed": seed}}
    LawFit.from_result(record)  # what it wrote reads back as a fit file
    return record, notes
