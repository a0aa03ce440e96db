import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from repetita.data_mix import mixture as mx
from repetita.errors import UserError


def test_ninety_ten_trains_as_seventy_five_twenty_five():
    q = mx.optimal_mixture([0.9, 0.1], [mx.PowerCurve(), mx.PowerCurve()], budget=1000)
    assert q == pytest.approx([0.75, 0.25], abs=1e-9)
    # 1/n curves: risk at q is (1/N) sum p_k/q_k; q = p gives 2/N, the optimum (sum sqrt p)^2/N = 1.6/N.
    assert mx.expected_error([0.9, 0.1], q, [mx.PowerCurve()] * 2, 1000) == pytest.approx(1.6 / 1000)
    assert mx.expected_error([0.9, 0.1], [0.9, 0.1], [mx.PowerCurve()] * 2, 1000) == pytest.approx(2 / 1000)


@pytest.mark.parametrize("gamma", [0.3, 1.0, 2.5])
def test_general_solver_matches_power_closed_form(gamma):
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(7))
    c = rng.uniform(0.5, 3, size=7)
    q = mx.optimal_mixture(p, [mx.PowerCurve(coef=ci, exponent=gamma) for ci in c], budget=1e4)
    assert q == pytest.approx(mx.power_law_mixture(p, gamma, c), abs=1e-8)


@pytest.mark.parametrize("alpha,n_groups,budget", [(1.1, 50, 30), (2.0, 100, 200), (0.5, 20, 5)])
def test_general_solver_matches_memorization_closed_form(alpha, n_groups, budget):
    p = mx.zipf(n_groups, alpha)
    q_closed = mx.memorization_mixture(p, budget)
    q_gen = mx.optimal_mixture(p, [mx.MissCurve()] * n_groups, budget)
    assert q_gen == pytest.approx(q_closed, abs=1e-8)
    # The closed form itself: 1 - q_k = beta p_k^(-1/(N-1)) on the support, with a single beta.
    sup = q_closed > 0
    beta = (1 - q_closed[sup]) * p[sup] ** (1 / (budget - 1))
    assert np.ptp(beta) < 1e-8
    # And it beats training on the test distribution.
    curves = [mx.MissCurve()] * n_groups
    assert mx.expected_error(p, q_closed, curves, budget) < mx.expected_error(p, p, curves, budget)


def test_memorization_truncates_rare_atoms_at_small_budget():
    p = mx.zipf(1000, 1.5)
    q = mx.memorization_mixture(p, 100)
    assert q[-1] == 0.0 and q[0] > 0
    assert np.all(np.diff(q) <= 1e-15)  # frequent atoms never get less weight


def test_optimum_is_a_minimum_against_random_mixtures():
    p = np.array([0.5, 0.3, 0.15, 0.05])
    curves = [mx.PowerCurve(1, 0.5, 0.1), mx.PowerCurve(2, 1.0), mx.PowerCurve(0.5, 0.3), mx.MissCurve()]
    q = mx.optimal_mixture(p, curves, 200)
    best = mx.expected_error(p, q, curves, 200)
    rng = np.random.default_rng(1)
    for _ in range(300):
        r = rng.dirichlet(np.ones(4))
        assert mx.expected_error(p, r, curves, 200) >= best - 1e-12


def test_callable_curve_matches_power_curve():
    q = mx.optimal_mixture([0.6, 0.3, 0.1], [mx.CallableCurve(lambda n: n**-0.5)] * 3, 500)
    assert q == pytest.approx(mx.power_law_mixture([0.6, 0.3, 0.1], 0.5), abs=1e-5)


@pytest.mark.parametrize("bad", [[0.9, 0.2], [1.2, -0.2], [], [float("nan"), 1.0]])
def test_bad_weights_are_user_errors(bad):
    with pytest.raises(UserError):
        mx.optimal_mixture(bad, [mx.PowerCurve()] * len(bad), 100)


def test_fit_curves_recovers_exponents():
    n = np.array([100, 200, 400, 800, 1600, 3200, 6400])
    df = pd.concat([
        pd.DataFrame({"group": "a", "n": n, "loss": 0.1 + 5 * n**-0.5}),
        pd.DataFrame({"group": "b", "n": n, "loss": 0.2 + 20 * n**-0.8}),
    ])
    names, curves, params = mx.fit_curves(df)
    assert names == ["a", "b"]
    assert curves[0].exponent == pytest.approx(0.5, rel=0.02)
    assert curves[1].exponent == pytest.approx(0.8, rel=0.02)
    with pytest.raises(UserError):
        mx.fit_curves(df.rename(columns={"loss": "err"}))


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "repetita.cli", *args], capture_output=True, text=True)


def test_cli_optimize_json_and_bad_input():
    r = _cli("mix", "optimize", "--weights", "0.9,0.1", "--budget", "1000", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["train_mixture"] == pytest.approx([0.75, 0.25])
    assert out["relative_gain"] == pytest.approx(0.2)
    r = _cli("mix", "optimize", "--weights", "0.9,0.2")
    assert r.returncode == 2 and "sum to 1" in r.stderr and "Traceback" not in r.stderr
    r = _cli("mix", "optimize", "--weights", "1.1,-0.1")
    assert r.returncode == 2 and "negative" in r.stderr
