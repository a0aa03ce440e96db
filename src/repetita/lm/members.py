"""How an ensemble is trained: one batched model, or K separate models stepped side by side.

Both give every member the trajectory of a lone run (the batched model by construction, model.py;
separate models trivially), so the choice is about speed only and is not part of a run's id. Which is
faster depends on the shape: batching removes per-operation overhead and wins for small members, but
at 2,048 tokens per member per step on a CPU its K-fold activations fall out of cache and it lost to
separate runs (0.87x at K = 4, 0.69x at K = 8 with d 64; BENCHMARKS.md). ``ensemble = "auto"`` times
a few steps of both on the real shape and device and keeps the faster. Side by side is not the same
as K runs one after the other: all K models stay in the working set, which cost 8-11 % at K = 4 on
the CPU (BENCHMARKS.md); training members sequentially and evaluating the ensemble afterwards would
remove that and is not built.
"""

from __future__ import annotations

import contextlib
import time

import torch
from torch import nn

from repetita.errors import require
from repetita.lm.model import GPT, ModelConfig

ENSEMBLE_MODES = ("auto", "batched", "separate")
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
    require(mode in ("batched", "separate"), f"ensemble mode {mode!r} must be 'batched' or 'separate'")
    if mode == "separate" and members > 1:
        return Members(config, members, seed)
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
           steps: int = 3) -> dict:
    """Time ``steps`` training steps of both modes (best step each, alternated) and pick the faster.

    Cached per process by shape, K, batch, device and thread count, so a study's many runs of one
    shape calibrate once. Returns ``{"mode", "batched_s", "separate_s"}`` (seconds per step).
    """
    key = (tuple(sorted(config.to_dict().items())), members, batch, device, torch.get_num_threads(),
           autocast is not None)
    if members == 1:
        return {"mode": "batched", "batched_s": None, "separate_s": None}
    if key not in _CHOICES:
        state = torch.get_rng_state()
        times = {"batched": [], "separate": []}
        for _ in range(2):  # alternate so that a load change on a shared machine hits both
            for mode in times:
                model = build(config, members, 0, mode).to(device)
                times[mode].append(_time_steps(model, batch, device, autocast, steps))
                del model
        torch.set_rng_state(state)  # calibration must not shift the run's random stream
        b, s = min(times["batched"]), min(times["separate"])
        _CHOICES[key] = {"mode": "batched" if b <= s else "separate", "batched_s": b, "separate_s": s}
    return dict(_CHOICES[key])
