"""Curves in from the tools people log with: one tidy table whatever wrote them."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from repetita.cli import main
from repetita.errors import UserError
from repetita.laws.curves import detect, final_losses, read_curves


def _hf_trainer_state(tmp_path) -> tuple[str, list[tuple[int, float]]]:
    """A real (tiny, CPU) Hugging Face Trainer run that evaluates every 2 steps and saves its state."""
    pytest.importorskip("accelerate")
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel, Trainer, TrainingArguments

    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    rows = [{"input_ids": (ids := torch.randint(0, 32, (16,), generator=g)), "labels": ids} for _ in range(16)]
    model = GPT2LMHeadModel(GPT2Config(vocab_size=32, n_positions=16, n_embd=16, n_layer=1, n_head=2))
    args = TrainingArguments(output_dir=str(tmp_path / "hf"), max_steps=8, per_device_train_batch_size=4,
                             per_device_eval_batch_size=4, eval_strategy="steps", eval_steps=2, learning_rate=1e-2,
                             report_to=[], use_cpu=True, save_strategy="no", logging_steps=2, disable_tqdm=True, seed=0)
    trainer = Trainer(model=model, args=args, train_dataset=rows, eval_dataset=rows[:8])
    trainer.train()
    trainer.save_state()
    path = tmp_path / "hf" / "trainer_state.json"
    hist = json.loads(path.read_text())["log_history"]
    return str(path), [(e["step"], e["eval_loss"]) for e in hist if "eval_loss" in e]


def test_three_loggers_give_the_same_tidy_table(tmp_path):
    """trainer_state.json from a real Trainer; the same evaluations through torch's SummaryWriter and as W&B
    history and chart CSVs: identical tidy tables (TensorBoard stores float32, so its losses are compared at
    float32 precision)."""
    pytest.importorskip("tbparse")
    from torch.utils.tensorboard import SummaryWriter

    state, evals = _hf_trainer_state(tmp_path)
    assert [s for s, _ in evals] == [2, 4, 6, 8]
    writer = SummaryWriter(str(tmp_path / "tb" / "tiny"))
    for step, loss in evals:
        writer.add_scalar("eval/loss", loss, step)
        writer.add_scalar("train/loss", loss + 1.0, step)  # another tag, which must not leak in
    writer.close()
    pd.DataFrame({"_step": [s for s, _ in evals], "eval/loss": [v for _, v in evals],
                  "train/loss": [v + 1 for _, v in evals]}).to_csv(tmp_path / "history.csv", index=False)
    pd.DataFrame({"Step": [s for s, _ in evals], "tiny - eval/loss": [v for _, v in evals],
                  "tiny - eval/loss__MIN": [v - 0.1 for _, v in evals],
                  "tiny - eval/loss__MAX": [v + 0.1 for _, v in evals]}).to_csv(tmp_path / "chart.csv", index=False)
    kinds = {p: detect(p) for p in (state, tmp_path / "tb", tmp_path / "history.csv", tmp_path / "chart.csv")}
    assert list(kinds.values()) == ["trainer_state", "tensorboard", "wandb-history", "wandb-chart"]
    tables = [read_curves(p, run="tiny", tokens_per_step=64) for p in kinds]
    ref = tables[0]
    assert list(ref.columns) == ["run", "step", "loss", "tokens"] and ref["tokens"].tolist() == [128, 256, 384, 512]
    for t in tables[1:]:
        assert t[["run", "step", "tokens"]].equals(ref[["run", "step", "tokens"]])
        np.testing.assert_allclose(t["loss"], ref["loss"], rtol=2e-7)  # float32 storage in TensorBoard
    pd.testing.assert_frame_equal(tables[2], ref)  # CSV round trips are exact
    pd.testing.assert_frame_equal(tables[3], ref)
    # the run names come from the sources themselves when not given
    assert set(read_curves(tmp_path / "tb")["run"]) == {"tiny"}
    assert set(read_curves(tmp_path / "chart.csv")["run"]) == {"tiny"}


def test_metadata_and_final_losses(tmp_path):
    curves = pd.DataFrame({"run": ["a"] * 3 + ["b"] * 3, "step": [1, 2, 3] * 2, "loss": [3.0, 2.5, 2.2, 3.1, 2.7, 2.6]})
    curves.to_csv(tmp_path / "c.csv", index=False)
    meta = pd.DataFrame({"run": ["a", "b"], "unique_tokens": [1e6, 2e6], "epochs": [4.0, 2.0], "params": [1e7, 1e7]})
    df = read_curves(tmp_path / "c.csv", tokens_per_step=1e6 * 4 / 3, meta=meta)
    last = final_losses(df)
    assert last["run"].tolist() == ["a", "b"] and last["loss"].tolist() == [2.2, 2.6]
    assert last["unique_tokens"].tolist() == [1e6, 2e6]
    with pytest.raises(UserError, match="no metadata for run"):
        read_curves(tmp_path / "c.csv", meta=meta[meta["run"] == "a"])


@pytest.mark.parametrize("content, name, message", [
    ("run,step,loss\na,1,3.0\na,1,2.9\n", "dup.csv", "has step 1 twice"),
    ("run,step,loss\na,1,3.0\na,2,nan\n", "nan.csv", "non-finite"),
    ("run,step\na,1\na,2\n", "noloss.csv", "needs a loss column"),
    ('{"log_history": [{"step": 1, "loss": 2.0}]}', "trainer_state.json", "no 'eval_loss' in log_history"),
    ('{"global_step": 3}', "trainer_state.json", "not a Hugging Face trainer_state.json"),
    ("{not json", "trainer_state.json", "not valid JSON"),
])
def test_malformed_curves_are_one_line(tmp_path, capsys, content, name, message):
    (tmp_path / name).write_text(content)
    assert main(["reuse", str(tmp_path / name), "--law-file", "example:datablations-published"]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_fit_reads_curves(tmp_path, capsys, published_freeze):
    """repetita fit takes curves too: every evaluation as a run row (part-way through the first epoch only the
    tokens so far are unique), or with --final each run's last evaluation."""
    from repetita.examples import load_example
    from repetita.laws.curves import as_runs

    c = final_losses(load_example("datablations-curves"))
    assert len(c) == 48
    rows = as_runs(pd.DataFrame({"run": ["a"] * 3, "tokens": [1e6, 2e6, 4e6], "unique_tokens": [2e6] * 3,
                                 "epochs": [2.0] * 3, "loss": [3.0, 2.8, 2.7]}))
    assert rows["unique_tokens"].tolist() == [1e6, 2e6, 2e6] and rows["epochs"].tolist() == [1.0, 1.0, 2.0]
    freeze = published_freeze
    assert main(["fit", "--example", "datablations-curves", "--final", "--law", "data-constrained", *freeze, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["n_rows"] == 48 and "final evaluations" in out["source"]
    tidy = tmp_path / "runs.csv"
    pd.DataFrame({"params": [1e8, 2e8], "tokens": [1e9, 2e9], "unique_tokens": [1e9, 1e9], "loss": [3.0, 2.9]}).to_csv(tidy, index=False)
    assert main(["fit", str(tidy), "--law", "chinchilla", "--final"]) == 2
    assert "--final needs curves" in capsys.readouterr().err
