"""Numbers and number lists from command-line arguments.

Every subcommand takes numbers the same way (``3e9``, ``400M``; lists as ``1,2,4`` or as separate
words), so a typo is one line with exit code 2. Files are written by :mod:`repetita.io`.
"""

from __future__ import annotations

import math

from repetita.errors import UserError, require

_SUFFIX = {"k": 1e3, "m": 1e6, "b": 1e9, "g": 1e9, "t": 1e12}


def quantity(text) -> float | None:
    """3e9, 3B, 400M, 1.5T, 5k as a float (case-insensitive suffixes K, M, B/G, T); None if not a number."""
    s = str(text).strip().replace(",", "").replace("_", "")
    mult = 1.0
    if s and s[-1].lower() in _SUFFIX:
        mult, s = _SUFFIX[s[-1].lower()], s[:-1]
    try:
        return float(s) * mult
    except ValueError:
        return None


def format_quantity(v: float) -> str:
    """The inverse of :func:`quantity` for people: 500M, 1B, 2.5T, 10k, 0.5; FLOP-sized counts as 1e22."""
    if abs(v) >= 1e15:
        mantissa, exponent = f"{v:.2e}".split("e")
        mantissa = mantissa.rstrip("0").rstrip(".")
        return f"{'' if mantissa == '1' else mantissa + 'x'}1e{int(exponent)}"
    for unit, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(v) >= scale:
            return f"{v / scale:.3g}{unit}"
    return f"{v:.3g}"


def parse_number(text: str, what: str) -> float:
    """Parse 3e9, 3B, 400M, 1.5T (case-insensitive suffixes K, M, B/G, T)."""
    value = quantity(text)
    if value is None:
        raise UserError(f"{what}: {text!r} is not a number")
    return value


def number_list(values: str | list[str], what: str, *, whole: bool = False, positive: bool = False,
                maximum: float | None = None) -> list:
    """Numbers from '1e4,1e5' or ['1e4', '1e5'] (or both mixed); at least one.

    ``whole`` asks for integers (``1e4`` is accepted, ``2.5`` is not); ``positive`` for values > 0;
    ``maximum`` bounds every value (one line naming the limit: a size guard before any allocation).
    """
    items = [values] if isinstance(values, str) else list(values)
    out: list = []
    for item in items:
        for tok in str(item).split(","):
            if not tok.strip():
                continue
            v = parse_number(tok, what)
            if whole:
                require(math.isfinite(v) and v == int(v), f"{what}: '{tok.strip()}' is not a whole number")
                v = int(v)
            if positive:
                require(v > 0, f"{what} must be positive, got {tok.strip()}")
            if maximum is not None:
                require(v <= maximum, f"{what}: {tok.strip()} is above the limit of {maximum:g}")
            out.append(v)
    require(len(out) > 0, f"{what}: no values given")
    return out


def bounded_int(low: int, high: int | None = None):
    """An argparse ``type``: a whole number within [low, high] (``1e4`` accepted), else one line naming it."""
    import argparse

    def parse(text: str) -> int:
        v = quantity(text)
        if v is None or not math.isfinite(v) or v != int(v):
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number")
        v = int(v)
        if v < low or (high is not None and v > high):
            raise argparse.ArgumentTypeError(f"{text} must be from {low:,} to {high:,}" if high is not None
                                             else f"{text} must be at least {low:,}")
        return v

    parse.__name__ = "integer"
    return parse


def bounded_float(low: float | None = None, high: float | None = None, *, open_low: bool = False):
    """An argparse ``type``: a finite number within [low, high] (``(low, high]`` with ``open_low``)."""
    import argparse

    def parse(text: str) -> float:
        v = quantity(text)
        if v is None or not math.isfinite(v):
            raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
        if low is not None and (v <= low if open_low else v < low):
            raise argparse.ArgumentTypeError(f"{text} must be {'above' if open_low else 'at least'} {low:g}")
        if high is not None and v > high:
            raise argparse.ArgumentTypeError(f"{text} must be at most {high:g}")
        return v

    parse.__name__ = "number"
    return parse


# seeds: numpy's generators take non-negative integers below 2**63 (a negative one was a traceback)
SEED = bounded_int(0, 2**63 - 1)


def add_curve_arguments(parser) -> None:
    """The flags that read loss curves (``repetita.laws.curves``), shared by ``repetita fit`` and ``repetita reuse``."""
    parser.add_argument("--tag", help="curves: the scalar or key holding the loss (default: eval loss)")
    parser.add_argument("--tokens-per-step", type=lambda v: parse_number(v, "--tokens-per-step"),
                        help="curves logged by step: tokens per step")
    parser.add_argument("--meta", help="curves: per-run facts (run, params, unique_tokens, epochs) as CSV/Parquet")
    parser.add_argument("--columns", type=column_map, metavar="NEW=OLD,...",
                        help="read the table's own column names: --columns tokens=token_num,loss=openLM_loss")
    parser.add_argument("--where", metavar="EXPR",
                        help="keep the rows EXPR selects (pandas query syntax): --where \"corpus == 'c4' and lr < 1e-3\"")
    parser.add_argument("--run-column", metavar="COLUMN[,COLUMN]",
                        help="curves: the column (or columns, together) that name each run")
    parser.add_argument("--recursive", action="store_true",
                        help="curves: search a folder for TensorBoard event files at any depth (default: 3 levels; "
                        "at most 10,000 entries either way)")


def column_map(text: str) -> dict[str, str]:
    """``tokens=token_num,loss=openLM_loss`` -> {"tokens": "token_num", "loss": "openLM_loss"}."""
    import argparse

    out: dict[str, str] = {}
    for item in str(text).split(","):
        new, sep, old = item.partition("=")
        # argparse shows an ArgumentTypeError's own words (a ValueError would become "invalid value")
        if not (sep and new.strip() and old.strip()):
            raise argparse.ArgumentTypeError(f"{item!r}: give NEW=OLD (e.g. tokens=token_num)")
        if new.strip() in out:
            raise argparse.ArgumentTypeError(f"{new.strip()} is mapped twice")
        out[new.strip()] = old.strip()
    return out


def table_columns(args) -> dict[str, str] | None:
    """The column mapping of ``--columns`` and ``--run-column`` together."""
    columns = dict(getattr(args, "columns", None) or {})
    if getattr(args, "run_column", None):
        run = "+".join(c.strip() for c in args.run_column.split(","))
        require(columns.get("run", run) == run, "--run-column and --columns run=... disagree")
        columns["run"] = run
    return columns or None
