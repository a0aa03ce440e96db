import numpy as np
import pytest

from repetita.errors import UserError
from repetita.theory.simulate import SimConfig, reference_sgd, sgd_epoch_compiled, simulate, simulate_groups
from repetita.theory.spectra import Problem


def test_compiled_epoch_matches_numpy_reference():
    rng = np.random.default_rng(0)
    reps, N, d, etas = 3, 40, 7, np.array([0.01, 0.05, 0.1])
    X = rng.standard_normal((reps, N, d))
    xi = rng.standard_normal((reps, N))
    orders = np.stack([rng.permutation(N) for _ in range(reps)])
    E0 = np.repeat(rng.standard_normal((reps, 1, d)), etas.size, axis=1)
    ref = reference_sgd(X, xi, orders, E0, etas)
    for r in range(reps):
        got = sgd_epoch_compiled(X[r], xi[r], orders[r], E0[r].T.copy(), etas)  # kernel layout: (d, n_eta)
        np.testing.assert_allclose(got.T, ref[r], rtol=1e-10, atol=1e-12)


def test_reproducible_and_thread_count_independent():
    p = Problem.from_strings("well:0.2", d=5, sigma=0.5)
    cfg = SimConfig(N=50, epochs=(1, 3), etas=(0.02, 0.1), replicates=6, seed=4)
    a = simulate(p, cfg, threads=1)
    b = simulate(p, cfg, threads=2)
    np.testing.assert_array_equal(a, b)
    c = simulate(p, SimConfig(N=50, epochs=(1, 3), etas=(0.02, 0.1), replicates=6, seed=5), threads=1)
    assert not np.allclose(a, c)
    assert a.shape == (6, 2, 2) and np.all(np.isfinite(a))


def test_orders_differ_only_after_the_first_epoch():
    p = Problem.from_strings("flat", d=4, sigma=0.5)
    res = {o: simulate(p, SimConfig(N=30, epochs=(1, 2), etas=(0.05,), replicates=4, order=o, seed=1), threads=1)
           for o in ("reshuffle", "fixed", "replacement")}
    np.testing.assert_array_equal(res["reshuffle"][:, :, 0], res["fixed"][:, :, 0])  # same first permutation
    assert not np.allclose(res["reshuffle"][:, :, 1], res["fixed"][:, :, 1])
    assert not np.allclose(res["replacement"][:, :, 0], res["reshuffle"][:, :, 0])


def test_many_epochs_approach_least_squares_risk():
    # Small-eta SGD run to convergence on a fixed sample lands on the least-squares fit of that sample.
    p = Problem.from_strings("flat", d=3, sigma=1.0)
    risks = simulate(p, SimConfig(N=40, epochs=(400,), etas=(0.01,), replicates=400, seed=2), threads=1)
    ols = 0.5 * 3 / (40 - 3 - 1)  # E risk of OLS with Gaussian design: sigma^2 d / (2 (N - d - 1))
    assert risks.mean() == pytest.approx(ols, rel=0.15)


def test_divergence_is_inf_not_nan():
    p = Problem.from_strings("flat", d=4)
    out = simulate(p, SimConfig(N=20, epochs=(1, 5), etas=(0.05, 3.0), replicates=3, seed=0), threads=1)
    assert np.all(np.isfinite(out[:, 0])) and np.all(np.isinf(out[:, 1, 1]))


def test_groups_share_datasets():
    p = Problem.from_strings("flat", d=3)
    cfg = SimConfig(N=25, epochs=(1,), etas=(1.0,), replicates=3, seed=9)
    out = simulate_groups(p, cfg, [((0.05, 0.1), (1,)), ((0.05, 0.2), (1, 2))], threads=1)
    assert out.shape == (3, 2, 2, 2) and np.isnan(out[:, 0, :, 1]).all()
    assert np.all(np.isfinite(out[:, 1]))


@pytest.mark.parametrize("kw,msg", [({"N": 0}, "N must"), ({"epochs": (2, 1)}, "increasing"), ({"etas": (-1.0,)}, "learning"),
                                    ({"order": "sorted"}, "order"), ({"replicates": 0}, "replicates")])
def test_config_validation(kw, msg):
    base = {"N": 10, "epochs": (1,), "etas": (0.1,)}
    with pytest.raises(UserError, match=msg):
        SimConfig(**{**base, **kw})


@pytest.mark.parametrize("order", ["reshuffle", "fixed", "replacement"])
def test_control_variate_mean_is_exact(order):
    from repetita.theory.simulate import linear_control_mean

    p = Problem.from_strings("well:0.1", d=5, sigma=0.5)
    cfg = SimConfig(N=60, epochs=(1, 4), etas=(0.01, 0.08), replicates=3000, order=order, seed=2)
    risks, lin = simulate(p, cfg, threads=1, with_control=True)
    exact = linear_control_mean(p, cfg.etas, cfg.N, cfg.epochs, order)
    se = lin.std(axis=0, ddof=1) / np.sqrt(cfg.replicates)
    assert np.all(np.abs(lin.mean(axis=0) - exact) < 4 * se)
    assert np.all(se < 0.05 * exact)
    # the control variate is useful: strongly correlated with the SGD risk
    assert np.corrcoef(risks[:, 1, 1], lin[:, 1, 1])[0, 1] > 0.7
