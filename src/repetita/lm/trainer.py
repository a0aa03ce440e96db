"""The training loop every model in repetita trains through: schedule, step, clip, callbacks.

``Trainer(model, optimizer, batches, total_steps=...)`` runs optimizer steps; the model computes its
own loss (``loss_fn(model, batch) -> (per-member loss [M], logits)``, by default ``model(idx, targets)``).
After every step a typed :class:`Step` record goes to the callbacks, each called every ``every``
steps; a callback stops training by returning True or raising :class:`StopTraining`. Evaluation,
checkpointing, metrics files, heartbeats and early stopping (the token-accuracy rule of
``repetita.sft``) are callbacks, so the LM lab (``train.py``), the skill-composition testbed and the
SFT demonstration share this loop instead of owning copies of it.

Members: a batched ensemble (``GPT(members=K)``) returns one loss per member; the loop backpropagates
their sum (each member's gradient is that of its own mean loss) and clips each member's gradient
separately, so member m follows the trajectory of a lone run (model.py).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from repetita.errors import UserError
from repetita.lm.schedules import lr_multiplier


class StopTraining(Exception):
    """Raised by a callback to stop early; the run is checkpointed and can be resumed."""


class Diverged(UserError):
    """The training loss became NaN or infinite."""


@dataclass(frozen=True)
class Step:
    """What one optimizer step produced; ``logits``/``batch`` are live tensors, valid during callbacks only."""

    step: int  # optimizer steps done, 1-based after the first
    total: int
    lr: float
    loss: float  # mean over members of the data loss of this batch
    member_losses: tuple[float, ...]
    logits: Any = field(default=None, repr=False)
    batch: Any = field(default=None, repr=False)


class Callback:
    """Override ``on_step`` (and optionally ``on_end``, ``state_dict``/``load_state_dict`` for resumable
    state stored in the checkpoint under ``name``)."""

    every: int = 1
    name: str | None = None

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
        # Separately stored members (repetita.lm.members.Members) are clipped one by one.
        self._member_params = model.member_parameters() if hasattr(model, "member_parameters") else None

    def lr_at(self, step: int) -> float:
        return self.base_lr * lr_multiplier(self.schedule, step, self.total, self.warmup, self.final_lr_frac)

    def _context(self):
        return self.autocast() if self.autocast else contextlib.nullcontext()

    def train_step(self) -> Step:
        lr = self.lr_at(self.step)
        for g in self.optimizer.param_groups:
            g["lr"] = lr
        batch = self.batches(self.step)
        with self._context():
            loss_m, logits = self.loss_fn(self.model, batch)
        self.optimizer.zero_grad(set_to_none=True)
        loss_m.sum().backward()  # sum: each member's gradient is that of its own mean loss
        if self._member_params is None:
            clip_per_member(self._params, self.grad_clip, self.members)
        else:
            for ps in self._member_params:
                clip_per_member(ps, self.grad_clip, 1)
        self.optimizer.step()
        self.step += 1
        detached = loss_m.detach().float()
        loss = float(detached.mean())
        if not math.isfinite(loss):
            raise Diverged(f"training diverged at step {self.step} (loss {loss}); lower the learning rate")
        return Step(self.step, self.total, lr, loss, tuple(detached.tolist()), logits.detach(), batch)

    def run(self) -> str:
        """Train until ``total_steps`` ('finished') or a callback stops it ('stopped')."""
        self.model.train()
        while self.step < self.total:
            rec = self.train_step()
            stop = False
            try:
                for cb in self.callbacks:
                    if rec.step % cb.every == 0 or rec.step == self.total:
                        stop = bool(cb.on_step(self, rec)) or stop
            except StopTraining:
                stop = True
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


class TokenAccuracyStop(Callback):
    """The SFT stop rule (``repetita.sft.stopping``) on the training batch's token accuracy.

    ``labels_of(batch)`` gives the labels to score the step's logits against (default: the batch's
    second element, the targets). Training stops when the rule fires, unless ``stop=False`` (then it
    only records where it would have stopped).
    """

    def __init__(self, config=None, *, stop: bool = True, labels_of=None, shift: bool = False, epoch_of=None):
        from repetita.sft.stopping import TokenAccuracyHook

        self.hook = TokenAccuracyHook(config, shift=shift)
        self.stop, self.labels_of, self.epoch_of = stop, labels_of, epoch_of

    def on_step(self, trainer, step):
        labels = self.labels_of(step.batch) if self.labels_of else step.batch[1]
        logits = step.logits[0] if step.logits.dim() == 4 else step.logits
        labels = labels[0] if labels.dim() == 3 else labels
        epoch = self.epoch_of(step.step) if self.epoch_of else None
        fired = self.hook(step.step, logits, labels, epoch=epoch)
        return fired and self.stop

    @property
    def decision(self):
        return self.hook.decision

    @property
    def history(self):
        return self.hook.history
