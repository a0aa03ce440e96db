"""The recipe system: recipes that squeeze a fixed dataset (Kim, Kotha, Liang, Hashimoto 2025,
"Pre-training under infinite compute"), used by ``repetita train --recipe`` and by study specs alike.

- ``standard``: weight decay fixed (0.1), epochs tuned over a grid.
- ``regularized``: tuned LR x WD x epochs. ``search="coordinate"`` (the default) walks the grids one
  axis at a time and stops at a point whose every neighbour (one step along each axis) was measured
  and is worse: a certified local optimum. ``search="grid"`` measures every grid point instead.
  Kim et al. find the tuned weight decay ~30x larger than the usual 0.1 when parameters outnumber tokens.
- ``ensemble``: K ordinary one-model runs with seeds seed..seed+K-1 (recipe label ``ensemble``), then an
  ensemble evaluation over their final weights, averaging logits (probability averaging is reported too).
  A member's config does not depend on K, so the ensemble of 4 reuses the first 4 members of the
  ensemble of 8: a study trains 8 members for K = 1, 2, 4, 8, as Kim et al. 2025 evaluate K = 1..8.
- ``distill``: a K-member ensemble teaches a single student (token-level KL mixed with the data loss, and/or
  sequence-level distillation on teacher samples mixed with real data).
- ``self-distill``: the teacher is one standard model of the student's size.
- ``reuse``: Yan et al.'s protocol for measuring E(K, U): K-epoch runs on U unique tokens at a constant
  learning rate (no decay, so a loss part-way through the fresh run is the loss of a run that long; no
  warm-up either, unlike Yan et al., because a warm-up set as a fraction of each run would differ between
  runs of different lengths), beside one long one-pass run on ``reference_tokens`` fresh tokens evaluated
  ``reference_evals`` times: the fresh-data reference. The reference config does not depend on U, so a
  study trains it once per model and seed.

A recipe is a function of a *measure* callback: ``measure(configs) -> results``. Run locally, measure
trains the configs (``run_recipe``); in a study, it looks results up in the store and raises
:class:`Pending` with the configs still to train, which the study queues (``proposals``). The same code
thus decides what to run in both, and tidy rows carry the same labels whichever entry point ran them.
Every run lives in ``<root>/runs/<config hash>``; a student names its teacher as ``runs/<id>``.

Each recipe is registered once, at the bottom of this file, as a ``recipe_registry.Recipe``: its spec
keys, its params class (its own knobs, levanter's pattern of one config class per registered choice),
its cells, its run function, its cost model and its label. Adding a recipe means adding one params class,
one function pair (cells, run) and one ``register`` call, here or in the user's own file.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from repetita import recipe_registry
from repetita.errors import UserError, require
from repetita.lm.config import TrainConfig
from repetita.recipe_registry import Recipe, register
from repetita.runpaths import teacher_id, teacher_ref

SEARCHES = ("coordinate", "grid")
STUDENT_SEED_OFFSET = 1000  # a student must not start from its teacher's initialisation


class Pending(Exception):
    """Raised by a study's measure: these configs must be trained before the recipe can go on."""

    def __init__(self, configs: list[TrainConfig]):
        super().__init__(f"{len(configs)} run(s) to train")
        self.configs = configs


def _increasing(name: str, grid: tuple, zero_ok: bool = False) -> None:
    require(len(grid) >= 1 and list(grid) == sorted(set(grid)), f"{name}={grid} must be increasing")
    require(all(v > 0 or (zero_ok and v == 0) for v in grid),
            f"{name} values must be > 0" + (" (weight decay >= 0)" if zero_ok else ""))


# --- each recipe's own knobs (a recipe names its class in the registry: Recipe.params) -------------------


@dataclass(frozen=True)
class StandardParams:
    weight_decay: float = 0.1  # the fixed weight decay

    def __post_init__(self):
        require(self.weight_decay >= 0, f"weight_decay={self.weight_decay} must be >= 0")


@dataclass(frozen=True)
class RegularizedParams:
    lr_grid: tuple[float, ...] = (1e-3, 2e-3, 4e-3, 8e-3)
    wd_grid: tuple[float, ...] = (0.1, 0.2, 0.4, 0.8, 1.6, 3.2)
    search: str = "coordinate"  # "coordinate" (certified local optimum) or "grid"
    start: tuple[int, int, int] | None = None  # (lr, wd, epochs) grid indices; None = nearest to base's values
    max_runs: int = 60  # safety bound on the coordinate search

    def __post_init__(self):
        object.__setattr__(self, "lr_grid", tuple(self.lr_grid))
        object.__setattr__(self, "wd_grid", tuple(self.wd_grid))
        if self.start is not None:
            object.__setattr__(self, "start", tuple(self.start))
        require(self.search in SEARCHES, f"search={self.search!r} must be one of {SEARCHES}")
        _increasing("lr_grid", self.lr_grid)
        _increasing("wd_grid", self.wd_grid, zero_ok=True)
        require(self.start is None or len(self.start) == 3, "start must be (lr_index, wd_index, epochs_index)")
        require(self.max_runs >= 1, f"max_runs={self.max_runs} must be >= 1")


@dataclass(frozen=True)
class EnsembleParams:
    members: int = 4  # K

    def __post_init__(self):
        require(self.members >= 2, f"members={self.members} must be >= 2 for an ensemble")


@dataclass(frozen=True)
class DistillParams:
    members: int = 4  # the teacher's size (self-distill: one model)
    distill_alpha: float = 0.5
    distill_temperature: float = 1.0
    seq_distill_frac: float = 0.0

    def __post_init__(self):
        require(self.members >= 1, f"members={self.members} must be >= 1")
        require(0 <= self.distill_alpha <= 1, f"distill_alpha={self.distill_alpha} must be in [0, 1]")


@dataclass(frozen=True)
class ReuseParams:
    weight_decay: float = 0.1
    reference_tokens: int | None = None  # fresh tokens of the one-pass reference run
    reference_evals: int = 48  # evaluations along the reference run

    def __post_init__(self):
        require(self.weight_decay >= 0, f"weight_decay={self.weight_decay} must be >= 0")
        require(self.reference_evals >= 4, f"reference_evals={self.reference_evals} must be >= 4")


@dataclass(frozen=True)
class RecipeConfig:
    """One cell of a recipe: the recipe's name, the base run, the epoch grid every recipe searches or sets,
    and ``params``, an instance of the recipe's own params class (``Recipe.params``). Build one with
    :meth:`of`, which sorts knobs into their places and names a knob the recipe does not take."""

    recipe: str = "standard"
    base: TrainConfig = field(default_factory=TrainConfig)
    epoch_grid: tuple[float, ...] = (1, 2, 4, 8, 16)
    params: object = None  # None: the recipe's params class with its defaults

    def __post_init__(self):
        recipe = recipe_registry.get(self.recipe, "recipe config")
        object.__setattr__(self, "epoch_grid", tuple(self.epoch_grid))
        if self.params is None:
            object.__setattr__(self, "params", recipe.params())
        require(isinstance(self.params, recipe.params), f"recipe {self.recipe!r} takes {recipe.params.__name__}, "
                f"not {type(self.params).__name__}")
        _increasing("epoch_grid", self.epoch_grid)
        if recipe.check is not None:
            recipe.check(self)

    @classmethod
    def of(cls, recipe: str, base: TrainConfig | None = None, epoch_grid=None, **knobs) -> RecipeConfig:
        """A cell from flat knobs: each goes to the recipe's params (None: its default); a knob the recipe does
        not take is one line naming the ones it does."""
        params_cls = recipe_registry.get(recipe, "recipe config").params
        names = [f.name for f in fields(params_cls)]
        unknown = sorted(k for k, v in knobs.items() if k not in names and v is not None)
        require(not unknown, f"recipe {recipe!r} takes no {', '.join(unknown)}; it takes "
                + (", ".join(["epoch_grid", *names])))
        kw = {"recipe": recipe, "params": params_cls(**{k: v for k, v in knobs.items() if v is not None})}
        if base is not None:
            kw["base"] = base
        if epoch_grid is not None:
            kw["epoch_grid"] = tuple(epoch_grid)
        return cls(**kw)

    def to_dict(self) -> dict:
        return {"recipe": self.recipe, "base": self.base.to_dict(), "epoch_grid": list(self.epoch_grid),
                "params": asdict(self.params)}

    @classmethod
    def from_dict(cls, d: dict) -> RecipeConfig:
        """From ``to_dict`` (or an older recipe.json, whose knobs were flat: each recipe keeps its own)."""
        d = dict(d)
        base = TrainConfig.from_dict(d.pop("base", {}))
        recipe = d.pop("recipe", "standard")
        epoch_grid = d.pop("epoch_grid", None)
        knobs = d.pop("params", None)
        if knobs is None:  # the flat layout: every recipe's knobs side by side
            names = {f.name for f in fields(recipe_registry.get(recipe, "recipe config").params)}
            knobs = {k: v for k, v in d.items() if k in names}
        return cls.of(recipe, base, epoch_grid, **knobs)


Measure = Callable[[list[TrainConfig]], list[dict]]


def _loss(result: dict) -> float:
    v = result.get("val_loss")
    return float(v) if v is not None and "failed" not in result else math.inf


def _nearest(grid, value) -> int:
    return min(range(len(grid)), key=lambda i: abs(grid[i] - value))


def standard(rc: RecipeConfig, measure: Measure) -> dict:
    cfgs = [rc.base.replace(epochs=e, weight_decay=rc.params.weight_decay, members=1, recipe="standard")
            for e in rc.epoch_grid]
    runs = measure(cfgs)
    best = min(runs, key=_loss)
    return {"best": summary(best), "runs": [summary(r) for r in runs],
            "edge": best["config"]["epochs"] in (rc.epoch_grid[0], rc.epoch_grid[-1])}


def _reg_config(rc: RecipeConfig, idx: tuple) -> TrainConfig:
    return rc.base.replace(lr=rc.params.lr_grid[idx[0]], weight_decay=rc.params.wd_grid[idx[1]], epochs=rc.epoch_grid[idx[2]],
                           members=1, recipe="regularized")


def regularized(rc: RecipeConfig, measure: Measure) -> dict:
    grids = (rc.params.lr_grid, rc.params.wd_grid, rc.epoch_grid)
    if rc.params.search == "grid":
        points = list(itertools.product(*(range(len(g)) for g in grids)))
        results = dict(zip(points, measure([_reg_config(rc, p) for p in points]), strict=True))
        best = min(points, key=lambda p: _loss(results[p]))
        return {"search": "grid", "best": summary(results[best]), "index": list(best), "n_runs": len(points),
                "trace": [{"index": list(p), **summary(results[p])} for p in points]}
    if rc.params.start is not None:
        cur = tuple(rc.params.start)
        require(all(0 <= cur[a] < len(grids[a]) for a in range(3)), f"start={rc.params.start} is outside the grids")
    else:
        cur = (_nearest(rc.params.lr_grid, rc.base.lr), _nearest(rc.params.wd_grid, rc.base.weight_decay),
               _nearest(rc.epoch_grid, rc.base.epochs))
    measured: dict[tuple, dict] = {}
    trace = []

    def losses(points: list[tuple]) -> list[float]:
        new = [p for p in dict.fromkeys(points) if p not in measured]
        if new:
            if len(measured) + len(new) > rc.params.max_runs:
                raise UserError(f"regularized search exceeded max_runs={rc.params.max_runs}")
            for p, r in zip(new, measure([_reg_config(rc, p) for p in new]), strict=True):
                measured[p] = r
                trace.append({"index": list(p), **summary(r)})
        return [_loss(measured[p]) for p in points]

    def neighbours(idx: tuple) -> list[tuple]:
        out = []
        for a in range(3):
            for d in (-1, 1):
                j = idx[a] + d
                if 0 <= j < len(grids[a]):
                    out.append(idx[:a] + (j,) + idx[a + 1 :])
        return out

    losses([cur])
    moved = True
    while moved:  # coordinate descent: sweep the axes until a full pass makes no move
        moved = False
        for a in range(3):
            line = [cur] + [n for n in neighbours(cur) if n[a] != cur[a]]
            vals = losses(line)
            best = line[min(range(len(line)), key=vals.__getitem__)]
            if best != cur:
                cur, moved = best, True
    nb = neighbours(cur)
    nb_loss = losses(nb)
    certified = all(v > _loss(measured[cur]) for v in nb_loss)
    edges = [name for a, name in enumerate(("lr", "weight_decay", "epochs"))
             if cur[a] in (0, len(grids[a]) - 1) and len(grids[a]) > 1]
    return {"search": "coordinate", "best": summary(measured[cur]), "index": list(cur),
            "certified_local_optimum": certified, "at_grid_edge": edges, "n_runs": len(measured), "trace": trace,
            "neighbours": {str(list(n)): v for n, v in zip(nb, nb_loss, strict=True)}}


def ensemble_configs(rc: RecipeConfig) -> tuple[list[TrainConfig], TrainConfig]:
    """The K member runs of an ensemble cell and its ensemble evaluation (which depends on them)."""
    ens = rc.base.replace(members=rc.params.members, recipe="ensemble")
    return list(ens.member_configs()), ens


def ensemble(rc: RecipeConfig, measure: Measure) -> dict:
    members, ens = ensemble_configs(rc)
    *done, res = measure([*members, ens])
    last = (res.get("history") or [{}])[-1]
    return {"best": summary(res), "member_losses": [r.get("val_loss") for r in done],
            "ensemble_logits_loss": last.get("ensemble_logits_loss", res.get("val_loss")),
            "ensemble_probs_loss": last.get("ensemble_probs_loss"), "run": res}


def distill_configs(rc: RecipeConfig) -> tuple[TrainConfig, TrainConfig]:
    """The teacher and the student of a (self-)distillation recipe."""
    t_members = 1 if rc.recipe == "self-distill" else rc.params.members
    teacher = rc.base.replace(members=t_members, recipe="ensemble" if t_members > 1 else "standard")
    student = rc.base.replace(members=1, teacher=teacher_ref(teacher.hash), distill_alpha=rc.params.distill_alpha,
                              distill_temperature=rc.params.distill_temperature,
                              seq_distill_frac=rc.params.seq_distill_frac,
                              recipe=rc.recipe, seed=rc.base.seed + STUDENT_SEED_OFFSET)
    return teacher, student


def distill(rc: RecipeConfig, measure: Measure) -> dict:
    teacher_cfg, student_cfg = distill_configs(rc)
    *_, teacher, student = measure([*teacher_cfg.member_configs(), teacher_cfg, student_cfg])
    return {"best": summary(student), "teacher": summary(teacher), "student_run": student, "teacher_run": teacher}


def reuse_configs(rc: RecipeConfig) -> tuple[list[TrainConfig], TrainConfig]:
    """The K-epoch runs and the one-pass reference of the reuse protocol (constant LR after warm-up)."""
    # no warm-up: a warm-up given as a fraction of each run would last longer in the long reference run than
    # in a short K-epoch run, and the reference's early losses would not be those of a run that long
    const = {"schedule": "constant", "warmup_frac": 0.0, "weight_decay": rc.params.weight_decay, "members": 1}
    runs = [rc.base.replace(epochs=k, recipe="reuse", **const) for k in rc.epoch_grid]
    steps = max(1, rc.params.reference_tokens // (rc.base.batch_size * rc.base.context))
    ref = rc.base.replace(epochs=1, unique_tokens=rc.params.reference_tokens, recipe="reuse-reference",
                          eval_every=max(1, steps // rc.params.reference_evals), **const)
    return runs, ref


def reference_curve(result: dict) -> tuple[list[float], list[float]]:
    """(tokens, validation loss) along a reference run's evaluations."""
    hist = [h for h in result.get("history") or [] if h.get("val_loss") is not None and h.get("tokens")]
    return [float(h["tokens"]) for h in hist], [float(h["val_loss"]) for h in hist]


def reuse(rc: RecipeConfig, measure: Measure) -> dict:
    import pandas as pd

    from repetita.laws.reuse import Reference, effective_reuse

    runs_cfg, ref_cfg = reuse_configs(rc)
    results = measure(runs_cfg + [ref_cfg])
    runs, ref = results[:-1], results[-1]
    best = min(runs, key=_loss)
    out = {"best": summary(best), "runs": [summary(r) for r in runs], "reference": summary(ref)}
    tokens, losses = reference_curve(ref)
    ok = [r for r in runs if math.isfinite(_loss(r))]
    if "failed" in ref or len(tokens) < 2 or not ok:
        return out | {"table": [], "note": "no reference curve or no finished run: E not measured"}
    table = effective_reuse(pd.DataFrame([{"unique_tokens": r["unique_tokens"], "epochs": r["epochs"],
                                           "loss": r["val_loss"]} for r in ok]),
                            Reference(tokens, losses, name="one-pass reference run"), extrapolate=True)
    return out | {"table": table.to_dict(orient="records")}


def apply(rc: RecipeConfig, measure: Measure) -> dict:
    """Run recipe ``rc`` against ``measure``; returns its result dict (``best``, ``runs``/``trace``, ...)."""
    return {"recipe": rc.recipe} | recipe_registry.get(rc.recipe).run(rc, measure)


def dependencies(config: TrainConfig) -> tuple[str, ...]:
    """The runs that must finish before ``config`` can: an ensemble's members, else a student's teacher
    (an ensemble of students depends on its members, and they on the teacher)."""
    members = config.member_configs()
    if members:
        return tuple(c.hash for c in members)
    teacher = teacher_id(config.teacher)
    return (teacher,) if teacher else ()


def proposals(rc: RecipeConfig, results: dict[str, dict]) -> list[TrainConfig]:
    """The configs this recipe needs next, given the results measured so far (by run id); [] when done."""
    def lookup(configs: list[TrainConfig]) -> list[dict]:
        missing = [c for c in configs if c.hash not in results]
        if missing:
            raise Pending(missing)
        return [results[c.hash] for c in configs]

    try:
        apply(rc, lookup)
    except Pending as p:
        return p.configs
    return []


def run_recipe(rc: RecipeConfig, out_dir: str | Path, progress: bool = False) -> dict:
    """Run a recipe into ``out_dir`` (recipe.json, runs/, recipe_result.json); returns its result dict."""
    from repetita.io import make_dir, write_json
    from repetita.lm.train import train
    from repetita.lm.trainer import Diverged

    out = make_dir(out_dir, "recipe folder")
    write_json(out / "recipe.json", rc.to_dict(), indent=1)

    def measure(configs: list[TrainConfig]) -> list[dict]:
        results = []
        for cfg in configs:
            try:
                results.append(train(cfg, out / teacher_ref(cfg.hash), progress=progress, root=out))
            except Diverged as exc:  # a diverged grid point is a measured (infinitely bad) point
                results.append({"failed": "diverged", "error": str(exc), "config": cfg.to_dict(),
                                "config_hash": cfg.hash})
        return results

    result = apply(rc, measure)
    result["rows"] = collect_rows(out)
    write_json(out / "recipe_result.json", result, indent=1)
    return result


def collect_rows(out_dir: str | Path) -> list[dict]:
    """Tidy rows of every finished run under ``out_dir/runs`` (for the law engine)."""
    from repetita.io import read_json

    rows = []
    for p in sorted(Path(out_dir).glob("runs/*/result.json")):
        rows += read_json(p, "run result")["rows"]
    return rows


def summary(r: dict) -> dict:
    """The fields a recipe result reports about one run (works on a study store's metrics as well)."""
    c = r.get("config", {})
    return {"run_id": r.get("config_hash"), "val_loss": r.get("val_loss"), "train_loss": r.get("train_loss"),
            "gap": r.get("gap"), "epochs": r.get("epochs", c.get("epochs")), "lr": c.get("lr"),
            "weight_decay": c.get("weight_decay"), "members": c.get("members"), "params": r.get("params"),
            "unique_tokens": r.get("unique_tokens"), "tokens": r.get("tokens"), "failed": r.get("failed")}


# --- the registry entries: spec keys, cells, cost model and label of each recipe ------------------------
# ``grid`` is the spec's models, U budgets, seeds and defaults (repetita.study.spec.Grid): ``grid.where``
# iterates (model, U, seed), ``grid.values`` reads a key as a list, ``grid.config`` builds a TrainConfig.


def _standard_cells(table: dict, grid) -> list[RecipeConfig]:
    epochs = grid.epochs(table)
    lrs = grid.values(table, "lr", grid.default_lr)
    wd = grid.values(table, "weight_decay", 0.1)
    require(len(wd) == 1, f"recipes.{grid.recipe}.weight_decay: the standard recipe has one weight decay "
            "(tune it with [recipes.regularized])")
    return [grid.cell(base=grid.config(model, unique_tokens=u, epochs=epochs[0], lr=lr, seed=seed),
                      epoch_grid=epochs, weight_decay=wd[0])
            for (model, u, seed), lr in itertools.product(grid.where(table), lrs)]


def _regularized_cells(table: dict, grid) -> list[RecipeConfig]:
    epochs = grid.epochs(table)
    lrs = tuple(sorted(set(grid.values(table, "lr", grid.default_lr))))
    wds = tuple(sorted(set(grid.values(table, "weight_decay", grid.default_wd))))
    max_runs = table.get("max_runs", 60)
    require(isinstance(max_runs, int), f"recipes.{grid.recipe}.max_runs: {max_runs!r} must be an integer")
    return [grid.cell(base=grid.config(model, unique_tokens=u, epochs=epochs[len(epochs) // 2], lr=lrs[len(lrs) // 2],
                                       weight_decay=wds[0], seed=seed),
                      epoch_grid=epochs, lr_grid=lrs, wd_grid=wds, search=table.get("search", "coordinate"),
                      max_runs=max_runs)
            for model, u, seed in grid.where(table)]


def _ensemble_cells(table: dict, grid) -> list[RecipeConfig]:
    members = grid.values(table, "members", [4], (int,))
    wd = table.get("weight_decay", grid.default_wd)
    return [grid.cell(base=grid.config(model, unique_tokens=u, epochs=k, weight_decay=wd, seed=seed), members=m)
            for (model, u, seed), k, m in itertools.product(grid.where(table), grid.epochs(table), members)]


def _distill_cells(table: dict, grid) -> list[RecipeConfig]:
    alphas = grid.values(table, "alpha", [0.5])
    kw = {"seq_distill_frac": table.get("seq_frac", 0.0), "distill_temperature": table.get("temperature", 1.0),
          "members": table.get("teacher_members", 4) if grid.recipe == "distill" else 4}
    return [grid.cell(base=grid.config(model, unique_tokens=u, epochs=k, seed=seed), distill_alpha=a, **kw)
            for (model, u, seed), k, a in itertools.product(grid.where(table), grid.epochs(table), alphas)]


def _reuse_cells(table: dict, grid) -> list[RecipeConfig]:
    # Yan et al.'s protocol: constant LR, K-epoch runs per U, one shared reference
    require("reference_tokens" in table, f"[recipes.{grid.recipe}] needs reference_tokens (the fresh tokens of the "
            "one-pass reference run; at least the largest U x the epochs whose worth you want to read)")
    epochs = grid.epochs(table)
    lr = table.get("lr", grid.default_lr)
    return [grid.cell(base=grid.config(model, unique_tokens=u, epochs=epochs[0], lr=lr, seed=seed),
                      epoch_grid=epochs, weight_decay=table.get("weight_decay", grid.default_wd),
                      reference_tokens=int(table["reference_tokens"]),
                      reference_evals=int(table.get("reference_evals", 48)))
            for model, u, seed in grid.where(table)]


def _check_reuse(rc: RecipeConfig) -> None:
    require(rc.params.reference_tokens is not None and rc.params.reference_tokens >= rc.base.context,
            "the reuse recipe needs reference_tokens (fresh tokens of its one-pass reference run)")


_DATA = {"epochs", "unique_tokens"}  # every recipe may narrow the spec's epoch and U grids
register(Recipe("standard", standard, _standard_cells, _DATA | {"weight_decay", "lr"},
                "weight decay fixed (0.1), epochs tuned over a grid", params=StandardParams))
register(Recipe("regularized", regularized, _regularized_cells,
                _DATA | {"weight_decay", "lr", "search", "max_runs"},
                # the weight-decay search is paid once, on small models: not counted in a plan's compute
                "LR x weight decay x epochs tuned (certified coordinate search or the full grid)",
                params=RegularizedParams))
register(Recipe("ensemble", ensemble, _ensemble_cells, _DATA | {"members", "weight_decay"},
                "K member runs (seeds s..s+K-1) evaluated by averaging logits", sized=True, min_members=2,
                train_cost=float, serve_factor=float, member_label="ensemble member", params=EnsembleParams))
register(Recipe("distill", distill, _distill_cells, _DATA | {"teacher_members", "alpha", "seq_frac", "temperature"},
                "one student taught by a K-member ensemble of its size", sized=True,
                train_cost=lambda k: k + 1.0, params=DistillParams))  # the teacher's K members and the student
register(Recipe("self-distill", distill, _distill_cells, _DATA | {"alpha", "seq_frac", "temperature"},
                "one student taught by one standard model of its size", train_cost=lambda k: 2.0,
                params=DistillParams))
register(Recipe("reuse", reuse, _reuse_cells,
                _DATA | {"weight_decay", "lr", "reference_tokens", "reference_evals"},
                "Yan et al.'s E(K, U) protocol: constant-LR K-epoch runs beside a one-pass reference",
                check=_check_reuse, params=ReuseParams))
