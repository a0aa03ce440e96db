"""Benchmark: the whole law benchmark (every law x shipped multi-epoch table x split, fits included), timed.

Goal (from the planner's requirements): under 60 s on 2 cores. There is no outside tool that ranks
scaling laws by extrapolation to compare against, so the baseline is the sum of the per-fit times
(what a user running the fits one after another pays, without the benchmark's single BLAS thread).

Usage: python benchmarks/law_benchmark.py [--out scores.csv]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

from repetita.laws import benchmark


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out")
    args = ap.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    t0 = time.perf_counter()
    scores = benchmark.run()
    total = time.perf_counter() - t0
    df = benchmark.table(scores)
    print(benchmark.markdown(scores))
    slowest = df.groupby("law")["seconds"].sum().sort_values(ascending=False)
    print("seconds per law: " + ", ".join(f"{k} {v:.1f}" for k, v in slowest.items()))
    print(f"{len(df)} fits, whole benchmark {total:.1f} s wall (goal < 60 s)")
    if args.out:
        df.to_csv(args.out, index=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
