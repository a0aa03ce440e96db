"""The claims of docs/theory.md, reproduced at reduced replicate counts (run with -m slow)."""

import numpy as np
import pytest

from repetita.theory.reuse import ReuseConfig, reuse_table

SHOWCASE = {"spectrum": "well:0.05", "d": 10, "sigma": 0.1}


@pytest.mark.slow
def test_linear_regime_reuse_is_about_k():
    r = reuse_table(ReuseConfig(Ns=(10_000, 100_000), Ks=(1, 2, 4), replicates=32, threads=2, **SHOWCASE))
    ratio = r.E / np.array([1, 2, 4])
    assert np.all(np.abs(ratio - 1) < 0.1), ratio
    assert np.all(r.risk_se < 0.03)  # the control variate keeps 32 replicates at a few percent


@pytest.mark.slow
def test_plateau_grows_like_log_n():
    r = reuse_table(ReuseConfig(Ns=(100, 1000, 10_000, 100_000), Ks=(1, 16, 256), replicates=16, threads=2,
                                **SHOWCASE))
    plateau = r.E[:, -1]
    assert np.all(np.diff(plateau) > 0), plateau
    per_log = plateau / np.log(np.array(r.config.Ns, dtype=float))
    assert per_log.max() / per_log.min() < 1.5, per_log  # roughly proportional to log N over 3 decades
    assert r.plateau["affine"]["max_rel_resid"] < 0.1
