"""How an ensemble is trained: one batched model, K models stepped side by side, or K lone runs in turn.

All three give every member the trajectory of a lone run (the batched model by construction, model.py;
the others trivially), so the choice is about speed only and is not part of a run's id. Which is
faster depends on the shape and device: batching removes per-operation overhead and should win for
small members on a GPU, but at 2,048 tokens per member per step on a CPU its K-fold activations fall
out of cache and it lost to separate runs (0.87x at K = 4, 0.69x at K = 8 with d 64; BENCHMARKS.md);
side by side removes that but still keeps K models in the working set (0.89-0.92x); training the
members in turn (sequential.py) is K lone runs by construction, plus snapshots and one evaluation pass.

``ensemble = "auto"``: a run too short for a calibration to pay (``CALIBRATE_FROM`` steps) trains the
members in turn, which costs what K separate runs cost; a longer run times a few steps of each layout
on the real shape and device and keeps the fastest. Training in turn is left out when its snapshots
would exceed ``sequential.SNAPSHOT_LIMIT`` of disk.
"""

from __future__ import annotations

import contextlib
import time

import torch
from torch import nn

from repetita.errors import require
from repetita.lm.model import GPT, ModelConfig
from repetita.lm.sequential import SNAPSHOT_LIMIT, snapshot_bytes

ENSEMBLE_MODES = ("auto", "batched", "separate", "sequential")
LAYOUTS = ENSEMBLE_MODES[1:]
# The calibration times 2 x 4 steps of each of the three layouts, about 24 ensemble steps. From 1,000
# steps on that is under 2.5 % of the run, which the gains measured on the CPU (up to 11 % for side by
# side at K = 2, BENCHMARKS.md) and the batching gains expected on a GPU repay; below it the run trains
# in turn, which costs what K separate runs cost.
CALIBRATE_FROM = 1000
_CHOICES: dict[tuple, dict] = {}  # (shape, K, batch, device, threads, dtype) -> calibration, per process


class Members(nn.Module):
    """K one-member GPTs behind the batched model's interface: ``forward(idx [K, B, T])``."""

    def __init__(self, config: ModelConfig, members: int, seed: int = 0):
        super().__init__()
        require(members >= 1, f"members={members} must be >= 1")
        self.config, self.members = config, members
        # Member m is a lone model seeded seed + m: the same initial weights as member m of GPT(members=K).
        self.models = nn.ModuleList([GPT(config, members=1, seed=seed + m) for m in range(members)])

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None):
        require(idx.dim() == 3 and idx.shape[0] == self.members,
                f"input must be [members={self.members}, B, T], got {tuple(idx.shape)}")
        if targets is None:
            return torch.cat([m(idx[i : i + 1]) for i, m in enumerate(self.models)])
        outs = [m(idx[i : i + 1], targets[i : i + 1]) for i, m in enumerate(self.models)]
        return torch.cat([o[0] for o in outs]), torch.cat([o[1] for o in outs])

    def member_parameters(self) -> list[list[nn.Parameter]]:
        """Each member's parameters (the trainer clips each member's gradient on its own)."""
        return [[p for p in m.parameters() if p.requires_grad] for m in self.models]

    def param_groups(self, weight_decay: float) -> list[dict]:
        groups = [m.param_groups(weight_decay) for m in self.models]
        return [{"params": [p for g in groups for p in g[j]["params"]], "weight_decay": groups[0][j]["weight_decay"]}
                for j in range(len(groups[0]))]

    def num_params(self, non_embedding: bool = False) -> int:
        return self.models[0].num_params(non_embedding)

    def to_batched(self) -> GPT:
        """The same members as one batched GPT (the format of model.pt, whatever the training mode)."""
        return GPT.stack(list(self.models))


def build(config: ModelConfig, members: int, seed: int, mode: str) -> nn.Module:
    """The model a layout trains: the batched GPT, ``Members``, or one lone GPT (members in turn)."""
    require(mode in LAYOUTS, f"ensemble mode {mode!r} must be one of {', '.join(LAYOUTS)}")
    if mode == "separate" and members > 1:
        return Members(config, members, seed)
    if mode == "sequential":
        return GPT(config, members=1, seed=seed)
    return GPT(config, members=members, seed=seed)


def _time_steps(model: nn.Module, batch: int, device: str, autocast, steps: int) -> float:
    opt = torch.optim.AdamW(model.param_groups(0.1), lr=1e-4)
    c = model.config
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, c.vocab_size, (model.members, batch, c.context + 1), generator=g).to(device)
    best = float("inf")
    for i in range(steps + 1):  # the first step warms caches and allocators; not counted
        if device == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        with autocast() if autocast else contextlib.nullcontext():
            _, loss = model(x[..., :-1], x[..., 1:])
        opt.zero_grad(set_to_none=True)
        loss.sum().backward()
        opt.step()
        if device == "cuda":
            torch.cuda.synchronize()
        if i:
            best = min(best, time.perf_counter() - t)
    return best


def choose(config: ModelConfig, members: int, batch: int, device: str = "cpu", autocast=None,
           steps: int = 3, total_steps: int | None = None, evaluations: int = 1) -> dict:
    """Pick the layout of a ``members``-model ensemble for a run of ``total_steps`` steps.

    A run shorter than ``CALIBRATE_FROM`` steps trains in turn (no timing). Otherwise ``steps``
    training steps of each layout are timed (best step each, layouts alternated twice); the layout
    in turn is timed as one lone model's step times K. Timings are cached per process by shape, K,
    batch, device and thread count, so a study's many runs of one shape calibrate once. Returns
    ``{"mode", "batched_s", "separate_s", "sequential_s"}`` (seconds per ensemble step, None if not
    timed) and ``"reason"`` when no timing decided.
    """
    if members == 1:
        return {"mode": "batched"}
    params = GPT(config, members=1).num_params()
    in_turn = snapshot_bytes(params, members, evaluations) <= SNAPSHOT_LIMIT
    if total_steps is not None and total_steps < CALIBRATE_FROM and in_turn:
        return {"mode": "sequential", "reason": f"{total_steps} steps: too short to calibrate; "
                                                "members in turn cost what separate runs cost"}
    key = (tuple(sorted(config.to_dict().items())), members, batch, device, torch.get_num_threads(),
           autocast is not None)
    if key not in _CHOICES:
        state = torch.get_rng_state()
        times = {mode: [] for mode in LAYOUTS}
        for _ in range(2):  # alternate so that a load change on a shared machine hits all layouts
            for mode in times:
                model = build(config, members, 0, mode).to(device)
                k = members if mode == "sequential" else 1  # one lone model's step, K times
                times[mode].append(k * _time_steps(model, batch, device, autocast, steps))
                del model
        torch.set_rng_state(state)  # calibration must not shift the run's random stream
        _CHOICES[key] = {f"{mode}_s": min(t) for mode, t in times.items()}
    timed = dict(_CHOICES[key])
    allowed = [m for m in LAYOUTS if m != "sequential" or in_turn]
    out = {"mode": min(allowed, key=lambda m: timed[f"{m}_s"])} | timed
    if not in_turn:
        out["reason"] = "members in turn left out: their snapshots would exceed the disk limit"
    return out
