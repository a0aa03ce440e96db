"""Combining members' predictions, and evaluation of single models and ensembles.

Two combiners (Kim et al. 2025 average logits; probability averaging is the classical mixture):
- ``logits``: p_ens = softmax(mean_m z_m), a renormalised geometric mean of the members' distributions;
- ``probs``: p_ens = mean_m softmax(z_m), the arithmetic mixture.
Both return log-probabilities so the loss is a plain gather.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from repetita.errors import require
from repetita.lm.config import COMBINERS
from repetita.lm.model import token_nll as model_token_nll


def combine_logprobs(logits: torch.Tensor, how: str = "logits") -> torch.Tensor:
    """[M, ..., V] member logits -> [..., V] ensemble log-probabilities."""
    require(how in COMBINERS, f"ensemble combiner {how!r} must be one of {COMBINERS}")
    if how == "logits":
        return F.log_softmax(logits.float().mean(0), dim=-1)
    lp = F.log_softmax(logits.float(), dim=-1)
    return torch.logsumexp(lp, dim=0) - math.log(logits.shape[0])


def combined_nll(logprobs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean negative log-likelihood (nats/token) of ``targets`` under already-normalised ensemble log-probs."""
    return -logprobs.gather(-1, targets.unsqueeze(-1)).squeeze(-1).mean()


@torch.no_grad()
def evaluate(model, windows: np.ndarray, batch_size: int = 64, device: str = "cpu",
             combiners: tuple[str, ...] = ("logits", "probs"), autocast=None) -> dict:
    """Validation loss of every member and of the ensemble under each combiner, in nats/token.

    Every member sees the same windows (broadcast over the member axis).
    """
    model.eval()
    M = model.members
    sums = {"members": torch.zeros(M, dtype=torch.float64)} | {c: torch.zeros((), dtype=torch.float64)
                                                              for c in combiners}
    count = 0
    for i in range(0, windows.shape[0], batch_size):
        w = torch.as_tensor(np.asarray(windows[i : i + batch_size], dtype=np.int64), device=device)
        x, y = w[:, :-1], w[:, 1:]
        idx = x.unsqueeze(0).expand(M, *x.shape)
        if autocast is not None:
            with autocast():
                logits = model(idx)
        else:
            logits = model(idx)
        logits = logits.float()
        n = y.numel()
        member_nll = model_token_nll(logits, y.unsqueeze(0).expand(M, *y.shape))
        sums["members"] += member_nll.reshape(M, -1).sum(1).double().cpu()
        if M > 1:
            for c in combiners:
                sums[c] += combined_nll(combine_logprobs(logits, c), y).double().cpu() * n
        count += n
    model.train()
    out = {"member_losses": (sums["members"] / count).tolist()}
    out["loss"] = float(np.mean(out["member_losses"])) if M == 1 else float(sums[combiners[0]] / count)
    if M > 1:
        for c in combiners:
            out[f"ensemble_{c}_loss"] = float(sums[c] / count)
        out["mean_member_loss"] = float(np.mean(out["member_losses"]))
    return out


def history_row(model, data, batch_size: int, step: int, lr: float, train_batch_loss: float,
                device: str = "cpu", autocast=None) -> dict:
    """One row of a run's evaluation history (metrics.json): validation loss of every member and of the
    ensemble, the loss on a fixed probe of training windows (the train-vs-val gap), the step's place."""
    c = model.config
    ev = evaluate(model, data.val, device=device, autocast=autocast)
    probe = data.train[: data.val.shape[0]]  # fixed train windows, as many as the validation set
    tr = evaluate(model, probe, device=device, combiners=("logits",), autocast=autocast)
    row = {"step": step, "epoch": step * batch_size / data.train.shape[0], "tokens": step * batch_size * c.context,
           "train_batch_loss": train_batch_loss, "train_loss": float(np.mean(tr["member_losses"])),
           "val_loss": ev["loss"], "val_member_losses": ev["member_losses"], "lr": lr}
    row |= {k: v for k, v in ev.items() if k.startswith("ensemble_") or k == "mean_member_loss"}
    row["gap"] = float(np.mean(ev["member_losses"])) - row["train_loss"]
    return row
