"""Published run tables shipped with repetita (licenses and sources in data/NOTICE.md)."""

from __future__ import annotations

from importlib import resources

import pandas as pd

from repetita.errors import UserError

EXAMPLES = {
    "datablations": ("datablations_182.csv", "Muennighoff et al. 2023: the 182 runs of the published parametric fit"),
    "datablations-all": ("datablations_all.csv", "Muennighoff et al. 2023: all 296 rows incl. seed repeats"),
    "multipowerlaw": ("multipowerlaw.csv", "Luo et al. 2025: 27 loss curves (25M/100M/400M x 9 LR schedules)"),
    "datablations-curves": ("datablations_curves.csv", "Muennighoff et al. 2023: full validation curves of 48 "
                            "runs (2.8B/4.2B/8.7B, 1-44 epochs, C4 and OSCAR; via IBM ColPret)"),
}


def example_path(name: str):
    base = name.split(":", 1)[0]
    if base not in EXAMPLES:
        raise UserError(f"unknown example {name!r}; choose one of {', '.join(EXAMPLES)}")
    return resources.files("repetita.examples") / "data" / EXAMPLES[base][0]


def load_example(name: str) -> pd.DataFrame:
    """Load a shipped table; ``multipowerlaw:100M`` selects one model size (default 100M)."""
    base, _, sel = name.partition(":")
    with resources.as_file(example_path(name)) as path:
        df = pd.read_csv(path)
    if base == "multipowerlaw":
        sel = sel or "100M"
        models = sorted(df["model"].unique())
        if sel not in models:
            raise UserError(f"example multipowerlaw has models {', '.join(models)}, not {sel!r}")
        df = df[df["model"] == sel].drop(columns="model").reset_index(drop=True)
    elif sel:
        raise UserError(f"example {base!r} takes no ':{sel}' selector")
    return df
