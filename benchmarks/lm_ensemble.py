"""Cost of K ensemble members trained as one batched model vs K separate models (training steps only).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/lm_ensemble.py [--steps 20] [--repeats 3] [--members 2,4,8]
        [--d-model 64] [--context 64] [--batch 32]

Architecture of docs/lm.md (2 layers, d 64, vocab 512, context 64, 32 windows per member per step), random
token batches, AdamW; prints separate / batched wall-time ratios.
"""

from __future__ import annotations

import argparse

import torch

from repetita.lm.experiments import bench_batched_ensemble


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--members", default="2,4,8")
    p.add_argument("--d-model", type=int, default=64)
    p.add_argument("--context", type=int, default=64)
    p.add_argument("--batch", type=int, default=32, help="windows per member per step")
    a = p.parse_args()
    torch.set_num_threads(1)
    bench_batched_ensemble(tuple(int(k) for k in a.members.split(",")), a.steps, a.repeats, a.d_model, a.context, a.batch)


if __name__ == "__main__":
    main()
