from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from repetita.errors import UserError
from repetita.lm.ensemble import combine_logprobs, evaluate
from repetita.lm.model import GPT, ModelConfig

CFG = ModelConfig(vocab_size=37, context=16, n_layer=2, n_head=2, d_model=16)


def test_batched_ensemble_forward_equals_separate_members():
    K = 3
    batched = GPT(CFG, members=K, seed=10)
    singles = [GPT(CFG, members=1, seed=10 + m) for m in range(K)]
    x = torch.randint(0, 37, (K, 4, 16), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = batched(x)
        for m in range(K):
            torch.testing.assert_close(out[m], singles[m](x[m : m + 1])[0], rtol=1e-5, atol=1e-5)
    # stacking lone models gives the same batched model
    stacked = GPT.stack(singles)
    with torch.no_grad():
        torch.testing.assert_close(stacked(x), out, rtol=1e-5, atol=1e-5)
    for k, v in batched.member_state(1).items():
        torch.testing.assert_close(v, singles[1].state_dict()[k])


@pytest.mark.parametrize("pos", ["rope", "learned"])
def test_model_is_causal(pos):
    m = GPT(ModelConfig(vocab_size=37, context=16, n_layer=2, n_head=2, d_model=16, pos=pos), seed=0)
    x = torch.randint(0, 37, (1, 2, 16))
    y = x.clone()
    y[:, :, 10:] = (y[:, :, 10:] + 1) % 37
    with torch.no_grad():
        a, b = m(x), m(y)
    torch.testing.assert_close(a[:, :, :10], b[:, :, :10])
    assert not torch.allclose(a[:, :, 10:], b[:, :, 10:])


def test_param_count_and_decay_groups():
    d, V, T, L = 16, 37, 16, 2
    tied = GPT(CFG)
    per_layer = 2 * d + d * 3 * d + d * d + d * 4 * d + 4 * d * d
    assert tied.num_params() == V * d + L * per_layer + d
    assert tied.num_params(non_embedding=True) == L * per_layer + d
    untied = GPT(ModelConfig(vocab_size=V, context=T, n_layer=L, n_head=2, d_model=d, pos="learned",
                             tie_embeddings=False), members=3)
    assert untied.num_params() == 2 * V * d + T * d + L * per_layer + d  # per member
    decay, other = untied.param_groups(0.5)
    assert decay["weight_decay"] == 0.5 and other["weight_decay"] == 0.0
    assert all(p.dim() == 3 for p in decay["params"])  # matrices (member axis first)
    ids = {id(p) for p in other["params"]}
    assert id(untied.wte) in ids and id(untied.wpe) in ids and id(untied.ln_f) in ids
    assert id(untied.head) not in ids


def test_bad_model_config_is_user_error():
    with pytest.raises(UserError, match="d_model"):
        ModelConfig(d_model=30, n_head=4)
    with pytest.raises(UserError, match="pos"):
        ModelConfig(pos="alibi")


def test_ensemble_logit_and_prob_averaging_match_direct_computation():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(4, 3, 5, 11))
    t = torch.tensor(z)
    # logit averaging: softmax of the mean logit
    mean = z.mean(0)
    direct = mean - np.log(np.exp(mean).sum(-1, keepdims=True))
    np.testing.assert_allclose(combine_logprobs(t, "logits").numpy(), direct, rtol=1e-5, atol=1e-6)
    # probability averaging: log of the mean of member softmaxes
    p = np.exp(z) / np.exp(z).sum(-1, keepdims=True)
    np.testing.assert_allclose(combine_logprobs(t, "probs").numpy(), np.log(p.mean(0)), rtol=1e-5, atol=1e-6)
    with pytest.raises(UserError):
        combine_logprobs(t, "median")


def test_evaluate_ensemble_loss_matches_manual_and_beats_mean_member_for_probs():
    m = GPT(CFG, members=3, seed=1)
    w = np.random.default_rng(1).integers(0, 37, size=(10, 17))
    ev = evaluate(m, w, batch_size=4)
    with torch.no_grad():
        x = torch.as_tensor(w)
        logits = m(x[:, :-1].unsqueeze(0).expand(3, -1, -1))
    lp = combine_logprobs(logits, "logits")
    manual = -lp.gather(-1, x[:, 1:].unsqueeze(-1)).mean().item()
    assert math.isclose(ev["ensemble_logits_loss"], manual, rel_tol=1e-5)
    # Jensen: the mixture's log-loss is never above the members' mean
    assert ev["ensemble_probs_loss"] <= ev["mean_member_loss"] + 1e-9
    assert len(ev["member_losses"]) == 3
