"""The command recipe: a study of a user's own training command, with its failures marked, resumed after
kill -9, resources passed to the local pool and to Ray, and its bad input refused before anything is written."""

from __future__ import annotations

import json
import os
import shlex
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from repetita.cli import main
from repetita.study.store import Store

TRAINER = Path(__file__).with_name("command_trainer.py")
COMMAND = (f"{shlex.quote(sys.executable)} {shlex.quote(str(TRAINER))} --params {{params}} "
           "--unique-tokens {unique_tokens} --epochs {epochs} --seed {seed} --out {run_dir}")
SPEC = """
name = "cmd"
seeds = [0]
[base]
{base}
[[models]]
params = 1e6
[[models]]
params = 4e6
[grid]
unique_tokens = [1000, 4000]
epochs = [1, 4]
[recipes.command]
command = {command}
result = {{kind = "json", path = "result.json", key = "eval_loss"}}
{extra}
"""


def _spec(tmp_path: Path, command: str = COMMAND, extra: str = "", base: str = "", name: str = "cmd.toml") -> Path:
    p = tmp_path / name
    p.write_text(SPEC.format(command=json.dumps(command), extra=extra, base=base))
    return p


def _run(capsys, spec: Path, study: Path, *flags) -> tuple[int, dict | None, str]:
    code = main(["run", str(spec), "--dir", str(study), "--json", *flags])
    out, err = capsys.readouterr()
    return code, (json.loads(out) if out.strip().startswith("{") else None), err


def _rows(study: Path):
    store = Store(study / "store.sqlite", create=False)
    try:
        return store.runs(), store.tidy()
    finally:
        store.close()


def _by_hand(run_folder: Path, tmp_path: Path) -> float:
    """Run a stored run's command again by hand, into a fresh folder; its loss."""
    cmd = json.loads((run_folder / "command.json").read_text())["command"]
    out = tmp_path / f"hand-{run_folder.name}"
    out.mkdir()
    argv = [str(out) if a == str(run_folder) else a for a in shlex.split(cmd)]
    subprocess.run(argv, check=True)
    return json.loads((out / "result.json").read_text())["eval_loss"]


def test_command_study_runs_records_and_skips_on_rerun(tmp_path, capsys):
    study = tmp_path / "study"
    code, res, _ = _run(capsys, _spec(tmp_path, extra="timeout = 60"), study, "--workers", "2")
    assert code == 0 and res["counts"]["done"] == 8 and res["new_runs"] == 8
    runs, tidy = _rows(study)
    assert len(tidy) == 8 and set(tidy["recipe"]) == {"standard"} and set(runs["recipe"]) == {"command"}
    assert sorted(tidy["params"].unique()) == [1e6, 4e6] and set(tidy["epochs"]) == {1, 4}
    assert (tidy["tokens"] == tidy["unique_tokens"] * tidy["epochs"]).all()
    # each run kept its output, exit code and command; the curve went into the store
    folder = study / "runs" / runs["id"].iloc[0]
    meta = json.loads((folder / "command.json").read_text())
    assert meta["exit_code"] == 0 and not meta["timed_out"] and str(folder) in meta["command"]
    assert (folder / "stdout.log").exists() and (folder / "stderr.log").exists()
    store = Store(study / "store.sqlite", create=False)
    assert len(store.curves()) == 8 * 5
    store.close()
    # the loss in the store is the loss the command computes by hand
    assert json.loads(runs["metrics"].iloc[0])["val_loss"] == _by_hand(folder, tmp_path)
    # a rerun finds every run by id and runs nothing
    code, res, _ = _run(capsys, _spec(tmp_path, extra="timeout = 60"), study)
    assert code == 0 and res["new_runs"] == 0
    assert (_rows(study)[0]["attempts"] == 1).all()
    # a changed command is another spec: refused into this study, or added to it with --add as new runs
    code, res, err = _run(capsys, _spec(tmp_path, COMMAND + " --sleep 0", extra="timeout = 60"), study)
    assert code == 2 and "--add" in err
    code, res, _ = _run(capsys, _spec(tmp_path, COMMAND + " --sleep 0", extra="timeout = 60"), study, "--add")
    assert code == 0 and res["new_runs"] == 8


@pytest.mark.parametrize("mode,status,message", [
    ("fail", "failed", "exit code 3; stderr: loading shards | RuntimeError: out of memory"),
    ("nofile", "failed", "no result file result.json"),
    ("nokey", "failed", "result.json: no key 'eval_loss' (keys: loss_eval, curve, tokens)"),
    ("nan", "diverged", "the final loss is nan"),
    ("timeout", "failed", "timed out after 0.5 s"),
])
def test_failures_are_marked_and_the_study_goes_on(tmp_path, capsys, mode, status, message):
    # only the 1e6 model's runs go wrong: the 4e6 model's finish beside them
    timeout = mode == "timeout"
    spec = _spec(tmp_path, COMMAND + " --mode {mode} --sleep {sleep}", extra="timeout = 0.5" if timeout else "")
    text = spec.read_text().replace("params = 1e6", f'params = 1e6\nmode = "{"ok" if timeout else mode}"\n'
                                    f"sleep = {5 if timeout else 0}")
    spec.write_text(text.replace("params = 4e6", 'params = 4e6\nmode = "ok"\nsleep = 0'))
    study = tmp_path / "study"
    t0 = time.time()
    code, res, err = _run(capsys, spec, study)
    assert time.time() - t0 < 30  # the timeout killed the sleeping commands
    assert res["counts"]["done"] == 4 and res["counts"][status] == 4
    assert code == (3 if status == "failed" else 0)
    runs, _ = _rows(study)
    errors = runs[runs["status"] == status]["error"]
    assert all(message in e and "\n" not in e for e in errors), errors.iloc[0]
    if status == "failed":
        assert "repetita run --retry-failed" in err
        # --retry-failed runs them again (they fail again, with the same message, at attempt 2)
        code, res, _ = _run(capsys, spec, study, "--retry-failed")
        runs, _ = _rows(study)
        assert code == 3 and (runs[runs["status"] == "failed"]["attempts"] == 2).all()


def _prepared(tmp_path: Path, docs: int = 200) -> Path:
    """A small prepared corpus (bytes of a text, uint16 ids) written the way `repetita corpus prepare` does."""
    pytest.importorskip("tokenizers")
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    docs = [f"document {i} " + "the king and the queen sail the sea " * (5 + i % 7) for i in range(docs)]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.train_from_iterator(docs, trainer=trainers.BpeTrainer(vocab_size=300, special_tokens=["<|endoftext|>"],
                                                               show_progress=False))
    tok.save(str(tmp_path / "tokenizer.json"))
    (tmp_path / "docs.jsonl").write_text("".join(json.dumps({"text": d}) + "\n" for d in docs))
    out = tmp_path / "corpus"
    assert main(["corpus", "prepare", str(tmp_path / "docs.jsonl"), "--tokenizer", str(tmp_path / "tokenizer.json"),
                 "--out", str(out), "--val-docs", "10", "--json"]) == 0
    return out


def test_prepared_corpus_fields_reach_the_command(tmp_path, capsys):
    corpus = _prepared(tmp_path)
    capsys.readouterr()
    command = COMMAND + " --data {corpus_path} --dtype {dtype}"
    study = tmp_path / "study"
    code, res, _ = _run(capsys, _spec(tmp_path, command, base=f'corpus = "prepared:{corpus}"'), study)
    assert code == 0 and res["counts"]["done"] == 8
    runs, tidy = _rows(study)
    assert set(tidy["corpus"]) == {json.loads(runs["config"].iloc[0])["corpus_digest"]}
    folder = study / "runs" / runs["id"].iloc[0]
    assert str(corpus / "train.bin") in json.loads((folder / "command.json").read_text())["command"]
    assert json.loads(runs["metrics"].iloc[0])["val_loss"] == _by_hand(folder, tmp_path)
    # a budget beyond the corpus is refused before anything is written, naming its size
    tokens = json.loads((corpus / "manifest.json").read_text())["tokens"]["train"]
    spec = _spec(tmp_path, command, base=f'corpus = "prepared:{corpus}"').read_text()
    path = tmp_path / "big.toml"
    path.write_text(spec.replace("[1000, 4000]", f"[1000, {tokens + 1}]"))
    code, _, err = _run(capsys, path, tmp_path / "big")
    assert code == 2 and f"it has {tokens:,} training tokens" in err and not (tmp_path / "big").exists()


@pytest.mark.parametrize("change,message", [
    (("{seed}", "{sed}"), "field {sed} does not exist"),
    ((shlex.quote(sys.executable), "no-such-trainer-xyz"), "command 'no-such-trainer-xyz': not found on PATH"),
    (("timeout = 60", "resources = {gpu = 1}"), "unknown resource name(s) gpu"),
    (("timeout = 60", "resources = {cpus = -1}"), "resources.cpus = -1 must be a number >= 0"),
    (('key = "eval_loss"', 'column = "x"'), "result: unknown key(s) column"),
    (('kind = "json"', 'kind = "yaml"'), "result kind 'yaml'"),
    (("params = 4e6", "n_layer = 4"), "each model table needs params"),
    (("[grid]", "[recipes.standard]\n[grid]"), "takes the spec to itself"),
    (("[[models]]\nparams = 1e6", "[[models]]\nparams = 1e6\nepochs = 3"), "epochs is set by the study"),
    (("timeout = 60", 'label = "fancy"'), "unknown recipe 'fancy'"),
])
def test_bad_command_specs_are_one_line_and_write_nothing(tmp_path, capsys, change, message):
    text = _spec(tmp_path, extra="timeout = 60").read_text()
    assert change[0] in text
    path = tmp_path / "bad.toml"
    path.write_text(text.replace(change[0], change[1], 1))
    code, _, err = _run(capsys, path, tmp_path / "study")
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "study").exists()


@pytest.mark.serial
def test_kill_minus_9_twice_then_resume_runs_each_command_once(tmp_path):
    """Kill the study twice while commands run; the third start completes it: each run recorded once, with
    the loss its command gives by hand, runs finished before a kill not redone."""
    spec = _spec(tmp_path, COMMAND + " --sleep 0.7")
    study = tmp_path / "study"
    cmd = [sys.executable, "-m", "repetita.cli", "run", str(spec), "--dir", str(study), "--workers", "2"]
    done_before: dict = {}
    for _ in range(2):
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
        deadline, target = time.time() + 120, len(done_before) + 1
        try:
            while time.time() < deadline:
                time.sleep(0.1)
                assert proc.poll() is None, proc.stderr.read().decode()
                try:
                    con = sqlite3.connect(study / "store.sqlite", timeout=30)
                    done = dict(con.execute("SELECT id, attempts FROM runs WHERE status='done'").fetchall())
                    running = con.execute("SELECT COUNT(*) FROM runs WHERE status='running'").fetchone()[0]
                    con.close()
                except sqlite3.OperationalError:
                    continue
                if len(done) >= target and running:
                    break
            else:
                pytest.fail("the study made no progress")
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
        done_before = done
    time.sleep(0.5)  # the commands die with their workers (PR_SET_PDEATHSIG)
    rc = subprocess.run(cmd + ["--json"], capture_output=True, text=True, timeout=300)
    assert rc.returncode == 0, rc.stderr
    assert json.loads(rc.stdout)["counts"]["done"] == 8
    runs, tidy = _rows(study)
    assert runs["id"].is_unique and len(runs) == 8 and tidy["run_id"].is_unique and len(tidy) == 8
    attempts = runs.set_index("id")["attempts"]
    assert all(attempts[rid] == n for rid, n in done_before.items())  # finished before the kill: not redone
    assert (runs["attempts"] >= 2).any()  # some run was interrupted and run again
    for r in runs.itertuples():
        assert json.loads(r.metrics)["val_loss"] == _by_hand(study / "runs" / r.id, tmp_path)


def _intervals(study: Path) -> list[tuple[float, float, str | None]]:
    out = []
    for f in sorted(study.glob("runs/*/ran.json")):
        d = json.loads(f.read_text())
        out.append((d["start"], d["end"], d["gpus"]))
    return out


def test_local_pool_gives_each_gpu_run_its_own_device(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    study = tmp_path / "study"
    code, res, _ = _run(capsys, _spec(tmp_path, COMMAND + " --sleep 0.3", extra="resources = {gpus = 1}"), study,
                        "--workers", "3")
    assert code == 0 and res["counts"]["done"] == 8
    spans = _intervals(study)
    assert {g for *_, g in spans} <= {"0", "1"}
    for i, (s1, e1, g1) in enumerate(spans):  # runs that overlap in time never share a device
        for s2, e2, g2 in spans[i + 1:]:
            assert not (s1 < e2 and s2 < e1 and g1 == g2)
    # more GPUs than the machine shows, or a Ray-only resource, is one line before anything runs
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    code, _, err = _run(capsys, _spec(tmp_path, extra="resources = {gpus = 1}", name="g.toml"), tmp_path / "g")
    assert code == 2 and "needs 1 GPU(s) and this machine shows 0" in err
    code, _, err = _run(capsys, _spec(tmp_path, extra="resources = {custom = {accel = 1}}", name="c.toml"),
                        tmp_path / "c")
    assert code == 2 and "run the study with --ray" in err


@pytest.mark.serial
def test_ray_runs_wait_for_their_resource(tmp_path, capsys):
    """A local Ray cluster with one unit of a fake resource: runs asking for it run one at a time."""
    ray = pytest.importorskip("ray")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    ray.init(num_cpus=2, resources={"accel": 1}, include_dashboard=False, log_to_driver=False)
    try:
        spec = _spec(tmp_path, COMMAND + " --sleep 0.5", extra="resources = {cpus = 1, custom = {accel = 1}}")
        study = tmp_path / "study"
        code, res, _ = _run(capsys, spec, study, "--ray", "--workers", "2")
        assert code == 0 and res["counts"]["done"] == 8
        spans = sorted(_intervals(study))
        assert all(e1 <= s2 for (_, e1, _), (s2, _, _) in zip(spans, spans[1:], strict=False))  # never two at once
        # a resource no node offers is one line, not a study that waits forever
        spec = _spec(tmp_path, extra="resources = {custom = {tpu = 1}}", name="tpu.toml")
        code, _, err = _run(capsys, spec, tmp_path / "tpu", "--ray")
        assert code == 2 and "asks for 1 tpu and the Ray cluster offers 0" in err
    finally:
        ray.shutdown()


def test_the_shipped_hf_trainer_spec_expands_to_its_documented_runs(tmp_path, capsys, monkeypatch):
    """examples/hf_trainer/study.toml (the walk-through of docs/study.md) on a prepared corpus: 36 runs, each
    command naming the script, its budget and the corpus's train.bin."""
    import re

    from repetita.study.spec import expand, load_spec

    corpus = _prepared(tmp_path, docs=600)
    root = Path(__file__).resolve().parents[1]
    raw = load_spec(root / "examples" / "hf_trainer" / "study.toml")
    raw["base"]["corpus"] = f"prepared:{corpus}"
    monkeypatch.chdir(root)  # the spec's paths are relative to the repository root
    runs = expand(raw).runs
    doc = (root / "docs" / "study.md").read_text()
    assert len(runs) == int(re.search(r"^\| `hf_trainer/study\.toml` \| (\d+) \|", doc, flags=re.M).group(1)) == 36
    argv = runs[0].config.argv("/tmp/run")
    assert argv[1] == "examples/hf_trainer/train_gpt2.py" and str(corpus / "train.bin") in argv
    assert {r.config.values["unique_tokens"] for r in runs} == {2048, 8192, 32768}


def test_a_worker_that_dies_fails_its_run_and_the_study_goes_on(tmp_path, capsys):
    """The stand-in trainer kills the worker process running it: that run is marked failed (the worker died),
    the pool is replaced, and every other run finishes. (The killing runs come last in the queue and wait a
    second first, so no other run is in the pool when it breaks.)"""
    spec = _spec(tmp_path, COMMAND + " --mode {mode}")
    text = spec.read_text().replace("params = 1e6", 'params = 1e6\nmode = "ok"')
    spec.write_text(text.replace("params = 4e6", 'params = 4e6\nmode = "ok"').replace(
        "[grid]", '[[models]]\nparams = 2e6\nmode = "kill-worker"\n[grid]'))
    code, res, _ = _run(capsys, spec, tmp_path / "study", "--workers", "2")
    assert code == 3 and res["counts"]["done"] == 8 and res["counts"]["failed"] == 4
    runs, _ = _rows(tmp_path / "study")
    assert all("the worker running it died" in e for e in runs[runs["status"] == "failed"]["error"])
