"""Planning functions: reuse rate, epoch worth, saturation, data efficiency, two-step asymptote."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from repetita.decide import fixed_size
from repetita.errors import UserError
from repetita.laws import worth as plan
from repetita.laws.asymptote import two_step_asymptote


def test_reuse_rate_linear_then_plateau():
    k = np.array([0.5, 1, 2, 3, 1e6])
    e = plan.reuse_rate(k, 15.0)
    assert e[0] == 0.5 and e[1] == 1.0
    assert e[2] == pytest.approx(2.0, rel=0.04)  # about K for few epochs
    assert e[-1] == pytest.approx(16.0)  # plateau 1 + R*
    assert np.all(np.diff(e) > 0)


def test_next_epoch_worth_is_the_difference_and_decays():
    k = np.arange(1, 60)
    worth = plan.next_epoch_worth(k, 10.0)
    # worked by hand from D' = U (1 + R* (1 - e^(-R/R*))): the first repeat is worth R* (1 - e^(-1/R*)) of a
    # fresh epoch, and each further one e^(-1/R*) times the one before (a geometric decay)
    assert worth[0] == pytest.approx(10.0 * (1 - np.exp(-0.1)), rel=1e-12) and worth[0] < 1
    np.testing.assert_allclose(worth[1:] / worth[:-1], np.exp(-0.1), rtol=1e-9)


@pytest.mark.parametrize("r", [0.3, 2.0, 15.39, 100.0])
@pytest.mark.parametrize("f", [0.05, 0.5, 0.9])
def test_epochs_until_worth_below_matches_brute_force(r, f):
    k = np.arange(1, 5000)
    worth = plan.next_epoch_worth(k, r)
    expected = k[np.argmax(worth < f)]
    assert plan.epochs_until_worth_below(f, r) == expected


def test_epochs_until_worth_below_rejects_bad_fraction():
    with pytest.raises(UserError, match="fraction"):
        plan.epochs_until_worth_below(1.5, 10.0)


def test_tokens_from_loss_inverts_the_data_term():
    d = np.array([1e9, 1e10, 1e11])
    e_rest, b, beta = 1.9, 1500.0, 0.35
    loss = e_rest + b / d**beta
    np.testing.assert_allclose(plan.tokens_from_loss(loss, e_rest, b, beta), d, rtol=1e-10)
    assert np.isinf(plan.tokens_from_loss(1.8, e_rest, b, beta))  # below the asymptote
    eff = plan.data_efficiency(loss[1], loss[0], e_rest, b, beta)
    assert eff == pytest.approx(10.0)


def test_rd_star_for_reuse_law_grows_with_log_u():
    rec = {"law": "reuse", "params": {"r0": -10.0, "r1": 1.5}}
    u = np.array([1e8, 1e9, 1e10])
    rd = plan.rd_star_for(rec, u)
    np.testing.assert_allclose(np.diff(rd), 1.5 * np.log(10))
    assert plan.rd_star_for({"law": "reuse", "params": {"r0": -100.0, "r1": 0.0}}, 1e9) > 0  # floored


def test_plan_table_from_a_fit_record():
    from repetita.examples import load_example
    from repetita.laws.fit import LawFit
    from repetita.laws.record import published_chinchilla

    rec = LawFit("data-constrained", freeze=published_chinchilla()).fit(load_example("datablations")).result()
    table, s = fixed_size.plan_table(rec, 2.8e9, 4e9, [1, 2, 4, 8, 16, 64])
    assert list(table["epochs"]) == [1, 2, 4, 8, 16, 64]
    assert np.all(np.diff(table["loss"]) < 0)  # more epochs still help at this size (paper Fig. 3)
    # the plan's losses are the estimator's predictions for the same runs (two code paths, one law)
    est = LawFit.from_result(rec)
    runs = pd.DataFrame({"params": 2.8e9, "unique_tokens": 4e9, "tokens": 4e9 * table["epochs"].to_numpy()})
    np.testing.assert_allclose(table["loss"], est.predict(runs), rtol=1e-10)
    with pytest.raises(UserError, match="epochs"):
        fixed_size.plan_table(rec, 2.8e9, 4e9, [0.5])
    with pytest.raises(UserError, match="no notion of repeated data"):
        plan.rd_star_for({"law": "multipower", "params": {}}, 1e9)


def test_two_step_asymptote_recovers_the_outer_limit():
    rows = []
    for n in [1e7, 3e7, 1e8, 3e8, 1e9]:
        e_n = 2.0 + 50.0 * n**-0.25  # per-size asymptote, itself a power law in N
        for k in [1, 2, 4, 8, 16, 32]:
            rows.append({"params": n, "members": k, "loss": e_n + 0.3 * k**-0.8})
    out = two_step_asymptote(pd.DataFrame(rows), "members", "params")
    assert out["asymptote"] == pytest.approx(2.0, rel=0.02)
    for g in out["groups"]:
        assert g["E"] == pytest.approx(2.0 + 50.0 * g["params"] ** -0.25, rel=0.01)
    with pytest.raises(UserError, match="distinct members"):
        two_step_asymptote(pd.DataFrame(rows[:2] + rows[6:]), "members", "params")


def test_a_fit_on_one_epoch_runs_makes_no_repetition_decision(tmp_path, capsys):
    """Fitted on the 29 one-epoch runs of datablations, the data-constrained law has R_D* at its start:
    a plan that repeats the corpus is withheld in one sentence, never given as a number."""
    from repetita.cli import main
    from repetita.examples import load_example

    one = load_example("datablations").rename(columns={"val_loss": "loss"})
    one = one[one["epochs"] <= 1.0]
    one.to_csv(tmp_path / "one.csv", index=False)
    fit = tmp_path / "one.json"
    assert main(["fit", str(tmp_path / "one.csv"), "--law", "data-constrained", "--out", str(fit)]) == 0
    capsys.readouterr()
    assert main(["plan", "--law-file", str(fit), "--compute", "9.26e21", "--unique-tokens", "25e9"]) == 0
    out = capsys.readouterr().out
    first = out.splitlines()[0]
    assert first.startswith("decision withheld: the law was fitted on one-epoch runs only") and "N* =" not in first
    # a budget the corpus covers in one epoch is still planned
    assert main(["plan", "--law-file", str(fit), "--compute", "1e18", "--unique-tokens", "25e9"]) == 0
    assert capsys.readouterr().out.startswith("decision: train N* = ")
