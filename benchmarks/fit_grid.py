"""Benchmark: the 4,500-start Chinchilla fit, repetita's estimator vs the reference method.

Baseline (Besiroglu et al. 2024's replication, and the datablations notebook in spirit): a plain
Python loop running scipy's L-BFGS-B with finite-difference gradients from every one of the 4,500
grid starts, keeping the best. repetita scores the whole grid in one vectorized call, then refines
only the best few starts with exact gradients. Both minimise the same summed Huber (delta 1e-3) of
log predictions on the same 240 points; the ratio is reported at equal or lower objective.

Usage: python benchmarks/fit_grid.py [--starts N] [--repeats R]
  --starts N runs the baseline on N evenly spaced grid starts and extrapolates its time to 4,500
  (its best objective is then a bound from fewer starts); the default runs all 4,500.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from scipy.special import logsumexp

ANCHORS = Path(os.environ.get("REPETITA_ANCHORS", Path(__file__).resolve().parents[2] / "shared" / "anchors"))


def load_points() -> pd.DataFrame:
    raw = pd.read_csv(ANCHORS / "epoch-chinchilla" / "svg_extracted_data.csv")
    raw = raw.drop(raw["loss"].nlargest(5).index)
    return pd.DataFrame(
        {"params": raw["Model Size"], "tokens": raw["Training FLOP"] / (6 * raw["Model Size"]), "loss": raw["loss"]}
    )


def baseline(df: pd.DataFrame, starts: np.ndarray) -> tuple[float, np.ndarray]:
    log_n, log_d, log_l = (
        np.log(df["params"].to_numpy()),
        np.log(df["tokens"].to_numpy()),
        np.log(df["loss"].to_numpy()),
    )

    def objective(x):
        a, b, e, alpha, beta = x
        pred = logsumexp([a - alpha * log_n, b - beta * log_d, np.full_like(log_n, e)], axis=0)
        r = pred - log_l
        ar = np.abs(r)
        return np.sum(np.where(ar <= 1e-3, 0.5 * r * r, 1e-3 * (ar - 0.5e-3)))

    best = (np.inf, None)
    for x0 in starts:
        res = minimize(objective, x0, method="L-BFGS-B")
        if res.fun < best[0]:
            best = (float(res.fun), res.x)
    return best


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--starts", type=int, default=4500, help="baseline starts to run (extrapolated to 4,500)")
    ap.add_argument("--repeats", type=int, default=5, help="timed repeats of the repetita fit (best is kept)")
    args = ap.parse_args()
    if not ANCHORS.is_dir():
        print(f"anchors folder {ANCHORS} not found; set REPETITA_ANCHORS", file=sys.stderr)
        return 2
    from repetita.laws.fit import LawFit, init_grid

    df = load_points()
    grid = init_grid(LawFit("chinchilla").spec)
    assert len(grid) == 4500

    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        fit = LawFit("chinchilla").fit(df)
        times.append(time.perf_counter() - t0)
    ours = min(times)

    idx = np.linspace(0, len(grid) - 1, min(args.starts, len(grid))).round().astype(int)
    t0 = time.perf_counter()
    base_obj, base_x = baseline(df, grid[idx])
    base_time = (time.perf_counter() - t0) * len(grid) / len(idx)

    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    print(f"points: {len(df)}, grid starts: {len(grid)} (baseline ran {len(idx)})")
    print(f"repetita  : {ours:8.3f} s   objective {fit.objective_:.10f}")
    print(
        f"baseline  : {base_time:8.3f} s   objective {base_obj:.10f}"
        + ("  (extrapolated)" if len(idx) < len(grid) else "")
    )
    print(f"speed-up  : {base_time / ours:8.1f}x   objective ours <= baseline: {fit.objective_ <= base_obj + 1e-12}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
