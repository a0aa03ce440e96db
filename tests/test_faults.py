"""Faults end in one line and lose nothing: a full disk, a damaged store page, a damaged checkpoint, two
processes opening one new store, two writers of one log, failed and abandoned runs, a deleted study folder,
and training that reproduces bit for bit with default options."""

from __future__ import annotations

import json
import os
import resource
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from repetita.cli import main  # noqa: E402
from repetita.errors import UserError  # noqa: E402

TRAIN = ["--corpus", "markov:V=24,order=1,n=30000,seed=2", "--context", "16", "--unique-tokens", "768",
         "--epochs", "2", "--n-layer", "1", "--n-head", "2", "--d-model", "32", "--batch-size", "8",
         "--val-tokens", "512", "--checkpoint-every", "2"]
SPEC = """
name = "faults"
seeds = [0]
[base]
corpus = "markov:V=24,order=1,n=30000,seed=2"
context = 16
batch_size = 8
lr = 1e-2
n_head = 2
val_tokens = 256
checkpoint_every = 2
[[models]]
n_layer = 1
d_model = 16
[grid]
unique_tokens = [256]
epochs = [1, 2]
[recipes.standard]
"""


def _one_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def _leftovers(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if ".tmp" in p.name]


def _limit_file_size(limit: int):
    def apply():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit then fails with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


@pytest.mark.e2e  # trains, fails and resumes a run: 16 s of a suite that must stay under 5 minutes
def test_disk_full_during_train_is_one_line_and_the_run_resumes(tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "repetita.cli", "train", *TRAIN, "--out", str(out)]
    env = os.environ | {"OMP_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    # a checkpoint of this model is about 120 kB: a 40 kB file-size limit stops the first one mid-write
    full = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, preexec_fn=_limit_file_size(40_000))
    assert full.returncode == 2
    line = _one_line(full.stderr)
    assert "cannot write" in line and "ckpt.pt" in line
    assert _leftovers(out) == []
    # nothing lost: with space again the same command trains the run to its end
    again = subprocess.run(cmd + ["--json"], env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert np.isfinite(json.loads(again.stdout)["val_loss"])


def test_failed_writer_removes_its_temp_file_and_keeps_the_old_result(tmp_path):
    from repetita.io import write_atomic, write_text

    target = write_text(tmp_path / "result.json", "old")

    def torch_like_disk_full(tmp: Path) -> None:
        tmp.write_bytes(b"x" * 1000)
        raise RuntimeError("[enforce fail at inline_container.cc:672] . PytorchStreamWriter failed writing file")

    with pytest.raises(UserError, match="cannot write .*result.json.*disk full"):
        write_atomic(target, torch_like_disk_full)
    assert target.read_text() == "old" and _leftovers(tmp_path) == []

    def interrupted(tmp: Path) -> None:
        tmp.write_bytes(b"partial")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_atomic(target, interrupted)
    assert target.read_text() == "old" and _leftovers(tmp_path) == []


def _study(tmp_path: Path, capsys) -> Path:
    spec = tmp_path / "faults.toml"
    spec.write_text(SPEC)
    study = tmp_path / "study"
    assert main(["run", str(spec), "--dir", str(study), "--json"]) == 0
    capsys.readouterr()
    return study


def _queued(tmp_path: Path):
    """A new study with its runs queued and none trained: (spec path, study folder, open store)."""
    from repetita.study.driver import prepare_study

    spec = tmp_path / "faults.toml"
    spec.write_text(SPEC)
    study = tmp_path / "study"
    store, _, _ = prepare_study(spec, study)
    return spec, study, store


def test_damaged_store_page_is_one_line_everywhere_and_exports_nothing(tmp_path, capsys):
    study = _study(tmp_path, capsys)
    db = study / "store.sqlite"
    size = db.stat().st_size
    assert size >= 4 * 4096
    data = bytearray(db.read_bytes())
    rng = np.random.default_rng(0)
    data[2 * 4096 + 16: 3 * 4096] = rng.integers(0, 256, 4096 - 16, dtype=np.uint8).tobytes()  # a table page
    db.write_bytes(bytes(data))
    before = db.read_bytes()
    out = tmp_path / "export.csv"
    for argv in (["status", str(study)], ["report", str(study)], ["export", str(study), str(out)],
                 ["run", str(tmp_path / "faults.toml"), "--dir", str(study)]):
        assert main(argv) == 2, argv
        line = _one_line(capsys.readouterr().err)
        assert "store.sqlite" in line and "damaged" in line, line
    assert not out.exists() and db.read_bytes() == before  # no partial export, the store untouched


def test_damaged_checkpoint_is_one_line_in_train(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", *TRAIN, "--out", str(out), "--json"]) == 0
    capsys.readouterr()
    (out / "result.json").unlink()  # as if killed before the end, then the checkpoint damaged
    for garbage in (b"", b"\x00garbage" * 50, b"PK\x03\x04truncated zip"):
        (out / "ckpt.pt").write_bytes(garbage)
        assert main(["train", *TRAIN, "--out", str(out)]) == 2
        line = _one_line(capsys.readouterr().err)
        assert f"checkpoint '{out / 'ckpt.pt'}' is damaged" in line


def test_study_run_with_damaged_checkpoint_fails_is_moved_aside_and_retries_from_scratch(tmp_path, capsys):
    spec, study, store = _queued(tmp_path)
    rid = store.ready()[0]
    config = store.config(rid)
    store.close()
    folder = study / "runs" / rid
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(config)  # a run interrupted after its first checkpoint...
    (folder / "ckpt.pt").write_bytes(b"not a checkpoint at all")  # ...which was then damaged
    # the damaged run fails, the other runs; the study says how many failed and exits 3
    code = main(["run", str(spec), "--dir", str(study)])
    captured = capsys.readouterr()
    assert code == 3
    assert "1 run(s) failed" in captured.err and "--retry-failed" in captured.err
    kept = list(folder.glob("ckpt.pt.damaged-*"))
    assert len(kept) == 1 and kept[0].read_bytes() == b"not a checkpoint at all"
    assert main(["status", str(study), "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["counts"]["failed"] == 1 and status["counts"]["done"] == 1
    assert "ckpt.pt" in status["failed"][0]["error"] and "damaged" in status["failed"][0]["error"]
    assert main(["run", str(spec), "--dir", str(study), "--retry-failed", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["counts"]["done"] == 2 and res["counts"]["failed"] == 0 and res["exit_code"] == 0


OPEN_STORE = "import sys; from repetita.study.store import Store; Store(sys.argv[1]).close()"


@pytest.mark.serial
def test_concurrent_first_opens_of_a_new_store(tmp_path):
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    for attempt in range(3):
        db = tmp_path / f"s{attempt}" / "store.sqlite"
        db.parent.mkdir()
        procs = [subprocess.Popen([sys.executable, "-c", OPEN_STORE, str(db)], env=env, stderr=subprocess.PIPE,
                                  text=True) for _ in range(6)]
        for p in procs:
            assert p.wait(timeout=120) == 0, p.stderr.read()
        con = sqlite3.connect(db)
        assert con.execute("SELECT value FROM meta WHERE key='schema_version'").fetchall() == [("2",)]
        con.close()


def test_two_inject_writers_write_each_row_once(tmp_path):
    from repetita.io import JsonlAppender, read_log

    log = tmp_path / "inject.jsonl"
    code = ("import sys; from repetita.io import JsonlAppender\n"
            "a = JsonlAppender(sys.argv[1])\n"
            "for i in range(60): a.write_unique({'k': i % 30, 'by': sys.argv[2]}, lambda r: r['k'])\n")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(log), str(w)]) for w in range(3)]
    assert all(p.wait(timeout=60) == 0 for p in procs)
    keys = [r["k"] for r in read_log(log)]
    assert sorted(keys) == list(range(30))  # every key exactly once, whoever wrote it
    assert JsonlAppender(log).write_unique({"k": 3}, lambda r: r["k"]) is False


def test_status_tells_an_abandoned_run_from_a_running_one(tmp_path, capsys):
    spec, study, store = _queued(tmp_path)
    gone, alive = store.ready()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    assert store.claim(gone, pid=dead.pid) and store.claim(alive, pid=os.getpid())
    store.close()
    assert main(["status", str(study), "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["counts"]["running"] == 1 and status["counts"]["abandoned"] == 1
    assert status["abandoned"] == [gone]


def test_deleted_study_folder_stops_the_workers_with_one_line(tmp_path, capsys):
    import shutil

    from repetita.study.runners import LocalRunner, work
    from repetita.study.store import StudyGone, check_study_alive

    _, study, store = _queued(tmp_path)
    rid = store.ready()[0]
    config = store.config(rid)
    store.close()
    shutil.rmtree(study)
    with pytest.raises(StudyGone, match="was deleted while it ran"):
        check_study_alive(study / "store.sqlite")
    # a worker handed a run of a deleted study reports it and trains nothing
    status, payload = work(str(study), rid, config)
    assert status == "gone" and "was deleted while it ran" in payload["error"]
    assert not study.exists()
    study.mkdir()
    with pytest.raises(UserError):
        LocalRunner(study).run()
    assert not (study / "runs").exists()  # the worker did not recreate run folders


def test_train_with_default_options_reproduces_bit_for_bit(tmp_path, capsys):
    torch.set_num_threads(2)  # whatever the process had, the run uses its config's one thread
    try:
        results = []
        for name in ("a", "b"):
            assert main(["train", *TRAIN, "--out", str(tmp_path / name), "--json"]) == 0
            results.append(json.loads(capsys.readouterr().out))
        assert torch.get_num_threads() == 2  # restored after the run
    finally:
        torch.set_num_threads(1)
    a, b = results
    assert [h["val_loss"] for h in a["history"]] == [h["val_loss"] for h in b["history"]]
    assert [h["train_loss"] for h in a["history"]] == [h["train_loss"] for h in b["history"]]
    wa = torch.load(tmp_path / "a" / "model.pt", weights_only=True)
    wb = torch.load(tmp_path / "b" / "model.pt", weights_only=True)
    flat_a = wa["model"] if "model" in wa else wa
    flat_b = wb["model"] if "model" in wb else wb
    assert all(torch.equal(flat_a[k], flat_b[k]) for k in flat_a if isinstance(flat_a[k], torch.Tensor))
    assert json.loads((tmp_path / "a" / "config.json").read_text())["threads"] == 1


def test_more_threads_warn_that_the_run_is_not_reproducible(tmp_path, capsys):
    assert main(["train", *TRAIN, "--threads", "2", "--out", str(tmp_path / "t"), "--json"]) == 0
    captured = capsys.readouterr()
    assert "not bit-reproducible" in captured.err
    assert json.loads((tmp_path / "t" / "config.json").read_text())["threads"] == 2
