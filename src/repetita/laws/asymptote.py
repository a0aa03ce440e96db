"""Asymptotes of recipes: power laws along one axis and the two-step asymptote.

With compute unbounded, what matters about a recipe (more epochs, tuned regularisation,
ensembling) is the loss it tends to, not the loss at one budget. Kim et al. 2025 estimate it in two
steps: fit L = E_N + A_N K^-alpha_N along ensemble members K at each model size N, then fit
E_N = E_inf + A N^-alpha along N. The same two steps work for any inner axis (epochs, WD-tuned
runs at growing N) with any outer axis.
"""

from __future__ import annotations

import pandas as pd

from repetita.errors import require
from repetita.laws.data import canonical, require_columns
from repetita.laws.fit import LawFit

MIN_POINTS = 3  # a three-parameter power law needs three points per fit


def fit_power(df: pd.DataFrame, axis: str, **kwargs) -> LawFit:
    """L = E + A x^-alpha along ``axis`` (a column of ``df``)."""
    return LawFit("power", axis=axis, **kwargs).fit(df)


def two_step_asymptote(df: pd.DataFrame, inner: str, outer: str, **kwargs) -> dict:
    """Fit along ``inner`` within each ``outer`` value, then the per-group asymptotes along ``outer``.

    Returns per-group fits (E, A, alpha, r2, rows) and the outer fit of E_outer, whose E is the
    recipe's asymptote as both axes grow.
    """
    df = canonical(df)
    require_columns(df, (inner, outer, "loss"), "the two-step asymptote")
    groups = []
    for value, sub in df.groupby(outer, sort=True):
        require(
            sub[inner].nunique() >= MIN_POINTS,
            f"{outer}={value}: needs >= {MIN_POINTS} distinct {inner} values for a power-law fit, has {sub[inner].nunique()}",
        )
        fit = fit_power(sub, inner, **kwargs)
        nat = fit.natural_params()
        groups.append(
            {
                outer: float(value),
                "E": nat["E"],
                "A": nat["A"],
                "alpha": nat["alpha"],
                "r2": fit.r2_,
                "rows": fit.n_rows_,
            }
        )
    require(len(groups) >= MIN_POINTS, f"the outer fit along {outer} needs >= {MIN_POINTS} groups, has {len(groups)}")
    inner_table = pd.DataFrame(groups)
    outer_fit = fit_power(inner_table.rename(columns={"E": "loss"}), outer, **kwargs)
    nat = outer_fit.natural_params()
    return {
        "inner": inner,
        "outer": outer,
        "groups": groups,
        "outer_fit": {"E": nat["E"], "A": nat["A"], "alpha": nat["alpha"], "r2": outer_fit.r2_},
        "asymptote": nat["E"],
    }
