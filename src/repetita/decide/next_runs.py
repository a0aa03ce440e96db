"""The runs a study should do next for its own decision, and a spec that runs them.

The report's decision (``decide/decision.py``) is N* and K* at the largest compute and unique-token budget
the study spans, from the data-constrained law fitted to the study's runs. ``decide.design.suggest`` ranks
the runs the study could still do by how much of that decision's uncertainty each would remove per FLOP,
chosen jointly (docs/plan.md, "Which run next"). The candidates are what ``repetita run`` can build from
the study's own spec without new choices: its model sizes (each a ``[[models]]`` table), its unique-token
budgets (prefixes of its corpus) and its epoch counts with two and four times the largest added (where
the turn of the loss may lie). A run no dearer than the decision itself is offered, none already done, and
none past a turn the runs measured. The batch spends a budget of 10% of the decision's compute
(``design.DEFAULT_BUDGET_SHARE``).

``spec_with_runs`` appends the chosen runs as ``[[runs]]`` tables to the study's own spec, so
``repetita run report/next_runs.toml --dir STUDY`` queues exactly them beside the finished grid (whose
runs it finds by id).

Where the law has no interval (too few runs), the rule of ``headline._next_runs`` stands and the report
says why.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from repetita.decide.decision import NextRun
from repetita.errors import UserError, require

NEXT_RUNS = 5  # how many runs the report suggests
DRAWS = 400  # parameter draws of the law: a suggestion of 5 from ~100 candidates in well under a second
EXTRA_EPOCHS = (2.0, 4.0)  # multiples of the largest epoch count tried that are offered
MAX_SEEDS = 8  # seed replicates of one configuration stop here (the demo study's ensembles use 8 members)


@dataclass(frozen=True)
class NextPlan:
    """The suggested runs, how they were chosen, and what the suggestion cannot see."""

    runs: tuple[NextRun, ...]
    models: tuple[int, ...]  # the [[models]] table of each run (1-based), as the spec names it
    method: str
    warnings: tuple[str, ...] = ()


def model_numbers(raw: dict, results: dict[str, dict], tidy: pd.DataFrame) -> dict[float, int]:
    """Model size N -> the number of its ``[[models]]`` table in the spec ``raw``.

    A command study names each model's N; an LM-lab study measures it, so a size is matched to the model
    table whose fields its runs' configs carry.
    """
    models = raw.get("models") or [{}]
    if "command" in (raw.get("recipes") or {}):
        return {float(m["params"]): i for i, m in enumerate(models, 1) if "params" in m}
    out: dict[float, int] = {}
    for rid, n in tidy[["run_id", "params"]].drop_duplicates().itertuples(index=False):
        cfg = (results.get(rid) or {}).get("config") or {}
        hits = [i for i, m in enumerate(models, 1) if all(cfg.get(k) == v for k, v in m.items())]
        if len(hits) == 1 and np.isfinite(n):
            out.setdefault(float(n), hits[0])
    return out


def candidates(single: pd.DataFrame, sizes: list[float], max_flops: float):
    """The study's sizes x budgets x epochs (with the extra epoch counts), less the runs done."""
    from repetita.decide.design import candidate_grid
    from repetita.laws.data import FLOPS_PER_PARAM_TOKEN

    std = single[single["recipe"] == "standard"]
    budgets = sorted(float(u) for u in std["unique_tokens"].unique())
    tried = sorted(float(k) for k in std["epochs"].unique())
    epochs = sorted(set(tried) | {m * tried[-1] for m in EXTRA_EPOCHS})
    cand = candidate_grid(sizes, budgets, epochs, flops_per_token=FLOPS_PER_PARAM_TOKEN, max_run_flops=max_flops)
    done = std[["params", "unique_tokens", "epochs"]].to_numpy(dtype=float)
    keep = np.ones(len(cand), dtype=bool)
    for n, u, k in done:
        keep &= ~(np.isclose(cand.params, n, rtol=1e-6) & np.isclose(cand.unique_tokens, u, rtol=1e-6)
                  & np.isclose(cand.epochs, k, rtol=1e-6))
    # past a measured turn a run only adds a point the monotone law's fit leaves out (study.analysis
    # .before_turn): the demo's 28.8k x 128 epochs collapsed to 5.844 and was dropped, its value thrown away
    for (n, u), g in std.groupby(["params", "unique_tokens"]):
        best = g.loc[g["loss"].idxmin(), "epochs"]
        if (g["epochs"] > best).any():  # the loss turned here: longer runs are past the turn
            keep &= ~(np.isclose(cand.params, n, rtol=1e-6) & np.isclose(cand.unique_tokens, u, rtol=1e-6)
                      & (cand.epochs > best * (1 + 1e-9)))
    return cand.take(keep)


def longer_reason(std: pd.DataFrame, params: float, unique_tokens: float, epochs: float) -> str | None:
    """Why a run longer than any measured at its (N, U) is worth running: the loss still fell between the
    two longest runs there (the turn is not reached); None for a run no longer than those measured."""
    at = std[np.isclose(std["params"], params, rtol=1e-6) & np.isclose(std["unique_tokens"], unique_tokens, rtol=1e-6)]
    if at.empty or epochs <= at["epochs"].max() * (1 + 1e-9):
        return None
    g = at.groupby("epochs")["loss"].mean().sort_index()
    if len(g) < 2:
        return f"longer than the one run at this size and U ({g.index[-1]:g} epochs): where the loss turns is unmeasured"
    return (f"the loss still fell from {g.iloc[-2]:.4f} at {g.index[-2]:g} to {g.iloc[-1]:.4f} at {g.index[-1]:g} epochs "
            "at this size and U: the turn lies beyond")


def replicates(headline, tidy: pd.DataFrame | None, numbers: dict[float, int]) -> list[NextRun]:
    """Seed replicates where the decision hinges on a difference within the seed noise: the best measured run
    at the largest U and the runner-up within the same compute, when they differ by less than that noise,
    each run once more with a seed not yet used there."""
    from repetita.decide.measured import best_measured, configurations, seed_noise

    top = headline.rows[-1] if headline.rows else None
    if top is None or top.source != "measured" or tidy is None or tidy.empty or "seed" not in tidy:
        return []
    single = tidy[tidy["members"] == 1] if "members" in tidy else tidy
    runs = configurations(single.groupby([c for c in ("recipe", "params", "unique_tokens", "epochs", "lr",
                                                       "weight_decay") if c in single], as_index=False,
                                         dropna=False)["loss"].mean(), single)
    noise, _ = seed_noise(runs)
    best = best_measured(runs, top.unique_tokens, top.compute)
    rivals = sorted((m for m in runs if m is not best and m.recipe == "standard" and best is not None
                     and abs(m.unique_tokens / best.unique_tokens - 1) < 1e-3 and m.compute <= top.compute * 1.000001),
                    key=lambda m: m.loss)
    if best is None or best.recipe != "standard" or not rivals:
        return []
    # the noise of a difference of two means shrinks with their seeds: replicates stop once it resolves the
    # difference (or at MAX_SEEDS), so a near tie is not replicated for ever
    tol = noise * np.sqrt((1 / best.seeds + 1 / rivals[0].seeds) / 2)
    if rivals[0].loss - best.loss > tol or max(best.seeds, rivals[0].seeds) >= MAX_SEEDS:
        return []
    out = []
    for m in (best, rivals[0]):
        if m.params not in numbers:
            continue
        used = single[np.isclose(single["params"], m.params) & np.isclose(single["unique_tokens"], m.unique_tokens)
                      & np.isclose(single["epochs"], m.epochs)]["seed"]
        seed = int(used.max()) + 1 if len(used) else 1
        out.append(NextRun(m.params, m.unique_tokens, m.epochs,
                           f"a seed replicate: the decision rests on {best.loss:.4f} vs {rivals[0].loss:.4f}, within "
                           f"the seed noise of that difference ({tol:.3f}; {m.seeds} seed(s) so far)", seed))
    return out


def plan_next(law, headline, single: pd.DataFrame, numbers: dict[float, int], k: int = NEXT_RUNS,
              seed: int = 0, tidy: pd.DataFrame | None = None) -> NextPlan:
    """The next ``k`` runs for the study's decision (module docstring); raises ``UserError`` with the reason
    when they cannot be designed."""
    from repetita.decide.design import DEFAULT_BUDGET_SHARE, Target, suggest

    if law is None or not headline.rows:
        raise UserError("the study has no decision to settle yet")
    top = headline.rows[-1]
    sizes = sorted(numbers)
    if len(sizes) < 2:
        raise UserError("fewer than two model sizes can be matched to the spec's [[models]] tables")
    cand = candidates(single, sizes, top.compute)
    if not len(cand):
        raise UserError("every run the spec can build at or below the decision's compute is done")
    budget = max(DEFAULT_BUDGET_SHARE * top.compute, float(cand.cost.min()))
    out = suggest({"data-constrained": law}, Target(top.unique_tokens, compute=top.compute), cand, k,
                  n_draws=DRAWS, seed=seed, budget=budget)
    runs = replicates(headline, tidy, numbers)
    if out["settled"] and not runs:
        raise UserError(out["settled"])
    std = single[single["recipe"] == "standard"]
    for r in out["runs"][: max(k - len(runs), 0)]:
        b, a = r["sd_before"], r["sd_after"]
        longer = longer_reason(std, r["params"], r["unique_tokens"], r["epochs"])
        runs.append(NextRun(r["params"], r["unique_tokens"], r["epochs"],
                            f"expected to narrow sd ln N* {b['log_params']:.3g} -> {a['log_params']:.3g} and sd loss "
                            f"{b['loss']:.3g} -> {a['loss']:.3g} (given the runs above it)"
                            + (f"; longer than any run measured here because {longer}" if longer else "")))
    return NextPlan(tuple(runs), tuple(numbers[r.params] for r in runs),
                    "the batch that removes the most of the decision's variance within a budget of "
                    f"{budget:.3g} FLOPs ({100 * DEFAULT_BUDGET_SHARE:g}% of its compute; {out['selection']}), chosen "
                    f"jointly ({out['method']}; {DRAWS} draws of the data-constrained law); no run past a measured "
                    "turn, which the law's fit would leave out"
                    + ("; first, seed replicates where the decision rests on a difference within the seed noise"
                       if runs and runs[0].seed is not None else ""),
                    tuple(out["warnings"]))


def spec_with_runs(spec_text: str, plan: NextPlan, study_dir: str) -> str:
    """The study's spec with the suggested runs appended as ``[[runs]]`` tables."""
    head = (f"{spec_text.rstrip()}\n\n# The next runs suggested by `repetita report` for this study's decision; run "
            f"them\n# beside the finished ones with: repetita run THIS_FILE --dir {study_dir}\n")
    return head + _runs_toml(plan.models, plan.runs)


SKELETON = """# Runs suggested by `repetita suggest`. Put your training command below (docs/study.md, "Your own
# trainer"), then: repetita run THIS_FILE --dir STUDY. Each run names the model size the laws assumed
# (params, given to the command as {params}); build your model of that size from it.
name = "suggested"
seeds = [0]

[recipes.command]
command = "{python} train.py --n-params {params} --unique-tokens {unique_tokens} --epochs {epochs} --seed {seed} --out {run_dir}"
result = {kind = "json", path = "result.json", key = "eval_loss"}
"""


def spec_for_suggestion(runs: list[dict], base_text: str | None = None) -> str:
    """A spec that runs ``repetita suggest``'s runs: ``base_text`` (a command spec) or a skeleton to fill in,
    with the runs appended as ``[[runs]]`` tables: by model number where the spec has a table of that size,
    else by ``params`` (only where the spec's models carry no other field repetita would have to invent)."""
    import tomllib

    text = base_text if base_text is not None else SKELETON
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"--spec-base: malformed TOML ({exc})") from None
    require("command" in (raw.get("recipes") or {}), "--spec-base must be a spec of your own trainer "
            "([recipes.command], whose [[models]] name params): an LM-lab spec measures its sizes, so take its next "
            "runs from `repetita report STUDY`")
    models = list(raw.get("models") or [])
    require(all(isinstance(m, dict) and "params" in m for m in models), "--spec-base: every [[models]] table "
            "needs params")
    number = {float(m["params"]): i for i, m in enumerate(models, 1)}
    fields = sorted({k for m in models for k in m} - {"params"})
    new = sorted({float(r["params"]) for r in runs} - set(number))
    require(not (new and fields), f"--spec-base: its [[models]] tables carry {', '.join(fields)}, which repetita "
            f"cannot choose for the suggested size(s) {', '.join(f'{n:.4g}' for n in new)}: add a [[models]] table for "
            "each, or offer only the spec's own sizes in --sizes")
    points = [NextRun(r["params"], r["unique_tokens"], r["epochs"], r.get("why") or (
        f"expected to remove {100 * r['value']:.3g}% of the decision's variance" if "value" in r else ""))
        for r in runs]
    return text.rstrip() + "\n" + _runs_toml([number.get(float(r.params)) for r in points], points)


def _runs_toml(models, runs) -> str:
    lines = []
    for m, r in zip(models, runs, strict=True):
        lines += ["", "[[runs]]", f"model = {m}" if m is not None else f"params = {_toml_number(r.params)}",
                  f"unique_tokens = {int(round(r.unique_tokens))}", f"epochs = {_toml_number(r.epochs)}"]
        lines += [f"seed = {int(r.seed)}"] if r.seed is not None else []
        lines += [f"why = {_toml_string(r.why)}"] if r.why else []
    return "\n".join(lines) + "\n"


def _toml_number(x: float) -> str:
    """A whole number as an integer, anything else as a float TOML reads back exactly (repr round-trips)."""
    return str(int(x)) if float(x).is_integer() and abs(x) < 2**53 else repr(float(x))


def _toml_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
