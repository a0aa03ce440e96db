"""Benchmark and measurements of the law over whole curves (src/repetita/laws/curve_law.py).

Speed: the curve law fitted on all 9,260 evaluations of the shipped datablations curves (both corpora as one
table, and each corpus alone), with its closed-form Jacobian and (row, bin) pair design, against the same
law fitted the way every other law is (complex-step gradients, L-BFGS-B from each start, then the
Gauss-Newton polish), in the same run.

Measurements (docs/laws.md): the curve split (cut at 16 epochs, at a third) and run split on each corpus,
the turn per run, the reduction to the multi-power law on its own curves, the epoch extrapolation of the 182
datablations runs with the curve law added, and whole-table fits of the turning laws on the 182 runs.

The baseline is stopped after --limit seconds (default 300) and then reported as a lower bound.

Usage: python benchmarks/curve_law.py [--skip-baseline] [--limit S] [--only speed|splits|runs]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import signal
import time

import numpy as np
import pandas as pd

from repetita.examples import load_example
from repetita.laws import curve_bench
from repetita.laws.fit import LawFit
from repetita.laws.law import LAWS, get_law


def _timed(law: str, df: pd.DataFrame) -> tuple[float, LawFit]:
    t0 = time.perf_counter()
    est = LawFit(law).fit(df)
    return time.perf_counter() - t0, est


class _Late(Exception):
    pass


def _late(signum, frame):
    raise _Late


def _timed_limited(law: str, df: pd.DataFrame, limit: int) -> tuple[float, LawFit | None]:
    """The fit's time, or (limit, None) when it has not finished within ``limit`` seconds (SIGALRM)."""
    old = signal.signal(signal.SIGALRM, _late)
    signal.alarm(limit)
    try:
        return _timed(law, df)
    except _Late:
        return float(limit), None
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def speed(skip_baseline: bool, limit: int) -> None:
    cv = load_example("datablations-curves")
    print(f"## speed: {len(cv)} evaluations of {cv['run'].nunique()} runs")
    tables = [("all 9,260 evaluations as one table", cv)] + [(f"{c} alone", g) for c, g in cv.groupby("corpus")]
    laws = ["curve-overfit"]
    if not skip_baseline:
        slow = dataclasses.replace(get_law("curve-overfit"), name="curve-overfit-complex-step", grad=None)
        if slow.name not in LAWS:
            LAWS.add(slow.name, slow)
        laws.append(slow.name)
    for label, df in tables:
        times = {}
        for law in laws:
            t, est = _timed_limited(law, df, limit)
            times[law] = t
            if est is None:
                print(f"{label:38s} {law:28s} not finished after {t:.0f} s (stopped)")
                continue
            print(f"{label:38s} {law:28s} {t:7.1f} s  objective {est.fitted_.objective:.6f}  "
                  f"R^2(log, robust) {est.fitted_.r2_log:.4f}")
        if len(times) == 2:
            print(f"{'':38s} ratio {'>' if times[laws[1]] >= limit else ''}"
                  f"{times[laws[1]] / times[laws[0]]:.1f}x")


def splits() -> None:
    cv = load_example("datablations-curves")
    print("## curve and run splits (held-out mean |log residual|, coverage of the 95% prediction interval "
          "(of the mean's interval), median predicted/observed turn over the runs that turn)")
    for corpus, df in cv.groupby("corpus"):
        for kw in ({"max_epochs": 16}, {"fraction": 1 / 3}):
            s = curve_bench.curve_split(df, **kw)
            print(f"{corpus:6s} {s.name:28s} rows {s.rows:5d}  {s.mean_abs_log_residual:.4f} / {s.coverage:.2f} "
                  f"({s.coverage_mean:.2f})  turn ratio {s.median_turn_ratio:.2f}")
            print(s.turns[s.turns["turns"]].round(3).to_string(index=False))
        s = curve_bench.run_split(df)
        print(f"{corpus:6s} {s.name:28s} rows {s.rows:5d}  {s.mean_abs_log_residual:.4f} / {s.coverage:.2f} "
              f"({s.coverage_mean:.2f})")
    print("## the multi-power law's own curves (100M), each cut at a third of its steps")
    for law, s in curve_bench.schedule_curve_split().items():
        print(f"{law:14s} rows {s.rows:5d}  {s.mean_abs_log_residual:.4f} / {s.coverage:.2f} ({s.coverage_mean:.2f})")
    print("## the multi-power law's own curves (100M; fit on cosine_24000, constant_24000, wsdcon_9)")
    r = curve_bench.schedule_reduction()
    r["difference"] = r["curve-overfit"] - r["multipower"]
    print(r.to_string(float_format=lambda v: f"{v:.6f}"))


def runs() -> None:
    from repetita.laws.intervals import coverage, held_out_intervals

    d = load_example("datablations").rename(columns={"val_loss": "loss"})
    short, long = d[d["epochs"] <= 16], d[d["epochs"] > 16]
    cv = load_example("datablations-curves")
    c4 = cv[cv["corpus"] == "c4"]
    c4_cut = c4[curve_bench.cut_mask(c4, max_epochs=16)]
    print("## 182 datablations runs: fit <= 16 epochs, predict the 84 longer runs")
    for label, train in (("runs <= 16 epochs", short),
                         ("runs <= 16 epochs + C4 curves cut at 16 epochs",
                          pd.concat([short.assign(run=short["name"]), c4_cut], ignore_index=True))):
        est = LawFit("curve-overfit").fit(train)
        with np.errstate(over="ignore"):
            score = coverage(held_out_intervals(est, train, long), long["loss"].to_numpy())
        turn = get_law("curve-overfit").turn(est.params_, 146e6, 100e6)
        print(f"curve-overfit on {label}: {score['mean_abs_log_residual']:.4f} / {score['coverage']:.2f} "
              f"({score['coverage_mean']:.2f}); turn for 146M / 100M: {float(turn):.3g} epochs (observed 59)")
    print("## whole-table fits on all 182 runs (free): R^2 of log loss (plain, and robust as the fit reports it)")
    y = np.log(d["loss"].to_numpy())
    for law in ("overfit-1", "overfit-2", "overfit-4", "data-constrained-overfit", "curve-overfit",
                "data-constrained"):
        est = LawFit(law).fit(d)
        r = np.log(est.predict(d)) - y
        plain = 1.0 - np.sum(r ** 2) / np.sum((y - y.mean()) ** 2)
        turn = float(get_law(law).turn(est.params_, 146e6, 100e6))
        print(f"{law:26s} R^2(log) {plain:.4f}  robust {est.fitted_.r2_log:.4f}  turn 146M/100M {turn:.3g}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--skip-baseline", action="store_true")
    ap.add_argument("--limit", type=int, default=300, help="seconds a baseline fit may take before it is stopped")
    ap.add_argument("--only", choices=("speed", "splits", "runs"))
    args = ap.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, python "
          f"{platform.python_version()}, numpy {np.__version__}")
    if args.only in (None, "speed"):
        speed(args.skip_baseline, args.limit)
    if args.only in (None, "splits"):
        splits()
    if args.only in (None, "runs"):
        runs()


if __name__ == "__main__":
    main()
