"""A real TRL SFTTrainer on a tiny model: the callback stops it early and records why.

The data is a prompt/completion text dataset, so TRL itself tokenizes it and masks the prompt
(completion-only loss); the callback must count completion tokens only.
"""

import json

import pytest

pytest.importorskip("trl")

CHARS = "0123456789+-*=|#;"


def _tokenizer():
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    # One token per character; <eos> is a special token so TRL's appended "<eos>" string maps to it.
    vocab = {w: i for i, w in enumerate(["<pad>", "<eos>", "<unk>", *CHARS])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>")


def _setup(tmp_path, callback, max_steps=300):
    import torch
    from datasets import Dataset
    from transformers import GPT2Config, GPT2LMHeadModel
    from trl import SFTConfig, SFTTrainer

    from repetita.sft.task import ArithmeticTask

    torch.manual_seed(0)
    tok = _tokenizer()
    examples = ArithmeticTask(n_ops=1, modulus=3).pool(4, seed=0)
    ds = Dataset.from_list([{"prompt": p, "completion": r} for p, r, _ in examples])
    model = GPT2LMHeadModel(
        GPT2Config(vocab_size=len(tok), n_positions=32, n_embd=32, n_layer=1, n_head=2, pad_token_id=0, eos_token_id=1)
    )
    args = SFTConfig(
        output_dir=str(tmp_path),
        max_steps=max_steps,
        per_device_train_batch_size=4,
        learning_rate=1e-2,
        completion_only_loss=True,
        bf16=False,
        report_to=[],
        use_cpu=True,
        save_strategy="no",
        logging_steps=1000,
        disable_tqdm=True,
        seed=0,
    )
    return SFTTrainer(model=model, args=args, train_dataset=ds, processing_class=tok, callbacks=[callback])


# TRL's config defaults `gradient_checkpointing` to True (kept: it is what TRL users run), which
# transformers 5.23 reports as deprecated on every construction.
@pytest.mark.filterwarnings("ignore:`gradient_checkpointing` is deprecated:FutureWarning")
def test_sft_trainer_stops_early_and_records_reason(tmp_path):
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    from repetita.sft import TokenAccuracyStopping

    cb = TokenAccuracyStopping(threshold=0.95, window=5, plateau_window=0)
    trainer = _setup(tmp_path, cb)
    # TRL masked the prompt: each label row holds the 9 completion characters and <eos>.
    row = trainer.train_dataset[0]
    assert sum(label != -100 for label in row["labels"]) == 10
    trainer.train()
    assert cb.decision is not None and cb.decision.reason == "threshold"
    assert trainer.state.global_step == cb.decision.step < 300
    assert cb.missing == 0 and cb.decision.accuracy >= 0.95
    # Counted completion tokens only: 4 examples x 10 labels, minus none lost to the shift.
    assert cb.rule.acc._buf[-1][1] == 4 * 10
    entries = [e for e in trainer.state.log_history if "token_accuracy_stop" in e]
    assert entries and entries[0]["token_accuracy_stop"] == "threshold" and entries[0]["epoch"] > 0
    trainer.state.save_to_json(str(tmp_path / "state.json"))
    saved = json.loads((tmp_path / "state.json").read_text())
    assert any(e.get("token_accuracy_stop") == "threshold" for e in saved["log_history"])
    assert cb._handle is None
