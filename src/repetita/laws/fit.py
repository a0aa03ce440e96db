"""The law estimator: Huber loss on log predictions, vectorized grid, L-BFGS refinement, bootstrap.

Method (as in Hoffmann et al. 2022, Besiroglu et al. 2024 and Muennighoff et al. 2023): minimise
sum_i Huber_delta(log Lhat_i - log L_i) with delta = 1e-3. The references run L-BFGS-B from every
point of an initialisation grid with finite-difference gradients; here the whole grid is scored in
one vectorized call, and only the ``n_refine`` best starts are refined with L-BFGS-B using exact
gradients. The gradients come from complex-step differentiation of the law forms (Im f(x + ih)/h
with h = 1e-20 has no subtractive cancellation, so it is exact to rounding), which keeps every law
a single pure function with no hand-written derivative to get wrong.

Parameters can be frozen (fixed values) or tied (``beta`` follows ``alpha``): the optimiser sees a
free vector z, and theta = base + z M^T maps it to the law's parameters.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.optimize import minimize

from repetita.blas import single_threaded
from repetita.errors import UserError, require
from repetita.laws import data as tables
from repetita.laws.fitted import FittedLaw, view
from repetita.laws.law import Law, get_law, natural_params

_H = 1e-20  # complex step
_CHUNK_ELEMENTS = 4_000_000  # grid starts x rows (x bins) scored per vectorized call
N_SEEDS_REFINED = 8  # starts from the nested fit refined in addition to the best n_refine grid starts


def huber(r: np.ndarray, delta: float) -> np.ndarray:
    a = np.abs(r)
    return np.where(a <= delta, 0.5 * r * r, delta * (a - 0.5 * delta))


def huber_grad(r: np.ndarray, delta: float) -> np.ndarray:
    return np.clip(r, -delta, delta)


@dataclass(frozen=True)
class FitSpec:
    """What to fit: the law, fixed and tied parameters, the init grid and the Huber delta.

    Saved beside every fit result, so a fit can be repeated exactly.
    """

    law: str
    freeze: dict[str, float] = field(default_factory=dict)
    tie: dict[str, str] = field(default_factory=dict)  # follower -> leader, e.g. {"beta": "alpha"}
    grid: dict[str, tuple[float, ...]] = field(default_factory=dict)  # overrides of the law's grid
    delta: float = 1e-3
    n_refine: int = 4
    axis: str | None = None  # column used by the "power" law
    warmup_steps: int | None = None  # multipower: override the warmup inferred from the first step
    bin_width: int = 64  # multipower: LR-drop bin width in steps

    def __post_init__(self):
        law = get_law(self.law)
        names = set(law.params)
        # Accept natural names for log-parametrised values: freeze E=1.69 means e = ln 1.69.
        freeze = {}
        for k, v in self.freeze.items():
            key, val = k, float(v)
            if k not in names and k.lower() in law.log_params and k.lower() != k:
                require(val > 0, f"--freeze {k}={v}: must be positive (it is fitted as ln {k})")
                key, val = k.lower(), float(np.log(val))
            require(key in names, f"unknown parameter {k!r} for law {self.law}; it has {', '.join(law.params)}")
            require(np.isfinite(val), f"--freeze {k}: value {v} is not finite")
            freeze[key] = val
        object.__setattr__(self, "freeze", freeze)
        for follower, leader in self.tie.items():
            for k in (follower, leader):
                require(
                    k in names, f"unknown parameter {k!r} in tie for law {self.law}; it has {', '.join(law.params)}"
                )
            require(follower != leader, f"cannot tie {follower} to itself")
            require(follower not in freeze, f"{follower} is both frozen and tied")
            require(leader not in self.tie, f"tie chain {follower}={leader}={self.tie.get(leader)}: tie both to one")
        for k, vals in self.grid.items():
            require(k in names, f"unknown parameter {k!r} in grid for law {self.law}")
            require(len(vals) > 0 and all(np.isfinite(vals)), f"grid for {k} must be finite values")
        require(self.delta > 0, f"delta must be positive, got {self.delta}")
        require(self.n_refine >= 1, f"n_refine must be >= 1, got {self.n_refine}")
        require(not law.needs_axis or self.axis, f"the {self.law} law needs an axis column (--axis)")
        require(self.bin_width >= 1, f"bin_width must be >= 1, got {self.bin_width}")

    @property
    def law_obj(self) -> Law:
        return get_law(self.law)

    def free_params(self) -> list[str]:
        return [p for p in self.law_obj.params if p not in self.freeze and p not in self.tie]

    def to_dict(self) -> dict:
        return {
            "law": self.law,
            "freeze": dict(self.freeze),
            "tie": dict(self.tie),
            "grid": {k: list(v) for k, v in self.grid.items()},
            "delta": self.delta,
            "n_refine": self.n_refine,
            "axis": self.axis,
            "warmup_steps": self.warmup_steps,
            "bin_width": self.bin_width,
        }

    @classmethod
    def from_dict(cls, d: dict) -> FitSpec:
        d = dict(d)
        d["grid"] = {k: tuple(v) for k, v in d.get("grid", {}).items()}
        return cls(**d)


def with_design_fixed(spec: FitSpec, X: dict) -> FitSpec:
    """``spec`` with the parameters the design cannot determine frozen (``Law.fixed``), unless the user froze
    or tied them: a curve table of one model size has no size term to fit."""
    law = spec.law_obj
    if law.fixed is None:
        return spec
    extra = {k: v for k, v in law.fixed(X).items() if k not in spec.freeze and k not in spec.tie
             and k not in spec.tie.values()}
    if not extra:
        return spec
    import dataclasses

    return dataclasses.replace(spec, freeze={**spec.freeze, **extra})


def prepare(spec: FitSpec, df: pd.DataFrame):
    """Validated design dict, observed losses and the table positions of the design rows (the law's own)."""
    return spec.law_obj.prepare(df, axis=spec.axis, warmup_steps=spec.warmup_steps, bin_width=spec.bin_width)


class _Problem:
    """The objective and its exact gradient over the free parameters."""

    def __init__(self, spec: FitSpec, X: dict, y: np.ndarray, weights: np.ndarray | None = None):
        spec = with_design_fixed(spec, X)
        law = spec.law_obj
        self.law, self.X, self.logy, self.delta = law, X, np.log(y), spec.delta
        # Row weights (bootstrap resample counts); the published fits use 1 for every row.
        self.w = np.ones_like(self.logy) if weights is None else np.asarray(weights, dtype=float)
        self.free = spec.free_params()
        P, F = len(law.params), len(self.free)
        self.base = np.array([spec.freeze.get(p, 0.0) for p in law.params])
        self.M = np.zeros((P, F))
        for j, name in enumerate(self.free):
            self.M[law.params.index(name), j] = 1.0
        for follower, leader in spec.tie.items():
            if leader in self.free:
                self.M[law.params.index(follower)] = self.M[law.params.index(leader)]
            else:  # tied to a frozen value
                self.base[law.params.index(follower)] = spec.freeze[leader]
        lo = np.array([law.bounds[p][0] for p in self.free])
        hi = np.array([law.bounds[p][1] for p in self.free])
        for follower, leader in spec.tie.items():  # a leader must respect its followers' bounds
            if leader in self.free:
                j = self.free.index(leader)
                lo[j] = max(lo[j], law.bounds[follower][0])
                hi[j] = min(hi[j], law.bounds[follower][1])
        self.lo, self.hi = lo, hi

    def theta(self, Z: np.ndarray) -> np.ndarray:
        return self.base + np.atleast_2d(Z) @ self.M.T

    def objectives(self, Z: np.ndarray, W: np.ndarray | None = None) -> np.ndarray:
        """Objective for a batch of free vectors Z (S, F), in chunks to bound memory.

        ``W`` (S, n) gives each vector its own row weights (bootstrap resamples); default: the problem's.
        """
        Z = np.atleast_2d(Z)
        width = self.X["drop"].shape[1] if "drop" in self.X else self.X["pair_s"].size / self.logy.size \
            if "pair_s" in self.X else 1
        per = int(self.logy.size * max(1, width))
        chunk = max(1, _CHUNK_ELEMENTS // per)
        out = np.empty(len(Z))
        with np.errstate(all="ignore"):
            for s in range(0, len(Z), chunk):
                h = huber(self.law.func(self.theta(Z[s : s + chunk]), self.X) - self.logy, self.delta)
                out[s : s + chunk] = h @ self.w if W is None else np.sum(W[s : s + chunk] * h, axis=1)
        return np.where(np.isfinite(out), out, np.inf)

    def log_pred_and_jac(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Log predictions (n,) and their Jacobian w.r.t. the law's parameters (P, n)."""
        if self.law.grad is not None:
            return self.law.grad(theta, self.X)
        P = len(theta)
        batch = theta[None, :] + 1j * _H * np.eye(P)  # one complex direction per parameter
        logp = self.law.func(np.vstack([theta[None, :].astype(complex), batch]), self.X)
        return logp[0].real, logp[1:].imag / _H

    def value_and_grad(self, z: np.ndarray) -> tuple[float, np.ndarray]:
        F = len(z)
        with np.errstate(all="ignore"):
            logp, jac = self.log_pred_and_jac(self.theta(z)[0])
        r = logp - self.logy
        f = float(huber(r, self.delta) @ self.w)
        g = self.M.T @ (jac @ (self.w * huber_grad(r, self.delta))) if F else np.zeros(0)
        if not np.isfinite(f) or not np.all(np.isfinite(g)):
            return 1e30, np.zeros(F)
        return f, g

    def refine(self, z0: np.ndarray, maxiter: int = 2000, max_moves: int = 100):
        """Local L-BFGS-B refinement inside a moving box around the start.

        Plain L-BFGS-B can take a long first step and land in another basin (on the datablations
        runs a start at R_D* = R_N* = 13.3 jumps to R_D* = 47); then the grid no longer decides
        which optimum is reported. Each move minimises inside a box of half-width
        max(|z|/2, 1) around the current point and re-centres while the optimum sits on the box
        edge, so a start descends into its own basin and exploring basins is the grid's job.
        """
        z = np.clip(np.asarray(z0, dtype=float), self.lo, self.hi)
        f = np.inf
        for _ in range(max_moves):
            half = np.maximum(0.5 * np.abs(z), 1.0)
            lo, hi = np.maximum(self.lo, z - half), np.minimum(self.hi, z + half)
            res = minimize(
                self.value_and_grad,
                z,
                jac=True,
                method="L-BFGS-B",
                bounds=list(zip(lo, hi, strict=True)),
                options={"maxiter": maxiter, "ftol": 1e-15, "gtol": 1e-12, "maxcor": 20},
            )
            z, f = res.x, float(res.fun)
            tol = 1e-9 * np.maximum(1.0, np.abs(z))
            on_edge = ((z - lo < tol) & (lo > self.lo)) | ((hi - z < tol) & (hi < self.hi))
            if not on_edge.any():
                break
        return z, f


def init_grid(spec: FitSpec, nested: bool = False, X: dict | None = None) -> np.ndarray:
    """Cartesian product of the grid values of the free parameters, clipped into their bounds.

    ``nested``: the fit is also seeded from the law it extends, whose optimum carries the shared parameters;
    those then keep only their first grid value and the grid spans the new parameters. Measured on the
    datablations tables (182 and 296 rows, whole and split): the same objective to 6 digits for the
    data-constrained, reuse, reuse-power and data-decay laws, in a quarter to a half of the time.
    """
    law = spec.law_obj
    free = spec.free_params()
    shared = set(get_law(law.parent).params) if nested and law.parent else set()
    scaled = law.grid_for(X) if law.grid_for is not None and X is not None else {}
    axes = []
    for p in free:
        vals = np.asarray(spec.grid.get(p, scaled.get(p, law.grid.get(p, (law.defaults.get(p, 0.0),)))),
                          dtype=float)
        if p in shared and p not in spec.grid:
            vals = vals[:1]
        lo, hi = law.bounds[p]
        axes.append(np.clip(vals, lo, hi))
    if not axes:
        return np.zeros((1, 0))
    return np.array(list(itertools.product(*axes)), dtype=float)


# Nested fits of the same parent law on the same rows (a benchmark fitting reuse, reuse-power and
# data-decay on one split fits data-constrained once, not three times); the result is a pure function
# of the key, so the cache changes no digit.
_PARENT_FITS: dict[tuple, dict] = {}
_PARENT_CACHE_SIZE = 64


def _parent_key(law: str, freeze: dict, tie: dict, delta: float, n_refine: int, df: pd.DataFrame, weights) -> tuple:
    import hashlib

    h = hashlib.sha1(pd.util.hash_pandas_object(df, index=False).to_numpy().tobytes())
    if weights is not None:
        h.update(np.ascontiguousarray(weights, dtype=float).tobytes())
    return law, tuple(sorted(freeze.items())), tuple(sorted(tie.items())), delta, n_refine, h.hexdigest()


class LawFit:
    """Fit a law to a run table: ``LawFit("chinchilla").fit(df).params_`` (a scikit-learn style estimator).

    What a fit learned is one frozen value, ``fitted_`` (:class:`repetita.laws.fitted.FittedLaw`); the learned
    attributes are views of it: ``params_`` (all parameters, fitted and frozen), ``free_``, ``objective_``
    (summed Huber), ``r2_`` (on loss), ``r2_log_``, ``n_rows_``, ``n_starts_``, ``region_``, ``runs_``,
    ``residual_log_sd_``, ``dof_``, ``caveats_``, ``warnings_``, ``uncertainty_``, ``holdout_``. The search's
    own state (``problem_``, ``z_``, ``start_``, ``optima_``) exists only on an estimator that ran ``fit``.
    """

    params_ = view()
    free_ = view()
    objective_ = view()
    r2_ = view()
    r2_log_ = view()
    n_rows_ = view()
    n_starts_ = view()
    region_ = view()
    runs_ = view()
    residual_log_sd_ = view()
    dof_ = view()
    caveats_ = view()
    warnings_ = view()
    uncertainty_ = view()
    holdout_ = view()

    def __init__(self, law: str = "chinchilla", *, freeze: dict | None = None, tie: dict | None = None,
                 grid: dict | None = None, delta: float = 1e-3, n_refine: int = 4, axis: str | None = None,
                 warmup_steps: int | None = None, bin_width: int = 64):
        self.law = law
        self.freeze = freeze
        self.tie = tie
        self.grid = grid
        self.delta = delta
        self.n_refine = n_refine
        self.axis = axis
        self.warmup_steps = warmup_steps
        self.bin_width = bin_width

    _PARAMS = ("law", "freeze", "tie", "grid", "delta", "n_refine", "axis", "warmup_steps", "bin_width")

    def get_params(self, deep: bool = True) -> dict:
        return {k: getattr(self, k) for k in self._PARAMS}

    def set_params(self, **params) -> LawFit:
        for k, v in params.items():
            require(k in self._PARAMS, f"LawFit has no parameter {k!r}; it has {', '.join(self._PARAMS)}")
            setattr(self, k, v)
        return self

    @property
    def spec(self) -> FitSpec:
        return FitSpec(law=self.law, freeze=dict(self.freeze or {}), tie=dict(self.tie or {}),
                       grid={k: tuple(v) for k, v in (self.grid or {}).items()}, delta=self.delta,
                       n_refine=self.n_refine, axis=self.axis, warmup_steps=self.warmup_steps,
                       bin_width=self.bin_width)

    @single_threaded
    def fit(self, df: pd.DataFrame, *, starts: np.ndarray | None = None, weights=None) -> LawFit:
        """Fit to ``df``; ``weights`` (one per row, in the table's row order) scale the Huber terms."""
        spec = self.spec
        df = df.reset_index(drop=True)
        X, y, order = prepare(spec, df)
        spec = with_design_fixed(spec, X)
        table_rows = order  # the table position of each design row (``order`` is reused for the starts below)
        if weights is not None:
            weights = np.asarray(weights, dtype=float)[order]
        problem = _Problem(spec, X, y, weights)
        n_free = len(problem.free)
        require(
            len(y) >= max(n_free, 1),
            f"{len(y)} rows cannot determine {n_free} free parameters of law {spec.law}; add runs or freeze parameters",
        )
        seeded = self._nested_starts(df, X, problem, weights) if starts is None and not spec.grid else None
        nested = seeded is not None and len(seeded) > 0
        grid = init_grid(spec, nested=nested, X=X) if starts is None else np.atleast_2d(starts)
        n_grid = len(grid)
        if seeded is not None and len(seeded):
            grid = np.vstack([grid, seeded])
        objs = problem.objectives(grid)
        finite = np.flatnonzero(np.isfinite(objs))
        require(finite.size > 0, f"no start of the init grid gives a finite prediction for law {spec.law}")
        order = finite[np.argsort(objs[finite], kind="stable")][: spec.n_refine]
        # the best seeds from the nested fit are always refined, beside the best grid starts
        extra = finite[finite >= n_grid]
        extra = extra[np.argsort(objs[extra], kind="stable")][:N_SEEDS_REFINED]
        order = np.concatenate([order, extra[~np.isin(extra, order)]])
        best_z, best_f = None, np.inf
        optima, starts_of = [], []
        if n_free and problem.law.grad is not None:
            # A closed-form Jacobian (multi-power): damped Gauss-Newton from every start at once converges in
            # tens of iterations where L-BFGS-B needs hundreds (7.3 s -> 2.6 s on the 100M training curves).
            from repetita.laws.uncertainty import refine_batch

            Zr, fr, _ = refine_batch(problem, grid[order], np.repeat(problem.w[None, :], len(order), axis=0),
                                     max_iter=300)
            optima, starts_of = list(zip(fr.tolist(), Zr, strict=True)), [grid[i] for i in order]
        else:
            for i in order:
                z, f = problem.refine(grid[i]) if n_free else (grid[i], float(objs[i]))
                optima.append((f, z))
                starts_of.append(grid[i])
        if n_free and problem.law.grad is None and len(optima) > 1:
            # Polish every local optimum with damped Gauss-Newton on the reweighted Huber objective, all at
            # once: in the narrow curved valleys of the repetition laws L-BFGS-B stops early.
            from repetita.laws.uncertainty import refine_batch

            Z = np.array([z for _, z in optima])
            Zp, fp, _ = refine_batch(problem, Z, np.repeat(problem.w[None, :], len(Z), axis=0))
            optima = [(min(f, f2), z2 if f2 < f else z) for (f, z), z2, f2 in zip(optima, Zp, fp, strict=True)]
        k = int(np.argmin([f for f, _ in optima]))
        best_f, best_z = optima[k]
        self.start_ = np.asarray(starts_of[k]) if n_free else None
        self.optima_ = sorted(optima, key=lambda t: t[0])  # every refined start: (objective, free vector)
        self.problem_ = problem
        self.z_ = best_z
        theta = problem.theta(best_z)[0]
        params = {p: float(v) for p, v in zip(spec.law_obj.params, theta, strict=True)}
        self.fitted_ = FittedLaw(params, tuple(problem.free), float(best_f), math.nan, math.nan, int(len(y)),
                                 int(len(grid)), evidence_region(X), measured_runs(_with_unique(X, df, table_rows), y))
        pred = self._predict_design(X)
        # the scatter of the rows about the law (log scale, corrected for the fitted parameters): the part of
        # a prediction interval that parameter uncertainty does not carry (uncertainty.prediction_interval)
        dof = max(int(len(y)) - len(problem.free), 1)
        from repetita.laws.diagnostics import robust_log_r2

        self.fitted_ = self.fitted_.replace(
            dof=dof, residual_log_sd=float(np.sqrt(np.sum(np.log(pred / y) ** 2) / dof)),
            r2=float(1.0 - np.sum((pred - y) ** 2) / np.sum((y - y.mean()) ** 2)) if len(y) > 1 else math.nan,
            r2_log=robust_log_r2(pred, y))
        if weights is None:  # a resample or a holdout fold is not what the user reads
            from repetita.laws.caveats import Kind, typed
            from repetita.laws.diagnostics import diagnose

            caveats = diagnose(self, df)
            if spec.law_obj.notes is not None:
                caveats += typed(Kind.SCHEDULE_ASSUMED, spec.law_obj.notes(df))
            if not spec.law_obj.monotone:
                from repetita.laws.overfit import penalty_evidence

                caveats += typed(Kind.PENALTY_UNMEASURED, penalty_evidence(spec.law_obj, self.params_, X))
            self.fitted_ = self.fitted_.replace(caveats=tuple(caveats), warnings=tuple(c.text for c in caveats))
        return self

    def _nested_starts(self, df, X, problem, weights) -> np.ndarray | None:
        """Starts from the fit of the simpler law this one extends (its parameters then this law's seeds).

        Free fits of the data-constrained and reuse laws on small tables land in poor basins from the
        coarse grid alone (a model-size term driven to zero, R^2 0.70 where the truth gives 0.999);
        the nested fit puts the shared parameters where the data want them.
        """
        law = self.spec.law_obj
        if law.parent is None or law.seeds is None or not problem.free:
            return None
        parent_law = get_law(law.parent)
        shared = set(parent_law.params)
        freeze = {k: v for k, v in (self.freeze or {}).items() if k in shared}
        tie = {k: v for k, v in (self.tie or {}).items() if k in shared and v in shared}
        if all(p in freeze or p in tie for p in parent_law.params if p in shared):
            return None  # nothing shared is free: the nested fit could not move anything
        key = _parent_key(law.parent, freeze, tie, self.delta, self.n_refine, df, weights)
        if key not in _PARENT_FITS:
            try:
                parent = LawFit(law.parent, freeze=freeze, tie=tie, delta=self.delta, n_refine=self.n_refine).fit(
                    df, weights=weights)
            except UserError:
                return None
            if len(_PARENT_FITS) >= _PARENT_CACHE_SIZE:
                _PARENT_FITS.pop(next(iter(_PARENT_FITS)))
            _PARENT_FITS[key] = dict(parent.params_)
        seeds = law.seeds(_PARENT_FITS[key], X)
        free = problem.free
        return np.array([[seed.get(p, self.params_default(p)) for p in free] for seed in seeds], dtype=float)

    def params_default(self, name: str) -> float:
        law = self.spec.law_obj
        vals = law.grid.get(name, (law.defaults.get(name, 0.0),))
        return float(vals[len(vals) // 2])

    def problem_for(self, df: pd.DataFrame) -> _Problem:
        """The (unweighted) objective of this estimator's spec on ``df``."""
        spec = self.spec
        X, y, _ = prepare(spec, df.reset_index(drop=True))
        return _Problem(spec, X, y)

    def _predict_design(self, X: dict) -> np.ndarray:
        law = self.spec.law_obj
        theta = np.array([[self.params_[p] for p in law.params]])
        with np.errstate(all="ignore"):  # a branch of a min/max that is not taken may overflow; it is not used
            return np.exp(law.func(theta, X)[0])

    def predict(self, df: pd.DataFrame) -> np.ndarray:
        """Predicted loss for each row of ``df``, in the table's row order (no loss column needed)."""
        self._check_fitted()
        df = tables.canonical(df).reset_index(drop=True)
        if "loss" not in df.columns:
            df = df.assign(loss=1.0)
        X, _, order = prepare(self.spec, df)
        out = np.empty(len(order))
        out[order] = self._predict_design(X)
        return out

    def natural_params(self) -> dict[str, float]:
        self._check_fitted()
        return natural_params(self.spec.law_obj, self.params_)

    def _check_fitted(self):
        if "fitted_" not in self.__dict__:
            raise UserError("this fit has not been run yet; call fit(df) first")

    def result(self) -> dict:
        """The JSON-able fit record that ``repetita plan --law-file`` reads back."""
        self._check_fitted()
        record = self.fitted_.to_record()
        return {"law": self.law, "spec": self.spec.to_dict(), "params": record.pop("params"),
                "natural": self.natural_params()} | record

    @classmethod
    def from_result(cls, record: dict) -> LawFit:
        """Rebuild a fitted estimator from :meth:`result` output (for planning and prediction)."""
        try:
            spec = FitSpec.from_dict(record["spec"])
            params = {k: float(v) for k, v in record["params"].items()}
        except (KeyError, TypeError, ValueError) as exc:
            raise UserError(f"not a repetita fit record (missing or bad {exc})") from None
        missing = set(spec.law_obj.params) - set(params)
        require(not missing, f"fit record lacks parameter(s) {', '.join(sorted(missing))}")
        est = cls(spec.law, **{k: v for k, v in spec.to_dict().items() if k != "law"})
        # what a plan needs besides the point estimate: the saved uncertainty, the fit's own caveats and its
        # held-out error (when the fit file carries them)
        est.fitted_ = FittedLaw.from_record(record, params, spec.free_params())
        est.start_, est.optima_ = None, []  # the search's state: a fit file does not carry it
        return est


MAX_STORED_RUNS = 20_000  # a fit record carries its table's runs up to this many (datablations: 182)


def _with_unique(X: dict, df: pd.DataFrame, order) -> dict:
    """The design plus the table's unique tokens where the law does not read them (a Chinchilla fit of a
    run table): the stored runs keep them, so a plan composed from this fit (laws/compose.py) is checked
    against them."""
    if "unique_tokens" in X or "unique_tokens" not in df.columns or "params" not in X:
        return X
    u = pd.to_numeric(df["unique_tokens"], errors="coerce").to_numpy(dtype=float)[np.asarray(order)]
    return X | {"unique_tokens": u} if np.all(np.isfinite(u) & (u > 0)) else X


def measured_runs(X: dict, y) -> list | None:
    """The fitted table's runs as [N, D, U, loss] rows, so that a plan made from the fit file can start from
    the best measured run and check its proposal against the runs (decide/engine.py); None for tables without
    those columns or larger than MAX_STORED_RUNS."""
    if not all(k in X for k in ("params", "tokens", "unique_tokens")):
        return None
    keep = X["final"] if "final" in X else np.ones(len(y), dtype=bool)  # curves: only the ends of schedules
    if keep.sum() > MAX_STORED_RUNS:
        return None
    cols = (X["params"][keep], X["tokens"][keep], X["unique_tokens"][keep], np.asarray(y, dtype=float)[keep])
    return [[float(v) for v in row] for row in zip(*cols, strict=True)]


def evidence_region(X: dict) -> dict | None:
    """The largest model size, epoch count, compute (6ND) and tokens per parameter of a fitted run table:
    the region a plan made from this fit rests on (None for tables without those columns)."""
    if "params" not in X or "tokens" not in X:
        return None
    n, d = X["params"], X["tokens"]
    out = {"params": float(n.max()), "tokens": float(d.max()), "compute": float((tables.FLOPS_PER_PARAM_TOKEN * n * d).max()),
           "tokens_per_param": float((d / n).max()), "tokens_per_param_min": float((d / n).min())}
    if "unique_tokens" in X:
        k = d / X["unique_tokens"]
        out["epochs"] = float(k.max())
        # the most epochs seen at each model size: "1,740 epochs" were seen at 146M, not at 8.7B
        sizes = np.unique(n)
        out["epochs_by_params"] = [[float(s), float(k[n == s].max())] for s in sizes[:: max(1, len(sizes) // 200)]]
    # the tokens per parameter seen at each model size: 0.4 tokens per parameter was seen at 1B, not at 8.7B
    sizes = np.unique(n)
    tpp = d / n
    out["tokens_per_param_by_params"] = [[float(s), float(tpp[n == s].min()), float(tpp[n == s].max())]
                                         for s in sizes[:: max(1, len(sizes) // 200)]]
    return out


def bootstrap(est: LawFit, df: pd.DataFrame, n_boot: int, *, seed: int = 0, level: float = 0.95) -> dict:
    """Percentile intervals from ``n_boot`` row resamples, all refined together (``uncertainty.py``).

    Every resample starts from the full-data optimum and from the other distinct optima the fit found
    (the objective can be flat or multi-modal, as on datablations), and keeps its best.
    """
    from repetita.laws.uncertainty import bootstrap as vectorized

    est._check_fitted()
    best = np.array([est.params_[p] for p in est.problem_.free])
    others = [z for f, z in est.optima_[1:]
              if np.isfinite(f) and not np.allclose(z, best, rtol=1e-3, atol=1e-6)]
    return vectorized(est, df, n_boot, seed=seed, level=level, starts=np.array(others) if others else None)
