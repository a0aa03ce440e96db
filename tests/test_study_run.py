"""Studies end to end on a synthetic corpus: run, re-run, kill -9 and resume, Ray, report, export."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from repetita.cli import main
from repetita.study.store import Store

SPEC = """
name = "unit"
seeds = [0]
[base]
corpus = "markov:V=24,order=1,n=30000,seed=2"
context = 16
batch_size = 8
lr = 1e-2
n_head = 2
val_tokens = 256
checkpoint_every = {ckpt}
[[models]]
n_layer = 1
d_model = 16
[grid]
unique_tokens = [256, 1024]
epochs = [1, 2]
[recipes.standard]
[recipes.ensemble]
members = [2]
unique_tokens = [256]
epochs = [2]
[recipes.self-distill]
alpha = [0.5]
unique_tokens = [256]
epochs = [2]
"""
# standard grid; one ensemble of 2 (its two member runs and their evaluation); the self-distill student
# (its teacher is a standard grid run)
N_RUNS = 4 + (2 + 1) + 1


def _spec(tmp_path: Path, ckpt: int = 50, extra: str = "") -> Path:
    p = tmp_path / "unit.toml"
    p.write_text(SPEC.format(ckpt=ckpt) + extra)
    return p


def _losses(study: Path) -> dict:
    store = Store(study / "store.sqlite", create=False)
    try:
        runs = store.runs()
        return {r.id: json.loads(r.metrics)["val_loss"] for r in runs.itertuples() if r.status == "done"}
    finally:
        store.close()


def test_run_rerun_report_export(tmp_path, capsys):
    study = tmp_path / "study"
    spec = _spec(tmp_path)
    assert main(["run", str(spec), "--dir", str(study), "--workers", "2", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["runs"] == N_RUNS and res["counts"]["done"] == N_RUNS
    assert res["counts"]["queued"] == 0 and res["counts"]["failed"] == 0
    tidy = pd.read_csv(res["tidy"])
    assert {"params", "tokens", "unique_tokens", "epochs", "loss", "recipe", "seed", "members"} <= set(tidy.columns)
    assert set(tidy["recipe"]) == {"standard", "ensemble", "self-distill"}
    losses = _losses(study)
    mtime = {p: p.stat().st_mtime_ns for p in (study / "runs").glob("*/result.json")}

    # a re-run finds every run done: nothing is trained again, nothing is added
    assert main(["run", str(spec), "--dir", str(study), "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["new_runs"] == 0 and again["counts"]["done"] == res["counts"]["done"]
    assert {p: p.stat().st_mtime_ns for p in (study / "runs").glob("*/result.json")} == mtime
    assert _losses(study) == losses

    assert main(["report", str(study), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    page = Path(summary["report"]).read_text()
    for name in summary["figures"].values():
        assert (study / "report" / name).stat().st_size > 1000
        assert f'src="{name}"' in page
    assert {"loss_vs_epochs", "ensembles"} <= set(summary["figures"])
    assert json.loads((study / "report" / "report.json").read_text())["counts"]["done"] == len(losses)

    out = tmp_path / "t.parquet"
    assert main(["export", str(study), str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["rows"] == len(tidy)
    pd.testing.assert_frame_equal(pd.read_parquet(out), tidy, check_dtype=False)

    assert main(["status", str(study), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["counts"]["done"] == len(losses)


@pytest.mark.serial
def test_kill_minus_9_then_resume(tmp_path):
    """Kill the runner mid-study; the rerun completes it, resuming the interrupted run from its checkpoint."""
    study = tmp_path / "study"
    # longer runs and frequent checkpoints so the kill lands inside a run that has checkpointed
    spec = _spec(tmp_path, ckpt=2).read_text().replace("epochs = [1, 2]", "epochs = [6, 12]")
    spec_path = tmp_path / "long.toml"
    spec_path.write_text(spec)
    cmd = [sys.executable, "-m", "repetita.cli", "run", str(spec_path), "--dir", str(study), "--workers", "1"]
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    victim = None
    deadline = time.time() + 240
    try:
        while time.time() < deadline and victim is None:
            time.sleep(0.2)
            assert proc.poll() is None, proc.stderr.read().decode()
            db = study / "store.sqlite"
            if not db.exists():
                continue
            con = sqlite3.connect(db, timeout=30)
            try:
                done = con.execute("SELECT COUNT(*) FROM runs WHERE status='done'").fetchone()[0]
                running = con.execute("SELECT id, pid FROM runs WHERE status='running'").fetchall()
            except sqlite3.OperationalError:
                continue
            finally:
                con.close()
            for rid, pid in running:
                if done >= 1 and (study / "runs" / rid / "ckpt.pt").exists():
                    victim = (rid, pid)
        assert victim is not None, "no run reached a checkpoint in time"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    rid, worker_pid = victim
    # the worker dies with its runner (PR_SET_PDEATHSIG): wait for it to be gone
    for _ in range(100):
        try:
            os.kill(worker_pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    before = _losses(study)

    rc = subprocess.run(cmd + ["--json"], env=env, capture_output=True, text=True, timeout=600)
    assert rc.returncode == 0, rc.stderr
    res = json.loads(rc.stdout)
    n_runs = N_RUNS + 1  # the self-distill teacher (2 epochs) is no longer a grid run
    assert res["new_runs"] == 0 and res["counts"]["done"] == n_runs and res["counts"]["running"] == 0
    store = Store(study / "store.sqlite", create=False)
    runs = store.runs()
    tidy = store.tidy()
    store.close()
    assert runs["id"].is_unique and len(runs) == n_runs
    victim_row = runs.set_index("id").loc[rid]
    assert victim_row["resumed"] >= 1 and victim_row["attempts"] == 2
    # runs finished before the kill were not redone
    assert all(runs.set_index("id").loc[k, "attempts"] == 1 for k in before)
    # every run's tidy rows are present exactly once
    assert not tidy.duplicated(["run_id", "member", "combiner"] if "combiner" in tidy else ["run_id", "member"]).any()
    # the resumed run ends exactly where an uninterrupted run of the same config ends
    from repetita.lm.config import TrainConfig
    from repetita.lm.train import train

    config = TrainConfig.from_json(runs.set_index("id").loc[rid, "config"])
    cwd = os.getcwd()
    try:
        os.chdir(study)
        fresh = train(config, tmp_path / "fresh")
    finally:
        os.chdir(cwd)
    assert fresh["val_loss"] == pytest.approx(json.loads(victim_row["metrics"])["val_loss"], abs=1e-6)


@pytest.mark.serial
def test_local_and_ray_give_identical_metrics(tmp_path, capsys):
    pytest.importorskip("ray")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    spec = _spec(tmp_path)
    assert main(["run", str(spec), "--dir", str(tmp_path / "local"), "--workers", "2", "--json"]) == 0
    capsys.readouterr()
    assert main(["run", str(spec), "--dir", str(tmp_path / "ray"), "--ray", "--workers", "2", "--json"]) == 0
    capsys.readouterr()
    local, ray = _losses(tmp_path / "local"), _losses(tmp_path / "ray")
    assert len(local) == N_RUNS and local == ray


def test_diverged_run_is_recorded_with_its_step(tmp_path, capsys):
    """A NaN loss marks the run 'diverged' (with the step) and the rest of the study still runs."""
    spec = _spec(tmp_path).read_text().replace("[recipes.standard]", "[recipes.standard]\nlr = [1e-2, 1e9]")
    spec = spec.replace("lr = 1e-2\n", "grad_clip = 0.0\n", 1)
    path = tmp_path / "div.toml"
    path.write_text(spec)
    study = tmp_path / "study"
    assert main(["run", str(path), "--dir", str(study), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["counts"]["diverged"] == 4 and res["counts"]["failed"] == 0
    assert res["counts"]["done"] == res["runs"] - 4
    assert main(["status", str(study), "--json"]) == 0
    failed = json.loads(capsys.readouterr().out)["failed"]
    assert len(failed) == 4
    assert all(f["status"] == "diverged" and "diverged at step" in f["error"] for f in failed)
    # diverged runs leave no tidy rows behind
    tidy = pd.read_csv(res["tidy"])
    assert (tidy["lr"] < 1).all()
