"""Running a study: a local process pool (default) or a Ray cluster, same function per run.

The driver owns the store: it claims a run, hands its config to a worker, and records what the worker
returns (``record``). Workers never write the store, so a Ray worker on another machine needs no access
to the SQLite file (only to the run folders, for checkpoints), and the store has one writer however many
runs finish at once (measured in docs/study.md). ``work(study_dir, run_id, config_json)`` is the unit of
work, for the LM lab's runs (``repetita.lm.train.train`` resumes from the checkpoint in ``runs/<id>``) and
for a user's own command (``repetita.study.command``); both runners call exactly this function and runs
are deterministic from their config and seed, so the local pool and Ray give identical metrics.

The scheduler loop lives here too: it submits runs whose dependencies are done and whose resources are
free (``resources``: a GPU run gets a device of its own), beats the heartbeat of every run in flight, and
stops when nothing is runnable. A killed driver leaves its runs marked running under its own pid; the
next driver re-queues them (``Store.requeue_abandoned``) and they resume from their checkpoints.
"""

from __future__ import annotations

import math
import os
import sys
import time
import traceback
from pathlib import Path

from repetita.errors import UserError, require
from repetita.processes import die_with_parent, visible_gpus
from repetita.registry import Registry
from repetita.runpaths import run_dir
from repetita.study import recipes as _builtins  # noqa: F401  (the built-in recipes and run kinds register)
from repetita.study.kinds import kind_of_json
from repetita.study.store import Store, StudyGone, check_result, check_study_alive, store_path

BEAT_SECONDS = 30.0  # the driver beats the heartbeat of the runs in flight this often (store.STALE_SECONDS: 600)


def run_resources(config_json: str) -> dict:
    """What a run asks of the scheduler: {'cpus', 'gpus', 'custom'} (its kind says; LM lab runs: one CPU)."""
    kind = kind_of_json(config_json)
    return kind.resources(kind.load(config_json))


def work(study_dir: str, run_id: str, config_json: str, threads: int = 1, gpu_ids=None, beat=None,
         ) -> tuple[str, dict]:
    """Train or execute one run; touches no store. Returns (status, payload): 'done' with ``result``, or
    'failed' / 'diverged' with ``error``; ``info`` (recipe, loss, seconds) is always in the payload.
    ``beat``: called now and then while the run goes on (the in-process runner beats the run's heartbeat)."""
    t0 = time.time()
    folder = run_dir(study_dir, run_id)
    try:
        check_study_alive(store_path(study_dir))
        kind = kind_of_json(config_json)
        config = kind.load(config_json)
        status, payload = kind.execute(config, folder, study_dir=study_dir, gpu_ids=gpu_ids, beat=beat,
                                       threads=threads)
        info = {"recipe": config.recipe}
    except StudyGone as exc:
        return "gone", {"error": str(exc), "info": {}}
    except UserError as exc:
        status, payload, info = "failed", {"error": str(exc)}, {}
    except Exception:  # a bug or an environment problem: keep the traceback in the store
        status, payload, info = "failed", {"error": traceback.format_exc()}, {}
    info["seconds"] = time.time() - t0
    if status == "done":
        info["loss"] = payload["result"]["val_loss"]
    return status, payload | {"info": info}


def record(store: Store, run_id: str, status: str, payload: dict) -> None:
    """The driver's half: write a worker's outcome into the store."""
    if status == "done":
        try:
            check_result(payload["result"])
        except UserError as exc:  # a row the store refuses (a loss of 0 from a command): a failed run
            store.fail(run_id, f"result refused: {exc}")
            return
        store.finish(run_id, payload["result"])
    elif status in ("failed", "diverged"):
        store.fail(run_id, payload.get("error", "no error message"), status=status)


def _resumable(study_dir: str, run_id: str) -> bool:
    return (run_dir(study_dir, run_id) / "ckpt.pt").exists()


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


class Devices:
    """The local pool's GPUs: one run per visible device (CUDA_VISIBLE_DEVICES, else nvidia-smi's list)."""

    def __init__(self, ids: list[str] | None = None):
        self.free = list(ids if ids is not None else visible_gpus())
        self.total = len(self.free)

    def take(self, n: int) -> list[str] | None:
        if n > len(self.free):
            return None
        taken, self.free = self.free[:n], self.free[n:]
        return taken

    def give(self, ids) -> None:
        self.free = sorted(self.free + list(ids or []))


def _schedule(store: Store, submit, wait, capacity: int, progress: _Progress, devices: Devices | None = None,
              ) -> dict[str, str]:
    """The driver loop. ``submit(run_id, config_json, gpu_ids)`` -> handle; ``wait(handles, timeout)`` -> the
    finished (handle, (status, payload)) pairs. ``devices``: the local pool's GPUs (None on Ray, which
    places GPU runs itself)."""
    inflight: dict = {}
    gpus_of: dict[str, list[str] | None] = {}
    outcome: dict[str, str] = {}
    last_beat = time.time()
    while True:
        for rid in store.ready():
            if len(inflight) >= capacity:
                break
            if rid in inflight.values():
                continue
            config_json = store.config(rid)
            ids = None
            if devices is not None:
                need = run_resources(config_json)["gpus"]
                if need:
                    ids = devices.take(math.ceil(need))  # a fraction of a GPU is a whole device on the local pool
                    if ids is None:
                        continue  # every device busy: a CPU run may still go
            if not store.claim(rid, resumed=_resumable(store.path.parent, rid)):
                if devices is not None:
                    devices.give(ids)
                continue
            gpus_of[rid] = ids
            inflight[submit(rid, config_json, ids)] = rid
        if not inflight:
            break
        finished = wait(list(inflight), BEAT_SECONDS)
        check_study_alive(store.path)
        for handle, (status, payload) in finished:
            rid = inflight.pop(handle)
            if devices is not None:
                devices.give(gpus_of.pop(rid, None))
            if status == "gone":
                raise StudyGone(payload["error"])
            record(store, rid, status, payload)
            outcome[rid] = status
            progress.advance(rid, status, payload.get("info", {}))
        if inflight and time.time() - last_beat >= BEAT_SECONDS:
            for rid in inflight.values():
                store.heartbeat(rid)
            last_beat = time.time()
    return outcome


def _crashed(exc: BaseException) -> tuple[str, dict]:
    """A worker that died (killed, out of memory) or raised past ``work``: the run fails, the study goes on."""
    return "failed", {"error": f"the worker running it died: {type(exc).__name__}: {exc}", "info": {}}


def check_gpus(store: Store, devices: Devices) -> None:
    """A queued run that needs more GPUs than this machine shows would wait forever: one line instead."""
    for rid in store.ready():
        need = run_resources(store.config(rid))
        require(not need["custom"], f"run {rid} asks for custom resources {sorted(need['custom'])}: those are "
                "Ray resources, run the study with --ray")
        require(need["gpus"] <= devices.total, f"run {rid} needs {need['gpus']:g} GPU(s) and this machine shows "
                f"{devices.total}; run on a machine or Ray cluster (--ray ADDRESS) with them")


class LocalRunner:
    """This machine: a pool of ``workers`` spawned processes, started once and held for the whole study
    (every round of an adaptive recipe reuses it), or, with one worker, the runs in this process.

    One pool per study, not per round: a coordinate search proposes a point per round, and a fresh spawn
    pool per round (an interpreter and torch imported again each time) made the search 47x slower than
    the same search in-process (BENCHMARKS.md, ``benchmarks/study_rounds.py``). In-process runs beat
    their own heartbeat (``work(beat=...)``), since no driver loop turns while they run."""

    def __init__(self, study_dir: str | Path, workers: int = 1, progress: bool = True, address: str | None = None):
        require(address is None, "a Ray address needs --ray")
        self.study_dir, self.workers, self.progress = str(Path(study_dir).resolve()), workers, progress
        self.pools: list = []

    def _pool(self):
        if not self.pools:
            self.pools.append(self._fresh_pool())
        return self.pools[-1]

    def run(self) -> dict[str, str]:
        """Run every runnable queued run (GPU runs: one per device); the outcome per run id."""
        store = Store.of_study(self.study_dir)
        try:
            store.requeue_abandoned()
            devices = Devices()
            check_gpus(store, devices)
            bar = _Progress(len(store.ready()), self.progress)
            try:
                if self.workers == 1:
                    return _schedule(store, *self._in_process(store), 1, bar, devices)
                return _schedule(store, self._submit, _wait_futures, self.workers, bar, devices)
            finally:
                bar.close()
        finally:
            store.close()

    def _in_process(self, store: Store):
        results: dict = {}

        def submit(rid, config_json, gpu_ids):
            last = [time.time()]

            def beat():
                if time.time() - last[0] >= BEAT_SECONDS:
                    store.heartbeat(rid)
                    last[0] = time.time()

            results[rid] = work(self.study_dir, rid, config_json, 1, gpu_ids, beat=beat)
            return rid

        def wait(handles, _timeout):
            return [(h, results.pop(h)) for h in handles]

        return submit, wait

    def _submit(self, rid, config_json, gpu_ids):
        import concurrent.futures as cf

        try:
            return self._pool().submit(work, self.study_dir, rid, config_json, 1, gpu_ids)
        except cf.process.BrokenProcessPool:
            # a worker died (killed, out of memory): its runs fail as they come back, the study goes on in a
            # fresh pool
            self.pools[-1].shutdown(wait=False, cancel_futures=True)
            self.pools.append(self._fresh_pool())
            return self.pools[-1].submit(work, self.study_dir, rid, config_json, 1, gpu_ids)

    def _fresh_pool(self):
        import concurrent.futures as cf
        import multiprocessing as mp

        # spawn: a fresh interpreter per worker, no forked torch/OpenMP state
        return cf.ProcessPoolExecutor(max_workers=self.workers, mp_context=mp.get_context("spawn"),
                                      initializer=die_with_parent)

    def close(self) -> None:
        for pool in self.pools:
            pool.shutdown(wait=True, cancel_futures=True)
        self.pools = []


def _wait_futures(handles, timeout):
    import concurrent.futures as cf

    done, _ = cf.wait(handles, timeout=timeout, return_when=cf.FIRST_COMPLETED)
    out = []
    for h in done:
        try:
            out.append((h, h.result()))
        except Exception as exc:  # a broken pool: the worker process died
            out.append((h, _crashed(exc)))
    return out


def ray_options(request: dict) -> dict:
    """A run's resource request as Ray task options (num_cpus, num_gpus, resources)."""
    opts = {"num_cpus": request["cpus"], "num_gpus": request["gpus"]}
    if request["custom"]:
        opts["resources"] = dict(request["custom"])
    return opts


def check_ray_resources(store: Store, cluster: dict) -> None:
    """A run asking for a resource no node offers would wait forever: one line naming it instead."""
    for rid in store.ready():
        need = run_resources(store.config(rid))
        wants = {"CPU": need["cpus"], "GPU": need["gpus"]} | need["custom"]
        for name, amount in wants.items():
            require(not amount or cluster.get(name, 0) >= amount,
                    f"run {rid} asks for {amount:g} {name} and the Ray cluster offers {cluster.get(name, 0):g}")


class RayRunner:
    """The same schedule on Ray: ``address`` of a running cluster, or a local Ray started here once for the
    whole study. Each run asks Ray for its resources (one CPU for the LM lab's runs; a command run's
    ``resources``), so a cluster with GPUs places one GPU run per GPU and runs needing a resource wait."""

    def __init__(self, study_dir: str | Path, workers: int = 1, progress: bool = True, address: str | None = None):
        try:
            import ray
        except ImportError:
            raise UserError("--ray needs the 'ray' package: pip install 'repetita[ray]'") from None
        self.ray, self.study_dir, self.progress = ray, str(Path(study_dir).resolve()), progress
        self.workers = workers if workers > 1 else None
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
        self.started_here = not ray.is_initialized()
        if self.started_here:
            kwargs = {"address": address} if address else {"num_cpus": self.workers or os.cpu_count(),
                                                           "include_dashboard": False}
            ray.init(log_to_driver=False, **kwargs)
        self.remote = ray.remote(work)

    def run(self) -> dict[str, str]:
        ray = self.ray
        store = Store.of_study(self.study_dir)
        try:
            store.requeue_abandoned()
            cluster = ray.cluster_resources()
            check_ray_resources(store, cluster)
            capacity = self.workers or max(1, int(cluster.get("CPU", 1)))
            bar = _Progress(len(store.ready()), self.progress)

            def submit(rid, config_json, _gpu_ids):
                return self.remote.options(**ray_options(run_resources(config_json))).remote(self.study_dir, rid,
                                                                                            config_json)

            def wait(handles, timeout):
                done, _ = ray.wait(handles, num_returns=1, timeout=timeout)
                out = []
                for h in done:
                    try:
                        out.append((h, ray.get(h)))
                    except Exception as exc:  # the task's worker died (ray.exceptions.WorkerCrashedError, ...)
                        out.append((h, _crashed(exc)))
                return out

            try:
                return _schedule(store, submit, wait, capacity, bar)
            finally:
                bar.close()
        finally:
            store.close()

    def close(self) -> None:
        if self.started_here:
            self.ray.shutdown()
            self.started_here = False


# Where a study's runs execute: name -> a class built as cls(study_dir, workers=, progress=, address=), with
# run() (every runnable queued run; their outcomes) and close(). `repetita run --runner NAME` picks one.
RUNNERS: Registry = Registry("runner")


def register_runner(name: str, cls: type) -> type:
    """Add a runner under ``name``; a name registered twice is refused in one line naming both places."""
    return RUNNERS.add(name, cls)


register_runner("local", LocalRunner)
register_runner("ray", RayRunner)


def get_runner(name: str) -> type:
    if name not in RUNNERS:
        raise UserError(f"unknown runner {name!r}; choose one of {', '.join(RUNNERS)}")
    return RUNNERS[name]


def wait_for_others(store: Store, poll: float = 2.0, timeout: float | None = None) -> None:
    """Block while another live process still runs some of this study's runs."""
    t0 = time.time()
    while store.counts()["running"]:
        store.requeue_abandoned()
        if timeout is not None and time.time() - t0 > timeout:
            return
        time.sleep(poll)
