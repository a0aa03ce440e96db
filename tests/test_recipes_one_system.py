"""One recipe system: a study cell and ``train --recipe`` run the same recipe code, measure the same runs,
reach the same answer and label the tidy rows alike."""

from __future__ import annotations

import json

import pytest
import torch

from repetita.cli import main
from repetita.lm.config import TrainConfig
from repetita.lm.recipes import RecipeConfig, proposals, run_recipe
from repetita.study.store import Store

BASE = dict(corpus="markov:V=24,order=1,n=30000,seed=2", context=16, batch_size=8, n_layer=1, n_head=2,
            d_model=16, val_tokens=256)
SPEC = """
name = "reg"
[base]
corpus = "markov:V=24,order=1,n=30000,seed=2"
context = 16
batch_size = 8
n_layer = 1
n_head = 2
d_model = 16
val_tokens = 256
[grid]
unique_tokens = [384]
epochs = [1, 2, 4]
[recipes.regularized]
lr = [3e-3, 1e-2, 3e-2]
weight_decay = [0.1, 1.0]
"""


def test_study_coordinate_search_equals_train_recipe(tmp_path, capsys):
    torch.set_num_threads(1)
    spec = tmp_path / "reg.toml"
    spec.write_text(SPEC)
    assert main(["run", str(spec), "--dir", str(tmp_path / "study"), "--json"]) == 0
    study = json.loads(capsys.readouterr().out)
    # the search asked for runs in rounds: more than its start point, fewer than the 18-point grid
    assert 1 < study["counts"]["done"] < 18 and study["counts"]["queued"] == 0

    start = TrainConfig(**BASE, unique_tokens=384, epochs=2, lr=1e-2, weight_decay=0.1)
    rc = RecipeConfig.of("regularized", start, (1, 2, 4), lr_grid=(3e-3, 1e-2, 3e-2), wd_grid=(0.1, 1.0))
    local = run_recipe(rc, tmp_path / "local")
    assert local["certified_local_optimum"] and local["n_runs"] == study["counts"]["done"]

    store = Store.of_study(tmp_path / "study")
    results = store.results()
    tidy = store.tidy()
    store.close()
    assert {t["run_id"] for t in local["trace"]} == set(results)  # the very same runs (same ids)
    assert proposals(rc, results) == []  # nothing left to measure: the study's search has ended too
    best_study = min(r["val_loss"] for r in results.values())
    assert best_study == local["best"]["val_loss"]
    assert set(tidy["recipe"]) == {r["recipe"] for r in local["rows"]} == {"regularized"}


def test_each_recipe_owns_its_knobs_and_old_recipe_files_still_read():
    from repetita.errors import UserError
    from repetita.lm.recipes import DistillParams, RegularizedParams, StandardParams

    base = TrainConfig(**BASE)
    std = RecipeConfig.of("standard", base, (1, 2), weight_decay=0.3)
    assert std.params == StandardParams(weight_decay=0.3) and std.epoch_grid == (1, 2)
    with pytest.raises(UserError, match="recipe 'standard' takes no lr_grid; it takes epoch_grid, weight_decay"):
        RecipeConfig.of("standard", base, lr_grid=(1e-3,))
    reg = RecipeConfig.of("regularized", base, lr_grid=(1e-3, 3e-3), wd_grid=(0.1,))
    assert RecipeConfig.from_dict(reg.to_dict()) == reg  # the recipe.json layout reads back
    # an older recipe.json held every recipe's knobs side by side: each recipe keeps its own
    flat = {"recipe": "distill", "base": base.to_dict(), "epoch_grid": [1, 2, 4], "lr_grid": [1e-3], "members": 2,
            "distill_alpha": 0.7, "distill_temperature": 1.0, "seq_distill_frac": 0.0, "search": "grid"}
    old = RecipeConfig.from_dict(flat)
    assert old.params == DistillParams(members=2, distill_alpha=0.7) and old.epoch_grid == (1, 2, 4)
    with pytest.raises(UserError, match="members=1 must be >= 2"):
        RecipeConfig.of("ensemble", base, members=1)
    assert isinstance(RecipeConfig.of("regularized", base).params, RegularizedParams)
