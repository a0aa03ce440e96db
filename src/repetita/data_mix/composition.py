"""The k-multiplicative skill-composition testbed (after Wang, Dang, Lee, Lyu 2026).

Skills ``s = 1..d`` carry hidden signs ``w*_s in {-1, +1}``. An example is a set of ``k`` distinct
skills; its target is the product of their signs. The model holds one weight per skill and predicts
the product of the ``k`` weights, trained by minibatch SGD on the squared loss. Training sets are
drawn from a skill distribution that is uniform or a power law ``pi_s ∝ s^-a``; the test set is
uniform. With a small initialisation every weight starts near a saddle (its gradient is the product
of the other ``k - 1`` small weights): under a power law the frequent skills co-occur often enough to
escape first, and once learned they amplify the gradient of the rare skills they appear with.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np

from repetita.errors import require


@dataclass(frozen=True)
class CompositionConfig:
    dims: int = 32  # number of skills d
    k: int = 3  # skills per example
    exponent: float = 1.0  # power-law exponent a of the skill distribution (0 = uniform)
    samples: int = 1_000_000  # training examples seen (one pass, fresh samples)
    lr: float = 0.5
    batch: int = 64
    init: float = 0.5  # std of the initial weights
    evals: int = 20  # log-spaced evaluation points
    test_size: int = 4096
    seed: int = 0

    def __post_init__(self):
        require(self.dims >= 2, f"dims must be >= 2, got {self.dims}")
        require(1 <= self.k <= self.dims, f"k must be in 1..dims, got {self.k}")
        require(self.exponent >= 0, f"exponent must be >= 0, got {self.exponent}")
        require(self.samples >= self.batch >= 1, f"need samples >= batch >= 1, got {self.samples}, {self.batch}")
        require(self.lr > 0, f"lr must be > 0, got {self.lr}")
        require(self.init > 0, f"init must be > 0, got {self.init}")
        require(self.evals >= 2, f"evals must be >= 2, got {self.evals}")


def skill_probs(dims: int, exponent: float) -> np.ndarray:
    """``pi_s ∝ s^-a``; ``a = 0`` is uniform."""
    w = np.arange(1, dims + 1, dtype=float) ** (-exponent)
    return w / w.sum()


def sample_sets(rng: np.random.Generator, probs: np.ndarray, n: int, k: int) -> np.ndarray:
    """``n`` sets of ``k`` distinct skills by successive sampling without replacement from ``probs``.

    Gumbel-top-k: the k largest of ``log pi + Gumbel`` are such a sample, in one vectorised call.
    """
    keys = np.log(probs)[None, :] + rng.gumbel(size=(n, probs.size))
    return np.argpartition(-keys, k - 1, axis=1)[:, :k]


def test_loss(w: np.ndarray, sets: np.ndarray, y: np.ndarray) -> float:
    return float(0.5 * np.mean((np.prod(w[sets], axis=1) - y) ** 2))


def train(cfg: CompositionConfig, exponent: float) -> tuple[np.ndarray, np.ndarray]:
    """Test loss at log-spaced sample counts for training skills drawn with ``exponent``."""
    rng = np.random.default_rng(cfg.seed)
    # Hidden signs, the test set and the initial weights depend on the seed only, so the uniform
    # and power-law runs differ only in their training distribution.
    w_star = rng.choice([-1.0, 1.0], size=cfg.dims)
    test_sets = sample_sets(rng, np.full(cfg.dims, 1.0 / cfg.dims), cfg.test_size, cfg.k)
    y_test = np.prod(w_star[test_sets], axis=1)
    w = cfg.init * rng.standard_normal(cfg.dims)
    probs = skill_probs(cfg.dims, exponent)
    train_rng = np.random.default_rng([cfg.seed, 1])
    steps = cfg.samples // cfg.batch
    at = np.unique(np.geomspace(1, steps, cfg.evals).astype(int))
    seen, losses, j = [], [], 0
    for step in range(1, steps + 1):
        sets = sample_sets(train_rng, probs, cfg.batch, cfg.k)
        ws = w[sets]
        pred = np.prod(ws, axis=1)
        resid = pred - np.prod(w_star[sets], axis=1)
        # d/dw_{s_i} of 0.5 resid^2 = resid * prod_{j != i} w_{s_j}; the weights are never exactly 0
        # after a Gaussian init, but divide safely anyway by forming the leave-one-out product.
        loo = np.stack([np.prod(np.delete(ws, i, axis=1), axis=1) for i in range(cfg.k)], axis=1)
        grad = np.bincount(sets.ravel(), weights=(resid[:, None] * loo).ravel(), minlength=cfg.dims)
        w -= cfg.lr * grad / cfg.batch
        if j < at.size and step == at[j]:
            seen.append(step * cfg.batch)
            losses.append(test_loss(w, test_sets, y_test))
            j += 1
    return np.array(seen), np.array(losses)


def first_below(samples: np.ndarray, losses: np.ndarray, level: float) -> int | None:
    idx = np.flatnonzero(losses < level)
    return int(samples[idx[0]]) if idx.size else None


def compare(cfg: CompositionConfig, level: float = 0.05) -> dict:
    """Uniform vs power-law training on the same seed; samples needed to reach test loss ``level``."""
    n_u, l_u = train(cfg, 0.0)
    n_p, l_p = train(cfg, cfg.exponent)
    return {
        "config": asdict(cfg),
        "samples": n_u.tolist(),
        "uniform": l_u.tolist(),
        "power": l_p.tolist(),
        "level": level,
        "uniform_reaches_level_at": first_below(n_u, l_u, level),
        "power_reaches_level_at": first_below(n_p, l_p, level),
    }


def sweep(cfg: CompositionConfig, exponents: list[float]) -> dict:
    """One curve per exponent (0 = uniform) on the same seed."""
    curves = {}
    for a in exponents:
        n, loss = train(replace(cfg, exponent=a), a)
        curves[str(a)] = loss.tolist()
    return {"config": asdict(cfg), "samples": n.tolist(), "curves": curves}


def save(result: dict, out_dir: str) -> None:
    """Write ``mix_composition.json`` (curves + config) and a log-log PNG of the curves."""
    from repetita.io import make_dir, save_figure, write_json
    from repetita.io import plt as pyplot

    path = make_dir(out_dir)
    write_json(path / "mix_composition.json", result, indent=1)
    plt = pyplot()

    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot(result["samples"], result["uniform"], "o-", label="uniform skills")
    ax.plot(result["samples"], result["power"], "s-", label=f"power law a={result['config']['exponent']}")
    ax.set_xscale("log")
    ax.set_xlabel("training samples")
    ax.set_ylabel("uniform test loss")
    c = result["config"]
    ax.set_title(f"k={c['k']} composition, d={c['dims']}")
    ax.legend()
    fig.tight_layout()
    save_figure(fig, path / "mix_composition.png", dpi=120)
