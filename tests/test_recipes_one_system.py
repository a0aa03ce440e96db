"""One recipe system: a study cell and ``train --recipe`` run the same recipe code, measure the same runs,
reach the same answer and label the tidy rows alike."""

from __future__ import annotations

import json

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
    rc = RecipeConfig(recipe="regularized", base=start, lr_grid=(3e-3, 1e-2, 3e-2), wd_grid=(0.1, 1.0),
                      epoch_grid=(1, 2, 4))
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
