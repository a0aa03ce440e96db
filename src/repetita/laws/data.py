"""Tidy run tables: loading, validation and the design matrices the laws read.

A run table has one row per training run with columns ``params`` (N), ``tokens`` (D, total
trained), ``unique_tokens`` (U), ``epochs`` (D/U) and ``loss``; loss-curve tables for the
multi-power law have ``step``, ``lr``, ``loss`` and optionally ``curve``. Every problem is reported
as one :class:`~repetita.errors.UserError` line naming the column and the (1-based) data row.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import pandas as pd

from repetita.errors import UserError, require

# Common spellings in published tables -> the canonical column.
ALIASES = {
    "val_loss": "loss",
    "validation_loss": "loss",
    "n": "params",
    "num_params": "params",
    "model size": "params",
    "d": "tokens",
    "training_tokens": "tokens",
    "u": "unique_tokens",
    "unique": "unique_tokens",
}
POSITIVE = ("params", "tokens", "unique_tokens", "epochs", "loss", "members", "lr_sum")
EPOCH_RTOL = 0.01  # epochs must equal tokens/unique_tokens to 1%


@dataclass(frozen=True)
class RunRow:
    """One evaluated model of a run: the row schema shared by the trainer, the study store, the report,
    ``repetita export`` and the law engine.

    ``members`` is 1 for a single model (a lone run or one member of a batched ensemble, ``member`` its
    index) and K for the combined ensemble (``member`` -1, ``combiner`` logits or probs). ``seed`` is the
    seed that initialised the model (``config seed + member``); ``step`` the optimizer step evaluated.
    """

    params: float  # N of one model (tied embeddings counted once)
    tokens: float  # D, tokens trained on
    unique_tokens: float  # U
    epochs: float  # D / U
    loss: float  # validation loss, nats/token
    recipe: str = "standard"
    seed: int = 0
    members: int = 1
    member: int = 0
    combiner: str | None = None
    total_params: float | None = None  # N x K for an ensemble
    run_id: str = ""
    weight_decay: float | None = None
    lr: float | None = None
    corpus: str | None = None
    context: int | None = None
    step: int | None = None

    def __post_init__(self):
        for name in ("params", "tokens", "unique_tokens", "epochs", "loss"):
            v = getattr(self, name)
            require(isinstance(v, int | float) and math.isfinite(v) and v > 0,
                    f"run row {self.run_id or '?'}: {name}={v!r} must be a positive finite number")
        require(self.members >= 1, f"run row {self.run_id or '?'}: members={self.members} must be >= 1")

    @property
    def bits_per_token(self) -> float:
        return self.loss / math.log(2.0)

    def to_dict(self) -> dict:
        return asdict(self) | {"bits_per_token": self.bits_per_token}

    @classmethod
    def from_dict(cls, d: dict) -> RunRow:
        names = {f.name for f in fields(cls)}
        missing = [n for n in ("params", "tokens", "unique_tokens", "epochs", "loss") if n not in d]
        require(not missing, f"run row {d.get('run_id', '?')}: missing {', '.join(missing)}")
        return cls(**{k: v for k, v in d.items() if k in names})


COLUMNS = tuple(f.name for f in fields(RunRow)) + ("bits_per_token",)


# Training compute C = 6 N D: 6 FLOPs per parameter per token (Kaplan et al. 2020), the one value every
# plan, region, benchmark and backtest uses (a plan may override it with --flops-per-token)
FLOPS_PER_PARAM_TOKEN = 6.0

def rows_frame(rows) -> pd.DataFrame:
    """The tidy table (one column per ``RunRow`` field) from row dicts or ``RunRow`` objects."""
    records = [(r if isinstance(r, RunRow) else RunRow.from_dict(r)).to_dict() for r in rows]
    return pd.DataFrame(records, columns=list(COLUMNS))


def read_table(path: str | Path, columns: dict[str, str] | None = None) -> pd.DataFrame:
    """Read a CSV (or Parquet) run table; errors name the file and the problem. ``columns`` maps the
    table's own names to repetita's (``{"tokens": "token_num"}``: NEW=OLD, as ``--columns`` gives them)."""
    path = Path(path)
    require(path.exists(), f"{path}: no such file")
    require(path.is_file(), f"{path}: not a file")
    try:
        if path.suffix == ".parquet":
            df = pd.read_parquet(path)
        else:
            df = pd.read_csv(path, skipinitialspace=True)
    except pd.errors.EmptyDataError:
        raise UserError(f"{path}: empty file") from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"{path}: cannot parse as a table ({first})") from None
    require(len(df) > 0, f"{path}: no data rows")
    if path.suffix != ".parquet":  # pandas renames a repeated header to NAME.1: refuse it instead
        import csv

        with open(path, newline="", encoding="utf-8", errors="replace") as f:
            header = [h.strip() for h in next(csv.reader(f), [])]
        repeated = sorted({h for h in header if header.count(h) > 1})
        require(not repeated, f"{path}: column name(s) {', '.join(repeated)} appear more than once")
    return canonical(df, columns)


def map_columns(df: pd.DataFrame, columns: dict[str, str]) -> pd.DataFrame:
    """Rename the table's columns as the user maps them (NEW=OLD); an unknown OLD is one line. OLD may join
    several columns with ``+`` (``run=model_args+Seed``: a run named by two columns together)."""
    columns = dict(columns)
    for new, old in list(columns.items()):
        parts = old.split("+")
        for part in parts:
            require(part in df.columns, f"column mapping {new}={old}: the table has no column {part!r}; it has: "
                    f"{', '.join(map(str, df.columns))}")
        if len(parts) > 1:
            df = df.assign(**{new: df[parts].astype(str).agg("/".join, axis=1)})
            del columns[new]
    clash = [new for new, old in columns.items() if new in df.columns and new != old and new not in columns.values()]
    if clash:
        raise UserError(f"column mapping {clash[0]}={columns[clash[0]]}: the table already has a column "
                        f"{clash[0]!r}; map that one too, or drop it")
    return df.rename(columns={old: new for new, old in columns.items()})


def _same_values(a: pd.Series, b: pd.Series) -> bool:
    x, y = pd.to_numeric(a, errors="coerce"), pd.to_numeric(b, errors="coerce")
    if x.notna().all() and y.notna().all():
        return bool(np.allclose(x.to_numpy(float), y.to_numpy(float), rtol=1e-9, atol=0))
    return bool((a.astype(str) == b.astype(str)).all())


def canonical(df: pd.DataFrame, columns: dict[str, str] | None = None) -> pd.DataFrame:
    """Rename known aliases to canonical column names (case-insensitive), after the user's own mapping.

    Two columns that both name one quantity (``params`` and ``num_params``) are refused when their values
    differ, naming both; when they agree the alias is dropped."""
    if columns:
        df = map_columns(df, columns)
    names = [str(c).strip().lower() for c in df.columns]
    repeated = sorted({n for n in names if names.count(n) > 1})
    require(not repeated, f"column name(s) {', '.join(repeated)} appear more than once")
    renames, drops = {}, []
    claimed: dict[str, str] = {}
    for col in df.columns:
        key = str(col).strip().lower()
        target = ALIASES.get(key, key)
        if target in claimed:
            other = claimed[target]
            if not _same_values(df[col], df[other]):
                raise UserError(f"columns {other!r} and {col!r} both give {target} and their values differ: keep one, "
                                f"or say which with --columns {target}=COLUMN")
            drops.append(col if key != target else other)
            if key == target:
                renames.pop(other, None)
                claimed[target] = col
            continue
        claimed[target] = col
        if target != col:
            renames[col] = target
    return df.drop(columns=drops).rename(columns=renames)


def numeric_column(df: pd.DataFrame, col: str) -> np.ndarray:
    """A column as positive-checked floats; text cells may carry a size suffix (4.2B, 85B, 100M, 5k)."""
    values = pd.to_numeric(df[col], errors="coerce")
    text = values.isna() & df[col].notna()
    if text.any():
        from repetita.cliargs import quantity

        parsed = df[col][text].map(quantity)
        values = values.astype(float).where(~text, pd.to_numeric(parsed, errors="coerce"))
    bad = values.isna() & df[col].notna()
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise UserError(f"column {col!r}, row {i + 1}: {df[col].iloc[i]!r} is not a number")
    arr = values.to_numpy(dtype=float)
    nonfinite = ~np.isfinite(arr)
    if nonfinite.any():
        i = int(np.flatnonzero(nonfinite)[0])
        raise UserError(f"column {col!r}, row {i + 1}: value is {arr[i]} (missing, NaN or inf)")
    if col in POSITIVE and (arr <= 0).any():
        i = int(np.flatnonzero(arr <= 0)[0])
        raise UserError(f"column {col!r}, row {i + 1}: {arr[i]:g} must be positive")
    return arr


def require_columns(df: pd.DataFrame, columns: tuple[str, ...], what: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        have = ", ".join(map(str, df.columns)) or "none"
        raise UserError(f"{what} needs column(s) {', '.join(missing)}; the table has: {have}")


def runs_frame(df: pd.DataFrame, columns: tuple[str, ...]) -> pd.DataFrame:
    """Validate a run table for a law that reads ``columns``; returns a float copy of them.

    ``tokens`` may be given as ``epochs * unique_tokens``; when both are present they must agree.
    """
    df = derive_columns(canonical(df), columns)
    require_columns(df, (*columns, "loss"), "this law")
    out = pd.DataFrame({c: numeric_column(df, c) for c in (*columns, "loss")}, index=df.index)
    if {"tokens", "unique_tokens"} <= set(out.columns):
        over = out["unique_tokens"].to_numpy() > out["tokens"].to_numpy() * (1 + 1e-9)
        if over.any():
            i = int(np.flatnonzero(over)[0])
            raise UserError(
                f"row {i + 1}: unique_tokens {out['unique_tokens'].iloc[i]:g} exceeds tokens "
                f"{out['tokens'].iloc[i]:g} (a run cannot see more unique tokens than it trains on)"
            )
        if "epochs" in df.columns:
            epochs = numeric_column(df, "epochs")
            implied = out["tokens"].to_numpy() / out["unique_tokens"].to_numpy()
            off = np.abs(epochs - implied) > EPOCH_RTOL * implied
            if off.any():
                i = int(np.flatnonzero(off)[0])
                raise UserError(
                    f"row {i + 1}: epochs {epochs[i]:g} inconsistent with tokens/unique_tokens = {implied[i]:g}"
                )
    return out


def derive_columns(df: pd.DataFrame, wanted=("tokens", "unique_tokens", "epochs")) -> pd.DataFrame:
    """Any one of tokens, unique_tokens and epochs that is missing, from the other two (D = K U), said as
    a note: a table that gives tokens and epochs needs no hand-computed unique_tokens."""
    from repetita.errors import note

    trio = ("tokens", "unique_tokens", "epochs")
    missing = [c for c in trio if c not in df.columns]
    if len(missing) != 1 or missing[0] not in wanted:
        return df
    col = missing[0]
    d = {c: numeric_column(df, c) for c in trio if c != col}
    if col == "tokens":  # tokens as K x U is the usual way to give them: no news
        return df.assign(tokens=d["epochs"] * d["unique_tokens"])
    if col == "unique_tokens":
        note("column unique_tokens derived as tokens / epochs")
        return df.assign(unique_tokens=d["tokens"] / d["epochs"])
    note("column epochs derived as tokens / unique_tokens")
    return df.assign(epochs=d["tokens"] / d["unique_tokens"])


def design(runs: pd.DataFrame) -> dict[str, np.ndarray]:
    """Columns and their logs as the flat arrays the law forms read."""
    X = {c: runs[c].to_numpy(dtype=float) for c in runs.columns if c != "loss"}
    for c in list(X):
        X[f"log_{'unique' if c == 'unique_tokens' else c}"] = np.log(X[c])
    return X
