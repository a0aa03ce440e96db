"""End-to-end cost of ensembles built from member runs, against K separate one-model runs.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/lm_ensemble_runs.py [--members 2,4,8] [--d-model 32,64]
        [--steps 60] [--repeats 2]

An ensemble of K is K ordinary one-model runs (seeds s..s+K-1) and one evaluation run over their final
weights (repetita.lm.train). Two comparisons, whole ``train()`` calls (data loading, training, evaluation,
files), each in a fresh folder:

- **one ensemble**: the K-member ensemble against its K member runs trained as separate runs, one after
  the other (the baseline: what a user would do without the recipe). The goal is equal cost: the
  ensemble adds only its evaluation.
- **shared across K**: the ensembles of every K in ``--members`` in one folder (the members of the
  largest K serve every smaller K, as in a study) against the separate runs of each ensemble, paid again
  for every K (sum of K). The goal is less: max(K) member runs instead of sum(K).

The two sides alternate within each repeat (load changes on a shared machine hit both); the best repeat
of each is kept. Prints seconds and ensemble / baseline ratios.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path


def _config(d_model: int, steps: int, members: int = 1):
    from repetita.lm.config import TrainConfig

    # one epoch of `steps` steps: U = steps x batch x context tokens; evaluation at the end only
    batch, context = 16, 32
    return TrainConfig(corpus="markov:V=64,order=1,n=400000,seed=3", context=context, batch_size=batch,
                       n_layer=2, d_model=d_model, n_head=2, unique_tokens=steps * batch * context, epochs=1,
                       val_tokens=2048, eval_every=10**6, checkpoint_every=10**6, members=members)


def _timed(fn, *args) -> float:
    t = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t


def _separate(configs, folder: Path) -> None:
    from repetita.lm.train import train

    for i, c in enumerate(configs):
        train(c, folder / f"run{i}")


def _ensembles(configs, folder: Path) -> None:
    from repetita.lm.train import train

    for c in configs:
        train(c, folder / f"ens{c.members}", root=folder)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--members", default="2,4,8")
    ap.add_argument("--d-model", default="32,64")
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    import torch

    ks = [int(k) for k in args.members.split(",")]
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}; "
          f"{args.steps} steps per run, best of {args.repeats}")
    print(f"{'d':>4} {'K':>6} {'separate s':>11} {'ensemble s':>11} {'ratio':>6}")
    for d in (int(v) for v in args.d_model.split(",")):
        base = _config(d, args.steps)
        with tempfile.TemporaryDirectory() as warm:  # corpus generation and first-call costs, untimed
            _separate([base], Path(warm))
        for k in ks:
            members = _config(d, args.steps, members=k).member_configs()
            best = [float("inf"), float("inf")]
            for _ in range(args.repeats):
                with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
                    best[0] = min(best[0], _timed(_separate, members, Path(a)))
                    best[1] = min(best[1], _timed(_ensembles, [base.replace(members=k)], Path(b)))
            print(f"{d:>4} {k:>6} {best[0]:>11.2f} {best[1]:>11.2f} {best[1] / best[0]:>6.2f}", flush=True)
        # every K in one folder (shared members) against separate runs for each ensemble
        best = [float("inf"), float("inf")]
        for _ in range(args.repeats):
            with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
                every = [m for k in ks for m in _config(d, args.steps, members=k).member_configs()]
                best[0] = min(best[0], _timed(_separate, every, Path(a)))
                best[1] = min(best[1], _timed(_ensembles, [base.replace(members=k) for k in ks], Path(b)))
        label = "+".join(map(str, ks))
        print(f"{d:>4} {label:>6} {best[0]:>11.2f} {best[1]:>11.2f} {best[1] / best[0]:>6.2f}", flush=True)


if __name__ == "__main__":
    main()
