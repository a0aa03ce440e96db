"""Skill composition as a sequence task, trained with the LM lab's GPT (after Wang, Dang, Lee, Lyu 2026).

Skills ``s = 0..d-1`` are affine maps on ``Z_p``: ``f_s(x) = (a_s x + b_s) mod p`` with ``a_s != 0`` (so
each map is a bijection and no step destroys information about the start value). An example is

    x0  s_1 ... s_k  =  y        with  y = f_{s_k}( ... f_{s_1}(x0) ... )

as tokens: ``p`` value tokens, ``d`` skill tokens and ``=``. The ``k`` positions are drawn by the
sampler of the multiplicative testbed in ``composition.py``: independently by default (a skill may
repeat, the theorem's setting), or ``k`` distinct skills (``sampling="distinct"``), then placed in a
uniformly random order, because affine maps do not commute and the order is part of the input. Training skills follow ``pi_s ∝ (s+1)^-a`` (``a = 0`` uniform); the test set is uniform over
ordered k-sets. Loss and accuracy count only the answer token (with ``scratchpad`` the intermediate
values ``y_1..y_k`` are written after ``=`` and also trained on; at test time they are decoded
greedily, so the answer is still the model's own k-step computation).

Wang et al. argue that a skewed skill mix lets a learner solve the frequent skills first (their
combinations recur often) and then bootstrap the rare ones from examples that mix a rare skill with
known ones, while a uniform mix spreads the signal thinly over all ``d^k`` combinations. The
question here is whether that shows up for a small transformer trained online with AdamW: samples to
reach a test-accuracy level, uniform vs power law, on the same task, test set and initial weights.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

import numpy as np

from repetita.data_mix.composition import check_task, sample_sets, skill_probs
from repetita.errors import require


def is_prime(n: int) -> bool:
    return n >= 2 and all(n % q for q in range(2, math.isqrt(n) + 1))


@dataclass(frozen=True)
class SequenceConfig:
    p: int = 17  # modulus (prime): value tokens 0..p-1
    skills: int = 8  # number of skills d
    k: int = 2  # skills per example
    exponent: float = 1.0  # power-law exponent a of the training skills (0 = uniform)
    samples: int = 200_000  # training examples seen (one pass, a fresh batch every step)
    batch: int = 64
    lr: float = 3e-3
    weight_decay: float = 0.0
    warmup: int = 100  # linear warm-up steps, then a constant rate (a decay would tie the curve to the budget)
    n_layer: int = 2
    n_head: int = 4
    d_model: int = 64
    evals: int = 16  # log-spaced evaluation points
    test_size: int = 2048
    scratchpad: bool = False
    seed: int = 0
    threads: int = 1  # torch threads for training (0 = leave torch's setting)
    sampling: str = "independent"  # each position on its own (a skill may repeat), or "distinct" skills

    def __post_init__(self):
        require(self.p >= 3 and is_prime(self.p), f"p must be a prime >= 3, got {self.p}")
        require(self.skills >= 2, f"skills must be >= 2, got {self.skills}")
        check_task(self.skills, self.k, self.sampling, "skills")
        require(math.isfinite(self.exponent) and self.exponent >= 0, f"exponent must be >= 0, got {self.exponent}")
        require(self.batch >= 1, f"batch must be >= 1, got {self.batch}")
        require(self.samples >= self.batch, f"samples must be >= batch={self.batch}, got {self.samples}")
        require(self.lr > 0, f"lr must be > 0, got {self.lr}")
        require(self.weight_decay >= 0, f"weight_decay must be >= 0, got {self.weight_decay}")
        require(self.warmup >= 0, f"warmup must be >= 0, got {self.warmup}")
        require(self.n_layer >= 1, f"n_layer must be >= 1, got {self.n_layer}")
        require(self.n_head >= 1 and self.d_model % self.n_head == 0 and (self.d_model // self.n_head) % 2 == 0,
                f"d_model must be a multiple of 2*n_head, got d_model={self.d_model}, n_head={self.n_head}")
        require(self.evals >= 2, f"evals must be >= 2, got {self.evals}")
        require(self.test_size >= 1, f"test_size must be >= 1, got {self.test_size}")
        require(self.threads >= 0, f"threads must be >= 0, got {self.threads}")

    @property
    def vocab(self) -> int:
        return self.p + self.skills + 1

    @property
    def length(self) -> int:
        """Tokens per example: x0, k skills, '=', then one answer or k scratchpad values."""
        return self.k + 2 + (self.k if self.scratchpad else 1)


def make_task(cfg: SequenceConfig) -> tuple[np.ndarray, np.ndarray]:
    """The affine maps ``(a_s, b_s)``; they depend on the seed only, so every exponent sees the same task."""
    rng = np.random.default_rng([cfg.seed, 0])
    return rng.integers(1, cfg.p, cfg.skills), rng.integers(0, cfg.p, cfg.skills)


def apply_skills(x0: np.ndarray, skills: np.ndarray, a: np.ndarray, b: np.ndarray, p: int) -> np.ndarray:
    """Values after each step, ``[n, k]``: column j is ``f_{s_j}(...f_{s_1}(x0))``."""
    out = np.empty(skills.shape, dtype=np.int64)
    x = np.asarray(x0, dtype=np.int64)
    for j in range(skills.shape[1]):
        x = (a[skills[:, j]] * x + b[skills[:, j]]) % p
        out[:, j] = x
    return out


def sample_examples(rng: np.random.Generator, cfg: SequenceConfig, probs: np.ndarray, n: int,
                    task: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """``n`` token sequences ``[n, length]`` and the skills they use ``[n, k]`` (in order)."""
    sets = sample_sets(rng, probs, n, cfg.k, cfg.sampling)
    # Gumbel-top-k returns the set, not a random order; shuffle each row so order carries no bias (a no-op in
    # distribution for independent positions, kept so both variants consume the same random stream).
    order = np.argsort(rng.random((n, cfg.k)), axis=1)
    skills = np.take_along_axis(sets, order, axis=1)
    x0 = rng.integers(0, cfg.p, n)
    ys = apply_skills(x0, skills, *task, cfg.p)
    eq = np.full((n, 1), cfg.p + cfg.skills)
    tail = ys if cfg.scratchpad else ys[:, -1:]
    return np.concatenate([x0[:, None], cfg.p + skills, eq, tail], axis=1), skills


def target_mask(cfg: SequenceConfig) -> np.ndarray:
    """Over the ``length - 1`` next-token targets: True where the loss counts (the answer / scratchpad)."""
    mask = np.zeros(cfg.length - 1, dtype=bool)
    mask[cfg.k + 1:] = True  # targets after '=' (position k+1 of the inputs)
    return mask


def frequent_only(skills: np.ndarray, d: int) -> np.ndarray:
    """Examples whose skills all lie in the frequent half (``s < d/2``, the head of ``pi``)."""
    return np.all(skills < d // 2, axis=1)


def _model(cfg: SequenceConfig):
    from repetita.lm.model import GPT, ModelConfig

    mc = ModelConfig(vocab_size=cfg.vocab, context=cfg.length - 1, n_layer=cfg.n_layer, n_head=cfg.n_head,
                     d_model=cfg.d_model)
    return GPT(mc, members=1, seed=cfg.seed)


def evaluate(model, cfg: SequenceConfig, seqs: np.ndarray, frequent: np.ndarray) -> dict:
    """Answer loss (nats) and accuracy; with a scratchpad the intermediate values are decoded greedily."""
    import torch
    import torch.nn.functional as F

    x = torch.as_tensor(seqs[:, :-1])
    with torch.no_grad():
        if cfg.scratchpad:
            for j in range(cfg.k - 1):  # replace y_1..y_{k-1} by the model's own guesses, one at a time
                pos = cfg.k + 1 + j
                x[:, pos + 1] = model(x[None])[0, :, pos].argmax(-1)
        logits = model(x[None])[0, :, -1].float()
    y = torch.as_tensor(seqs[:, -1])
    nll = F.cross_entropy(logits, y, reduction="none").numpy()
    hit = (logits.argmax(-1) == y).numpy()
    rare = ~frequent
    return {"loss": float(nll.mean()), "acc": float(hit.mean()),
            "acc_frequent": float(hit[frequent].mean()) if frequent.any() else None,
            "acc_rare": float(hit[rare].mean()) if rare.any() else None}


def train(cfg: SequenceConfig, exponent: float | None = None) -> dict:
    """Test curves at log-spaced sample counts for training skills drawn with ``exponent`` (default cfg's).

    Trains through the one loop (``repetita.lm.trainer``): online batches, constant LR after a linear
    warm-up, the answer (or scratchpad) tokens as targets, every other target ignored.
    """
    import torch

    from repetita.lm.model import IGNORE
    from repetita.lm.trainer import Callback, Trainer

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    a = cfg.exponent if exponent is None else exponent
    require(a >= 0, f"exponent must be >= 0, got {a}")
    task = make_task(cfg)
    # Task, test set and initial weights depend on the seed only: runs differ in their training skills.
    test, test_skills = sample_examples(np.random.default_rng([cfg.seed, 2]), cfg,
                                        skill_probs(cfg.skills, 0.0), cfg.test_size, task)
    frequent = frequent_only(test_skills, cfg.skills)
    torch.manual_seed(cfg.seed)
    model = _model(cfg)
    opt = torch.optim.AdamW(model.param_groups(cfg.weight_decay), lr=cfg.lr, betas=(0.9, 0.98))
    probs = skill_probs(cfg.skills, a)
    rng = np.random.default_rng([cfg.seed, 1])
    counted = torch.as_tensor(target_mask(cfg))

    def batches(step: int):  # online: a fresh batch every step, drawn in step order from one stream
        seqs = torch.as_tensor(sample_examples(rng, cfg, probs, cfg.batch, task)[0])
        targets = seqs[:, 1:].masked_fill(~counted, IGNORE)
        return seqs[None, :, :-1], targets[None]

    steps = cfg.samples // cfg.batch
    rows = []

    class Curve(Callback):
        at = set(np.unique(np.geomspace(1, steps, cfg.evals).astype(int)).tolist())

        def on_step(self, trainer, step):
            if step.step in self.at:
                model.eval()
                rows.append({"samples": step.step * cfg.batch, **evaluate(model, cfg, test, frequent)})
                model.train()

    Trainer(model, opt, batches, total_steps=steps, lr=cfg.lr, schedule="constant", warmup=cfg.warmup,
            grad_clip=1.0, callbacks=[Curve()]).run()
    curve = {key: [r[key] for r in rows] for key in rows[0]}
    return {"exponent": a, "seed": cfg.seed, **curve}


def first_reaching(curve: dict, level: float, metric: str = "acc") -> int | None:
    """Samples at the first evaluation with accuracy >= level (or loss <= level); None if never."""
    vals = np.asarray(curve[metric], dtype=float)
    hit = vals >= level if metric.startswith("acc") else vals <= level
    idx = np.flatnonzero(hit)
    return int(curve["samples"][idx[0]]) if idx.size else None


def compare(cfg: SequenceConfig, exponents=(0.0, 1.0), seeds=(0, 1, 2), level: float = 0.9,
            metric: str = "acc") -> dict:
    """Curves per exponent and seed, and per exponent the samples needed to reach ``level`` of ``metric``."""
    require(metric in ("acc", "loss"), f"metric must be 'acc' or 'loss', got {metric!r}")
    require(len(exponents) >= 1 and all(e >= 0 for e in exponents), f"exponents must be >= 0, got {exponents}")
    require(len(seeds) >= 1, "seeds must not be empty")
    runs, summary = [], {}
    for e in exponents:
        reached = []
        for s in seeds:
            curve = train(replace(cfg, seed=int(s), exponent=float(e)))
            curve["reached_at"] = first_reaching(curve, level, metric)
            runs.append(curve)
            reached.append(curve["reached_at"])
        hits = [n for n in reached if n is not None]
        summary[str(float(e))] = {"reached": len(hits), "seeds": len(reached), "reached_at": reached,
                                  "median_reached_at": float(np.median(hits)) if hits else None}
    return {"config": asdict(cfg), "exponents": [float(e) for e in exponents], "seeds": [int(s) for s in seeds],
            "level": level, "metric": metric, "summary": summary, "runs": runs}


def save(result: dict, out_dir: str) -> None:
    """Write ``mix_sequence.json`` and a two-panel PNG (test loss and accuracy vs samples)."""
    from repetita.io import make_dir, save_figure, write_json
    from repetita.io import plt as pyplot

    path = make_dir(out_dir)
    write_json(path / "mix_sequence.json", result, indent=1)
    plt = pyplot()

    fig, (ax_l, ax_a) = plt.subplots(1, 2, figsize=(9, 3.5))
    colors = {e: f"C{i}" for i, e in enumerate(result["exponents"])}
    for run in result["runs"]:
        e = run["exponent"]
        label = "uniform" if e == 0 else f"power law a={e:g}"
        first = run["seed"] == result["seeds"][0]
        ax_l.plot(run["samples"], run["loss"], "-", color=colors[e], alpha=0.8, label=label if first else None)
        ax_a.plot(run["samples"], run["acc"], "-", color=colors[e], alpha=0.8)
    c = result["config"]
    ax_l.axhline(math.log(c["p"]), color="grey", ls=":", lw=1)
    if result["metric"] == "acc":
        ax_a.axhline(result["level"], color="grey", ls=":", lw=1)
    else:
        ax_l.axhline(result["level"], color="grey", ls=":", lw=1)
    for ax, name in ((ax_l, "uniform test loss (nats)"), (ax_a, "uniform test accuracy")):
        ax.set_xscale("log")
        ax.set_xlabel("training samples")
        ax.set_ylabel(name)
    ax_l.legend()
    fig.suptitle(f"GPT on affine-map composition: p={c['p']}, d={c['skills']}, k={c['k']} "
                 f"({len(result['seeds'])} seeds)", fontsize=10)
    fig.tight_layout()
    save_figure(fig, path / "mix_sequence.png", dpi=120)
