from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from repetita.cli import main
from repetita.errors import UserError
from repetita.lm.config import TrainConfig
from repetita.lm.distill import kd_loss
from repetita.lm.recipes import RecipeConfig, run_recipe
from repetita.lm.train import train
from repetita.lm.trainer import Every, StopAt, StopTraining
from repetita.schedules import lr_multiplier

# A tiny run on a synthetic source: ~0.1 s per step on one CPU thread.
TINY = TrainConfig(corpus="markov:V=24,order=1,n=30000,seed=2", context=16, unique_tokens=16 * 48, epochs=2.0,
                   n_layer=1, n_head=2, d_model=16, batch_size=8, lr=1e-2, val_tokens=16 * 32)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_pulse_cli_train_on_default_corpus(tmp_path, capsys):
    out = tmp_path / "run"
    rc = main(["train", "--tokenizer", "bytes", "--n-layer", "2", "--d-model", "32", "--context", "32",
               "--unique-tokens", "2048", "--epochs", "0.25", "--batch-size", "4", "--val-tokens", "256",
               "--out", str(out), "--json"])
    assert rc == 0
    res = json.loads(capsys.readouterr().out)
    assert res["finished"] and res["steps"] == 4 and res["unique_tokens"] == 2048
    # four steps from ~uniform logits (ln 256 = 5.55 nats): the loss must already have moved down
    assert res["history"][-1]["train_batch_loss"] < np.log(256) and res["val_loss"] < np.log(256) - 0.05
    row = res["rows"][0]
    for k in ("params", "tokens", "unique_tokens", "epochs", "loss", "recipe", "seed", "members"):
        assert k in row
    assert row["tokens"] == 4 * 4 * 32 and row["members"] == 1 and row["params"] == res["params"]
    saved = TrainConfig.from_json((out / "config.json").read_text())
    assert saved.corpus == "shakespeare" and saved.n_layer == 2
    assert (out / "model.pt").exists() and (out / "metrics.json").exists()


def test_cli_bad_value_is_one_line_exit_2(tmp_path, capsys):
    assert main(["train", "--weight-decay", "-1", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "weight_decay" in err


def test_config_json_roundtrip_hash_and_validation():
    c = TINY.replace(unique_tokens=None, teacher=None)
    assert TrainConfig.from_json(c.to_json()) == c and TrainConfig.from_json(c.to_json()).hash == c.hash
    assert c.replace(seed=1).hash != c.hash
    with pytest.raises(UserError, match="unknown TrainConfig"):
        TrainConfig.from_dict({"lr": 1e-3, "learning_rate": 1})
    with pytest.raises(UserError, match="teacher"):
        TrainConfig(distill_alpha=0.5)
    with pytest.raises(UserError, match="schedule"):
        TrainConfig(schedule="linear")


def test_resume_equals_uninterrupted(tmp_path):
    cfg = TINY.replace(epochs=3.0, eval_every=2, checkpoint_every=4)
    full = train(cfg, tmp_path / "full")
    part = train(cfg, tmp_path / "resumed", callbacks=[StopAt(7)])
    assert part["finished"] is False and (tmp_path / "resumed" / "ckpt.pt").exists()
    resumed = train(cfg, tmp_path / "resumed")
    assert resumed["finished"]
    assert [h["val_loss"] for h in resumed["history"]] == [h["val_loss"] for h in full["history"]]
    assert [h["train_batch_loss"] for h in resumed["history"]] == [h["train_batch_loss"] for h in full["history"]]
    a = torch.load(tmp_path / "full" / "model.pt")["state"]
    b = torch.load(tmp_path / "resumed" / "model.pt")["state"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    # a finished directory returns its stored result; a different config there is refused
    assert train(cfg, tmp_path / "full")["val_loss"] == full["val_loss"]
    with pytest.raises(UserError, match="different run"):
        train(cfg.replace(seed=9), tmp_path / "full")


def test_hook_can_stop_and_run_resumes(tmp_path):
    seen = []

    def hook(step):
        seen.append(step.step)
        assert step.total == 12 and len(step.member_losses) == 1 and step.loss == step.member_losses[0]
        if step.step == 4:
            raise StopTraining

    r = train(TINY, tmp_path / "r", callbacks=[Every(hook, every=2)])
    assert not r["finished"] and seen == [2, 4]
    # a checkpoint write cut by kill -9 leaves its temp file (named by the dead writer's pid): resume removes it
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    stale = tmp_path / "r" / f".ckpt.pt.{dead}.tmp.pt"
    stale.write_bytes(b"half a checkpoint")
    assert train(TINY, tmp_path / "r")["finished"]
    assert not stale.exists() and not list((tmp_path / "r").glob(".*.tmp*"))


def test_tiny_run_learns_below_chance(tmp_path):
    res = train(TINY.replace(epochs=8.0), tmp_path / "learn")
    chance = np.log(24)  # uniform over the 24 symbols
    first, last = res["history"][0]["val_loss"], res["val_loss"]
    # the source's entropy rate is the floor; a few hundred steps get well below chance and toward it
    assert res["irreducible_loss"] < last < first < chance
    assert last < chance - 1.0 and last < first - 0.5


def test_kd_loss_zero_for_identical_and_positive_otherwise():
    z = torch.randn(2, 3, 4, 9)
    lp = torch.log_softmax(z, -1)
    assert torch.allclose(kd_loss(z, lp, 1.0), torch.zeros(2), atol=1e-6)
    assert torch.allclose(kd_loss(z, lp, 2.0), torch.zeros(2), atol=1e-6)
    assert (kd_loss(z + torch.randn_like(z), lp, 1.0) > 0).all()


def test_distill_and_sequence_distill_run(tmp_path):
    rc = RecipeConfig.of("distill", TINY, members=2, distill_alpha=0.5, seq_distill_frac=0.5)
    res = run_recipe(rc, tmp_path / "d")
    student = res["student_run"]
    assert student["config"]["teacher"] and student["finished"]
    samples = np.load(next((tmp_path / "d" / "runs").glob("*/teacher_samples.npy")))
    assert samples.shape == (48, 17) and samples.max() < 24
    recipes = {r["recipe"] for r in res["rows"]}
    assert recipes == {"ensemble", "distill"}
    # the student is named relative to the recipe folder and starts from its own initialisation
    assert student["config"]["teacher"].startswith("runs/") and student["config"]["seed"] == 1000


def test_regularized_search_certifies_a_local_optimum(tmp_path):
    rc = RecipeConfig.of("regularized", TINY.replace(epochs=1.0), (0.5, 1.0, 2.0), lr_grid=(3e-3, 1e-2, 3e-2),
                         wd_grid=(0.1, 1.0), start=(0, 0, 0))
    res = run_recipe(rc, tmp_path / "reg")
    best = res["best"]["val_loss"]
    assert res["certified_local_optimum"] is True
    assert all(v > best for v in res["neighbours"].values())
    again = run_recipe(rc, tmp_path / "reg")  # finished runs are reused
    assert again["best"] == res["best"] and again["n_runs"] == res["n_runs"]


def test_schedules():
    assert lr_multiplier("cosine", 0, 100, 10) == pytest.approx(0.1)
    assert lr_multiplier("cosine", 10, 100, 10) == pytest.approx(1.0)
    assert lr_multiplier("cosine", 100, 100, 10) == pytest.approx(0.1)
    assert lr_multiplier("wsd", 50, 100, 10) == 1.0 and lr_multiplier("wsd", 99, 100, 10) < 0.1
    assert lr_multiplier("constant", 99, 100, 10) == 1.0
