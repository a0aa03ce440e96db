"""One way to write files: atomic writers, output checks before work, and every writing subcommand's
behaviour on a bad output location (one line, exit 2, no traceback, nothing half-written)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from repetita.cli import main
from repetita.errors import UserError
from repetita.io import check_dir, check_file, dumps, write_json, write_text

ROOT_CAN_WRITE_ANYWHERE = os.geteuid() == 0 if hasattr(os, "geteuid") else False


def test_atomic_writes_replace_whole_files_and_report_bad_places(tmp_path):
    path = write_json(tmp_path / "sub" / "r.json", {"x": float("nan"), "y": 1})
    assert json.loads(path.read_text()) == {"x": None, "y": 1}
    write_text(path, "second")
    assert path.read_text() == "second" and sorted(p.name for p in path.parent.iterdir()) == ["r.json"]
    blocker = tmp_path / "file.txt"
    blocker.write_text("keep")
    with pytest.raises(UserError, match="cannot write"):
        write_text(blocker / "r.json", "x")
    assert blocker.read_text() == "keep" and sorted(p.name for p in tmp_path.iterdir()) == ["file.txt", "sub"]


def test_strict_json_has_no_nan():
    import numpy as np

    assert json.loads(dumps({"a": np.float32(1.5), "b": np.array([np.inf, 2.0])})) == {"a": 1.5, "b": [None, 2.0]}


def test_checks_before_work(tmp_path):
    f = tmp_path / "f.txt"
    f.write_text("x")
    with pytest.raises(UserError, match="is a folder"):
        check_file(tmp_path, "--out")
    with pytest.raises(UserError, match="is a file, not a folder"):
        check_dir(f, "--out")
    with pytest.raises(UserError, match="is a file, not a folder"):
        check_file(f / "sub" / "x.json", "--out")
    with pytest.raises(UserError, match="suffix"):
        check_file(tmp_path / "fig.txt", "--plot", suffixes=(".png",))
    with pytest.raises(UserError, match="also an input"):
        check_file(f, "--out", inputs=[str(f)])
    assert check_dir(tmp_path / "new" / "deeper") == tmp_path / "new" / "deeper"
    assert not (tmp_path / "new").exists()  # a check creates nothing


# --- every subcommand that writes -----------------------------------------------------------------

SPEC = """name = "io"
[base]
corpus = "markov:V=16,order=1,n=20000,seed=1"
context = 16
n_layer = 1
n_head = 2
d_model = 16
batch_size = 8
val_tokens = 256
[grid]
unique_tokens = [256]
epochs = [1]
[recipes.standard]
"""


def _table(tmp: Path) -> Path:
    from repetita.examples import load_example

    path = tmp / "runs.csv"
    load_example("datablations").head(40).to_csv(path, index=False)
    return path


def _fit_file(tmp: Path) -> Path:
    path = tmp / "fit.json"
    assert main(["fit", "--example", "datablations", "--law", "chinchilla", "--grid", "a=6", "--grid", "b=7",
                 "--grid", "e=0.5", "--grid", "alpha=0.35", "--grid", "beta=0.35", "--n-refine", "1",
                 "--out", str(path), "--json"]) == 0
    return path


def _docs(tmp: Path) -> Path:
    path = tmp / "docs.jsonl"
    path.write_text(json.dumps({"id": "a", "text": "The river is long."}) + "\n")
    return path


def _spec(tmp: Path) -> Path:
    path = tmp / "io.toml"
    path.write_text(SPEC)
    return path


# (name, argv builder taking (tmp, target), kind of target: "file" or "dir")
WRITERS = [
    ("fit --out", lambda t, x: ["fit", str(_table(t)), "--law", "chinchilla", "--out", x], "file", ".json"),
    ("fit --plot", lambda t, x: ["fit", str(_table(t)), "--law", "chinchilla", "--plot", x], "file", ".png"),
    ("plan --plot", lambda t, x: ["plan", "--law-file", str(_fit_file(t)), "--params", "1e9",
                                  "--unique-tokens", "1e9", "--plot", x], "file", ".png"),
    ("theory reuse --save", lambda t, x: ["theory", "reuse", "--N", "100", "--K", "1,2", "--save", x], "file", ".json"),
    ("theory reuse --plot", lambda t, x: ["theory", "reuse", "--N", "100", "--K", "1,2", "--plot", x], "file", ".png"),
    ("sft plan --subsets", lambda t, x: ["sft", "plan", "--budget", "64", "--pool", "64", "--subsets", x], "file",
     ".json"),
    ("export", lambda t, x: ["export", str(t / "study"), x], "file", ".csv"),
    ("rephrase --out", lambda t, x: ["rephrase", "--docs", str(_docs(t)), "--backend", "echo", "--out", x], "file",
     ".jsonl"),
    ("train --out", lambda t, x: ["train", "--corpus", "markov:V=16,order=1,n=20000", "--context", "16",
                                  "--unique-tokens", "256", "--n-layer", "1", "--d-model", "16", "--n-head", "2",
                                  "--out", x], "dir", ""),
    ("run --dir", lambda t, x: ["run", str(_spec(t)), "--dir", x], "dir", ""),
    ("sft run --out", lambda t, x: ["sft", "run", "--quick", "--out", x], "dir", ""),
    ("mix composition --out", lambda t, x: ["mix", "composition", "--dims", "4", "--k", "2", "--samples", "1000",
                                            "--out", x], "dir", ""),
    ("mix sequence --out", lambda t, x: ["mix", "sequence", "--samples", "128", "--seeds", "0", "--exponents", "0",
                                         "--out", x], "dir", ""),
    ("demo --out", lambda t, x: ["demo", "--skip-study", "--skip-theory", "--out", x], "dir", ""),
]


@pytest.fixture
def study(tmp_path):
    """A finished one-run study for ``export``."""
    if not (tmp_path / "study").exists():
        assert main(["run", str(_spec(tmp_path)), "--dir", str(tmp_path / "study"), "--json"]) == 0
    return tmp_path


@pytest.mark.parametrize("case", ["unwritable", "file-for-folder", "folder-for-file"])
@pytest.mark.parametrize("name, argv, kind, suffix", WRITERS, ids=[w[0] for w in WRITERS])
def test_bad_output_location_is_one_line_exit_2(tmp_path, capsys, case, name, argv, kind, suffix, request):
    if name == "export":
        request.getfixturevalue("study")
    blocker = tmp_path / "blocker"
    blocker.write_text("keep")
    if case == "unwritable":
        target = "/proc/repetita-test/out" + suffix  # /proc refuses new entries, even to root
    elif case == "file-for-folder":
        target = str(blocker / ("x" + suffix)) if kind == "file" else str(blocker)
    else:
        folder = tmp_path / ("folder" + suffix)
        folder.mkdir()
        target = str(folder) if kind == "file" else str(folder / "x")
        if kind == "dir":
            (folder / "x").write_text("a file where a folder is expected")
    before = sorted(p.name for p in tmp_path.rglob("*"))
    args = argv(tmp_path, target)
    before = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))
    code = main(args)
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1 and "Traceback" not in err and "error:" in err, err
    assert blocker.read_text() == "keep"
    after = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))
    assert after == before  # nothing half-written, nothing created


def test_rephrase_refuses_to_append_into_its_input(tmp_path, capsys):
    docs = _docs(tmp_path)
    text = docs.read_text()
    assert main(["rephrase", "--docs", str(docs), "--out", str(docs), "--backend", "echo"]) == 2
    assert "also an input" in capsys.readouterr().err and docs.read_text() == text


def test_rephrase_binary_docs_is_one_line(tmp_path, capsys):
    bad = tmp_path / "docs.csv"
    bad.write_bytes(bytes(range(256)) * 4)
    assert main(["rephrase", "--docs", str(bad), "--out", str(tmp_path / "o.jsonl"), "--backend", "echo"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "UTF-8" in err


def test_train_bad_config_values_write_nothing(tmp_path, capsys):
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"lr": "fast"}))
    out = tmp_path / "run"
    assert main(["train", "--config", str(cfg), "--out", str(out)]) == 2
    assert "lr='fast' has the wrong type" in capsys.readouterr().err and not out.exists()
    assert main(["train", "--corpus", "markov:V=x", "--out", str(out)]) == 2
    assert "markov option V='x' is not a number" in capsys.readouterr().err and not out.exists()


def test_failed_train_does_not_lock_the_folder(tmp_path, capsys):
    out = tmp_path / "run"
    base = ["train", "--corpus", "markov:V=16,order=1,n=20000", "--context", "16", "--n-layer", "1",
            "--d-model", "16", "--n-head", "2", "--batch-size", "8", "--val-tokens", "256", "--epochs", "0.5",
            "--out", str(out), "--json"]
    assert main([*base, "--unique-tokens", "10000000"]) == 2  # exceeds the pool: found while loading the data
    assert "exceeds the training pool" in capsys.readouterr().err
    assert main([*base, "--unique-tokens", "256"]) == 0  # the corrected command takes the folder
    assert json.loads(capsys.readouterr().out)["finished"]
