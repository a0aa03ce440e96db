"""Synthetic run tables drawn from a law with known parameters (for recovery tests at user scale)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from repetita.laws.law import get_law


def true_params(law: str, rng: np.random.Generator) -> dict:
    """Parameters in a published-like range (Hoffmann et al., Muennighoff et al., Besiroglu et al.)."""
    p = {"a": rng.uniform(5.0, 7.0), "b": rng.uniform(6.5, 8.0), "e": rng.uniform(0.4, 0.8),
         "alpha": rng.uniform(0.25, 0.45), "beta": rng.uniform(0.25, 0.45)}
    if law == "chinchilla":
        return p
    if law == "data-constrained":
        return p | {"rd_star": rng.uniform(5.0, 40.0), "rn_star": rng.uniform(2.0, 20.0)}
    if law == "reuse":
        return p | {"r0": rng.uniform(-20.0, 0.0), "r1": rng.uniform(1.0, 2.5), "rn_star": rng.uniform(2.0, 20.0)}
    if law == "reuse-power":
        return p | {"r0": rng.uniform(0.5, 3.0), "r1": rng.uniform(0.05, 0.15), "rn_star": rng.uniform(2.0, 20.0)}
    if law == "power":
        return {"e": rng.uniform(0.3, 1.0), "a": rng.uniform(0.5, 3.0), "alpha": rng.uniform(0.2, 0.8)}
    raise ValueError(law)


def table(law: str, params: dict, rows: int, rng: np.random.Generator, noise: float = 0.005) -> pd.DataFrame:
    """``rows`` runs: model sizes 1e7-1e10, unique tokens 1e8-1e11, 1-60 epochs; multiplicative noise."""
    if law == "power":
        df = pd.DataFrame({"x": np.exp(rng.uniform(np.log(1), np.log(1e4), rows))})
    else:
        u = np.exp(rng.uniform(np.log(1e8), np.log(1e11), rows))
        k = np.exp(rng.uniform(0.0, np.log(60.0), rows))
        df = pd.DataFrame({"params": np.exp(rng.uniform(np.log(1e7), np.log(1e10), rows)), "tokens": u * k,
                           "unique_tokens": u})
    obj = get_law(law)
    theta = np.array([[params[p] for p in obj.params]])
    X, _, _ = obj.prepare(df.assign(loss=1.0), axis="x")
    loss = np.exp(obj.func(theta, X)[0]) * np.exp(noise * rng.standard_normal(rows))
    return df.assign(loss=loss)
