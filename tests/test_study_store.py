"""The SQLite store: concurrent writers, schema checks, export."""

from __future__ import annotations

import json
import multiprocessing as mp
import sqlite3
from dataclasses import dataclass

import pandas as pd
import pytest

from repetita.errors import UserError
from repetita.study.store import SCHEMA_VERSION, Store


@dataclass(frozen=True)
class _Config:
    name: str

    def to_json(self) -> str:
        return json.dumps({"name": self.name})


@dataclass(frozen=True)
class _Run:
    id: str
    recipe: str = "standard"
    depends_on: str | None = None

    @property
    def config(self):
        return _Config(self.id)


def _writer(path: str, w: int, n: int) -> None:
    store = Store(path, create=False)
    for i in range(n):
        rid = f"w{w}-r{i}"
        store.add_runs([_Run(rid)])
        assert store.claim(rid)
        store.finish(rid, {"val_loss": float(i), "history": [{"step": 1, "epoch": 1.0, "val_loss": 1.0}],
                           "rows": [{"params": 1e6, "tokens": 4e6, "unique_tokens": 1e6, "epochs": 4.0,
                                     "loss": 1.0 + i, "run_id": rid, "seed": w, "step": i}]})
    store.close()


@pytest.mark.serial
def test_eight_concurrent_writers_500_rows_each(tmp_path):
    path = tmp_path / "store.sqlite"
    Store(path).close()
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(str(path), w, 500)) for w in range(8)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=300)
        assert p.exitcode == 0
    store = Store(path, create=False)
    runs = store.runs()
    tidy = store.tidy()
    assert len(runs) == 4000 and runs["id"].is_unique
    assert (runs["status"] == "done").all() and (runs["attempts"] == 1).all()
    assert len(tidy) == 4000 and not tidy.duplicated(["seed", "step"]).any()
    assert set(tidy.groupby("seed")["step"].nunique()) == {500}
    assert len(store.curves()) == 4000
    store.close()


def test_claim_is_exclusive_and_rerun_skips_known_ids(tmp_path):
    store = Store(tmp_path / "s.sqlite")
    assert store.add_runs([_Run("a"), _Run("b")]) == 2
    assert store.add_runs([_Run("a"), _Run("c")]) == 1
    assert store.claim("a") and not store.claim("a")
    assert store.ready() == ["b", "c"]
    store.close()


def test_dependencies_gate_readiness_and_failed_teachers_block(tmp_path):
    store = Store(tmp_path / "s.sqlite")
    store.add_runs([_Run("teacher"), _Run("student", depends_on="teacher")])
    assert store.ready() == ["teacher"]
    store.claim("teacher")
    store.fail("teacher", "diverged at step 3", status="diverged")
    assert store.ready() == [] and store.blocked() == ["student"]
    store.close()


def test_abandoned_running_rows_are_requeued(tmp_path):
    store = Store(tmp_path / "s.sqlite")
    store.add_runs([_Run("a")])
    store.claim("a", pid=2**22 + 12345)  # no such process
    assert store.requeue_abandoned() == ["a"]
    assert store.ready() == ["a"]
    store.close()


def test_incompatible_and_foreign_files_are_refused_untouched(tmp_path):
    old = tmp_path / "old.sqlite"
    Store(old).close()
    con = sqlite3.connect(old)
    con.execute("UPDATE meta SET value=? WHERE key='schema_version'", (str(SCHEMA_VERSION + 1),))
    con.commit()
    con.close()
    before = old.read_bytes()
    with pytest.raises(UserError, match="incompatible"):
        Store(old, create=False)
    assert old.read_bytes() == before

    foreign = tmp_path / "foreign.sqlite"
    con = sqlite3.connect(foreign)
    con.execute("CREATE TABLE t (x)")
    con.commit()
    con.close()
    with pytest.raises(UserError, match="not a repetita study store"):
        Store(foreign)

    garbage = tmp_path / "garbage.sqlite"
    garbage.write_bytes(b"this is not a database at all" * 100)
    with pytest.raises(UserError, match="not a repetita study store"):
        Store(garbage)
    assert garbage.read_bytes() == b"this is not a database at all" * 100


def test_export_csv_and_parquet(tmp_path):
    store = Store(tmp_path / "s.sqlite")
    with pytest.raises(UserError, match="no finished runs"):
        store.export(tmp_path / "t.csv")
    store.add_runs([_Run("a")])
    store.claim("a")
    store.finish("a", {"rows": [{"params": 10, "tokens": 20, "unique_tokens": 10, "epochs": 2.0, "loss": 3.5}]})
    csv = pd.read_csv(store.export(tmp_path / "t.csv"))
    from repetita.laws.data import COLUMNS

    assert list(csv.columns) == list(COLUMNS)  # the run-row schema, in its order, whatever the row held
    rec = csv.iloc[0]
    assert (rec["params"], rec["tokens"], rec["unique_tokens"], rec["epochs"], rec["loss"]) == (10, 20, 10, 2.0, 3.5)
    assert rec["members"] == 1 and rec["recipe"] == "standard" and rec["bits_per_token"] == pytest.approx(3.5 / 0.693147, 1e-5)
    pytest.importorskip("pyarrow")
    pq = pd.read_parquet(store.export(tmp_path / "t.parquet"))
    pd.testing.assert_frame_equal(pq[["params", "loss", "recipe"]], csv[["params", "loss", "recipe"]])
    store.close()


def test_export_refuses_other_formats_and_unwritable_places(tmp_path):
    store = Store(tmp_path / "s.sqlite")
    store.add_runs([_Run("a")])
    store.claim("a")
    store.finish("a", {"rows": [{"params": 10, "tokens": 20, "unique_tokens": 10, "epochs": 2.0, "loss": 3.5}]})
    with pytest.raises(UserError, match="suffix must be one of .csv, .parquet"):
        store.export(tmp_path / "t.xlsx")
    assert not (tmp_path / "t.xlsx").exists()
    blocker = tmp_path / "file.txt"
    blocker.write_text("keep")
    with pytest.raises(UserError, match="is a file, not a folder"):
        store.export(blocker / "t.csv")
    assert pd.read_csv(store.export(tmp_path / "new" / "t.csv"))["loss"].tolist() == [3.5]
    store.close()
