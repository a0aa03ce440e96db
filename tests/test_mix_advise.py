"""``repetita mix advise``: the exponent of a skill mix, the reweighting toward a power law, and its warnings."""

from __future__ import annotations

import json

import numpy as np
import pytest

from repetita.cli import main
from repetita.data_mix.skill_mix import CAVEAT, advise, fit_exponent, rank_shares


def test_fit_recovers_the_exponent_of_exact_and_sampled_power_laws():
    exact = 1e6 * rank_shares(200, 1.2)
    a, (lo, hi), r2 = fit_exponent(exact)
    assert a == pytest.approx(1.2, abs=1e-4) and lo < 1.2 < hi and r2 == pytest.approx(1.0)
    sample = np.random.default_rng(0).multinomial(20_000, rank_shares(50, 0.8)).astype(float)
    order = np.argsort(-sample, kind="stable")
    a, (lo, hi), _ = fit_exponent(sample[order])
    assert lo < 0.8 < hi and hi - lo < 0.1


def test_a_near_uniform_mix_is_reweighted_to_the_target_shares():
    counts = [980, 1000, 990, 1005, 1010, 995]
    adv = advise(counts, ["a", "b", "c", "d", "e", "f"], target=1.0)
    assert adv.reweight and adv.target_exponent == 1.0 and adv.exponent < 0.5
    assert adv.skills[0] == "e" and adv.skills[-1] == "a"  # ranked by count
    # weighting each skill's data by its weight gives exactly the target shares
    assert adv.observed * adv.weights == pytest.approx(rank_shares(6, 1.0))
    assert adv.weights[0] > 1 > adv.weights[-1]
    assert adv.to_dict()["caveat"] == CAVEAT


def test_a_power_law_mix_is_kept_and_the_bounds_are_compared():
    adv = advise(1e6 * rank_shares(64, 1.0), k=3, budget=1e5)
    assert not adv.reweight and adv.weights == pytest.approx(np.ones(64))
    b = adv.bounds()
    assert b["uniform"] == pytest.approx(64 ** 1.5) and b["power_law_target"] == pytest.approx(64.0 ** 2, rel=1e-3)
    # a = 1 >= k/4: the bound promises no gain over uniform, and says so
    assert any("not below uniform's" in w for w in adv.warnings)


def test_unseen_skills_and_a_small_budget_are_warned():
    adv = advise([500, 480, 470, 0], budget=2, target=2.0)
    assert adv.target[-1] == 0 and adv.target.sum() == pytest.approx(1.0) and adv.weights[-1] == 0
    assert any("count 0" in w for w in adv.warnings)
    assert any("not seen at this budget" in w for w in adv.warnings)


@pytest.mark.parametrize("argv,message", [
    (["--counts", "5"], "at least 2 skills"),
    (["--counts", "1,nan"], "finite and >= 0"),
    (["--counts", "3,-1"], "finite and >= 0"),
    (["--counts", "0,0"], "every skill count is 0"),
    (["--counts", "3,2", "--target", "0"], "--target exponent must be > 0"),
    (["--counts", "3,2", "--out", "/proc/x/w.csv"], "--out"),
    (["--counts", "3,2", "--out", "w.txt"], "the suffix must be one of .csv, .parquet"),
])
def test_bad_input_is_one_line_exit_2(capsys, argv, message):
    assert main(["mix", "advise", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err


def test_cli_reads_a_csv_and_writes_weights(tmp_path, capsys):
    table = tmp_path / "mix.csv"
    table.write_text("domain,tokens\nweb,1000\nbooks,990\ncode,1005\nmath,980\n")
    out = tmp_path / "weights.csv"
    assert main(["mix", "advise", "--counts", str(table), "--k", "3", "--out", str(out), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["reweight"] and [r["skill"] for r in res["table"]] == ["code", "web", "books", "math"]
    written = out.read_text().splitlines()
    assert written[0] == "skill,count,observed_share,target_share,weight" and len(written) == 5
    bad = tmp_path / "bad.csv"
    bad.write_text("skill,count\nmath,100\nlaw,x\n")
    assert main(["mix", "advise", "--counts", str(bad)]) == 2
    assert "row 3: not a finite number" in capsys.readouterr().err
