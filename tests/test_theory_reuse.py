import numpy as np
import pytest

from repetita.errors import UserError
from repetita.theory.exact import OnePassCurve, one_pass_risk
from repetita.theory.reuse import (
    ReuseConfig,
    asymptote_constants,
    cv_means,
    phase_transition,
    plateau_fit,
    reuse_table,
    spline_min,
    tune,
)
from repetita.theory.spectra import Problem


def test_spline_min_on_exact_curve():
    p = Problem.from_strings("flat", d=10, sigma=0.1)
    c = OnePassCurve(p)
    n = 1e4
    etas = c.eta(n) * 1.4 ** np.linspace(-1, 1, 9)
    risks = np.array([float(one_pass_risk(p, e, n)) for e in etas])
    e, r, _ = spline_min(etas, risks[:, None])
    assert r[0] == pytest.approx(float(c.risk(n)), rel=5e-3)
    assert e[0] == pytest.approx(float(c.eta(n)), rel=0.03)


def test_tune_finds_minimum_and_flags_edges():
    etas = np.geomspace(0.1, 10, 9)
    curve = (np.log(etas) - np.log(2.0)) ** 2 + 1.0
    reps = curve[None, :] * np.exp(np.random.default_rng(0).normal(0, 1e-3, (30, 1)))  # common noise
    t = tune(reps, etas, n_boot=50)
    assert t["eta_star"] == pytest.approx(2.0, rel=0.02) and not t["edge"]
    assert t["log_risk_se"] < 2e-3
    t2 = tune(np.exp(-np.log(etas))[None, :].repeat(5, 0), etas, n_boot=20)
    assert t2["edge"]


def test_phase_transition_and_plateau_fit():
    Ks = np.array([1, 2, 4, 8, 16])
    assert np.isnan(phase_transition(Ks, [1, 2, 4, 8, 16]))  # never falls below: NaN
    assert phase_transition(Ks, [1, 2, 3, 3.5, 3.6], 0.5) == pytest.approx(
        np.exp(np.log(4) + np.log(2) * (0.75 - 0.5) / (0.75 - 3.5 / 8)))
    Ns = np.array([1e2, 1e3, 1e4])
    fit = plateau_fit(Ns, 1.7 * np.log(Ns), 0.1 * np.ones(3))
    assert fit["proportional"]["C"] == pytest.approx(1.7) and fit["affine"]["offset"] == pytest.approx(0, abs=1e-9)


def test_asymptote_constants_recover_forms():
    Ks, Ns = np.array([1, 2, 4, 64]), np.array([1e3, 1e4])
    k, n = np.meshgrid(Ks, Ns)
    risk = np.where(k < 64, 0.3 * np.log(k * n) / (k * n), 2.0 / n)
    E = np.where(k < 64, k, 10.0)
    out = asymptote_constants(Ks, Ns, risk, E)
    assert out["C1"] == pytest.approx(0.3) and out["C2"] == pytest.approx(2.0) and out["C1_cells"] == 6


def test_control_variate_shrinks_the_error_without_moving_the_answer():
    rng = np.random.default_rng(1)
    common = rng.normal(0, 0.2, (400, 1))
    lin = 1.0 + common + rng.normal(0, 0.01, (400, 3))
    risks = 2.0 + common + rng.normal(0, 0.01, (400, 3))  # true mean 2, noise mostly shared with lin
    adj = cv_means(risks, lin, np.ones(3))
    assert np.all(np.abs(adj - 2.0) < 0.005) and np.any(np.abs(risks.mean(axis=0) - 2.0) > 0.005)


def test_small_reuse_table_is_consistent():
    cfg = ReuseConfig(Ns=(300,), Ks=(1, 2, 8), spectrum="well:0.3", d=4, sigma=0.3, replicates=48, n_boot=30,
                      threads=1)
    r = reuse_table(cfg)
    assert np.all(np.isfinite(r.E)) and np.all(r.E_se > 0)
    assert abs(r.E[0, 0] - 1) < 4 * r.E_se[0, 0] + 0.02  # one epoch over N fresh samples is one-pass SGD
    assert r.E[0, 2] < 8  # repetition is never worth more than fresh data here
    d = r.to_dict()
    assert d["config"]["spectrum"] == "well:0.3" and len(d["E"]) == 1


@pytest.mark.parametrize("kw", [{"Ns": (0,)}, {"Ks": (1.5,)}, {"sigma": -1.0}, {"replicates": 1}, {"fraction": 1.0}])
def test_config_rejects_bad_values(kw):
    with pytest.raises(UserError):
        ReuseConfig(**kw)


def test_replicates_per_n_follow_sorted_n():
    cfg = ReuseConfig(Ns=(10_000, 1000), replicates=(8, 40))
    assert cfg.Ns == (1000, 10_000) and cfg.replicates_for(0) == 40 and cfg.replicates_for(1) == 8
    assert ReuseConfig(Ns=(10, 20), replicates=(5, 5)).replicates == 5
    with pytest.raises(UserError, match="values for"):
        ReuseConfig(Ns=(10, 20), replicates=(5, 5, 5))
