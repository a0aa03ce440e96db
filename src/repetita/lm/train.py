"""One training run: ``train(config, out_dir, hooks=...) -> result dict``.

``out_dir`` holds config.json, ckpt.pt (atomic: temp file then ``os.replace``), metrics.json (evaluation
history), model.pt and result.json when finished. Calling ``train`` again on the same directory returns the
stored result if finished and otherwise resumes from the checkpoint; because the data position is a pure
function of the step (data.py) and the checkpoint holds model, optimizer, RNG and loss history, the resumed
run produces the same losses as an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from repetita.cliargs import write_text_atomic
from repetita.errors import UserError, require
from repetita.lm.config import TrainConfig
from repetita.lm.data import TokenData, load_data
from repetita.lm.ensemble import evaluate
from repetita.lm.model import GPT
from repetita.lm.schedules import lr_multiplier

LN2 = math.log(2.0)


@dataclass(frozen=True)
class Hook:
    """``fn(state)`` called every ``every`` steps; ``state`` has step, loss, lr, model, config, history."""

    fn: Callable[[dict], Any]
    every: int = 1


class StopTraining(Exception):
    """Raised by a hook to stop early; the run is checkpointed and can be resumed."""


def _as_hooks(hooks: Sequence) -> list[Hook]:
    out = []
    for h in hooks:
        if isinstance(h, Hook):
            out.append(h)
        elif isinstance(h, tuple):
            out.append(Hook(*h))
        elif callable(h):
            out.append(Hook(h, 1))
        else:
            raise UserError(f"hook {h!r} must be a Hook, (fn, every) or a callable")
    return out


def resolve_device(name: str) -> str:
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    require(name != "cuda" or torch.cuda.is_available(), "device=cuda requested but CUDA is not available")
    return name


def _autocast(config: TrainConfig, device: str):
    bf16 = config.dtype == "bf16" or (config.dtype == "auto" and device == "cuda")
    if not bf16:
        return None
    return lambda: torch.autocast(device_type=device, dtype=torch.bfloat16)


def _atomic_torch_save(obj, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _clip_per_member(params: list[torch.Tensor], max_norm: float, members: int) -> torch.Tensor:
    """Clip each member's gradient to ``max_norm`` separately (members are independent runs)."""
    grads = [p.grad for p in params if p.grad is not None]
    sq = torch.stack([g.float().pow(2).reshape(members, -1).sum(1) for g in grads]).sum(0)
    norms = sq.sqrt()
    if max_norm > 0:
        scale = (max_norm / (norms + 1e-6)).clamp(max=1.0)
        for g in grads:
            g.mul_(scale.view(members, *([1] * (g.dim() - 1))).to(g.dtype))
    return norms


def eval_steps(data: TokenData, config: TrainConfig, total: int) -> list[int]:
    """Steps after which to evaluate: every epoch end, the last step, and every ``eval_every``."""
    n, B = data.train.shape[0], config.batch_size
    ends = {min(total, math.ceil(e * n / B)) for e in range(1, int(config.epochs) + 1)}
    ends.add(total)
    if config.eval_every:
        ends |= set(range(config.eval_every, total + 1, config.eval_every))
    return sorted(s for s in ends if s >= 1)


class _Batches:
    """Real windows per member (order seed = seed + m) plus optional teacher-sample rows."""

    def __init__(self, data: TokenData, config: TrainConfig, synthetic: np.ndarray | None):
        self.data, self.config, self.synthetic = data, config, synthetic
        f = config.seq_distill_frac
        self.n_syn = int(round(config.batch_size * f / (1 - f))) if synthetic is not None else 0

    def __call__(self, step: int) -> np.ndarray:
        c = self.config
        rows = []
        for m in range(c.members):
            b = self.data.batch(step, c.batch_size, c.seed + m)
            if self.n_syn:
                pool = TokenData(self.synthetic, self.synthetic[:1], 0, c.context, len(self.synthetic))
                b = np.concatenate([b, pool.batch(step, self.n_syn, 10_000 + c.seed + m)])
            rows.append(b)
        return np.stack(rows)  # [M, B', T + 1]


def _teacher_setup(config: TrainConfig, data: TokenData, out: Path, device: str):
    if config.teacher is None:
        return None, None
    from repetita.lm.distill import load_run_model, sample_windows

    teacher, tres = load_run_model(config.teacher, device)
    require(teacher.config.vocab_size == data.vocab_size and teacher.config.context >= config.context,
            "teacher vocab/context do not match the student's data")
    synthetic = None
    if config.seq_distill_frac > 0:
        path = out / "teacher_samples.npy"
        if path.exists():
            synthetic = np.load(path)
        else:
            S = config.teacher_samples or data.train.shape[0]
            firsts = data.train[np.random.default_rng([config.seed, 77]).integers(0, len(data.train), S), 0]
            synthetic = sample_windows(teacher, firsts, config.context, seed=config.seed,
                                       combiner=config.teacher_combiner, device=device)
            tmp = out / f".teacher_samples.tmp{os.getpid()}.npy"
            np.save(tmp, synthetic)
            os.replace(tmp, path)
    return teacher, synthetic


def train(config: TrainConfig, out_dir: str | Path, hooks: Sequence = (), stop_at_step: int | None = None,
          progress: bool = False) -> dict:
    """Run (or resume, or return the stored result of) one training run; see the module docstring.

    ``stop_at_step`` checkpoints and returns early after that many steps (a simulated interruption).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cfg_path = out / "config.json"
    if cfg_path.exists():
        stored = TrainConfig.from_json(cfg_path.read_text())
        require(stored == config, f"{out} holds a different run (config hash {stored.hash} != {config.hash})")
    else:
        write_text_atomic(cfg_path, json.dumps(config.to_dict(), indent=1, sort_keys=True))
    if (out / "result.json").exists():
        return json.loads((out / "result.json").read_text())

    t0 = time.time()
    device = resolve_device(config.device)
    autocast = _autocast(config, device)
    data = load_data(config.corpus, config.tokenizer, config.context, config.unique_tokens,
                     config.val_fraction, config.val_tokens, config.split_seed)
    torch.manual_seed(config.seed)
    model = GPT(config.model_config(data.vocab_size), members=config.members, seed=config.seed).to(device)
    opt = torch.optim.AdamW(model.param_groups(config.weight_decay), lr=config.lr,
                            betas=(config.beta1, config.beta2), eps=1e-8)
    teacher, synthetic = _teacher_setup(config, data, out, device)
    batches = _Batches(data, config, synthetic)
    total = data.steps_for(config.epochs, config.batch_size)
    warmup = int(config.warmup_frac * total)
    evals = set(eval_steps(data, config, total))
    train_probe = data.train[: data.val.shape[0]]  # fixed train windows for the train-vs-val gap
    M = config.members

    step, history, recent = 0, [], []
    ckpt_path = out / "ckpt.pt"
    if ckpt_path.exists():
        ck = torch.load(ckpt_path, map_location=device, weights_only=False)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        step, history, recent = ck["step"], ck["history"], ck["recent"]
        torch.set_rng_state(ck["rng"])

    def checkpoint():
        _atomic_torch_save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step,
                            "history": history, "recent": recent, "rng": torch.get_rng_state()}, ckpt_path)

    hooks = _as_hooks(hooks)
    n_windows = data.train.shape[0]
    bar = _progress(progress, total, step)
    stopped = False
    params = list(model.parameters())
    while step < total:
        mult = lr_multiplier(config.schedule, step, total, max(1, warmup))
        for g in opt.param_groups:
            g["lr"] = config.lr * mult
        w = torch.as_tensor(batches(step), device=device)
        x, y = w[..., :-1], w[..., 1:]
        with autocast() if autocast else contextlib.nullcontext():
            logits = model(x)
        ce = F.cross_entropy(logits.float().flatten(0, 2), y.flatten(), reduction="none").view(M, -1).mean(1)
        loss_m = ce
        if teacher is not None and config.distill_alpha > 0:
            from repetita.lm.distill import kd_loss, teacher_logprobs

            with autocast() if autocast else contextlib.nullcontext():
                tlp = teacher_logprobs(teacher, x, config.teacher_combiner)
            loss_m = (1 - config.distill_alpha) * ce + config.distill_alpha * kd_loss(
                logits, tlp.float(), config.distill_temperature)
        opt.zero_grad(set_to_none=True)
        loss_m.sum().backward()  # sum: each member's gradient is that of its own mean loss
        _clip_per_member(params, config.grad_clip, M)
        opt.step()
        step += 1
        cur_loss = float(ce.detach().mean())
        recent.append(cur_loss)
        if not math.isfinite(cur_loss):
            raise UserError(f"training diverged at step {step} (loss {cur_loss}); lower lr={config.lr}")
        if step in evals:
            ev = evaluate(model, data.val, device=device, autocast=autocast)
            tr = evaluate(model, train_probe, device=device, combiners=("logits",), autocast=autocast)
            row = {"step": step, "epoch": step * config.batch_size / n_windows,
                   "tokens": step * config.batch_size * config.context, "train_batch_loss": float(np.mean(recent)),
                   "train_loss": float(np.mean(tr["member_losses"])), "val_loss": ev["loss"],
                   "val_member_losses": ev["member_losses"], "lr": config.lr * mult}
            row |= {k: v for k, v in ev.items() if k.startswith("ensemble_") or k == "mean_member_loss"}
            row["gap"] = float(np.mean(ev["member_losses"])) - row["train_loss"]
            history.append(row)
            recent = []
            write_text_atomic(out / "metrics.json", json.dumps(history))
        state = {"step": step, "loss": cur_loss, "lr": config.lr * mult, "model": model, "config": config,
                 "history": history}
        try:
            for h in hooks:
                if step % h.every == 0:
                    h.fn(state)
        except StopTraining:
            stopped = True
        if bar:
            bar.update(1)
        if stopped or (stop_at_step is not None and step >= stop_at_step):
            checkpoint()
            if bar:
                bar.close()
            return {"finished": False, "step": step, "history": history, "config_hash": config.hash}
        if step % config.checkpoint_every == 0 and step < total:
            checkpoint()
    if bar:
        bar.close()
    _atomic_torch_save({"model_config": model.config.to_dict(), "members": M, "state": model.state_dict()},
                       out / "model.pt")
    result = _result(config, data, model, history, total, time.time() - t0)
    write_text_atomic(out / "result.json", json.dumps(result, indent=1))
    with contextlib.suppress(FileNotFoundError):
        ckpt_path.unlink()  # the finished model lives in model.pt; optimizer state is no longer needed
    return result


def _progress(enabled: bool, total: int, start: int):
    if not enabled:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=total, initial=start, leave=False)


def _result(config: TrainConfig, data: TokenData, model: GPT, history: list, total: int, wall: float) -> dict:
    last = history[-1]
    N = model.num_params()
    tokens = total * config.batch_size * config.context
    epochs = tokens / data.unique_tokens
    base = {"params": N, "tokens": tokens, "unique_tokens": data.unique_tokens, "epochs": epochs,
            "recipe": config.recipe, "run_id": config.hash, "weight_decay": config.weight_decay, "lr": config.lr,
            "corpus": config.corpus, "context": config.context}
    rows = []
    for m, loss in enumerate(last["val_member_losses"]):
        rows.append(base | {"loss": loss, "seed": config.seed + m, "members": 1, "member": m,
                            "bits_per_token": loss / LN2})
    if config.members > 1:
        for how in ("logits", "probs"):
            loss = last[f"ensemble_{how}_loss"]
            rows.append(base | {"loss": loss, "seed": config.seed, "members": config.members, "member": -1,
                                "combiner": how, "total_params": N * config.members, "bits_per_token": loss / LN2})
    return {
        "finished": True, "config": config.to_dict(), "config_hash": config.hash, "params": N,
        "non_embedding_params": model.num_params(non_embedding=True), "tokens": tokens,
        "unique_tokens": data.unique_tokens, "epochs": epochs, "steps": total, "members": config.members,
        "val_loss": last["val_loss"], "bits_per_token": last["val_loss"] / LN2, "train_loss": last["train_loss"],
        "gap": last["gap"], "irreducible_loss": data.entropy_rate_nats, "history": history, "rows": rows,
        "wall_s": wall,
    }
