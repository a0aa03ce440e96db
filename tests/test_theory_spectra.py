import numpy as np
import pytest

from repetita.errors import UserError
from repetita.theory.spectra import Problem, parse_spectrum, parse_wstar


def test_spectrum_grammar(tmp_path):
    np.testing.assert_array_equal(parse_spectrum("flat", 3), np.ones(3))
    lam = parse_spectrum("well:0.1", 5)
    assert lam[0] == 1 and lam[-1] == pytest.approx(0.1) and np.all(np.diff(lam) < 0)
    np.testing.assert_allclose(parse_spectrum("power:2", 3), [1, 0.25, 1 / 9])
    f = tmp_path / "s.npy"
    np.save(f, np.array([0.5, 2.0, 1.0]))
    np.testing.assert_allclose(parse_spectrum(f"file:{f}", 99), [1, 0.5, 0.25])  # sorted, lambda_max = 1


@pytest.mark.parametrize("bad", ["", "power", "power:-1", "power:abc", "well:0", "well:2", "flat:3", "zipf:1",
                                 "file:/no/such.npy"])
def test_bad_spectrum_strings(bad):
    with pytest.raises(UserError):
        parse_spectrum(bad, 4)


def test_wstar_grammar_and_problem_validation():
    w = parse_wstar("power:1", 4)
    assert np.linalg.norm(w) == pytest.approx(1) and w[0] > w[-1]
    np.testing.assert_array_equal(parse_wstar("random:5", 6), parse_wstar("random:5", 6))
    with pytest.raises(UserError):
        parse_wstar("random:x", 3)
    with pytest.raises(UserError, match="sigma"):
        Problem.from_strings("flat", d=3, sigma=0)
    with pytest.raises(UserError, match="d must"):
        Problem.from_strings("flat", d=0)
    with pytest.raises(UserError, match="design"):
        Problem.from_strings("flat", d=2, design="cauchy")
    p = Problem.from_strings("flat", d=4, wstar="flat")
    assert p.initial_risk() == pytest.approx(0.5)
