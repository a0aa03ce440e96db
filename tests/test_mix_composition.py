import numpy as np
import pytest

from repetita.data_mix import composition as cp
from repetita.errors import UserError


def test_distinct_sets_are_distinct_and_follow_the_power_law():
    rng = np.random.default_rng(0)
    probs = cp.skill_probs(20, 1.5)
    sets = cp.sample_sets(rng, probs, 20000, 1, "distinct")
    freq = np.bincount(sets.ravel(), minlength=20) / 20000
    assert freq == pytest.approx(probs, abs=0.01)
    sets = cp.sample_sets(rng, probs, 5000, 4, "distinct")
    assert all(len(set(row)) == 4 for row in sets)
    counts = np.bincount(sets.ravel(), minlength=20)
    assert counts[0] > counts[5] > counts[19]


def _pair_chi_square(sets: np.ndarray, probs: np.ndarray) -> float:
    """p-value of the (position 1, position 2) pair counts against independent draws from ``probs``."""
    from scipy.stats import chisquare

    d = probs.size
    observed = np.bincount(sets[:, 0] * d + sets[:, 1], minlength=d * d)
    expected = np.outer(probs, probs).ravel() * len(sets)
    return float(chisquare(observed, expected).pvalue)


def test_independent_positions_follow_the_product_distribution():
    """With replacement, the pair of positions is distributed as pi x pi (chi-square on 200k draws); the
    distinct sampler, which never repeats a skill, fails the same test by a wide margin."""
    probs = cp.skill_probs(8, 1.0)
    sets = cp.sample_sets(np.random.default_rng(1), probs, 200_000, 3)
    assert sets.shape == (200_000, 3) and sets.min() == 0 and sets.max() == 7
    assert _pair_chi_square(sets, probs) > 1e-3
    assert (sets[:, 0] == sets[:, 1]).mean() == pytest.approx((probs ** 2).sum(), abs=0.005)  # repeats occur
    distinct = cp.sample_sets(np.random.default_rng(1), probs, 200_000, 3, "distinct")
    assert _pair_chi_square(distinct, probs) < 1e-100
    # the vectorised sampler of the size sweep draws the same distribution
    out = cp.regime(8, 2, [(1.0, 0.1)], 64, evals=2, test_size=200_000)
    assert out["sampling"] == "independent"


def test_gradient_matches_finite_differences_with_repeated_skills():
    rng = np.random.default_rng(0)
    w = rng.standard_normal(6)
    sets = np.array([[0, 0, 3], [1, 2, 2], [5, 5, 5], [4, 1, 0]])  # repeats, and one skill three times
    y = np.array([1.0, -1.0, 1.0, -1.0])
    g = cp.gradient(w, sets, y)
    eps = 1e-6
    fd = np.array([(cp.loss(w + eps * e, sets, y) - cp.loss(w - eps * e, sets, y)) / (2 * eps) for e in np.eye(6)])
    assert g == pytest.approx(fd, rel=1e-6, abs=1e-9)
    assert g[0] != 0 and np.all(g[[1, 2, 3, 4, 5]] != 0)


def test_uniform_stays_on_the_saddle_where_the_theorem_says_it_must():
    """d = 256, k = 6: uniform skills need about d^(k/2) = 1.7e7 samples; with 50,000 the test loss stays at
    the saddle's 0.5 at every learning rate tried (fixed seed), none of them diverging. (The same trainer
    solves k = 2 in a few thousand samples: test_pairwise_composition_is_learned_and_deterministic.)"""
    out = cp.regime(256, 6, [(0.0, lr) for lr in (4.0, 16.0, 32.0)], 50_000, seed=0, evals=6)
    for r in out["runs"]:
        assert all(x is not None and abs(x - 0.5) < 0.01 for x in r["loss"]), r


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


@pytest.mark.parametrize("kw", [{"k": 0}, {"k": 40, "sampling": "distinct"}, {"lr": 0}, {"exponent": -1},
                                {"samples": 10, "batch": 64}, {"sampling": "sorted"}])
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
                           (["--sizes", "2:3", "--sampling", "distinct"], "k = 3 distinct skills need k <= dims"),
                           (["--runs=-1:1"], "exponent >= 0"), (["--samples", "10"], "below one batch of 64"),
                           (["--out", "/proc/regime"], "--out")]:
        assert main(["mix", "regime", "--samples", "640", *extra] if "--samples" not in extra
                    else ["mix", "regime", *extra]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and message in err, err
