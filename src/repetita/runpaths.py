"""Where a run lives: ``<root>/runs/<id>``, for a recipe run locally (``train --recipe``) and for a study.

One small module that every layer may read: the lab names a distillation teacher by this path
(``teacher_ref``), the store builds run folders with it (``run_dir``), and the recipes find a teacher's id
in a config (``teacher_id``).
"""

from __future__ import annotations

from pathlib import Path

from repetita.errors import require

RUNS_DIR = "runs"


def teacher_ref(run_id: str) -> str:
    """How a config names a teacher trained beside it (relative to the recipe folder or study)."""
    return f"{RUNS_DIR}/{run_id}"


def teacher_id(ref) -> str | None:
    """The run id a ``teacher_ref`` names (None for no teacher or a teacher elsewhere)."""
    return ref.split("/", 1)[1] if isinstance(ref, str) and ref.startswith(RUNS_DIR + "/") else None


def run_dir(root: str | Path, run_id: str) -> Path:
    """``root/runs/<id>``. An id is a hash, one plain name: never a path that leaves ``root/runs`` (a
    hand-edited store, a damaged row)."""
    require(isinstance(run_id, str) and run_id not in ("", ".", "..") and "/" not in run_id and "\\" not in run_id
            and "\0" not in run_id, f"run id {run_id!r} is not a plain name; the store is damaged")
    return Path(root) / teacher_ref(run_id)
