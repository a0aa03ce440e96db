"""Running a study: a local process pool (default) or a Ray cluster, same function per run.

``execute_run(study_dir, run_id)`` is the unit of work: claim the run in the store, train it in
``study_dir/runs/<id>`` (``repetita.lm.train.train`` resumes from the checkpoint there), record
the result. Both runners call exactly this function and runs are deterministic from their config
and seed, so the local pool and Ray give identical metrics.

The scheduler loop lives in the driver: it re-queues runs abandoned by killed workers, submits
runs whose dependency (a distillation teacher) is done, and stops when nothing is runnable.
"""

from __future__ import annotations

import os
import sys
import time
import traceback
from pathlib import Path

from repetita.errors import UserError
from repetita.study.store import Store, run_dir

HEARTBEAT_EVERY = 20  # training steps between heartbeats


def execute_run(study_dir: str, run_id: str, threads: int = 1) -> tuple[str, dict]:
    """Claim, train and record one run; returns its final status ('skipped' if already taken) and a
    one-line summary (recipe, loss, seconds)."""
    import torch

    from repetita.lm.config import TrainConfig
    from repetita.lm.train import DamagedCheckpoint, train
    from repetita.lm.trainer import Diverged, Every

    # One thread per worker: fair sharing of cores, and float reductions in a fixed order.
    torch.set_num_threads(threads)
    store = Store.of_study(study_dir)
    t0 = time.time()
    try:
        config = TrainConfig.from_json(store.config(run_id))
        folder = run_dir(study_dir, run_id)
        info = {"recipe": config.recipe}
        check_study_alive(store.path)
        if not store.claim(run_id, resumed=(folder / "ckpt.pt").exists()):
            return "skipped", info
        beat = Every(lambda step: _beat(store, run_id), every=HEARTBEAT_EVERY)
        try:
            # a distillation teacher is named relative to the study ("runs/<id>"): resolve it there
            result = train(config, folder, callbacks=[beat], root=study_dir)
        except UserError as exc:
            status = "diverged" if isinstance(exc, Diverged) else "failed"
            message = str(exc)
            if isinstance(exc, DamagedCheckpoint):
                # kept for inspection under another name; --retry-failed then starts the run from scratch
                kept = exc.path.with_name(f"{exc.path.name}.damaged-{int(time.time())}")
                exc.path.rename(kept)
                message += f"; moved aside to {kept.name}, --retry-failed restarts the run from scratch"
            store.fail(run_id, message, status=status)
            return status, info | {"seconds": time.time() - t0, "error": str(exc)}
        except Exception:  # a bug or an environment problem: keep the traceback in the store
            store.fail(run_id, traceback.format_exc())
            return "failed", info | {"seconds": time.time() - t0}
        check_study_alive(store.path)
        store.finish(run_id, result)
        return "done", info | {"loss": result["val_loss"], "seconds": time.time() - t0}
    finally:
        store.close()


class StudyGone(UserError):
    """The study folder was deleted while runs were training."""


def check_study_alive(store_path: Path) -> None:
    """SQLite keeps writing into a deleted file, and the trainer would recreate the run folders: a worker
    that finds its study gone stops, and the driver stops the study with one line."""
    if not Path(store_path).exists():
        raise StudyGone(f"the study folder {Path(store_path).parent} was deleted while it ran; stopped (results "
                        "finished after the deletion are lost)")


def _beat(store: Store, run_id: str) -> None:
    check_study_alive(store.path)
    store.heartbeat(run_id)


def _die_with_parent() -> None:
    """Pool initializer: on Linux, a worker gets SIGKILL when the runner dies.

    Without it a worker orphaned by ``kill -9`` of the runner keeps training its run while a
    restarted runner waits for it; with it the run is re-queued at once and resumes from its
    checkpoint. Elsewhere (no prctl) the restarted runner waits for the orphan instead.
    """
    import ctypes
    import signal

    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
    except OSError:
        return
    PR_SET_PDEATHSIG = 1
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


class _Progress:
    """A rich progress bar on a TTY; otherwise one line per finished run on stdout (for logs)."""

    def __init__(self, total: int, enabled: bool):
        self.bar, self.lines = None, enabled and not sys.stderr.isatty()
        if enabled and sys.stderr.isatty():
            from rich.progress import Progress

            self.bar = Progress(transient=False)
            self.task = self.bar.add_task("runs", total=total)
            self.bar.start()

    def advance(self, run_id: str, status: str, info: dict) -> None:
        if self.bar:
            self.bar.advance(self.task, 1)
        elif self.lines and status != "skipped":
            loss = f"loss {info['loss']:.4f}" if "loss" in info else status
            print(f"{run_id} {info.get('recipe', '?'):<12} {loss} {info.get('seconds', 0.0):.1f} s", flush=True)

    def close(self) -> None:
        if self.bar:
            self.bar.stop()


def _schedule(store: Store, submit, wait, capacity: int, progress: _Progress) -> dict[str, str]:
    """Generic driver loop: ``submit(run_id)`` -> handle, ``wait(handles)`` -> (done pairs, pending)."""
    inflight: dict = {}
    outcome: dict[str, str] = {}
    while True:
        for rid in store.ready():
            if len(inflight) >= capacity:
                break
            if rid not in inflight.values():
                inflight[submit(rid)] = rid
        if not inflight:
            break
        finished, _ = wait(list(inflight))
        for handle, (status, info) in finished:
            rid = inflight.pop(handle)
            outcome[rid] = status
            progress.advance(rid, status, info)
        check_study_alive(store.path)
    return outcome


def run_local(study_dir: str | Path, workers: int = 1, progress: bool = True) -> dict[str, str]:
    """Run every runnable queued run with a pool of ``workers`` processes."""
    import concurrent.futures as cf
    import multiprocessing as mp

    study_dir = str(Path(study_dir).resolve())
    store = Store.of_study(study_dir)
    store.requeue_abandoned()
    bar = _Progress(len(store.ready()), progress)
    # spawn: a fresh interpreter per worker, no forked torch/OpenMP state
    pool = cf.ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn"), initializer=_die_with_parent)
    with pool:

        def submit(rid):
            return pool.submit(execute_run, study_dir, rid)

        def wait(handles):
            done, pending = cf.wait(handles, return_when=cf.FIRST_COMPLETED)
            return [(h, h.result()) for h in done], pending

        try:
            return _schedule(store, submit, wait, workers, bar)
        finally:
            bar.close()
            store.close()


def run_ray(study_dir: str | Path, address: str | None = None, workers: int | None = None, progress: bool = True):
    """Same schedule on Ray: ``address`` of a running cluster, or a local Ray started here."""
    try:
        import ray
    except ImportError:
        raise UserError("--ray needs the 'ray' package: pip install 'repetita[ray]'") from None
    study_dir = str(Path(study_dir).resolve())
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    started_here = not ray.is_initialized()
    if started_here:
        kwargs = {"address": address} if address else {"num_cpus": workers or os.cpu_count(), "include_dashboard": False}
        ray.init(log_to_driver=False, **kwargs)
    try:
        remote = ray.remote(num_cpus=1)(execute_run)
        store = Store.of_study(study_dir)
        store.requeue_abandoned()
        capacity = workers or int(ray.cluster_resources().get("CPU", 1))
        bar = _Progress(len(store.ready()), progress)

        def submit(rid):
            return remote.remote(study_dir, rid)

        def wait(handles):
            done, pending = ray.wait(handles, num_returns=1)
            return [(h, ray.get(h)) for h in done], pending

        try:
            return _schedule(store, submit, wait, capacity, bar)
        finally:
            bar.close()
            store.close()
    finally:
        if started_here:
            ray.shutdown()


def wait_for_others(store: Store, poll: float = 2.0, timeout: float | None = None) -> None:
    """Block while another live process still runs some of this study's runs."""
    t0 = time.time()
    while store.counts()["running"]:
        store.requeue_abandoned()
        if timeout is not None and time.time() - t0 > timeout:
            return
        time.sleep(poll)
