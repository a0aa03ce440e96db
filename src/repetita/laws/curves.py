"""Loss curves in, from the tools people log with, as one tidy curve table.

The tidy curve table has one row per evaluation: ``run``, ``step`` and/or ``tokens``, ``loss``, and per-run
columns (``params``, ``unique_tokens``, ``epochs``, ``schedule``...) repeated on every row. Sources:

- a tidy CSV/Parquet already in that shape (``run``, ``tokens`` or ``step``, ``loss``);
- TensorBoard event files (a file or a folder of runs), read with tbparse (the ``curves`` extra): one run
  per folder holding event files, the scalar ``tag`` (default: the first of eval/loss, eval_loss,
  val_loss, validation/loss, loss present);
- a Hugging Face ``trainer_state.json``: its ``log_history`` entries with ``eval_loss`` (``tag`` picks
  another key, e.g. ``loss`` for the training loss);
- a W&B export: a run-history CSV (``_step`` and one column per metric) or a chart CSV (``Step`` and
  ``<run> - <metric>`` columns, with ``__MIN``/``__MAX`` companions, which are dropped).

Steps become tokens with ``tokens_per_step`` when the source logs steps only. Per-run facts the logs do
not hold come from a ``meta`` table (``run`` plus any of params, unique_tokens, epochs...). Duplicate
steps in a run, non-finite losses and unknown formats are one-line errors.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from repetita.errors import UserError, require
from repetita.registry import Registry

LOSS_TAGS = ("eval/loss", "eval_loss", "val_loss", "validation/loss", "val/loss", "loss", "train/loss")


# A folder of logs is searched this deep (logs/<run>/<split>/events...: Hugging Face's Trainer writes
# output_dir/runs/<stamp>/events...), deeper with --recursive, and through at most this many entries
# either way: `fit /tmp` walked the whole tree for over 90 s.
SCAN_DEPTH = 3
SCAN_ENTRIES = 10_000


def _is_tensorboard(path: Path, recursive: bool = False) -> bool:
    import os

    if path.is_file():
        return "tfevents" in path.name
    if not path.is_dir():
        return False
    seen, level, depth = 0, [str(path)], 0
    while level and (recursive or depth <= SCAN_DEPTH):
        depth += 1
        below = []
        for folder in level:
            try:
                entries = list(os.scandir(folder))
            except OSError:
                continue
            seen += len(entries)
            require(seen <= SCAN_ENTRIES, f"{path}: more than {SCAN_ENTRIES:,} files and folders"
                    + ("" if recursive else f" within {SCAN_DEPTH} levels") + "; give the folder that holds the "
                    "runs' logs")
            for e in entries:
                if e.is_file(follow_symlinks=False) and "tfevents" in e.name:
                    return True
                if e.is_dir(follow_symlinks=False):
                    below.append(e.path)
        level = below
    return False


def detect(path: str | Path, recursive: bool = False) -> str:
    """The source format of ``path``: the first registered reader (``READERS``, in registration order) that
    claims it, else ``tidy`` (a table). A folder is searched ``SCAN_DEPTH`` levels deep for event files (any
    depth with ``recursive``)."""
    p = Path(path)
    require(p.exists(), f"{p}: no such file or folder")
    for reader in READERS.values():
        if reader.detect(p, recursive):
            return reader.name
    require(p.is_file(), f"{p}: a folder no curve reader recognises (no TensorBoard event files"
            + ("" if recursive else f" within {SCAN_DEPTH} levels; --recursive searches deeper") + ")")
    return "tidy"


def _csv_head(p: Path):
    if p.suffix not in (".csv", ".tsv", ".txt"):
        return None
    try:
        return pd.read_csv(p, nrows=0).columns
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError, ValueError, OSError):
        return None  # the table reader names what is wrong with it


def _is_trainer_state(p: Path, recursive: bool) -> bool:
    return p.is_file() and p.suffix == ".json"


def _is_wandb_history(p: Path, recursive: bool) -> bool:
    head = _csv_head(p) if p.is_file() else None
    return head is not None and "_step" in head


def _is_wandb_chart(p: Path, recursive: bool) -> bool:
    head = _csv_head(p) if p.is_file() else None
    return head is not None and "Step" in head and any(" - " in str(c) for c in head)


def _tensorboard(path: Path, tag: str | None, run: str | None) -> pd.DataFrame:
    try:
        from tbparse import SummaryReader
    except ImportError:
        raise UserError("reading TensorBoard event files needs the curves extra: pip install 'repetita[curves]'") from None
    import warnings

    try:
        with warnings.catch_warnings():  # tbparse's own pandas deprecations are not the user's business
            warnings.simplefilter("ignore")
            df = SummaryReader(str(path), extra_columns={"dir_name"}).scalars
    except Exception as exc:  # tbparse raises assorted errors on damaged files
        raise UserError(f"{path}: not readable as TensorBoard event files ({type(exc).__name__}: {exc})") from None
    require(len(df) > 0, f"{path}: no scalars in these event files")
    tags = list(dict.fromkeys(df["tag"]))
    chosen = tag or next((t for t in LOSS_TAGS if t in tags), None)
    require(chosen in tags, f"{path}: no scalar {tag or 'loss'!r}; the files hold {', '.join(tags[:12])}")
    df = df[df["tag"] == chosen]
    root = path.name if path.is_dir() else path.parent.name
    names = df["dir_name"].fillna("").replace("", root) if "dir_name" in df.columns else root
    return pd.DataFrame({"run": run if run else names, "step": df["step"].astype(np.int64),
                         "loss": df["value"].astype(float)})


def _trainer_state(path: Path, tag: str | None, run: str | None) -> pd.DataFrame:
    from repetita.io import read_json

    state = read_json(path, "trainer_state.json")
    hist = state.get("log_history") if isinstance(state, dict) else None
    require(isinstance(hist, list), f"{path}: not a Hugging Face trainer_state.json (no log_history)")
    key = tag or "eval_loss"
    rows = [(e.get("step"), e.get(key)) for e in hist if isinstance(e, dict) and key in e]
    require(rows, f"{path}: no {key!r} in log_history (give tag= for another key)")
    require(all(isinstance(s, int) for s, _ in rows), f"{path}: log_history entries without an integer step")
    return pd.DataFrame({"run": run or path.parent.name, "step": [s for s, _ in rows],
                         "loss": [float(v) for _, v in rows]})


def _wandb_history(path: Path, tag: str | None, run: str | None) -> pd.DataFrame:
    df = pd.read_csv(path)
    key = tag or next((t for t in LOSS_TAGS if t in df.columns), None)
    require(key in df.columns, f"{path}: no column {tag or 'loss'!r}; it has {', '.join(map(str, df.columns[:12]))}")
    df = df[["_step", key]].dropna()
    return pd.DataFrame({"run": run or path.stem, "step": df["_step"].astype(np.int64), "loss": df[key].astype(float)})


def _wandb_chart(path: Path, tag: str | None, run: str | None) -> pd.DataFrame:
    df = pd.read_csv(path)
    cols = [c for c in df.columns if " - " in c and not c.endswith(("__MIN", "__MAX"))]
    if tag:
        cols = [c for c in cols if c.split(" - ", 1)[1] == tag]
    require(cols, f"{path}: no '<run> - {tag or '<metric>'}' columns")
    parts = []
    for c in cols:
        sub = df[["Step", c]].dropna()
        parts.append(pd.DataFrame({"run": run or c.split(" - ", 1)[0], "step": sub["Step"].astype(np.int64),
                                   "loss": sub[c].astype(float)}))
    return pd.concat(parts, ignore_index=True)


def _tidy(path: Path, columns: dict[str, str] | None = None) -> pd.DataFrame:
    from repetita.laws.data import read_table

    df = read_table(path, columns)
    require("loss" in df.columns, f"{path}: a curve table needs a loss column")
    require("tokens" in df.columns or "step" in df.columns, f"{path}: a curve table needs tokens or step")
    if "run" not in df.columns:
        df = df.assign(run=path.stem)
    return df


@dataclass(frozen=True)
class Reader:
    """A curve log format: ``detect(path, recursive) -> bool`` claims a file or folder, ``read(path, tag, run)``
    returns its evaluations as a frame with run, step (or tokens) and loss, which ``read_curves`` then
    validates like every other source. ``reuse``, ``fit`` and the command recipe's ``result`` read through
    the same records."""

    name: str
    detect: Callable[[Path, bool], bool]
    read: Callable[[Path, str | None, str | None], pd.DataFrame]


# "tidy" is the fallback format, read by the table reader: no curve reader may take the name
READERS: Registry = Registry("curve reader", reserved={"tidy": "repetita.laws.data (the table reader)"})


def register_reader(reader: Reader) -> Reader:
    """Add a curve reader; a name registered twice (or ``tidy``) is refused in one line naming both places."""
    return READERS.add(reader.name, reader)


register_reader(Reader("tensorboard", _is_tensorboard, _tensorboard))
register_reader(Reader("trainer_state", _is_trainer_state, _trainer_state))
register_reader(Reader("wandb-history", _is_wandb_history, _wandb_history))
register_reader(Reader("wandb-chart", _is_wandb_chart, _wandb_chart))


def read_source(path: Path, kind: str, tag: str | None = None, run: str | None = None,
                columns: dict[str, str] | None = None) -> pd.DataFrame:
    """``path`` read as format ``kind`` (a registered reader's name, or ``tidy``), not yet validated."""
    if kind == "tidy":
        return _tidy(path, columns)
    require(kind in READERS, f"unknown curve format {kind!r}; use tidy or one of {', '.join(READERS)}")
    return READERS[kind].read(path, tag, run)


def read_curves(path: str | Path, *, tag: str | None = None, run: str | None = None,
                tokens_per_step: float | None = None, meta: pd.DataFrame | None = None,
                columns: dict[str, str] | None = None, recursive: bool = False, kind: str | None = None,
                ) -> pd.DataFrame:
    """Any supported source -> the tidy curve table (module docstring), validated. ``columns`` renames a
    table's own column names (NEW=OLD) before it is read; ``kind`` names the format instead of detecting it."""
    p = Path(path)
    if kind is None:
        kind = detect(p, recursive)
    else:
        require(p.exists(), f"{p}: no such file or folder")
    df = read_source(p, kind, tag, run, columns)
    df = df.reset_index(drop=True)
    if tokens_per_step is not None:
        require(tokens_per_step > 0 and np.isfinite(tokens_per_step), f"tokens per step must be positive, got {tokens_per_step}")
        require("step" in df.columns, f"{p}: no step column to turn into tokens")
        df["tokens"] = df["step"].astype(float) * float(tokens_per_step)
    if meta is not None:
        require("run" in meta.columns, "the run metadata table needs a run column")
        missing = sorted(set(df["run"]) - set(meta["run"].astype(str)))
        require(not missing, f"no metadata for run(s) {', '.join(missing[:5])}")
        clash = [c for c in meta.columns if c != "run" and c in df.columns]
        require(not clash, f"metadata column(s) {', '.join(clash)} also come from the curves; give each once")
        df = df.merge(meta.assign(run=meta["run"].astype(str)), on="run", how="left")
    return validate(df, str(p))


def validate(df: pd.DataFrame, name: str = "curves") -> pd.DataFrame:
    """Finite losses, one evaluation per (run, step or tokens), rows sorted within each run."""
    loss = pd.to_numeric(df["loss"], errors="coerce")
    require(loss.notna().all() and np.isfinite(loss).all(), f"{name}: non-finite or non-numeric loss values")
    if (loss <= 0).any():  # a loss is a mean negative log-likelihood: never zero or below
        r = df[loss <= 0].iloc[0]
        raise UserError(f"{name}: run {r['run']!r} has loss {float(loss[loss <= 0].iloc[0]):g}; losses must be positive")
    axis = "step" if "step" in df.columns else "tokens"
    dup = df.duplicated(["run", axis])
    if dup.any():
        r = df[dup].iloc[0]
        raise UserError(f"{name}: run {r['run']!r} has {axis} {r[axis]:g} twice (merge or drop duplicate logs)")
    if "tokens" in df.columns:
        # a log whose tokens fall within a run (a restart from an earlier checkpoint, logged on after the
        # first attempt) is two curves in one; sorting it would splice them without a word
        tokens = pd.to_numeric(df["tokens"], errors="coerce")
        order = df["step"] if "step" in df.columns else pd.Series(np.arange(len(df)), index=df.index)
        frame = pd.DataFrame({"run": df["run"].astype(str), "order": order, "tokens": tokens})
        frame = frame.sort_values(["run", "order"], kind="stable")
        falls = frame.groupby("run", sort=False)["tokens"].diff() < 0
        if falls.any():
            i = falls.to_numpy().nonzero()[0][0]
            r = frame.iloc[i]
            raise UserError(f"{name}: run {r['run']!r} goes back to {r['tokens']:.4g} tokens after "
                            f"{frame['tokens'].iloc[i - 1]:.4g} (row {int(frame.index[i]) + 1}): tokens go backwards; "
                            "a restarted run logs part of its curve twice: keep one copy")
    df = df.assign(run=df["run"].astype(str), loss=loss.astype(float))
    return df.sort_values(["run", axis], kind="stable").reset_index(drop=True)


def final_losses(curves: pd.DataFrame) -> pd.DataFrame:
    """One row per run: the last evaluation, with the run's per-run columns (the run table of its final losses)."""
    axis = "tokens" if "tokens" in curves.columns else "step"
    last = curves.loc[curves.groupby("run")[axis].idxmax()].reset_index(drop=True)
    return last


def as_runs(curves: pd.DataFrame) -> pd.DataFrame:
    """Evaluations as run rows for a law fit: part-way through its first epoch a run has seen only the tokens
    so far (unique_tokens = min(U, tokens)), and its epochs are tokens / unique tokens at that point (the
    run's planned epoch count is kept as run_epochs)."""
    df = curves.copy()
    if {"tokens", "unique_tokens"} <= set(df.columns):
        if "epochs" in df.columns:
            df = df.rename(columns={"epochs": "run_epochs"})
        df["unique_tokens"] = np.minimum(df["unique_tokens"].astype(float), df["tokens"].astype(float))
        df["epochs"] = df["tokens"].astype(float) / df["unique_tokens"]
    return df


def load(path: str | Path, *, tag: str | None = None, tokens_per_step: float | None = None,
         meta: str | Path | None = None, columns: dict[str, str] | None = None,
         recursive: bool = False) -> tuple[pd.DataFrame, bool]:
    """A run table (one row per run) or curves from any source; True when it holds curves. ``columns``
    maps the table's own names to repetita's (NEW=OLD: ``--columns tokens=token_num,loss=openLM_loss``)."""
    from repetita.laws.data import read_table

    kind = detect(path, recursive)
    meta_df = read_table(meta) if meta else None
    if kind == "tidy":
        df = read_table(path, columns)
        if "run" not in df.columns or not df["run"].duplicated().any():
            require(tag is None and tokens_per_step is None and meta_df is None,
                    f"{path}: a run table (one row per run) takes no --tag, --tokens-per-step or --meta")
            return df, False
    require(not columns or kind == "tidy", f"{path}: --columns renames the columns of a table, not of {kind} logs")
    return read_curves(path, tag=tag, tokens_per_step=tokens_per_step, meta=meta_df, columns=columns,
                       recursive=recursive), True

