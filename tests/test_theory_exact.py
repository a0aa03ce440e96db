import numpy as np
import pytest
from scipy.optimize import minimize_scalar

from repetita.errors import UserError
from repetita.theory.exact import (
    OnePassCurve,
    check_eta,
    eta_max,
    one_pass_risk,
    optimal_one_pass,
    risk_by_recursion,
    second_moment_map,
)
from repetita.theory.simulate import SimConfig, simulate
from repetita.theory.spectra import Problem

CASES = [("flat", "gaussian"), ("power:1.5", "gaussian"), ("well:0.1", "rademacher"), ("well:0.2", "uniform")]


@pytest.mark.parametrize("spectrum,design", CASES)
def test_closed_form_matches_recursion(spectrum, design):
    p = Problem.from_strings(spectrum, d=12, sigma=0.7, wstar="random:3", design=design)
    for frac in (0.05, 0.5, 0.95):
        eta = frac * eta_max(p)
        ref = risk_by_recursion(p, eta, 300)
        got = one_pass_risk(p, eta, np.arange(301))
        np.testing.assert_allclose(got, ref, rtol=1e-9)


@pytest.mark.parametrize("spectrum,design", CASES)
def test_eta_max_is_the_stability_edge(spectrum, design):
    p = Problem.from_strings(spectrum, d=15, design=design)
    top = eta_max(p)
    below, _ = second_moment_map(p, top * (1 - 1e-6))
    above, _ = second_moment_map(p, top * (1 + 1e-6))
    assert np.abs(np.linalg.eigvalsh(below)).max() < 1
    assert np.abs(np.linalg.eigvalsh(above)).max() > 1
    if design == "gaussian":  # the simple sufficient bound of the docstring
        assert 2 / (p.lam.sum() + 2 * p.lam.max()) <= top


def test_check_eta_rejects_unstable_and_non_positive():
    p = Problem.from_strings("flat", d=4)
    with pytest.raises(UserError, match="stable range"):
        check_eta(p, 1.01 * eta_max(p))
    with pytest.raises(UserError, match="positive"):
        check_eta(p, 0.0)
    with pytest.raises(UserError, match="stable range"):
        one_pass_risk(p, 10.0, 5)


@pytest.mark.parametrize(
    "spectrum,design,d,eta_frac,n",
    [("flat", "gaussian", 5, 0.3, 60), ("power:1.0", "gaussian", 8, 0.6, 150), ("well:0.2", "rademacher", 4, 0.4, 100),
     ("well:0.5", "uniform", 6, 0.2, 80)],
)
def test_exact_one_pass_agrees_with_monte_carlo(spectrum, design, d, eta_frac, n):
    p = Problem.from_strings(spectrum, d=d, sigma=0.5, wstar="random:1", design=design)
    eta = eta_frac * eta_max(p)
    risks = simulate(p, SimConfig(N=n, epochs=(1,), etas=(eta,), replicates=3000, seed=11), threads=1)[:, 0, 0]
    exact = float(one_pass_risk(p, eta, n))
    se = risks.std(ddof=1) / np.sqrt(risks.size)
    assert abs(risks.mean() - exact) < 4 * se, (risks.mean(), exact, se)
    assert se < 0.05 * exact  # the comparison is sharp enough to catch a wrong formula


def test_optimal_one_pass_matches_scalar_search():
    p = Problem.from_strings("well:0.05", d=10, sigma=0.3)
    ns = np.array([3.0, 100.0, 1e4, 1e6])
    e, r = optimal_one_pass(p, ns)
    for n, e0, r0 in zip(ns, e, r, strict=True):
        top = np.log(eta_max(p) * (1 - 1e-9))
        res = minimize_scalar(lambda x, n=n: np.log(one_pass_risk(p, np.exp(x), n)),
                              bounds=(np.log(e0) - 0.1, min(np.log(e0) + 0.1, top)), method="bounded",
                              options={"xatol": 1e-9})
        assert r0 == pytest.approx(np.exp(res.fun), rel=2e-4)
        assert e0 == pytest.approx(np.exp(res.x), rel=0.05)


def test_one_pass_curve_is_monotone_and_invertible():
    p = Problem.from_strings("power:1.2", d=20, sigma=1.0)
    c = OnePassCurve(p, n_max=1e7)
    assert np.all(np.diff(c.risk_) <= 0)
    ns = np.array([10.0, 1234.0, 5e5])
    np.testing.assert_allclose(c.equivalent_n(c.risk(ns)), ns, rtol=1e-6)
    assert np.isnan(c.equivalent_n(1e-30))  # beyond the tabulated range: NaN, not a made-up number
    # tuned one-pass risk decays roughly like 1/n^a for a power-law spectrum: clearly falling
    assert c.risk(1e6) < 0.1 * c.risk(1e3)


def test_the_onepass_figure_command_of_the_docs_runs(tmp_path):
    # docs/theory.md renders docs/figures/theory_onepass.png with this call; small sizes here
    from repetita.theory.plots import plot_onepass_check
    from repetita.theory.spectra import Problem

    out = plot_onepass_check(Problem.from_strings("power:1.5", d=20, sigma=0.5), n_max=100, replicates=40,
                             path=tmp_path / "onepass.png")
    assert (tmp_path / "onepass.png").stat().st_size > 1000
    assert 0 <= out["max_abs_z"] < 5  # Monte Carlo within 5 standard errors of the exact risk (seeded)
