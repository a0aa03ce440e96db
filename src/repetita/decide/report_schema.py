"""report.json, the one schema a study's report is written in and read back by.

``repetita report`` writes it (``summary``); ``repetita plan --efficiency-from`` and the study's own
decision read its measured recipe multipliers back (``efficiency_rows``). Both go through this module, so
the keys, their versions and the baseline's label are written down once.

Versions: 2 (this one) carries ``"schema": 2`` and a ``data_multiplier`` per efficiency row (the multiplier
solved in the planner's own model). Version 1 reports (no ``schema`` key) may carry only
``effective_tokens`` (the data-term inversion at fixed N); it is read in its place.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from repetita.errors import require

SCHEMA = 2
BASELINE = "standard"  # the recipe every multiplier is measured against (the study's standard runs)
KEYS = ("schema", "headline", "headline_markdown", "decision", "law_files", "reuse", "counts", "rows", "fits",
        "best", "ensemble_fits", "two_step", "efficiency", "figures", "tables", "next_runs_spec")


def summary(**parts) -> dict:
    """report.json's object: every key of this version in its order; parts not given are empty (a study
    with no finished run writes the same keys)."""
    unknown = sorted(set(parts) - set(KEYS))
    require(not unknown, f"report.json has no key(s) {', '.join(unknown)}")  # a programming error, named
    empty = {"decision": {}, "law_files": {}, "reuse": None, "counts": {}, "rows": 0, "fits": {}, "best": [],
             "ensemble_fits": {}, "two_step": None, "efficiency": [], "figures": {}, "tables": {},
             "next_runs_spec": None}
    return {k: SCHEMA if k == "schema" else parts.get(k, empty.get(k)) for k in KEYS}


@dataclass(frozen=True)
class EfficiencyRow:
    """One (recipe, N, U) cell of a study: the data multiplier its best loss is worth (inf: below the law's
    reach; the strict JSON writer stores that as null)."""

    recipe: str
    params: float
    unique_tokens: float
    multiplier: float


def _number(v) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def efficiency_rows(report: dict, path: str = "report.json") -> list[EfficiencyRow]:
    """The efficiency table of a report of any version, validated: a malformed row is one line naming it."""
    rows = report.get("efficiency") if isinstance(report, dict) else None
    require(isinstance(rows, list), f"{path}: not a repetita report.json (no efficiency table)")
    version = report.get("schema", 1)
    require(_number(version) and version >= 1, f"{path}: report.json schema {version!r} is not a version number")
    require(version <= SCHEMA, f"{path}: report.json schema {version!r} is newer than this repetita reads "
            f"({SCHEMA}); upgrade repetita")
    key = "data_multiplier" if version >= 2 or (rows and all(isinstance(r, dict) and "data_multiplier" in r
                                                              for r in rows)) else "effective_tokens"
    return parse_rows(rows, key, path)


def parse_rows(rows: list, key: str = "data_multiplier", path: str = "the study") -> list[EfficiencyRow]:
    """Efficiency rows (dicts, as the study's analysis makes them and report.json stores them), validated."""
    out = []
    for i, r in enumerate(rows):
        require(isinstance(r, dict) and isinstance(r.get("recipe"), str) and _number(r.get("params"))
                and _number(r.get("unique_tokens")) and (r.get(key) is None or _number(r.get(key))),
                f"{path}: efficiency row {i + 1} is malformed (it needs recipe, params, unique_tokens and {key})")
        out.append(EfficiencyRow(r["recipe"], float(r["params"]), float(r["unique_tokens"]),
                                 np.inf if r.get(key) is None else float(r[key])))
    return out
