"""Out-of-sample evaluation: fit on some rows, predict the rest, report the error of every row.

In-sample objective values cannot rank two laws with different numbers of parameters; the error
on rows a fit never saw can. A holdout spec is one string:

- ``kfold:K`` or ``kfold:K:SEED``: K random folds (seeded), every row predicted once; on curves (a ``run``
  or ``curve`` column with repeated values) the folds deal whole runs;
- ``largest:COL`` or ``largest:COL:N``: hold out the rows with the N largest values of COL
  (extrapolation to bigger models or datasets, the question scaling laws exist for);
- ``group:COL``: leave one distinct value of COL out at a time;
- ``test:COL=V1,V2``: hold out the rows whose COL is one of the values;
- ``train:COL=V1,V2``: fit only on those rows and predict all others (the multi-power protocol
  trains on three schedules and predicts six).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd

from repetita.blas import single_threaded
from repetita.errors import UserError, require
from repetita.laws.data import canonical


@dataclass(frozen=True)
class Holdout:
    kind: str
    column: str | None = None
    values: tuple[str, ...] = ()
    k: int = 5
    n: int = 1
    seed: int = 0

    def __post_init__(self):
        require(self.kind in {"kfold", "largest", "group", "test", "train"}, f"unknown holdout kind {self.kind!r}")
        require(self.kind != "kfold" or self.k >= 2, f"kfold needs K >= 2, got {self.k}")
        require(self.n >= 1, f"largest needs N >= 1, got {self.n}")

    def splits(self, df: pd.DataFrame) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
        """Yield (name, train positions, test positions) over the table's rows."""
        df = canonical(df)
        n = len(df)
        if self.kind == "kfold":
            key = next((c for c in ("run", "curve") if c in df.columns and df[c].duplicated().any()), None)
            if key is not None:  # curves: whole runs go to a fold, so no run is split between fit and holdout
                runs = df[key].astype(str).to_numpy()
                names = pd.unique(runs)
                require(len(names) >= self.k, f"kfold:{self.k} needs at least {self.k} runs, the curves have "
                        f"{len(names)}")
                perm = np.random.default_rng(self.seed).permutation(len(names))
                for i, part in enumerate(np.array_split(perm, self.k)):
                    test = np.flatnonzero(np.isin(runs, names[part]))
                    yield f"fold{i}", np.setdiff1d(np.arange(n), test), test
                return
            require(n >= self.k, f"kfold:{self.k} needs at least {self.k} rows, the table has {n}")
            perm = np.random.default_rng(self.seed).permutation(n)
            for i, test in enumerate(np.array_split(perm, self.k)):
                yield f"fold{i}", np.setdiff1d(np.arange(n), test), np.sort(test)
            return
        require(self.column in df.columns, f"holdout column {self.column!r} not in the table")
        col = df[self.column]
        if self.kind == "largest":
            vals = pd.to_numeric(col, errors="coerce")
            require(vals.notna().all(), f"holdout column {self.column!r} must be numeric for 'largest'")
            distinct = np.unique(vals.to_numpy())
            require(len(distinct) > self.n, f"largest:{self.column}:{self.n} would hold out every row")
            cut = distinct[-self.n]
            test = np.flatnonzero(vals.to_numpy() >= cut)
            yield f"{self.column}>={cut:g}", np.flatnonzero(vals.to_numpy() < cut), test
        elif self.kind == "group":
            keys = col.astype(str).to_numpy()
            groups = pd.unique(keys)
            require(len(groups) >= 2, f"group:{self.column} needs at least two distinct values")
            for g in groups:
                yield f"{self.column}={g}", np.flatnonzero(keys != g), np.flatnonzero(keys == g)
        else:
            mask = _match(col, self.values)
            require(mask.any(), f"no row has {self.column} in {', '.join(self.values)}")
            require(not mask.all(), f"every row has {self.column} in {', '.join(self.values)}: nothing left")
            inside, outside = np.flatnonzero(mask), np.flatnonzero(~mask)
            label = f"{self.column} in {{{','.join(self.values)}}}"
            if self.kind == "test":
                yield label, outside, inside
            else:
                yield f"train {label}", inside, outside


def _match(col: pd.Series, values: tuple[str, ...]) -> np.ndarray:
    """Rows whose value equals one of ``values``, numerically when both sides are numbers."""
    as_str = col.astype(str).to_numpy()
    mask = np.isin(as_str, values)
    nums = pd.to_numeric(col, errors="coerce").to_numpy()
    for v in values:
        try:
            x = float(v)
        except ValueError:
            continue
        mask |= np.isclose(nums, x, rtol=1e-9, atol=0) & np.isfinite(nums)
    return mask


def parse_holdout(text: str) -> Holdout:
    parts = text.split(":")
    kind = parts[0]
    try:
        if kind == "kfold":
            require(len(parts) in (2, 3), f"holdout {text!r}: use kfold:K or kfold:K:SEED")
            return Holdout("kfold", k=int(parts[1]), seed=int(parts[2]) if len(parts) == 3 else 0)
        if kind == "largest":
            require(len(parts) in (2, 3), f"holdout {text!r}: use largest:COL or largest:COL:N")
            return Holdout("largest", column=parts[1], n=int(parts[2]) if len(parts) == 3 else 1)
        if kind == "group":
            require(len(parts) == 2, f"holdout {text!r}: use group:COL")
            return Holdout("group", column=parts[1])
        if kind in ("test", "train"):
            rest = text[len(kind) + 1 :]
            require("=" in rest, f"holdout {text!r}: use {kind}:COL=V1,V2")
            column, vals = rest.split("=", 1)
            values = tuple(v.strip() for v in vals.split(",") if v.strip())
            require(column and values, f"holdout {text!r}: use {kind}:COL=V1,V2")
            return Holdout(kind, column=column.strip(), values=values)
    except ValueError as exc:
        if isinstance(exc, UserError):
            raise
        raise UserError(f"holdout {text!r}: {exc}") from None
    raise UserError(
        f"unknown holdout {text!r}; use kfold:K, largest:COL[:N], group:COL, test:COL=V,.. or train:COL=V,.."
    )


@single_threaded
def evaluate(make_fit, df: pd.DataFrame, holdout: Holdout, fitted: list | None = None,
             intervals: float | None = None) -> tuple[pd.DataFrame, dict]:
    """Fit with ``make_fit()`` (a fresh estimator) on each training split, predict its test rows.

    Returns one row per held-out table row (split, row, observed, predicted, log_error,
    rel_error) and a summary (rows, RMSE of log error, mean and max |relative error|, R^2).
    ``fitted``, when given, receives each split's (estimator, training rows). With ``intervals`` (a level,
    e.g. 0.95) each held-out row also gets the interval of the law's mean and the prediction interval of
    its split's fit (``laws.intervals``, from the sandwich covariance of the training rows, as the
    benchmark's), and the summary their coverage.
    """
    df = canonical(df).reset_index(drop=True)
    rows = []
    for name, train, test in holdout.splits(df):
        est = make_fit().fit(df.iloc[train])
        if fitted is not None:
            fitted.append((est, df.iloc[train]))
        pred = est.predict(df.iloc[test])
        obs = pd.to_numeric(df["loss"].iloc[test]).to_numpy(dtype=float)
        groups = df[holdout.column].astype(str).iloc[test] if holdout.column else [name] * len(test)
        bounds = _bounds(est, df.iloc[train], df.iloc[test], intervals) if intervals else None
        for i, (pos, g, o, p) in enumerate(zip(test, groups, obs, pred, strict=True)):
            rows.append({"split": name, "group": g, "row": int(pos) + 1, "observed": o, "predicted": float(p)}
                        | ({k: float(v[i]) for k, v in bounds.items()} if bounds else {}))
    table = pd.DataFrame(rows)
    table["log_error"] = np.log(table["predicted"]) - np.log(table["observed"])
    table["rel_error"] = table["predicted"] / table["observed"] - 1.0
    summary = summarize(table)
    summary["by_group"] = {str(g): summarize(sub) for g, sub in table.groupby("group", sort=False)}
    return table, summary


def _bounds(est, train: pd.DataFrame, test: pd.DataFrame, level: float) -> dict:
    from repetita.laws.intervals import held_out_intervals

    iv = held_out_intervals(est, train, test, level)
    return {"mean_lo": iv.mean_lo, "mean_hi": iv.mean_hi, "pred_lo": iv.lo, "pred_hi": iv.hi}


def summarize(table: pd.DataFrame) -> dict:
    obs, pred = table["observed"].to_numpy(), table["predicted"].to_numpy()
    ss_tot = float(np.sum((obs - obs.mean()) ** 2))
    out = {
        "rows": int(len(table)),
        "rmse_log": float(np.sqrt(np.mean(table["log_error"] ** 2))),
        "mean_abs_rel": float(np.mean(np.abs(table["rel_error"]))),
        "max_abs_rel": float(np.max(np.abs(table["rel_error"]))),
        "r2": float(1 - np.sum((pred - obs) ** 2) / ss_tot) if ss_tot > 0 else float("nan"),
    }
    if "pred_lo" in table.columns:  # the share of held-out losses inside each interval (NaN bounds: outside)
        out["coverage"] = float(np.mean((obs >= table["pred_lo"]) & (obs <= table["pred_hi"])))
        out["coverage_mean"] = float(np.mean((obs >= table["mean_lo"]) & (obs <= table["mean_hi"])))
    return out
