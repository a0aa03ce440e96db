from __future__ import annotations

import pytest

from repetita.lm.config import TrainConfig
from repetita.lm.train import train

TINY = TrainConfig(corpus="markov:V=24,order=1,n=30000,seed=2", context=16, unique_tokens=16 * 48, epochs=2.0,
                   n_layer=1, n_head=2, d_model=16, batch_size=8, lr=1e-2, val_tokens=16 * 32)


@pytest.mark.gpu
def test_cuda_bf16_run_and_batched_members(tmp_path):
    ens = train(TINY.replace(device="cuda", members=2), tmp_path / "ens")
    lone = train(TINY.replace(device="cuda"), tmp_path / "lone")
    assert ens["finished"] and lone["finished"]
    # bf16 autocast: equal up to low-precision rounding, not bit for bit
    assert abs(ens["history"][-1]["val_member_losses"][0] - lone["val_loss"]) < 0.05


def test_hf_corpus_without_datasets_is_user_error_or_loads(tmp_path):
    from repetita.errors import UserError
    from repetita.lm.corpora import load_corpus

    try:
        import datasets
    except ImportError:
        with pytest.raises(UserError, match="datasets"):
            load_corpus(f"hf:{tmp_path}")
        return
    datasets.Dataset.from_dict({"text": ["to be or not to be", "that is the question"]}).save_to_disk(tmp_path / "d")
    c = load_corpus(f"hf:{tmp_path / 'd'}")
    assert c.text == "to be or not to be\nthat is the question"
