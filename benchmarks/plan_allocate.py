"""Allocation and frontier over budgets x bootstrap resamples x laws: vectorized vs one solve per draw.

Data: the datablations runs shipped with repetita, fitted with the Chinchilla part frozen at the published
values (docs/laws.md) by three repetition laws (data-constrained, reuse, reuse-power), each bootstrapped
with ``--resamples`` row resamples (the setup, timed apart). Timed: for every law, ``allocate.frontier``
with all the resamples: N*, D*, K*, L* at every budget and at 10x it (the data wall), for every draw.

Baseline (same run, same draws): the solver repetita used before, one draw and one budget at a time
(a 241-point log scan of the compute line, then scipy's bounded Brent to 1e-9 in ln N), on a random
subset of (draw, budget) pairs, its time per solve scaled to the full count. The two must agree on N*.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np


def baseline_solve(law, theta: np.ndarray, compute: float, unique: float, k: float = 6.0) -> tuple[float, float]:
    from scipy.optimize import minimize_scalar

    from repetita.decide.allocate import N_RANGE
    from repetita.laws.law import law_loss

    def f(logn):
        n = np.exp(np.atleast_1d(logn))
        return law_loss(law, theta[None, :], n[None, :], (compute / (k * n))[None, :], unique)[0]

    grid = np.linspace(np.log(N_RANGE[0]), np.log(min(N_RANGE[1], compute / k)), 241)
    vals = f(grid)
    i = int(np.nanargmin(vals))
    if i in (0, len(grid) - 1):
        return float(np.exp(grid[i])), float(vals[i])
    res = minimize_scalar(lambda x: float(f(x)[0]), bounds=(grid[i - 1], grid[i + 1]), method="bounded",
                          options={"xatol": 1e-9})
    return float(np.exp(res.x)), float(res.fun)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--resamples", type=int, default=1000)
    ap.add_argument("--budgets", type=int, default=100)
    ap.add_argument("--baseline-solves", type=int, default=300, help="(draw, budget) pairs the baseline solves per law")
    ap.add_argument("--unique-tokens", type=float, default=25e9)
    ap.add_argument("--laws", default="data-constrained,reuse,reuse-power",
                    help="comma-separated laws; a law that can turn (overfit-1, ...) runs with the turn kept in the "
                         "search, which the baseline does not do, so only its time is compared")
    args = ap.parse_args()

    from repetita.decide.allocate import frontier, solve
    from repetita.examples import load_example
    from repetita.laws.fit import LawFit, bootstrap

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    df = load_example("datablations")
    from repetita.laws.record import published_chinchilla

    frozen = published_chinchilla()
    budgets = np.geomspace(1e19, 1e25, args.budgets)
    laws = {}
    t0 = time.perf_counter()
    names = args.laws.split(",")
    for name in names:
        est = LawFit(name, freeze=frozen).fit(df)
        z = bootstrap(est, df, args.resamples, seed=0)["samples"]
        law = est.spec.law_obj
        theta = np.tile([est.params_[p] for p in law.params], (len(z), 1))
        for j, p in enumerate(est.problem_.free):
            theta[:, law.params.index(p)] = z[:, j]
        laws[name] = (est, theta)
    print(f"setup ({len(names)} fits, {args.resamples} bootstrap resamples each): {time.perf_counter() - t0:.1f} s (not timed)")

    t0 = time.perf_counter()
    fronts = {name: frontier(est, budgets, args.unique_tokens, thetas=theta) for name, (est, theta) in laws.items()}
    ours = time.perf_counter() - t0
    solves = len(laws) * args.resamples * 2 * args.budgets  # every draw at every budget and at 10x it
    print(f"repetita : {ours:8.2f} s  {len(laws)} laws x {args.resamples} draws x {args.budgets} budgets "
          f"(and 10x each: {solves:,} allocations)")
    from repetita.decide.laws import headline

    t0 = time.perf_counter()
    mid = float(budgets[len(budgets) // 2])
    from repetita.decide.allocate import allocate, allocation_intervals

    single = {name: allocate(est, mid, args.unique_tokens) | {"intervals": allocation_intervals(
        est, mid, args.unique_tokens, thetas=theta)} for name, (est, theta) in laws.items()}
    head = headline(single)
    print(f"headline at C = {mid:.3g} across the laws (allocations with all draws, then the combination): "
          f"{time.perf_counter() - t0:.2f} s; {head.method}, loss interval {head.loss_interval}")
    for name, f in fronts.items():
        b = f["bands"]
        print(f"  {name:<17} K* at 1e22: [{b['epochs'][len(budgets) // 2][0]:.3g}, {b['epochs'][len(budgets) // 2][1]:.3g}]"
              f"  loss limit [{b['loss_limit'][0]:.4f}, {b['loss_limit'][1]:.4f}]")

    rng = np.random.default_rng(0)
    t_base, worst, worse_n, flat = 0.0, 0.0, [], 0.0
    for _name, (est, theta) in laws.items():
        law = est.spec.law_obj
        pick_s = rng.integers(0, len(theta), args.baseline_solves)
        pick_b = rng.integers(0, len(budgets), args.baseline_solves)
        t0 = time.perf_counter()
        base = [baseline_solve(law, theta[s], budgets[b], args.unique_tokens) for s, b in zip(pick_s, pick_b, strict=True)]
        t_base += time.perf_counter() - t0
        if not law.monotone:
            continue  # the baseline knows no turn: timing only
        r = solve(law, theta[pick_s], budgets, args.unique_tokens)
        idx = (np.arange(len(pick_s)), pick_b)
        # the loss we reach minus the baseline's: <= 0 up to rounding when ours is at least as good
        worst = max(worst, float(np.max(r["loss"][idx] - np.array([f for _, f in base]))))
        dn = np.abs(np.array([n for n, _ in base]) / r["params"][idx] - 1)
        worse_n += list(dn)
        dl = np.abs(r["loss"][idx] - np.array([f for _, f in base]))
        flat = max(flat, float(dl[dn >= 1e-6].max(initial=0.0)))
    per = t_base / (len(laws) * args.baseline_solves)
    print(f"baseline : {per * 1e3:8.3f} ms per allocation ({len(laws) * args.baseline_solves} solved), "
          f"{per * solves:8.1f} s for the same {solves:,}")
    print(f"speed-up : {per * solves / ours:8.1f}x")
    print(f"agreement: our loss - baseline loss at most {worst:.1e} nats; N* within 1e-6 of the baseline's in "
          f"{100 * np.mean(np.array(worse_n) < 1e-6):.1f}% of the solves; where N* differs more, the two losses "
          f"differ by at most {flat:.1e} nats (a flat stretch of the compute line: N* is not determined there)")


if __name__ == "__main__":
    main()
