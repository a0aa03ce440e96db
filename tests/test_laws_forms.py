"""Law forms: shapes, special cases, gradients, and recovery of known parameters from noisy data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from repetita.laws import forms
from repetita.laws.data import design, runs_frame
from repetita.laws.fit import FitSpec, LawFit, _Problem, prepare
from repetita.laws.law import LAWS

CHIN = {"a": 6.0, "b": 7.0, "e": 0.5, "alpha": 0.34, "beta": 0.37}


def _theta(law, values):
    return np.array([[values[p] for p in LAWS[law].params]])


def _runs(seed=0, n=120, repeat=True):
    rng = np.random.default_rng(seed)
    params = 10 ** rng.uniform(7, 9.5, n)
    unique = 10 ** rng.uniform(8, 10.5, n)
    epochs = 10 ** rng.uniform(0, 2.3, n) if repeat else np.ones(n)
    return pd.DataFrame({"params": params, "unique_tokens": unique, "tokens": unique * epochs})


def _simulate(law, truth, df, noise=0.002, seed=1):
    X = design(runs_frame(df.assign(loss=1.0), LAWS[law].columns))
    loss = np.exp(LAWS[law].func(_theta(law, truth), X)[0])
    rng = np.random.default_rng(seed)
    return df.assign(loss=loss * np.exp(noise * rng.standard_normal(len(df))))


def test_batch_shape_and_lse_matches_direct_sum():
    df = _runs(n=7)
    X = design(runs_frame(df.assign(loss=1.0), ("params", "tokens")))
    theta = np.array([[6.0, 7.0, 0.5, 0.3, 0.3], [5.0, 8.0, 0.2, 0.4, 0.35]])
    out = forms.chinchilla(theta, X)
    assert out.shape == (2, 7)
    a, b, e, al, be = theta[1]
    direct = np.log(np.exp(e) + np.exp(a) / df["params"] ** al + np.exp(b) / df["tokens"] ** be)
    np.testing.assert_allclose(out[1], direct, rtol=1e-12)


def test_data_constrained_equals_chinchilla_for_single_epoch_compute_optimal_models():
    df = _runs(repeat=False)
    # models no larger than compute-optimal for their data: U_N = N and R_N = 0
    n_opt = forms.compute_optimal_params(
        df["unique_tokens"].to_numpy(), CHIN["a"], CHIN["b"], CHIN["alpha"], CHIN["beta"]
    )
    df = df.assign(params=np.minimum(df["params"], 0.5 * n_opt))
    X = design(runs_frame(df.assign(loss=1.0), ("params", "tokens", "unique_tokens")))
    dc = forms.data_constrained(_theta("data-constrained", CHIN | {"rd_star": 15.0, "rn_star": 5.0}), X)
    ch = forms.chinchilla(_theta("chinchilla", CHIN), X)
    np.testing.assert_allclose(dc, ch, rtol=1e-12)


def test_effective_data_limits():
    u = np.array([1e9])
    # one epoch: nothing repeated; R_D* -> inf: repeated tokens count fully; many epochs: plateau U(1+R*)
    assert forms.effective_data(u, u, 15.0)[0] == pytest.approx(1e9)
    assert forms.effective_data(u, 4 * u, 1e9)[0] == pytest.approx(4e9, rel=1e-6)
    assert forms.effective_data(u, 1e6 * u, 15.0)[0] == pytest.approx(16e9)


def test_reuse_law_with_zero_slope_is_the_constant_law():
    df = _runs()
    X = design(runs_frame(df.assign(loss=1.0), ("params", "tokens", "unique_tokens")))
    dc = forms.data_constrained(_theta("data-constrained", CHIN | {"rd_star": 12.0, "rn_star": 5.0}), X)
    re = LAWS["reuse"].func(_theta("reuse", CHIN | {"r0": 12.0, "r1": 0.0, "rn_star": 5.0}), X)
    np.testing.assert_allclose(dc, re, rtol=1e-12)


@pytest.mark.parametrize("law", ["chinchilla", "data-constrained", "reuse", "reuse-power"])
def test_complex_step_gradient_matches_finite_differences(law):
    df = _simulate("chinchilla", CHIN, _runs(n=40))
    truth = CHIN | {"rd_star": 14.0, "rn_star": 4.0, "r0": -5.0, "r1": 1.0}
    if law == "reuse-power":
        truth |= {"r0": 3.0, "r1": 0.1}
    spec = FitSpec(law)
    X, y, _ = prepare(spec, df)
    prob = _Problem(spec, X, y, None)
    prob.delta = 1.0  # quadratic region everywhere: a smooth objective for central differences
    z = np.array([truth[p] for p in prob.free])
    f, g = prob.value_and_grad(z)
    eps = 1e-6 * np.maximum(1.0, np.abs(z))
    fd = np.array(
        [
            (prob.value_and_grad(z + e)[0] - prob.value_and_grad(z - e)[0]) / (2 * e[i])
            for i, e in enumerate(np.diag(eps))
        ]
    )
    np.testing.assert_allclose(g, fd, rtol=1e-5, atol=1e-9 * max(1.0, f))


def test_multipower_closed_form_jacobian_matches_complex_step(anchors_mpl):
    spec = FitSpec("multipower")
    X, y, _ = prepare(spec, anchors_mpl)
    prob = _Problem(spec, X, y, None)
    theta = np.array([2.8, 0.6, 0.45, 450.0, 0.7, 0.6, 0.5])
    logp, jac = forms.multipower_grad(theta, X)
    batch = theta[None, :] + 1j * 1e-20 * np.eye(7)
    cs = forms.multipower(np.vstack([theta[None, :].astype(complex), batch]), X)
    np.testing.assert_allclose(logp, cs[0].real, rtol=1e-13)
    np.testing.assert_allclose(jac, cs[1:].imag / 1e-20, rtol=1e-9, atol=1e-14)
    # the objective's gradient agrees with a central finite difference along a mixed direction
    f, g = prob.value_and_grad(theta)
    v = np.linspace(-1.0, 1.0, 7) * np.array([1e-3, 1e-3, 1e-3, 1.0, 1e-3, 1e-3, 1e-3])
    h = 1e-4
    fd = (prob.value_and_grad(theta + h * v)[0] - prob.value_and_grad(theta - h * v)[0]) / (2 * h)
    assert f > 0 and g @ v == pytest.approx(fd, rel=1e-5)


@pytest.fixture
def anchors_mpl():
    from repetita.examples import load_example

    df = load_example("multipowerlaw:100M")
    return df[df["curve"].isin(["cosine_24000", "constant_24000", "wsdcon_9"])]


def test_recover_chinchilla():
    truth = {"a": 6.2, "b": 7.6, "e": 0.6, "alpha": 0.34, "beta": 0.28}
    df = _simulate("chinchilla", truth, _runs(n=150, repeat=False))
    fit = LawFit("chinchilla").fit(df)
    for k, v in truth.items():
        assert fit.params_[k] == pytest.approx(v, rel=0.05, abs=0.03), k


@pytest.mark.parametrize(
    "law,truth",
    [
        ("data-constrained", {"rd_star": 15.0, "rn_star": 5.0}),
        ("reuse", {"r0": -10.0, "r1": 1.2, "rn_star": 5.0}),
        ("reuse-power", {"r0": 0.8, "r1": 0.15, "rn_star": 5.0}),
    ],
)
def test_recover_repetition_parameters(law, truth):
    # Chinchilla part frozen at the truth, as in the published protocol.
    df = _simulate(law, CHIN | truth, _runs(n=200), noise=0.001)
    fit = LawFit(law, freeze=CHIN).fit(df)
    for k, v in truth.items():
        assert fit.params_[k] == pytest.approx(v, rel=0.1, abs=0.05), k
    assert fit.r2_ > 0.99


def test_recover_power_law_and_natural_freeze():
    x = np.geomspace(1, 1000, 25)
    rng = np.random.default_rng(3)
    loss = (1.5 + 20.0 * x**-0.3) * np.exp(0.001 * rng.standard_normal(x.size))
    df = pd.DataFrame({"members": x, "loss": loss})
    fit = LawFit("power", axis="members").fit(df)
    nat = fit.natural_params()
    assert nat["E"] == pytest.approx(1.5, rel=0.05)
    assert nat["A"] == pytest.approx(20.0, rel=0.1)
    assert nat["alpha"] == pytest.approx(0.3, rel=0.05)
    frozen = LawFit("power", axis="members", freeze={"E": 1.5}).fit(df)
    assert frozen.params_["e"] == pytest.approx(np.log(1.5))
    assert "e" not in frozen.result()["free"]


def test_recover_multipower_from_synthetic_curves(anchors_mpl):
    truth = np.array([2.7, 0.55, 0.45, 480.0, 0.8, 0.6, 0.5])
    X, _, order = prepare(FitSpec("multipower"), anchors_mpl)
    df = anchors_mpl.reset_index(drop=True).copy()
    loss = np.empty(len(df))
    loss[order] = np.exp(forms.multipower(truth[None, :], X)[0])
    df["loss"] = loss * np.exp(0.0005 * np.random.default_rng(0).standard_normal(len(df)))
    fit = LawFit("multipower").fit(df)
    got = np.array([fit.params_[p] for p in LAWS["multipower"].params])
    # The loss-level terms are well identified; C, beta, gamma trade off against B, so check the curve too.
    np.testing.assert_allclose(got[:3], truth[:3], rtol=0.05)
    assert fit.r2_ > 0.999


def test_tie_makes_followers_equal():
    df = _simulate(
        "chinchilla", {"a": 6.2, "b": 6.4, "e": 0.6, "alpha": 0.33, "beta": 0.33}, _runs(n=120, repeat=False)
    )
    fit = LawFit("chinchilla", tie={"beta": "alpha"}).fit(df)
    assert fit.params_["alpha"] == fit.params_["beta"]
    assert fit.params_["alpha"] == pytest.approx(0.33, rel=0.05)


def test_chinchilla_closed_form_jacobian_matches_complex_step():
    from repetita.laws.forms import chinchilla, chinchilla_jac

    rng = np.random.default_rng(0)
    X = {"log_params": np.log(np.geomspace(1e7, 1e10, 9)), "log_tokens": np.log(np.geomspace(1e8, 1e11, 9))}
    theta = np.column_stack([rng.uniform(4, 8, 3), rng.uniform(5, 9, 3), rng.uniform(0.3, 0.9, 3),
                             rng.uniform(0.2, 0.5, 3), rng.uniform(0.2, 0.5, 3)])
    logp, jac = chinchilla_jac(theta, X)
    assert np.allclose(logp, chinchilla(theta, X), rtol=0, atol=1e-13)
    for j in range(5):
        step = theta.astype(complex)
        step[:, j] += 1e-20j
        assert np.allclose(jac[:, j], chinchilla(step, X).imag / 1e-20, rtol=1e-10, atol=1e-13)
