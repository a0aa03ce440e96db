"""Tables questioned before they are fitted: what a run table says about itself that a fit would hide.

A newcomer's public tables fitted without a word: 15 settings (two corpora, three LR decays, two warmups)
as one law, five exact duplicate rows and the same (N, D) twice with losses 0.5 apart, perplexities
(15-450) in the loss column (R^2 0.988, E = 11.9), params in millions. ``question`` names each once, as a
typed caveat (``laws.caveats``); exact duplicates are merged (a note), everything else is left as it is
and warned about. ``select`` applies ``--where`` (pandas query syntax) before any of it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from repetita.errors import UserError
from repetita.laws.caveats import Caveat, Kind

INPUTS = ("params", "tokens", "unique_tokens", "epochs", "step", "lr", "x")  # what a loss is a function of
# Text columns that are structure, not a mixture: a curve's or run's name (the multi-power law fits one
# curve per schedule), and the recipe, which the fit's own diagnostics name (laws/diagnostics.mixed_rows)
STRUCTURE = ("curve", "run", "recipe")
CONFLICT_REL = 0.05  # one configuration's losses farther apart than 5% are not seeds of one run
PERPLEXITY_FLOOR = 10.0  # a language model's cross-entropy is below ~10 nats (ln of a 22k vocabulary)
SMALLEST_PARAMS = 1e4  # every params value below this reads as millions (or billions) of parameters
DECADES = 8.0  # a column spanning more than this many decades holds a unit slip or an outlier


def select(df: pd.DataFrame, where: str | None, source: str = "table") -> pd.DataFrame:
    """The rows ``where`` selects (pandas ``DataFrame.query`` syntax: ``corpus == 'c4' and lr > 1e-4``)."""
    if not where:
        return df
    try:
        out = df.query(where, engine="python")
    except Exception as exc:  # pandas raises many kinds for a bad expression: all are the user's input
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"--where {where!r}: cannot apply it to {source} ({first}); columns: "
                        f"{', '.join(map(str, df.columns))}") from None
    if not isinstance(out, pd.DataFrame) or out.empty:
        raise UserError(f"--where {where!r} selects no row of {source} ({len(df)} rows)")
    return out.reset_index(drop=True)


def separator_hint(path, df: pd.DataFrame) -> str | None:
    """A one-line hint when a CSV read as one column has a tab or semicolon in its header."""
    if len(df.columns) != 1:
        return None
    header = str(df.columns[0])
    for sep, name in (("\t", "tabs"), (";", "semicolons")):
        if sep in header:
            return (f"{path}: the header holds {name} ({header[:60]!r}): the file is separated by {name}, not "
                    "commas; it is read as such")
    return None


def question(df: pd.DataFrame, source: str = "table") -> tuple[pd.DataFrame, list[Caveat]]:
    """(the table with exact duplicate rows merged, the caveats about it), each named once."""
    out: list[Caveat] = []
    dup = df.duplicated(keep="first")
    if dup.any():
        out.append(Caveat(Kind.DUPLICATES, f"{int(dup.sum())} exact duplicate row(s) merged (rows "
                          + ", ".join(str(i + 1) for i in np.flatnonzero(dup)[:5]) + (", ..." if dup.sum() > 5 else "")
                          + ")", source))
        df = df[~dup].reset_index(drop=True)
    out += _conflicts(df, source) + _mixtures(df, source) + _units(df, source)
    return df, out


def question_curves(df: pd.DataFrame, source: str = "curves") -> list[Caveat]:
    """What a curve table says about itself, judged on each run's last evaluation: a text column whose values
    split its runs (two corpora fitted as one law; the schedule is a run's setting the curve laws read, not a
    mixture), and the units of its run table (perplexities, params in millions, a column spanning too many
    decades)."""
    runs = df.drop_duplicates("run", keep="last") if "run" in df.columns else df
    runs = runs.drop(columns=[c for c in ("schedule", "curve") if c in runs.columns])
    return _mixtures(runs, source) + _units(runs, source)


def _conflicts(df: pd.DataFrame, source: str) -> list[Caveat]:
    keys = [c for c in INPUTS if c in df.columns]
    if not keys or "loss" not in df.columns or "seed" in df.columns:  # seeds are meant to repeat a configuration
        return []
    loss = pd.to_numeric(df["loss"], errors="coerce")
    g = loss.groupby([df[k] for k in keys], dropna=False)
    spread = (g.transform("max") / g.transform("min") - 1).fillna(0.0)
    bad = np.flatnonzero(spread.to_numpy() > CONFLICT_REL)
    if not bad.size:
        return []
    rows = ", ".join(str(i + 1) for i in bad[:6]) + (", ..." if bad.size > 6 else "")
    return [Caveat(Kind.DUPLICATES, f"rows {rows} share their inputs ({', '.join(keys)}) but their losses differ by "
                   f"up to {100 * float(spread.max()):.0f}%: not seeds of one run (a different setting, or an error)",
                   source)]


def _mixtures(df: pd.DataFrame, source: str) -> list[Caveat]:
    """Any text column with several values, each shared by several rows (an identifier per row is not one)."""
    out = []
    for col in df.columns:
        if col in INPUTS or col in STRUCTURE or col == "loss" or pd.api.types.is_numeric_dtype(df[col]):
            continue
        counts = df[col].astype(str).value_counts()
        if len(counts) < 2 or counts.min() < 2 or len(counts) > len(df) / 2:
            continue
        shown = ", ".join(repr(v) for v in counts.index[:4]) + (", ..." if len(counts) > 4 else "")
        out.append(Caveat(Kind.MIXED_ROWS, f"column {col!r} holds {len(counts)} values ({shown}) that the law treats "
                          f"as one: fit one at a time, e.g. --where \"{col} == {counts.index[0]!r}\"", source))
    return out


def _units(df: pd.DataFrame, source: str) -> list[Caveat]:
    out = []
    if "loss" in df.columns:
        loss = pd.to_numeric(df["loss"], errors="coerce").dropna()
        if len(loss) and loss.min() > PERPLEXITY_FLOOR:
            out.append(Caveat(Kind.UNITS, f"every loss is above {PERPLEXITY_FLOOR:g} ({loss.min():.3g}-{loss.max():.3g}): "
                              "these look like perplexities; the laws model cross-entropy in nats (give ln of "
                              "them)", source))
    if "params" in df.columns:
        n = pd.to_numeric(df["params"], errors="coerce").dropna()
        if len(n) and n.max() < SMALLEST_PARAMS:
            out.append(Caveat(Kind.UNITS, f"every params value is below {SMALLEST_PARAMS:g} ({n.min():.3g}-{n.max():.3g}): "
                              "they look like millions or billions; give parameter counts (sizes like 4.2B are "
                              "read)", source))
    for col in ("params", "tokens", "unique_tokens", "loss"):
        if col not in df.columns:
            continue
        v = pd.to_numeric(df[col], errors="coerce")
        v = v[np.isfinite(v) & (v > 0)]
        if len(v) > 1 and np.log10(v.max() / v.min()) > DECADES:
            far = int(np.argmax(np.abs(np.log(v) - np.log(v).median())))
            out.append(Caveat(Kind.UNITS, f"column {col!r} spans {np.log10(v.max() / v.min()):.1f} decades "
                              f"({v.min():.3g}-{v.max():.3g}); row {int(v.index[far]) + 1} ({v.iloc[far]:.3g}) is the "
                              "farthest from the rest: a unit slip or an outlier moves the whole fit", source))
    return out
