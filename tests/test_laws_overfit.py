"""Overfitting laws, the turn, the law benchmark and the evidence a plan rests on."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from repetita.cli import main
from repetita.errors import UserError
from repetita.examples import load_example
from repetita.laws import benchmark
from repetita.laws.fit import LawFit
from repetita.laws.law import LAWS, get_law
from repetita.laws.record import published_chinchilla

PUBLISHED = published_chinchilla()


def test_monotone_laws_never_turn_and_the_answer_is_vectorized():
    law = get_law("data-constrained")
    t = law.turn(PUBLISHED | {"rd_star": 15.0, "rn_star": 5.0}, np.array([1e8, 1e9]), np.array([[1e8], [1e9]]))
    assert t.shape == (2, 2) and np.all(np.isinf(t))


def test_turn_of_the_one_coefficient_penalty_matches_its_closed_form():
    # L = E + A/N^alpha + B/(U K)^beta + k (K - 1) N/U: dL/dK = 0 at K^(1+beta) = beta B U^(1-beta) / (k N)
    law = get_law("overfit-1")
    c = -7.0
    n, u = np.array([1e8, 5e8, 2e9]), np.array([1e8, 1e9, 1e10])
    got = law.turn(PUBLISHED | {"c": c}, n, u)
    b, beta = np.exp(PUBLISHED["b"]), PUBLISHED["beta"]
    want = (beta * b * u ** (1 - beta) / (np.exp(c) * n)) ** (1 / (1 + beta))
    np.testing.assert_allclose(got, want, rtol=0.01)


def test_every_law_answers_turn():
    for name, law in LAWS.items():
        if "params" not in law.columns or "unique_tokens" not in law.columns:
            continue
        params = {p: law.defaults.get(p, law.grid[p][len(law.grid[p]) // 2]) for p in law.params} | PUBLISHED
        t = law.turn(params, 1e8, 1e8)
        assert t.shape == () and (np.isinf(t) if law.monotone else t >= 1), name


def test_penalty_law_recovers_a_simulated_turn():
    rng = np.random.default_rng(0)
    truth = PUBLISHED | {"c": -6.5}
    law = get_law("overfit-1")
    n = np.repeat([2e7, 6e7, 2e8], 12)
    u = np.tile(np.repeat([3e7, 1e8, 3e8], 4), 3)
    k = np.tile([1.0, 4.0, 30.0, 300.0], 9)
    df = pd.DataFrame({"params": n, "unique_tokens": u, "tokens": u * k})
    theta = np.array([[truth[p] for p in law.params]])
    X = {c: df[c].to_numpy() for c in df} | {"log_params": np.log(n), "log_tokens": np.log(u * k),
                                                 "log_unique": np.log(u)}
    df["loss"] = np.exp(law.func(theta, X)[0] + rng.normal(0, 0.003, len(df)))
    fit = LawFit("overfit-1", freeze=PUBLISHED).fit(df)
    assert law.turn(fit.params_, 6e7, 1e8) == pytest.approx(float(law.turn(truth, 6e7, 1e8)), rel=0.05)


def test_whole_table_penalty_fit_puts_the_146m_minimum_where_it_was_observed():
    """docs/laws.md: the one-coefficient penalty with the published Chinchilla part frozen, fitted on all 182
    runs, turns at 61 epochs for 146M params on 100M unique tokens (observed best: 59 epochs)."""
    db = load_example("datablations")
    fit = LawFit("overfit-1", freeze=PUBLISHED).fit(db)
    turn = float(get_law("overfit-1").turn(fit.params_, 146.5e6, 1e8))
    assert 59 / 1.25 < turn < 59 * 1.25
    runs = pd.DataFrame({"params": 146.5e6, "unique_tokens": 1e8, "tokens": 1e8 * np.array([turn, 4 * turn])})
    before, after = fit.predict(runs)
    assert after > before  # the loss rises after the turn, as the 146M runs do up to 1,740 epochs


def test_epoch_extrapolation_on_datablations_beats_the_monotone_laws():
    """docs/laws.md, the epochs split: fitted on <= 16 epochs, the penalty law misses the longer runs by
    0.0765 mean |log residual| against 0.0967-0.1052 for the laws that cannot turn."""
    db = benchmark.datasets()["datablations"]
    got = {law: benchmark.score(law, "datablations", db, "epochs") for law in
           ("chinchilla", "data-constrained", "overfit-1")}
    assert got["overfit-1"].error == pytest.approx(0.0765, abs=0.002)
    assert got["data-constrained"].error == pytest.approx(0.0968, abs=0.002)
    assert got["chinchilla"].error == pytest.approx(0.1052, abs=0.002)
    assert np.isinf(got["data-constrained"].turn) and 59 < got["overfit-1"].turn < 200
    # the interval of the law's mean covers almost none of the longer runs, the prediction interval more,
    # and only for the law that can turn does it cover most of them (0.83 against 0.42-0.43)
    assert all(s.coverage_mean < 0.6 for s in got.values())
    assert got["overfit-1"].coverage > 0.75 > 0.5 > got["data-constrained"].coverage
    assert got["overfit-1"].n_test == int((db["epochs"] > 16).sum())


def test_regret_picks_the_predicted_best_of_each_compute_group():
    test = pd.DataFrame({"params": [1e8, 2e8, 1e8], "tokens": [2e9, 1e9, 5e9], "unique_tokens": 1e9,
                         "loss": [3.0, 2.9, 2.5]})
    regret, groups = benchmark.decision_regret(test, np.array([1.0, 2.0, 0.0]))
    assert groups == 1 and regret == pytest.approx(0.1)  # picked 3.0 where 2.9 was reached


def test_benchmark_refuses_a_table_without_repetition_and_unknown_splits(capsys):
    one_epoch = load_example("datablations").query("epochs <= 1.0")
    with pytest.raises(UserError, match="no run repeats its data"):
        benchmark.run(laws=("chinchilla",), tables={"flat": one_epoch})
    assert main(["laws", "--benchmark", "--splits", "epochs,diagonal"]) == 2
    err = capsys.readouterr().err
    assert "unknown split 'diagonal'" in err and err.count("\n") == 1


def test_laws_benchmark_cli_writes_its_table(tmp_path, capsys):
    out = tmp_path / "scores.csv"
    assert main(["laws", "--benchmark", "--only", "overfit-1", "--splits", "epochs", "--out", str(out),
                 "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    table = pd.read_csv(out)
    assert len(table) == len(res["scores"]) == 3  # three shipped tables
    assert any("too narrow" in w for w in res["warnings"])


def test_plan_states_its_evidence_and_flags_a_decision_outside_it(tmp_path, capsys):
    fit = tmp_path / "of.json"
    assert main(["fit", "--example", "datablations", "--law", "overfit-1", "--out", str(fit), "--json"]) == 0
    region = json.loads(capsys.readouterr().out)["region"]
    db = load_example("datablations")
    assert region["params"] == db["params"].max() and region["epochs"] == pytest.approx(db["epochs"].max(), rel=0.01)
    assert main(["plan", "--law-file", str(fit), "--compute", "1e20:1e25:6", "--unique-tokens", "25e9",
                 "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    rows = next(iter(res["laws"].values()))["rows"]
    inside, outside = rows[0], rows[-1]
    assert inside["outside_evidence"] == [] and inside["compute"] < region["compute"]
    assert any("compute" in w and "largest fitted" in w for w in outside["outside_evidence"])
    assert all(np.isfinite(r["turn_epochs"]) for r in rows)
    # where the best use of the budget passes the turn, the plan says so
    for r in rows:
        assert (r["epochs"] > 1.05 * r["turn_epochs"]) == any("past the law's turn" in w for w in r["outside_evidence"])
    assert any("outside the runs the fit rests on" in w for w in res["warnings"])


def test_frontier_never_passes_the_turn_and_names_the_budget_worth_spending():
    from repetita.decide.allocate import frontier

    fit = LawFit("overfit-1", freeze=PUBLISHED).fit(load_example("datablations"))
    f = frontier(fit, np.geomspace(1e20, 1e25, 11), 25e9)
    for r in f.rows:
        assert r.epochs <= 1.05 * r.turn_epochs, r
    losses = [r.loss for r in f.rows]
    assert f.spend_at_most == f.rows[int(np.argmin(losses))].compute < 1e25
    assert f.loss_limit == pytest.approx(min(losses))  # no limit as C -> infinity for a law that overfits


def test_frontier_rows_past_the_turn_or_beyond_the_trust_region_are_no_plan():
    """The overfitting law on 25B tokens at 1e20-1e25 FLOPs put its spare compute into 7.5e12- and
    7.5e13-parameter models. Rows above 3x the fitted N or C, or past the turn, now say "no better plan"."""
    from repetita.decide.allocate import TRUST_FACTOR, frontier

    fit = LawFit("overfit-1", freeze=PUBLISHED).fit(load_example("datablations"))
    region = fit.region_
    for trust in (TRUST_FACTOR, 1.0, 100.0):
        f = frontier(fit, np.geomspace(1e20, 1e25, 6), 25e9, trust=trust)
        for r in f.rows:
            beyond = r.params > trust * region["params"] * 1.01 or r.compute > trust * region["compute"] * 1.01
            past = f.spend_at_most is not None and r.compute > f.spend_at_most
            assert (r.withheld is not None) == (beyond or past), (trust, r)
            if r.withheld is None:
                assert r.params <= trust * region["params"] * 1.01 and r.compute <= trust * region["compute"] * 1.01
        assert f.supported_up_to == max(r.compute for r in f.rows if r.withheld is None)


def test_plan_frontier_text_and_json_withhold_rows_and_refuse_a_trust_below_1(tmp_path, capsys):
    fit = tmp_path / "of.json"
    assert main(["fit", "--example", "datablations", "--law", "overfit-1", "--out", str(fit)]) == 0
    capsys.readouterr()
    argv = ["plan", "--law-file", str(fit), "--compute", "1e20:1e25:6", "--unique-tokens", "25e9"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    held = [line for line in out.splitlines() if "no better plan" in line and not line.startswith("decision")]
    assert len(held) == 3 and all("e+12" not in line and "e+13" not in line for line in held)
    assert "plans are supported up to C = 1e+22" in out
    assert main(argv + ["--json"]) == 0
    rows = next(iter(json.loads(capsys.readouterr().out)["laws"].values()))["rows"]
    assert [r["withheld"] is not None for r in rows] == [False, False, False, True, True, True]
    assert main(argv + ["--trust", "0.9"]) == 2
    err = capsys.readouterr().err
    assert "at least 1" in err and len(err.strip().splitlines()) == 1


def _allocation(loss, pi, params=1e9, epochs=4.0, holdout=None):
    from repetita.decide.allocate import Allocation, Naive
    from repetita.decide.laws import LawPlan

    naive = Naive(params, params * 20, params * 20, loss, loss, 0.0)
    a = Allocation(1e20, 1e9, 6.0, params, params * 20, epochs, loss, False, False, float("inf"), None, [], pi, naive)
    return LawPlan(a, None, None, [], [], holdout)


def test_headline_is_the_held_out_favourite_and_its_interval_spans_the_weighed_laws():
    from repetita.decide.laws import choose_law, pseudo_bma

    laws = {"a": _allocation(2.20, [2.0, 2.4], 1e9, 4.0, {"spec": "kfold:5", "rmse_log": 0.050, "n": 20}),
            "b": _allocation(2.30, [2.1, 2.6], 3e9, 1.0, {"spec": "kfold:5", "rmse_log": 0.052, "n": 20}),
            "c": _allocation(2.10, [1.5, 2.9], 9e9, 9.0, {"spec": "kfold:5", "rmse_log": 0.200, "n": 20})}
    w, spec = pseudo_bma(laws)
    # ELPD = -n/2 (ln(2 pi s^2) + 1): the weight ratio of a to b is (0.052 / 0.050)^20
    assert spec == "kfold:5" and w["a"] / w["b"] == pytest.approx((0.052 / 0.050) ** 20)
    assert w["c"] < 1e-10
    h = choose_law(laws)
    assert h.law == "a" and h.method.startswith("held-out favoured")
    assert h.loss_interval == [2.0, 2.6] and h.params_range == [1e9, 3e9]  # c weighs nothing: left out
    # without a common holdout the first law leads and every law's interval counts
    import dataclasses

    laws = {k: dataclasses.replace(r, holdout=None) for k, r in laws.items()}
    h = choose_law(laws)
    assert h.law == "a" and h.method.startswith("first law") and h.loss_interval == [1.5, 2.9]


def test_stacking_keeps_a_law_that_predicts_some_rows_best():
    """Two laws, each accurate on its own half of the held-out rows and 4x worse on the other: stacking
    weighs them alike (pseudo-BMA on the pooled RMSE would too, but by a ratio of likelihoods of the whole
    table); a third law worse on every row weighs ~0; the solution maximises the stacking objective."""
    from repetita.decide.laws import choose_law, stacking

    rng = np.random.default_rng(0)
    n = 40
    good, bad = rng.normal(0, 0.01, n), rng.normal(0, 0.04, n)
    half = np.arange(n) < n // 2
    errs = {"a": np.where(half, good, bad), "b": np.where(half, bad, good), "c": rng.normal(0, 0.08, n)}

    def hold(e):
        rows = [{"split": f"fold{i % 5}", "row": i, "log_error": float(x)} for i, x in enumerate(e)]
        return {"spec": "kfold:5", "rmse_log": float(np.sqrt(np.mean(e ** 2))), "n": n, "rows": rows}

    laws = {"a": _allocation(2.20, [2.0, 2.4], 1e9, 4.0, hold(errs["a"])),
            "b": _allocation(2.25, [2.1, 2.5], 3e9, 2.0, hold(errs["b"])),
            "c": _allocation(2.10, [1.5, 2.9], 9e9, 9.0, hold(errs["c"]))}
    w = stacking(laws)
    assert abs(w["a"] - w["b"]) < 0.2 and w["c"] < 0.02 and sum(w.values()) == pytest.approx(1.0)

    def objective(weights):
        e = np.array([errs[k] for k in laws])
        sd = np.sqrt(np.mean(e ** 2, axis=1))[:, None]
        dens = np.exp(-0.5 * (e / sd) ** 2) / (np.sqrt(2 * np.pi) * sd)
        return float(np.sum(np.log(np.array(weights) @ dens)))

    best = objective([w[k] for k in laws])
    for other in ([1 / 3] * 3, [1, 0, 0], [0.5, 0.5, 0], [0.45, 0.45, 0.1]):
        assert best >= objective(other) - 1e-9
    h = choose_law(laws)
    assert h.method.startswith("held-out stacking") and h.loss_interval == [2.0, 2.5]  # a and b counted, c not
    # rows that do not match across the laws: no stacking, the pooled pseudo-BMA decides
    laws["c"] = _allocation(2.10, [1.5, 2.9], 9e9, 9.0, hold(errs["c"][:-1]) | {"n": n})
    assert stacking(laws) is None and choose_law(laws).method.startswith("held-out favoured")


def test_fit_files_from_different_tables_are_flagged():
    from repetita.laws.record import same_data

    db = load_example("datablations")
    a = LawFit("chinchilla").fit(db).result()
    b = LawFit("chinchilla").fit(db.head(100)).result()
    assert same_data({"a": a, "a2": dict(a)}) == []
    assert "fitted on different data" in same_data({"a": a, "b": b})[0]


def test_plan_refuses_fit_files_from_different_tables_in_one_line(tmp_path, capsys):
    from repetita.io import write_json

    db = load_example("datablations")
    write_json(tmp_path / "a.json", LawFit("chinchilla").fit(db).result())
    write_json(tmp_path / "b.json", LawFit("chinchilla").fit(db.head(100)).result())
    assert main(["plan", "--law-file", str(tmp_path / "a.json"), "--law-file", str(tmp_path / "b.json"),
                 "--compute", "1e21", "--unique-tokens", "25e9"]) == 2
    err = capsys.readouterr().err.strip()
    assert "fitted on different data" in err and "182 and 100 rows" in err and len(err.splitlines()) == 1


def test_positive_parameter_intervals_never_run_negative():
    from repetita.laws.uncertainty import laplace

    db = load_example("datablations")
    fit = LawFit("data-constrained", freeze=PUBLISHED).fit(db)
    u = laplace(fit, db)
    for name in ("rd_star", "rn_star"):
        iv = u["params"][name]
        assert 0 < iv["lo"] < fit.params_[name] < iv["hi"]
        # on the log scale: symmetric in ln, so the centre is the geometric mean of the ends
        assert np.sqrt(iv["lo"] * iv["hi"]) == pytest.approx(fit.params_[name], rel=1e-9)


def test_prediction_interval_holds_the_readme_run_where_the_mean_interval_misses_it(tmp_path, capsys):
    fit = tmp_path / "dc.json"
    freeze = [x for k, v in PUBLISHED.items() for x in ("--freeze", f"{k}={v}")]
    assert main(["fit", "--example", "datablations", "--law", "data-constrained", *freeze, "--out", str(fit),
                 "--json"]) == 0
    capsys.readouterr()
    assert main(["plan", "--law-file", str(fit), "--params", "8.67e9", "--unique-tokens", "25e9", "--epochs",
                 "7.12", "--json"]) == 0
    row = json.loads(capsys.readouterr().out)["intervals"]["table"][0]
    reached = 2.3765  # the datablations README run, row 8b7178b25b
    assert not row["loss"][0] <= reached <= row["loss"][1]
    assert row["loss_prediction"][0] <= reached <= row["loss_prediction"][1]


def test_a_penalty_fitted_without_any_run_past_its_turn_says_it_is_extrapolated():
    db = load_example("datablations")
    short = LawFit("overfit-1").fit(db[db["epochs"] <= 16])
    assert any("no run in the table went past this law's turn" in w for w in short.warnings_)
    full = LawFit("overfit-1").fit(db)  # the 146M runs go to 1,740 epochs, past any turn
    assert not any("went past this law's turn" in w for w in full.warnings_)


def test_plan_draws_of_positive_parameters_stay_positive():
    from repetita.laws.record import uncertainty_block
    from repetita.laws.uncertainty import laplace, theta_draws

    db = load_example("datablations")
    fit = LawFit("data-constrained", freeze=PUBLISHED).fit(db)
    fit.uncertainty_ = uncertainty_block(laplace(fit, db))
    theta = theta_draws(fit, 2000)
    law = fit.spec.law_obj
    for name in ("rd_star", "rn_star"):
        col = theta[:, law.params.index(name)]
        assert col.min() > 0
        # centred on the fit on the log scale
        assert np.median(np.log(col)) == pytest.approx(np.log(fit.params_[name]), abs=0.1)


def test_data_decay_is_retired_from_the_default_set_with_its_reason(capsys):
    """Its default fit on <= 16 epochs extrapolates at 1.2565 (docs/laws.md): out of the benchmark's default
    laws, said by `repetita laws`, still fitted by name."""
    import json

    from repetita.cli import main
    from repetita.laws.benchmark import benchmark_laws
    from repetita.laws.law import get_law

    assert "data-decay" not in benchmark_laws() and "overfit-1" in benchmark_laws()
    assert "1.2565" in get_law("data-decay").retired
    assert main(["laws", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [k for k, v in listed.items() if "retired" in v] == ["data-decay"]
