"""Distillation: a finished run (single model or batched ensemble) teaches a student.

Token level (Hinton et al. 2015): loss = (1 - alpha) * CE(data) + alpha * tau^2 * KL(p_teacher || p_student),
with both distributions at temperature tau; the teacher's distribution is its ensemble combination.
Sequence level (Kim & Rush 2016; the mix of real and teacher-generated data used by Kim et al. 2025):
the teacher samples whole windows, seeded by the first token of a real training window, and the student
trains on batches that mix real windows and those samples. Self-distillation is the case where the teacher
has the student's size.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from repetita.errors import UserError, require
from repetita.io import read_json
from repetita.lm.ensemble import combine_logprobs
from repetita.lm.model import GPT, ModelConfig


def load_run_model(run_dir: str | Path, device: str = "cpu") -> tuple[GPT, dict]:
    """The final model of a finished run directory, and its result dict."""
    run_dir = Path(run_dir)
    require((run_dir / "result.json").exists() and (run_dir / "model.pt").exists(),
            f"teacher {run_dir} is not a finished run (no result.json / model.pt)")
    result = read_json(run_dir / "result.json", "run result")
    try:
        blob = torch.load(run_dir / "model.pt", map_location=device, weights_only=True)
        model = GPT(ModelConfig(**blob["model_config"]), members=blob["members"]).to(device)
        model.load_state_dict(blob["state"])
    except (RuntimeError, EOFError, OSError, KeyError, TypeError, pickle.UnpicklingError) as exc:
        raise UserError(f"{run_dir / 'model.pt'}: cannot read this run's model ({type(exc).__name__}); train the "
                        "run again (delete its folder)") from None
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model, result


def teacher_logprobs(teacher: GPT, x: torch.Tensor, combiner: str = "logits") -> torch.Tensor:
    """Teacher log-probs for student inputs x [M, B, T] -> [M, B, T, V] (members share the teacher)."""
    M, B, T = x.shape
    flat = x.reshape(1, M * B, T).expand(teacher.members, M * B, T)
    with torch.no_grad():
        lp = combine_logprobs(teacher(flat), combiner)  # [M*B, T, V]
    return lp.view(M, B, T, -1)


def kd_loss(student_logits: torch.Tensor, teacher_lp: torch.Tensor, temperature: float) -> torch.Tensor:
    """Per-member mean token KL(teacher || student) at ``temperature``, scaled by tau^2 -> [M]."""
    t = temperature
    s_lp = F.log_softmax(student_logits.float() / t, dim=-1)
    p_lp = F.log_softmax(teacher_lp / t, dim=-1) if t != 1.0 else teacher_lp
    kl = (p_lp.exp() * (p_lp - s_lp)).sum(-1)  # [M, B, T]
    return kl.flatten(1).mean(1) * t * t


@torch.no_grad()
def sample_windows(teacher: GPT, first_tokens: np.ndarray, length: int, seed: int, combiner: str = "logits",
                   temperature: float = 1.0, chunk: int = 256, device: str = "cpu") -> np.ndarray:
    """Ancestral samples of ``length`` tokens after each first token -> [S, length + 1] int64 windows."""
    g = torch.Generator(device="cpu").manual_seed(int(seed))
    out = []
    for i in range(0, len(first_tokens), chunk):
        seq = torch.as_tensor(first_tokens[i : i + chunk], dtype=torch.long, device=device)[:, None]
        for _ in range(length):
            ctx = seq[:, -teacher.config.context :]
            lp = combine_logprobs(teacher(ctx.unsqueeze(0).expand(teacher.members, *ctx.shape)), combiner)
            probs = F.softmax(lp[:, -1, :] / temperature, dim=-1).cpu()
            nxt = torch.multinomial(probs, 1, generator=g).to(device)
            seq = torch.cat([seq, nxt], dim=1)
        out.append(seq.cpu().numpy())
    return np.concatenate(out).astype(np.int64)
