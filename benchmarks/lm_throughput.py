"""Training throughput of repetita's GPT against Hugging Face's GPT2LMHeadModel of the same shape.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/lm_throughput.py [--shapes 2x64,4x128,6x256] [--steps 10]
        [--repeats 3] [--context 64] [--batch 32] [--threads 1] [--device cpu|cuda] [--adamw auto,foreach,fused]

Each step is a forward pass, the loss, a backward pass and an AdamW step on random token batches (vocab 512).
Both models: the same layers, width, heads and context, tied embeddings, no dropout, PyTorch SDPA attention
(HF: ``attn_implementation="sdpa"``); repetita uses RoPE and no biases, GPT-2 learned positions and biases, so
the parameter counts differ by a few percent (printed; the comparison is refused beyond 5%). The two are
timed alternately within each repeat (load changes on a shared machine hit both) and the best repeat of each
is kept. With CUDA: bf16 autocast for both, and the model FLOP utilisation of repetita's runs, 6 N + 12 L d T
FLOPs per token (Kaplan et al. 2020: parameters plus attention) against ``--peak-tflops``.

``--loop``: the same shapes through repetita's training loop (``repetita.lm.trainer.Trainer``), with the
loop reading the loss on the host and handing the logits to a callback at every step (what the loop did
before: ``float(loss.mean())`` and the [M, B, T, V] logits to every callback) against the loop as it is
(the loss read only at callback steps, here every 100, and no logits kept). Same model, data and
optimizer; the two alternate within each repeat, best of each kept.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import torch


def repetita_model(n_layer: int, d_model: int, n_head: int, context: int):
    from repetita.lm.config import ModelConfig
    from repetita.lm.model import GPT

    return GPT(ModelConfig(vocab_size=512, context=context, n_layer=n_layer, n_head=n_head, d_model=d_model))


def hf_model(n_layer: int, d_model: int, n_head: int, context: int):
    from transformers import GPT2Config, GPT2LMHeadModel

    cfg = GPT2Config(vocab_size=512, n_positions=context, n_embd=d_model, n_layer=n_layer, n_head=n_head,
                     resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, tie_word_embeddings=True,
                     attn_implementation="sdpa", bos_token_id=None, eos_token_id=None, loss_type="ForCausalLM")
    model = GPT2LMHeadModel(cfg)
    assert model.config._attn_implementation == "sdpa", model.config._attn_implementation
    return model


def params(model) -> int:
    seen, n = set(), 0
    for p in model.parameters():
        if id(p) not in seen:
            seen.add(id(p))
            n += p.numel()
    return n


def time_steps(model, kind: str, steps: int, batch: int, context: int, device: str, adamw: str = "for-loop") -> float:
    from repetita.lm.train import ADAMW_IMPLS

    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.1, **ADAMW_IMPLS[adamw])
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 512, (batch, context + 1), generator=g).to(device)
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if device == "cuda" else torch.autocast("cpu", enabled=False)

    def step():
        with amp:
            if kind == "repetita":
                _, loss = model(x[None, :, :-1], x[None, :, 1:])
                loss = loss.sum()
            else:
                loss = model(input_ids=x[:, :-1], labels=x[:, :-1]).loss  # HF shifts the labels itself
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    step()  # warm-up: allocations, kernel selection (and compilation with --compile)
    step()
    if device == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(steps):
        step()
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t


def time_loop(n_layer: int, d: int, n_head: int, context: int, batch: int, steps: int, sync_every_step: bool,
              device: str) -> float:
    """Wall seconds of ``steps`` steps of the training loop (after two warm-up steps)."""
    from repetita.lm.trainer import Callback, Trainer

    class EveryStep(Callback):  # the former behaviour: a host read and the logits at every step
        wants_logits = True

        def on_step(self, trainer, step):
            step.loss  # noqa: B018 - the read is what is timed
            return step.logits is None  # (never None here; keeps the logits live as a consumer would)

    class Rare(Callback):
        every = 100

        def on_step(self, trainer, step):
            step.loss  # noqa: B018

    torch.manual_seed(0)
    model = repetita_model(n_layer, d, n_head, context).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.1)
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 512, (1, batch, context + 1), generator=g).to(device)
    callbacks = [EveryStep()] if sync_every_step else [Rare()]
    trainer = Trainer(model, opt, lambda step: (x[..., :-1], x[..., 1:]), total_steps=steps + 2, lr=1e-3,
                      callbacks=callbacks)
    trainer.total = 2
    trainer.run()  # warm-up
    trainer.total = steps + 2
    if device == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    trainer.run()
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t


def loop_table(args) -> None:
    print(f"{'shape':>8} {'sync every step tok/s':>22} {'sync at callbacks tok/s':>24} {'speed-up':>9}")
    tokens = args.steps * args.batch * args.context
    for shape in args.shapes.split(","):
        n_layer, d = (int(v) for v in shape.split("x"))
        best = {True: float("inf"), False: float("inf")}
        for _ in range(args.repeats):
            for sync in (True, False):
                t = time_loop(n_layer, d, max(1, d // 32), args.context, args.batch, args.steps, sync, args.device)
                best[sync] = min(best[sync], t)
        old, new = tokens / best[True], tokens / best[False]
        print(f"{shape:>8} {old:>22,.0f} {new:>24,.0f} {new / old:>9.3f}", flush=True)


def matmul_rate(device: str, n: int = 2048, reps: int = 10) -> float:
    """FLOP/s of a large fp32 matrix product on this device: the ceiling a matmul-bound model can approach."""
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    a @ b
    if device == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    if device == "cuda":
        torch.cuda.synchronize()
    return 2 * n**3 * reps / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--shapes", default="2x64,4x128,6x256", help="LAYERSxWIDTH, comma-separated (head size 32)")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--context", type=int, default=64)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    ap.add_argument("--peak-tflops", type=float, default=989.0, help="bf16 dense peak for MFU (H100 SXM: 989)")
    ap.add_argument("--threads", type=int, default=1, help="CPU threads (torch.set_num_threads)")
    ap.add_argument("--compile", action="store_true", help="torch.compile both models' forward (warm-up compiles)")
    ap.add_argument("--loop", action="store_true", help="time the training loop: loss read every step vs at "
                    "callback steps only")
    ap.add_argument("--adamw", default="auto", help="AdamW implementation(s) for both models, comma-separated: "
                    "auto (the trainer's default on the device), for-loop, foreach, fused")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("lm_throughput: --device cuda but CUDA is not available")
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, threads "
          f"{torch.get_num_threads()}, device {args.device}")
    if args.loop:
        return loop_table(args)
    rate = matmul_rate(args.device)
    print(f"fp32 matmul rate of this machine (2048 x 2048 x 2048, same threads): {rate / 1e9:.1f} GFLOP/s")
    from repetita.lm.train import ADAMW_AUTO, ADAMW_IMPLS

    impls = [ADAMW_AUTO[args.device] if a == "auto" else a for a in args.adamw.split(",")]
    bad = [a for a in impls if a not in ADAMW_IMPLS]
    if bad:
        raise SystemExit(f"lm_throughput: unknown --adamw {bad[0]!r} (auto, {', '.join(ADAMW_IMPLS)})")
    print(f"{'shape':>8} {'adamw':>8} {'params (ours / HF)':>20} {'ours tok/s':>11} {'HF tok/s':>10} {'ratio':>6}"
          f" {'ours GFLOP/s':>13} {'of matmul rate':>14}" + (f" {'MFU':>6}" if args.device == "cuda" else ""))
    tokens = args.steps * args.batch * args.context
    for shape in args.shapes.split(","):
        n_layer, d = (int(v) for v in shape.split("x"))
        n_head = max(1, d // 32)
        ours = repetita_model(n_layer, d, n_head, args.context).to(args.device)
        hf = hf_model(n_layer, d, n_head, args.context).to(args.device)
        n_ours, n_hf = params(ours), params(hf)
        if args.compile:
            ours.forward = torch.compile(ours.forward)  # as the trainer does with compile = true
            hf.forward = torch.compile(hf.forward)
        if abs(n_ours / n_hf - 1) > 0.05:
            print(f"{shape:>8} parameter counts differ by more than 5% ({n_ours:,} vs {n_hf:,}): not compared")
            continue
        best = {(k, a): float("inf") for k in ("repetita", "hf") for a in impls}
        for _ in range(args.repeats):  # alternate models and optimizers, keep each one's best
            for a in impls:
                for kind, model in (("repetita", ours), ("hf", hf)):
                    t = time_steps(model, kind, args.steps, args.batch, args.context, args.device, a)
                    best[kind, a] = min(best[kind, a], t)
        for a in impls:
            r, h = tokens / best["repetita", a], tokens / best["hf", a]
            flops = 6 * n_ours + 12 * n_layer * d * args.context  # per token, forward and backward
            mfu = f" {100 * r * flops / (args.peak_tflops * 1e12):>5.1f}%" if args.device == "cuda" else ""
            print(f"{shape:>8} {a:>8} {f'{n_ours:,} / {n_hf:,}':>20} {r:>11,.0f} {h:>10,.0f} {r / h:>6.2f}"
                  f" {r * flops / 1e9:>13.1f} {100 * r * flops / rate:>13.0f}%{mfu}", flush=True)


if __name__ == "__main__":
    main()
