"""The reuse protocol as a study recipe: constant-LR K-epoch runs on nested U, one shared one-pass reference,
E(K, U) and K*(U) in the report."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from repetita.cli import main
from repetita.errors import UserError
from repetita.study.spec import expand, load_spec, resolve_spec

SPEC = """
name = "reuse-unit"
seeds = [0]
[base]
corpus = "markov:V=24,order=1,n=60000,seed=2"
context = 16
batch_size = 8
lr = 1e-2
n_head = 2
val_tokens = 512
[[models]]
n_layer = 1
d_model = 16
[grid]
unique_tokens = [256, 1024, 4096]
epochs = [1, 2, 4, 8]
[recipes.reuse]
reference_tokens = 32768
"""


@pytest.mark.parametrize("name, models, us, ks, seeds", [
    ("reuse-cpu", 1, 6, 7, 3), ("reuse-gpu", 2, 4, 8, 3), ("reuse-control", 1, 6, 7, 2)])
def test_shipped_reuse_specs_expand(name, models, us, ks, seeds):
    study = expand(load_spec(resolve_spec(f"example:{name}")), check_corpus=False)
    configs = {r.config.hash: r.config for r in study.runs}
    runs = [c for c in configs.values() if c.recipe == "reuse"]
    refs = [c for c in configs.values() if c.recipe == "reuse-reference"]
    assert len(runs) == models * us * ks * seeds and len(refs) == models * seeds  # one reference per model and seed
    assert {c.schedule for c in configs.values()} == {"constant"} and {c.warmup_frac for c in configs.values()} == {0.0}
    us_seen = sorted({c.unique_tokens for c in runs})
    assert us_seen[-1] / us_seen[0] >= 10 ** 1.5 and max(c.epochs for c in runs) >= 64


@pytest.mark.e2e  # a whole study with two workers: 17 s of a suite that must stay under 5 minutes
def test_reuse_study_end_to_end(tmp_path, capsys):
    spec = tmp_path / "reuse.toml"
    spec.write_text(SPEC)
    assert main(["run", str(spec), "--dir", str(tmp_path / "s"), "--workers", "2", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["counts"]["done"] == 3 * 4 + 1  # 12 K-epoch runs and one reference shared by the three U
    assert main(["report", str(tmp_path / "s"), "--json"]) == 0
    reuse = json.loads(capsys.readouterr().out)["reuse"]
    table = pd.DataFrame(reuse["table"])
    assert len(table) == 12 and set(table["unique_tokens"]) == {256, 1024, 4096}
    assert len(reuse["k_star"]) == 3 and len(reuse["fits"]) == 1  # one model size: one K*(U) fit
    # E at one epoch is about 1 wherever the reference covers it; more epochs are worth more fresh data
    one = table[(table["epochs"] == 1) & ~table["extrapolated"]]
    assert len(one) >= 2 and (one["reuse_rate"] - 1).abs().max() < 0.35
    big = table[table["unique_tokens"] == 4096].sort_values("epochs")
    assert big["reuse_rate"].iloc[-1] > big["reuse_rate"].iloc[0]
    page = (tmp_path / "s" / "report" / "report.html").read_text()
    assert "Effective reuse E(K, U) measured" in page


def test_reuse_recipe_needs_a_reference(tmp_path):
    raw = load_spec_text(tmp_path, SPEC.replace("reference_tokens = 32768", ""))
    with pytest.raises(UserError, match="needs reference_tokens"):
        expand(raw)


def load_spec_text(tmp_path, text):
    p = tmp_path / "s.toml"
    p.write_text(text)
    return load_spec(p)


def test_a_budget_beyond_the_corpus_is_refused_before_anything_is_written(tmp_path, capsys):
    spec = tmp_path / "big.toml"
    spec.write_text(SPEC.replace("reference_tokens = 32768", "reference_tokens = 10000000"))
    assert main(["run", str(spec), "--dir", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err
    assert "exceeds the training pool" in err and err.count("\n") == 1 and not (tmp_path / "s").exists()
