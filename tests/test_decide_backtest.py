"""The decision backtest (decide/backtest.py): on a table made from a known law its decisions are the
truth's, and no run contradicts them; regret is scored against runs the decision had not seen; bad input
is one line and exit 2."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from repetita.cli import main
from repetita.decide.backtest import BacktestConfig, backtest, score, synthetic_table
from repetita.decide.measured import Measured


@pytest.fixture(scope="module")
def synthetic():
    df, truth = synthetic_table(noise=0.002, seed=0)
    return df, truth, backtest(df, BacktestConfig(), "synthetic", truth)


def test_on_a_known_law_the_decisions_are_the_truths(synthetic):
    _, _, r = synthetic
    s = r.summaries[0]
    law = [c for c in r.cases if c.source == "law"]
    assert len(law) >= 10 and s.contradicted == 0
    assert s.median_true_regret <= 0.005 and s.median_regret <= 0.005  # the goal in docs/plan.md
    assert all(c.true_regret < 0.005 for c in law)  # the law's own decisions: within 0.005 nats of the optimum
    # each decision saw only the levels below it: the rows it was fitted on cost less than its budget
    assert all(c.fitted_rows < r.configurations for c in r.cases)
    # a budget beyond the trust region is not extrapolated to: the best run seen stands, and says why
    assert all("trust region" in c.why for c in r.cases if c.source == "measured" and "trust" in (c.why or ""))


def test_the_backtest_is_deterministic_and_its_json_is_whole(synthetic, tmp_path, capsys):
    from repetita.io import dumps

    _, _, r = synthetic
    out = tmp_path / "bt.json"
    assert main(["backtest", "--synthetic", "--out", str(out), "--json"]) == 0  # a second run, from the CLI
    printed = json.loads(capsys.readouterr().out)
    assert json.loads(out.read_text()) == printed
    expected = json.loads(dumps(r.to_json()))
    assert printed["cases"] == expected["cases"] and printed["summaries"] == expected["summaries"]


def test_regret_is_scored_by_the_run_that_measures_the_decision_or_interpolated():
    u = 1e9
    runs = [Measured("standard", n, u, k, 3.0 + 0.1 * abs(np.log(n / 1e8)) + 0.05 * abs(np.log(k / 4)))
            for n in (5e7, 1e8, 2e8) for k in (2.0, 4.0, 8.0)]
    c = 6 * 1e8 * u * 4
    regret, how = score(runs, u, 1.1e8, 4.2, c)  # the 1e8 x 4 run measures it
    assert how == "run" and regret == pytest.approx(0.0)
    regret, how = score(runs, u, 1.5e8, 3.0, c)  # between runs: law-free interpolation
    assert how == "interpolated" and regret > 0
    assert score(runs, u, 1e10, 4.0, c) == (None, "unscored")  # far outside the runs: no score
    assert score(runs, u, None, None, c) == (None, "unscored")


def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"params": [1e6], "tokens": [1e7], "loss": [3.0]}).to_csv(bad, index=False)
    nan = tmp_path / "nan.csv"
    pd.DataFrame({"params": [1e6, 2e6], "tokens": [1e7, 1e7], "unique_tokens": [1e7, 1e7],
                  "loss": [3.0, float("nan")]}).to_csv(nan, index=False)
    cases = [
        ([], "give one of"),
        ([str(bad)], "missing: unique_tokens"),
        ([str(nan)], "row 2:"),
        (["--synthetic", "--levels", "1"], "levels 1"),
        (["--synthetic", "--trust", "0.5"], "--trust 0.5"),
        (["--synthetic", "--trust", "1e300"], "at most 1e+06"),
        (["--synthetic", "--law", "nope"], "unknown law 'nope'"),
        (["--synthetic", "--noise", "-1"], "noise -1"),
        (["--study", str(tmp_path)], "no study here"),
        (["--synthetic", "--out", str(tmp_path)], "--out"),
    ]
    for argv, words in cases:
        assert main(["backtest", *argv]) == 2, argv
        err = capsys.readouterr().err.strip()
        assert words in err and len(err.splitlines()) == 1 and "Traceback" not in err, (argv, err)
