"""Benchmark: a law fit beside a running training job, BLAS limited to one thread vs unlimited.

The situation: a user fits while their training runs on the same machine. The fit is the default free
data-constrained fit (nested Chinchilla seeding, grid, L-BFGS-B, Gauss-Newton polish) of a 32-row table
(32 datablations runs, seed 0). The job is ``repetita train --threads 2`` on a model large enough to keep
two cores busy for the whole benchmark.

repetita: the fit as shipped (``repetita.blas``: one BLAS thread inside every fit).
Baseline: the same fit with the limit switched off (OpenBLAS's default, one thread per core).
The two alternate (limited, unlimited, limited, ...), first on an idle machine, then beside the job, so
that drifts in the machine's load hit both alike. Wall and CPU seconds per fit; the ratio is of medians.

Usage: python benchmarks/fit_busy.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

import repetita.blas as blas
from repetita.examples import load_example
from repetita.laws.fit import LawFit

JOB = ["train", "--corpus", "markov:V=64,order=2,n=400000,seed=1", "--context", "128", "--n-layer", "4",
       "--d-model", "256", "--n-head", "4", "--batch-size", "32", "--epochs", "50", "--unique-tokens", "200000",
       "--checkpoint-every", "100000", "--threads", "2"]


@contextlib.contextmanager
def _unlimited():
    yield


def one_fit(df, limited: bool) -> tuple[float, float, float]:
    saved = blas.one_blas_thread
    if not limited:
        blas.one_blas_thread = _unlimited  # the decorators look the name up at call time
    try:
        w0, c0 = time.perf_counter(), time.process_time()
        fit = LawFit("data-constrained").fit(df)
        return time.perf_counter() - w0, time.process_time() - c0, fit.objective_
    finally:
        blas.one_blas_thread = saved


def measure(df, repeats: int) -> dict:
    out = {True: [], False: []}
    for _ in range(repeats):
        for limited in (True, False):
            out[limited].append(one_fit(df, limited))
    return out


def summary(label: str, runs: dict) -> float:
    med = {k: (statistics.median(r[0] for r in v), statistics.median(r[1] for r in v)) for k, v in runs.items()}
    objs = {k: v[0][2] for k, v in runs.items()}
    print(f"{label}: one BLAS thread {med[True][0]:6.2f} s wall {med[True][1]:6.2f} s CPU | default threads "
          f"{med[False][0]:6.2f} s wall {med[False][1]:6.2f} s CPU | wall ratio {med[False][0] / med[True][0]:5.2f}x"
          f" | objectives {objs[True]:.6g} / {objs[False]:.6g}")
    print("   each fit (wall s, limited / default): "
          + ", ".join(f"{a[0]:.2f}/{b[0]:.2f}" for a, b in zip(runs[True], runs[False], strict=True)))
    return med[False][0] / med[True][0]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    df = load_example("datablations").sample(32, random_state=0).reset_index(drop=True)
    import scipy.optimize  # noqa: F401  (load scipy's BLAS, so that the listing below shows it)
    from threadpoolctl import threadpool_info

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; BLAS: "
          + ", ".join(f"{i['internal_api']} {i.get('version')} ({i['num_threads']} threads)" for i in threadpool_info()))
    one_fit(df, True)  # warm-up: imports, caches
    idle = summary("idle     ", measure(df, args.repeats))
    with tempfile.TemporaryDirectory() as tmp:
        env = os.environ | {"OMP_NUM_THREADS": "2"}
        job = subprocess.Popen([sys.executable, "-m", "repetita.cli", *JOB, "--out", os.path.join(tmp, "job")],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            time.sleep(8)  # past start-up: the job is in its training loop
            if job.poll() is not None:
                print("the training job ended early; cannot measure beside it")
                return 1
            busy = summary("beside job", measure(df, args.repeats))
            alive = job.poll() is None
        finally:
            job.kill()
            job.wait()
    print(f"job still training at the end: {alive}")
    print(f"speed-up of one BLAS thread: {busy:.2f}x beside the job (goal >= 2x), {idle:.2f}x idle (goal >= 1x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
