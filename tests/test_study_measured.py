"""Measured runs first: the report's first screen never recommends what the study measured to be worse,
and shows the best measured run at each unique-token budget.

The demo's case, in the numbers it printed: at U = 32,768 the law proposed 126k params x 33.3 epochs
(predicted 3.7429, 95% interval 3.452-4.059); the study had measured 131k x 32 epochs at 4.227 and 131k x
16 epochs at 3.764."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from repetita.decide.decision import headline
from repetita.decide.measured import NEAR, REL_NOISE, configurations, seed_noise

U = 32768.0


def _single(rows) -> pd.DataFrame:
    return pd.DataFrame([{"recipe": r, "params": n, "unique_tokens": u, "epochs": k, "loss": lo,
                          "lr": np.nan, "weight_decay": np.nan} for r, n, u, k, lo in rows])


def _decision(plans) -> dict:
    return {"plans": plans, "caveats": [], "best_epochs": []}


def _plan(u, c, recipe, n, k, loss, interval, loss_standard=None):
    return {"unique_tokens": u, "compute": c, "recipe": recipe, "member_params": n, "epochs": k, "loss": loss,
            "prediction_interval": interval, "loss_standard": loss_standard or loss + 0.0073,
            "gain_interval": [0.001, 0.01], "loss_interval": None, "share_best": None}


DEMO_RUNS = [("standard", 28.8e3, U, 8, 4.40), ("standard", 28.8e3, U, 16, 4.31), ("standard", 28.8e3, U, 32, 4.45),
             ("standard", 131e3, U, 8, 3.90), ("standard", 131e3, U, 16, 3.764), ("standard", 131e3, U, 32, 4.227),
             ("regularized", 131e3, U, 16, 3.80), ("regularized", 131e3, U, 32, 4.10),
             ("standard", 28.8e3, 2048.0, 64, 5.1), ("standard", 131e3, 2048.0, 64, 5.6)]


def test_the_demos_overfit_recommendation_is_overruled_by_its_own_run():
    single = _single(DEMO_RUNS)
    c = 6 * 126e3 * U * 33.3
    d = _decision([_plan(U, c, "standard", 126e3, 33.3, 3.7429, [3.452, 4.059])])
    h = headline(d, single, {}, "demo")
    (row,) = h.rows
    assert row.source == "measured" and (row.recipe, row.params, row.epochs, row.loss) == ("standard", 131e3, 16, 3.764)
    assert "131k params x 32 epochs" in row.overruled and "4.2270" in row.overruled
    assert "outside the law's 95% prediction interval there, 3.452-4.059" in row.overruled
    # law-free, the sentence says what the runs show: the turn past 16 epochs, and that 131k is the largest
    assert "the loss rose past 16 epochs at this size (32 epochs: 4.2270)" in h.sentence
    assert "the largest size measured at this U" in h.sentence
    assert "the runs decide" in h.sentence and "16 epochs" in h.sentence and "3.7640" in h.sentence
    assert "33.3" in h.sentence  # the law's plan is named as the one not taken
    assert row.best.loss == 3.764 and "3.7640" in h.markdown()
    assert h.caveats[0].kind == "overruled" and h.caveats[0].text.startswith(f"U = {U:,.0f}:")


def test_a_run_worse_than_the_best_by_more_than_seed_noise_overrules_even_inside_the_interval():
    single = _single(DEMO_RUNS)
    c = 6 * 131e3 * U * 32
    # an interval wide enough to hold 4.227: the rule on the best measured run still applies
    h = headline(_decision([_plan(U, c, "standard", 131e3, 32, 3.70, [3.0, 4.5])]), single, {}, "demo")
    assert h.rows[0].source == "measured" and "worse by more than the seed noise (0.019) than standard 131k params x 16 " \
        "epochs at U = 32,768: measured 3.7640, which cost no more" in h.rows[0].overruled


def test_an_unmeasured_proposal_stands_and_the_best_measured_run_is_shown_beside_it():
    single = _single(DEMO_RUNS)
    c = 6 * 500e3 * U * 8
    h = headline(_decision([_plan(U, c, "standard", 500e3, 8, 3.6, [3.5, 3.7])]), single, {}, "demo")
    (row,) = h.rows
    assert row.source == "law" and row.overruled is None and row.best.loss == 3.764
    assert "standard, 131k params, 16 epochs: 3.7640" in h.markdown()


def test_a_law_failing_its_checks_does_not_move_the_decision_away_from_the_runs():
    single = _single(DEMO_RUNS)
    c = 6 * 500e3 * U * 8
    why = "the E term contributes under 1e-04 of the loss on every row (e = -48.7): it has vanished"
    fits = {"data-constrained": {"warnings": [why], "caveats": [{"kind": "vanished", "text": why}], "r2": 0.9}}
    h = headline(_decision([_plan(U, c, "standard", 500e3, 8, 3.6, [3.5, 3.7])]), single, fits, "demo")
    assert h.rows[0].source == "measured" and "fails its own checks" in h.rows[0].overruled
    assert "Expected loss" not in h.sentence  # no law number where the law does not qualify


def test_seed_noise_is_the_largest_replicate_range():
    single = _single(DEMO_RUNS)
    reps = _single([("standard", 131e3, U, 16, 3.75), ("standard", 131e3, U, 16, 3.778),
                    ("standard", 28.8e3, U, 8, 4.39), ("standard", 28.8e3, U, 8, 4.41)])
    runs = configurations(single, reps)
    noise, how = seed_noise(runs)
    assert noise == pytest.approx(0.028) and "seeds" in how
    assert seed_noise(configurations(single))[0] == pytest.approx(REL_NOISE * 3.764)
    # a proposal whose run is 0.02 worse than the best for its compute is within that noise: it stands
    c = 6 * 131e3 * U * 8
    h = headline(_decision([_plan(U, c, "standard", 131e3, 8, 3.70, [3.6, 3.95])]),
                 _single([r if r[3] != 8 or r[1] != 131e3 else ("standard", 131e3, U, 8, 3.784) for r in DEMO_RUNS]),
                 {}, "demo", replicates=reps)
    assert h.rows[0].source == "law"
    # the same proposal promising no more than that noise over the best run leaves the run as the decision
    h = headline(_decision([_plan(U, c, "standard", 131e3, 8, 3.77, [3.6, 3.95])]),
                 _single([r if r[3] != 8 or r[1] != 131e3 else ("standard", 131e3, U, 8, 3.784) for r in DEMO_RUNS]),
                 {}, "demo", replicates=reps)
    assert h.rows[0].source == "measured" and "no more than the seed noise (0.028)" in h.rows[0].overruled


@pytest.mark.parametrize("seed", range(12))
def test_no_recommendation_is_contradicted_by_a_run_of_its_table(seed):
    """Property: over random subsets of a grid with a turn and random proposals, every row of the first
    screen is either measured or not measured worse: no run of the same recipe at that U within NEAR in N
    and K has a loss outside the row's interval or above the best measured by more than the seed noise."""
    rng = np.random.default_rng(seed)
    grid = []
    for n in (1e5, 4e5, 1.6e6):
        for u in (1e6, 4e6):
            for k in (1, 2, 4, 8, 16, 32, 64):
                # a loss with a turn: falls with N and K, then rises past K = 8 (overfitting)
                loss = 2 + 30 / n ** 0.3 + 40 / (u * min(k, 8)) ** 0.3 + 0.02 * max(0.0, math.log2(k / 8)) ** 2
                grid.append(("standard", n, u, k, loss + rng.normal(0, 0.005)))
    keep = rng.random(len(grid)) < 0.6
    single = _single([g for g, m in zip(grid, keep, strict=True) if m])
    plans = []
    for u in sorted(single["unique_tokens"].unique()):
        n, k = float(rng.choice([1e5, 4e5, 1.6e6, 3e6])), float(rng.choice([2, 8, 32, 64, 100]))
        loss = float(rng.uniform(2.0, 2.6))
        plans.append(_plan(u, 6 * n * u * k * rng.uniform(1, 2), "standard", n, k, loss, [loss - 0.03, loss + 0.03]))
    h = headline(_decision(plans), single, {}, "random")
    runs = configurations(single)
    noise = seed_noise(runs)[0]
    for row in h.rows:
        at = single[(single["unique_tokens"] == row.unique_tokens)
                    & (6 * single["params"] * single["unique_tokens"] * single["epochs"] <= row.compute * (1 + 1e-6))]
        best = at["loss"].min() if len(at) else None
        if row.source == "measured":
            assert row.loss == best and row.overruled
            continue
        close = single[(single["unique_tokens"] == row.unique_tokens)
                       & (np.abs(np.log(single["params"] / row.params)) <= math.log(NEAR) + 1e-9)
                       & (np.abs(np.log(single["epochs"] / row.epochs)) <= math.log(NEAR) + 1e-9)]
        lo, hi = row.prediction_interval
        assert ((close["loss"] >= lo) & (close["loss"] <= hi)).all()
        assert best is None or (close["loss"] <= best + noise).all()
