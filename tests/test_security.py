"""The command recipe run safely: result paths confined to the run folder, field values never read by a
shell, nothing a command starts outliving the study, and a bad result a failed run (never a crashed study).

Every test lists the folder around the study before and after: no file outside the study is touched."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from test_study_command import _rows, _run  # tests/ is on sys.path (rootdir-relative import)

from repetita.cli import main
from repetita.study.store import Store

TRAINER = Path(__file__).with_name("command_trainer.py")
ARGS = ("--params {params} --unique-tokens {unique_tokens} --epochs {epochs} --seed {seed}")
DIRECT = f"{{python}} {TRAINER} {ARGS} --out {{run_dir}}"
# the documented shell form: fields come from the environment, quoted by the shell itself
SHELL = ("bash -c '\"$REPETITA_PYTHON\" " + str(TRAINER) + " --params \"$REPETITA_PARAMS\" --unique-tokens "
         "\"$REPETITA_UNIQUE_TOKENS\" --epochs \"$REPETITA_EPOCHS\" --seed \"$REPETITA_SEED\" --mode "
         "\"$REPETITA_MODE\" --sleep \"$REPETITA_SLEEP\" --note \"$REPETITA_NOTE\" --out \"$REPETITA_RUN_DIR\" 2>&1 | "
         "tee \"$REPETITA_RUN_DIR/log.txt\"'")
NASTY = ["two words", "x;touch${IFS}PWNED", "it's \"quoted\"", "$(touch PWNED)", "line one\nline two",
         "`touch PWNED`", "a\\b && echo PWNED > PWNED"]


def _spec(path: Path, command: str, *, base: str = "", fields: str = "", result: str = "",
          models: tuple = (1e6,), budgets: tuple = (1000,), epochs: tuple = (1,)) -> Path:
    text = ["name = \"sec\"", "seeds = [0]", "[base]", base]
    for n in models:
        text += ["[[models]]", f"params = {n:g}"]
    text += ["[grid]", f"unique_tokens = {list(budgets)}", f"epochs = {list(epochs)}", "[recipes.command]",
             f"command = {json.dumps(command)}", result or 'result = {kind = "json", path = "result.json"}', fields]
    path.write_text("\n".join(text) + "\n")
    return path


def _listing(root: Path, skip: Path | None = None) -> dict:
    """Every file under root (but the study) with its size and modification time."""
    out = {}
    for p in sorted(root.rglob("*")):
        if skip is not None and (p == skip or skip in p.parents):
            continue
        st = p.lstat()
        out[str(p.relative_to(root))] = (st.st_size, st.st_mtime_ns)
    return out


@pytest.fixture
def here(tmp_path, monkeypatch):
    """Commands run in the folder `repetita run` started in: a PWNED file would land there."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    victim = tmp_path / "victim.json"
    victim.write_text(json.dumps({"eval_loss": 1.5}))
    return tmp_path


# --- 1. paths confined ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["../../../victim.json", "../victim.json", "sub/../../victim.json", "/tmp/x.json",
                                  "..", "a/../../../b"])
def test_a_result_path_out_of_the_run_folder_is_refused_before_anything_rows(here, capsys, path):
    spec = _spec(here / "s.toml", DIRECT, result=f'result = {{kind = "json", path = {json.dumps(path)}}}')
    before = _listing(here)
    code, _, err = _run(capsys, spec, here / "study")
    assert code == 2 and "result path" in err and len(err.strip().splitlines()) == 1, err
    assert not (here / "study").exists()
    assert _listing(here) == before
    assert json.loads((here / "victim.json").read_text()) == {"eval_loss": 1.5}


def test_a_result_symlinked_out_of_the_run_folder_fails_the_run_and_reads_nothing(here, capsys):
    """A command that leaves result.json as a link to another file: the run fails, the file is not read."""
    victim = here / "victim.json"
    cmd = "bash -c 'ln -s \"$REPETITA_VICTIM\" \"$REPETITA_RUN_DIR/result.json\"'"
    spec = _spec(here / "s.toml", cmd, base=f"victim = {json.dumps(str(victim))}")
    before = _listing(here, skip=here / "study")
    code, res, err = _run(capsys, spec, here / "study")
    assert code == 3 and res["counts"]["failed"] == 1, err
    runs, _ = _rows(here / "study")
    assert "leads out of the run folder" in runs["error"].iloc[0]
    # the rerun unlinks the stale link, never the file it points to
    code, res, err = _run(capsys, spec, here / "study", "--retry-failed")
    assert code == 3 and victim.exists() and json.loads(victim.read_text()) == {"eval_loss": 1.5}
    assert _listing(here, skip=here / "study") == before


def test_a_manifest_naming_files_outside_its_corpus_is_refused(here, capsys):
    corpus = here / "corpus"
    corpus.mkdir()
    (corpus / "manifest.json").write_text(json.dumps({
        "format": 1, "dtype": "uint16", "vocab_size": 10,
        "files": {"train": "../victim.json", "val": "val.bin"}, "tokens": {"train": 10, "val": 1}}))
    spec = _spec(here / "s.toml", DIRECT, base=f"corpus = {json.dumps('prepared:' + str(corpus))}")
    code, _, err = _run(capsys, spec, here / "study")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "victim.json" in err, err
    assert not (here / "study").exists()


# --- 2. no shell interpolation ---------------------------------------------------------------------------------

def test_field_values_reach_the_command_as_one_argument_each(here, capsys):
    """Spaces, quotes, ;, $(), backticks and newlines: each value arrives whole, and nothing runs."""
    fields = "fields = {note = " + json.dumps(NASTY) + "}"
    spec = _spec(here / "s.toml", DIRECT + " --note {note}", fields=fields)
    study = here / "my study; rm -rf x"
    before = _listing(here, skip=study)
    code, res, err = _run(capsys, spec, study)
    assert code == 0 and res["counts"]["done"] == len(NASTY), err
    notes = sorted(json.loads(p.read_text())["note"] for p in study.glob("runs/*/result.json"))
    assert notes == sorted(NASTY)
    assert not list(here.rglob("PWNED"))
    assert _listing(here, skip=study) == before


def test_the_shell_form_takes_fields_from_the_environment(here, capsys):
    """bash -c with a pipe through tee, in a study folder with spaces: values arrive whole."""
    fields = "fields = {note = " + json.dumps(NASTY[:4]) + ', mode = "ok", sleep = 0}'
    spec = _spec(here / "s.toml", SHELL, fields=fields)
    study = here / "a study with spaces"
    before = _listing(here, skip=study)
    code, res, err = _run(capsys, spec, study)
    assert code == 0 and res["counts"]["done"] == 4, err
    for p in study.glob("runs/*/result.json"):
        assert (p.parent / "log.txt").exists()  # tee wrote into the run folder, not a truncated path
    notes = sorted(json.loads(p.read_text())["note"] for p in study.glob("runs/*/result.json"))
    assert notes == sorted(NASTY[:4])
    assert not list(here.rglob("PWNED"))
    assert _listing(here, skip=study) == before


@pytest.mark.parametrize("command, message", [
    ("bash -c 'python train.py --out {run_dir}'", "REPETITA_RUN_DIR"),
    ("sh -ec \"echo {note}\"", "REPETITA_NOTE"),
    ("/usr/bin/env bash -lc 'x {params}'", "REPETITA_PARAMS"),
    ("{python} -c 'print({params})'", "REPETITA_PARAMS"),
    ("python3.11 -c 'print({seed})'", "REPETITA_SEED"),
    ("perl -e 'print {params}'", "REPETITA_PARAMS"),
    ("python 'unbalanced", "quotes must be balanced"),
    ("python \"unbalanced", "quotes must be balanced"),
    ("python x\\", "quotes must be balanced"),
    ("python {unknown_field}", "field {unknown_field} does not exist"),
    ("python {0}", "is not a field name"),
    ("python {a", "malformed template"),
    ("   ", "needs command"),
])
def test_unsafe_or_malformed_templates_are_one_line_and_write_nothing(here, capsys, command, message):
    spec = _spec(here / "s.toml", command, base='note = "hi"')
    before = _listing(here)
    code, _, err = _run(capsys, spec, here / "study")
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err
    assert _listing(here) == before


def test_a_field_as_an_option_value_of_a_trainer_is_not_a_script(here, capsys):
    """`-c {config}` of a program that is not a shell passes the value as one argument (not refused)."""
    spec = _spec(here / "s.toml", DIRECT + " --note {note} -c ignored", base='note = "a b"')
    code, _, err = _run(capsys, spec, here / "study")
    # the trainer rejects the unknown -c: a failed run, not a refused spec
    assert code == 3, err


def test_fields_clashing_in_the_environment_are_refused(here, capsys):
    spec = _spec(here / "s.toml", DIRECT, base='lr = 1\nLR = 2')
    code, _, err = _run(capsys, spec, here / "study")
    assert code == 2 and "REPETITA_LR" in err, err


# --- 3. nothing outlives the study ------------------------------------------------------------------------------

def _marked(mark: str) -> list[int]:
    """Live processes whose environment carries the test's mark: the study and everything it started."""
    out = []
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            env = Path(f"/proc/{p}/environ").read_bytes()
            state = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if mark.encode() in env and state != "Z":
            out.append(int(p))
    return out


def _group_alive(pgid: int) -> list[int]:
    """Live (not zombie) members of a process group, read from /proc; a zombie waits only to be reaped by
    init and runs nothing."""
    out = []
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            out.append(int(p))
    return out


def _wait_until(cond, timeout: float = 20.0) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return cond()


@pytest.mark.serial
@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs /proc (Linux)")
def test_kill_minus_9_of_a_study_leaves_no_descendant_and_every_run_runs_once(here):
    """A command piped through tee that forks a sleeper out of its session: kill -9 of the study's whole
    process group three times leaves 0 processes of it alive (by group and by /proc); the fourth start
    finishes every run once."""
    fields = 'fields = {note = "n", mode = "sleeper", sleep = 1.0}'
    spec = _spec(here / "s.toml", SHELL, fields=fields, models=(1e6, 4e6), budgets=(1000, 2000))
    study = here / "study"
    mark = f"repetita-test-{uuid.uuid4().hex}"
    env = dict(os.environ, REPETITA_TEST_MARK=mark)
    cmd = [sys.executable, "-m", "repetita.cli", "run", str(spec), "--dir", str(study), "--workers", "2"]
    for kill in range(3):
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
                                env=env)
        try:
            # kill once a command and its sleeper are up (log.txt: tee runs; ran only while the trainer sleeps)
            def busy(proc=proc):
                assert proc.poll() is None, proc.stderr.read().decode()
                try:
                    con = sqlite3.connect(study / "store.sqlite", timeout=30)
                    running = con.execute("SELECT id FROM runs WHERE status='running'").fetchall()
                    con.close()
                except sqlite3.OperationalError:
                    return False
                return any((study / "runs" / r / "log.txt").exists() for (r,) in running) and len(_marked(mark)) > 4
            assert _wait_until(busy, 120), f"kill {kill}: the study made no progress"
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
        assert _wait_until(lambda: not _marked(mark)), f"kill {kill}: alive after the kill: {_marked(mark)}"
        assert not _group_alive(proc.pid), _group_alive(proc.pid)
    rc = subprocess.run(cmd + ["--json"], capture_output=True, text=True, timeout=300, env=env)
    assert rc.returncode == 0, rc.stderr
    assert json.loads(rc.stdout)["counts"]["done"] == 4
    assert _wait_until(lambda: not _marked(mark)), "a sleeper outlived a command that finished normally"
    runs, tidy = _rows(study)
    assert len(runs) == 4 and runs["id"].is_unique and len(tidy) == 4 and tidy["run_id"].is_unique
    assert (runs["attempts"] >= 2).any()  # the kills interrupted runs that ran again


@pytest.mark.serial
@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs /proc (Linux)")
def test_a_timeout_kills_the_whole_pipe_and_its_sleeper(here, capsys, monkeypatch):
    mark = f"repetita-test-{uuid.uuid4().hex}"
    monkeypatch.setenv("REPETITA_TEST_MARK", mark)
    fields = 'fields = {note = "n", mode = "sleeper", sleep = 30}\ntimeout = 1.5'
    spec = _spec(here / "s.toml", SHELL, fields=fields)
    t0 = time.time()
    code, res, err = _run(capsys, spec, here / "study")
    assert code == 3 and res["counts"]["failed"] == 1 and time.time() - t0 < 25, err
    # this process's own helpers (multiprocessing's resource tracker) carry the mark too: not the command's
    def commands():
        out = []
        for p in _marked(mark):
            try:
                ppid = int(Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
            if os.getpid() not in (p, ppid):
                out.append(p)
        return out
    assert _wait_until(lambda: not commands()), commands()


@pytest.mark.serial
@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs /proc (Linux)")
@pytest.mark.parametrize("ending", ["failure", "ctrl-c"])
def test_a_failed_command_or_ctrl_c_leaves_nothing_behind(here, ending):
    """The other exit paths: a command that fails after forking a sleeper, and Ctrl-C (SIGINT to the
    driver's process group, as a terminal sends it) while commands run: nothing of them stays alive."""
    mark = f"repetita-test-{uuid.uuid4().hex}"
    sleep = 0.2 if ending == "failure" else 30
    command = SHELL[:-1] + "; exit 3'" if ending == "failure" else SHELL
    fields = f'fields = {{note = "n", mode = "sleeper", sleep = {sleep}}}'
    spec = _spec(here / "s.toml", command, fields=fields, models=(1e6, 4e6))
    study = here / "study"
    cmd = [sys.executable, "-m", "repetita.cli", "run", str(spec), "--dir", str(study), "--workers", "2"]
    # A foreground job of a terminal has SIGINT at its default; a test run in the background of a
    # non-interactive shell inherits it ignored (POSIX), and Python then never raises KeyboardInterrupt.
    # Start the study as a terminal would.
    cmd = [sys.executable, "-c", "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
           "os.execv(sys.executable, sys.argv[1:])", *cmd]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
                            env=dict(os.environ, REPETITA_TEST_MARK=mark), text=True)
    try:
        if ending == "ctrl-c":
            assert _wait_until(lambda: len(list(study.glob("runs/*/log.txt"))) == 2 and len(_marked(mark)) > 6, 60)
            os.killpg(proc.pid, signal.SIGINT)
        code = proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    err = proc.stderr.read()
    assert "Traceback" not in err, err
    assert code == (3 if ending == "failure" else 130), err
    assert _wait_until(lambda: not _marked(mark)), f"alive after the study ended: {_marked(mark)}"
    assert not _group_alive(proc.pid)


# --- 4. a bad result is a failed run ----------------------------------------------------------------------------

@pytest.mark.parametrize("mode, message", [("zero", "loss is 0"), ("negative", "loss is -1"),
                                           ("string", "is not a number"), ("nokey", "no key 'eval_loss'")])
def test_a_bad_loss_fails_its_run_and_the_study_finishes(here, capsys, mode, message):
    fields = f'fields = {{mode = ["ok", "{mode}"]}}'
    spec = _spec(here / "s.toml", DIRECT + " --mode {mode}", fields=fields)
    study = here / "study"
    code, res, err = _run(capsys, spec, study)
    assert code == 3 and res["counts"]["done"] == 1 and res["counts"]["failed"] == 1, err
    runs, tidy = _rows(study)
    bad = runs[runs["status"] == "failed"]
    assert message in bad["error"].iloc[0] and len(tidy) == 1
    # --retry-failed runs it once more and marks it failed again; the done run is not redone
    code, res, err = _run(capsys, spec, study, "--retry-failed")
    assert code == 3 and res["counts"] == {"queued": 0, "running": 0, "done": 1, "failed": 1, "diverged": 0}
    runs2, _ = _rows(study)
    attempts = runs2.set_index("id")["attempts"]
    assert attempts[bad["id"].iloc[0]] == 2 and attempts.sum() == 3
    assert main(["status", str(study)]) == 0
    out, _ = capsys.readouterr()
    assert "resumes them" not in out and "failed 1" in out


def test_a_result_row_the_store_refuses_fails_that_run_only(tmp_path):
    """The store's own check of a row (not only the command recipe's): record() marks the run failed."""
    from types import SimpleNamespace

    from repetita.study.runners import record

    store = Store(tmp_path / "store.sqlite")
    try:
        cfg = SimpleNamespace(to_json=lambda: "{}")
        store.add_runs([SimpleNamespace(id=i, recipe="command", config=cfg, depends_on=None) for i in ("a", "b")])
        row = {"params": 1e6, "tokens": 1e3, "unique_tokens": 1e3, "epochs": 1.0, "recipe": "standard", "seed": 0}
        for rid, loss in (("a", 3.0), ("b", -3.0)):
            assert store.claim(rid)
            record(store, rid, "done", {"result": {"val_loss": loss, "rows": [row | {"loss": loss, "run_id": rid}]}})
        runs = store.runs().set_index("id")
        assert runs.loc["a", "status"] == "done" and runs.loc["b", "status"] == "failed"
        assert "result refused" in runs.loc["b", "error"] and "loss" in runs.loc["b", "error"]
        assert len(store.tidy()) == 1
    finally:
        store.close()


# --- 6. the smaller holes ----------------------------------------------------------------------------------------

def test_read_commands_never_write_a_store(here, capsys):
    """status, report and export on a 0-byte store: one line each, and the file stays 0 bytes."""
    study = here / "study"
    study.mkdir()
    (study / "store.sqlite").write_bytes(b"")
    for argv in (["status", str(study)], ["report", str(study)], ["export", str(study), str(here / "x.csv")]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "not a repetita study store" in err and len(err.strip().splitlines()) == 1, err
        assert (study / "store.sqlite").stat().st_size == 0
        assert sorted(p.name for p in study.iterdir()) == ["store.sqlite"]
    # beside run folders an empty store lost its results: `run` refuses instead of redoing every run
    (study / "runs" / "2484ad0f9c0a9a09").mkdir(parents=True)
    spec = _spec(here / "s.toml", DIRECT)
    assert main(["run", str(spec), "--dir", str(study)]) == 2
    assert "the store was lost" in capsys.readouterr().err and (study / "store.sqlite").stat().st_size == 0


def test_a_finished_study_on_read_only_storage_is_read(here, capsys, monkeypatch):
    """Where SQLite cannot even make the WAL index (read-only storage), the store is opened as immutable."""
    import sqlite3 as sql

    spec = _spec(here / "s.toml", DIRECT, models=(1e6, 4e6))
    assert _run(capsys, spec, here / "study")[0] == 0
    real = sql.connect

    def refusing(target, *args, **kwargs):
        if kwargs.get("uri") and "immutable=1" not in str(target):
            raise sql.OperationalError("unable to open database file")
        return real(target, *args, **kwargs)

    monkeypatch.setattr(sql, "connect", refusing)
    assert main(["status", str(here / "study")]) == 0
    assert "done 2" in capsys.readouterr().out
    assert main(["export", str(here / "study"), str(here / "t.csv")]) == 0
    assert len((here / "t.csv").read_text().strip().splitlines()) == 3


def test_another_spec_into_a_study_is_refused_unless_added(here, capsys):
    spec = _spec(here / "s.toml", DIRECT)
    other = _spec(here / "o.toml", DIRECT + " --note other")
    study = here / "study"
    assert _run(capsys, spec, study)[0] == 0
    kept = (study / "spec.toml").read_text()
    code, _, err = _run(capsys, other, study)
    assert code == 2 and "another spec" in err and "--add" in err and len(err.strip().splitlines()) == 1
    assert (study / "spec.toml").read_text() == kept and len(_rows(study)[0]) == 1
    # the same spec with [[runs]] points appended (report/next_runs.toml, suggest --spec-out) is the same study
    extended = here / "ext.toml"
    extended.write_text(spec.read_text() + "\n[[runs]]\nparams = 1e6\nunique_tokens = 500\nepochs = 2\n")
    code, res, err = _run(capsys, extended, study)
    assert code == 0 and res["new_runs"] == 1, err
    code, res, err = _run(capsys, other, study, "--add")
    assert code == 0 and res["new_runs"] == 1, err
    assert (study / "spec.toml").read_text() == extended.read_text()
    assert [p.read_text() for p in (study / "added").iterdir()] == [other.read_text()]


def test_a_gpu_request_this_machine_cannot_meet_writes_nothing(here, capsys, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    spec = _spec(here / "s.toml", DIRECT, fields="resources = {gpus = 1}")
    code, _, err = _run(capsys, spec, here / "study")
    assert code == 2 and "GPU" in err and len(err.strip().splitlines()) == 1, err
    assert not (here / "study").exists()


def test_fit_of_a_big_tree_stops_at_its_scan_limit(tmp_path, capsys, monkeypatch):
    from repetita.laws import curves

    monkeypatch.setattr(curves, "SCAN_ENTRIES", 30)
    for i in range(40):
        (tmp_path / f"d{i}").mkdir()
    assert main(["fit", str(tmp_path), "--law", "chinchilla"]) == 2
    err = capsys.readouterr().err
    assert "more than 30 files and folders" in err and len(err.strip().splitlines()) == 1
    nested = tmp_path / "d0" / "a" / "b" / "c" / "d"  # deeper than the scan: not read
    nested.mkdir(parents=True)
    (nested / "events.out.tfevents.1").write_bytes(b"")
    monkeypatch.setattr(curves, "SCAN_ENTRIES", 10_000)
    assert main(["fit", str(tmp_path), "--law", "chinchilla"]) == 2
    err = capsys.readouterr().err
    assert "no TensorBoard event files" in err and "--recursive" in err
    # --recursive finds it (an empty event file: read, and refused in one line as holding no scalars)
    assert main(["fit", str(tmp_path), "--law", "chinchilla", "--recursive"]) == 2
    err = capsys.readouterr().err
    assert "no scalars in these event files" in err and len(err.strip().splitlines()) == 1, err
    monkeypatch.setattr(curves, "SCAN_ENTRIES", 30)
    assert main(["fit", str(tmp_path), "--law", "chinchilla", "--recursive"]) == 2
    assert "more than 30 files and folders;" in capsys.readouterr().err


def test_a_run_id_that_is_a_path_is_refused():
    from repetita.errors import UserError
    from repetita.runpaths import run_dir

    assert run_dir("/s", "ab12cd").as_posix() == "/s/runs/ab12cd"
    for bad in ("..", "../x", "a/b", "", "x\0y"):
        with pytest.raises(UserError, match="not a plain name"):
            run_dir("/s", bad)
