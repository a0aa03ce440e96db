"""A fitted law evaluated at arbitrary points: the one place every plan, design and plot reads a loss
from parameters (vectorized over parameter draws)."""

from __future__ import annotations

import numpy as np

from repetita.laws.forms import Law
from repetita.laws.record import estimator


def point_theta(est) -> np.ndarray:
    """The estimator's parameters as a (1, P) array in the law's order."""
    return np.array([[est.params_[p] for p in est.spec.law_obj.params]], dtype=float)


def law_loss(law: Law, theta: np.ndarray, params, tokens, unique) -> np.ndarray:
    """Loss (S, m) of S parameter vectors at m points; the points are (1, m) arrays shared by every draw,
    or (S, m) arrays, one row per draw. Includes D < U (a fraction of the corpus seen once)."""
    n, d, u = np.broadcast_arrays(*(np.atleast_2d(np.asarray(v, dtype=float)) for v in (params, tokens, unique)))
    X = {"params": n, "tokens": d, "unique_tokens": u,
         "log_params": np.log(n), "log_tokens": np.log(d), "log_unique": np.log(u)}
    with np.errstate(all="ignore"):
        return np.exp(law.func(np.asarray(theta, dtype=float), X)[0])


def predicted_loss(fit, params, tokens, unique_tokens) -> np.ndarray:
    """The fitted law's loss at arbitrary (N, D, U), broadcast together."""
    est = estimator(fit)
    n, d, u = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (params, tokens, unique_tokens)))
    return law_loss(est.spec.law_obj, point_theta(est), n.ravel(), d.ravel(), u.ravel())[0].reshape(n.shape)
