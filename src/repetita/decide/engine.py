"""The one rule that turns a law's proposal and the measured runs into a decision at (U, C).

``plan`` (runs carried by its fit files), the study report (its own runs) and ``backtest`` (a table's runs
below each budget) all call ``settle``, so a decision means the same everywhere:

1. the decision starts from the best configuration measured at U within the budget C (``measured.py``);
2. a law's proposal replaces it only if
   (a) the law passes its checks (``Proposal.problem`` is None),
   (b) it lies inside the trust region around the fitted runs (``Proposal.beyond`` is None: N, K, C and
       tokens per parameter, ``allocate.beyond_trust``),
   (c) no measured run contradicts it: no run within a factor ``measured.NEAR`` of its N and K at the same
       U has a loss outside the proposal's 95% prediction interval, or worse than the best measured by
       more than the seed noise (``measured.contradiction``), and
   (d) it promises a gain over the best measured run larger than the seed noise, in its own terms (its
       prediction at that run minus its prediction at the proposal, so that a bias the law has at both
       cancels): otherwise the run that exists is as good a decision;
3. otherwise the best measured run stands, and the decision says which run or check settled it; with no
   run at U within C and no qualifying law, the decision is withheld, never a number.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from repetita.cliargs import format_quantity
from repetita.decide.measured import Measured, best_measured, contradiction
from repetita.laws.caveats import Kind, of_record

# The kinds of a fit's caveats that stop its law from moving a decision: a term that vanished (the demo
# study's floor E went to e = -42) and a law that explains too little of the loss. A parameter the loss does
# not depend on (rn_star at its bound in the datablations fits) leaves every prediction, hence the decision,
# unchanged: it makes the fit no finding to read parameters from (decision.finding_problem), not a bad plan.
FAILS_DECISION = {Kind.VANISHED: "a term vanished", Kind.LOW_FIT: "it explains too little of the loss"}


def law_problem(record: dict) -> str | None:
    """Why a fitted law may not move a decision (``FAILS_DECISION``, or R^2 below zero), or None."""
    if record.get("error"):
        return str(record["error"])
    reasons = [FAILS_DECISION[c.kind] for c in of_record(record) if c.kind in FAILS_DECISION]
    r2 = record.get("r2")
    if isinstance(r2, (int, float)) and r2 < 0:
        reasons.append(f"R^2 = {r2:.2f} < 0")
    return "; ".join(dict.fromkeys(reasons)) or None


def predictor(est, unique_tokens: float, thetas=None) -> Callable[[float, float], tuple]:
    """The fitted law's loss and 95% prediction interval of a run at (N, K) on U unique tokens
    (``Proposal.predict``): the interval under the parameter draws ``thetas`` where given (a law extrapolated
    beyond its runs is uncertain in its parameters, not only in its scatter), else the fit's scatter alone."""
    import numpy as np

    from repetita.laws.evaluate import point_theta
    from repetita.laws.law import law_loss
    from repetita.laws.uncertainty import prediction_interval

    theta = point_theta(est) if thetas is None else np.asarray(thetas)

    def predict(params: float, epochs: float) -> tuple[float, list | None]:
        losses = law_loss(est.spec.law_obj, theta, params, epochs * unique_tokens, unique_tokens)[:, 0]
        point = law_loss(est.spec.law_obj, point_theta(est), params, epochs * unique_tokens, unique_tokens)[0, 0]
        return float(point), prediction_interval(losses, est)

    return predict


def table_runs(rows) -> list[Measured]:
    """A fit record's stored runs ([N, D, U, loss] rows, ``laws.fit.measured_runs``) as measured
    configurations of the standard recipe; [] when absent or damaged (a plan then rests on the law alone)."""
    import math

    out = []
    for r in rows or []:
        if not (isinstance(r, list) and len(r) == 4 and all(isinstance(v, (int, float)) for v in r)
                and all(math.isfinite(v) and v > 0 for v in r)):
            return []
        out.append(Measured("standard", float(r[0]), float(r[2]), float(r[1]) / float(r[2]), float(r[3])))
    return out


@dataclass(frozen=True)
class Proposal:
    """What a law proposes at (U, C), and what it knows about itself."""

    law: str
    recipe: str
    params: float
    epochs: float
    loss: float
    interval: list | None  # 95% prediction interval of the loss a run there reaches
    problem: str | None = None  # why the law does not qualify (its checks), None when it does
    beyond: str | None = None  # why the point lies beyond the trust region, None inside it
    # the law's loss and 95% prediction interval at any (N, K) of this U: the runs near the point are checked
    # at their own N and K, and the gain over the best run is the law's own (``settle``); None: only the
    # point's loss and interval are known
    predict: Callable[[float, float], tuple] | None = field(default=None, compare=False, repr=False)

    def text(self) -> str:
        return (f"{self.law}'s plan ({self.recipe}, {format_quantity(self.params)} params, {self.epochs:.3g} "
                f"epochs, predicted {self.loss:.4f})")


@dataclass(frozen=True)
class Settled:
    """The decision at (U, C): from the law ("law"), the best measured run ("measured"), or none ("withheld")."""

    unique_tokens: float
    compute: float
    source: str
    recipe: str | None
    params: float | None
    epochs: float | None
    loss: float | None
    interval: list | None
    best: Measured | None  # the best run measured at U within C
    why: str | None  # why the law's proposal was not taken (None when it was, or there was none)
    proposal: Proposal | None = None

    @property
    def decided(self) -> bool:
        return self.source != "withheld"


def settle(proposal: Proposal | None, runs: list[Measured], unique_tokens: float, compute: float,
           noise: float) -> Settled:
    """The decision at (U, C) by the module's rule. ``noise``: the seed noise (``measured.seed_noise``)."""
    u, c = float(unique_tokens), float(compute)
    best = best_measured(runs, u, c)
    why = None
    if proposal is None:
        why = "no law qualifies"
    elif proposal.problem:
        why = f"the law fails its own checks ({proposal.problem})"
    elif proposal.beyond:
        why = f"it lies {proposal.beyond}"
    else:
        verdict = contradiction(runs, proposal.recipe, proposal.params, u, proposal.epochs, proposal.interval,
                                noise, proposal.predict)
        if verdict:
            why = f"contradicted by {verdict.text()}"
        elif best is not None:
            # the gain the law promises over the best run, in its own terms (a bias shared by both cancels):
            # it must exceed the seed noise, or the run that exists is as good a decision
            there = proposal.predict(best.params, best.epochs)[0] if proposal.predict else best.loss
            if there - proposal.loss <= noise:
                why = (f"it promises {there - proposal.loss:.4f} nats over the best run measured within C "
                       f"({best.text()}), no more than the seed noise ({noise:.3f})")
    if why is None:
        p = proposal
        return Settled(u, c, "law", p.recipe, p.params, p.epochs, p.loss, p.interval, best, None, p)
    if best is None:
        return Settled(u, c, "withheld", None, None, None, None, None, None,
                       f"{proposal.text() + ' is not taken: ' if proposal else ''}{why}, and no run at U = {u:,.0f} "
                       f"within C = {c:.3g} measures an alternative", proposal)
    return Settled(u, c, "measured", best.recipe, best.params, best.epochs, best.loss, None, best,
                   (f"{proposal.text()} is not taken: " if proposal else "") + why, proposal)


def is_contradicted(d: Settled, runs: list[Measured], noise: float) -> bool:
    """Whether a measured run contradicts a decision (``measured.contradiction``): a run within a factor NEAR
    of a law decision's N and K at its U whose loss lies outside its prediction interval, or that is worse
    than the best measured within C by more than the seed noise. A measured decision is its own run: a run
    the decision had not seen that beats it is regret (``backtest``), not a contradiction."""
    if d.source != "law":
        return False
    predict = d.proposal.predict if d.proposal is not None else None
    return contradiction(runs, d.recipe, d.params, d.unique_tokens, d.epochs, d.interval, noise, predict) is not None
