"""``TrainConfig`` (everything that determines one run; JSON round-trippable, with a stable content hash)
and ``ModelConfig`` (the architecture). Neither imports torch: configs are validated, hashed and
stored by the study engine on installs without the ``lm`` extra.
"""

from __future__ import annotations

import hashlib
import json
import math
import typing
from dataclasses import asdict, dataclass, fields
from typing import ClassVar

from repetita.errors import UserError, require
from repetita.lm.data import parse_tokenizer
from repetita.schedules import SCHEDULES

COMBINERS = ("logits", "probs")  # how ensemble members' predictions are combined (ensemble.py)
# Fields that do not change what a run computes: kept in the stored config, left out of the run id, so
# evaluating more often, checkpointing more often or moving to another device finds the same finished run.
# (The device, compilation, the fused AdamW and the thread count change results only by floating-point
# rounding; a run reproduces bit for bit on the same device and settings.)
BOOKKEEPING = ("eval_every", "checkpoint_every", "device", "compile", "adamw", "threads")
# Bookkeeping fields older configs carry and this version ignores: the members' layout of an ensemble
# trained as one run (an ensemble is now K member runs, recipes.py).
RETIRED = ("ensemble",)


@dataclass(frozen=True)
class ModelConfig:
    vocab_size: int = 512
    context: int = 64
    n_layer: int = 2
    n_head: int = 4
    d_model: int = 64
    mlp_ratio: int = 4
    pos: str = "rope"  # "rope" | "learned"
    tie_embeddings: bool = True

    def __post_init__(self):
        require(self.vocab_size >= 2, f"vocab_size={self.vocab_size} must be >= 2")
        require(self.context >= 2, f"context={self.context} must be >= 2")
        require(self.n_layer >= 1, f"n_layer={self.n_layer} must be >= 1")
        require(self.n_head >= 1 and self.d_model % self.n_head == 0,
                f"d_model={self.d_model} must be a multiple of n_head={self.n_head}")
        require(self.pos in ("rope", "learned"), f"pos={self.pos!r} must be 'rope' or 'learned'")
        require(self.pos != "rope" or (self.d_model // self.n_head) % 2 == 0,
                f"rope needs an even head size, got {self.d_model // self.n_head}")
        require(self.mlp_ratio >= 1, f"mlp_ratio={self.mlp_ratio} must be >= 1")

    def to_dict(self) -> dict:
        return asdict(self)


def _check_types(obj) -> None:
    """A JSON config can hold a string where a number belongs: name the field instead of a TypeError later."""
    hints = typing.get_type_hints(type(obj))
    for f in fields(obj):
        v = getattr(obj, f.name)
        tp = hints[f.name]
        allowed = typing.get_args(tp) or (tp,)
        if v is None and type(None) in allowed:
            continue
        ok = any(
            (a is float and isinstance(v, int | float) and not isinstance(v, bool))
            or (a is int and isinstance(v, int) and not isinstance(v, bool))
            or (a is bool and isinstance(v, bool))
            or (a is str and isinstance(v, str))
            for a in allowed
        )
        names = " or ".join("null" if a is type(None) else a.__name__ for a in allowed)
        require(ok, f"{f.name}={v!r} has the wrong type (expected {names})")


@dataclass(frozen=True)
class TrainConfig:
    kind: ClassVar[str] = "lm"  # the kind of study run (repetita.study.kinds); not a field, not in the id
    # data
    corpus: str = "shakespeare"
    tokenizer: str = "bpe:512"
    context: int = 64
    unique_tokens: int | None = 65536  # U; None = the whole training pool
    epochs: float = 4.0  # may be fractional
    val_fraction: float = 0.05
    val_tokens: int | None = 32768  # evaluation set size (a fixed prefix of the validation split)
    split_seed: int = 0
    # model
    n_layer: int = 2
    n_head: int = 4
    d_model: int = 64
    mlp_ratio: int = 4
    pos: str = "rope"
    tie_embeddings: bool = True
    members: int = 1  # >1: an ensemble of the one-model runs ``member_configs()`` (seeds seed..seed+K-1)
    seed: int = 0
    # optimisation
    batch_size: int = 32
    lr: float = 3e-3
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    schedule: str = "cosine"
    warmup_frac: float = 0.05
    grad_clip: float = 1.0
    # distillation (teacher = a finished run directory; see distill.py)
    teacher: str | None = None
    distill_alpha: float = 0.0  # weight of token-level KL(teacher || student) vs the data loss
    distill_temperature: float = 1.0
    seq_distill_frac: float = 0.0  # fraction of each batch made of teacher samples (sequence-level KD)
    teacher_samples: int | None = None  # sampled windows; None = as many as the real training windows
    teacher_combiner: str = "logits"
    # bookkeeping
    recipe: str = "standard"  # label carried into the tidy rows
    eval_every: int = 0  # extra evaluations every N steps (evaluations at each epoch end always happen)
    checkpoint_every: int = 200
    device: str = "auto"  # auto | cpu | cuda
    dtype: str = "auto"  # auto (bf16 autocast on CUDA, fp32 on CPU) | fp32 | bf16
    compile: bool = False  # torch.compile the model's forward (a speed option; probed before training starts)
    adamw: str = "auto"  # AdamW implementation: auto | for-loop | foreach | fused (train.py: ADAMW_AUTO)
    # torch intra-op CPU threads. One by default: with more, float reductions run in a thread-dependent
    # order and two runs of one seed drift apart (measured: from step 32 at 2 threads), so only one
    # thread reproduces a run bit for bit.
    threads: int = 1

    def __post_init__(self):
        _check_types(self)
        if self.corpus.startswith("markov"):
            from repetita.lm.corpora import markov_options

            markov_options(self.corpus.partition(":")[2])
        else:
            parse_tokenizer(self.tokenizer)
        require(8 <= self.context <= 4096, f"context={self.context} must be in [8, 4096]")
        require(self.unique_tokens is None or self.unique_tokens >= self.context,
                f"unique_tokens={self.unique_tokens} must be >= context={self.context}")
        require(math.isfinite(self.epochs) and self.epochs > 0, f"epochs={self.epochs} must be > 0")
        require(0 < self.val_fraction < 0.5, f"val_fraction={self.val_fraction} must be in (0, 0.5)")
        require(self.members >= 1, f"members={self.members} must be >= 1")
        require(self.batch_size >= 1, f"batch_size={self.batch_size} must be >= 1")
        require(self.lr > 0, f"lr={self.lr} must be > 0")
        require(self.weight_decay >= 0, f"weight_decay={self.weight_decay} must be >= 0")
        require(0 <= self.beta1 < 1 and 0 <= self.beta2 < 1, "beta1 and beta2 must be in [0, 1)")
        require(self.schedule in SCHEDULES, f"schedule={self.schedule!r} must be one of {sorted(SCHEDULES)}")
        require(0 <= self.warmup_frac < 1, f"warmup_frac={self.warmup_frac} must be in [0, 1)")
        require(self.grad_clip >= 0, f"grad_clip={self.grad_clip} must be >= 0 (0 disables)")
        require(0 <= self.distill_alpha <= 1, f"distill_alpha={self.distill_alpha} must be in [0, 1]")
        require(self.distill_temperature > 0, f"distill_temperature={self.distill_temperature} must be > 0")
        require(0 <= self.seq_distill_frac < 1, f"seq_distill_frac={self.seq_distill_frac} must be in [0, 1)")
        require(self.teacher is not None or (self.distill_alpha == 0 and self.seq_distill_frac == 0),
                "distill_alpha / seq_distill_frac need a teacher run directory")
        require(self.teacher_combiner in COMBINERS, f"teacher_combiner must be one of {COMBINERS}")
        require(self.device in ("auto", "cpu", "cuda"), f"device={self.device!r} must be auto, cpu or cuda")
        require(self.dtype in ("auto", "fp32", "bf16"), f"dtype={self.dtype!r} must be auto, fp32 or bf16")
        require(self.adamw in ("auto", "for-loop", "foreach", "fused"),
                f"adamw={self.adamw!r} must be auto, for-loop, foreach or fused")
        require(self.eval_every >= 0 and self.checkpoint_every >= 1, "eval_every >= 0, checkpoint_every >= 1")
        require(1 <= self.threads <= 1024, f"threads={self.threads} must be in [1, 1024]")
        self.model_config(vocab_size=2)  # validates the architecture fields

    def model_config(self, vocab_size: int) -> ModelConfig:
        return ModelConfig(vocab_size=vocab_size, context=self.context, n_layer=self.n_layer, n_head=self.n_head,
                           d_model=self.d_model, mlp_ratio=self.mlp_ratio, pos=self.pos,
                           tie_embeddings=self.tie_embeddings)

    def to_dict(self) -> dict:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        d = {k: v for k, v in d.items() if k not in RETIRED}
        unknown = sorted(set(d) - known)
        if unknown:
            raise UserError(f"unknown TrainConfig key(s): {', '.join(unknown)}")
        return cls(**d)

    @classmethod
    def from_json(cls, s: str) -> TrainConfig:
        return cls.from_dict(json.loads(s))

    @property
    def hash(self) -> str:
        """Content hash of the fields that change results (all but ``BOOKKEEPING``): the run id."""
        d = {k: v for k, v in self.to_dict().items() if k not in BOOKKEEPING}
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]

    def replace(self, **changes) -> TrainConfig:
        return TrainConfig.from_dict(self.to_dict() | changes)

    def member_configs(self) -> tuple[TrainConfig, ...]:
        """The one-model runs an ensemble is made of: this config with members=1 and seeds seed..seed+K-1.
        They do not depend on K, so ensembles of 4 and 8 of one cell share their first 4 members."""
        if self.members == 1:
            return ()
        return tuple(self.replace(members=1, seed=self.seed + m) for m in range(self.members))
