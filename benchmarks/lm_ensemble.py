"""Cost of K ensemble members trained as one batched model vs K separate models (training steps only),
and what the trainer's ``ensemble = "auto"`` choice (repetita.lm.members) makes of it.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/lm_ensemble.py [--steps 20] [--repeats 3] [--members 2,4,8]
        [--d-model 64] [--context 64] [--batch 32]

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/lm_ensemble.py --end-to-end [--steps 60] ...

Step level (default). Columns: K separate runs (the baseline: K lone models trained one after the other), the batched model,
K separate members stepped side by side in one model (``Members``), the mode ``auto`` picks after its
short calibration, and baseline / picked mode. ``auto`` is never asked to beat the baseline, only to
avoid the slower of its two layouts.

Architecture of docs/lm.md (2 layers, d 64, vocab 512, context 64, 32 windows per member per step), random
token batches, AdamW, the loss computed by the model; prints separate / batched wall-time ratios. Separate
and batched timings alternate within each repeat so that load changes on a shared machine hit both; the
best repeat of each is kept.

End to end (``--end-to-end``): whole ``repetita.lm.train.train`` runs of ``--steps`` steps (one epoch,
evaluation at the end, 16 validation windows): the baseline is K runs of one member each (seeds
seed + m), one after the other; against it the K-member ensemble run with ``ensemble = auto`` (the
calibration cache cleared first, so a calibration is paid inside the timed run) and, with
``--layouts``, each layout forced. The data are loaded once and shared by all runs (otherwise the
baseline would pay K loads), so the columns differ only in training, evaluation and bookkeeping.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import tempfile
import time
from pathlib import Path

import torch

from repetita.lm import members as lm_members
from repetita.lm.config import TrainConfig
from repetita.lm.model import GPT

DEVICE = "cpu"


def time_training_steps(model, steps: int, batch: int, seed: int = 0) -> float:
    """Wall seconds of ``steps`` AdamW steps of ``model`` on random token batches (one batch per member);
    on CUDA with bf16 autocast, after one untimed warm-up step."""
    model = model.to(DEVICE)
    opt = torch.optim.AdamW(model.param_groups(0.1), lr=1e-3)
    cfg = model.config
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, cfg.vocab_size, (model.members, batch, cfg.context + 1), generator=g).to(DEVICE)
    cast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if DEVICE == "cuda" else contextlib.nullcontext

    def step():
        with cast():
            _, loss = model(x[..., :-1], x[..., 1:])
        opt.zero_grad(set_to_none=True)
        loss.sum().backward()
        opt.step()

    if DEVICE == "cuda":
        step()
        torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(steps):
        step()
    if DEVICE == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t


def bench(members, steps: int, repeats: int, d_model: int, context: int, batch: int) -> list[list]:
    cfg = TrainConfig(d_model=d_model, context=context).model_config(vocab_size=512)
    rows = []
    for K in members:
        sep, bat, side = [], [], []
        for _ in range(repeats):
            sep.append(sum(time_training_steps(GPT(cfg, seed=m), steps, batch) for m in range(K)))
            bat.append(time_training_steps(GPT(cfg, members=K), steps, batch))
            side.append(time_training_steps(lm_members.Members(cfg, K), steps, batch))
        lm_members._CHOICES.clear()
        t = time.perf_counter()
        auto = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if DEVICE == "cuda" else None
        pick = lm_members.choose(cfg, K, batch, DEVICE, auto)["mode"]
        calib = time.perf_counter() - t
        picked = min(bat) if pick == "batched" else min(side)
        rows.append([K, min(sep), min(bat), min(side), pick, min(sep) / picked, calib])
        print(f"d={d_model} K={K}: separate runs {min(sep):.2f} s, batched {min(bat):.2f} s, side by side "
              f"{min(side):.2f} s; auto picks {pick} (calibration {calib:.1f} s): "
              f"separate runs / picked {min(sep) / picked:.2f}", flush=True)
    return rows


def end_to_end(members, steps: int, repeats: int, d_model: int, context: int, batch: int,
               layouts: tuple[str, ...] = ()) -> list[list]:
    from repetita.lm import train as lm_train

    lm_train.load_data = functools.cache(lm_train.load_data)  # one load for every run (see the docstring)
    windows = steps * batch
    cfg = TrainConfig(corpus=f"markov:V=512,order=1,n={(windows * 6 // 5 + 200) * (context + 1)},seed=0", context=context,
                      unique_tokens=windows * context, val_tokens=16 * context, epochs=1.0, d_model=d_model,
                      batch_size=batch, checkpoint_every=10**9, device="cpu")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        def timed(config) -> tuple[float, dict]:
            t = time.perf_counter()
            res = lm_train.train(config, Path(tmp) / f"run{time.perf_counter_ns()}")
            return time.perf_counter() - t, res

        timed(cfg)  # untimed warm-up: loads the data into the shared cache, warms torch
        for K in members:
            times = {name: [] for name in ("separate runs", "auto", *layouts)}
            picked = None
            for _ in range(repeats):
                times["separate runs"].append(sum(timed(cfg.replace(seed=m))[0] for m in range(K)))
                lm_members._CHOICES.clear()
                wall, res = timed(cfg.replace(members=K))
                times["auto"].append(wall)
                picked = res["ensemble"]
                for mode in layouts:
                    times[mode].append(timed(cfg.replace(members=K, ensemble=mode))[0])
            best = {k: min(v) for k, v in times.items()}
            rows.append([K, best, picked])
            extra = ", ".join(f"{m} {best[m]:.2f} s" for m in layouts)
            print(f"d={d_model} K={K} steps={steps}: {K} separate runs {best['separate runs']:.2f} s, auto "
                  f"{best['auto']:.2f} s (picks {picked['mode']}{'; ' + extra if extra else ''}): separate runs / auto "
                  f"{best['separate runs'] / best['auto']:.2f}; auto: {picked}", flush=True)
    return rows


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--members", default="2,4,8")
    p.add_argument("--d-model", type=int, default=64)
    p.add_argument("--context", type=int, default=64)
    p.add_argument("--batch", type=int, default=32, help="windows per member per step")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--end-to-end", action="store_true", help="time whole train() runs (see the docstring)")
    p.add_argument("--layouts", default="", help="with --end-to-end: layouts to time forced, e.g. batched,separate")
    a = p.parse_args()
    global DEVICE
    DEVICE = a.device
    torch.set_num_threads(1)
    if a.end_to_end:
        end_to_end(tuple(int(k) for k in a.members.split(",")), a.steps, a.repeats, a.d_model, a.context, a.batch,
                   tuple(filter(None, a.layouts.split(","))))
        return
    bench(tuple(int(k) for k in a.members.split(",")), a.steps, a.repeats, a.d_model, a.context, a.batch)


if __name__ == "__main__":
    main()
