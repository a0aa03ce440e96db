"""The report's first screen, as a typed result: one sentence, one row per unique-token budget, the
caveats that change the decision, and the runs that would firm it up. Pure functions of the study's
decision (``decide/study.py``), its single-model runs and its law fits; ``study/report.py`` renders it.

Which fits count as findings: a law or asymptote fit whose own diagnostics say a term vanished, a
parameter is not identified or sits at a bound, or whose R^2 is negative, is not a finding. The report
folds it under that reason (``finding_problem``); it never stands beside valid fits as a number or a curve.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import pandas as pd

from repetita.cliargs import format_quantity
from repetita.decide.engine import law_problem
from repetita.decide.measured import Measured, best_measured, configurations, seed_noise
from repetita.laws.caveats import SEVERITY, Caveat, Kind, of_record
from repetita.laws.data import FLOPS_PER_PARAM_TOKEN

TOP_CAVEATS = 5
# Which of a fit's typed caveats (laws.caveats.Kind, stored in its record) make it no finding, and why.
REJECT = {Kind.VANISHED: "a term vanished", Kind.NOT_IDENTIFIED: "a parameter is not identified",
          Kind.AT_BOUND: "a parameter sits at its bound"}


RULE = ("chosen by rule (where the decision rests on extrapolation, and where the loss was still falling at the "
        "largest epoch count tried), cheapest first")


@dataclass(frozen=True)
class Evidence:
    """The region the study measured: its largest single model, epoch count and compute 6 N D."""

    params: float
    epochs: float
    compute: float

    def outside(self, params: float, epochs: float, compute: float) -> list[str]:
        out = []
        if params > self.params * 1.001:
            out.append(f"N {format_quantity(params)} > {format_quantity(self.params)}")
        if epochs > self.epochs * 1.001:
            out.append(f"K {epochs:.3g} > {self.epochs:g}")
        if compute > self.compute * 1.001:
            out.append(f"C {compute:.2g} > {self.compute:.2g}")
        return out


@dataclass(frozen=True)
class Row:
    """The recommendation for one unique-token budget at the largest compute the study spans."""

    unique_tokens: float
    compute: float
    recipe: str
    params: float
    epochs: float
    loss: float
    prediction_interval: list | None
    loss_standard: float
    gain_interval: list | None
    evidence: Evidence  # the runs measured at this U
    outside: tuple[str, ...]
    best: Measured | None = None  # the best run measured at this U within the compute C
    source: str = "law"  # "law": the law's plan; "measured": the best measured run (the law was overruled)
    overruled: str | None = None  # why the law's plan was not taken: the run that contradicts it, or its checks

    @property
    def gain(self) -> float:
        return self.loss_standard - self.loss


@dataclass(frozen=True)
class NextRun:
    params: float
    unique_tokens: float
    epochs: float
    why: str
    seed: int | None = None  # a seed replicate of a measured configuration (None: the spec's first seed)

    @property
    def compute(self) -> float:
        return FLOPS_PER_PARAM_TOKEN * self.params * self.unique_tokens * self.epochs


@dataclass(frozen=True)
class Decision:
    sentence: str
    rows: tuple[Row, ...] = ()
    caveats: tuple[Caveat, ...] = ()  # at most TOP_CAVEATS, most important first (ranked by kind)
    more_caveats: tuple[Caveat, ...] = ()
    evidence: Evidence | None = None
    next_runs: tuple[NextRun, ...] = ()
    decided: bool = True
    notes: tuple[str, ...] = field(default=())
    # how next_runs were chosen: by rule (this module) or designed (decide/next_runs.py), and why not designed
    next_method: str = RULE

    def markdown(self) -> str:
        """The same first screen as Markdown (the demo's report.md opens with it)."""
        lines = [self.sentence]
        if self.rows:
            lines += ["", "| U | recommendation | loss (95% prediction interval) | gain vs standard | best measured "
                      "at this U (at most C) | outside the runs |", "|---|---|---|---|---|---|"]
            for r in self.rows:
                pi = (f"{r.prediction_interval[0]:.3f}-{r.prediction_interval[1]:.3f}" if r.prediction_interval else
                      "measured" if r.source == "measured" else "none")
                gi = f" ({r.gain_interval[0]:.4f} to {r.gain_interval[1]:.4f})" if r.gain_interval else ""
                lines.append(f"| {r.unique_tokens:,.0f} | {r.recipe}, {format_quantity(r.params)} params, {r.epochs:.3g} "
                             f"epochs{' (measured)' if r.source == 'measured' else ''} | {r.loss:.4f} ({pi}) | "
                             f"{r.gain:.4f}{gi} | {best_text(r.best)} | {'; '.join(r.outside) or 'no'} |")
        if self.caveats:
            lines += ["", "Caveats that may change it:"] + [f"{i}. {c.line}" for i, c in enumerate(self.caveats, 1)]
        return "\n".join(lines)

    def to_dict(self) -> dict:
        out = asdict(self)
        for r, row in zip(out["rows"], self.rows, strict=True):
            r["gain"] = row.gain
        for r, run in zip(out["next_runs"], self.next_runs, strict=True):
            r["compute"] = run.compute
        return out



def best_text(b: Measured | None) -> str:
    if b is None:
        return "none within C"
    return (f"{b.recipe}, {format_quantity(b.params)} params, {b.epochs:g} epochs{b.settings}: {b.loss:.4f}"
            + (f" ({b.seeds_text})" if b.seeds_text else ""))


def runs_show(runs: list[Measured], best: Measured) -> str:
    """What the runs themselves show around the best one, law-free: whether the loss turned (rose past its
    epoch count at its size), and whether it is the largest size measured (larger ones may do better)."""
    same = sorted((m for m in runs if m.recipe == best.recipe and m.params == best.params
                   and m.unique_tokens == best.unique_tokens), key=lambda m: m.epochs)
    longer = [m for m in same if m.epochs > best.epochs]
    turn = (f"the loss rose past {best.epochs:g} epochs at this size ({longer[0].epochs:g} epochs: {longer[0].loss:.4f})"
            if longer else f"{best.epochs:g} epochs is the most tried at this size, so the turn is not measured")
    sizes = {m.params for m in runs if m.unique_tokens == best.unique_tokens}
    grow = ("it is the largest size measured at this U, so a larger one may do better" if best.params >= max(sizes)
            else "larger sizes measured at this U did worse within the budget")
    return f"The runs show: {turn}; {grow}. Beyond the runs nothing is concluded."


def _measured_sentence(top: Row, runs: list[Measured]) -> str:
    b = top.best
    spread = f", {b.seeds_text}" if b.seeds_text else ""
    vs = (f"; {top.gain:.4f} below the best standard run" if top.recipe != "standard" and top.gain > 0 else
          "; no measured recipe beats the standard one" if top.recipe == "standard" else "")
    return (f"At U = {top.unique_tokens:,.0f} unique tokens and at most C = {top.compute:.2g} FLOPs, the runs decide: "
            f"train {top.recipe}: {format_quantity(top.params)}-parameter model, {top.epochs:g} epochs{b.settings}, "
            "the best "
            f"measured (loss {top.loss:.4f}{spread}){vs}. {top.overruled[0].upper() + top.overruled[1:]}. "
            + runs_show(runs, b))


def run_compute(single: pd.DataFrame) -> pd.Series:
    """Training compute 6 N D of each run (D = K U)."""
    return FLOPS_PER_PARAM_TOKEN * single["params"] * single["unique_tokens"] * single["epochs"]


def evidence_region(single: pd.DataFrame) -> Evidence:
    """The largest N, K and C among the study's finished single-model runs."""
    return Evidence(float(single["params"].max()), float(single["epochs"].max()), float(run_compute(single).max()))


def finding_problem(fit: dict) -> str | None:
    """Why a fit is no finding (by the kinds of its stored caveats), or None when it may be shown as one."""
    if fit.get("error"):
        return str(fit["error"])
    reasons = [REJECT[c.kind] for c in of_record(fit) if c.kind in REJECT]
    r2 = fit.get("r2")
    if r2 is not None and r2 < 0:
        reasons.append(f"R^2 = {r2:.2f} < 0: worse than the mean")
    return "; ".join(dict.fromkeys(reasons)) or None


OUTPREDICT = 0.8  # a law whose held-out RMSE(log) is below 0.8x the data-constrained law's predicts the runs better


def outpredicted(fits: dict) -> str | None:
    """Why the data-constrained law must not move the decision: another law (one that can turn) predicts the
    study's held-out runs clearly better, past-turn runs included (study.analysis.compare_laws)."""
    dc = (fits.get("data-constrained") or {}).get("study_holdout")
    if not dc:
        return None
    rivals = {k: f["study_holdout"] for k, f in fits.items()
              if k != "data-constrained" and isinstance(f, dict) and f.get("study_holdout")}
    best = min(rivals, key=lambda k: rivals[k]["rmse_log"], default=None)
    if best is None or rivals[best]["rmse_log"] >= OUTPREDICT * dc["rmse_log"]:
        return None
    return (f"{best} predicts the study's held-out runs better ({dc['holdout']} RMSE(log) "
            f"{rivals[best]['rmse_log']:.4f} vs {dc['rmse_log']:.4f} over {dc['rows']} standard runs, "
            f"{dc['past_turn_rows']} past the turn)")


def two_step_problem(ts: dict) -> str | None:
    """Why the two-step asymptote is no finding: an inner fit worse than its mean, or a vanished E_inf."""
    if "asymptote" not in ts:
        return ts.get("skipped")
    reasons = [f"the K-fit at N = {g['params']:,.0f} has R^2 {g['r2']:.2f} < 0" for g in ts["groups"] if g["r2"] < 0]
    floor = min(g["E"] for g in ts["groups"])
    if ts["asymptote"] < 1e-3 * floor:
        reasons.append(f"E_inf = {ts['asymptote']:.2g} vanished (the fit along N has no floor)")
    if ts.get("exactly_determined"):
        reasons.append("exactly determined by three sizes, so not an estimate")
    return "; ".join(reasons) or None


def rank_caveats(caveats: list[Caveat]) -> tuple[tuple[Caveat, ...], tuple[Caveat, ...]]:
    """The caveats most likely to change the decision first, by kind (``laws.caveats.SEVERITY``; the wording
    plays no part); the first TOP_CAVEATS, and the rest. A repeated sentence counts once."""
    unique = list({(c.kind, c.line): c for c in caveats}.values())
    ordered = sorted(unique, key=lambda c: SEVERITY[c.kind])  # stable: equal kinds keep the decision's order
    return tuple(ordered[:TOP_CAVEATS]), tuple(ordered[TOP_CAVEATS:])


def _rows(plans: list[dict], single: pd.DataFrame, runs: list[Measured], law_problem: str | None,
          region: dict | None, est=None) -> tuple[list[Row], list[str]]:
    """One row per U, settled by the decision rule (``decide/engine.py``) between the law's plan at the
    largest compute and the runs measured at that U; and, for each U where nothing can be decided, why."""
    from repetita.decide.allocate import beyond_trust
    from repetita.decide.engine import Proposal, predictor, settle

    noise, _ = seed_noise(runs)
    rows, withheld = [], []
    for u in sorted({p["unique_tokens"] for p in plans}):
        p = max((p for p in plans if p["unique_tokens"] == u), key=lambda p: p["compute"])
        at_u = single[single["unique_tokens"] == u]
        ev = evidence_region(at_u if not at_u.empty else single)
        n, k = p["member_params"], p["epochs"]
        proposal = Proposal("the law", p["recipe"], n, k, p["loss"], p.get("prediction_interval"), law_problem,
                            beyond_trust(region, n, p["compute"], epochs=k, tokens=k * u),
                            predictor(est, u) if est is not None and p["recipe"] == "standard" else None)
        d = settle(proposal, runs, u, p["compute"], noise)
        if d.source == "law":
            rows.append(Row(u, p["compute"], p["recipe"], n, k, p["loss"], p.get("prediction_interval"),
                            p["loss_standard"], p.get("gain_interval"), ev, tuple(ev.outside(n, k, p["compute"])),
                            d.best))
        elif d.source == "measured":
            b = d.best
            std = best_measured(runs, u, p["compute"], recipe="standard")
            rows.append(Row(u, p["compute"], b.recipe, b.params, b.epochs, b.loss, None,
                            std.loss if std else b.loss, None, ev, (), b, "measured", d.why))
        else:
            withheld.append(f"U = {u:,.0f}: {d.why}")
    return rows, withheld


def _estimator(record: dict):
    """The fitted law of a fit record, or None where the record holds none (an error, a test's stub)."""
    from repetita.errors import UserError
    from repetita.laws.record import estimator

    if not record or "error" in record or "spec" not in record:
        return None
    try:
        return estimator(record)
    except UserError:
        return None


def _next_runs(rows: list[Row], best_epochs: list[dict]) -> list[NextRun]:
    """Runs that test the decision where it rests on extrapolation, cheapest first (a rule, not a design)."""
    runs = []
    for r in rows:
        if r.outside:
            runs.append(NextRun(r.params, r.unique_tokens, r.epochs,
                                f"the recommendation itself at U = {r.unique_tokens:,.0f}: it lies outside the runs "
                                f"({', '.join(r.outside)})"))
    edge = [b for b in best_epochs if b["at_largest_tried"]]
    if edge:
        b = max(edge, key=lambda b: (b["params"], b["unique_tokens"]))
        runs.append(NextRun(b["params"], b["unique_tokens"], 2 * b["best_epochs"],
                            f"twice the largest epoch count tried at N = {format_quantity(b['params'])}, U = "
                            f"{b['unique_tokens']:,.0f}: the loss was still falling there, the turn is unmeasured"))
    seen, out = set(), []
    for run in sorted(runs, key=lambda r: r.compute):
        key = (round(run.params), run.unique_tokens, round(run.epochs, 3))
        if key not in seen:
            seen.add(key)
            out.append(run)
    return out[:3]


def headline(decision: dict, single: pd.DataFrame, fits: dict, name: str,
             replicates: pd.DataFrame | None = None) -> Decision:
    """The first screen of the report (module docstring). ``replicates``: the single-model rows per seed
    (the seeds' spread sets the noise a measured difference must exceed)."""
    if single.empty:
        return Decision(f"Study {name} has no finished single-model runs yet: nothing to decide.", decided=False)
    evidence = evidence_region(single)
    n_sizes = single["params"].nunique()
    if single["epochs"].max() <= 1:
        return Decision(f"No recommendation for study {name}: every run saw its data once, so what repeating a "
                        "token is worth is not measured and no epoch count can be recommended (add runs that "
                        "repeat their data).", evidence=evidence, decided=False)
    if n_sizes < 2 or decision.get("skipped") or not decision.get("plans"):
        # one size cannot separate the model term from the rest: any N* the law gives is its prior, not data
        why = (f"the study has {n_sizes} model size, so the law's dependence on N is not measured and no size can "
               "be recommended (add model sizes)" if n_sizes < 2 else
               decision.get("skipped") or "no plan could be made from these runs")
        return Decision(f"No recommendation for study {name}: {why}.", evidence=evidence, decided=False)
    caveats = [Caveat.from_dict(c) if isinstance(c, dict) else c for c in decision.get("caveats") or []]
    law = fits.get("data-constrained") or {}
    problem = law_problem(law) or outpredicted(fits)
    turned = law.get("excluded_past_turn_runs") or []
    if turned:
        caveats.append(Caveat(Kind.PAST_TURN_RUNS, f"{len(turned)} standard run{'s' if len(turned) > 1 else ''} past "
                              "the turn (" + ", ".join(f"{format_quantity(n)} x {k:g} epochs at U = {u:,.0f}: {loss:.3f}"
                                                       for n, u, k, loss in turned[:3])
                              + (", ..." if len(turned) > 3 else "") + ") are outside the monotone laws' fits and "
                              "count against them in the held-out comparison"))
    if problem:
        caveats.insert(0, Caveat(Kind.OVERRULED, f"the data-constrained law fails its own checks ({problem}): it "
                                 "does not move the decision away from the runs, so each row is the best run measured "
                                 "at its U and beyond the runs nothing is concluded"))
    runs = configurations(single, replicates)
    rows, withheld = _rows(decision["plans"], single, runs, problem, law.get("region"), _estimator(law))
    caveats += [Caveat(Kind.OVERRULED, f"{w}: nothing is decided there") for w in withheld]
    if not rows:
        ranked, rest = rank_caveats(caveats)
        return Decision(f"No recommendation for study {name}: at no unique-token budget does a qualifying law or a "
                        f"measured run within the budget settle it ({withheld[0] if withheld else 'no plan'}).",
                        (), ranked, rest, evidence, decided=False)
    for r in rows:
        if r.overruled and not problem:  # a failing law is said once, below, not once per U
            caveats.insert(0, Caveat(Kind.OVERRULED, f"U = {r.unique_tokens:,.0f}: {r.overruled}; the best measured "
                                     "run stands, and beyond the runs nothing is concluded"))
        if r.outside:
            caveats.append(Caveat(Kind.OUTSIDE_RUNS, f"U = {r.unique_tokens:,.0f}: the recommendation lies outside "
                                  f"the measured region ({', '.join(r.outside)})"))
        if r.gain_interval and r.gain_interval[0] <= 0 <= r.gain_interval[1] and r.recipe != "standard":
            caveats.append(Caveat(Kind.GAIN_UNCERTAIN, f"U = {r.unique_tokens:,.0f}: the gain of {r.recipe} over "
                                  f"standard is within its interval of zero [{r.gain_interval[0]:.4f}, "
                                  f"{r.gain_interval[1]:.4f}]"))
    top = rows[-1]  # the largest unique-token budget: the most of the corpus the study used
    pi = top.prediction_interval
    gi = top.gain_interval
    sentence = _measured_sentence(top, runs) if top.source == "measured" else (f"At U = {top.unique_tokens:,.0f} unique tokens and C = {top.compute:.2g} FLOPs (the largest the study "
                f"spans), train {top.recipe}: {format_quantity(top.params)}-parameter model{'s' if ':' in top.recipe else ''}, "
                f"{top.epochs:.3g} epochs. Expected loss {top.loss:.4f}"
                + (f" (95% prediction interval {pi[0]:.3f}-{pi[1]:.3f})" if pi else " (no interval)")
                + (f", {top.gain:.4f} below the standard recipe"
                   + (f" (95% interval {gi[0]:.4f} to {gi[1]:.4f})" if gi else
                      " (no interval: the law's parameters are not identified)") if top.recipe != "standard" else
                   "; no measured recipe beats the standard one")
                + ".")
    if single["unique_tokens"].nunique() < 2:
        sentence += (" The study measured one unique-token budget: this decides that budget only; how the "
                     "decision moves with U is not measured.")
    ranked, rest = rank_caveats(caveats)
    return Decision(sentence, tuple(rows), ranked, rest, evidence,
                    tuple(_next_runs(rows, decision.get("best_epochs") or [])))
