"""A real transformers Trainer on a tiny model: the callback stops it early and records why."""

import json

import pytest

pytest.importorskip("accelerate")  # transformers' Trainer needs it


def _setup(tmp_path, callback, max_steps=300, **extra):
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel, Trainer, TrainingArguments

    from repetita.sft.task import VOCAB_SIZE, ArithmeticTask, make_batch

    torch.manual_seed(0)
    task = ArithmeticTask(n_ops=1, modulus=3)
    examples = task.pool(4, seed=0)
    ids, labels = make_batch(examples)
    rows = [{"input_ids": ids[i], "labels": labels[i]} for i in range(len(examples))]
    model = GPT2LMHeadModel(GPT2Config(vocab_size=VOCAB_SIZE, n_positions=32, n_embd=32, n_layer=1, n_head=2))
    args = TrainingArguments(
        output_dir=str(tmp_path),
        max_steps=max_steps,
        **{"per_device_train_batch_size": 4, **extra},
        learning_rate=1e-2,
        report_to=[],
        use_cpu=True,
        save_strategy="no",
        logging_steps=1000,
        disable_tqdm=True,
        seed=0,
    )
    trainer = Trainer(model=model, args=args, train_dataset=rows, callbacks=[callback])
    return trainer


def test_trainer_stops_early_and_records_reason(tmp_path):
    from repetita.sft import TokenAccuracyStopping

    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    cb = TokenAccuracyStopping(threshold=0.95, window=5, plateau_window=0)
    from transformers import TrainerCallback

    assert isinstance(cb, TrainerCallback)
    trainer = _setup(tmp_path, cb)
    trainer.train()
    assert cb.decision is not None and cb.decision.reason == "threshold"
    assert trainer.state.global_step == cb.decision.step < 300
    assert cb.missing == 0 and cb.decision.accuracy >= 0.95
    entries = [e for e in trainer.state.log_history if "token_accuracy_stop" in e]
    assert entries and entries[0]["token_accuracy_stop"] == "threshold" and entries[0]["epoch"] > 0
    trainer.state.save_to_json(str(tmp_path / "state.json"))
    saved = json.loads((tmp_path / "state.json").read_text())
    assert any(e.get("token_accuracy_stop") == "threshold" for e in saved["log_history"])
    assert cb._handle is None  # the forward hook is removed after training


def test_record_only_mode_keeps_training(tmp_path):
    from repetita.sft import TokenAccuracyStopping

    cb = TokenAccuracyStopping(threshold=0.95, window=5, plateau_window=0, stop=False)
    trainer = _setup(tmp_path, cb, max_steps=120)
    trainer.train()
    assert trainer.state.global_step == 120
    assert cb.decision is not None and cb.decision.step < 120


def test_gradient_accumulation_pools_micro_batches(tmp_path):
    from repetita.sft import TokenAccuracyStopping

    cb = TokenAccuracyStopping(threshold=1.0, window=1, plateau_window=0, stop=False)
    trainer = _setup(tmp_path, cb, max_steps=3, per_device_train_batch_size=2, gradient_accumulation_steps=2)
    trainer.train()
    # One rule update per optimizer step, not per micro-batch.
    assert [s for s, _ in cb.history] == [1, 2, 3]
    assert all(v is not None for _, v in cb.history)
    # Each step pools 2 micro-batches of 2 examples with 9 response tokens each (n_ops=1).
    assert cb.rule.acc._buf[-1][1] == 4 * 9
