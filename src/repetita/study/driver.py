"""``run_study``: expand a spec, queue the runs its recipes ask for, run them, repeat, export the tidy table.

A study runs in rounds: the recipe cells propose the runs they need (``Study.proposals``), the store
queues the new ones, the runner trains everything runnable; an adaptive recipe (the coordinate search)
proposes its next points once the previous ones are measured. The study ends when a round adds nothing.
"""

from __future__ import annotations

import time
from pathlib import Path

from repetita.errors import require
from repetita.io import check_dir, write_text
from repetita.study.kinds import kind_of
from repetita.study.runners import get_runner, wait_for_others
from repetita.study.spec import expand, load_spec, resolve_spec
from repetita.study.store import STORE_NAME, Store

SPEC_NAME = "spec.toml"
FAILED_EXIT = 3  # `repetita run` when some runs failed (2 is bad input, 0 success)
TIDY_NAME = "tidy.csv"


def check_study_dir(study_dir: Path, creating: bool) -> None:
    """Refuse to write into a folder that holds other things: results must never be clobbered."""
    if not study_dir.exists():
        require(creating, f"{study_dir}: no such study directory")
        check_dir(study_dir, "study folder")
        return
    require(study_dir.is_dir(), f"{study_dir}: not a directory")
    if (study_dir / STORE_NAME).exists():
        # an empty store beside run folders lost its results: filling it anew would redo every run
        require((study_dir / STORE_NAME).stat().st_size > 0 or not (study_dir / "runs").is_dir(),
                f"{study_dir / STORE_NAME}: an empty file beside the run folders (the store was lost); restore it "
                "from a copy, or run the study in a new folder")
        if creating:
            check_dir(study_dir, "study folder")
        return
    require(creating, f"{study_dir}: not a study directory (no {STORE_NAME})")
    check_dir(study_dir, "study folder")
    require(not any(study_dir.iterdir()), f"{study_dir}: exists, is not empty and is not a study directory")


def check_resources(runs) -> None:
    """On the local pool, a command run asking for more GPUs than this machine shows is refused before the
    store exists (the pool checks again with the queue; a Ray cluster is checked when it is reached)."""
    from repetita.processes import visible_gpus

    need = max((kind_of(r.config).resources(r.config)["gpus"] for r in runs), default=0)
    if need:
        have = len(visible_gpus())
        require(need <= have, f"a run needs {need:g} GPU(s) and this machine shows {have}; run on a machine or "
                "Ray cluster (--ray ADDRESS) with them")


def check_budgets(configs) -> None:
    """Each kind of run checks its own batch before any run is queued (the LM lab: every unique-token budget
    fits its corpus; a command run's budgets were checked against its prepared corpus when its cells were
    built)."""
    by_kind: dict = {}
    for c in configs:
        by_kind.setdefault(kind_of(c).name, (kind_of(c), []))[1].append(c)
    for kind, batch in by_kind.values():
        kind.check_budgets(batch)


def check_same_study(study_dir: Path, raw: dict, add: bool) -> bool:
    """A spec run into an existing study must be its spec, or that spec with [[runs]] points appended (the
    report's next_runs.toml, suggest --spec-out): another spec would mix two studies in one store. ``add``
    lets it in on purpose. Returns whether the stored spec.toml is to be replaced (an extension)."""
    import tomllib

    stored = study_dir / SPEC_NAME
    if not stored.is_file():
        return True
    try:
        old = tomllib.loads(stored.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError, OSError):
        old = None
    if old is not None and {k: v for k, v in old.items() if k != "runs"} == {k: v for k, v in raw.items() if k != "runs"}:
        return True
    require(add, f"{study_dir} holds a study of another spec ({SPEC_NAME}); run it with that spec (or a spec that "
            "only appends [[runs]] to it), choose a new --dir, or pass --add to add this spec's runs to it")
    return False


def prepare_study(spec_path: str | Path, study_dir: str | Path, add: bool = False, ray: bool = False):
    """Validate the spec, create or reopen the study, queue the first runs. Returns (store, study, new)."""
    study_dir = Path(study_dir)
    raw = load_spec(spec_path)
    check_study_dir(study_dir, creating=True)
    replace_spec = check_same_study(study_dir, raw, add)
    study = expand(raw)  # validates everything before anything is written
    first = study.proposals({})
    check_budgets([r.config for r in first])
    if not ray:
        check_resources(first)
    fresh = not study_dir.exists()
    study_dir.mkdir(parents=True, exist_ok=True)
    try:
        store = Store.of_study(study_dir, create=True, verify=True)
        text = resolve_spec(spec_path).read_text()
        if replace_spec:
            write_text(study_dir / SPEC_NAME, text)
        else:  # --add: the study's own spec stays; the added one is kept beside it
            import hashlib

            write_text(study_dir / "added" / f"{hashlib.sha256(text.encode()).hexdigest()[:12]}.toml", text)
        new = store.add_runs(study.proposals(store.results()))
    except BaseException:
        if fresh:  # a new study that could not even be set up (a full disk, a size limit) leaves nothing behind
            import shutil

            shutil.rmtree(study_dir, ignore_errors=True)
        raise
    return store, study, new


def run_study(
    spec_path: str | Path,
    study_dir: str | Path,
    *,
    workers: int = 1,
    ray: bool = False,
    ray_address: str | None = None,
    retry_failed: bool = False,
    progress: bool = True,
    add: bool = False,
    runner: str | None = None,
) -> dict:
    require(workers >= 1, f"--workers must be >= 1, got {workers}")
    factory = get_runner(runner or ("ray" if ray else "local"))  # an unknown name is refused before any write
    t0 = time.time()
    store, study, new = prepare_study(spec_path, study_dir, add=add, ray=ray)
    if retry_failed:
        store.retry_failed()
    runner = None
    try:
        # one runner for the whole study: its pool (or Ray) serves every round
        runner = factory(study_dir, workers=workers, progress=progress, address=ray_address)
        while True:
            runner.run()
            # Another driver may still hold runs (a teacher our students wait for): wait, then go again.
            if store.counts()["running"]:
                wait_for_others(store)
            added = store.add_runs(study.proposals(store.results()))
            new += added
            if not added and not store.ready():
                break
        counts = store.counts()
        blocked = store.blocked()
        tidy = None
        if counts["done"]:
            tidy = str(store.export(Path(study_dir) / TIDY_NAME))
        return {
            "study_dir": str(Path(study_dir).resolve()),
            "runs": sum(counts.values()),
            "new_runs": new,
            "counts": counts,
            "blocked": blocked,
            "tidy": tidy,
            "seconds": time.time() - t0,
            # a study with failed runs is not a success: the command exits 3 (diverged runs are results)
            "exit_code": FAILED_EXIT if counts["failed"] else 0,
        }
    finally:
        if runner is not None:
            runner.close()
        store.close()


def study_status(study_dir: str | Path) -> dict:
    study_dir = Path(study_dir)
    check_study_dir(study_dir, creating=False)
    store = Store.of_study(study_dir, verify=True, readonly=True)
    try:
        runs = store.runs()
        bad = runs[runs["status"].isin(["failed", "diverged"])]
        counts = store.counts()
        # "running" only while a worker is alive; a killed worker's run is shown as abandoned (it resumes
        # from its checkpoint on the next `repetita run`)
        gone = store.abandoned()
        counts["running"] -= len(gone)
        counts["abandoned"] = len(gone)
        return {
            "study_dir": str(study_dir.resolve()),
            "counts": counts,
            "abandoned": gone,
            # the last line of a stored traceback is the one that names the problem
            "failed": [{"id": r.id, "recipe": r.recipe, "status": r.status,
                        "error": (r.error or "").strip().splitlines()[-1] if (r.error or "").strip() else ""}
                       for r in bad.itertuples()],
        }
    finally:
        store.close()
