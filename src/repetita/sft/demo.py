"""The fixed-budget demonstration: a tiny GPT-2 trained from scratch on the arithmetic CoT task
across the samples x epochs grid, with the token-accuracy hook recording where it would stop.

Every cell spends the same number of sample-passes (so the same number of optimizer updates);
held-out answer accuracy is measured at the end of each cell and at the step where the stop rule
fired. Config and results are written as JSON beside the plots.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from repetita.errors import require
from repetita.sft.plan import fixed_budget_grid, summary_table
from repetita.sft.stopping import StopConfig
from repetita.sft.task import VOCAB_SIZE, ArithmeticTask, decode, make_batch, parse_answer


@dataclass(frozen=True)
class DemoConfig:
    budget: int = 16384  # sample-passes per cell
    pool_size: int = 16384
    factor: int = 4
    min_samples: int = 16
    batch_size: int = 32
    n_ops: int = 3
    modulus: int = 10
    n_layer: int = 2
    d_model: int = 64
    n_head: int = 4
    lr: float = 3e-3
    weight_decay: float = 0.0
    eval_size: int = 500
    seed: int = 0
    threshold: float = 0.99
    window: int = 20
    plateau_window: int = 50
    plateau_tol: float = 1e-4
    model: str = "scratch"  # scratch (tiny GPT-2, task tokens) | smollm2 | a local HF model folder (pretrained.py)
    device: str = "cpu"  # cpu | cuda | auto (bf16 autocast on CUDA)

    def __post_init__(self):
        require(self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}")
        require(
            self.budget % self.batch_size == 0, f"budget {self.budget} is not divisible by batch_size {self.batch_size}"
        )
        require(self.d_model % self.n_head == 0, f"d_model {self.d_model} not divisible by n_head {self.n_head}")
        require(self.lr > 0, f"lr must be > 0, got {self.lr}")
        require(self.eval_size >= 1, f"eval_size must be >= 1, got {self.eval_size}")
        require(self.device in ("cpu", "cuda", "auto"), f"device must be cpu, cuda or auto, got {self.device!r}")
        require(bool(self.model.strip()), "model must be 'scratch', 'smollm2' or a local model folder")
        ArithmeticTask(self.n_ops, self.modulus)
        StopConfig(self.threshold, self.window, self.plateau_window, self.plateau_tol)

    def plan(self):
        return fixed_budget_grid(
            self.budget, self.pool_size, factor=self.factor, min_samples=self.min_samples, seed=self.seed
        )


def _model(cfg: DemoConfig, task: ArithmeticTask):
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(cfg.seed)
    conf = GPT2Config(
        vocab_size=VOCAB_SIZE,
        n_positions=task.prompt_len + task.response_len + 2,
        n_embd=cfg.d_model,
        n_layer=cfg.n_layer,
        n_head=cfg.n_head,
        bos_token_id=1,
        eos_token_id=1,
        pad_token_id=0,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
    )
    return GPT2LMHeadModel(conf)


def answer_accuracy(model, task: ArithmeticTask, examples) -> float:
    """Greedy decoding from the prompt; exact match of the final answer. All prompts of the task
    have the same length, so the batch needs no padding."""
    import torch

    ids, _ = make_batch([(p, "", a) for p, _, a in examples])
    ids = ids.to(next(model.parameters()).device)
    model.eval()
    with torch.no_grad():
        for _ in range(task.response_len):
            nxt = model(input_ids=ids).logits[:, -1].argmax(-1, keepdim=True)
            ids = torch.cat([ids, nxt], dim=1)
    model.train()
    gen = [decode(row[task.prompt_len :]) for row in ids.tolist()]
    return float(np.mean([parse_answer(g) == a for g, (_, _, a) in zip(gen, examples, strict=True)]))


class _Scratch:
    """A tiny GPT-2 from scratch on the task's own character tokens."""

    def __init__(self, cfg: DemoConfig, task: ArithmeticTask, device: str):
        self.cfg, self.task, self.device = cfg, task, device

    def fresh(self):
        return _model(self.cfg, self.task).to(self.device)

    def batch(self, examples):
        return tuple(t.to(self.device) for t in make_batch(examples))

    def accuracy(self, model, examples) -> float:
        return answer_accuracy(model, self.task, examples)


class _Pretrained:
    """A pretrained causal LM through its own tokenizer (pretrained.py)."""

    def __init__(self, cfg: DemoConfig, task: ArithmeticTask, device: str):
        from repetita.sft.pretrained import HFCodec, Pretrained

        self.task, self.weights = task, Pretrained(cfg.model, device)
        self.codec = HFCodec(self.weights.tokenizer, device)

    def fresh(self):
        return self.weights.fresh()

    def batch(self, examples):
        return self.codec.batch(examples)

    def accuracy(self, model, examples) -> float:
        return self.codec.accuracy(model, self.task, examples)


def run_cell(cfg: DemoConfig, engine, train, held_out, n_samples: int, epochs: int, autocast=None) -> dict:
    """One (samples, epochs) cell through the one training loop; the token-accuracy rule records where it
    would stop (``stop=False``: every cell spends the whole budget, so cells stay comparable)."""
    import torch

    from repetita.lm.trainer import Callback, Trainer
    from repetita.sft.loop import TokenAccuracyStop

    torch.manual_seed(cfg.seed)
    model = engine.fresh()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps = cfg.budget // cfg.batch_size
    rng = np.random.default_rng(cfg.seed + 1)
    # Reshuffled every epoch; concatenated passes cut into equal batches (budget % batch_size == 0).
    order = np.concatenate([rng.permutation(n_samples) for _ in range(epochs)])

    def batches(step: int):
        return engine.batch([train[i] for i in order[step * cfg.batch_size : (step + 1) * cfg.batch_size]])

    def hf_loss(m, batch):  # the model computes its own loss from the labels (prompt tokens are -100)
        mask = batch[2] if len(batch) > 2 else None
        out = m(input_ids=batch[0], labels=batch[1], attention_mask=mask)
        return out.loss[None], out.logits

    stop = TokenAccuracyStop(StopConfig(cfg.threshold, cfg.window, cfg.plateau_window, cfg.plateau_tol),
                             stop=False, shift=True, epoch_of=lambda s: s * cfg.batch_size / n_samples)
    curve: list = []
    at_stop: dict = {}

    class Record(Callback):
        def on_step(self, trainer, step):
            curve.append(stop.history[-1][1])
            if stop.decision is not None and "acc" not in at_stop:
                at_stop["acc"] = engine.accuracy(model, held_out)

    t0 = time.perf_counter()
    Trainer(model, opt, batches, total_steps=steps, lr=cfg.lr, schedule="cosine", final_lr_frac=0.0,
            warmup=max(1, steps // 20), grad_clip=0.0, loss_fn=hf_loss, autocast=autocast,
            callbacks=[stop, Record()]).run()
    final = engine.accuracy(model, held_out)
    d = stop.decision
    return {
        "samples": n_samples,
        "epochs": epochs,
        "steps": steps,
        "answer_accuracy": final,
        "final_token_accuracy": curve[-1],
        "stop_reason": d.reason if d else None,
        "stop_step": d.step if d else None,
        "stop_epoch": d.epoch if d else None,
        "answer_accuracy_at_stop": at_stop.get("acc"),
        "seconds": time.perf_counter() - t0,
        "curve": curve,
    }


def run_demo(cfg: DemoConfig, out_dir: str | Path | None = None, progress=None) -> dict:
    import torch

    from repetita.io import check_dir, make_dir, write_json
    from repetita.lm.train import resolve_device

    if out_dir is not None:
        check_dir(out_dir, "--out")  # before any loading or training
    device = resolve_device(cfg.device)
    if device == "cpu":
        torch.set_num_threads(1)
    task = ArithmeticTask(cfg.n_ops, cfg.modulus)
    engine = (_Scratch if cfg.model == "scratch" else _Pretrained)(cfg, task, device)
    out = make_dir(out_dir) if out_dir is not None else None  # only once device and model are in hand
    autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if device == "cuda" else None
    plan = cfg.plan()
    pool = task.pool(cfg.pool_size, cfg.seed)
    held = task.pool(cfg.eval_size, cfg.seed + 10_000)
    seen = {p for p, _, _ in pool}
    held = [h for h in held if h[0] not in seen]  # held-out means prompts never trained on
    rows = []
    for n, e in plan.cells:
        subset = [pool[i] for i in plan.subsets()[n]]
        rows.append(run_cell(cfg, engine, subset, held, n, e, autocast))
        if progress:
            progress(rows[-1])
    result = {"config": asdict(cfg), "plan": plan.to_dict(), "held_out": len(held), "cells": rows, "device": device}
    if out is not None:
        write_json(out / "config.json", asdict(cfg), indent=2)
        write_json(out / "results.json", result, indent=1)
        result["figures"] = plot_demo(result, out)
    return result


def table(result: dict):
    df = summary_table([{k: v for k, v in r.items() if k != "curve"} for r in result["cells"]])
    return df[
        [
            "samples",
            "epochs",
            "answer_accuracy",
            "final_token_accuracy",
            "stop_reason",
            "stop_step",
            "answer_accuracy_at_stop",
            "seconds",
            "best",
        ]
    ]


def plot_demo(result: dict, out: Path, prefix: str = "sft_") -> list[str]:
    from repetita.io import plt as pyplot
    from repetita.io import save_figure

    plt = pyplot()
    cells = result["cells"]
    fig, ax = plt.subplots(figsize=(7, 4))
    for r in cells:
        y = [np.nan if v is None else v for v in r["curve"]]
        (line,) = ax.plot(np.arange(1, len(y) + 1), y, label=f"{r['samples']} x {r['epochs']}")
        if r["stop_step"]:
            ax.axvline(r["stop_step"], color=line.get_color(), ls=":", lw=1)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("windowed training token accuracy")
    ax.set_title("Token accuracy per cell (dotted: where the stop rule fires)")
    ax.legend(title="samples x epochs", fontsize=8)
    p1 = out / f"{prefix}token_accuracy.png"
    fig.tight_layout()
    save_figure(fig, p1, dpi=120)
    fig, ax = plt.subplots(figsize=(6, 4))
    xs = [r["samples"] for r in cells]
    ax.plot(xs, [r["answer_accuracy"] for r in cells], "o-", label="end of budget")
    at_stop = [np.nan if r["answer_accuracy_at_stop"] is None else r["answer_accuracy_at_stop"] for r in cells]
    ax.plot(xs, at_stop, "s--", label="at stop-rule step")
    ax.set_xscale("log")
    ax.set_xlabel(f"unique samples (epochs = {result['plan']['budget']} / samples)")
    ax.set_ylabel("held-out answer accuracy")
    ax.legend()
    p2 = out / f"{prefix}answer_accuracy.png"
    fig.tight_layout()
    save_figure(fig, p2, dpi=120)
    return [str(p1), str(p2)]
