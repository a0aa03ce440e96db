"""The study store: one SQLite file (WAL) with a row per run and its evaluation curve.

Why SQLite: it is a real database with transactions and concurrent readers in one file beside
the study, nothing to run. WAL mode lets readers (the report, ``repetita status``) work while
workers write; every write is a short ``BEGIN IMMEDIATE`` transaction with a busy timeout, so
several worker processes can record results at once without losing rows.

Run states: queued -> running -> done | failed | diverged. A run left ``running`` by a killed
worker is re-queued when its process is gone (same host) or its heartbeat is stale, and then
resumes from the checkpoint in its run directory.

The store owns the study's layout: ``DIR/store.sqlite`` and one folder per run, ``DIR/runs/<id>``.

Schema 2 changed the run id (bookkeeping fields such as ``checkpoint_every`` left the hash, see
``repetita.lm.config.BOOKKEEPING``). A schema-1 study is migrated in place when opened: ids are
recomputed teachers first (a student's config names its teacher's folder), the rows, curves and run
folders are renamed to match, in one transaction; runs done stay done and interrupted runs resume.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import time
from contextlib import contextmanager
from pathlib import Path

import pandas as pd

from repetita.errors import UserError, require
from repetita.io import write_json
from repetita.processes import pid_alive
from repetita.runpaths import run_dir

SCHEMA_VERSION = 2
STORE_NAME = "store.sqlite"
STATES = ("queued", "running", "done", "failed", "diverged")
STALE_SECONDS = 600.0  # a running row with no heartbeat for this long is considered abandoned

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    recipe TEXT NOT NULL,
    config TEXT NOT NULL,
    depends_on TEXT,  -- the ids of the runs it waits for, comma-separated (a teacher, an ensemble's members)
    status TEXT NOT NULL CHECK (status IN ('queued', 'running', 'done', 'failed', 'diverged')),
    metrics TEXT,
    error TEXT,
    host TEXT,
    pid INTEGER,
    attempts INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL,
    started REAL,
    finished REAL,
    heartbeat REAL,
    resumed INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS curves (
    run_id TEXT NOT NULL REFERENCES runs(id),
    step INTEGER NOT NULL,
    epoch REAL,
    train_loss REAL,
    val_loss REAL,
    PRIMARY KEY (run_id, step)
);
CREATE TABLE IF NOT EXISTS rows (
    run_id TEXT NOT NULL REFERENCES runs(id),
    idx INTEGER NOT NULL,
    row TEXT NOT NULL,
    PRIMARY KEY (run_id, idx)
);
"""


def store_path(study_dir: str | Path) -> Path:
    return Path(study_dir) / STORE_NAME


class StudyGone(UserError):
    """The study folder was deleted while runs were training."""


def check_study_alive(store_path: Path) -> None:
    """SQLite keeps writing into a deleted file, and the trainer would recreate the run folders: a worker
    that finds its study gone stops, and the driver stops the study with one line."""
    if not Path(store_path).exists():
        raise StudyGone(f"the study folder {Path(store_path).parent} was deleted while it ran; stopped (results "
                        "finished after the deletion are lost)")


def check_result(result: dict) -> list[dict]:
    """The tidy rows of a run's result, checked against the schema (one line naming the bad value)."""
    from repetita.laws.data import RunRow

    require(isinstance(result, dict) and isinstance(result.get("rows", []), list),
            "a run result must be a table with a list of rows")
    return [RunRow.from_dict(r).to_dict() for r in result.get("rows", [])]


def _deps_text(deps) -> str | None:
    """The stored form of a run's dependencies: ids joined by commas (one id in older studies), or NULL."""
    if deps is None or isinstance(deps, str):
        return deps or None
    return ",".join(deps) or None


def _database_error(path: Path, exc: sqlite3.Error) -> UserError:
    """One line naming the store and what SQLite found (a damaged page, a full disk, a locked file)."""
    text = str(exc)
    if "disk I/O" in text:  # SQLite says this for a full disk or a file-size limit as well as a bad sector
        return UserError(f"{path}: the study store could not be read or written ({text}): a full disk, a file-size "
                         "limit (ulimit -f) or a damaged file; the last committed state is kept. Free space or lift "
                         "the limit and run again; if it persists, the file is damaged: restore it from a copy")
    if "malformed" in text or "not a database" in text:
        return UserError(f"{path}: the study store is damaged ({text}); nothing was changed. Restore it from a "
                         "copy, or run the study again in a new folder (the run folders keep their checkpoints)")
    if "full" in text:
        return UserError(f"{path}: the disk is full ({text}); the store is unchanged. Free space and run again")
    return UserError(f"{path}: study store error ({text})")


def _guarded(fn):
    """Every sqlite3 error inside a store method becomes one line naming the file (never a traceback)."""
    import functools

    @functools.wraps(fn)
    def wrapper(self, *args, **kwargs):
        try:
            return fn(self, *args, **kwargs)
        except sqlite3.Error as exc:
            raise _database_error(self.path, exc) from None
        except json.JSONDecodeError as exc:  # a cell written by hand or by a damaged disk
            raise UserError(f"{self.path}: a stored cell is not valid JSON ({exc.msg}); the store is damaged: "
                            "restore it from a copy") from None
        except pd.errors.DatabaseError as exc:  # pandas wraps the sqlite3 error of read_sql_query
            cause = exc.__cause__ if isinstance(exc.__cause__, sqlite3.Error) else sqlite3.DatabaseError(str(exc))
            raise _database_error(self.path, cause) from None

    return wrapper


def _guard_methods(cls):
    for name, value in list(vars(cls).items()):
        if callable(value) and not name.startswith("_") and name not in ("of_study", "transaction"):
            setattr(cls, name, _guarded(value))
    return cls


def _enable_wal(conn: sqlite3.Connection, patience: float = 60.0) -> None:
    """Switch to WAL, waiting out other processes that are creating the same new store.

    Changing the journal mode needs an exclusive lock, and SQLite answers "database is locked" at once
    there instead of calling the busy handler (measured: 1-4 failures in 480 opens of six processes
    racing to create one store), so the wait is ours.
    """
    deadline = time.monotonic() + patience
    pause = 0.005
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc) or time.monotonic() > deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.2)


def _schema_version(row, path: Path) -> int | None:
    if row is None:
        return None
    try:
        return int(row[0])
    except (TypeError, ValueError):
        raise UserError(f"{path}: the store's schema version {row[0]!r} is not a number; the store is damaged: "
                        "restore it from a copy") from None


def _open_readonly(path: Path) -> sqlite3.Connection:
    """SQLite's read-only mode; where even the WAL index cannot be made (read-only storage), immutable."""
    from urllib.parse import quote

    uri = f"file:{quote(str(path.resolve()))}?mode=ro"
    try:
        conn = sqlite3.connect(uri, uri=True, timeout=60.0, isolation_level=None)
        conn.execute("PRAGMA busy_timeout=60000")
        conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
        return conn
    except sqlite3.OperationalError as exc:
        if "unable to open" not in str(exc) and "readonly" not in str(exc):
            raise
    return sqlite3.connect(uri + "&immutable=1", uri=True, isolation_level=None)


@_guard_methods
class Store:
    """Thin wrapper over the SQLite file; every method is one short transaction.

    ``verify=True`` (the commands that read a whole study: run, status, report, export) first runs
    SQLite's ``quick_check``, so a damaged page is one line before anything is read or written, not a
    partial export.
    """

    @classmethod
    def of_study(cls, study_dir: str | Path, create: bool = False, verify: bool = False,
                 readonly: bool = False) -> Store:
        return cls(store_path(study_dir), create=create, verify=verify, readonly=readonly)

    def __init__(self, path: str | Path, create: bool = True, verify: bool = False, readonly: bool = False):
        """``readonly``: the reading commands (status, report, export) open the file with SQLite's
        ``mode=ro`` and never create or change anything in it (a 0-byte file stays 0 bytes and is refused);
        on read-only storage the file is opened as immutable."""
        self.path = Path(path)
        if not create or readonly:
            require(self.path.is_file(), f"{self.path}: no study store here (is this a study directory?)")
        if readonly:
            require(self.path.stat().st_size > 0, f"{self.path}: an empty file, not a repetita study store")
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            if readonly:
                self._conn = _open_readonly(self.path)
            else:
                self._conn = sqlite3.connect(self.path, timeout=60.0, isolation_level=None)
                self._conn.execute("PRAGMA busy_timeout=60000")
                _enable_wal(self._conn)
                self._conn.execute("PRAGMA synchronous=NORMAL")
            if verify:
                bad = [r[0] for r in self._conn.execute("PRAGMA quick_check").fetchall() if r[0] != "ok"]
                if bad:
                    raise sqlite3.DatabaseError(f"database disk image is malformed: {bad[0]}")
            self._check_schema() if readonly else self._init_schema()
        except sqlite3.DatabaseError as exc:
            if "malformed" in str(exc):
                raise _database_error(self.path, exc) from None
            raise UserError(f"{self.path}: not a repetita study store ({exc})") from None

    def _check_schema(self) -> None:
        """The read-only half of ``_init_schema``: the tables and the schema version, nothing written."""
        tables = {r[0] for r in self._conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        require({"meta", "runs", "curves", "rows"} <= tables, f"{self.path}: an SQLite file that is not a repetita "
                "study store (tables missing)")
        version = _schema_version(self._conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone(),
                                  self.path)
        require(version == SCHEMA_VERSION, f"{self.path}: store schema version {version} needs migrating by this "
                f"repetita (expects {SCHEMA_VERSION}): run repetita run on it once, or use a new study directory"
                if version == 1 else f"{self.path}: store schema version {version} is incompatible with this "
                f"repetita (expects {SCHEMA_VERSION}); use a new study directory")

    def _init_schema(self) -> None:
        # Checked and created inside one write transaction: two processes opening a new study at once
        # (two `repetita run` on one folder) see either no tables or all of them, never half.
        with self.transaction() as c:
            tables = {r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            if "meta" not in tables:
                require(not tables, f"{self.path}: an SQLite file that is not a repetita study store")
                for stmt in _SCHEMA.strip().split(";"):
                    if stmt.strip():
                        c.execute(stmt)
                c.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
                return
            version = _schema_version(c.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone(),
                                      self.path)
        if version == 1:
            self._migrate_v1()
            return
        require(
            version == SCHEMA_VERSION,
            f"{self.path}: store schema version {version} is incompatible with this repetita "
            f"(expects {SCHEMA_VERSION}); use a new study directory",
        )

    def _migrate_v1(self) -> None:
        """Schema 1 -> 2: recompute run ids under the new hash (see the module docstring)."""
        from repetita.lm.config import TrainConfig
        from repetita.runpaths import teacher_id, teacher_ref

        rows = self._conn.execute("SELECT id, config FROM runs ORDER BY created, rowid").fetchall()
        configs = {rid: json.loads(cfg) for rid, cfg in rows}
        new_ids: dict[str, str] = {}
        pending = dict(configs)
        while pending:  # teachers before students: a student's config names its teacher's folder
            progressed = False
            for rid, cfg in list(pending.items()):
                old_t = teacher_id(cfg.get("teacher"))
                if old_t in pending and old_t != rid:
                    continue
                if old_t in new_ids:
                    cfg["teacher"] = teacher_ref(new_ids[old_t])
                new_ids[rid] = TrainConfig.from_dict(cfg).hash
                del pending[rid]
                progressed = True
            require(progressed, f"{self.path}: cyclic teacher references; cannot migrate")
        study = self.path.parent
        with self.transaction() as c:
            c.execute("PRAGMA defer_foreign_keys=ON")
            for old, new in new_ids.items():
                cfg = TrainConfig.from_dict(configs[old])
                c.execute("UPDATE runs SET id=?, config=? WHERE id=?", (new, cfg.to_json(), old))
                c.execute("UPDATE runs SET depends_on=? WHERE depends_on=?", (new, old))
                c.execute("UPDATE curves SET run_id=? WHERE run_id=?", (new, old))
                for idx, text in c.execute("SELECT idx, row FROM rows WHERE run_id=?", (old,)).fetchall():
                    row = json.loads(text) | {"run_id": new}
                    c.execute("UPDATE rows SET run_id=?, row=? WHERE run_id=? AND idx=?",
                              (new, json.dumps(row), old, idx))
            c.execute("UPDATE meta SET value=? WHERE key='schema_version'", (str(SCHEMA_VERSION),))
            for old, new in new_ids.items():  # folders last: a failure above leaves them untouched
                src, dst = run_dir(study, old), run_dir(study, new)
                if src.is_dir() and old != new:
                    src.rename(dst)
                if (dst / "config.json").exists():
                    write_json(dst / "config.json", configs[old], indent=1)
                if (dst / "result.json").exists():
                    res = json.loads((dst / "result.json").read_text())
                    res["config"], res["config_hash"] = configs[old], new
                    for r in res.get("rows", []):
                        r["run_id"] = new
                    write_json(dst / "result.json", res, indent=1)

    @contextmanager
    def transaction(self):
        c = self._conn
        c.execute("BEGIN IMMEDIATE")
        try:
            yield c
        except BaseException:
            try:
                c.execute("ROLLBACK")
            except sqlite3.Error:  # SQLite already rolled back (a full disk does that)
                pass
            raise
        else:
            c.execute("COMMIT")

    def close(self) -> None:
        self._conn.close()

    # --- queue -------------------------------------------------------------------------------

    def add_runs(self, runs) -> int:
        """Insert runs not yet present (id = config hash); returns how many were new."""
        now = time.time()
        with self.transaction() as c:
            before = c.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
            c.executemany(
                "INSERT OR IGNORE INTO runs (id, recipe, config, depends_on, status, created) VALUES (?, ?, ?, ?, 'queued', ?)",
                [(r.id, r.recipe, r.config.to_json(), _deps_text(r.depends_on), now) for r in runs],
            )
            return c.execute("SELECT COUNT(*) FROM runs").fetchone()[0] - before

    def requeue_abandoned(self) -> list[str]:
        """Running rows whose worker is gone go back to the queue (they resume from checkpoint)."""
        out = []
        with self.transaction() as c:
            for rid in self._abandoned(c):
                c.execute("UPDATE runs SET status='queued', pid=NULL WHERE id=?", (rid,))
                out.append(rid)
        return out

    def abandoned(self) -> list[str]:
        """Runs marked running whose worker is gone (its process ended on this host, or its heartbeat is stale)."""
        return self._abandoned(self._conn)

    @staticmethod
    def _abandoned(c) -> list[str]:
        host, now = socket.gethostname(), time.time()
        out = []
        for rid, rhost, pid, beat in c.execute("SELECT id, host, pid, heartbeat FROM runs WHERE status='running'").fetchall():
            if (rhost == host and not pid_alive(pid)) or beat is None or now - beat > STALE_SECONDS:
                out.append(rid)
        return out

    def retry_failed(self) -> int:
        with self.transaction() as c:
            return c.execute("UPDATE runs SET status='queued', error=NULL WHERE status='failed'").rowcount

    def claim(self, run_id: str, pid: int | None = None, resumed: bool = False) -> bool:
        """Atomically move a queued run to running; False if another worker has it.

        ``resumed`` records that the worker found a checkpoint to continue from.
        """
        with self.transaction() as c:
            n = c.execute(
                "UPDATE runs SET status='running', host=?, pid=?, started=?, heartbeat=?, attempts=attempts+1, "
                "resumed=resumed+? WHERE id=? AND status='queued'",
                (socket.gethostname(), pid or os.getpid(), time.time(), time.time(), int(resumed), run_id),
            ).rowcount
        return n == 1

    def config(self, run_id: str) -> str:
        """The stored config JSON of a run."""
        row = self._conn.execute("SELECT config FROM runs WHERE id=?", (run_id,)).fetchone()
        require(row is not None, f"run {run_id} is not in the store")
        return row[0]

    def results(self) -> dict[str, dict]:
        """Metrics of finished runs and a marker for failed ones, by run id (for adaptive recipes)."""
        out = {}
        for rid, status, metrics, config in self._conn.execute("SELECT id, status, metrics, config FROM runs"):
            if status == "done" and metrics:
                out[rid] = json.loads(metrics) | {"config": json.loads(config)}
            elif status in ("failed", "diverged"):
                out[rid] = {"failed": status, "config": json.loads(config)}
        return out

    def heartbeat(self, run_id: str) -> None:
        with self.transaction() as c:
            c.execute("UPDATE runs SET heartbeat=? WHERE id=?", (time.time(), run_id))

    def _queued(self) -> list[tuple[str, list[str]]]:
        """Queued runs in creation order with the statuses of the runs they wait for."""
        status = dict(self._conn.execute("SELECT id, status FROM runs").fetchall())
        q = "SELECT id, depends_on FROM runs WHERE status='queued' ORDER BY created, rowid"
        return [(rid, [status.get(d) for d in (deps or "").split(",") if d]) for rid, deps in self._conn.execute(q)]

    def ready(self) -> list[str]:
        """Queued runs whose dependencies (if any) are all done, in creation order."""
        return [rid for rid, deps in self._queued() if all(d == "done" for d in deps)]

    def blocked(self) -> list[str]:
        """Queued runs a dependency of which failed or diverged: they cannot run."""
        return [rid for rid, deps in self._queued() if any(d in ("failed", "diverged") for d in deps)]

    # --- results -----------------------------------------------------------------------------

    def finish(self, run_id: str, result: dict) -> None:
        """Record metrics, curve and tidy rows of a finished run in one transaction."""
        rows = check_result(result)
        history = result.get("history", [])
        metrics = {k: v for k, v in result.items() if k not in ("history", "rows", "config")}
        with self.transaction() as c:
            c.execute(
                "UPDATE runs SET status=?, metrics=?, finished=?, error=NULL WHERE id=?",
                ("done", json.dumps(metrics), time.time(), run_id),
            )
            c.execute("DELETE FROM curves WHERE run_id=?", (run_id,))
            c.executemany(
                "INSERT INTO curves VALUES (?, ?, ?, ?, ?)",
                [(run_id, int(h["step"]), h.get("epoch"), h.get("train_loss"), h.get("val_loss")) for h in history],
            )
            c.execute("DELETE FROM rows WHERE run_id=?", (run_id,))
            c.executemany(
                "INSERT INTO rows VALUES (?, ?, ?)", [(run_id, i, json.dumps(r)) for i, r in enumerate(rows)]
            )

    def fail(self, run_id: str, error: str, status: str = "failed") -> None:
        with self.transaction() as c:
            c.execute("UPDATE runs SET status=?, error=?, finished=? WHERE id=?", (status, error[:2000], time.time(), run_id))

    # --- reading -----------------------------------------------------------------------------

    def runs(self) -> pd.DataFrame:
        return pd.read_sql_query("SELECT * FROM runs ORDER BY created, rowid", self._conn)

    def counts(self) -> dict[str, int]:
        out = dict.fromkeys(STATES, 0)
        for status, n in self._conn.execute("SELECT status, COUNT(*) FROM runs GROUP BY status"):
            out[status] = n
        return out

    def curves(self) -> pd.DataFrame:
        q = "SELECT c.*, r.recipe FROM curves c JOIN runs r ON r.id = c.run_id ORDER BY c.run_id, c.step"
        return pd.read_sql_query(q, self._conn)

    def tidy(self) -> pd.DataFrame:
        """The tidy table the law engine reads: one row per evaluated model (members, ensembles)."""
        from repetita.laws.data import rows_frame

        return rows_frame(json.loads(r[0]) for r in self._conn.execute("SELECT row FROM rows ORDER BY run_id, idx"))

    def export(self, path: str | Path) -> Path:
        """Write the tidy table as .csv or .parquet (temporary file, then rename)."""
        from repetita.io import check_file, save_table

        path = check_file(path, "export", suffixes=(".csv", ".parquet"))
        df = self.tidy()
        require(len(df) > 0, "no finished runs to export yet")
        return save_table(df, path)
