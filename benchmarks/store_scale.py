"""The study store at cluster scale: many workers reporting at once, and a 10,000-run study.

    .venv/bin/python benchmarks/store_scale.py [--writers 8,16] [--runs-per-writer 200] [--study-runs 10000]

1. Concurrent reports. ``W`` worker processes each finish ``--runs-per-writer`` runs (a 100-point curve and a
   tidy row each) as fast as they can, two ways in the same run:
   - *direct*: every worker opens the SQLite file and writes its own results (how repetita worked before
     the driver became the only writer; on a multi-machine Ray cluster it would also need the file on a
     shared filesystem, where SQLite's locking is not to be trusted);
   - *through the driver*: workers send their results over a queue and one process writes them (what
     ``repetita.study.runners`` does now, for the local pool and for Ray).
   Reported: results per second, the slowest single write, and rows lost (must be 0).
2. A ``--study-runs`` study: the store's size on disk, its rows and curve points, and the time of the
   queries the driver and the report make (``ready``, ``results``, ``tidy``, ``curves``).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

CURVE_POINTS = 100


@dataclass(frozen=True)
class FakeRun:
    """What the store needs of a queued run (id, recipe, config JSON, dependencies)."""

    id: str
    recipe: str = "standard"
    depends_on: tuple = ()

    @property
    def config(self):
        return self

    def to_json(self) -> str:
        return json.dumps({"id": self.id, "epochs": 4, "unique_tokens": 1e6})


def result(i: int) -> dict:
    row = {"params": 1e6, "tokens": 4e6, "unique_tokens": 1e6, "epochs": 4.0, "loss": 3.0 + i * 1e-6,
           "recipe": "standard", "run_id": f"r{i:07d}"}
    history = [{"step": s * 10, "epoch": s / 25, "train_loss": 3.5, "val_loss": 3.4} for s in range(CURVE_POINTS)]
    return {"val_loss": row["loss"], "history": history, "rows": [row]}


def make_store(path: Path, n: int):
    from repetita.study.store import Store

    store = Store(path)
    store.add_runs([FakeRun(f"r{i:07d}") for i in range(n)])
    with store.transaction() as c:  # as if a driver had claimed them all
        c.execute("UPDATE runs SET status='running', heartbeat=?, pid=?", (time.time(), os.getpid()))
    return store


def _direct_worker(path: str, ids: list[int], out, ready, go) -> None:
    from repetita.study.store import Store

    store = Store(path, create=False)
    ready.release()
    go.wait()  # the clock starts when every worker is up (imports are not what is measured)
    slowest = 0.0
    for i in ids:
        t = time.perf_counter()
        store.finish(f"r{i:07d}", result(i))
        slowest = max(slowest, time.perf_counter() - t)
    store.close()
    out.put(slowest)


def _queue_worker(ids: list[int], q, ready, go) -> None:
    ready.release()
    go.wait()
    for i in ids:
        q.put((f"r{i:07d}", result(i)))
    q.put(None)


def concurrent(writers: int, per: int, mode: str) -> dict:
    from repetita.study.store import Store

    ctx = mp.get_context("spawn")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "store.sqlite"
        make_store(path, writers * per).close()
        chunks = [list(range(w * per, (w + 1) * per)) for w in range(writers)]
        ready, go = ctx.Semaphore(0), ctx.Event()

        def start(procs):
            for p in procs:
                p.start()
            for _ in procs:
                ready.acquire()
            go.set()
            return time.perf_counter()

        if mode == "direct":
            out = ctx.Queue()
            procs = [ctx.Process(target=_direct_worker, args=(str(path), ids, out, ready, go)) for ids in chunks]
            t0 = start(procs)
            slowest = max(out.get() for _ in procs)
            for p in procs:
                p.join()
        else:
            q = ctx.Queue(maxsize=4 * writers)
            store = Store(path, create=False)
            procs = [ctx.Process(target=_queue_worker, args=(ids, q, ready, go)) for ids in chunks]
            t0 = start(procs)
            left, slowest = writers, 0.0
            while left:
                item = q.get()
                if item is None:
                    left -= 1
                    continue
                t = time.perf_counter()
                store.finish(*item)
                slowest = max(slowest, time.perf_counter() - t)
            store.close()
            for p in procs:
                p.join()
        seconds = time.perf_counter() - t0
        store = Store(path, create=False)
        done = store.counts()["done"]
        rows = len(store.tidy())
        store.close()
    n = writers * per
    return {"mode": mode, "writers": writers, "results": n, "seconds": seconds, "per_second": n / seconds,
            "slowest_write_ms": 1e3 * slowest, "lost": n - done, "rows_lost": n - rows}


def big_study(n: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "store.sqlite"
        store = make_store(path, n)
        t0 = time.perf_counter()
        for i in range(n):
            store.finish(f"r{i:07d}", result(i))
        write = time.perf_counter() - t0
        store.close()
        from repetita.study.store import Store

        store = Store(path, create=False)
        timings = {}
        for name, fn in (("ready", store.ready), ("results", store.results), ("tidy", store.tidy),
                         ("curves", store.curves)):
            t = time.perf_counter()
            fn()
            timings[name] = time.perf_counter() - t
        points = len(store.curves())
        store.close()
        size = sum(p.stat().st_size for p in Path(tmp).iterdir())
    return {"runs": n, "curve_points": points, "bytes": size, "bytes_per_run": size / n,
            "write_seconds": write, "query_seconds": timings}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--writers", default="8,16")
    ap.add_argument("--runs-per-writer", type=int, default=200)
    ap.add_argument("--study-runs", type=int, default=10000)
    args = ap.parse_args()
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    for w in (int(x) for x in args.writers.split(",")):
        for mode in ("direct", "driver"):
            r = concurrent(w, args.runs_per_writer, mode)
            print(f"{mode:>6} x{w:>2}: {r['results']} results in {r['seconds']:.2f} s ({r['per_second']:.0f}/s), "
                  f"slowest write {r['slowest_write_ms']:.1f} ms, lost {r['lost']} runs / {r['rows_lost']} rows")
    b = big_study(args.study_runs)
    q = b["query_seconds"]
    print(f"study of {b['runs']:,} runs: {b['curve_points']:,} curve points, {b['bytes'] / 1e6:.1f} MB "
          f"({b['bytes_per_run'] / 1e3:.1f} kB per run), written in {b['write_seconds']:.1f} s; queries: "
          + ", ".join(f"{k} {v:.2f} s" for k, v in q.items()))


if __name__ == "__main__":
    main()
