"""The token-accuracy stop rule as a callback of repetita's own training loop (``repetita.lm.trainer``).

``hf.py`` is the same rule for transformers' Trainer; both share ``stopping.TokenAccuracyHook``. It lives
here, not in the loop, so that the generic loop knows only callbacks and depends on nothing above it.
"""

from __future__ import annotations

from repetita.lm.trainer import Callback
from repetita.sft.stopping import TokenAccuracyHook


class TokenAccuracyStop(Callback):
    """The stop rule (``stopping.py``) on the training batch's token accuracy.

    ``labels_of(batch)`` gives the labels to score the step's logits against (default: the batch's
    second element, the targets). Training stops when the rule fires, unless ``stop=False`` (then it
    only records where it would have stopped).
    """

    wants_logits = True

    def __init__(self, config=None, *, stop: bool = True, labels_of=None, shift: bool = False, epoch_of=None):
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
