"""What a fit learned, as one typed, frozen value.

``LawFit.fit`` produces a :class:`FittedLaw` (``est.fitted_``); a fit file is its JSON
(``to_record`` / ``from_record``, read back by ``LawFit.from_result``); plans, intervals and the decision
engine read it through the estimator's attributes (``est.params_``, ``est.region_``, ...), which are views
of this one value. Parts that a fit or an older fit file does not have are ``None`` (or empty), never
missing, so no reader needs a default.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from repetita.errors import UserError


@dataclass(frozen=True)
class FittedLaw:
    params: dict  # name -> fitted value, in the law's parametrisation (a = ln A)
    free: tuple[str, ...]  # the parameters the fit moved (the rest frozen or tied)
    objective: float  # the Huber objective at the optimum (nan: not recorded)
    r2: float
    r2_log: float  # robust R^2 of log losses (laws.diagnostics.robust_log_r2)
    n_rows: int
    n_starts: int
    region: dict | None = None  # the fitted runs' evidence region (laws.fit.evidence_region)
    runs: list | None = None  # the fitted runs as [N, D, U, loss] (laws.fit.measured_runs)
    residual_log_sd: float | None = None  # scatter of log losses about the law, per degree of freedom
    dof: int | None = None
    caveats: tuple = ()  # laws.caveats.Caveat, typed
    warnings: tuple[str, ...] = ()  # the caveats' texts (older fit files carry only these)
    uncertainty: dict | None = None  # parameter draws (laws.record.uncertainty_block)
    holdout: dict | None = None  # held-out errors, when the fit was scored

    def replace(self, **changes) -> FittedLaw:
        return dataclasses.replace(self, **changes)

    def to_record(self) -> dict:
        """The fit file's fields for this value (the law and its spec are the estimator's)."""
        out = {"params": dict(self.params), "free": list(self.free), "objective": self.objective, "r2": self.r2,
               "r2_log": self.r2_log, "n_rows": self.n_rows, "n_starts": self.n_starts,
               "warnings": list(self.warnings), "caveats": [c.to_dict() for c in self.caveats],
               "region": self.region, "runs": self.runs, "residual_log_sd": self.residual_log_sd, "dof": self.dof}
        if self.uncertainty is not None:
            out["uncertainty"] = self.uncertainty
        if self.holdout is not None:
            out["holdout"] = self.holdout
        return out

    @classmethod
    def from_record(cls, record: dict, params: dict, free_default) -> FittedLaw:
        """The value a fit file describes; a part it lacks or holds malformed (an older or hand-edited file)
        is None, so a plan made from it says what it cannot know instead of failing."""
        from repetita.laws.caveats import of_record

        def number(key):
            v = record.get(key)
            return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else math.nan

        sd, dof = record.get("residual_log_sd"), record.get("dof")
        free = record.get("free", free_default)
        if not isinstance(free, list | tuple) or not all(isinstance(f, str) for f in free):
            raise UserError("not a repetita fit record (bad 'free')")
        return cls(
            params=params, free=tuple(free), objective=number("objective"), r2=number("r2"),
            r2_log=number("r2_log"), n_rows=int(number("n_rows")) if math.isfinite(number("n_rows")) else 0,
            n_starts=int(number("n_starts")) if math.isfinite(number("n_starts")) else 0,
            region=record.get("region") if isinstance(record.get("region"), dict) else None,
            runs=record.get("runs") if isinstance(record.get("runs"), list) else None,
            residual_log_sd=float(sd) if isinstance(sd, int | float) and math.isfinite(sd) and sd >= 0 else None,
            dof=int(dof) if isinstance(dof, int | float) and dof >= 1 else None,
            caveats=tuple(of_record(record)), warnings=tuple(record.get("warnings", []) or ()),
            uncertainty=record.get("uncertainty") if isinstance(record.get("uncertainty"), dict) else None,
            holdout=record.get("holdout") if isinstance(record.get("holdout"), dict) else None)


class view:
    """An estimator attribute that reads (and, by replacing the value, sets) one field of ``fitted_``:
    ``params_`` is ``fitted_.params``. Reading it before ``fit`` is the estimator's one-line error."""

    def __set_name__(self, owner, name):
        self.field = name.removesuffix("_")

    def __get__(self, obj, owner=None):
        if obj is None:
            return self
        if "fitted_" not in obj.__dict__:
            raise UserError("this fit has not been run yet; call fit(df) first")
        return getattr(obj.fitted_, self.field)

    def __set__(self, obj, value):
        if "fitted_" not in obj.__dict__:
            raise UserError("this fit has not been run yet; call fit(df) first")
        obj.fitted_ = obj.fitted_.replace(**{self.field: value})
