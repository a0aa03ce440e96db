import numpy as np
import pytest

from repetita.data_mix import composition as cp
from repetita.errors import UserError


def test_sample_sets_are_distinct_and_follow_the_power_law():
    rng = np.random.default_rng(0)
    probs = cp.skill_probs(20, 1.5)
    sets = cp.sample_sets(rng, probs, 20000, 1)
    freq = np.bincount(sets.ravel(), minlength=20) / 20000
    assert freq == pytest.approx(probs, abs=0.01)
    sets = cp.sample_sets(rng, probs, 5000, 4)
    assert all(len(set(row)) == 4 for row in sets)
    counts = np.bincount(sets.ravel(), minlength=20)
    assert counts[0] > counts[5] > counts[19]


def test_pairwise_composition_is_learned_and_deterministic():
    cfg = cp.CompositionConfig(dims=32, k=2, lr=1.0, init=0.1, samples=40_000, evals=6, seed=0)
    n1, l1 = cp.train(cfg, 0.0)
    n2, l2 = cp.train(cfg, 0.0)
    assert np.array_equal(l1, l2)
    assert l1[0] > 0.4 and l1[-1] < 0.01  # from chance (0.5) to solved
    assert n1[-1] == 40_000 - 40_000 % cfg.batch


def test_compare_reports_both_curves():
    out = cp.compare(cp.CompositionConfig(dims=16, k=2, samples=5_000, evals=4, lr=1.0, init=0.1))
    assert len(out["uniform"]) == len(out["power"]) == len(out["samples"])
    assert out["config"]["exponent"] == 1.0


@pytest.mark.parametrize("kw", [{"k": 0}, {"k": 40}, {"lr": 0}, {"exponent": -1}, {"samples": 10, "batch": 64}])
def test_bad_config(kw):
    with pytest.raises(UserError):
        cp.CompositionConfig(**kw)


def test_regime_runs_learn_the_same_task_as_the_single_run_trainer():
    # The k = 2, d = 32 case the loop above solves: every vectorised run solves it too, and a
    # diverging learning rate is isolated to its own row.
    out = cp.regime(32, 2, [(0.0, 1.0), (0.0, 1.0), (1.0, 1.0), (0.0, 500.0)], 40_000, seed=0, init=0.1, evals=6)
    losses = [r["loss"] for r in out["runs"]]
    for curve in losses[:3]:
        assert curve[0] > 0.4 and curve[-1] < 0.01
    assert losses[0] != losses[1]  # same settings, independent sample streams
    assert losses[3][-1] is None  # diverged: NaN from then on, reported as None
    best = cp.best_per_exponent(out)
    assert best[0.0][-1] == min(losses[0][-1], losses[1][-1])
    summary = cp.regime_summary([out], level=0.05)
    assert [(s["exponent"], s["reached"]) for s in summary] == [(0.0, 1), (1.0, 1)]
    assert summary[0]["median_samples"] <= 40_000 and summary[0]["d_to_k_over_2"] == 32.0


def test_regime_cli_bad_input_is_one_line(capsys):
    from repetita.cli import main

    for extra, message in [(["--sizes", "256x4"], "--sizes"), (["--runs", "1"], "--runs"),
                           (["--sizes", "2:3"], "k <= dims"), (["--out", "/proc/regime"], "--out")]:
        assert main(["mix", "regime", "--samples", "640", *extra]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and message in err, err
