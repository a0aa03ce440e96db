"""The fixed-update-budget grid: samples x epochs = B, nested subsets from one seeded shuffle.

Kopiczko et al. (2026) hold the number of sample-passes fixed (51,200) and trade unique samples for
epochs: 200x256, 400x128, ..., 51,200x1. Subsets are nested (the 400-sample set contains the
200-sample set) so cells differ only in how much data they see, not in which.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from repetita.errors import UserError, require


@dataclass(frozen=True)
class GridPlan:
    budget: int  # sample-passes (samples x epochs), the same in every cell
    pool_size: int
    samples: tuple[int, ...]
    seed: int = 0

    def __post_init__(self):
        require(self.budget >= 1, f"budget must be >= 1, got {self.budget}")
        require(self.pool_size >= 1, f"pool_size must be >= 1, got {self.pool_size}")
        require(len(self.samples) > 0, "samples must name at least one sample count")
        for n in self.samples:
            require(n >= 1, f"sample count must be >= 1, got {n}")
            require(n <= self.pool_size, f"sample count {n} exceeds the pool of {self.pool_size} samples")
            if self.budget % n:
                raise UserError(f"budget {self.budget} is not divisible by sample count {n}")

    @property
    def cells(self) -> list[tuple[int, int]]:
        return [(n, self.budget // n) for n in self.samples]

    def order(self) -> np.ndarray:
        """The one seeded permutation of the pool; cell n trains on ``order()[:n]``."""
        return np.random.default_rng(self.seed).permutation(self.pool_size)

    def subsets(self) -> dict[int, np.ndarray]:
        perm = self.order()
        return {n: perm[:n] for n in self.samples}

    def to_dict(self) -> dict:
        d = asdict(self)
        d["samples"] = list(self.samples)
        d["cells"] = [{"samples": n, "epochs": e} for n, e in self.cells]
        return d


def fixed_budget_grid(
    budget: int, pool_size: int, samples=None, *, factor: int = 2, min_samples: int = 1, seed: int = 0
) -> GridPlan:
    """Plan the grid. Without ``samples``: B, B/factor, B/factor^2, ... while the count stays a
    whole number >= ``min_samples``, keeping only counts the pool can supply (at least one)."""
    require(factor >= 2, f"factor must be >= 2, got {factor}")
    if samples is None:
        counts, n = [], budget
        while n >= max(min_samples, 1):
            if n <= pool_size:
                counts.append(n)
            if n % factor:
                break
            n //= factor
        require(len(counts) > 0, f"no sample count of the form {budget}/{factor}^k fits a pool of {pool_size}")
        samples = sorted(counts)
    return GridPlan(int(budget), int(pool_size), tuple(sorted(int(s) for s in samples)), int(seed))


def summary_table(rows, metric: str = "answer_accuracy"):
    """A DataFrame with one row per cell, sorted by samples; ``rows`` are dicts with at least
    ``samples``, ``epochs`` and ``metric``. Adds the best cell's flag."""
    import pandas as pd

    df = pd.DataFrame(list(rows))
    require({"samples", "epochs", metric} <= set(df.columns), f"rows need samples, epochs and {metric}")
    df = df.sort_values("samples").reset_index(drop=True)
    df["best"] = df[metric] == df[metric].max()
    return df
