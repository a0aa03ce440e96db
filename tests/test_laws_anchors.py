"""The published fits, reproduced from the published data (skipped when ../shared/anchors is absent)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from repetita.demo import MPL_TRAIN, WIDE_GRID
from repetita.examples import load_example
from repetita.laws.fit import LawFit, bootstrap
from repetita.laws.holdout import evaluate, parse_holdout
from repetita.laws.record import published_chinchilla

DATABLATIONS_FROZEN = published_chinchilla()


def epoch_points(anchors) -> pd.DataFrame:
    """Besiroglu et al. 2024's digitised Chinchilla points minus the 5 highest losses, D = C / 6N."""
    raw = pd.read_csv(anchors / "epoch-chinchilla" / "svg_extracted_data.csv")
    raw = raw.drop(raw["loss"].nlargest(5).index)
    return pd.DataFrame(
        {"params": raw["Model Size"], "tokens": raw["Training FLOP"] / (6 * raw["Model Size"]), "loss": raw["loss"]}
    )


def test_epoch_chinchilla_grid_fit(anchors):
    df = epoch_points(anchors)
    assert len(df) == 240
    fit = LawFit("chinchilla").fit(df)
    assert fit.n_starts_ == 4500
    assert fit.objective_ <= 0.00101828
    nat = fit.natural_params()
    for name, published in {"A": 477.84, "B": 2143.86, "E": 1.8172, "alpha": 0.34731, "beta": 0.36718}.items():
        assert nat[name] == pytest.approx(published, rel=0.01), name


def test_epoch_bootstrap_standard_errors_match_published(anchors):
    """4,000 resamples as Besiroglu et al.: SEs of A, E, alpha, beta within 15% of theirs (B is skewed:
    reported in docs/laws.md, not held to 15%)."""
    df = epoch_points(anchors)
    fit = LawFit("chinchilla").fit(df)
    boot = bootstrap(fit, df, 4000, seed=0)
    free = boot["free"]
    samples = boot["samples"]
    se = {name.upper() if name in "abe" else name: float(np.std(np.exp(samples[:, j]) if name in "abe"
                                                                 else samples[:, j], ddof=1))
          for j, name in enumerate(free)}
    for name, published in {"A": 124.5, "E": 0.026, "alpha": 0.015, "beta": 0.021}.items():
        assert se[name] == pytest.approx(published, rel=0.15), (name, se[name])
    assert 1000 < se["B"] < 2000  # published 1293; skewed (docs/laws.md)


def test_datablations_published_grid_and_wider_search(anchors):
    db = pd.read_csv(anchors / "datablations" / "datablations_parametric_fit_default_182.csv")
    assert len(db) == 182
    fit = LawFit("data-constrained", freeze=DATABLATIONS_FROZEN).fit(db)
    # R_D*, R_N* as published (15.388, 5.310) to what the shallow valley allows: 0.1 in R_D* moves the
    # objective by only 7e-8, so another BLAS may stop a little elsewhere; the objective is the tight check
    assert fit.params_["rd_star"] == pytest.approx(15.39, abs=0.2)
    assert fit.params_["rn_star"] == pytest.approx(5.31, abs=0.1)
    assert fit.objective_ == pytest.approx(0.0158259, abs=1e-6)
    assert fit.r2_ == pytest.approx(0.7722, abs=5e-4)
    wide = LawFit("data-constrained", freeze=DATABLATIONS_FROZEN, grid=WIDE_GRID, n_refine=30).fit(db)
    assert wide.objective_ <= 0.0158047
    assert wide.params_["rd_star"] > 50  # the lower optimum lies far out along the flat valley


def test_shipped_datablations_copy_matches_anchor(anchors):
    shipped = load_example("datablations")
    anchor = pd.read_csv(anchors / "datablations" / "datablations_parametric_fit_default_182.csv")
    pd.testing.assert_frame_equal(shipped, anchor)


def test_datablations_bootstrap_shows_flat_objective():
    db = load_example("datablations")
    fit = LawFit("data-constrained", freeze=DATABLATIONS_FROZEN).fit(db)
    boot = bootstrap(fit, db, 12, seed=0)
    again = bootstrap(fit, db, 12, seed=0)
    np.testing.assert_array_equal(boot["samples"], again["samples"])  # seeded: reproducible
    rd = boot["params"]["rd_star"]
    # The interval spans several-fold: the data barely pin R_D* down.
    assert rd["hi"] / rd["lo"] > 2
    assert rd["lo"] < fit.params_["rd_star"] < rd["hi"]


@pytest.mark.parametrize(
    "model", ["100M", pytest.param("25M", marks=pytest.mark.slow), pytest.param("400M", marks=pytest.mark.slow)]
)
def test_multipower_predicts_held_out_schedules(model):
    curves = load_example(f"multipowerlaw:{model}")
    table, summary = evaluate(lambda: LawFit("multipower"), curves, parse_holdout("train:curve=" + ",".join(MPL_TRAIN)))
    held_out = set(curves["curve"]) - set(MPL_TRAIN)
    assert set(summary["by_group"]) == held_out and len(held_out) == 6
    for curve, s in summary["by_group"].items():
        assert s["r2"] >= 0.99, (curve, s["r2"])


# docs/laws.md, table "Error on held-out rows": RMSE(log) to the 4 digits quoted there.
HOLDOUT_RMSE = {
    ("largest:params:2", "data-constrained"): 0.0729, ("largest:params:2", "reuse"): 0.0330,
    ("largest:params:2", "reuse-power"): 0.0445, ("largest:epochs:3", "data-constrained"): 0.0113,
    ("largest:epochs:3", "reuse"): 0.0073, ("largest:epochs:3", "reuse-power"): 0.0212,
}


@pytest.mark.parametrize("spec, law", sorted(HOLDOUT_RMSE))
def test_holdout_errors_quoted_in_docs(spec, law):
    db = load_example("datablations")
    table, s = evaluate(lambda: LawFit(law, freeze=DATABLATIONS_FROZEN), db, parse_holdout(spec))
    if spec == "largest:params:2":
        assert len(table) == int((db["params"] >= sorted(db["params"].unique())[-2]).sum()) == 17
    assert s["rmse_log"] == pytest.approx(HOLDOUT_RMSE[(spec, law)], abs=5e-5)


def test_reuse_fit_on_datablations_quoted_in_docs():
    """docs/laws.md: the N-aware law's fit with the Chinchilla part frozen as published."""
    db = load_example("datablations")
    fit = LawFit("reuse", freeze=DATABLATIONS_FROZEN).fit(db)
    # r0 and r1 slide along a flat valley with two basins (183.9 / -9.14 best, 112.5 / -5.27 within 0.7%;
    # which one a fit seeded with rising slopes only reached depended on the CPU): assert what the data
    # identify, the objective, R_D* at the smallest budget (where the table repeats most) and the
    # predictions, never the coefficients one by one.
    assert fit.objective_ == pytest.approx(0.0120357, abs=2e-6)
    assert fit.r2_ == pytest.approx(0.783, abs=1e-3)
    p = fit.params_
    assert p["r0"] + p["r1"] * np.log(1e8) == pytest.approx(15.6, abs=0.3)  # docs: 15.6 at U = 100M
    assert p["r1"] < -4  # R_D* falls with U (docs), a sign the valley never crosses
    assert fit.predict(db.iloc[[0]])[0] == pytest.approx(2.7889, rel=1e-3)  # 2.8B on 4B x 8 epochs
    assert fit.r2_log_ > 0.8 and not any("explains too little" in w for w in fit.warnings_)  # log scale, robust
    assert any("another optimum" in w for w in fit.warnings_)  # the second basin is reported
