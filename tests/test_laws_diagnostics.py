"""The goodness-of-fit warning is judged on the log scale with Huber weights: it stays silent on the
published law's own table and fires on a law that misses the trend."""

from __future__ import annotations

import numpy as np
import pytest

from repetita.examples import load_example
from repetita.laws.diagnostics import R2_WARN, robust_log_r2
from repetita.laws.evaluate import predicted_loss
from repetita.laws.record import load


def _published():
    db = load_example("datablations")
    rec = load("example:datablations-published")
    return db, rec, predicted_loss(rec, db["params"], db["tokens"], db["unique_tokens"])


def test_published_law_on_its_own_table_passes_on_the_log_scale():
    db, rec, pred = _published()
    y = db["val_loss"].to_numpy()
    raw = 1 - np.sum((y - pred) ** 2) / np.sum((y - y.mean()) ** 2)
    assert raw == pytest.approx(0.7722, abs=5e-4)  # the raw-scale figure the old warning fired on
    r2 = robust_log_r2(pred, y)
    assert r2 == pytest.approx(0.8326, abs=5e-4) and r2 > R2_WARN
    assert rec["r2_log"] == pytest.approx(r2, abs=1e-4)  # the shipped record states the same number
    assert not any("explains too little" in w for w in rec["warnings"])


def test_a_law_that_misses_the_trend_is_flagged():
    db, _, pred = _published()
    y = db["val_loss"].to_numpy()
    rng = np.random.default_rng(0)
    assert robust_log_r2(rng.permutation(pred), y) < 0  # predictions unrelated to the rows
    flat = np.full_like(y, np.exp(np.mean(np.log(y))))
    assert robust_log_r2(flat, y) == pytest.approx(0.0, abs=0.1)  # a constant explains nothing


def test_outliers_are_discounted_not_decisive():
    x = np.linspace(0, 1, 200)
    y = np.exp(1 + x)
    pred = y * np.exp(0.002 * np.sin(40 * x))  # a good law
    bad = y.copy()
    bad[:5] *= 3.0  # five diverged runs
    raw = 1 - np.sum(np.log(pred / bad) ** 2) / np.sum((np.log(bad) - np.log(bad).mean()) ** 2)
    assert raw < R2_WARN  # the plain log R^2 would blame the law for five broken runs
    assert robust_log_r2(pred, bad) > 0.95
    assert np.isnan(robust_log_r2([1.0], [1.0])) and np.isnan(robust_log_r2([1.0, np.nan], [1.0, 2.0]))
