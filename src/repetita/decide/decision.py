"""The report's first screen, as a typed result: one sentence, one row per unique-token budget, the
caveats that change the decision, and the runs that would firm it up. Pure functions of the study's
decision (``study/decision.py``), its single-model runs and its law fits; ``study/report.py`` renders it.

Which fits count as findings: a law or asymptote fit whose own diagnostics say a term vanished, a
parameter is not identified or sits at a bound, or whose R^2 is negative, is not a finding. The report
folds it under that reason (``finding_problem``); it never stands beside valid fits as a number or a curve.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import pandas as pd

from repetita.cliargs import format_quantity
from repetita.study.decision import FLOPS_PER_PARAM_TOKEN
from repetita.study.measured import Measured, best_measured, configurations, contradiction, seed_noise

TOP_CAVEATS = 5
# A caveat's rank: the first pattern it contains decides (lower = more likely to change the decision).
CAVEAT_RANK = (
    ("fails its own diagnostics", 0),
    ("is not taken", 0),
    ("outside the measured region", 1),
    ("within its interval of zero", 2),
    ("largest tried", 3),
    ("edge of the model sizes", 4),
    ("not identified", 5),
    ("no finite interval", 5),
    ("varies", 6),
    ("below 0.9", 7),
)
# Words in a fit's warnings that make it no finding (laws/diagnostics.py and laws/asymptote.py say them).
REJECT = (("vanished", "a term vanished"), ("not identified", "a parameter is not identified"),
          ("sits at its upper bound", "a parameter sits at its bound"),
          ("sits at its lower bound", "a parameter sits at its bound"))


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

    @property
    def compute(self) -> float:
        return FLOPS_PER_PARAM_TOKEN * self.params * self.unique_tokens * self.epochs


@dataclass(frozen=True)
class Headline:
    sentence: str
    rows: tuple[Row, ...] = ()
    caveats: tuple[str, ...] = ()  # at most TOP_CAVEATS, most important first
    more_caveats: tuple[str, ...] = ()
    evidence: Evidence | None = None
    next_runs: tuple[NextRun, ...] = ()
    decided: bool = True
    notes: tuple[str, ...] = field(default=())
    # how next_runs were chosen: by rule (this module) or designed (study/next_runs.py), and why not designed
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
            lines += ["", "Caveats that may change it:"] + [f"{i}. {c}" for i, c in enumerate(self.caveats, 1)]
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


def _measured_sentence(top: Row) -> str:
    b = top.best
    spread = f", {b.seeds_text}" if b.seeds_text else ""
    vs = (f"; {top.gain:.4f} below the best standard run" if top.recipe != "standard" and top.gain > 0 else "")
    return (f"At U = {top.unique_tokens:,.0f} unique tokens and at most C = {top.compute:.2g} FLOPs, the runs decide: "
            f"train {top.recipe}: {format_quantity(top.params)}-parameter model, {top.epochs:g} epochs{b.settings}, "
            "the best "
            f"measured (loss {top.loss:.4f}{spread}){vs}. {top.overruled[0].upper() + top.overruled[1:]}.")


def run_compute(single: pd.DataFrame) -> pd.Series:
    """Training compute 6 N D of each run (D = K U)."""
    return FLOPS_PER_PARAM_TOKEN * single["params"] * single["unique_tokens"] * single["epochs"]


def evidence_region(single: pd.DataFrame) -> Evidence:
    """The largest N, K and C among the study's finished single-model runs."""
    return Evidence(float(single["params"].max()), float(single["epochs"].max()), float(run_compute(single).max()))


def finding_problem(fit: dict) -> str | None:
    """Why a fit is no finding (its diagnostics' own words), or None when it may be shown as one."""
    if fit.get("error"):
        return str(fit["error"])
    reasons = [why for w in fit.get("warnings") or [] for word, why in REJECT if word in w]
    r2 = fit.get("r2")
    if r2 is not None and r2 < 0:
        reasons.append(f"R^2 = {r2:.2f} < 0: worse than the mean")
    return "; ".join(dict.fromkeys(reasons)) or None


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


def rank_caveats(caveats: list[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The caveats most likely to change the decision first; the first TOP_CAVEATS, and the rest."""
    def rank(c: str) -> int:
        return next((r for word, r in CAVEAT_RANK if word in c), len(CAVEAT_RANK))

    ordered = sorted(dict.fromkeys(caveats), key=rank)  # stable: equal ranks keep the decision's order
    return tuple(ordered[:TOP_CAVEATS]), tuple(ordered[TOP_CAVEATS:])


def _rows(plans: list[dict], single: pd.DataFrame, runs: list[Measured], law_problem: str | None) -> list[Row]:
    """One row per U: the law's plan at the largest compute, unless a run of the study contradicts it or the
    law fails its own checks; then the best run measured at that U within that compute (study/measured.py)."""
    noise, _ = seed_noise(runs)
    rows = []
    for u in sorted({p["unique_tokens"] for p in plans}):
        p = max((p for p in plans if p["unique_tokens"] == u), key=lambda p: p["compute"])
        at_u = single[single["unique_tokens"] == u]
        ev = evidence_region(at_u if not at_u.empty else single)
        best = best_measured(runs, u, p["compute"])
        row = Row(u, p["compute"], p["recipe"], p["member_params"], p["epochs"], p["loss"],
                  p.get("prediction_interval"), p["loss_standard"], p.get("gain_interval"), ev,
                  tuple(ev.outside(p["member_params"], p["epochs"], p["compute"])), best)
        verdict = contradiction(runs, p["recipe"], p["member_params"], u, p["epochs"], p.get("prediction_interval"),
                                best, noise)
        why = (f"contradicted by {verdict.text()}" if verdict else
               f"the law fails its own checks ({law_problem})" if law_problem else None)
        if why and best is not None:
            std = best_measured(runs, u, p["compute"], recipe="standard")
            row = Row(u, p["compute"], best.recipe, best.params, best.epochs, best.loss, None,
                      std.loss if std else best.loss, None, ev, (), best, "measured",
                      f"the law's plan ({p['recipe']}, {format_quantity(p['member_params'])} params, "
                      f"{p['epochs']:.3g} epochs, predicted {p['loss']:.4f}) is not taken: {why}")
        rows.append(row)
    return rows


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
             replicates: pd.DataFrame | None = None) -> Headline:
    """The first screen of the report (module docstring). ``replicates``: the single-model rows per seed
    (the seeds' spread sets the noise a measured difference must exceed)."""
    if single.empty:
        return Headline(f"Study {name} has no finished single-model runs yet: nothing to decide.", decided=False)
    evidence = evidence_region(single)
    n_sizes = single["params"].nunique()
    if n_sizes < 2 or decision.get("skipped") or not decision.get("plans"):
        # one size cannot separate the model term from the rest: any N* the law gives is its prior, not data
        why = (f"the study has {n_sizes} model size, so the law's dependence on N is not measured and no size can "
               "be recommended (add model sizes)" if n_sizes < 2 else
               decision.get("skipped") or "no plan could be made from these runs")
        return Headline(f"No recommendation for study {name}: {why}.", evidence=evidence, decided=False)
    caveats = list(decision.get("caveats") or [])
    law = fits.get("data-constrained") or {}
    problem = finding_problem(law)
    if problem:
        caveats.insert(0, f"the data-constrained law fails its own diagnostics ({problem}): it does not move the "
                          "decision away from the runs, so each row is the best run measured at its U and beyond "
                          "the runs nothing is concluded")
    runs = configurations(single, replicates)
    rows = _rows(decision["plans"], single, runs, problem)
    for r in rows:
        if r.overruled and not problem:  # a failing law is said once, below, not once per U
            caveats.insert(0, f"U = {r.unique_tokens:,.0f}: {r.overruled}; the best measured run stands, and "
                              "beyond the runs nothing is concluded")
        if r.outside:
            caveats.append(f"U = {r.unique_tokens:,.0f}: the recommendation lies outside the measured region "
                           f"({', '.join(r.outside)})")
        if r.gain_interval and r.gain_interval[0] <= 0 <= r.gain_interval[1] and r.recipe != "standard":
            caveats.append(f"U = {r.unique_tokens:,.0f}: the gain of {r.recipe} over standard is within its interval "
                           f"of zero [{r.gain_interval[0]:.4f}, {r.gain_interval[1]:.4f}]")
    top = rows[-1]  # the largest unique-token budget: the most of the corpus the study used
    pi = top.prediction_interval
    gi = top.gain_interval
    sentence = _measured_sentence(top) if top.source == "measured" else (f"At U = {top.unique_tokens:,.0f} unique tokens and C = {top.compute:.2g} FLOPs (the largest the study "
                f"spans), train {top.recipe}: {format_quantity(top.params)}-parameter model{'s' if ':' in top.recipe else ''}, "
                f"{top.epochs:.3g} epochs. Expected loss {top.loss:.4f}"
                + (f" (95% prediction interval {pi[0]:.3f}-{pi[1]:.3f})" if pi else " (no interval)")
                + (f", {top.gain:.4f} below the standard recipe"
                   + (f" (95% interval {gi[0]:.4f} to {gi[1]:.4f})" if gi else
                      " (no interval: the law's parameters are not identified)") if top.recipe != "standard" else
                   "; no measured recipe beats the standard one")
                + ".")
    ranked, rest = rank_caveats(caveats)
    return Headline(sentence, tuple(rows), ranked, rest, evidence,
                    tuple(_next_runs(rows, decision.get("best_epochs") or [])))
