"""An adaptive recipe through a study against the same search in-process.

The regularized recipe's coordinate search (tests/test_recipes_one_system.py's spec: 3 LRs x 2 weight
decays x 3 epoch counts, searched from one start point) proposes runs round by round. Timed three ways in
one process, on the same runs, after a warm-up search:

- baseline: ``run_recipe`` in this process (no store, no driver);
- the study with one worker: the driver's rounds, the store, the runs in the driver's own process;
- the study with two workers: one spawn pool held for the whole study.

Before the runner held its pool for the whole study, a fresh spawn pool per round made the one-worker
study 47x slower than the baseline (70.7 s against 1.5 s).

    .venv/bin/python benchmarks/study_rounds.py
"""

from __future__ import annotations

import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def main() -> None:
    import torch
    from test_recipes_one_system import BASE, SPEC

    from repetita.lm.config import TrainConfig
    from repetita.lm.recipes import RecipeConfig, run_recipe
    from repetita.study.driver import run_study

    torch.set_num_threads(1)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"torch {torch.__version__}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        spec = tmp / "reg.toml"
        spec.write_text(SPEC)
        start = TrainConfig(**BASE, unique_tokens=384, epochs=2, lr=1e-2, weight_decay=0.1)
        rc = RecipeConfig.of("regularized", start, (1, 2, 4), lr_grid=(3e-3, 1e-2, 3e-2), wd_grid=(0.1, 1.0))
        run_recipe(rc, tmp / "warm-up")  # imports and first-call costs paid before any timing
        t0 = time.perf_counter()
        local = run_recipe(rc, tmp / "local")
        base = time.perf_counter() - t0
        times = {}
        for workers in (1, 2):
            t0 = time.perf_counter()
            res = run_study(spec, tmp / f"study{workers}", workers=workers, progress=False)
            times[workers] = time.perf_counter() - t0
            assert res["counts"]["done"] == local["n_runs"], json.dumps(res["counts"])
    print(f"runs searched: {local['n_runs']}")
    print(f"in-process search (baseline): {base:7.2f} s")
    for workers, t in times.items():
        print(f"study, {workers} worker{'s' if workers > 1 else ''}:          {t:7.2f} s   {t / base:5.2f}x the baseline")


if __name__ == "__main__":
    main()
