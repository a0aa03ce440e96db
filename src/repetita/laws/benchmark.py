"""How well does each law extrapolate? Every law, fitted on one side of a split that mirrors a user's
position, scored on the other side of every public multi-epoch table the project ships.

Splits (``SPLITS``):
  * ``size``    fit the smaller models, predict the two largest model sizes;
  * ``epochs``  fit the runs with at most 16 epochs (7 for the curve finals), predict the rest;
  * ``compute`` fit the runs below the 75th percentile of compute C = 6 N D, predict the rest;
  * ``unique``  leave the largest unique-token budget out.

Scores per (law, dataset, split):
  * ``error``: held-out mean |log(predicted / observed)|;
  * ``coverage``: the share of held-out losses inside the law's 95% *prediction* interval, the one plans
    print: 200 draws from the sandwich (Laplace) covariance of the training-side fit, each prediction
    times the fit's residual scatter (Student t on the RMS log residual, ``uncertainty.prediction_interval``);
    ``coverage_mean``: the same for the interval of the law's mean (the draws alone), which is what a
    parameter interval promises and what users misread as the range of their run's loss;
  * ``regret``: decision quality. Among held-out runs that share a compute budget (within 5%) and a unique-
    token budget, does the allocation the law prefers reach the lowest loss? Regret is the observed loss of
    the law's pick minus the best observed, in nats, averaged over those groups;
  * ``turn``: where the law fitted on the training side puts the loss minimum of a named series (the
    146M-param model on 100M unique tokens in datablations, observed best at 59 epochs).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from repetita.blas import single_threaded
from repetita.errors import UserError, require
from repetita.laws.data import FLOPS_PER_PARAM_TOKEN

# Laws with a data term for repeated tokens, plus the Chinchilla baseline (every token counted as fresh).


def benchmark_laws() -> tuple[str, ...]:
    """Every registered law fitted on run rows of (N, D[, U]): the built-in ones and any plug-in alike, less
    the retired ones (``Law.retired``: a measured reason; ``--only NAME`` still runs them)."""
    from repetita.laws.law import LAWS

    return tuple(name for name, law in LAWS.items()
                 if {"params", "tokens"} <= set(law.columns) and not law.needs_axis and not law.curves
                 and not law.retired)
SPLITS = ("size", "epochs", "compute", "unique")
LEVEL = 0.95
TURN_SERIES = {"datablations": (146.5e6, 1e8, 59.0), "datablations-all": (146.5e6, 1e8, 59.0)}


def curve_finals(curves: pd.DataFrame, slack: float = 0.05) -> pd.DataFrame:
    """The final loss of each run of a curve table: its last evaluation, kept when it lies within ``slack``
    of the run's planned length (epochs x U; some logs stop a little early) and then placed at that length.
    Runs whose log ends earlier are left out: a cosine run's loss part-way is not its final loss."""
    last = curves.sort_values("tokens").groupby("run", sort=True).tail(1).sort_values("run")
    planned = last["epochs"] * last["unique_tokens"]
    last = last[last["tokens"] >= (1 - slack) * planned]
    return last.assign(tokens=last["epochs"] * last["unique_tokens"]).reset_index(drop=True)


def datasets() -> dict[str, pd.DataFrame]:
    """Every public multi-epoch table shipped with repetita, as run rows."""
    from repetita.examples import load_example

    return {"datablations": load_example("datablations"), "datablations-all": load_example("datablations-all"),
            "datablations-curves": curve_finals(load_example("datablations-curves"))}


def _canonical(df: pd.DataFrame) -> pd.DataFrame:
    from repetita.laws import data as tables

    return tables.canonical(df).reset_index(drop=True)


def split_mask(df: pd.DataFrame, split: str) -> np.ndarray:
    """True for the held-out rows of ``split``."""
    if split == "size":
        sizes = np.sort(df["params"].unique())
        return (df["params"] >= sizes[-2]).to_numpy() if len(sizes) > 2 else np.zeros(len(df), bool)
    if split == "epochs":
        cut = 16.0 if df["epochs"].max() > 20 else 7.5
        return (df["epochs"] > cut).to_numpy()
    if split == "compute":
        c = FLOPS_PER_PARAM_TOKEN * df["params"] * df["tokens"]
        return (c > c.quantile(0.75)).to_numpy()
    if split == "unique":
        return (df["unique_tokens"] == df["unique_tokens"].max()).to_numpy()
    raise UserError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")


def decision_regret(test: pd.DataFrame, pred: np.ndarray) -> tuple[float, int]:
    """Mean regret (nats) of picking the lowest predicted loss within groups of held-out runs that share a
    compute budget (5%) and a unique-token budget; (nan, 0) when no group has two runs."""
    c = np.log(FLOPS_PER_PARAM_TOKEN * test["params"].to_numpy() * test["tokens"].to_numpy())
    key = pd.DataFrame({"c": np.round(c / np.log(1.05)), "u": test["unique_tokens"].to_numpy(),
                        "n": test["params"].to_numpy(), "obs": test["loss"].to_numpy(), "pred": pred})
    regrets = []
    for _, g in key.groupby(["c", "u"]):
        if g["n"].nunique() > 1:  # the group offers a choice of model size (and so of epochs)
            regrets.append(float(g["obs"].iloc[int(np.argmin(g["pred"].to_numpy()))] - g["obs"].min()))
    return (float(np.mean(regrets)), len(regrets)) if regrets else (float("nan"), 0)


@dataclass(frozen=True)
class Score:
    law: str
    dataset: str
    split: str
    n_train: int
    n_test: int
    error: float  # mean |log residual| on held-out rows
    coverage: float  # share of held-out losses inside the 95% prediction interval (the plan's default)
    coverage_mean: float  # the same for the interval of the law's mean (parameter uncertainty alone)
    regret: float  # nats, mean over compute-matched groups of held-out runs
    groups: int
    turn: float | None  # epochs of the named series' loss minimum under the training-side fit
    seconds: float
    warnings: list[str] = field(default_factory=list)


def score(law: str, name: str, df: pd.DataFrame, split: str, freeze: dict | None = None) -> Score | None:
    """Fit ``law`` on the training side of ``split`` and score it on the held-out side (None: empty side)."""
    from repetita.laws.fit import LawFit
    from repetita.laws.law import get_law

    df = _canonical(df)
    test_mask = split_mask(df, split)
    train, test = df[~test_mask], df[test_mask]
    if len(test) == 0 or len(train) < 8:
        return None
    t0 = time.perf_counter()
    est = LawFit(law, freeze=freeze).fit(train)
    pred = est.predict(test)
    obs = test["loss"].to_numpy()
    log_err = np.log(pred / obs)
    lo, hi, lo_mean, hi_mean = _intervals(est, train, test)
    regret, groups = decision_regret(test, pred)
    turn = None
    if name in TURN_SERIES:
        n, u, _ = TURN_SERIES[name]
        turn = float(get_law(law).turn(est.params_, n, u))
    return Score(law, name, split, len(train), len(test), float(np.mean(np.abs(log_err))),
                 float(np.mean((obs >= lo) & (obs <= hi))), float(np.mean((obs >= lo_mean) & (obs <= hi_mean))),
                 regret, groups, turn, time.perf_counter() - t0, list(est.warnings_))


def _intervals(est, train: pd.DataFrame, test: pd.DataFrame) -> tuple:
    """The plan's default intervals for each held-out row (``laws.intervals.held_out_intervals``, as
    ``fit --holdout`` reports them)."""
    from repetita.laws.intervals import held_out_intervals

    iv = held_out_intervals(est, train, test, LEVEL)
    return iv.lo, iv.hi, iv.mean_lo, iv.mean_hi


@single_threaded
def _task(laws, name: str, df: pd.DataFrame, split: str) -> list[Score]:
    """Every law on one (table, split): in one process, so each nested parent fit is made once."""
    return [s for s in (score(law, name, df, split) for law in laws) if s is not None]


def run(laws=None, splits=SPLITS, names=None, tables: dict | None = None,
        workers: int | None = None) -> list[Score]:
    """Every law x dataset x split; ``tables`` replaces the shipped datasets (name -> run table).

    The (table, split) cells are independent and run on ``workers`` processes (default: every core),
    each fit on one BLAS thread; the scores do not depend on the worker count (each fit is deterministic).
    """
    laws = benchmark_laws() if laws is None else laws
    import concurrent.futures as cf
    import multiprocessing as mp
    import os

    tables = datasets() if tables is None else tables
    tasks = []
    for name, raw in tables.items():
        if names and name not in names:
            continue
        df = _canonical(raw)
        require("unique_tokens" in df and "tokens" in df, f"{name}: needs tokens and unique_tokens columns")
        require((df["tokens"] / df["unique_tokens"] > 1.01).any(),
                f"{name}: no run repeats its data (every run is one epoch); a repetition benchmark needs some")
        tasks += [(tuple(laws), name, df, split) for split in splits]
    workers = max(1, min(workers or os.cpu_count() or 1, len(tasks)))
    if workers == 1:
        return [s for t in tasks for s in _task(*t)]
    with cf.ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as pool:
        return [s for part in pool.map(_task, *zip(*tasks, strict=True)) for s in part]


def table(scores: list[Score]) -> pd.DataFrame:
    return pd.DataFrame([asdict(s) for s in scores]).drop(columns="warnings")


def markdown(scores: list[Score]) -> str:
    """One block per dataset: laws as rows, splits as column groups (error / coverage / regret)."""
    df = table(scores)
    lines = []
    for name, g in df.groupby("dataset", sort=False):
        splits = list(dict.fromkeys(g["split"]))
        lines.append(f"**{name}** (held-out mean |log residual| / coverage of the 95% prediction interval "
                     "(of the mean's interval) / decision regret in nats)")
        lines.append("")
        lines.append("| law | " + " | ".join(splits) + " |")
        lines.append("|---|" + "---|" * len(splits))
        for law, lg in g.groupby("law", sort=False):
            cells = []
            for sp in splits:
                r = lg[lg["split"] == sp]
                if r.empty:
                    cells.append("-")
                    continue
                r = r.iloc[0]
                reg = "-" if not np.isfinite(r["regret"]) else f"{r['regret']:.3f}"
                cells.append(f"{r['error']:.4f} / {r['coverage']:.2f} ({r['coverage_mean']:.2f}) / {reg}")
            lines.append(f"| {law} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)
