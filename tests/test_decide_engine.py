"""The decision rule (decide/engine.py): measured runs first, a law only where it passes its checks, lies
inside the trust region, is not contradicted by a run and promises more than the seed noise; and the
property that a decision is never contradicted by a run of its own table, over random subsets of the
demo study's runs and of datablations."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from repetita.decide.allocate import allocate, beyond_trust, supported_allocation
from repetita.decide.engine import Proposal, is_contradicted, law_problem, predictor, settle, table_runs
from repetita.decide.measured import Measured, configurations, seed_noise
from repetita.examples import load_example
from repetita.laws.fit import LawFit
from repetita.laws.record import published_chinchilla

DEMO = Path(__file__).parent / "data" / "demo_study_runs.csv"  # the single-model runs of `make demo`'s study
U = 32768.0
RUNS = [Measured("standard", 131e3, U, 16.0, 3.764), Measured("standard", 131e3, U, 32.0, 4.227),
        Measured("standard", 80e3, U, 16.0, 3.90), Measured("standard", 131e3, U, 8.0, 3.95)]
C = 6 * 131e3 * U * 32


def _proposal(**kw) -> Proposal:
    base = dict(law="L", recipe="standard", params=126e3, epochs=33.3, loss=3.7429, interval=[3.452, 4.059])
    return Proposal(**(base | kw))


def test_a_contradicted_proposal_gives_way_to_the_best_run_and_names_the_run():
    d = settle(_proposal(), RUNS, U, C, 0.02)  # the demo's case: 131k x 32 epochs measured 4.227
    assert d.source == "measured" and (d.params, d.epochs, d.loss) == (131e3, 16.0, 3.764)
    assert "131k params x 32 epochs" in d.why and "4.2270" in d.why


@pytest.mark.parametrize("kw, words", [({"problem": "a term vanished"}, "fails its own checks (a term vanished)"),
                                        ({"beyond": "beyond the trust region (K 99 > 3 x 32 fitted)"}, "trust region")])
def test_a_law_that_does_not_qualify_leaves_the_best_run(kw, words):
    far = _proposal(params=20e3, epochs=4.0, loss=3.0, interval=[2.9, 3.1], **kw)  # no run near it
    d = settle(far, RUNS, U, C, 0.02)
    assert d.source == "measured" and d.loss == 3.764 and words in d.why
    assert settle(far, [], U, C, 0.02).source == "withheld"  # no run to fall back on: no number


def test_a_gain_within_the_seed_noise_keeps_the_run_and_a_real_one_moves_it():
    def predict(gain):
        return lambda n, k: (3.70 + (gain if (n, k) == (131e3, 16.0) else 0.0), [3.6, 3.8])

    quiet = _proposal(params=20e3, epochs=4.0, loss=3.70, interval=[3.6, 3.8], predict=predict(0.01))
    assert settle(quiet, RUNS, U, C, 0.02).source == "measured"  # promises 0.01 < noise 0.02
    loud = _proposal(params=20e3, epochs=4.0, loss=3.70, interval=[3.6, 3.8], predict=predict(0.05))
    d = settle(loud, RUNS, U, C, 0.02)
    assert d.source == "law" and d.why is None and d.best.loss == 3.764


def test_law_problem_reads_kinds_not_words():
    said = "the E term contributes under 1e-04 of the loss on every row: it has vanished"
    assert law_problem({"caveats": [{"kind": "vanished", "text": said}]}) == "a term vanished"
    assert law_problem({"caveats": [{"kind": "not-identified", "text": said}]}) is None  # a flat parameter
    assert law_problem({"warnings": [said]}) is None  # a file without kinds: nothing is guessed from words
    assert law_problem({"r2": -0.2, "caveats": []}).startswith("R^2 = -0.20")
    assert table_runs([[1e6, 2e7, 1e7, 3.0], [1e6, "x", 1e7, 3.0]]) == []  # damaged rows: no runs at all
    assert table_runs([[1e6, 2e7, 1e7, 3.0]])[0].epochs == pytest.approx(2.0)


def test_the_trust_region_applies_its_factor_to_n_k_c_and_tokens_per_param():
    region = {"params": 1e9, "compute": 1e21, "epochs": 10.0, "tokens_per_param": 100.0, "tokens_per_param_min": 5.0,
              "tokens_per_param_by_params": [[1e8, 10.0, 300.0], [1e9, 20.0, 40.0]]}
    ok = dict(params=1e9, compute=1e21, epochs=10.0, tokens=30e9)
    assert beyond_trust(region, factor=3, **ok) is None
    for key, value, words in (("params", 3.2e9, "N 3.2e+09 > 3 x 1e+09"), ("compute", 3.2e21, "C 3.2e+21 > 3 x 1e+21"),
                              ("epochs", 31.0, "K 31 > 3 x 10")):
        assert words in beyond_trust(region, factor=3, **(ok | {key: value}))
        assert beyond_trust(region, factor=4, **(ok | {key: value})) is None  # a wider factor admits it
    # tokens per param against the runs of >= N/10 params: at 1e9 those are 10-300 (the 1e8 and 1e9 runs)
    assert "tokens per param < 10 / 3" in beyond_trust(region, factor=3, **(ok | {"tokens": 3e9}))
    assert "tokens per param > 3 x 300" in beyond_trust(region, factor=3, **(ok | {"tokens": 1e12}))
    assert beyond_trust(region, factor=3, **(ok | {"tokens": 4e9})) is None  # 4 > 10/3
    # a ratio seen only at small models does not speak for a large one: 0.4 tokens per param at 6e10 params
    assert "0.4 tokens per param" in beyond_trust(region | {"params": 3e10}, factor=3, params=6e10, compute=1e21,
                                                  epochs=1.0, tokens=2.4e10)


def test_the_best_supported_plan_is_inside_the_region_and_the_best_there():
    fit = LawFit("data-constrained", freeze=published_chinchilla()).fit(load_example("datablations"))
    c, u = 9.26e21, 25e9
    free = allocate(fit, c, u)  # 6.8B params, inside the fitted runs (up to 8.67B)
    fit.region_ = fit.region_ | {"params": 3e9}  # a table that stopped at 3B: the free optimum lies beyond it
    s = supported_allocation(fit, c, u, factor=1.0)
    assert free.params > 3e9 * 1.01 and s.params <= 3e9 * 1.01
    assert beyond_trust(fit.region_, s.params, c, 1.0, s.epochs, s.tokens) is None
    from repetita.laws.evaluate import predicted_loss

    n = np.geomspace(1e8, 3e9, 400)  # brute force over the admissible sizes (tokens per param stay inside)
    assert s.loss <= predicted_loss(fit, n, c / (6 * n), u).min() + 1e-6
    assert s.params == pytest.approx(3e9, rel=0.02)  # the loss still falls with N there: the bound binds
    assert supported_allocation(fit, 1e25, u, factor=3.0) is None  # the budget itself lies beyond


def _property(runs: list[Measured], fit, budgets, noise: float) -> int:
    """Every decision settled from these runs is uncontradicted by them; returns how many came from the law."""
    law = 0
    for u in sorted({m.unique_tokens for m in runs}):
        predict = predictor(fit, u)
        for c in budgets:
            a = allocate(fit, c, u)
            iv = predict(a.params, a.epochs)[1]
            for n, k in ((a.params, a.epochs), (a.params * 1.1, a.epochs / 1.1), (a.params / 1.2, a.epochs * 1.2)):
                p = Proposal("fit", "standard", n, k, float(predict(n, k)[0]), iv, law_problem(fit.result()),
                             beyond_trust(fit.region_, n, 6 * n * k * u, 3.0, k, k * u), predict)
                d = settle(p, runs, u, c, noise)
                assert not is_contradicted(d, runs, noise), (d, u, c)
                assert d.source != "measured" or d.best == min(
                    (m for m in runs if abs(m.unique_tokens / u - 1) < 1e-3 and m.compute <= c * (1 + 1e-6)),
                    key=lambda m: m.loss)
                law += d.source == "law"
    return law


def test_no_decision_is_contradicted_by_a_run_of_its_own_table_demo_subsets():
    runs_all = pd.read_csv(DEMO)
    std = runs_all[runs_all["recipe"] == "standard"].copy()
    rng = np.random.default_rng(0)
    for _ in range(4):
        sub = std.iloc[np.sort(rng.choice(len(std), size=int(0.7 * len(std)), replace=False))]
        runs = configurations(sub, sub)
        table = sub.assign(tokens=sub["epochs"] * sub["unique_tokens"])
        fit = LawFit("data-constrained", tie={"beta": "alpha"}).fit(table)
        c = table.eval("6 * params * tokens")
        _property(runs, fit, np.geomspace(c.min(), c.max() * 2, 4), seed_noise(runs)[0])


def test_no_decision_is_contradicted_by_a_run_of_its_own_table_datablations_subsets():
    db = load_example("datablations")
    rng = np.random.default_rng(1)
    law = 0
    for _ in range(3):
        sub = db.iloc[np.sort(rng.choice(len(db), size=120, replace=False))]
        fit = LawFit("data-constrained", freeze=published_chinchilla()).fit(sub)
        runs = table_runs(fit.runs_)
        law += _property(runs, fit, [1e20, 1e21, 9.26e21], seed_noise(runs)[0])
    assert law > 0  # the property is not met by refusing every law


def test_a_single_budget_plan_beyond_the_trust_region_gives_the_best_supported_plan(tmp_path, capsys):
    import json

    from repetita.cli import main
    from repetita.decide.backtest import synthetic_table
    from repetita.io import write_json

    df, _ = synthetic_table(0.002, 0)
    fit = LawFit("data-constrained", freeze=published_chinchilla()).fit(df[df["params"] <= 5e8])  # up to 431M
    path = tmp_path / "small.json"
    write_json(path, fit.result())
    assert main(["plan", "--law-file", str(path), "--compute", "4e20", "--unique-tokens", "1.6e10", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    law = next(iter(out["laws"].values()))
    assert law["params"] > 3 * 4.31e8 and "N 1.67e+09 > 3 x 4.31e+08 fitted" in law["beyond_trust"]
    s = law["supported"]
    assert s["params"] <= 3 * 4.31e8 * 1.01 and s["loss"] > law["loss"]  # bounded, and honest about the cost
    assert out["settled"]["source"] == "law" and out["settled"]["params"] == pytest.approx(s["params"])
    assert out["decision"][0].startswith("decision: this law's plan lies beyond the runs")
    assert "best supported: train N = 1.29" in out["decision"][0]
    # the runs it carries: the best one at this U within C is named beside the decision
    assert "best run measured at this U within C: 431M params x 8 epochs" in out["decision"][1]
    assert main(["plan", "--law-file", str(path), "--compute", "4e20", "--unique-tokens", "1.6e10",
                 "--trust", "0.9"]) == 2
    assert "at least 1" in capsys.readouterr().err
