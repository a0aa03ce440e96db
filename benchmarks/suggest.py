"""``repetita suggest`` at its stated size: 10 runs from 1,000 candidates, 3 laws x 500 draws.

    .venv/bin/python benchmarks/suggest.py

Setup (not timed): the data-constrained, reuse and Chinchilla laws fitted to the 182 datablations runs,
with their Laplace uncertainty (as `repetita fit` saves it). Timed, in the same run:

- ``design.suggest``: draws, the decision at the README case under every draw, every candidate's
  prediction, and the greedy batch (moments once, then rank-one conditioning per pick);
- the baseline: the same greedy batch written plainly, recomputing every candidate's value from the
  draws at each pick (a weighted covariance per candidate, then conditioning the draws themselves by
  the ensemble Kalman update). Both must pick the same runs.
"""

from __future__ import annotations

import os
import platform
import time

import numpy as np


def plain_greedy(G, F, w, noise_var, cost, k, counted, min_value):
    """Reference: per-candidate weighted covariances from the draws, draws updated after every pick."""
    G, F = G.copy(), F.copy()
    w = w / w.sum()
    var0 = np.array([np.sum(w * (g - np.sum(w * g)) ** 2) for g in G.T])
    taken, picks = set(), []
    for _ in range(k):
        best, best_m = -np.inf, -1
        for m in range(F.shape[1]):
            if m in taken or not np.all(np.isfinite(F[:, m])):
                continue
            f = F[:, m] - np.sum(w * F[:, m])
            vf = np.sum(w * f * f)
            v = 0.0
            for j in range(G.shape[1]):
                if counted[j] and var0[j] > 1e-12 * var0.max():
                    c = np.sum(w * (G[:, j] - np.sum(w * G[:, j])) * f)
                    v += c * c / (vf + noise_var) / var0[j]
            if v >= min_value and v / cost[m] > best:  # a run worth less than min_value is not proposed
                best, best_m = v / cost[m], m
        if best_m < 0:
            break
        m = best_m
        f = F[:, m] - np.sum(w * F[:, m])
        vf = np.sum(w * f * f)
        # condition the draws themselves on the observation: the deterministic square-root ensemble Kalman
        # update shrinks every draw's deviation along f so that the ensemble's covariance becomes the
        # posterior one, Var - c c' / (vf + noise)
        shrink = (1.0 - np.sqrt(noise_var / (vf + noise_var))) / vf
        G -= shrink * np.outer(f, (w * f) @ (G - np.sum(w[:, None] * G, axis=0)))
        F -= shrink * np.outer(f, (w * f) @ (F - np.sum(w[:, None] * F, axis=0)))
        taken.add(m)
        picks.append(m)
    return picks


def main() -> None:
    import pandas as pd

    from repetita.decide import design
    from repetita.laws import record, uncertainty
    from repetita.laws.fit import LawFit
    from repetita.laws.record import uncertainty_block

    print(f"# {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    from importlib import resources

    df = pd.read_csv(str(resources.files("repetita.examples") / "data" / "datablations_182.csv"))
    fits = {}
    for law in ("data-constrained", "reuse", "chinchilla"):
        est = LawFit(law).fit(df)
        fits[law] = record.estimator(est.result() | {"uncertainty": uncertainty_block(uncertainty.laplace(est, df))})
    cand = design.candidate_grid(np.geomspace(1e7, 9e9, 10), np.geomspace(1e8, 25e9, 10), np.geomspace(1, 512, 10))
    target = design.Target(25e9, compute=6 * 8.67e9 * 178e9)
    assert len(cand) == 1000
    times = []
    for _ in range(3):
        t = time.perf_counter()
        out = design.suggest(fits, target, cand, 10, n_draws=500)
        times.append(time.perf_counter() - t)
    fast = min(times)
    # the baseline on the same draws: rebuild G, F exactly as suggest does
    Gs, Fs, w = [], [], []
    for i, (name, est) in enumerate(fits.items()):
        G, F = design.law_draws(name, est, target, cand, 500, i, 6.0, [])
        Gs.append(G)
        Fs.append(F)
        w.append(np.full(len(G), 1.0 / len(fits) / len(G)))
    G, F, w = np.concatenate(Gs), np.concatenate(Fs), np.concatenate(w)
    noise = out["noise_log_sd"] ** 2
    counted = np.array([False, True, True])
    t = time.perf_counter()
    ref = plain_greedy(G, F, w, noise, cand.cost, 10, counted, design.MIN_VALUE)
    slow = time.perf_counter() - t
    t = time.perf_counter()
    picks = design.greedy_batch(G, F, w, noise, cand.cost, 10, counted=counted)
    batch = time.perf_counter() - t
    same = [p.index for p in picks] == ref
    print(f"runs picked: {len(picks)} (each worth at least {design.MIN_VALUE:g} of the decision's variance)")
    print(f"suggest (3 laws x 500 draws, 1,000 candidates, 10 runs), end to end: best of 3 {fast:.2f} s "
          f"(runs {', '.join(f'{x:.2f}' for x in times)})")
    print(f"greedy batch alone: {batch * 1e3:.1f} ms; plain per-candidate loop on the same draws: {slow:.1f} s "
          f"({slow / batch:.0f}x); same runs picked: {same}")


if __name__ == "__main__":
    main()
