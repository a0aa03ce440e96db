"""The training loop every model in repetita trains through: schedule, step, clip, callbacks.

``Trainer(model, optimizer, batches, total_steps=...)`` runs optimizer steps; the model computes its
own loss (``loss_fn(model, batch) -> (per-member loss [M], logits)``, by default ``model(idx, targets)``).
After every step a typed :class:`Step` record goes to the callbacks, each called every ``every``
steps; a callback stops training by returning True or raising :class:`StopTraining`. Evaluation,
checkpointing, metrics files, heartbeats and early stopping (the token-accuracy rule,
``repetita.sft.loop``) are callbacks, so the LM lab (``train.py``), the skill-composition testbed and
the SFT demonstration share this loop instead of owning copies of it. The loop knows no callback by name.

No host sync per step: the step's loss stays a device tensor until someone reads ``Step.loss`` (a
callback that needs it, or the loop's own divergence check every ``DIVERGENCE_EVERY`` steps and at the
last step), as nanoGPT syncs only at its log interval; the logits are handed only to callbacks that
set ``wants_logits``.

Members: a batched ensemble (``GPT(members=K)``) returns one loss per member; the loop backpropagates
their sum (each member's gradient is that of its own mean loss) and clips each member's gradient
separately, so member m follows the trajectory of a lone run (model.py).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import torch

from repetita.errors import UserError
from repetita.schedules import lr_multiplier


class StopTraining(Exception):
    """Raised by a callback to stop early; the run is checkpointed and can be resumed."""


class Diverged(UserError):
    """The training loss became NaN or infinite."""


DIVERGENCE_EVERY = 100  # steps between the loop's own reads of the loss (a NaN is caught within this many)


@dataclass(frozen=True)
class Step:
    """What one optimizer step produced; ``losses``/``logits``/``batch`` are live tensors, valid during
    callbacks only. ``logits`` is None unless a callback due at this step set ``wants_logits``."""

    step: int  # optimizer steps done, 1-based after the first
    total: int
    lr: float
    losses: Any = field(repr=False)  # [M] per-member data loss of this batch (detached, float32, on device)
    logits: Any = field(default=None, repr=False)
    batch: Any = field(default=None, repr=False)

    @cached_property
    def loss(self) -> float:
        """Mean over members of this batch's loss (reading it syncs with the device); a NaN or infinite
        loss raises :class:`Diverged`."""
        loss = float(self.losses.mean())
        if not math.isfinite(loss):
            raise Diverged(f"training diverged at step {self.step} (loss {loss}); lower the learning rate")
        return loss

    @property
    def member_losses(self) -> tuple[float, ...]:
        return tuple(self.losses.tolist())


class Callback:
    """Override ``on_step`` (and optionally ``on_end``, ``state_dict``/``load_state_dict`` for resumable
    state stored in the checkpoint under ``name``)."""

    every: int = 1
    name: str | None = None
    wants_logits: bool = False  # hand this callback the step's logits (kept alive for it)

    def on_step(self, trainer: Trainer, step: Step) -> bool | None:
        return None

    def on_end(self, trainer: Trainer) -> None:
        return None

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        return None


class Every(Callback):
    """``fn(step_record)`` every ``every`` steps (the one-method hook)."""

    def __init__(self, fn: Callable[[Step], Any], every: int = 1):
        self.fn, self.every = fn, every

    def on_step(self, trainer, step):
        return bool(self.fn(step))


def model_loss(model, batch) -> tuple[torch.Tensor, torch.Tensor]:
    """Default loss: the model's own ``forward(idx, targets) -> (logits, loss [M])``."""
    idx, targets = batch
    logits, loss = model(idx, targets)
    return loss, logits


def clip_per_member(params: list[torch.Tensor], max_norm: float, members: int) -> torch.Tensor:
    """Clip each member's gradient to ``max_norm`` separately (members are independent runs)."""
    grads = [p.grad for p in params if p.grad is not None]
    sq = torch.stack([g.float().pow(2).reshape(members, -1).sum(1) for g in grads]).sum(0)
    norms = sq.sqrt()
    if max_norm > 0:
        scale = (max_norm / (norms + 1e-6)).clamp(max=1.0)
        for g in grads:
            g.mul_(scale.view(members, *([1] * (g.dim() - 1))).to(g.dtype))
    return norms


class Trainer:
    """One loop: ``Trainer(...).run()`` trains from ``self.step`` to ``total_steps`` (or a stop).

    ``batches(step)`` returns the batch of optimizer step ``step`` (0-based); making it a pure
    function of the step is what makes a resumed run identical to an uninterrupted one.
    """

    def __init__(self, model, optimizer, batches: Callable[[int], Any], *, total_steps: int, lr: float,
                 schedule: str = "cosine", warmup: int = 0, final_lr_frac: float | None = None,
                 grad_clip: float = 1.0, members: int = 1, loss_fn=model_loss, autocast=None,
                 callbacks: Sequence[Callback] = ()):
        self.model, self.optimizer, self.batches = model, optimizer, batches
        self.total, self.base_lr, self.schedule = int(total_steps), float(lr), schedule
        self.warmup, self.final_lr_frac = max(1, int(warmup)), final_lr_frac
        self.grad_clip, self.members, self.loss_fn = grad_clip, int(members), loss_fn
        self.autocast = autocast
        self.callbacks = list(callbacks)
        self.step = 0
        self._params = [p for p in model.parameters() if p.requires_grad]

    def lr_at(self, step: int) -> float:
        return self.base_lr * lr_multiplier(self.schedule, step, self.total, self.warmup, self.final_lr_frac)

    def _context(self):
        return self.autocast() if self.autocast else contextlib.nullcontext()

    def train_step(self, keep_logits: bool = False) -> Step:
        lr = self.lr_at(self.step)
        for g in self.optimizer.param_groups:
            g["lr"] = lr
        batch = self.batches(self.step)
        with self._context():
            loss_m, logits = self.loss_fn(self.model, batch)
        self.optimizer.zero_grad(set_to_none=True)
        loss_m.sum().backward()  # sum: each member's gradient is that of its own mean loss
        clip_per_member(self._params, self.grad_clip, self.members)
        self.optimizer.step()
        self.step += 1
        return Step(self.step, self.total, lr, loss_m.detach().float(), logits.detach() if keep_logits else None, batch)

    def run(self) -> str:
        """Train until ``total_steps`` ('finished') or a callback stops it ('stopped')."""
        self.model.train()
        while self.step < self.total:
            n = self.step + 1
            due = [cb for cb in self.callbacks if n % cb.every == 0 or n == self.total]
            rec = self.train_step(keep_logits=any(cb.wants_logits for cb in due))
            stop = False
            try:
                for cb in due:
                    stop = bool(cb.on_step(self, rec)) or stop
            except StopTraining:
                stop = True
            if n % DIVERGENCE_EVERY == 0 or n == self.total:
                rec.loss  # noqa: B018 - reading it is the check (raises Diverged)
            if stop:
                return "stopped"
        for cb in self.callbacks:
            cb.on_end(self)
        return "finished"

    # --- resumable state -------------------------------------------------------------------------

    def state_dict(self) -> dict:
        state = {"model": self.model.state_dict(), "opt": self.optimizer.state_dict(), "step": self.step,
                 "rng": torch.get_rng_state()}
        for cb in self.callbacks:
            if cb.name:
                state |= cb.state_dict()
        return state

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["opt"])
        self.step = int(state["step"])
        torch.set_rng_state(state["rng"])
        for cb in self.callbacks:
            if cb.name:
                cb.load_state_dict(state)


class Checkpoint(Callback):
    """Save the trainer's state every ``every`` steps (atomically) so an interrupted run resumes exactly."""

    def __init__(self, path, every: int):
        self.path, self.every = path, max(1, int(every))

    def on_step(self, trainer, step):
        if step.step < trainer.total:
            self.save(trainer)

    def save(self, trainer: Trainer) -> None:
        from repetita.io import save_torch

        save_torch(trainer.state_dict(), self.path)


class StopAt(Callback):
    """Stop after ``step`` steps (a simulated interruption in tests, or a partial run)."""

    def __init__(self, step: int):
        self.at = int(step)

    def on_step(self, trainer, step):
        return step.step >= self.at
