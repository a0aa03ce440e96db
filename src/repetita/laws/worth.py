"""What repeated data is worth under a fitted law, and where repetition saturates.

All functions are pure and vectorized. Terms (Muennighoff et al. 2023):

- effective data D' = U + U R_D* (1 - exp(-(K - 1)/R_D*)) after K >= 1 epochs over U unique tokens;
- effective reuse rate E(K) = D'/U: how many epochs of fresh data K epochs are worth (= K while
  K - 1 << R_D*, plateauing at 1 + R_D*);
- worth of epoch K + 1 = E(K + 1) - E(K), in units of one epoch of fresh data;
- with the N-aware law, R_D* = R_D*(U) grows with the dataset, so the saturation epoch count
  K* = 1 + R_D*(U) grows like log U, as multi-epoch SGD theory predicts.

Data efficiency backs a loss out into tokens through a baseline law's data term:
D_eff = (B / (L - E_rest))^(1/beta), with E_rest the loss the model would have with infinite data.
"""

from __future__ import annotations

import numpy as np

from repetita.errors import UserError, require
from repetita.laws.forms import effective_data
from repetita.laws.law import get_law


def reuse_rate(epochs, rd_star) -> np.ndarray:
    """E(K) = D'/U (``forms.effective_data`` at U = 1). Below one epoch every token is fresh, so E = K there;
    with no repetition penalty (R_D* = inf) E = K everywhere."""
    k = np.asarray(epochs, dtype=float)
    r = np.asarray(rd_star, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        e = effective_data(np.ones_like(k), k, r)
    return np.where(np.isinf(r), k, e)


def effective_tokens(unique_tokens, epochs, rd_star) -> np.ndarray:
    """D' = U E(K)."""
    return np.asarray(unique_tokens, dtype=float) * reuse_rate(epochs, rd_star)


def next_epoch_worth(epochs, rd_star) -> np.ndarray:
    """Fresh-data epochs gained by training epoch K + 1 after K epochs: E(K + 1) - E(K)."""
    k = np.asarray(epochs, dtype=float)
    return reuse_rate(k + 1.0, rd_star) - reuse_rate(k, rd_star)


def epochs_until_worth_below(fraction, rd_star) -> np.ndarray:
    """The smallest whole K >= 1 after which epoch K + 1 is worth less than ``fraction`` of fresh data.

    Epoch K + 1 (K >= 1) is worth R (1 - e^(-1/R)) e^(-(K-1)/R); solving for K gives the closed form
    below; it is then nudged to the exact integer boundary.
    """
    f = np.asarray(fraction, dtype=float)
    r = np.asarray(rd_star, dtype=float)
    if np.any((f <= 0) | (f >= 1)):
        raise UserError("the worth fraction must lie strictly between 0 and 1")
    first = r * (1.0 - np.exp(-1.0 / r))  # worth of the second epoch
    k = np.maximum(1.0, np.ceil(1.0 + r * np.log(first / f)))
    k = np.where(next_epoch_worth(k, r) >= f, k + 1, k)  # rounding guard at the boundary
    k = np.where((k > 1) & (next_epoch_worth(k - 1, r) < f), k - 1, k)
    return k


def saturation_epochs(rd_star) -> np.ndarray:
    """K* = 1 + R_D*: the e-folding epoch count of the reuse curve (E reaches 63% of its plateau gain)."""
    return 1.0 + np.asarray(rd_star, dtype=float)


def tokens_from_loss(loss, e_rest, b, beta) -> np.ndarray:
    """Invert L = E_rest + B / D^beta: the tokens a baseline law needs to reach ``loss``.

    Returns inf where the loss is at or below E_rest (no amount of data reaches it under the
    baseline: the recipe moved the asymptote).
    """
    gap = np.asarray(loss, dtype=float) - np.asarray(e_rest, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(gap > 0, (np.asarray(b, dtype=float) / gap) ** (1.0 / np.asarray(beta, dtype=float)), np.inf)


def data_efficiency(loss_recipe, loss_baseline, e_rest, b, beta) -> np.ndarray:
    """How many times more data the baseline needs to match the recipe: D_eff(L_recipe) / D_eff(L_base)."""
    return tokens_from_loss(loss_recipe, e_rest, b, beta) / tokens_from_loss(loss_baseline, e_rest, b, beta)


# --- Reading a fitted law -----------------------------------------------------------------------


def rd_star_for(record: dict, unique_tokens) -> np.ndarray:
    """R_D* of a fitted law at dataset size U (the law object knows its own form)."""
    return get_law(record["law"]).repetition(record["params"], unique_tokens)


def data_term(record: dict, params) -> tuple[np.ndarray, float, float]:
    """(E_rest, B, beta) of the law's data term at model size N: L = E_rest + B / D'^beta."""
    law = get_law(record["law"])
    if law.needs_axis:
        require(record["spec"].get("axis") in ("tokens", "unique_tokens", "x"), "a power fit must be along tokens")
    return law.data_terms(record["params"], params)
