"""What a study's own runs say about a decision: the best measured configuration, and the run that
contradicts a law's proposal.

A law fitted to the runs may extrapolate, but it must not recommend what the runs already measured to be
worse. The demo study recommended 126k params x 33.3 epochs at U = 32,768 (predicted 3.743, 95% interval
3.452-4.059) while it had measured 131k x 32 epochs there at 4.227, and 131k x 16 epochs at 3.764. The
rules here are plain, so that the first screen can say which run settled the decision:

- a measured configuration is a (recipe, N, U, K) averaged over its seeds, with the seeds' range;
- the best measured at (U, C) is the lowest such loss among the runs at U whose compute 6 N K U is at most
  C (the decision's budget);
- a run *measures* a proposed point when it is the same recipe at the same U, with N and K each within a
  factor ``NEAR`` of the point's;
- such a run *contradicts* the proposal when its loss lies outside the law's 95% prediction interval at
  the run's own N and K by more than the seed noise (one run in 20 lies outside a 95% interval of a law
  that is exactly right: on a table made from a known law with 0.2% noise, 3 of 23 backtest decisions
  were "contradicted" so before the margin), or exceeds by more than the seed noise the best loss measured
  at U for no more compute than the run itself (its neighbourhood is measured to lose at equal cost).

Seed noise: the largest range of losses over the seeds of one configuration (a review of the demo study
reported its 8 replicates at 131k params differing by 0.018-0.040 nats); without replicates, ``REL_NOISE``
of the best loss.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from repetita.cliargs import format_quantity
from repetita.laws.data import FLOPS_PER_PARAM_TOKEN

NEAR = 1.25  # N and K within this factor measure a point (126k vs 131k params, 33.3 vs 32 epochs in the demo)
REL_NOISE = 0.005  # seed noise without replicates: 0.5% of the loss (those replicates: 0.45-1% of ~4 nats)


@dataclass(frozen=True)
class Measured:
    """One measured configuration (its seeds averaged)."""

    recipe: str
    params: float
    unique_tokens: float
    epochs: float
    loss: float
    seeds: int = 1
    spread: float = 0.0  # max - min over its seeds
    weight_decay: float | None = None  # the LM lab's tuned value (a recipe of your own trainer carries none)
    lr: float | None = None

    @property
    def compute(self) -> float:
        return FLOPS_PER_PARAM_TOKEN * self.params * self.unique_tokens * self.epochs

    @property
    def settings(self) -> str:
        """The recipe's own knobs, where the study recorded them (the weight decay to use, named)."""
        return f", weight decay {self.weight_decay:g}" if self.weight_decay is not None else ""

    @property
    def seeds_text(self) -> str:
        """How many seeds the loss averages and how far apart they are ("" for one seed)."""
        return f"{self.seeds} seeds within {self.spread:.3f}" if self.seeds > 1 else ""

    def text(self) -> str:
        seeds = f", {self.seeds_text}" if self.seeds_text else ""
        return (f"{self.recipe} {format_quantity(self.params)} params x {self.epochs:g} epochs{self.settings} at "
                f"U = {self.unique_tokens:,.0f}: measured {self.loss:.4f}{seeds}")


@dataclass(frozen=True)
class Verdict:
    """Why the runs overrule a proposal: the run that measured it, and how it disagrees."""

    run: Measured
    reason: str

    def text(self) -> str:
        return f"{self.run.text()}, {self.reason}"


def configurations(single: pd.DataFrame, replicates: pd.DataFrame | None = None) -> list[Measured]:
    """The study's single-model configurations (``single``: averaged over seeds), with their seeds' count and
    range from ``replicates`` (one row per seed) where given."""
    # a configuration is also its learning rate and weight decay: a tuned recipe's variants are not averaged
    keys = ["recipe", "params", "unique_tokens", "epochs"] + [k for k in ("lr", "weight_decay") if k in single]
    spread = {}
    if replicates is not None and not replicates.empty:
        g = replicates.groupby([k for k in keys if k in replicates], dropna=False)["loss"]
        spread = {_key(k): (int(n), float(r)) for k, n, r in zip(g.size().index, g.size(), g.max() - g.min(),
                                                                  strict=True)}
    out = []
    for r in single.groupby(keys, as_index=False, dropna=False)["loss"].mean().to_dict("records"):
        n, s = spread.get(_key(tuple(r[k] for k in keys)), (1, 0.0))
        wd, lr = r.get("weight_decay"), r.get("lr")
        out.append(Measured(str(r["recipe"]), float(r["params"]), float(r["unique_tokens"]), float(r["epochs"]),
                            float(r["loss"]), n, s, None if wd is None or pd.isna(wd) else float(wd),
                            None if lr is None or pd.isna(lr) else float(lr)))
    return out


def _key(values) -> tuple:
    """A hashable key where NaN (no lr or weight decay recorded) equals NaN."""
    return tuple("-" if isinstance(v, float) and math.isnan(v) else v for v in values)


def seed_noise(runs: list[Measured]) -> tuple[float, str]:
    """(the tolerance a loss difference must exceed to count, how it was set)."""
    replicated = [m.spread for m in runs if m.seeds > 1]
    if replicated:
        return max(replicated), f"the largest range over the seeds of one configuration ({max(replicated):.3f})"
    best = min((m.loss for m in runs), default=0.0)
    return REL_NOISE * best, f"no seed replicates: {100 * REL_NOISE:g}% of the best loss ({REL_NOISE * best:.3f})"


def _same_u(a: float, b: float) -> bool:
    return abs(a / b - 1) < 1e-3


def best_measured(runs: list[Measured], unique_tokens: float, compute: float,
                  recipe: str | None = None) -> Measured | None:
    """The lowest loss at U among runs costing at most ``compute`` (of ``recipe`` when given)."""
    fit = [m for m in runs if _same_u(m.unique_tokens, unique_tokens) and m.compute <= compute * (1 + 1e-6)
           and (recipe is None or m.recipe == recipe)]
    return min(fit, key=lambda m: (m.loss, m.compute)) if fit else None


def near(runs: list[Measured], recipe: str, params: float, unique_tokens: float, epochs: float) -> list[Measured]:
    """The runs that measure a proposed point (module docstring), closest first."""
    lim = math.log(NEAR) + 1e-9
    hits = [m for m in runs if m.recipe == recipe and _same_u(m.unique_tokens, unique_tokens)
            and abs(math.log(m.params / params)) <= lim and abs(math.log(m.epochs / epochs)) <= lim]
    return sorted(hits, key=lambda m: abs(math.log(m.params / params)) + abs(math.log(m.epochs / epochs)))


def contradiction(runs: list[Measured], recipe: str, params: float, unique_tokens: float, epochs: float,
                  interval: list | None, noise: float, predict=None) -> Verdict | None:
    """The first run that contradicts the proposal (module docstring), or None. ``predict(params, epochs)``
    gives the law's loss and 95% prediction interval at a run's own N and K (a run 1.25x smaller in N and K is not
    expected to reach the loss of the proposed point); without it the proposal's ``interval`` is used."""
    for m in near(runs, recipe, params, unique_tokens, epochs):
        iv = predict(m.params, m.epochs)[1] if predict is not None else interval
        if iv and not iv[0] - noise <= m.loss <= iv[1] + noise:
            return Verdict(m, f"outside the law's 95% prediction interval there, {iv[0]:.3f}-{iv[1]:.3f}, by more "
                              f"than the seed noise ({noise:.3f})")
        better = best_measured(runs, unique_tokens, m.compute, recipe=None)
        if better is not None and m.loss > better.loss + noise:
            return Verdict(m, f"worse by more than the seed noise ({noise:.3f}) than {better.text()}, which cost "
                              "no more")
    return None
