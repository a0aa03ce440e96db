"""Ensemble members trained one after the other; the ensemble evaluated afterwards from snapshots.

Why this layout exists: on a CPU neither batching the K members into one model nor stepping K models
side by side reliably matches K lone runs trained one after the other (BENCHMARKS.md: batched 0.69-0.87x,
side by side 0.89-0.92x at K = 4 and 8, d 64), because both keep K models' weights, optimizer state and
activations in the working set where a lone run keeps one hot in cache. Here each member *is* a lone run
(the one model object, re-initialised to member m's weights, seed + m, and a fresh optimizer), so the
training work is exactly that of K separate runs. What the other layouts do during training, evaluating
the ensemble at the evaluation steps, needs all K members at the same step: each member's weights are
saved at those steps (``snapshots/<m>/<step>.pt``) and, once the last member is trained, each evaluation
step's K snapshots are stacked into one batched model and evaluated exactly as the other layouts would
(the same ``history_row``), so the run's history and model.pt do not depend on the layout.

Costs, stated: metrics.json appears only when the last member finishes; until the run finishes the
snapshots take ``4 x params x K x evaluations`` bytes of disk (``auto`` does not pick this layout above
``SNAPSHOT_LIMIT``; members.py). Resumable at any step: ckpt.pt holds the member in training (model,
optimizer, RNG, its step) and every member's training-loss records; finished members' snapshots are files.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from repetita.errors import UserError
from repetita.io import save_torch, write_json
from repetita.lm.ensemble import history_row
from repetita.lm.model import GPT, ModelConfig
from repetita.lm.trainer import Callback, StopAt, Trainer

SNAPSHOT_LIMIT = 2 * 2**30  # bytes of snapshots above which ``auto`` does not train members in turn


def snapshot_bytes(params: int, members: int, evaluations: int) -> int:
    """Disk the snapshots of a run take until it finishes (fp32 weights of every member at every evaluation)."""
    return 4 * int(params) * int(members) * int(evaluations)


def _snapshot(out: Path, member: int, step: int) -> Path:
    return out / "snapshots" / str(member) / f"{step}.pt"


class _Member(Callback):
    """Member m's weights at the evaluation steps, and its mean training-batch loss and learning rate
    since the previous evaluation step (what ``history_row`` reports for the ensemble)."""

    name = "sequential"

    def __init__(self, member: int, records: dict, eval_at: list[int], out: Path):
        self.member, self.records, self.eval_at, self.out = member, records, set(eval_at), out
        self.records.setdefault(member, {})
        self.recent: list[float] = []

    def on_step(self, trainer, step):
        self.recent.append(step.loss)
        if step.step in self.eval_at:
            save_torch(trainer.model.state_dict(), _snapshot(self.out, self.member, step.step))
            self.records[self.member][step.step] = {"loss": float(np.mean(self.recent)), "lr": step.lr}
            self.recent = []

    def state_dict(self):
        return {"sequential": {"member": self.member, "records": self.records, "recent": self.recent}}

    def load_state_dict(self, state):
        s = state["sequential"]
        self.records.clear()
        self.records.update(s["records"])
        self.records.setdefault(self.member, {})
        self.recent = list(s["recent"])


def train_members(model: GPT, config, data, out: Path, *, state: dict | None, total: int, eval_at: list[int],
                  callbacks: list[Callback], stop_at_step: int | None, device: str, autocast, progress,
                  new_trainer: Callable[[int, list[Callback]], Trainer]) -> tuple[str, int, list[dict], GPT | None]:
    """Train members ``0..K-1`` in turn on ``model`` (a one-member GPT), then evaluate the ensemble.

    ``new_trainer(m, callbacks)`` returns the trainer of member m (a fresh optimizer, member m's batches).
    ``stop_at_step`` counts the steps of all members together (member m's step s is ``m * total + s``).
    Returns ``(status, steps done, history, the K members as one batched model)``; the history is
    empty and the model None unless finished.
    """
    K = config.members
    seq = (state or {}).get("sequential")
    start = int(seq["member"]) if seq else 0
    records: dict = dict(seq["records"]) if seq else {}
    ckpt_path = out / "ckpt.pt"
    for m in range(start, K):
        member = _Member(m, records, eval_at, out)
        cbs: list[Callback] = [member, *callbacks]
        if stop_at_step is not None:
            cbs.append(StopAt(stop_at_step - m * total))
        run = new_trainer(m, cbs)
        if seq and m == start and "model" in state:
            run.load_state_dict(state)  # mid-member: its weights, optimizer, RNG and step
        else:
            torch.manual_seed(config.seed + m)
            model.reset_parameters(config.seed + m)  # member m of GPT(members=K, seed) is a lone model seeded seed + m
        progress.offset = m * total
        if run.run() == "stopped":
            save_torch(run.state_dict(), ckpt_path)
            return "stopped", m * total + run.step, [], None
        # Between members the checkpoint holds the records only: a resume starts the next member afresh.
        save_torch({"ensemble_mode": "sequential", "sequential": {"member": m + 1, "records": records, "recent": []}},
                   ckpt_path)
    history, final = evaluate_snapshots(out, model.config, config, data, records, eval_at, device, autocast)
    return "finished", K * total, history, final


def stacked(out: Path, mc: ModelConfig, members: int, step: int) -> GPT:
    """The K members' snapshots at ``step`` as one batched model."""
    states = [_load(_snapshot(out, m, step)) for m in range(members)]
    model = GPT(mc, members=members)
    model.load_state_dict({k: torch.cat([s[k] for s in states], 0) for k in states[0]})
    return model


def _load(path: Path) -> dict:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise UserError(f"{path}: a trained member's snapshot is missing; the member must be retrained "
                        "(delete the run folder and start again)") from None
    except (RuntimeError, EOFError, OSError, pickle.UnpicklingError) as exc:  # damaged zip or pickle
        raise UserError(f"{path}: cannot read this member's snapshot ({type(exc).__name__}); delete the run "
                        "folder and start again") from None


def evaluate_snapshots(out: Path, mc: ModelConfig, config, data, records: dict, eval_at: list[int], device: str,
                       autocast) -> tuple[list[dict], GPT]:
    """The run's history from the snapshots, one ``history_row`` per evaluation step (metrics.json), and
    the stacked model of the last step (the run's final members)."""
    history, ens = [], None
    for step in sorted(eval_at):
        ens = stacked(out, mc, config.members, step).to(device)
        rec = [records[m][step] for m in range(config.members)]
        # The batched layout's train_batch_loss averages the members' losses at every step, then the
        # steps: with equal step counts that is the mean of the members' means.
        history.append(history_row(ens, data, config.batch_size, step, rec[0]["lr"],
                                   float(np.mean([r["loss"] for r in rec])), device, autocast))
        write_json(out / "metrics.json", history)
    return history, ens
