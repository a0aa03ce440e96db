"""Numbers and number lists from command-line arguments.

Every subcommand takes numbers the same way (``3e9``, ``400M``; lists as ``1,2,4`` or as separate
words), so a typo is one line with exit code 2. Files are written by :mod:`repetita.io`.
"""

from __future__ import annotations

import math

from repetita.errors import UserError, require

_SUFFIX = {"k": 1e3, "m": 1e6, "b": 1e9, "g": 1e9, "t": 1e12}


def parse_number(text: str, what: str) -> float:
    """Parse 3e9, 3B, 400M, 1.5T (case-insensitive suffixes K, M, B/G, T)."""
    s = str(text).strip()
    mult = 1.0
    if s and s[-1].lower() in _SUFFIX:
        mult, s = _SUFFIX[s[-1].lower()], s[:-1]
    try:
        value = float(s) * mult
    except ValueError:
        raise UserError(f"{what}: {text!r} is not a number") from None
    return value


def number_list(values: str | list[str], what: str, *, whole: bool = False, positive: bool = False) -> list:
    """Numbers from '1e4,1e5' or ['1e4', '1e5'] (or both mixed); at least one.

    ``whole`` asks for integers (``1e4`` is accepted, ``2.5`` is not); ``positive`` for values > 0.
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
            out.append(v)
    require(len(out) > 0, f"{what}: no values given")
    return out


def add_curve_arguments(parser) -> None:
    """The flags that read loss curves (``repetita.laws.curves``), shared by ``repetita fit`` and ``repetita reuse``."""
    parser.add_argument("--tag", help="curves: the scalar or key holding the loss (default: eval loss)")
    parser.add_argument("--tokens-per-step", type=lambda v: parse_number(v, "--tokens-per-step"),
                        help="curves logged by step: tokens per step")
    parser.add_argument("--meta", help="curves: per-run facts (run, params, unique_tokens, epochs) as CSV/Parquet")
