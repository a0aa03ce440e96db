"""The k-multiplicative skill-composition testbed (after Wang, Dang, Lee, Lyu 2026, arXiv 2604.22951).

Skills ``s = 1..d`` carry hidden signs ``w*_s in {-1, +1}``. An example is ``X = (s_1, ..., s_k)``; its
target is the product of their signs. The model holds one weight per skill and predicts the product of
the ``k`` weights at the example's positions, trained by minibatch SGD on the squared loss. Training
examples draw their skills from a distribution that is uniform or a power law ``pi_s ∝ s^-a``; the test
set is uniform.

Sampling (``sampling``): ``"independent"`` (the default, the setting the theorem states) draws each
position on its own, so a skill may appear twice in one example; ``"distinct"`` draws ``k`` distinct
skills (successive sampling without replacement), the variant this testbed used first. They are different
tasks: with repetition a frequent skill often appears twice, its square is positive whatever its sign, and
such an example teaches the other skill's sign directly; without it, the head skills can settle into a
sign pattern that is right among themselves and wrong with the tail.

With a small initialisation every weight starts near a saddle (its gradient is the product of the other
``k - 1`` small weights): under a power law the frequent skills co-occur often enough to escape first,
and once learned they amplify the gradient of the rare skills they appear with.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from repetita.errors import require

SAMPLINGS = ("independent", "distinct")


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
    sampling: str = "independent"  # positions drawn independently (the theorem's task) or k distinct skills

    def __post_init__(self):
        check_task(self.dims, self.k, self.sampling)
        require(self.exponent >= 0, f"exponent must be >= 0, got {self.exponent}")
        require(self.samples >= self.batch >= 1, f"need samples >= batch >= 1, got {self.samples}, {self.batch}")
        require(self.lr > 0, f"lr must be > 0, got {self.lr}")
        require(self.init > 0, f"init must be > 0, got {self.init}")
        require(self.evals >= 2, f"evals must be >= 2, got {self.evals}")


def check_task(dims: int, k: int, sampling: str, name: str = "dims") -> None:
    """The task's size and sampling (``name``: what the caller calls the number of skills)."""
    require(sampling in SAMPLINGS, f"sampling {sampling!r}: use one of {', '.join(SAMPLINGS)}")
    require(dims >= 2, f"{name} must be >= 2, got {dims}")
    require(k >= 1, f"k must be >= 1, got {k}")
    require(sampling == "independent" or k <= dims,
            f"k = {k} distinct skills need k <= {name} ({dims}); independent positions allow any k")


def skill_probs(dims: int, exponent: float) -> np.ndarray:
    """``pi_s ∝ s^-a``; ``a = 0`` is uniform."""
    w = np.arange(1, dims + 1, dtype=float) ** (-exponent)
    return w / w.sum()


def sample_sets(rng: np.random.Generator, probs: np.ndarray, n: int, k: int,
                sampling: str = "independent") -> np.ndarray:
    """``n`` examples of ``k`` skill positions (0-based skill indices), ``[n, k]``.

    ``independent``: each position drawn from ``probs`` on its own (inverse CDF of one uniform draw).
    ``distinct``: ``k`` distinct skills by successive sampling without replacement (Gumbel-top-k: the k
    largest of ``log pi + Gumbel`` are such a sample, in one vectorised call).
    """
    if sampling == "independent":
        cdf = np.cumsum(probs)
        return np.minimum(np.searchsorted(cdf, rng.random((n, k)) * cdf[-1], side="right"), probs.size - 1)
    keys = np.log(probs)[None, :] + rng.gumbel(size=(n, probs.size))
    return np.argpartition(-keys, k - 1, axis=1)[:, :k]


def predict(w: np.ndarray, sets: np.ndarray) -> np.ndarray:
    """The model's output on each example: the product of the weights at its positions."""
    return np.prod(w[sets], axis=-1)


def loss(w: np.ndarray, sets: np.ndarray, y: np.ndarray) -> float:
    """Mean of ``0.5 (prod_i w_{s_i} - y)^2``."""
    return float(0.5 * np.mean((predict(w, sets) - y) ** 2))


def gradient(w: np.ndarray, sets: np.ndarray, y: np.ndarray) -> np.ndarray:
    """d loss / d w: a skill at position i gets ``resid * prod_{j != i} w_{s_j}``, summed over its positions
    (a skill that appears twice in an example gets both terms), averaged over examples."""
    ws = w[sets]
    resid = ws.prod(axis=1) - y
    # leave-one-out products, not prod / w_i: a weight may be exactly 0
    loo = np.stack([np.delete(ws, i, axis=1).prod(axis=1) for i in range(sets.shape[1])], axis=1)
    return np.bincount(sets.ravel(), weights=(resid[:, None] * loo).ravel(), minlength=w.size) / len(sets)


def train(cfg: CompositionConfig, exponent: float) -> tuple[np.ndarray, np.ndarray]:
    """Test loss at log-spaced sample counts for training skills drawn with ``exponent``."""
    rng = np.random.default_rng(cfg.seed)
    # Hidden signs, the test set and the initial weights depend on the seed only, so the uniform
    # and power-law runs differ only in their training distribution.
    w_star = rng.choice([-1.0, 1.0], size=cfg.dims)
    test_sets = sample_sets(rng, np.full(cfg.dims, 1.0 / cfg.dims), cfg.test_size, cfg.k, cfg.sampling)
    y_test = predict(w_star, test_sets)
    w = cfg.init * rng.standard_normal(cfg.dims)
    probs = skill_probs(cfg.dims, exponent)
    train_rng = np.random.default_rng([cfg.seed, 1])
    steps = cfg.samples // cfg.batch
    at = np.unique(np.geomspace(1, steps, cfg.evals).astype(int))
    seen, losses, j = [], [], 0
    for step in range(1, steps + 1):
        sets = sample_sets(train_rng, probs, cfg.batch, cfg.k, cfg.sampling)
        w -= cfg.lr * gradient(w, sets, predict(w_star, sets))
        if j < at.size and step == at[j]:
            seen.append(step * cfg.batch)
            losses.append(loss(w, test_sets, y_test))
            j += 1
    return np.array(seen), np.array(losses)


def regime(dims: int, k: int, runs: list[tuple[float, float]], samples: int, seed: int = 0, init: float = 0.5,
           batch: int = 64, evals: int = 12, test_size: int = 4096, sampling: str = "independent") -> dict:
    """Many ``(exponent, lr)`` runs of the testbed at once, for the size sweep of the skill regime.

    The same model and loss as :func:`train`, vectorised over runs (one ``(R, d)`` weight array, one
    ``bincount`` for all gradients), so a grid of distributions and learning rates at ``d`` in the
    hundreds fits a CPU minute. Learning rates are per run because the stable rate depends on the
    distribution: a skill's effective rate is ``lr`` times its share of the batch, ``k pi_s``, so a
    power law's head skill caps ``lr`` near ``1 / (k pi_1)`` while uniform tolerates about ``d / k``
    (a fair comparison tunes each). Every run starts from the same weights; a run whose weights
    overflow is marked diverged (loss NaN from then on). By symmetry the hidden signs are +1 (a
    product of sign flips maps any sign pattern to this one without changing the dynamics).
    """
    check_task(dims, k, sampling)
    require(runs and all(a >= 0 and lr > 0 for a, lr in runs), "runs: need (exponent >= 0, lr > 0) pairs")
    require(samples >= batch >= 1, f"the budget of {samples} samples is below one batch of {batch}")
    require(init > 0 and evals >= 2, "need init > 0 and evals >= 2")
    R = len(runs)
    lrs = np.array([lr for _, lr in runs])[:, None]
    probs = np.stack([skill_probs(dims, a) for a, _ in runs])
    logp, cdf = np.log(probs), np.cumsum(probs, axis=1)
    w = np.tile(init * np.random.default_rng(seed).standard_normal(dims), (R, 1))
    rng = np.random.default_rng([seed, 1])
    test = sample_sets(rng, np.full(dims, 1.0 / dims), test_size, k, sampling)

    def draw() -> np.ndarray:  # [R, batch, k]: sample_sets for every run at once
        if sampling == "independent":
            u = rng.random((R, batch, k)) * cdf[:, -1:, None]
            return np.minimum(np.stack([np.searchsorted(cdf[r], u[r], side="right") for r in range(R)]), dims - 1)
        return np.argpartition(-(logp[:, None, :] + rng.gumbel(size=(R, batch, dims))), k - 1, axis=2)[..., :k]

    steps = samples // batch
    at = set(np.unique(np.geomspace(1, steps, evals).astype(int)).tolist())
    offset = (np.arange(R) * dims)[:, None, None]
    seen, losses = [], []
    for step in range(1, steps + 1):
        sets = draw()
        ws = np.take_along_axis(w, sets.reshape(R, -1), axis=1).reshape(R, batch, k)
        with np.errstate(all="ignore"):
            resid = ws.prod(axis=2) - 1.0
            loo = np.stack([np.delete(ws, i, axis=2).prod(axis=2) for i in range(k)], axis=2)
            grad = np.bincount((sets + offset).ravel(), weights=(resid[..., None] * loo).ravel(), minlength=R * dims)
            w -= lrs * grad.reshape(R, dims) / batch
        w[~np.isfinite(w).all(axis=1)] = np.nan
        if step in at:
            with np.errstate(all="ignore"):
                losses.append((0.5 * (w[:, test].prod(axis=2) - 1.0) ** 2).mean(axis=1))
            seen.append(step * batch)
    loss = np.array(losses).T  # [R, evals]
    return {"dims": dims, "k": k, "seed": seed, "init": init, "batch": batch, "sampling": sampling, "samples": seen,
            "runs": [{"exponent": a, "lr": lr, "loss": [None if not np.isfinite(x) else float(x) for x in row]}
                     for (a, lr), row in zip(runs, loss, strict=True)]}


def best_per_exponent(result: dict) -> dict[float, list[float | None]]:
    """For each exponent, the lowest loss over its learning rates at every budget (the tuned curve)."""
    out: dict[float, list] = {}
    for r in result["runs"]:
        cur = out.setdefault(r["exponent"], [None] * len(r["loss"]))
        for j, x in enumerate(r["loss"]):
            if x is not None and (cur[j] is None or x < cur[j]):
                cur[j] = x
    return out


def regime_summary(results: list[dict], level: float = 0.05) -> list[dict]:
    """Per (d, k, exponent): seeds whose tuned loss went below ``level``, the median budget that took,
    and the median tuned loss at the end of the budget."""
    groups: dict[tuple, list] = {}
    for res in results:
        for a, curve in best_per_exponent(res).items():
            groups.setdefault((res["dims"], res["k"], a), []).append((res["samples"], curve))
    out = []
    for (d, k, a), items in sorted(groups.items()):
        reached = [first_below(np.array(n), np.array([np.inf if x is None else x for x in c]), level)
                   for n, c in items]
        hits = [r for r in reached if r is not None]
        finals = [c[-1] for _, c in items if c[-1] is not None]
        out.append({"dims": d, "k": k, "exponent": a, "seeds": len(items), "reached": len(hits),
                    "median_samples": float(np.median(hits)) if hits else None, "reached_at": reached,
                    "median_final_loss": float(np.median(finals)) if finals else None,
                    "d_to_k_over_2": float(d) ** (k / 2), "budget": items[0][0][-1]})
    return out


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
