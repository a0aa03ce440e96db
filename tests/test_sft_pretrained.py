"""The SFT grid through a pretrained model's own tokenizer (a tiny local HF model stands in for SmolLM2)."""

from __future__ import annotations

import pytest

pytest.importorskip("transformers")
torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def local_model(tmp_path_factory):
    from tokenizers import Tokenizer, models
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    chars = ["<eos>", *"0123456789+-*=|#;"]
    # A BPE model without merges splits text into single characters: a stand-in subword tokenizer.
    tok = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.BPE({c: i for i, c in enumerate(chars)}, [])),
                                  eos_token="<eos>")
    folder = tmp_path_factory.mktemp("tiny-hf")
    torch.manual_seed(0)
    GPT2LMHeadModel(GPT2Config(vocab_size=len(chars), n_positions=64, n_embd=32, n_layer=1, n_head=2)).save_pretrained(folder)
    tok.save_pretrained(folder)
    return str(folder)


def test_batches_train_only_the_response_and_its_end(local_model):
    from repetita.sft.pretrained import HFCodec, load

    tok, _ = load(local_model, "cpu")
    codec = HFCodec(tok, "cpu")
    ids, labels, mask = codec.batch([("3+4=", "3+4=7|#7;", 7), ("1*2-5=", "1*2=2|2-5=7|#7;", 7)])
    p0 = len(codec.encode("3+4="))
    assert (labels[0, :p0] == -100).all()
    assert labels[0, p0:].tolist()[: len(codec.encode("3+4=7|#7;")) + 1] == codec.encode("3+4=7|#7;") + [tok.eos_token_id]
    assert mask[0].sum() == p0 + len(codec.encode("3+4=7|#7;")) + 1 and mask[1].all()


def test_every_cell_starts_from_the_pretrained_weights(local_model, tmp_path):
    from repetita.sft.demo import DemoConfig, run_demo
    from repetita.sft.pretrained import Pretrained

    weights = Pretrained(local_model, "cpu")
    before = {k: v.clone() for k, v in weights.state.items()}
    model = weights.fresh()
    with torch.no_grad():
        next(model.parameters()).add_(1.0)
    assert all(torch.equal(weights.fresh().state_dict()[k], before[k]) for k in before)

    cfg = DemoConfig(model=local_model, budget=64, pool_size=64, batch_size=8, min_samples=16, factor=2,
                     eval_size=20, n_ops=1, lr=1e-3)
    out = run_demo(cfg, tmp_path / "sft")
    assert sorted((c["samples"], c["epochs"]) for c in out["cells"]) == [(16, 4), (32, 2), (64, 1)]
    for c in out["cells"]:
        # a share of the 20 held-out answers, each right or wrong: a whole count
        correct = c["answer_accuracy"] * 20
        assert 0 <= correct <= 20 and correct == pytest.approx(round(correct), abs=1e-9) and c["steps"] == 8
        assert c["final_token_accuracy"] is not None
    assert out["device"] == "cpu" and (tmp_path / "sft" / "results.json").exists()


def test_bad_model_and_device_are_one_line_errors(tmp_path):
    from repetita.cli import main

    assert main(["sft", "run", "--quick", "--out", str(tmp_path / "a"), "--set", f"model={tmp_path / 'none'}"]) == 2
    assert main(["sft", "run", "--quick", "--out", str(tmp_path / "b"), "--set", "device=tpu"]) == 2
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()  # nothing half-written
