"""Compare two tidy study tables row by row: the check that a refactor changed no result.

    python experiments/compare_tidy.py BEFORE.csv AFTER.csv

Rows are matched on what defines an evaluated model (recipe, size, data, optimisation, seed, ensemble
position), not on run ids (ids may change with the hash); within a key, losses are paired in sorted order.
Prints the row counts, unmatched rows and max |loss difference|; exits 1 unless the tables agree exactly.
"""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd

KEY = ["recipe", "params", "unique_tokens", "epochs", "lr", "weight_decay", "seed", "members", "member", "combiner"]


def paired(path: str) -> pd.DataFrame:
    df = pd.read_csv(path)
    df["combiner"] = df["combiner"].fillna("-")
    df = df.sort_values([*KEY, "loss"]).reset_index(drop=True)
    df["k"] = df.groupby(KEY).cumcount()  # the i-th model with this key (ensemble members share keys)
    return df


def main(before: str, after: str) -> int:
    a, b = paired(before), paired(after)
    m = a.merge(b, on=[*KEY, "k"], suffixes=("_before", "_after"), how="outer", indicator=True)
    unmatched = int((m["_merge"] != "both").sum())
    both = m[m["_merge"] == "both"]
    diff = float(np.abs(both["loss_before"] - both["loss_after"]).max())
    print(f"rows: before {len(a)}, after {len(b)}, matched {len(both)}, unmatched {unmatched}; max |diff| {diff:g}")
    return 0 if unmatched == 0 and diff == 0.0 else 1


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
