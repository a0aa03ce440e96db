"""A fitted law evaluated at arbitrary points: the one place every plan, design and plot reads a loss
from parameters (vectorized over parameter draws)."""

from __future__ import annotations

import numpy as np

from repetita.laws.law import law_loss
from repetita.laws.record import estimator


def point_theta(est) -> np.ndarray:
    """The estimator's parameters as a (1, P) array in the law's order."""
    return np.array([[est.params_[p] for p in est.spec.law_obj.params]], dtype=float)


def predicted_loss(fit, params, tokens, unique_tokens) -> np.ndarray:
    """The fitted law's loss at arbitrary (N, D, U), broadcast together."""
    est = estimator(fit)
    n, d, u = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (params, tokens, unique_tokens)))
    return law_loss(est.spec.law_obj, point_theta(est), n.ravel(), d.ravel(), u.ravel())[0].reshape(n.shape)
