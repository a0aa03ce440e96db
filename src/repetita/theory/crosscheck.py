"""The measured-reuse estimator checked on the theory lab, where the answer is known.

``laws.reuse`` measures E(K, U) from runs: a fresh-data reference curve L_fresh(D) and K-epoch runs,
D' = L_fresh^-1(loss), E = D'/U. Here it is fed what a practitioner would have in the linear-regression
lab: the K-epoch runs are the tuned multi-epoch SGD risks R*(K, N) of ``theory.reuse.reuse_table``, and
the reference is *measured* too, by Monte Carlo one-pass SGD on fresh samples at the tuned constant
rate for each sample count (not the exact curve the theory table inverts). Agreement with the table's
E(K, N) within the Monte Carlo error checks the estimator end to end: units, inversion direction,
monotone envelope and interpolation.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from repetita.theory.exact import OnePassCurve
from repetita.theory.reuse import ReuseConfig, ReuseResult, reuse_table
from repetita.theory.simulate import SimConfig, simulate


def measured_reference(config: ReuseConfig, n_max: float, points: int = 24, replicates: int = 64,
                       curve: OnePassCurve | None = None) -> pd.DataFrame:
    """One-pass SGD on n fresh samples at the tuned constant rate eta*(n), by Monte Carlo: (tokens, loss, rel_se)."""
    problem = config.problem()
    curve = curve or OnePassCurve(problem, n_max=max(1e9, 10 * n_max))
    ns = np.unique(np.geomspace(max(min(config.Ns) / 4, 8), n_max, points).astype(int))
    rows = []
    for i, n in enumerate(ns):
        sim = SimConfig(N=int(n), epochs=(1,), etas=(float(curve.eta(n)),), replicates=replicates,
                        seed=(config.seed + 7919 * (i + 1)) % 2**31)
        r = simulate(problem, sim, threads=config.threads)[:, 0, 0]
        r = r[np.isfinite(r)]
        rows.append({"tokens": float(n), "loss": float(r.mean()), "rel_se": float(r.std(ddof=1) / r.mean() / np.sqrt(r.size))})
    return pd.DataFrame(rows)


def crosscheck(config: ReuseConfig, reference_replicates: int = 64, result: ReuseResult | None = None) -> pd.DataFrame:
    """E(K, N) from the estimator (measured reference) beside the theory table's, with both errors."""
    from repetita.laws.reuse import Reference, effective_reuse

    result = result or reuse_table(config)
    n_max = 2.0 * max(config.Ns) * max(config.Ks)
    ref = measured_reference(config, n_max, replicates=reference_replicates)
    runs = pd.DataFrame([{"unique_tokens": float(N), "epochs": float(K), "loss": float(result.risk[a, b])}
                         for a, N in enumerate(config.Ns) for b, K in enumerate(config.Ks)])
    table = effective_reuse(runs, Reference(ref["tokens"], ref["loss"], name="Monte Carlo one-pass reference"))
    # the reference's own error moves D' by rel_se / |d ln L / d ln D| (local slope of the reference)
    slope = np.gradient(np.log(ref["loss"]), np.log(ref["tokens"]))
    rel_se = np.interp(np.log(table["effective_tokens"]), np.log(ref["tokens"]), ref["rel_se"] / np.abs(slope))
    table["E_theory"] = result.E.ravel()
    table["E_theory_se"] = result.E_se.ravel()
    table["E_reference_se"] = table["reuse_rate"] * rel_se
    table["z"] = (table["reuse_rate"] - table["E_theory"]) / np.hypot(table["E_theory_se"], table["E_reference_se"])
    return table
