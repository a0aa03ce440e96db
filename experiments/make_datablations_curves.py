"""Build src/repetita/examples/data/datablations_curves.csv from ../shared/anchors/datablations-curves.

The anchor is IBM ColPret's aggregation (MIT) of the datablations runs' TensorBoard logs. The shipped table
is the tidy curve table repetita reads: one row per evaluation with run, corpus, params (the exact counts
of Muennighoff et al.'s run table: 2.81B, 4.2465B, 8.67B), tokens seen, unique tokens per epoch, the run's
epoch count and the validation loss.

    python experiments/make_datablations_curves.py ../shared/anchors/datablations-curves/datablations_losses.csv
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

PARAMS = {"2.8B": 2810000000.0, "4.2B": 4246500000.0, "8.7B": 8670000000.0}


def main(src: str) -> None:
    df = pd.read_csv(src)
    out = pd.DataFrame({
        "run": df["data"] + "-" + df["num_params"] + "-" + df["epochs"].astype(str) + "ep",
        "corpus": df["data"],
        "params": df["num_params"].map(PARAMS),
        "tokens": df["token_num"].astype(float),
        "unique_tokens": df["tokens_per_epoch"].round().astype(float),
        "epochs": df["epochs"].astype(float),
        "loss": df["loss"],
    }).sort_values(["run", "tokens"]).reset_index(drop=True)
    dest = Path(__file__).resolve().parents[1] / "src/repetita/examples/data/datablations_curves.csv"
    out.to_csv(dest, index=False, float_format="%.10g")
    print(f"{dest}: {len(out)} rows, {out['run'].nunique()} runs")


if __name__ == "__main__":
    main(sys.argv[1])
