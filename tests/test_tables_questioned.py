"""A table is questioned before it is fitted (laws/checks.py): mixtures, duplicates, conflicting duplicates,
perplexities, params in millions, an outlier row, tab- and semicolon-separated files and --where. Each
raises its warning or note exactly once, and a bad --where is one line, exit 2."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from repetita.cli import main
from repetita.examples import load_example


def _base() -> pd.DataFrame:
    db = load_example("datablations")
    db = db[db["epochs"] <= 1.0].rename(columns={"val_loss": "loss"})  # one-epoch runs: a Chinchilla table
    return db[["params", "tokens", "unique_tokens", "loss"]].reset_index(drop=True)


def _fit(tmp_path, df: pd.DataFrame, capsys, *extra, sep=",") -> dict:
    path = tmp_path / "runs.csv"
    df.to_csv(path, index=False, sep=sep)
    capsys.readouterr()
    assert main(["fit", str(path), "--law", "chinchilla", "--json", *extra]) == 0
    return json.loads(capsys.readouterr().out)


def _once(result: dict, words: str) -> None:
    hits = [w for w in result["warnings"] if words in w]
    assert len(hits) == 1, (words, result["warnings"])


def test_a_clean_table_raises_none_of_them(tmp_path, capsys):
    out = _fit(tmp_path, _base(), capsys)
    kinds = {c["kind"] for c in out["caveats"]}
    assert not kinds & {"units", "duplicates", "mixed-rows"}


@pytest.mark.parametrize("change, words, kind", [
    (lambda d: d.assign(corpus=np.where(np.arange(len(d)) % 2, "c4", "oscar")), "column 'corpus' holds 2 values",
     "mixed-rows"),
    (lambda d: pd.concat([d, d.iloc[:5]]), "5 exact duplicate row(s) merged", "duplicates"),
    (lambda d: pd.concat([d, d.iloc[[3]].assign(loss=d["loss"].iloc[3] + 0.5)]), "share their inputs", "duplicates"),
    (lambda d: d.assign(loss=np.exp(d["loss"])), "look like perplexities", "units"),
    (lambda d: d.assign(params=d["params"] / 1e6), "look like millions or billions", "units"),
    (lambda d: d.assign(params=np.where(np.arange(len(d)) == 7, 1e30, d["params"])), "row 8 (1e+30) is the farthest",
     "units"),
])
def test_each_problem_is_said_exactly_once(tmp_path, capsys, change, words, kind):
    out = _fit(tmp_path, change(_base()), capsys)
    _once(out, words)
    assert any(c["kind"] == kind and words in c["text"] for c in out["caveats"])


def test_exact_duplicates_are_merged_before_the_fit(tmp_path, capsys):
    base = _base()
    out = _fit(tmp_path, pd.concat([base, base.iloc[:5]]), capsys)
    assert out["n_rows"] == len(base)


@pytest.mark.parametrize("sep, name", [("\t", "tabs"), (";", "semicolons")])
def test_tab_and_semicolon_files_are_read_and_said(tmp_path, capsys, sep, name):
    out = _fit(tmp_path, _base(), capsys, sep=sep)
    _once(out, f"the header holds {name}")
    assert out["n_rows"] == len(_base())  # read with its own separator, every row


def test_where_selects_rows_and_a_bad_one_is_one_line(tmp_path, capsys):
    base = _base().assign(corpus=lambda d: np.where(np.arange(len(d)) % 2, "c4", "oscar"))
    out = _fit(tmp_path, base, capsys, "--where", "corpus == 'c4'")
    assert out["n_rows"] == int((base["corpus"] == "c4").sum())
    assert not any("holds 2 values" in w for w in out["warnings"])  # one corpus left: no mixture
    for where, words in (("corpus ==", "cannot apply it"), ("params < 0", "selects no row"),
                         ("nope == 1", "cannot apply it")):
        assert main(["fit", str(tmp_path / "runs.csv"), "--law", "chinchilla", "--where", where]) == 2
        err = capsys.readouterr().err.strip()
        assert words in err and len(err.splitlines()) == 1 and "Traceback" not in err


def _synthetic_chinchilla(rows: int = 120, seed: int = 3) -> pd.DataFrame:
    """One-epoch runs drawn from a Chinchilla law (E 1.73, alpha 0.34, beta 0.28) with 0.2% noise."""
    rng = np.random.default_rng(seed)
    n = np.exp(rng.uniform(np.log(1e7), np.log(1e10), rows))
    d = np.exp(rng.uniform(np.log(1e8), np.log(1e11), rows))
    loss = (np.exp(0.55) + np.exp(6.0) / n**0.34 + np.exp(7.2) / d**0.28) * np.exp(0.002 * rng.standard_normal(rows))
    return pd.DataFrame({"params": n, "tokens": d, "unique_tokens": d, "loss": loss})


def test_a_row_that_alone_moves_an_exponent_is_named_once(tmp_path, capsys):
    clean = _synthetic_chinchilla()
    assert not any(c["kind"] == "influential" for c in _fit(tmp_path, clean, capsys)["caveats"])
    i = int(clean["tokens"].idxmin())  # the smallest data budget, its tokens slipped by 100x
    slip = clean.assign(tokens=np.where(clean.index == i, clean["tokens"] / 100, clean["tokens"]))
    out = _fit(tmp_path, slip.assign(unique_tokens=slip["tokens"]), capsys)
    _once(out, "rests on single rows")
    (hit,) = [c["text"] for c in out["caveats"] if c["kind"] == "influential"]
    assert hit.startswith("beta = ") and f"without row {i + 1} it is" in hit
