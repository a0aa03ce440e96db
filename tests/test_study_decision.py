"""The study report opens with its decision: runs drawn from a known law, a recipe worth a known 1.5x data."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from repetita.laws.evaluate import predicted_loss
from repetita.laws.record import PUBLISHED, load
from repetita.study.analysis import best_by_recipe, decision, efficiency, fit_reuse_laws

LAW = {"law": "data-constrained", "spec": {"law": "data-constrained"}, "params": load(PUBLISHED)["params"]}
M = 1.5  # the regularized recipe's true data efficiency


def _tidy() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for n, u, k in itertools.product((1e8, 3e8, 1e9), (2e8, 8e8, 3.2e9), (1, 2, 4, 8, 16, 32)):
        for recipe, m in (("standard", 1.0), ("regularized", M)):
            loss = float(predicted_loss(LAW, n, m * k * u, m * u)) * np.exp(rng.normal(0, 1e-4))
            rows.append({"params": n, "tokens": k * u, "unique_tokens": u, "epochs": float(k), "loss": loss,
                         "recipe": recipe, "seed": 0, "members": 1, "lr": 1e-3,
                         "weight_decay": 0.1 if recipe == "standard" else 1.0})
    return pd.DataFrame(rows)


def test_decision_recovers_the_recipe_and_recommends_it():
    tidy = _tidy()
    fits, dc, std = fit_reuse_laws(tidy)
    eff = efficiency(best_by_recipe(tidy), fits)
    d = decision(tidy, dc, std, eff, fits)
    assert "skipped" not in d
    assert d["recipes"]["regularized"]["efficiency"] == pytest.approx(M, rel=0.02)
    assert {p["recipe"] for p in d["plans"]} == {"regularized"} and len(d["plans"]) == 9
    for p in d["plans"]:
        assert p["loss"] < p["loss_standard"]
    rd = d["rd_star"]
    assert rd["value"] == pytest.approx(15.39, rel=0.1) and rd["interval"][0] < 15.39 < rd["interval"][1]
    # the law's loss keeps falling with epochs, so the largest epoch count tried is the best everywhere: said
    assert all(r["at_largest_tried"] for r in d["best_epochs"])
    assert any(c["kind"] == "turn-unmeasured" and "largest tried" in c["text"] for c in d["caveats"])
    assert d["lines"][0].startswith("best epochs measured") and "fitted R_D* = " in d["lines"][1]
