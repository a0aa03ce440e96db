"""A decision backtest: replay a run table (or a study) budget by budget and score each decision against
the runs the decision had not seen.

The table's configurations are cut into ``levels`` compute levels (quantiles of log 6 N D). At each level
the laws are fitted on the runs of the levels below, and for every U present at the level the decision is
made at the level's largest compute C by the decision rule (``engine.settle``: measured runs first, a law
only inside the trust region and where no run contradicts it). Each decision is scored with all runs:

- regret: the measured loss of the run that measures the decision (same U, N and K within a factor
  ``measured.NEAR``), or, where no run is that near, the loss interpolated linearly in (ln N, ln K) between
  the runs at that U (law-free), minus the best loss measured at (U, C); unscored outside their hull;
- contradicted: whether a run of the whole table contradicts it (``engine.is_contradicted``).

Beside the decision, two baselines are scored the same way: the law's own optimum ("law alone") and the
best run measured below the level ("runs only"). A synthetic table made from a known law can also be
scored against the truth (``truth``): the true loss of the decision minus the true optimum at (U, C).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from repetita.decide.allocate import TRUST_FACTOR, check_trust
from repetita.decide.engine import Proposal, Settled, is_contradicted, law_problem, settle
from repetita.decide.measured import Measured, best_measured, configurations, near, seed_noise
from repetita.errors import UserError, require
from repetita.laws.data import FLOPS_PER_PARAM_TOKEN


@dataclass(frozen=True)
class BacktestConfig:
    laws: tuple[str, ...] = ("data-constrained",)
    levels: int | None = None  # None: enough levels that each is within ``trust`` x the compute below it
    min_rows: int = 20  # fewer fitting rows than this: the level is not decided
    trust: float = TRUST_FACTOR
    tie_alpha_beta: bool = False  # the study's setting for few runs

    def __post_init__(self):
        from repetita.laws.law import LAWS

        require(self.laws, "give at least one law")
        for law in self.laws:
            require(law in LAWS, f"unknown law {law!r}; known: {', '.join(LAWS)}")
        require(self.levels is None or 2 <= self.levels <= 50, f"levels {self.levels}: give 2 to 50 compute levels")
        require(self.min_rows >= 5, f"min_rows {self.min_rows}: at least 5 rows to fit a law")
        check_trust(self.trust)


@dataclass(frozen=True)
class Case:
    """One decision at one (level, U) by one law, with its baselines, scored."""

    level: int
    compute: float
    unique_tokens: float
    law: str
    fitted_rows: int
    source: str  # the decision's: "law", "measured" or "withheld"
    params: float | None
    epochs: float | None
    why: str | None
    best_loss: float  # the best measured at (U, C), over the whole table
    regret: float | None  # the decision's
    scored_by: str  # "run", "interpolated" or "unscored"
    contradicted: bool
    regret_law_alone: float | None
    regret_runs_only: float | None
    true_regret: float | None = None


@dataclass(frozen=True)
class Summary:
    law: str
    decisions: int
    scored: int
    median_regret: float | None
    max_regret: float | None
    contradicted: int
    median_regret_law_alone: float | None
    median_regret_runs_only: float | None
    median_true_regret: float | None = None


@dataclass(frozen=True)
class BacktestResult:
    config: BacktestConfig
    source: str
    configurations: int
    noise: float
    noise_how: str
    seed_sd: float | None  # pooled standard deviation over replicated configurations (None without seeds)
    cases: list[Case] = field(default_factory=list)
    summaries: list[Summary] = field(default_factory=list)

    def to_json(self) -> dict:
        return asdict(self)


def table_configurations(df: pd.DataFrame) -> tuple[pd.DataFrame, list[Measured]]:
    """(fitting rows: params, tokens, unique_tokens, loss; measured configurations with their seeds)."""
    from repetita.laws.data import canonical

    df = canonical(df)
    missing = [c for c in ("params", "tokens", "unique_tokens", "loss") if c not in df]
    require(not missing, f"a backtest needs the columns params, tokens, unique_tokens and loss; missing: "
            f"{', '.join(missing)}")
    rows = df[["params", "tokens", "unique_tokens", "loss"]].apply(pd.to_numeric, errors="coerce")
    bad = ~np.isfinite(rows.to_numpy(dtype=float)).all(axis=1) | (rows.to_numpy(dtype=float) <= 0).any(axis=1)
    if bad.any():
        raise UserError(f"row {int(np.flatnonzero(bad)[0]) + 1}: params, tokens, unique_tokens and loss must be "
                        "positive finite numbers")
    single = rows.assign(recipe="standard", epochs=(rows["tokens"] / rows["unique_tokens"]).round(9))
    return rows.reset_index(drop=True), configurations(single, single)


def pooled_sd(runs: list[Measured], rows: pd.DataFrame) -> float | None:
    """The seeds' pooled standard deviation over replicated configurations (None without replicates)."""
    key = rows.assign(epochs=(rows["tokens"] / rows["unique_tokens"]).round(9))
    g = key.groupby(["params", "unique_tokens", "epochs"])["loss"]
    var, dof = g.var(ddof=1), g.size() - 1
    ok = dof > 0
    return float(math.sqrt((var[ok] * dof[ok]).sum() / dof[ok].sum())) if ok.any() else None


def _levels(runs: list[Measured], count: int | None, trust: float) -> np.ndarray:
    """The upper edge of each compute level (quantiles of log compute over the configurations). By default
    the count makes one level's span about ``trust`` (a decision one level up is then a budget the trust
    region admits, not one it withholds by construction), at most 50."""
    c = np.log(np.array([m.compute for m in runs]))
    if count is None:
        count = int(min(50, max(2, math.ceil((c.max() - c.min()) / math.log(max(trust, 1.5))))))
    return np.exp(np.unique(np.quantile(c, np.linspace(0, 1, count + 1))[1:]))


def score(runs: list[Measured], u: float, params: float | None, epochs: float | None,
          compute: float) -> tuple[float | None, str]:
    """The regret of a decision at (U, C): the loss measured at it (or interpolated law-free) minus the best
    measured at U within C, or within the measuring run's own compute where that is larger (a run up to
    NEAR^2 above C measures the point; it is compared with what that much compute bought);
    (regret, "run" | "interpolated" | "unscored")."""
    if params is None:
        return None, "unscored"
    hits = near(runs, "standard", params, u, epochs)
    if hits:
        return hits[0].loss - best_measured(runs, u, max(compute, hits[0].compute)).loss, "run"
    at_u = [m for m in runs if abs(m.unique_tokens / u - 1) < 1e-3]
    pts = np.array([[math.log(m.params), math.log(m.epochs)] for m in at_u])
    if len(at_u) < 3 or np.linalg.matrix_rank(pts - pts.mean(axis=0)) < 2:
        return None, "unscored"
    from scipy.interpolate import LinearNDInterpolator

    value = float(LinearNDInterpolator(pts, [m.loss for m in at_u])([[math.log(params), math.log(epochs)]])[0])
    if not math.isfinite(value):
        return None, "unscored"
    return value - best_measured(runs, u, compute).loss, "interpolated"


def _proposal(law: str, est, a, thetas, compute: float, u: float, trust: float, problem: str | None) -> Proposal:
    """The law's proposal at (U, C) from its allocation ``a`` there: its optimum, or beyond the trust region
    its best plan inside it. ``problem``: why the law may not move a decision (``engine.law_problem``)."""
    from repetita.decide.allocate import beyond_trust, supported_allocation
    from repetita.decide.engine import predictor

    predict = predictor(est, u, thetas)
    beyond = beyond_trust(est.region_, a.params, a.compute, trust, a.epochs, a.tokens)
    if beyond:
        s = supported_allocation(est, compute, u, trust)
        if s is not None:
            return Proposal(law, "standard", s.params, s.epochs, s.loss, predict(s.params, s.epochs)[1], problem,
                            predict=predict)
    return Proposal(law, "standard", a.params, a.epochs, a.loss, predict(a.params, a.epochs)[1], problem, beyond,
                    predict)


def _draws(est, train: pd.DataFrame):
    """Parameter draws from the fit's sandwich (Laplace) uncertainty, as the study attaches it; None when
    the fit has no finite one (the decision then carries the fit's scatter alone)."""
    from repetita.decide.laws import draws
    from repetita.laws.record import uncertainty_block
    from repetita.laws.uncertainty import laplace

    try:
        est.uncertainty_ = uncertainty_block(laplace(est, train))
    except (UserError, np.linalg.LinAlgError, ValueError):
        return None
    return draws(est)[0]


def backtest(df: pd.DataFrame, config: BacktestConfig = BacktestConfig(), source: str = "table",
             truth=None) -> BacktestResult:
    """Replay ``df`` level by level (module docstring). ``truth(params, tokens, unique) -> loss`` scores
    a synthetic table against the law that made it."""
    from repetita.laws.fit import LawFit

    rows, runs = table_configurations(df)
    require(len(runs) >= config.min_rows, f"{source}: {len(runs)} configurations; a backtest needs at least "
            f"{config.min_rows}")
    noise, how = seed_noise(runs)
    edges = _levels(runs, config.levels, config.trust)
    cases = []
    row_compute = FLOPS_PER_PARAM_TOKEN * rows["params"] * rows["tokens"]
    for i in range(1, len(edges)):
        train = rows[row_compute <= edges[i - 1] * (1 + 1e-9)]
        seen = [m for m in runs if m.compute <= edges[i - 1] * (1 + 1e-9)]
        level = [m for m in runs if edges[i - 1] * (1 + 1e-9) < m.compute <= edges[i] * (1 + 1e-9)]
        if len(train) < config.min_rows or train["params"].nunique() < 2 or not level:
            continue
        for law in config.laws:
            try:
                est = LawFit(law, tie={"beta": "alpha"} if config.tie_alpha_beta else None).fit(train)
            except UserError:
                continue
            thetas = _draws(est, train)
            problem = law_problem(est.result())  # the same for every U of this level
            for u in sorted({m.unique_tokens for m in level}):
                c = max(m.compute for m in level if m.unique_tokens == u)
                cases.append(_case(i, c, u, law, est, thetas, problem, len(train), seen, runs, noise, config.trust,
                                   truth))
    require(cases, f"{source}: no level had {config.min_rows} fitting rows from two model sizes below it; "
            "give fewer --levels or a larger table")
    return BacktestResult(config, source, len(runs), noise, how, pooled_sd(runs, rows), cases,
                          [_summary(law, [x for x in cases if x.law == law]) for law in config.laws])


def _case(level: int, c: float, u: float, law: str, est, thetas, problem: str | None, fitted: int,
          seen: list[Measured], runs: list[Measured], noise: float, trust: float, truth) -> Case:
    from repetita.decide.allocate import allocate

    try:
        a = allocate(est, c, u)  # the law's own optimum: its proposal starts here, and "law alone" is it
    except UserError:
        a = None
    d: Settled = settle(_proposal(law, est, a, thetas, c, u, trust, problem) if a else None, seen, u, c, noise)
    best = best_measured(runs, u, c)
    regret, how = score(runs, u, d.params, d.epochs, c)
    law_regret, _ = score(runs, u, a.params if a else None, a.epochs if a else None, c)
    only = best_measured(seen, u, c)
    true = None
    if truth is not None and d.params is not None:
        true = float(truth(d.params, d.epochs * u, u) - _true_optimum(truth, c, u))
    return Case(level, c, u, law, fitted, d.source, d.params, d.epochs, d.why, best.loss, regret, how,
                is_contradicted(d, runs, noise), law_regret, None if only is None else only.loss - best.loss, true)


def _true_optimum(truth, c: float, u: float) -> float:
    n = np.geomspace(1e3, c / FLOPS_PER_PARAM_TOKEN, 4001)
    return float(np.min(truth(n, c / (FLOPS_PER_PARAM_TOKEN * n), u)))


def _median(values) -> float | None:
    v = [x for x in values if x is not None]
    return float(np.median(v)) if v else None


def _summary(law: str, cases: list[Case]) -> Summary:
    scored = [x.regret for x in cases if x.regret is not None]
    return Summary(law, len(cases), len(scored), _median(scored), max(scored) if scored else None,
                   sum(x.contradicted for x in cases), _median(x.regret_law_alone for x in cases),
                   _median(x.regret_runs_only for x in cases), _median(x.true_regret for x in cases))


# The synthetic table: the published data-constrained law (examples/laws/datablations-published.json) on a
# grid of 7 model sizes x 3 unique-token budgets x 6 epoch counts, each loss times exp(noise), noise normal
# with ``noise`` standard deviation on the log scale. The law that made it scores every decision (``truth``).
SYNTHETIC_SIZES = tuple(np.geomspace(2e7, 2e9, 7))
SYNTHETIC_BUDGETS = (1e9, 4e9, 1.6e10)
SYNTHETIC_EPOCHS = (1, 2, 4, 8, 16, 32)


def synthetic_table(noise: float = 0.002, seed: int = 0):
    """(table, truth): a run table made from a known law with log-normal noise, and that law."""
    from repetita.laws.evaluate import predicted_loss
    from repetita.laws.record import load

    require(0 <= noise <= 0.5 and math.isfinite(noise), f"noise {noise:g}: give a log-scale sd from 0 to 0.5")
    law = load("example:datablations-published")
    n, u, k = (a.ravel() for a in np.meshgrid(SYNTHETIC_SIZES, SYNTHETIC_BUDGETS, SYNTHETIC_EPOCHS, indexing="ij"))
    clean = predicted_loss(law, n, k * u, u)
    loss = clean * np.exp(noise * np.random.default_rng(seed).standard_normal(clean.shape))
    table = pd.DataFrame({"params": n, "tokens": k * u, "unique_tokens": u, "loss": loss})
    return table, lambda params, tokens, unique: predicted_loss(law, params, tokens, unique)
