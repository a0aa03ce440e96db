"""How well a law over whole curves predicts what was not fitted: the rest of each curve, other runs, the turn.

Two splits, scored like the run-table benchmark (mean |log residual| of the held-out evaluations and the
coverage of the 95% prediction interval, laws/intervals.py), with no run split between fit and holdout:

- **curve split**: every curve cut at ``max_epochs`` epochs (or at a ``fraction`` of its schedule), the
  law fitted on the first parts and asked for the rest;
- **run split**: the runs dealt into ``folds`` groups (seeded), each group's whole curves predicted from
  the others'.

The turn of a curve is the epoch count at its lowest evaluation; a curve split reports it observed and
predicted for every run, with the median ratio over the runs that turn (their lowest point before the
last tenth of their schedule). :func:`schedule_reduction` fits the curve law and the multi-power law to the
same training schedules of the multi-power table, which has one model size and no repetition, and scores
both on the held-out schedules.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from repetita.errors import require
from repetita.laws.curve_law import run_ids as _runs
from repetita.laws.curve_law import schedule_spans
from repetita.laws.data import canonical

LAW = "curve-overfit"
TURNED_BEFORE = 0.9  # a run turns when its lowest evaluation lies before this fraction of its schedule


def _axis(df: pd.DataFrame) -> str:
    return "tokens" if "tokens" in df.columns else "step"  # the multi-power table logs steps


def _schedule_tokens(df: pd.DataFrame) -> np.ndarray:
    cols = {c: df[c].to_numpy(dtype=float) for c in ("total_tokens", "epochs", "unique_tokens") if c in df.columns}
    return schedule_spans(_runs(df), df[_axis(df)].to_numpy(dtype=float), cols)


def cut_mask(df: pd.DataFrame, *, max_epochs: float | None = None, fraction: float | None = None) -> np.ndarray:
    """The evaluations kept when every curve is cut at ``max_epochs`` epochs or at ``fraction`` of its
    schedule's tokens (exactly one of the two)."""
    require((max_epochs is None) != (fraction is None), "cut curves at an epoch count or at a fraction, not both")
    if max_epochs is not None:
        return (df["tokens"] / df["unique_tokens"] <= max_epochs * (1 + 1e-9)).to_numpy()
    return (df[_axis(df)] <= fraction * _schedule_tokens(df) * (1 + 1e-9)).to_numpy()


def turn_table(df: pd.DataFrame, predicted: np.ndarray) -> pd.DataFrame:
    """Per run: the epoch of its lowest evaluation, observed and predicted, and their ratio."""
    frame = pd.DataFrame({"run": _runs(df).to_numpy(), "epochs": (df["tokens"] / df["unique_tokens"]).to_numpy(),
                          "share": (df["tokens"] / _schedule_tokens(df)).to_numpy(),
                          "loss": df["loss"].to_numpy(), "predicted": predicted})
    rows = []
    for run, g in frame.groupby("run", sort=False):
        i, j = int(np.argmin(g["loss"].to_numpy())), int(np.argmin(g["predicted"].to_numpy()))
        observed, pred = float(g["epochs"].iloc[i]), float(g["epochs"].iloc[j])
        rows.append({"run": run, "observed_turn": observed, "predicted_turn": pred, "ratio": pred / observed,
                     "turns": bool(g["share"].iloc[i] < TURNED_BEFORE),
                     "rise_observed": float(g["loss"].iloc[-1] - g["loss"].iloc[i]),
                     "rise_predicted": float(g["predicted"].iloc[-1] - g["predicted"].iloc[j])})
    return pd.DataFrame(rows)


@dataclass(frozen=True)
class SplitScore:
    """A split's held-out score: rows, mean |log residual|, coverage of the prediction interval and of the
    mean's interval, and for a curve split the per-run turns."""

    name: str
    rows: int
    mean_abs_log_residual: float
    coverage: float
    coverage_mean: float
    turns: pd.DataFrame | None = None

    @property
    def median_turn_ratio(self) -> float:
        if self.turns is None:
            return float("nan")
        turned = self.turns[self.turns["turns"]]
        return float(np.median(turned["ratio"])) if len(turned) else float("nan")


def _score(law: str, train: pd.DataFrame, test: pd.DataFrame, name: str, **fit_kw) -> tuple:
    from repetita.laws.fit import LawFit
    from repetita.laws.intervals import coverage, held_out_intervals

    est = LawFit(law, **fit_kw).fit(train)
    with np.errstate(over="ignore"):  # a draw far along a flat direction: its bound is infinite, not an error
        iv = held_out_intervals(est, train, test)
    score = coverage(iv, test["loss"].to_numpy())
    return est, SplitScore(name, score["rows"], score["mean_abs_log_residual"], score["coverage"],
                           score["coverage_mean"])


def curve_split(df: pd.DataFrame, *, max_epochs: float | None = None, fraction: float | None = None,
                law: str = LAW) -> SplitScore:
    """Fit the first part of every curve, predict the rest; with the turns of every run."""
    df = canonical(df).reset_index(drop=True)
    keep = cut_mask(df, max_epochs=max_epochs, fraction=fraction)
    require(keep.any() and not keep.all(), "the cut leaves nothing to fit or nothing to predict")
    name = f"curves cut at {max_epochs:g} epochs" if max_epochs is not None else f"curves cut at {fraction:.3g}"
    est, score = _score(law, df[keep], df[~keep], name)
    turns = turn_table(df, est.predict(df)) if "unique_tokens" in df.columns else None
    return SplitScore(score.name, score.rows, score.mean_abs_log_residual, score.coverage, score.coverage_mean,
                      turns)


def run_split(df: pd.DataFrame, *, folds: int = 4, seed: int = 0, law: str = LAW) -> SplitScore:
    """Deal the runs into ``folds`` groups; predict each group's whole curves from the other runs."""
    df = canonical(df).reset_index(drop=True)
    runs = _runs(df)
    names = runs.unique()
    require(len(names) >= folds >= 2, f"a run split needs at least {folds} runs and 2 folds")
    group = dict(zip(np.random.default_rng(seed).permutation(names), np.arange(len(names)) % folds, strict=True))
    fold = runs.map(group).to_numpy()
    rows, res, inside, inside_mean = 0, 0.0, 0.0, 0.0
    for f in range(folds):
        test = fold == f
        _, s = _score(law, df[~test], df[test], f"fold {f}")
        rows += s.rows
        res += s.mean_abs_log_residual * s.rows
        inside += s.coverage * s.rows
        inside_mean += s.coverage_mean * s.rows
    return SplitScore(f"runs in {folds} folds", rows, res / rows, inside / rows, inside_mean / rows)


def schedule_curve_split(model: str = "100M", fraction: float = 1 / 3) -> dict[str, SplitScore]:
    """Every curve of one model of the multi-power table cut at ``fraction`` of its steps, the rest predicted,
    by the multi-power law and by the curve law."""
    from repetita.examples import load_example

    df = load_example(f"multipowerlaw:{model}").reset_index(drop=True)
    return {law: curve_split(df, fraction=fraction, law=law) for law in ("multipower", LAW)}


def schedule_reduction(model: str = "100M", train: tuple[str, ...] = ("cosine_24000", "constant_24000", "wsdcon_9"),
                       ) -> pd.DataFrame:
    """Held-out R^2 per schedule of the multi-power law and of the curve law, fitted on the same training
    schedules of one model of the multi-power table (no model-size term, no repetition)."""
    from repetita.examples import load_example
    from repetita.laws.fit import LawFit

    df = load_example(f"multipowerlaw:{model}").reset_index(drop=True)
    is_train = df["curve"].isin(train).to_numpy()
    out = {}
    for law in ("multipower", LAW):
        est = LawFit(law).fit(df[is_train])
        pred = est.predict(df[~is_train])
        test = df[~is_train].assign(predicted=pred)
        out[law] = {c: 1.0 - float(np.sum((g["loss"] - g["predicted"]) ** 2) / np.sum((g["loss"] - g["loss"].mean()) ** 2))
                    for c, g in test.groupby("curve")}
    return pd.DataFrame(out)


def run(tables: dict[str, pd.DataFrame] | None = None, *, law: str = LAW, folds: int = 4) -> pd.DataFrame:
    """Every split on every curve table (default: each corpus of the shipped datablations curves, and the
    multi-power law's 100M curves with both laws): one row per (table, law, split)."""
    rows = []

    def add(table, s, law_name):
        rows.append({"table": table, "law": law_name, "split": s.name, "rows": s.rows,
                     "mean_abs_log_residual": s.mean_abs_log_residual, "coverage": s.coverage,
                     "coverage_mean": s.coverage_mean, "turn_ratio": s.median_turn_ratio})

    if tables is None:
        from repetita.examples import load_example

        cv = load_example("datablations-curves")
        tables = {f"datablations-curves ({c})": g.reset_index(drop=True) for c, g in cv.groupby("corpus")}
        for law_name, s in schedule_curve_split().items():
            add("multipowerlaw:100M", s, law_name)
    for name, df in tables.items():
        repeated = "unique_tokens" in df.columns and bool((df["tokens"] > df["unique_tokens"] * 16).any())
        if repeated:
            add(name, curve_split(df, max_epochs=16, law=law), law)
        add(name, curve_split(df, fraction=1 / 3, law=law), law)
        if _runs(df).nunique() >= folds:
            add(name, run_split(df, folds=folds, law=law), law)
    return pd.DataFrame(rows)


def markdown(df: pd.DataFrame) -> str:
    """The scores as a markdown table: mean |log residual| / coverage (of the mean's interval), turn ratio."""
    lines = ["| table | law | split | rows | held-out mean \\|log residual\\| / coverage (mean's) | turn ratio |",
             "|---|---|---|---|---|---|"]
    for r in df.itertuples():
        turn = "-" if not np.isfinite(r.turn_ratio) else f"{r.turn_ratio:.2f}"
        lines.append(f"| {r.table} | {r.law} | {r.split} | {r.rows} | {r.mean_abs_log_residual:.4f} / "
                     f"{r.coverage:.2f} ({r.coverage_mean:.2f}) | {turn} |")
    return "\n".join(lines)
