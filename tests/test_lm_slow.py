"""Slow checks of the LM lab against known truth (run with ``pytest -m slow``)."""

from __future__ import annotations

import pytest
import torch

from repetita.lm.config import TrainConfig
from repetita.lm.train import train


@pytest.mark.slow
def test_model_approaches_known_entropy_rate_of_markov_source(tmp_path):
    """With ample unique data, a tiny GPT gets within 0.1 nats of the source's closed-form entropy rate,
    and a heavily repeated small budget ends clearly above it (the data-constrained gap)."""
    torch.set_num_threads(1)
    base = TrainConfig(corpus="markov:V=24,order=1,n=200000,seed=2", context=32, n_layer=1, n_head=2, d_model=32,
                       batch_size=16, lr=1e-2, val_tokens=32 * 128)
    ample = train(base.replace(unique_tokens=32 * 4000, epochs=1.0), tmp_path / "ample")
    h = ample["irreducible_loss"]
    assert 0 < h < ample["val_loss"] < h + 0.1
    scarce = train(base.replace(unique_tokens=32 * 16, epochs=250.0), tmp_path / "scarce")
    assert scarce["val_loss"] > ample["val_loss"] + 0.1 and scarce["gap"] > 0.1
