"""Cost of K ensemble members trained as one batched model vs K separate models (training steps only).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/lm_ensemble.py [--steps 20] [--repeats 3] [--members 2,4,8]
        [--d-model 64] [--context 64] [--batch 32]

Architecture of docs/lm.md (2 layers, d 64, vocab 512, context 64, 32 windows per member per step), random
token batches, AdamW, the loss computed by the model; prints separate / batched wall-time ratios. Separate
and batched timings alternate within each repeat so that load changes on a shared machine hit both; the
best repeat of each is kept.
"""

from __future__ import annotations

import argparse
import time

import torch

from repetita.lm.config import TrainConfig
from repetita.lm.model import GPT


def time_training_steps(model: GPT, steps: int, batch: int, seed: int = 0) -> float:
    """Wall seconds of ``steps`` AdamW steps of ``model`` on random token batches (one batch per member)."""
    opt = torch.optim.AdamW(model.param_groups(0.1), lr=1e-3)
    cfg = model.config
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, cfg.vocab_size, (model.members, batch, cfg.context + 1), generator=g)
    t = time.perf_counter()
    for _ in range(steps):
        _, loss = model(x[..., :-1], x[..., 1:])
        opt.zero_grad(set_to_none=True)
        loss.sum().backward()
        opt.step()
    return time.perf_counter() - t


def bench(members, steps: int, repeats: int, d_model: int, context: int, batch: int) -> list[list]:
    cfg = TrainConfig(d_model=d_model, context=context).model_config(vocab_size=512)
    rows = []
    for K in members:
        sep, bat = [], []
        for _ in range(repeats):
            sep.append(sum(time_training_steps(GPT(cfg, seed=m), steps, batch) for m in range(K)))
            bat.append(time_training_steps(GPT(cfg, members=K), steps, batch))
        rows.append([K, min(sep), min(bat), min(sep) / min(bat)])
        print(f"K={K}: separate {min(sep):.2f} s, batched {min(bat):.2f} s, ratio {min(sep) / min(bat):.2f}",
              flush=True)
    return rows


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
    bench(tuple(int(k) for k in a.members.split(",")), a.steps, a.repeats, a.d_model, a.context, a.batch)


if __name__ == "__main__":
    main()
