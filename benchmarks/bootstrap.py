"""Benchmark: bootstrap of the Chinchilla fit on Epoch's 240 points, vectorized vs the per-resample loop.

Baseline (repetita's bootstrap before it was vectorized, kept here verbatim in behaviour): a Python loop
over resamples, each a full ``LawFit.fit`` with the resample's row counts as weights, from the full-data
optimum and the 4,500-point initialisation grid (scored, then the best starts refined with L-BFGS-B).
Vectorized (``repetita.laws.uncertainty.bootstrap``): every resample refined at once by damped IRLS
Gauss-Newton from the full-data optimum. Both see the *same* resamples (multinomial counts, one seed).

Usage: OMP_NUM_THREADS=2 python benchmarks/bootstrap.py [--resamples 1000] [--loop 50]
The loop runs on the first ``--loop`` resamples (at ~1.5 s each, 1,000 would take 25 minutes); its time
is reported per resample and the speed-up is the ratio of per-resample times. Agreement: the largest
difference of any fitted parameter between the two on the shared resamples, and the standard errors in
natural units next to Besiroglu et al.'s published bootstrap SEs.
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

from repetita.laws.fit import LawFit, init_grid
from repetita.laws.uncertainty import laplace, refine_batch, resample_counts

ANCHORS = Path(os.environ.get("REPETITA_ANCHORS", Path(__file__).resolve().parents[2] / "shared" / "anchors"))
PUBLISHED_SE = {"A": 124.5, "B": 1293.0, "E": 0.026, "alpha": 0.015, "beta": 0.021}  # Besiroglu et al. 2024


def load_points() -> pd.DataFrame:
    raw = pd.read_csv(ANCHORS / "epoch-chinchilla" / "svg_extracted_data.csv")
    raw = raw.drop(raw["loss"].nlargest(5).index)
    return pd.DataFrame(
        {"params": raw["Model Size"], "tokens": raw["Training FLOP"] / (6 * raw["Model Size"]), "loss": raw["loss"]}
    ).reset_index(drop=True)


def natural_se(samples: np.ndarray, free: list[str]) -> dict:
    out = {}
    for j, p in enumerate(free):
        v = np.exp(samples[:, j]) if p in ("a", "b", "e") else samples[:, j]
        out[p.upper() if p in ("a", "b", "e") else p] = float(np.std(v, ddof=1))
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--resamples", type=int, default=1000)
    ap.add_argument("--loop", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    if not ANCHORS.is_dir():
        print(f"anchors folder {ANCHORS} absent", file=sys.stderr)
        return 2
    df = load_points()
    est = LawFit("chinchilla").fit(df)
    problem = est.problem_for(df)
    free = problem.free
    z0 = np.array([est.params_[p] for p in free])
    W = resample_counts(np.random.default_rng(a.seed), len(df), a.resamples)

    t = time.perf_counter()
    Z, f, iters = refine_batch(problem, np.repeat(z0[None], a.resamples, axis=0), W)
    vec = time.perf_counter() - t

    starts = np.vstack([z0[None], init_grid(est.spec)])
    loop_z = []
    t = time.perf_counter()
    for w in W[: a.loop]:
        fit = LawFit("chinchilla").fit(df, starts=starts, weights=w)
        loop_z.append([fit.params_[p] for p in free])
    loop = time.perf_counter() - t
    loop_z = np.array(loop_z)

    per_vec, per_loop = vec / a.resamples, loop / a.loop
    diff = np.abs(loop_z - Z[: a.loop]).max(axis=0)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}")
    print(f"vectorized: {a.resamples} resamples in {vec:.2f} s ({iters} iterations), {1e3 * per_vec:.2f} ms each")
    print(f"loop:       {a.loop} resamples in {loop:.1f} s, {1e3 * per_loop:.0f} ms each "
          f"(1,000 would take {1000 * per_loop / 60:.1f} min)")
    print(f"speed-up per resample: {per_loop / per_vec:.0f}x")
    print("max |difference| on shared resamples: " + ", ".join(f"{p} {d:.2g}" for p, d in zip(free, diff, strict=True)))
    se = natural_se(Z, free)
    print("bootstrap SE (natural units) vs published: "
          + ", ".join(f"{k} {v:.4g} ({PUBLISHED_SE[k]:g}, {100 * (v / PUBLISHED_SE[k] - 1):+.0f}%)" for k, v in se.items()))
    lap = laplace(est, df)
    nat = {("A" if p == "a" else "B" if p == "b" else "E" if p == "e" else p):
           (np.exp(est.params_[p]) * iv["std"] if p in ("a", "b", "e") else iv["std"]) for p, iv in lap["params"].items()}
    print("sandwich SE (natural units, delta method): " + ", ".join(f"{k} {v:.4g}" for k, v in nat.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
