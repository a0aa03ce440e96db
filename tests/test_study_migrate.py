"""A study written under schema 1 (run ids hashed over every config field) opens under schema 2: ids are
recomputed teachers first, rows, curves and run folders follow, runs done stay done, and nothing is retrained."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

from repetita.cli import main
from repetita.lm.config import TrainConfig
from repetita.study.store import Store

SPEC = """
name = "mig"
[base]
corpus = "markov:V=24,order=1,n=30000,seed=2"
context = 16
batch_size = 8
lr = 1e-2
n_layer = 1
n_head = 2
d_model = 16
val_tokens = 256
checkpoint_every = 7
[grid]
unique_tokens = [256]
epochs = [1, 2]
[recipes.standard]
[recipes.self-distill]
alpha = [0.5]
epochs = [2]
"""


def _legacy_hash(cfg: dict) -> str:
    return hashlib.sha256(json.dumps(cfg, sort_keys=True).encode()).hexdigest()[:16]


def _downgrade(study: Path) -> dict[str, str]:
    """Rewrite a schema-2 study as schema 1 wrote it; returns old id -> current id."""
    con = sqlite3.connect(study / "store.sqlite")
    rows = con.execute("SELECT id, config FROM runs").fetchall()
    configs = {rid: json.loads(c) for rid, c in rows}
    old_of: dict[str, str] = {}
    for rid, cfg in sorted(configs.items(), key=lambda kv: kv[1].get("teacher") is not None):
        if cfg.get("teacher"):
            cfg["teacher"] = "runs/" + old_of[cfg["teacher"].split("/")[1]]
        old_of[rid] = _legacy_hash(cfg)
    for rid, cfg in configs.items():
        old = old_of[rid]
        con.execute("UPDATE runs SET id=?, config=? WHERE id=?", (old, json.dumps(cfg, sort_keys=True), rid))
        con.execute("UPDATE runs SET depends_on=? WHERE depends_on=?", (old, rid))
        con.execute("UPDATE curves SET run_id=? WHERE run_id=?", (old, rid))
        con.execute("UPDATE rows SET run_id=? WHERE run_id=?", (old, rid))
        (study / "runs" / rid).rename(study / "runs" / old)
        (study / "runs" / old / "config.json").write_text(json.dumps(cfg))
    con.execute("UPDATE meta SET value='1' WHERE key='schema_version'")
    con.commit()
    con.close()
    return {v: k for k, v in old_of.items()}


def test_schema_1_study_migrates_and_nothing_is_retrained(tmp_path, capsys):
    spec, study = tmp_path / "mig.toml", tmp_path / "study"
    spec.write_text(SPEC)
    assert main(["run", str(spec), "--dir", str(study), "--json"]) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["counts"]["done"] == 3  # two standard runs; the student's teacher is the 2-epoch one
    losses = pd_losses(study)
    current_of = _downgrade(study)
    assert set(current_of) != set(losses)  # the ids really changed

    again = main(["run", str(spec), "--dir", str(study), "--json"])
    assert again == 0
    out = json.loads(capsys.readouterr().out)
    assert out["new_runs"] == 0 and out["counts"]["done"] == 3  # done stayed done: nothing retrained
    assert pd_losses(study) == losses  # same ids, same losses
    store = Store.of_study(study)
    runs = store.runs()
    student = runs[runs["recipe"] == "self-distill"].iloc[0]
    cfg = TrainConfig.from_json(student["config"])
    assert cfg.hash == student["id"] and student["depends_on"] == cfg.teacher.split("/")[1]
    assert (study / "runs" / student["depends_on"] / "model.pt").exists()
    assert set(store.tidy()["run_id"]) == set(losses)
    store.close()
    assert sorted(p.name for p in (study / "runs").iterdir()) == sorted(losses)


def pd_losses(study: Path) -> dict:
    store = Store.of_study(study)
    try:
        return {r.id: json.loads(r.metrics)["val_loss"] for r in store.runs().itertuples() if r.status == "done"}
    finally:
        store.close()
