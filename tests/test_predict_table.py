"""Predictions with intervals for a whole table (``repetita predict TABLE``), the coverage ``fit --holdout``
reports, ``laws --benchmark TABLE``, and the Laplace-width warning: one implementation (laws/intervals.py),
so the same fit gives the same numbers through each door."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from repetita.cli import main
from repetita.examples import load_example
from repetita.laws import benchmark


def _run(capsys, *argv) -> dict:
    capsys.readouterr()
    assert main([*argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.fixture(scope="module")
def held_out_score():
    """The benchmark's own score of the Chinchilla law on the datablations epoch split (fit K <= 16)."""
    return benchmark.score("chinchilla", "datablations", benchmark.datasets()["datablations"], "epochs")


def test_predict_on_the_datablations_table_reports_the_benchmarks_coverage(tmp_path, capsys, held_out_score):
    fit = tmp_path / "short.json"
    _run(capsys, "fit", "--example", "datablations", "--law", "chinchilla", "--where", "epochs <= 16", "--out", str(fit))
    out = _run(capsys, "predict", "--example", "datablations", "--where", "epochs > 16", "--law-file", str(fit),
               "--out", str(tmp_path / "pred.csv"))
    s = out["scores"]
    assert s["rows"] == held_out_score.n_test == 84
    assert s["coverage"] == held_out_score.coverage  # the same count of covered rows, not approximately
    assert s["coverage_mean"] == held_out_score.coverage_mean
    assert s["mean_abs_log_residual"] == pytest.approx(held_out_score.error, rel=1e-9)
    table = pd.read_csv(tmp_path / "pred.csv")
    assert len(table) == 84 and {"predicted", "mean_lo", "mean_hi", "pred_lo", "pred_hi"} <= set(table.columns)
    # the prediction interval contains the mean's, which contains the prediction, on every row
    assert (table["pred_lo"] <= table["mean_lo"]).all() and (table["mean_hi"] <= table["pred_hi"]).all()
    assert (table["mean_lo"] <= table["predicted"]).all() and (table["predicted"] <= table["mean_hi"]).all()


def test_laws_benchmark_on_a_users_table_scores_as_on_the_shipped_one(tmp_path, capsys, held_out_score):
    path = tmp_path / "runs.csv"
    load_example("datablations").to_csv(path, index=False)
    out = _run(capsys, "laws", "--benchmark", str(path), "--only", "chinchilla", "--splits", "epochs")
    (row,) = out["scores"]
    assert row["dataset"] == str(path)
    assert (row["error"], row["coverage"], row["coverage_mean"]) == (
        pytest.approx(held_out_score.error, rel=1e-9), held_out_score.coverage, held_out_score.coverage_mean)


def test_fit_holdout_reports_the_coverage_predict_finds_for_the_saved_fit(tmp_path, capsys):
    fit = tmp_path / "train.json"
    spec = "test:epochs=20,25,27,30"
    out = _run(capsys, "fit", "--example", "datablations", "--law", "chinchilla", "--holdout", spec, "--out", str(fit))
    h = out["holdout"]
    assert 0.0 <= h["coverage_mean"] <= h["coverage"] <= 1.0
    pred = _run(capsys, "predict", "--example", "datablations", "--where", "epochs in [20, 25, 27, 30]",
                "--law-file", str(fit))
    assert pred["scores"]["rows"] == len(h["rows"]) == 9
    assert (pred["scores"]["coverage"], pred["scores"]["coverage_mean"]) == (h["coverage"], h["coverage_mean"])
    assert main(["fit", "--example", "datablations", "--law", "chinchilla", "--holdout", spec]) == 0
    assert "held-out losses inside the 95% prediction interval" in capsys.readouterr().out


def test_a_laplace_interval_far_wider_than_the_scatter_warns_once_and_the_bootstrap_does_not(tmp_path, capsys):
    db = load_example("datablations")
    db = db[db["epochs"] <= 1.0].rename(columns={"val_loss": "loss"})[["params", "tokens", "unique_tokens", "loss"]]
    db = db.reset_index(drop=True)
    path = tmp_path / "runs.csv"
    db.assign(params=np.where(np.arange(len(db)) == 7, 1e30, db["params"])).to_csv(path, index=False)
    out = _run(capsys, "fit", str(path), "--law", "chinchilla")
    wide = [w for w in out["warnings"] if "Laplace interval of the law's mean" in w]
    assert len(wide) == 1 and "row 8" in wide[0] and "--bootstrap" in wide[0]
    assert any(c["kind"] == "wide-interval" for c in out["caveats"])
    out = _run(capsys, "fit", str(path), "--law", "chinchilla", "--bootstrap", "20")
    assert not any("Laplace interval" in w for w in out["warnings"])
    db.to_csv(path, index=False)  # the same rows without the slip: no warning
    assert not any("Laplace interval" in w for w in _run(capsys, "fit", str(path), "--law", "chinchilla")["warnings"])


@pytest.mark.parametrize("argv, words", [
    (["--where", "epochs > 1e9"], "selects no row"),
    (["--where", "epochs >"], "cannot apply it"),
])
def test_predict_bad_input_is_one_line(tmp_path, capsys, argv, words):
    assert main(["predict", "--example", "datablations", "--law-file", "example:datablations-published", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert words in err and len(err.splitlines()) == 1 and "Traceback" not in err


def test_predict_a_table_missing_a_column_is_one_line(tmp_path, capsys):
    path = tmp_path / "runs.csv"
    load_example("datablations").drop(columns="unique_tokens").assign(epochs=np.nan).drop(columns="epochs").to_csv(
        path, index=False)
    assert main(["predict", str(path), "--law-file", "example:datablations-published"]) == 2
    err = capsys.readouterr().err.strip()
    assert "unique_tokens" in err and len(err.splitlines()) == 1 and "Traceback" not in err


def test_predict_says_which_rows_lie_beyond_the_fit_and_refuses_absurd_ones(tmp_path, capsys):
    fit = tmp_path / "one_epoch.json"
    _run(capsys, "fit", "--example", "datablations", "--law", "chinchilla", "--where", "epochs <= 1", "--out", str(fit))
    out = _run(capsys, "predict", "--example", "datablations", "--where", "epochs > 16", "--law-file", str(fit))
    (beyond,) = [w for w in out["warnings"] if "lie beyond the runs the fit rests on" in w]
    assert beyond.startswith("30 of 84 rows")
    path = tmp_path / "absurd.csv"
    pd.DataFrame({"params": [1e300], "tokens": [1e9], "unique_tokens": [1e9], "loss": [3.0]}).to_csv(path, index=False)
    assert main(["predict", str(path), "--law-file", str(fit)]) == 2
    err = capsys.readouterr().err.strip()
    assert "params 1e+300 is outside" in err and len(err.splitlines()) == 1


def test_laws_benchmark_on_a_malformed_table_is_one_line(tmp_path, capsys):
    path = tmp_path / "runs.csv"
    load_example("datablations").astype({"tokens": str}).assign(tokens=lambda d: d["tokens"].where(
        d.index != 3, "abc")).to_csv(path, index=False)
    assert main(["laws", "--benchmark", str(path), "--only", "chinchilla", "--splits", "epochs"]) == 2
    err = capsys.readouterr().err.strip()
    assert "'abc' is not a number" in err and len(err.splitlines()) == 1 and "Traceback" not in err
