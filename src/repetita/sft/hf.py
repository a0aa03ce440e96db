"""``TokenAccuracyStopping``: the stop rule as a transformers ``TrainerCallback``.

Importing this module imports transformers; ``repetita.sft`` only does so when the name is first
used. How the callback sees logits without an extra full-vocabulary tensor: on ``on_train_begin`` it
registers a forward hook on the model the Trainer trains. The hook receives the model's keyword
inputs (``labels`` included, since ``Trainer.compute_loss`` calls ``model(**inputs)``) and its
output (``logits``), and counts argmax hits under ``no_grad`` while the model is in training mode.
Counts of all micro-batches of one optimizer step (gradient accumulation) are pooled in
``on_step_end``, where the rule decides.

TRL's ``SFTTrainer`` (tested with 1.16) patches the model's ``forward`` with a fused LM head: called with
``fused_lm_head=True`` it returns no logits but per-token ``is_top1`` (label is the argmax) and
``label_mask`` (label is not -100), both already shifted. The hook counts those directly, so the same
callback works there without building logits.

Wiring::

    trainer = Trainer(model=model, args=args, train_dataset=ds, callbacks=[TokenAccuracyStopping()])

When a Trainer removes ``labels`` before the forward call (label smoothing or a custom
``compute_loss_func``), call ``callback.attach(trainer)`` as well: it records the labels from the
inputs ``compute_loss`` receives.
"""

from __future__ import annotations

import logging
from dataclasses import asdict

from transformers import TrainerCallback

from repetita.sft.accuracy import token_accuracy
from repetita.sft.stopping import StopConfig, StopRule

log = logging.getLogger("repetita.sft")


class TokenAccuracyStopping(TrainerCallback):
    """Stop training when windowed training token accuracy reaches ``threshold`` or plateaus.

    ``stop=False`` only records where it would have stopped. After training, ``decision`` holds the
    reason, step, epoch and accuracy; the same is appended to ``trainer.state.log_history`` (saved in
    ``trainer_state.json`` with every checkpoint) under the key ``token_accuracy_stop``.
    """

    def __init__(
        self,
        threshold: float | None = 0.99,
        window: int = 20,
        plateau_window: int = 50,
        plateau_tol: float = 1e-4,
        min_steps: int = 0,
        stop: bool = True,
    ):
        self.config = StopConfig(threshold, window, plateau_window, plateau_tol, min_steps)
        self.stop = stop
        self.rule = StopRule(self.config)
        self.missing = 0  # training forwards in which labels or logits were not visible
        self._correct = 0
        self._total = 0
        self._handle = None
        self._pending_labels = None
        self._reported = False

    # -- wiring ---------------------------------------------------------------------------------
    def attach(self, trainer):
        """Also take labels from ``compute_loss`` inputs (needed only when the Trainer pops them)."""
        original = trainer.compute_loss

        def compute_loss(model, inputs, *args, **kwargs):
            self._pending_labels = inputs.get("labels") if hasattr(inputs, "get") else None
            try:
                return original(model, inputs, *args, **kwargs)
            finally:
                self._pending_labels = None

        trainer.compute_loss = compute_loss
        return trainer

    def _record(self, module, args, kwargs, output):
        if not module.training:
            return
        top1 = getattr(output, "is_top1", None)
        label_mask = getattr(output, "label_mask", None)
        if top1 is not None and label_mask is not None:
            # TRL's fused head has already compared argmax and label on the shifted, unmasked positions.
            self._correct += int((top1.detach().bool() & label_mask).sum())
            self._total += int(label_mask.sum())
            return
        labels = kwargs.get("labels", self._pending_labels)
        logits = getattr(output, "logits", None)
        if logits is None and isinstance(output, dict):
            logits = output.get("logits")
        if labels is None or logits is None:
            self.missing += 1
            return
        batch = token_accuracy(logits.detach(), labels.detach())
        self._correct += batch.n_correct
        self._total += batch.n_tokens

    # -- TrainerCallback events -----------------------------------------------------------------
    def on_train_begin(self, args, state, control, model=None, **kwargs):
        if model is not None and self._handle is None:
            self._handle = model.register_forward_hook(self._record, with_kwargs=True)

    def on_step_end(self, args, state, control, **kwargs):
        decision = self.rule.update(state.global_step, self._correct, self._total, epoch=state.epoch)
        self._correct = self._total = 0
        if decision is None or self._reported:
            return control
        self._reported = True
        entry = {
            "token_accuracy_stop": decision.reason,
            "token_accuracy": decision.accuracy,
            "step": decision.step,
            "epoch": decision.epoch,
            "slope": decision.slope,
            "skipped_steps": self.rule.skipped,
            "acted": self.stop,
        }
        state.log_history.append(entry)
        log.info(
            "token accuracy %s at step %d (epoch %s): windowed accuracy %.4f%s",
            decision.reason,
            decision.step,
            decision.epoch,
            decision.accuracy,
            "; stopping" if self.stop else "",
        )
        if self.stop:
            control.should_training_stop = True
        return control

    def on_train_end(self, args, state, control, **kwargs):
        if self._handle is not None:
            self._handle.remove()
            self._handle = None

    # -- transformers.ExportableState: config saved in trainer_state.json's stateful_callbacks ---
    def state(self) -> dict:
        return {"args": {**asdict(self.config), "stop": self.stop}, "attributes": {}}

    @property
    def decision(self):
        return self.rule.decision

    @property
    def history(self):
        return self.rule.history
