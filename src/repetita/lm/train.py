"""One LM run: ``train(config, out_dir, callbacks=...) -> result dict``, through the one loop of trainer.py.

``out_dir`` holds config.json, ckpt.pt (atomic: temp file then ``os.replace``), metrics.json (evaluation
history), model.pt and result.json when finished. Calling ``train`` again on the same directory returns the
stored result if finished and otherwise resumes from the checkpoint; because the data position is a pure
function of the step (data.py) and the checkpoint holds model, optimizer, RNG and loss history, the resumed
run produces the same losses as an uninterrupted one. A distillation teacher named by a relative path
(``runs/<id>``) is resolved against ``root`` (a study directory or a recipe's output folder).

An ensemble config (``members = K``) is not trained as one model: it is the evaluation of its K member
runs (``TrainConfig.member_configs``), which live beside it in ``<root>/runs/<id>`` (in ``out_dir/runs``
without a root). ``train`` trains any member not yet finished, in turn; a study queues them as ordinary
runs first, in parallel. The ensemble's folder then holds the members stacked into one batched model
(model.pt, the format a distillation teacher is read from), its evaluation and its tidy rows.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from repetita.errors import UserError, require
from repetita.io import check_dir, read_json, remove_stale_temps, save_npy, save_torch, write_json
from repetita.laws.data import RunRow
from repetita.lm.config import TrainConfig
from repetita.lm.data import TokenData, load_data
from repetita.lm.ensemble import history_row
from repetita.lm.model import GPT
from repetita.lm.trainer import Callback, Checkpoint, Trainer, model_loss
from repetita.runpaths import teacher_ref

LN2 = math.log(2.0)


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


def compile_forward(model: GPT, device: str, context: int) -> None:
    """Replace the model's forward by its torch.compile'd version, probed on a tiny batch now, so that a
    backend that cannot compile here fails before any run folder is written (one line), not steps later.
    The module itself stays uncompiled: checkpoints and model.pt keep their plain parameter names."""
    compiled = torch.compile(model.forward)
    x = torch.zeros(model.members, 1, min(2, context) + 1, dtype=torch.long, device=device)
    try:
        compiled(x[..., :-1], x[..., 1:])
    except Exception as exc:  # inductor and dynamo raise many kinds; all mean "cannot compile here"
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise UserError(f"compile=true, but torch.compile fails on this machine ({type(exc).__name__}: {first}); "
                        "run without compile") from None
    model.forward = compiled


# AdamW implementation per device under adamw = "auto". CPU: foreach, measured 3-12 % faster than the
# for-loop at 4 x 128 and 6 x 256 and 5 % slower at 2 x 64, fused slower than the best at every shape
# (benchmarks/lm_throughput.py --adamw for-loop,foreach,fused; BENCHMARKS.md). CUDA: fused, which
# PyTorch documents as its fastest; not measured here (no GPU; experiments/gpu/1_throughput.sh does).
ADAMW_AUTO = {"cuda": "fused", "cpu": "foreach"}
ADAMW_IMPLS = {"for-loop": {"foreach": False}, "foreach": {"foreach": True}, "fused": {"fused": True}}


def adamw(groups: list[dict], config: TrainConfig, device: str) -> torch.optim.AdamW:
    """The run's optimizer; the implementations differ in speed only (same update, float order aside)."""
    impl = ADAMW_AUTO.get(device, "for-loop") if config.adamw == "auto" else config.adamw
    return torch.optim.AdamW(groups, lr=config.lr, betas=(config.beta1, config.beta2), eps=1e-8,
                             **ADAMW_IMPLS[impl])


def probe_memory(model, config: TrainConfig, device: str, autocast) -> None:
    """One forward and backward pass at the run's full batch shape before any run folder exists, so a
    shape that does not fit the GPU is one line and exit 2, not a traceback after a half-written folder."""
    x = torch.zeros(model.members, config.batch_size, config.context + 1, dtype=torch.long, device=device)
    try:
        with autocast() if autocast else contextlib.nullcontext():
            _, loss = model(x[..., :-1], x[..., 1:])
        loss.sum().backward()
    except torch.cuda.OutOfMemoryError:
        raise UserError(f"the model does not fit in GPU memory at batch_size={config.batch_size}, "
                        f"context={config.context}, members={config.members}: lower one of them or d_model") from None
    finally:
        model.zero_grad(set_to_none=True)
        if device == "cuda":
            torch.cuda.empty_cache()


def eval_steps(data: TokenData, config: TrainConfig, total: int) -> list[int]:
    """Steps after which to evaluate: every epoch end, the last step, and every ``eval_every``."""
    n, B = data.train.shape[0], config.batch_size
    ends = {min(total, math.ceil(e * n / B)) for e in range(1, int(config.epochs) + 1)}
    ends.add(total)
    if config.eval_every:
        ends |= set(range(config.eval_every, total + 1, config.eval_every))
    return sorted(s for s in ends if s >= 1)


class _Batches:
    """Real windows (order seed = the run's seed) plus optional teacher-sample rows -> (idx, targets)."""

    def __init__(self, data: TokenData, config: TrainConfig, synthetic: np.ndarray | None, device: str):
        self.data, self.config, self.synthetic, self.device = data, config, synthetic, device
        f = config.seq_distill_frac
        self.n_syn = int(round(config.batch_size * f / (1 - f))) if synthetic is not None else 0

    def __call__(self, step: int):
        c = self.config
        b = self.data.batch(step, c.batch_size, c.seed)
        if self.n_syn:
            pool = TokenData(self.synthetic, self.synthetic[:1], 0, c.context, len(self.synthetic))
            b = np.concatenate([b, pool.batch(step, self.n_syn, 10_000 + c.seed)])
        w = torch.as_tensor(b[None], device=self.device)  # [1, B', T + 1]
        return w[..., :-1], w[..., 1:]


def teacher_dir(config: TrainConfig, root: str | Path | None) -> Path | None:
    if config.teacher is None:
        return None
    path = Path(config.teacher)
    return path if path.is_absolute() or root is None else Path(root) / path


def _teacher_setup(config: TrainConfig, data: TokenData, out: Path, device: str, root):
    if config.teacher is None:
        return None, None
    from repetita.lm.distill import load_run_model, sample_windows

    teacher, _ = load_run_model(teacher_dir(config, root), device)
    require(teacher.config.vocab_size == data.vocab_size and teacher.config.context >= config.context,
            "teacher vocab/context do not match the student's data")
    synthetic = None
    if config.seq_distill_frac > 0:
        path = out / "teacher_samples.npy"
        if path.exists():
            synthetic = np.load(path)
        else:
            S = config.teacher_samples or data.train.shape[0]
            firsts = np.asarray(data.train[np.random.default_rng([config.seed, 77]).integers(0, len(data.train), S), 0],
                                dtype=np.int64)
            synthetic = sample_windows(teacher, firsts, config.context, seed=config.seed,
                                       combiner=config.teacher_combiner, device=device)
            save_npy(path, synthetic)
    return teacher, synthetic


def _distill_loss(config: TrainConfig, teacher):
    """Data loss from the model, mixed with token-level KD against the teacher (distill.py)."""
    from repetita.lm.distill import kd_loss, teacher_logprobs

    def loss_fn(model, batch):
        idx, targets = batch
        logits, ce = model(idx, targets)
        tlp = teacher_logprobs(teacher, idx, config.teacher_combiner)
        return (1 - config.distill_alpha) * ce + config.distill_alpha * kd_loss(
            logits, tlp.float(), config.distill_temperature), logits

    return loss_fn


def _as_float(loss) -> float:
    return loss if isinstance(loss, float) else float(loss.mean())


def _mean_loss(recent: list) -> float:
    """Mean of the training-batch losses since the last evaluation (floats after a resume, tensors else)."""
    return float(np.mean([_as_float(v) for v in recent]))


class Evaluation(Callback):
    """Validation (every member and the ensemble) and a fixed train probe at the evaluation steps;
    the history is written to metrics.json and kept in the checkpoint."""

    name = "evaluation"

    def __init__(self, config: TrainConfig, data: TokenData, steps: list[int], out: Path, device: str, autocast):
        self.config, self.data, self.steps, self.out = config, data, set(steps), out
        self.device, self.autocast = device, autocast
        self.history: list[dict] = []
        self.recent: list[float] = []

    def on_step(self, trainer, step):
        self.recent.append(step.losses)  # a device tensor: read (synced) at the evaluation steps only
        if step.step not in self.steps:
            return None
        step.loss  # noqa: B018 - raises Diverged before a NaN reaches the history
        self.history.append(history_row(trainer.model, self.data, self.config.batch_size, step.step, step.lr,
                                        _mean_loss(self.recent), self.device, self.autocast))
        self.recent = []
        write_json(self.out / "metrics.json", self.history)
        return None

    def state_dict(self):
        return {"history": self.history, "recent": [_as_float(v) for v in self.recent]}

    def load_state_dict(self, state):
        self.history, self.recent = list(state["history"]), list(state["recent"])


def _claim_dir(out: Path, config: TrainConfig) -> dict | None:
    """Check ``out`` before any work: a new folder, this run's folder (returns its result when finished),
    or a folder a failed start left with nothing but a config."""
    check_dir(out, "run folder")
    cfg_path = out / "config.json"
    if not cfg_path.exists():
        require(not out.exists() or not any(out.iterdir()),
                f"{out}: exists, is not empty and is not a run folder; choose another --out")
        return None
    stored = TrainConfig.from_dict(read_json(cfg_path, "run config"))
    if stored.hash != config.hash:
        progress = [p for p in ("ckpt.pt", "result.json", "metrics.json") if (out / p).exists()]
        require(not progress, f"{out} holds a different run (config hash {stored.hash} != {config.hash})")
        return None  # nothing was trained there: the corrected config may take the folder
    if (out / "result.json").exists():
        return read_json(out / "result.json", "run result")
    return None


class DamagedCheckpoint(UserError):
    """A checkpoint that cannot be read (truncated by a full disk, overwritten, not a checkpoint)."""

    def __init__(self, path: Path, reason: str):
        self.path = Path(path)
        super().__init__(f"checkpoint '{path}' is damaged and cannot be resumed from ({reason}); move it aside or "
                         "delete it to restart the run from scratch")


def load_checkpoint(path: Path, device: str) -> dict:
    """The trainer state saved by ``Checkpoint``; a file torch cannot read is one line naming it."""
    import pickle
    import zipfile

    try:
        state = torch.load(path, map_location=device, weights_only=False)
    except (RuntimeError, pickle.UnpicklingError, EOFError, OSError, ValueError, zipfile.BadZipFile,
            AttributeError, ImportError, IndexError, KeyError, TypeError) as exc:
        reason = " ".join(str(exc).split())[:160] or type(exc).__name__
        raise DamagedCheckpoint(path, reason) from None
    if not isinstance(state, dict):
        raise DamagedCheckpoint(path, f"holds a {type(state).__name__}, not a trainer state")
    return state


def train(config: TrainConfig, out_dir: str | Path, callbacks: Sequence[Callback] = (),
          progress: bool = False, root: str | Path | None = None) -> dict:
    """Run (or resume, or return the stored result of) one training run; see the module docstring.

    A callback that stops the loop (``StopAt``: a simulated interruption) leaves a checkpoint to resume from.
    The run uses ``config.threads`` torch threads (1 by default: bit-reproducible), restored afterwards.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    try:
        return _train(config, out_dir, callbacks, progress, root)
    finally:
        torch.set_num_threads(before)


def _train(config: TrainConfig, out_dir, callbacks, progress, root) -> dict:
    out = Path(out_dir)
    done = _claim_dir(out, config)
    if done is not None:
        return done
    if config.members > 1:
        return _ensemble(config, out, progress, root)
    t0 = time.time()
    device = resolve_device(config.device)
    autocast = _autocast(config, device)
    data = load_data(config.corpus, config.tokenizer, config.context, config.unique_tokens,
                     config.val_fraction, config.val_tokens, config.split_seed)
    ckpt = Checkpoint(out / "ckpt.pt", config.checkpoint_every)
    remove_stale_temps(ckpt.path)  # a checkpoint write cut by kill -9 leaves its temp file behind
    state = load_checkpoint(ckpt.path, device) if ckpt.path.exists() else None
    mc = config.model_config(data.vocab_size)
    total = data.steps_for(config.epochs, config.batch_size)
    steps = eval_steps(data, config, total)
    torch.manual_seed(config.seed)
    model = GPT(mc, members=1, seed=config.seed).to(device)
    if config.compile:
        compile_forward(model, device, config.context)
    if device == "cuda":
        probe_memory(model, config, device, autocast)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "config.json", config.to_dict(), indent=1)  # only once the setup has succeeded
    teacher, synthetic = _teacher_setup(config, data, out, device, root)
    bar = _Progress(progress, total)
    kd = teacher is not None and config.distill_alpha > 0
    evaluation = Evaluation(config, data, steps, out, device, autocast)
    cbs = [evaluation, *callbacks]
    run = Trainer(model, adamw(model.param_groups(config.weight_decay), config, device),
                  _Batches(data, config, synthetic, device), total_steps=total, lr=config.lr,
                  schedule=config.schedule, warmup=int(config.warmup_frac * total), grad_clip=config.grad_clip,
                  autocast=autocast, callbacks=[*cbs, bar, ckpt],
                  loss_fn=_distill_loss(config, teacher) if kd else model_loss)
    if state is not None:
        run.load_state_dict(state)
    status = run.run()
    bar.close()
    if status == "stopped":
        ckpt.save(run)
        return {"finished": False, "step": run.step, "history": evaluation.history, "config_hash": config.hash}
    save_torch({"model_config": mc.to_dict(), "members": 1, "state": model.state_dict()}, out / "model.pt")
    result = _result(config, data, model, evaluation.history, total, time.time() - t0)
    write_json(out / "result.json", result, indent=1)
    with contextlib.suppress(FileNotFoundError):
        ckpt.path.unlink()  # the finished model lives in model.pt; optimizer state is no longer needed
    return result


def member_dir(member: TrainConfig, out: Path, root) -> Path:
    """Where an ensemble's member run lives: beside the ensemble under the root, or under its own folder."""
    return (Path(root) if root is not None else out) / teacher_ref(member.hash)


def _ensemble(config: TrainConfig, out: Path, progress: bool, root) -> dict:
    """Train the members not yet finished (in turn), then evaluate the ensemble from their final weights."""
    from repetita.lm.distill import load_run_model

    t0 = time.time()
    device = resolve_device(config.device)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "config.json", config.to_dict(), indent=1)
    members = config.member_configs()
    results, models = [], []
    for member in members:
        where = member_dir(member, out, root)
        res = train(member, where, progress=progress, root=root)
        require(res.get("finished"), f"{where}: member run did not finish")
        results.append(res)
        models.append(load_run_model(where, "cpu")[0])
    data = load_data(config.corpus, config.tokenizer, config.context, config.unique_tokens,
                     config.val_fraction, config.val_tokens, config.split_seed)
    model = GPT.stack(models).to(device)
    last = [r["history"] if "history" in r else read_json(member_dir(m, out, root) / "metrics.json", "run metrics")
            for m, r in zip(members, results, strict=True)]
    total = int(results[0]["steps"])
    # The members' own last training-batch losses, averaged: what one batched run reported at its last step.
    row = history_row(model, data, config.batch_size, total, float(last[0][-1]["lr"]),
                      float(np.mean([h[-1]["train_batch_loss"] for h in last])), device, _autocast(config, device))
    write_json(out / "metrics.json", [row])
    save_torch({"model_config": model.config.to_dict(), "members": config.members, "state": model.state_dict()},
               out / "model.pt")
    result = _result(config, data, model, [row], total, time.time() - t0) | {
        "member_runs": [r["config_hash"] for r in results]}
    write_json(out / "result.json", result, indent=1)
    return result


class _Progress(Callback):
    """A tqdm bar when asked for (and tqdm is installed)."""

    def __init__(self, enabled: bool, total: int):
        self.bar = None
        if enabled:
            with contextlib.suppress(ImportError):
                from tqdm.auto import tqdm

                self.bar = tqdm(total=total, leave=False)

    def on_step(self, trainer, step):
        if self.bar is not None:
            self.bar.n = step.step
            self.bar.refresh()

    def close(self):
        if self.bar is not None:
            self.bar.close()


def _result(config: TrainConfig, data: TokenData, model: GPT, history: list, total: int, wall: float) -> dict:
    last = history[-1]
    N = model.num_params()
    tokens = total * config.batch_size * config.context
    epochs = tokens / data.unique_tokens
    base = {"params": N, "tokens": tokens, "unique_tokens": data.unique_tokens, "epochs": epochs,
            "recipe": config.recipe, "run_id": config.hash, "weight_decay": config.weight_decay, "lr": config.lr,
            "corpus": config.corpus, "context": config.context, "step": total}
    # An ensemble's rows are its own (its members are runs with rows of their own).
    rows = [] if config.members > 1 else [RunRow(**base, loss=last["val_member_losses"][0], seed=config.seed,
                                                 members=1, member=0)]
    if config.members > 1:
        rows += [RunRow(**base, loss=last[f"ensemble_{how}_loss"], seed=config.seed, members=config.members,
                        member=-1, combiner=how, total_params=N * config.members) for how in ("logits", "probs")]
    rows = [r.to_dict() for r in rows]
    return {
        "finished": True, "config": config.to_dict(), "config_hash": config.hash, "params": N,
        "non_embedding_params": model.num_params(non_embedding=True), "tokens": tokens,
        "unique_tokens": data.unique_tokens, "epochs": epochs, "steps": total, "members": config.members,
        "val_loss": last["val_loss"], "bits_per_token": last["val_loss"] / LN2, "train_loss": last["train_loss"],
        "gap": last["gap"], "irreducible_loss": data.entropy_rate_nats, "vocab_size": int(data.vocab_size),
        "history": history, "rows": rows,
        "wall_s": wall,
    }
