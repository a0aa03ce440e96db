"""A compact GPT whose every weight carries a leading member axis, so K ensemble members train as one model.

A single model is the case ``members=1``. Each linear layer is a batched matmul over members
(``torch.bmm`` on [M, B*T, d] x [M, d, o]), so K members share one kernel launch per layer instead of K.
That saves per-operation overhead: measured on a 2-core CPU it makes tiny members 1.5-2.6x cheaper than
separate runs, but at d 64 with 2,048 tokens per member per step it is slower for K >= 4 (cache pressure);
see BENCHMARKS.md. Members never exchange information: the loss is a sum of per-member
losses, AdamW is elementwise and gradient clipping is per member (train.py), so member m trained inside
the batch follows the same trajectory as a separate run with seed ``seed + m``.

Architecture: pre-norm blocks (LayerNorm without bias), causal multi-head attention with RoPE (Su et al.
2021) or learned positions, GELU MLP, no biases, optional tied input/output embeddings.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from repetita.errors import require
from repetita.lm.config import ModelConfig

__all__ = ["GPT", "IGNORE", "ModelConfig", "member_loss", "token_nll"]

IGNORE = -100  # target value that takes no part in the loss (prompt tokens, padding)


def token_nll(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Per-token cross-entropy (nats) in fp32, same shape as ``targets``; 0 where the target is IGNORE.

    The one place the LM loss is computed: training (``GPT.forward``) and evaluation (ensemble.py) call it.
    """
    flat = F.cross_entropy(logits.float().flatten(0, -2), targets.flatten(), reduction="none", ignore_index=IGNORE)
    return flat.view(targets.shape)


def member_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """[M, ...] logits and targets -> [M] mean loss of each member over its counted targets."""
    M = targets.shape[0]
    nll = token_nll(logits, targets).view(M, -1)
    counted = targets.reshape(M, -1) != IGNORE
    if bool(counted.all()):
        return nll.mean(1)
    return nll.sum(1) / counted.sum(1).clamp(min=1)


def _rope_tables(T: int, hd: int, base: float = 10000.0) -> tuple[torch.Tensor, torch.Tensor]:
    inv = 1.0 / base ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd)
    ang = torch.arange(T, dtype=torch.float64)[:, None] * inv[None, :]
    return torch.cos(ang).float(), torch.sin(ang).float()


def _apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    # x: [..., T, hd]; rotate pairs (x1, x2) = halves of the head dimension.
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)


def _layer_norm(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    # x: [M, ..., d], w: [M, d]; no bias (norm gains are the only norm parameters).
    y = F.layer_norm(x, x.shape[-1:])
    return y * w.view(w.shape[0], *([1] * (x.dim() - 2)), w.shape[1])


class GPT(nn.Module):
    """K members of one architecture.

    ``forward(idx [M, B, T]) -> logits [M, B, T, V]``; ``forward(idx, targets)`` -> (logits, loss [M]),
    each member's mean cross-entropy over the targets that are not ``IGNORE``.
    """

    def __init__(self, config: ModelConfig, members: int = 1, seed: int = 0):
        super().__init__()
        require(members >= 1, f"members={members} must be >= 1")
        self.config, self.members = config, members
        c, M = config, members
        d, h = c.d_model, c.mlp_ratio * c.d_model
        self.wte = nn.Parameter(torch.empty(M, c.vocab_size, d))
        self.wpe = nn.Parameter(torch.empty(M, c.context, d)) if c.pos == "learned" else None
        self.ln1 = nn.ParameterList([nn.Parameter(torch.ones(M, d)) for _ in range(c.n_layer)])
        self.ln2 = nn.ParameterList([nn.Parameter(torch.ones(M, d)) for _ in range(c.n_layer)])
        self.qkv = nn.ParameterList([nn.Parameter(torch.empty(M, d, 3 * d)) for _ in range(c.n_layer)])
        self.proj = nn.ParameterList([nn.Parameter(torch.empty(M, d, d)) for _ in range(c.n_layer)])
        self.fc = nn.ParameterList([nn.Parameter(torch.empty(M, d, h)) for _ in range(c.n_layer)])
        self.fc2 = nn.ParameterList([nn.Parameter(torch.empty(M, h, d)) for _ in range(c.n_layer)])
        self.ln_f = nn.Parameter(torch.ones(M, d))
        self.head = None if c.tie_embeddings else nn.Parameter(torch.empty(M, d, c.vocab_size))
        if c.pos == "rope":
            cos, sin = _rope_tables(c.context, d // c.n_head)
            self.register_buffer("rope_cos", cos, persistent=False)
            self.register_buffer("rope_sin", sin, persistent=False)
        self.reset_parameters(seed)

    @torch.no_grad()
    def reset_parameters(self, seed: int) -> None:
        """Member m is initialised from its own generator seeded ``seed + m``, so it equals a lone model."""
        c = self.config
        for m in range(self.members):
            g = torch.Generator().manual_seed(int(seed) + m)
            for p in self._init_order():
                std = 0.02
                if any(p is q for q in list(self.proj) + list(self.fc2)):
                    std = 0.02 / math.sqrt(2 * c.n_layer)  # residual-branch scaling (GPT-2)
                if p.dim() == 2:  # norm gains
                    p[m].fill_(1.0)
                else:
                    p[m].copy_(torch.randn(p.shape[1:], generator=g) * std)

    def _init_order(self) -> list[nn.Parameter]:
        ps = [self.wte] + ([self.wpe] if self.wpe is not None else [])
        for i in range(self.config.n_layer):
            ps += [self.ln1[i], self.qkv[i], self.proj[i], self.ln2[i], self.fc[i], self.fc2[i]]
        ps += [self.ln_f] + ([self.head] if self.head is not None else [])
        return ps

    def num_params(self, non_embedding: bool = False) -> int:
        """Parameters of one member: the scaling-law N (total, tied embeddings counted once)."""
        n = sum(p[0].numel() for p in self.parameters())
        if non_embedding:
            n -= self.wte[0].numel() + (self.wpe[0].numel() if self.wpe is not None else 0)
            if self.head is not None:
                n -= self.head[0].numel()
        return int(n)

    def param_groups(self, weight_decay: float) -> list[dict]:
        """Decoupled weight decay on matrices only: norms and embeddings are not decayed."""
        no_decay = {id(self.wte), id(self.ln_f)} | {id(p) for p in list(self.ln1) + list(self.ln2)}
        if self.wpe is not None:
            no_decay.add(id(self.wpe))
        decay = [p for p in self.parameters() if id(p) not in no_decay]
        other = [p for p in self.parameters() if id(p) in no_decay]
        return [{"params": decay, "weight_decay": weight_decay}, {"params": other, "weight_decay": 0.0}]

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None):
        logits = self._logits(idx)
        if targets is None:
            return logits
        return logits, member_loss(logits, targets)

    def _logits(self, idx: torch.Tensor) -> torch.Tensor:
        c, M = self.config, self.members
        require(idx.dim() == 3 and idx.shape[0] == M, f"input must be [members={M}, B, T], got {tuple(idx.shape)}")
        _, B, T = idx.shape
        require(T <= c.context, f"sequence length {T} exceeds context {c.context}")
        H, hd = c.n_head, c.d_model // c.n_head
        ar = torch.arange(M, device=idx.device)[:, None, None]
        x = self.wte[ar, idx]  # [M, B, T, d]
        if self.wpe is not None:
            x = x + self.wpe[:, None, :T, :]
        for i in range(c.n_layer):
            a = _layer_norm(x, self.ln1[i]).reshape(M, B * T, -1)
            qkv = torch.bmm(a, self.qkv[i]).view(M * B, T, 3, H, hd).permute(2, 0, 3, 1, 4)
            q, k, v = qkv[0], qkv[1], qkv[2]  # [M*B, H, T, hd]
            if self.wpe is None:
                cos, sin = self.rope_cos[:T].to(q.dtype), self.rope_sin[:T].to(q.dtype)
                q, k = _apply_rope(q, cos, sin), _apply_rope(k, cos, sin)
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            y = y.transpose(1, 2).reshape(M, B * T, c.d_model)
            x = x + torch.bmm(y, self.proj[i]).view(M, B, T, -1)
            a = _layer_norm(x, self.ln2[i]).reshape(M, B * T, -1)
            x = x + torch.bmm(F.gelu(torch.bmm(a, self.fc[i])), self.fc2[i]).view(M, B, T, -1)
        x = _layer_norm(x, self.ln_f).reshape(M, B * T, -1)
        w_out = self.wte.transpose(1, 2) if self.head is None else self.head
        return torch.bmm(x, w_out).view(M, B, T, -1)

    @torch.no_grad()
    def member_state(self, m: int) -> dict[str, torch.Tensor]:
        """The state dict of member m alone (loadable into a ``GPT(config, members=1)``)."""
        return {k: v[m : m + 1].clone() for k, v in self.state_dict().items()}

    @classmethod
    def stack(cls, models: list[GPT]) -> GPT:
        """One batched model whose member i is ``models[i]`` (each with members=1)."""
        out = cls(models[0].config, members=len(models))
        sd = {k: torch.cat([m.state_dict()[k] for m in models], 0) for k in models[0].state_dict()}
        out.load_state_dict(sd)
        return out
