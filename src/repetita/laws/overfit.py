"""Laws whose loss can rise again with more epochs, and the turn: the epoch count past which it does.

Real multi-epoch runs overfit. In the datablations table the 146M-param model on 100M unique tokens is
best at 59 epochs (3.718) and worse at every count after it up to 1,740 (3.897); the ColPret curves of
the same runs show E(K) peaking at 5-7 epochs. The data-constrained law and its N-aware variants have
an effective data D' that never falls, so they cannot represent that. Two ways to let them:

* **An additive overfitting penalty** on top of the Chinchilla part, after Lovelace et al. 2026
  ("Prescriptive Scaling Laws for Data Constrained Training", arXiv 2605.01640), who model the excess
  loss under repetition as an additive term that grows with repetition and with the model-to-data
  ratio, with a one-parameter form whose single coefficient measures overfitting. The paper's own
  parametrisation could not be read from the copies available here (its abstract only), so the forms
  below are this project's reading of that description, nested so each extends the one before:

      L = E + A/N^alpha + B/D^beta + P,   P = exp(c) R^sigma N^rho / U^tau,   R = max(D/U - 1, 0)

  ``overfit-1``: sigma = rho = tau = 1 (P = k R N/U, the coefficient k = e^c alone);
  ``overfit-2``: sigma free (how fast the penalty grows with repeats);
  ``overfit-4``: sigma, rho, tau free (model size and data size enter separately).

* **An effective data that peaks and falls** (``data-decay``): the data-constrained D' times
  exp(-R / R_o), with R_o = exp(q) (N/U)^-rho repeats, so E(K) = D'/U rises like K, saturates, then
  decays, sooner for larger models per unique token.

:func:`turn` finds, for any law, the epoch count at which its loss at fixed N and U is lowest; laws whose
D' never falls answer infinity without a search.
"""

from __future__ import annotations

import numpy as np

from repetita.laws.forms import (
    _CHIN_BOUNDS,
    _CHIN_GRID,
    _DC_COLUMNS,
    _chinchilla_data_term,
    effective_data,
    effective_params,
)
from repetita.laws.forms import data_constrained as _data_constrained
from repetita.laws.law import Law, col, lse, param, register_law, turn

Array = np.ndarray

# --- additive penalty ---------------------------------------------------------------------------------


def _repeats(X: dict) -> Array:
    return np.maximum(col(X, "tokens") / col(X, "unique_tokens") - 1.0, 0.0)


def _penalty(c, sigma, rho, tau, X: dict) -> Array:
    """exp(c) R^sigma N^rho / U^tau, exactly zero on one-epoch rows (complex-safe: no log of zero taken)."""
    r = _repeats(X)
    log_r = np.log(np.where(r > 0, r, 1.0))
    term = np.exp(c + sigma * log_r + rho * col(X, "log_params") - tau * col(X, "log_unique"))
    return np.where(r > 0, term, 0.0 * term)


def make_overfit(free: tuple[str, ...]):
    """The penalty law with ``free`` among (sigma, rho, tau) fitted and the others fixed at 1."""

    def overfit(theta: Array, X: dict) -> Array:
        a, b, e, alpha, beta, c = (param(theta, i) for i in range(6))
        extra = {name: param(theta, 6 + i) for i, name in enumerate(free)}
        sigma, rho, tau = (extra.get(k, 1.0) for k in ("sigma", "rho", "tau"))
        base = lse(a - alpha * col(X, "log_params"), b - beta * col(X, "log_tokens"), e)
        return np.log(np.exp(base) + _penalty(c, sigma, rho, tau, X))

    return overfit


def _overfit_seeds(new: tuple[str, ...]):
    def seeds(parent: dict, X: dict) -> list[dict]:
        """From the nested law: the penalty coefficient log-spaced around what the table could show (a
        penalty of 1e-4 to 3e-1 nats at the median repeated row), then the new exponents from flat to steep."""
        if "c" not in parent:
            r = np.maximum(X["tokens"] / X["unique_tokens"] - 1.0, 0.0)
            rep = r > 0
            scale = np.median((r * X["params"] / X["unique_tokens"])[rep]) if rep.any() else 1.0
            return [parent | {"c": float(np.log(f / scale))} for f in (1e-4, 1e-3, 1e-2, 3e-2, 1e-1, 3e-1)]
        values = {"sigma": (0.5, 1.0, 1.5, 2.0), "rho": (0.5, 1.0, 1.5), "tau": (0.5, 1.0, 1.5)}
        out = [dict(parent)]
        for name in new:
            out += [dict(parent) | {name: v} for v in values[name] if v != 1.0]
        return out

    return seeds


# --- an effective data that peaks and falls -----------------------------------------------------------


def data_decay(theta: Array, X: dict) -> Array:
    """theta = (a, b, e, alpha, beta, rd_star, rn_star, q, rho): D'' = D' exp(-R / R_o), R_o = e^q (N/U)^-rho."""
    base_theta = theta[:, :7]
    q, rho = param(theta, 7), param(theta, 8)
    log_ro = q - rho * (col(X, "log_params") - col(X, "log_unique"))
    decay = _repeats(X) * np.exp(-log_ro)  # R / R_o
    # the data term of the data-constrained law, with log D' shifted by -R/R_o; rebuilt through the same
    # pieces so that the one effective-data implementation (forms.effective_data) is used
    a, b, e, alpha, beta = (param(base_theta, i) for i in range(5))
    n_eff = effective_params(col(X, "params"), col(X, "unique_tokens"), a, b, alpha, beta, base_theta[:, 6:7])
    log_d = np.log(effective_data(col(X, "unique_tokens"), col(X, "tokens"), base_theta[:, 5:6])) - decay
    return lse(a - alpha * np.log(n_eff), b - beta * log_d, e)


def _decay_seeds(parent: dict, X: dict) -> list[dict]:
    """R_o from a few repeats to far beyond the table's largest, flat and steep in N/U."""
    r_max = float(np.max(X["tokens"] / X["unique_tokens"]))
    return [parent | {"q": float(np.log(f * max(r_max, 2.0))), "rho": rho}
            for f in (0.1, 0.3, 1.0, 3.0, 30.0) for rho in (0.0, 0.5, 1.0)]


# --- the turn -----------------------------------------------------------------------------------------


def penalty_evidence(law: Law, params: dict, X: dict) -> list[str]:
    """A law that can turn, fitted on a table where no run went past its turn, has extrapolated the turn
    rather than measured it: say so (the datablations runs with <= 16 epochs are such a table)."""
    if not {"params", "unique_tokens"} <= set(X):
        return []  # curves of one model with no repetition: there is no penalty to speak of
    pairs = np.unique(np.stack([X["params"], X["unique_tokens"]], axis=1), axis=0)
    turns = turn(law, params, pairs[:, 0], pairs[:, 1])
    k = X["tokens"] / X["unique_tokens"]
    past = [bool(np.any(k[(X["params"] == n) & (X["unique_tokens"] == u)] > t)) for (n, u), t in zip(pairs, turns,
                                                                                                   strict=True)]
    if any(past):
        return []
    finite = turns[np.isfinite(turns)]
    where = f" (it puts the turn at {np.min(finite):.3g}-{np.max(finite):.3g} epochs)" if finite.size else \
        " (its fitted penalty never turns the loss within 1e6 epochs)"
    return ["no run in the table went past this law's turn" + where + ": the overfitting penalty is "
            "extrapolated, not measured; plan with its interval and test the turn with a longer run"]


_PEN_BOUNDS = {"c": (-60.0, 20.0), "sigma": (0.05, 5.0), "rho": (-3.0, 4.0), "tau": (-3.0, 4.0)}
_PEN_GRID = {"c": (-10.0,), "sigma": (1.0,), "rho": (1.0,), "tau": (1.0,)}


def _overfit_law(name: str, free: tuple[str, ...], parent: str, new: tuple[str, ...], doc: str, study: bool = False,
                 ) -> Law:
    extra = ("c", *free)
    return Law(
        name, make_overfit(free), ("a", "b", "e", "alpha", "beta", *extra),
        {**_CHIN_BOUNDS, **{k: _PEN_BOUNDS[k] for k in extra}}, {**_CHIN_GRID, **{k: _PEN_GRID[k] for k in extra}},
        _DC_COLUMNS, log_params=("a", "b", "e"), doc=doc, parent=parent, seeds=_overfit_seeds(new),
        data_term=_chinchilla_data_term, axis="tokens", monotone=False, study=study)


OVERFIT_LAWS: dict[str, Law] = {  # registered at the end of the module
    "overfit-1": _overfit_law(
        "overfit-1", (), "chinchilla", (),
        "Chinchilla + k R N/U: a one-coefficient additive overfitting penalty (after Lovelace et al. 2026)",
        study=True),
    "overfit-2": _overfit_law(
        "overfit-2", ("sigma",), "overfit-1", ("sigma",),
        "Chinchilla + k R^sigma N/U (after Lovelace et al. 2026)"),
    "overfit-4": _overfit_law(
        "overfit-4", ("sigma", "rho", "tau"), "overfit-2", ("rho", "tau"),
        "Chinchilla + k R^sigma N^rho / U^tau (after Lovelace et al. 2026)"),
    "data-decay": Law(
        "data-decay", data_decay, ("a", "b", "e", "alpha", "beta", "rd_star", "rn_star", "q", "rho"),
        {**_CHIN_BOUNDS, "rd_star": (1e-3, 1e6), "rn_star": (1e-3, 1e6), "q": (-5.0, 25.0), "rho": (-2.0, 3.0)},
        {**_CHIN_GRID, "rd_star": (6.67, 20.0), "rn_star": (6.67,), "q": (5.0,), "rho": (0.0,)},
        _DC_COLUMNS, log_params=("a", "b", "e"),
        doc="data-constrained with D' x exp(-R/R_o), R_o = e^q (N/U)^-rho: E(K) peaks, then falls",
        parent="data-constrained", seeds=_decay_seeds, data_term=_chinchilla_data_term, axis="tokens",
        monotone=False,
        # measured: `repetita laws --benchmark --only data-decay --splits epochs` (docs/laws.md)
        retired="its decaying D' has no floor: fitted on the runs with at most 16 epochs it drives D'' to zero "
                "past them (a log residual of 52.6 at 9,000 epochs) and extrapolates at 1.2565 mean |log "
                "residual|, ten times the monotone laws' 0.097-0.105 (its median row: 0.072); fit it by name"),
}


def dc_overfit(theta: Array, X: dict) -> Array:
    """theta = (a, b, e, alpha, beta, rd_star, rn_star, c): the data-constrained law + exp(c) R N/U."""
    base = _data_constrained(theta[:, :7], X)
    return np.log(np.exp(base) + _penalty(param(theta, 7), 1.0, 1.0, 1.0, X))


def _dc_overfit_seeds(parent: dict, X: dict) -> list[dict]:
    return _overfit_seeds(())({k: v for k, v in parent.items() if k != "c"}, X)


OVERFIT_LAWS["data-constrained-overfit"] = Law(
    "data-constrained-overfit", dc_overfit, ("a", "b", "e", "alpha", "beta", "rd_star", "rn_star", "c"),
    {**_CHIN_BOUNDS, "rd_star": (1e-3, 1e6), "rn_star": (1e-3, 1e6), "c": _PEN_BOUNDS["c"]},
    {**_CHIN_GRID, "rd_star": (6.67, 20.0), "rn_star": (6.67,), "c": (-10.0,)},
    _DC_COLUMNS, log_params=("a", "b", "e"),
    doc="data-constrained (diminishing returns of repeats) + k R N/U (overfitting): the loss turns",
    parent="data-constrained", seeds=_dc_overfit_seeds, data_term=_chinchilla_data_term, axis="tokens",
    monotone=False)

for _law in OVERFIT_LAWS.values():
    register_law(_law)
