"""Speed of the multi-epoch SGD Monte Carlo (repetita.theory.simulate) against a plain numpy loop.

    python benchmarks/theory_sgd.py [--threads 1] [--d 10] [--etas 8]
    python benchmarks/theory_sgd.py --table --threads 2     # also time a full E(K, N) table at ~2% error

Reports SGD steps x replicates per second (and x learning rates, since every step updates all of them),
the ratio to a numpy per-step loop run in the same process on the same problem, and the fraction of the
machine's arithmetic peak, taken as a measured float64 matrix product (numpy BLAS, same thread count).
Flops per step and learning rate: 4 d + 2 for SGD (dot product, residual, update) plus 3 d for the
linearised control-variate recursion the kernel runs alongside.
"""

from __future__ import annotations

import argparse
import os
import sys
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--d", type=int, default=10)
    ap.add_argument("--etas", type=int, default=8)
    ap.add_argument("--table", action="store_true", help="also time the E(K, N) table N=1e3..1e5, K=1..256")
    ap.add_argument("--replicates", default="160,48,8", help="replicates for --table, per N = 1e3,1e4,1e5")
    args = ap.parse_args()
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ[var] = str(args.threads)

    import numpy as np

    from repetita.theory.simulate import SimConfig, reference_sgd, simulate
    from repetita.theory.spectra import Problem

    d, m = args.d, args.etas
    p = Problem.from_strings("well:0.1", d=d, sigma=0.5)
    etas = tuple(np.geomspace(1e-4, 1e-2, m))
    flops_per_step = m * (7 * d + 2)

    # Compiled simulator (warm-up call first so compilation/caching is not timed).
    simulate(p, SimConfig(N=100, epochs=(1,), etas=etas, replicates=2), threads=args.threads)
    N, K, reps = 10_000, 8, 16 * args.threads
    t0 = time.perf_counter()
    simulate(p, SimConfig(N=N, epochs=(K,), etas=etas, replicates=reps, seed=1), threads=args.threads)
    fast = time.perf_counter() - t0
    fast_rate = N * K * reps / fast  # includes drawing the datasets and permutations

    # Baseline: the same SGD as a numpy loop over steps, vectorized over replicates and learning rates.
    rng = np.random.default_rng(0)
    nb_steps, b_reps = 2000, 16
    X = rng.standard_normal((b_reps, N, d)) * np.sqrt(p.lam)
    xi = 0.5 * rng.standard_normal((b_reps, N))
    orders = rng.integers(0, N, (b_reps, nb_steps))
    E0 = np.broadcast_to(-p.wstar, (b_reps, m, d))
    t0 = time.perf_counter()
    reference_sgd(X, xi, orders, E0, etas)
    slow = time.perf_counter() - t0
    slow_rate = nb_steps * b_reps / slow

    # Straightforward baseline: one replicate and one learning rate at a time, numpy ops per step.
    w, x_rows, y_rows, eta = np.zeros(d), X[0], xi[0] + X[0] @ p.wstar, etas[0]
    t0 = time.perf_counter()
    for t in orders[0]:
        x = x_rows[t]
        w -= eta * (x @ w - y_rows[t]) * x
    plain = time.perf_counter() - t0
    plain_rate = nb_steps / plain  # steps*replicates/s for a single learning rate

    # Practical float64 peak: a large matrix product.
    A = rng.standard_normal((1500, 1500))
    A @ A
    t0 = time.perf_counter()
    for _ in range(3):
        A @ A
    peak = 3 * 2 * 1500**3 / (time.perf_counter() - t0)

    gflops = fast_rate * flops_per_step / 1e9
    print(f"machine: {os.cpu_count()} CPU cores, threads used: {args.threads}; d = {d}, learning rates = {m}")
    print(f"compiled simulator : {fast_rate:12.4g} steps*replicates/s  ({fast_rate * m:.4g} with learning rates), "
          f"{gflops:.3g} GFLOP/s")
    print(f"numpy loop, one replicate and one learning rate per step: {plain_rate:.4g} steps/s -> speed-up "
          f"{fast_rate * m / plain_rate:.0f}x (per learning rate)")
    print(f"numpy loop vectorized over {b_reps} replicates and {m} learning rates: {slow_rate:.4g} "
          f"steps*replicates/s -> speed-up {fast_rate / slow_rate:.1f}x")
    print(f"float64 matmul peak: {peak / 1e9:12.3g} GFLOP/s -> simulator at {gflops * 1e9 / peak:.1%} of it")

    if args.table:
        from repetita.theory.reuse import ReuseConfig, reuse_table

        cfg = ReuseConfig(Ns=(1000, 10_000, 100_000), Ks=(1, 2, 4, 8, 16, 32, 64, 128, 256), spectrum="well:0.05",
                          d=d, sigma=0.1, replicates=tuple(int(r) for r in args.replicates.split(",")),
                          threads=args.threads)
        t0 = time.perf_counter()
        r = reuse_table(cfg)
        wall = time.perf_counter() - t0
        med, worst = float(np.median(r.risk_se)), float(r.risk_se.max())
        print(f"E(K, N) table, N = 1e3..1e5, K = 1..256 (9 values), replicates {args.replicates}: {wall:.0f} s "
              f"(per N: {', '.join(f'{x:.0f}' for x in r.seconds)} s); relative s.e. of R*: median {med:.2%}, "
              f"max {worst:.2%}; of E: max {float(np.max(r.E_se / r.E)):.2%}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
