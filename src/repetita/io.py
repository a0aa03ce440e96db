"""Every file repetita writes goes through this module: atomic writes, strict JSON, figures.

Atomic: a result is written beside its target under a temporary name and renamed over it, so a
crash or a full disk never leaves a truncated result and never damages an earlier one. Output
locations are checked *before* long work starts (``check_file``, ``check_dir``): an unwritable
place, a file where a folder is expected, a folder where a file is expected, or an output that is
also an input is one line naming the problem (a ``UserError``: exit code 2 on the command line).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from repetita.errors import UserError, require
from repetita.processes import pid_alive

FIGURE_SUFFIXES = (".png", ".pdf", ".svg")


# --- strict JSON ----------------------------------------------------------------------------------


def jsonable(obj: Any) -> Any:
    """numpy scalars/arrays to Python, non-finite floats to None (strict JSON has no NaN)."""
    import numpy as np

    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return jsonable(obj.item())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, Path):
        return str(obj)
    return obj


def dumps(obj: Any, indent: int | None = None) -> str:
    return json.dumps(jsonable(obj), indent=indent, allow_nan=False)


def read_json(path: str | Path, what: str = "file") -> Any:
    """Parse a JSON file; a missing, unreadable or malformed file is one line naming it."""
    path = Path(path)
    require(path.is_file(), f"{path}: no such {what}")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: not valid JSON ({getattr(exc, 'msg', exc)})") from None
    except OSError as exc:
        raise UserError(f"{path}: cannot read ({exc.strerror})") from None


# --- checks before work ---------------------------------------------------------------------------


def _nearest_existing(path: Path) -> Path:
    p = path
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def _writable(folder: Path) -> bool:
    """Try it: permission bits do not tell (root passes ``os.access`` on /proc, a read-only mount, ...)."""
    import tempfile

    try:
        fd, name = tempfile.mkstemp(dir=folder, prefix=".repetita-probe-")
    except OSError:
        return False
    os.close(fd)
    os.unlink(name)
    return True


def _check_parent(path: Path, what: str) -> None:
    """The folder ``path`` would be created in must be a folder we can write (or create) in."""
    anchor = _nearest_existing(path.parent if path.parent != Path("") else Path("."))
    require(anchor.is_dir(), f"{what} '{path}': '{anchor}' is a file, not a folder")
    require(_writable(anchor), f"{what} '{path}': cannot write in '{anchor}'")


def check_file(path: str | Path, what: str = "output", suffixes: tuple[str, ...] | None = None,
               inputs: Iterable[str | Path] = ()) -> Path:
    """Validate an output *file* location before long work: writable, not a folder, not an input."""
    path = Path(path)
    require(str(path).strip() != "", f"{what}: empty path")
    if suffixes is not None:
        require(path.suffix.lower() in suffixes,
                f"{what} '{path}': the suffix must be one of {', '.join(suffixes)}")
    require(not path.is_dir(), f"{what} '{path}' is a folder; give a file name")
    if path.exists():
        require(_writable(path.parent), f"{what} '{path}': cannot write in '{path.parent}'")
    else:
        _check_parent(path, what)
    refuse_inputs(path, inputs, what)
    return path


def check_dir(path: str | Path, what: str = "output folder", inputs: Iterable[str | Path] = ()) -> Path:
    """Validate an output *folder* location: an existing folder we can write in, or creatable."""
    path = Path(path)
    require(str(path).strip() != "", f"{what}: empty path")
    if path.exists():
        require(path.is_dir(), f"{what} '{path}' is a file, not a folder")
        require(_writable(path), f"{what} '{path}': cannot write in it")
    else:
        _check_parent(path, what)
    refuse_inputs(path, inputs, what)
    return path


def refuse_inputs(path: str | Path, inputs: Iterable[str | Path], what: str = "output") -> None:
    """An output that is also an input would destroy (or append into) what it reads."""
    target = Path(path).resolve()
    for item in inputs:
        if item is None:
            continue
        require(Path(item).resolve() != target, f"{what} '{path}' is also an input; choose another path")


def make_dir(path: str | Path, what: str = "output folder") -> Path:
    path = check_dir(path, what)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create {what} '{path}': {exc.strerror}") from None
    return path


def inside(folder: str | Path | None, relative: str) -> bool:
    """Whether ``folder / relative`` stays inside ``folder``: never absolute, no '..' out of it, and (given a
    real folder) no symlink out of it once resolved. A result path or a manifest's file name must never
    reach a file elsewhere: a run deletes its stale result before it starts. ``folder=None``: the lexical
    check alone (a spec, before any folder exists)."""
    if Path(relative).is_absolute():
        return False
    norm = os.path.normpath(relative)
    if norm == ".." or norm.startswith("../"):
        return False
    if folder is None:
        return True
    base = Path(folder).resolve()
    return (base / relative).resolve().is_relative_to(base)


# --- atomic writers -------------------------------------------------------------------------------


def remove_stale_temps(path: str | Path) -> list[Path]:
    """Temporary files of ``write_atomic`` for ``path`` left by a writer that was killed (kill -9 skips its
    cleanup): removed when the process named in them is gone. Called before a run resumes."""
    path = Path(path)
    gone = []
    for tmp in path.parent.glob(f".{path.name}.*.tmp{path.suffix}"):
        pid = tmp.name[len(path.name) + 2:].split(".", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not pid_alive(int(pid)):
            tmp.unlink(missing_ok=True)
            gone.append(tmp)
    return gone


def write_atomic(path: str | Path, writer: Callable[[Path], None]) -> Path:
    """``writer(tmp)`` fills a temporary file beside ``path``; it then replaces ``path`` in one rename."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp{path.suffix}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        writer(tmp)
        tmp.replace(path)
    except BaseException as exc:
        # whatever stopped the write (a full disk, a file-size limit, Ctrl-C, a writer's own error), the
        # temporary file goes and the earlier result stays
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        # torch.save reports a full disk as RuntimeError ("file write failed"), not OSError
        if isinstance(exc, OSError | RuntimeError):
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else " ".join(str(exc).split())[:160]
            raise UserError(f"cannot write '{path}': {reason or type(exc).__name__}"
                            + (" (is the disk full?)" if isinstance(exc, RuntimeError) else "")) from None
        raise
    return path


def write_text(path: str | Path, text: str) -> Path:
    return write_atomic(path, lambda tmp: tmp.write_text(text))


def write_json(path: str | Path, obj: Any, indent: int | None = None) -> Path:
    """Strict JSON (numpy converted, non-finite floats as null), written atomically."""
    return write_text(path, dumps(obj, indent=indent) + "\n")


def save_figure(fig, path: str | Path, dpi: int = 120, **kwargs) -> Path:
    """Save a matplotlib figure atomically and close it; the suffix picks the format."""
    import matplotlib.pyplot as plt

    path = Path(path)
    require(path.suffix.lower() in FIGURE_SUFFIXES,
            f"figure '{path}': the suffix must be one of {', '.join(FIGURE_SUFFIXES)}")
    try:
        return write_atomic(path, lambda tmp: fig.savefig(tmp, dpi=dpi, format=path.suffix[1:].lower(), **kwargs))
    finally:
        plt.close(fig)


def save_torch(obj: Any, path: str | Path) -> Path:
    import torch

    return write_atomic(path, lambda tmp: torch.save(obj, tmp))


def save_npy(path: str | Path, arr) -> Path:
    import numpy as np

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            np.save(f, arr)

    return write_atomic(path, write)


def save_table(df, path: str | Path) -> Path:
    """A pandas table as .csv or .parquet (pyarrow), atomically."""
    path = Path(path)
    require(path.suffix in (".csv", ".parquet"), f"{path}: tables are written as .csv or .parquet, not '{path.suffix}'")
    if path.suffix == ".parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise UserError("Parquet needs pyarrow: pip install 'repetita[parquet]'") from None
        return write_atomic(path, lambda tmp: df.to_parquet(tmp, index=False))
    return write_atomic(path, lambda tmp: df.to_csv(tmp, index=False))


def plt():
    """pyplot on the non-interactive backend (figures are only ever written to files)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as pyplot

    return pyplot


class JsonlAppender:
    """An append-only JSONL log (resumable pipelines): one ``os.write`` of a whole line on an ``O_APPEND``
    descriptor under a lock, so concurrent writers never interleave and a kill leaves at most one torn
    last line, which the reader drops. The one writer that is not atomic by design: it is a log."""

    def __init__(self, path: str | Path):
        import threading

        path = Path(path)
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as exc:
            raise UserError(f"cannot write '{path}': {exc.strerror}") from None
        self.lock = threading.Lock()

    def write(self, rec: dict) -> None:
        line = (json.dumps(jsonable(rec), ensure_ascii=False) + "\n").encode("utf-8")
        with self.lock:
            os.write(self.fd, line)

    def write_unique(self, rec: dict, key: Callable[[dict], Any]) -> bool:
        """Append ``rec`` unless the log already holds a record with its key; False if it did.

        Under an exclusive ``flock`` on the log, so two processes writing one log (two runs of one
        experiment on one folder) each see the other's finished records and no key is written twice.
        """
        import fcntl

        with self.lock:
            fcntl.flock(self.fd, fcntl.LOCK_EX)
            try:
                if any(key(r) == key(rec) for r in read_log(self.path)):
                    return False
                os.write(self.fd, (json.dumps(jsonable(rec), ensure_ascii=False) + "\n").encode("utf-8"))
                return True
            finally:
                fcntl.flock(self.fd, fcntl.LOCK_UN)

    def close(self) -> None:
        os.close(self.fd)


def read_log(path: str | Path) -> list[dict]:
    """The records of a :class:`JsonlAppender` log, first cutting a torn last line (a kill mid-write)
    off the file so that lines appended later stay valid JSONL. A missing file is an empty log."""
    p = Path(path)
    if not p.exists():
        return []
    data = p.read_bytes()
    if data and not data.endswith(b"\n"):
        cut = data.rfind(b"\n") + 1
        with open(p, "r+b") as f:
            f.truncate(cut)
        data = data[:cut]
    out = []
    for line in data.decode("utf-8", errors="replace").splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if isinstance(rec, dict):
            out.append(rec)
    return out
