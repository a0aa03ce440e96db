"""The measured-reuse estimator recovers the theory lab's E(K, N) from SGD runs and a measured reference."""

from __future__ import annotations

import numpy as np
import pytest

from repetita.theory.crosscheck import crosscheck
from repetita.theory.reuse import ReuseConfig


@pytest.mark.e2e
def test_estimator_recovers_theory_reuse_within_monte_carlo_error():
    cfg = ReuseConfig(Ns=(1000,), Ks=(1, 4, 16, 32), replicates=32, threads=2)
    tab = crosscheck(cfg, reference_replicates=128)
    assert len(tab) == 4 and not tab["extrapolated"].any()
    # within 3 combined standard errors in every cell, and E really bends (the check is not E = K)
    assert np.all(np.abs(tab["z"]) < 3), tab[["epochs", "reuse_rate", "E_theory", "z"]]
    e = dict(zip(tab["epochs"], tab["reuse_rate"], strict=True))
    assert abs(e[1.0] - 1) < 0.15 and e[32.0] < 0.5 * 32
