"""Study specs: one TOML file describes a whole data-constrained study; it expands to run configs.

```toml
name = "tiny"
seeds = [0]

[base]                 # any TrainConfig field, the default of every run
corpus = "shakespeare"
tokenizer = "bpe:512"
context = 64

[[models]]             # model sizes: TrainConfig architecture fields
n_layer = 2
d_model = 64

[grid]
unique_tokens = [16384, 65536]
epochs = [1, 2, 4, 8]

[recipes.standard]     # a recipe table switches the recipe on
weight_decay = 0.1

[recipes.regularized]  # tuned LR x WD x epochs at every (model, U): the certified coordinate search
lr = [1e-3, 3e-3]      # of repetita.lm.recipes; search = "grid" measures every grid point instead
weight_decay = [0.1, 0.4, 1.6]
search = "coordinate"

[recipes.ensemble]     # K member runs (seeds s..s+K-1), shared across K, evaluated by averaging logits
members = [2, 4]
epochs = [4]           # optional: overrides grid.epochs for this recipe
unique_tokens = [16384]  # optional: overrides grid.unique_tokens for this recipe

[recipes.distill]      # student of one model size taught by a teacher ensemble of the same size
teacher_members = 4
alpha = [0.5]
seq_frac = 0.0
epochs = [4]

[recipes.self-distill] # teacher = one standard model of the same size
alpha = [0.5]
epochs = [4]
```

Each ``[recipes.NAME]`` table is read by the registered recipe NAME (``repetita.recipe_registry``):
its keys, and how it expands. A spec expands to *cells*: one ``repetita.lm.recipes.RecipeConfig`` per
(recipe, model, U, seed, and the recipe's own lists), and each cell decides which runs it needs through the same recipe code as
``repetita train --recipe`` (``proposals``): a static recipe asks for all its runs at once, the
coordinate search asks for the next points once the previous ones are measured. Every run's id is the
content hash of its ``TrainConfig`` (``TrainConfig.hash``), so re-running a study finds finished runs by
id. Distillation students name their teacher as ``runs/<id>`` and depend on it; an ensemble depends on
its member runs.

``[[runs]]`` tables (``model`` = the number of a ``[[models]]`` table, or in a command spec ``params`` =
a size that needs no other model field; ``unique_tokens``, ``epochs``, optionally ``seed`` and ``why``) add single runs of the spec's single-model recipe at chosen points; the
next runs ``repetita report`` suggests come as such a spec (``report/next_runs.toml``), and a spec may
hold only ``[[runs]]`` and no ``[grid]``.

A spec whose recipe is ``command`` runs the user's own trainer instead (``repetita.study.command``): its
``[base]`` and ``[[models]]`` hold template fields rather than ``TrainConfig`` fields, each model names
its ``params``, and its run ids hash the resolved command; it takes the spec to itself.
"""

from __future__ import annotations

import itertools
import math
import tomllib
from dataclasses import dataclass, fields
from dataclasses import replace as _replace
from pathlib import Path

from repetita.errors import UserError, require
from repetita.study import recipes as _builtin_recipes  # noqa: F401  (the recipes a spec names)

TOP_KEYS = {"name", "seeds", "base", "models", "grid", "recipes", "description", "runs"}
RUN_KEYS = {"model", "params", "unique_tokens", "epochs", "seed", "why"}
GRID_KEYS = {"unique_tokens", "epochs"}
# Fields the study sets itself; a spec must not fix them in [base] or [[models]].
MANAGED = {"unique_tokens", "epochs", "members", "teacher", "distill_alpha", "seq_distill_frac", "recipe", "seed"}


@dataclass(frozen=True)
class RunSpec:
    """One run of a study: its config, the label of its cell, and the run it depends on (its teacher)."""

    config: object  # a config of a registered kind of run (repetita.study.kinds): TrainConfig, CommandRun, ...
    recipe: str

    @property
    def id(self) -> str:
        return self.config.hash

    @property
    def depends_on(self) -> tuple[str, ...]:
        """Runs that must finish first: a student's teacher, an ensemble's members."""
        from repetita.study.kinds import kind_of

        return kind_of(self.config).dependencies(self.config)


@dataclass(frozen=True)
class Study:
    name: str
    cells: tuple  # repetita.lm.recipes.RecipeConfig, one per recipe cell

    def proposals(self, results: dict[str, dict]) -> list[RunSpec]:
        """Runs the cells need next given the measured ``results`` (by run id); teachers first."""
        from repetita.lm.recipes import proposals

        seen, runs = set(), []
        for cell in self.cells:
            for cfg in proposals(cell, results):
                if cfg.hash not in seen:
                    seen.add(cfg.hash)
                    runs.append(RunSpec(cfg, cfg.recipe))
        runs.sort(key=lambda r: bool(r.depends_on))  # stable: the queue order stays deterministic
        return runs

    @property
    def runs(self) -> tuple[RunSpec, ...]:
        """The runs known before anything is measured (a coordinate search adds more as it goes)."""
        return tuple(self.proposals({}))


@dataclass(frozen=True)
class Grid:
    """What a recipe's ``cells`` function reads besides its own table: the spec's models, U budgets,
    epochs, seeds and defaults. ``recipe`` is the table being expanded (for messages)."""

    recipe: str
    base: dict
    models: tuple
    budgets: tuple
    epoch_grid: tuple
    seeds: tuple

    @property
    def default_lr(self) -> float:
        from repetita.lm.config import TrainConfig

        return self.base.get("lr", TrainConfig().lr)

    @property
    def default_wd(self) -> float:
        from repetita.lm.config import TrainConfig

        return self.base.get("weight_decay", TrainConfig().weight_decay)

    def values(self, table: dict, key: str, default, kind=(int, float)) -> list:
        """``table[key]`` (or ``default``) as a non-empty list of numbers."""
        return _list(table.get(key, default), f"recipes.{self.recipe}.{key}", kind)

    def epochs(self, table: dict) -> tuple:
        """The recipe's epoch counts, sorted (its own ``epochs`` or the grid's)."""
        return tuple(sorted(set(self.values(table, "epochs", list(self.epoch_grid)))))

    def where(self, table: dict):
        """(model, U, seed) for every model, U budget (the recipe may narrow them) and seed."""
        budgets = self.values(table, "unique_tokens", list(self.budgets), (int,))
        return itertools.product(self.models, budgets, self.seeds)

    def config(self, model: dict, **kw):
        from repetita.lm.config import TrainConfig

        try:
            return TrainConfig.from_dict(self.base | model | kw)
        except TypeError as exc:
            raise UserError(f"bad value in [base] or [[models]]: {exc}") from None

    def cell(self, **kw):
        from repetita.lm.recipes import RecipeConfig

        try:
            return RecipeConfig.of(self.recipe, **kw)
        except TypeError as exc:
            raise UserError(f"[recipes.{self.recipe}]: {exc}") from None


def _list(value, where: str, kind=(int, float)) -> list:
    values = value if isinstance(value, list) else [value]
    require(len(values) > 0, f"{where}: empty list")
    for v in values:
        ok = isinstance(v, kind) and not isinstance(v, bool)
        require(ok, f"{where}: {v!r} has the wrong type (expected {' or '.join(k.__name__ for k in kind)})")
        if where.endswith(("unique_tokens", "epochs")):  # a budget or an epoch count of 0 or below is no run
            require(math.isfinite(v) and v > 0, f"{where}: {v!r} must be a positive number")
    return values


def _check_keys(table: dict, allowed: set[str], where: str) -> None:
    require(isinstance(table, dict), f"{where} must be a table")
    unknown = sorted(set(table) - allowed)
    require(not unknown, f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}")


def _check_free_keys(table: dict, where: str) -> None:
    """A command study's field tables: any name, but not one the study sets for each run."""
    require(isinstance(table, dict), f"{where} must be a table")
    taken = sorted(set(table) & (MANAGED | {"tokens", "run_dir"}))
    require(not taken, f"{where}: {', '.join(taken)} is set by the study for each run; give it in [grid] or seeds")


def resolve_spec(path: str | Path) -> Path:
    """A file path, or ``example:NAME`` for a spec shipped with repetita (``examples/NAME.toml``)."""
    text = str(path)
    if text.startswith("example:"):
        from importlib import resources

        name = text.split(":", 1)[1]
        specs = resources.files("repetita.examples") / "specs"
        known = sorted(p.name[:-5] for p in specs.iterdir() if p.name.endswith(".toml"))
        require(name in known, f"unknown example spec {name!r}; shipped: {', '.join(known)}")
        return Path(str(specs / f"{name}.toml"))
    return Path(path)


def load_spec(path: str | Path) -> dict:
    path = resolve_spec(path)
    require(path.is_file(), f"{path}: no such study spec")
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{path}: malformed TOML ({exc})") from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: not a text file") from None


def expand(raw: dict, check_corpus: bool = True) -> Study:
    """Validate a parsed spec and expand it into recipe cells (nothing is written)."""
    from repetita import recipe_registry
    from repetita.lm.config import TrainConfig

    _check_keys(raw, TOP_KEYS, "study spec")
    recipes = raw.get("recipes")
    require(isinstance(recipes, dict) and recipes, "missing [recipes.<name>]: enable at least one recipe")
    # A command study runs the user's own trainer: [base] and [[models]] hold its template fields, not
    # TrainConfig fields, so it cannot share a spec with the LM lab's recipes.
    command = "command" in recipes
    require(not command or len(recipes) == 1, "[recipes.command] runs your own trainer and takes the spec to itself; "
            "put the LM lab's recipes in another spec")
    base = dict(raw.get("base", {}))
    models = raw.get("models", [{}])
    require(isinstance(models, list) and models, "[[models]]: give at least one model table")
    if command:
        _check_free_keys(base, "[base]")
        for i, m in enumerate(models):
            _check_free_keys(m, f"[[models]] #{i + 1}")
    else:
        train_fields = {f.name for f in fields(TrainConfig)}
        _check_keys(base, train_fields - MANAGED, "[base]")
        if isinstance(base.get("corpus"), str):
            base["corpus"] = _absolute_corpus(base["corpus"], check_corpus)
        for i, m in enumerate(models):
            _check_keys(m, train_fields - MANAGED, f"[[models]] #{i + 1}")
    grid = raw.get("grid")
    points = raw.get("runs", [])
    require(isinstance(points, list), "[[runs]] must be an array of tables (model, unique_tokens, epochs)")
    require(grid is not None or points, "missing [grid] with unique_tokens and epochs (or [[runs]], single points)")
    seeds = tuple(_list(raw.get("seeds", [0]), "seeds", (int,)))
    found = {name: recipe_registry.get(name, "study spec") for name in recipes}
    for name, table in recipes.items():
        _check_keys(table, set(found[name].keys), f"[recipes.{name}]")
    cells = []
    if grid is not None:
        _check_keys(grid, GRID_KEYS, "[grid]")
        require("unique_tokens" in grid and "epochs" in grid, "[grid] needs unique_tokens and epochs")
        spec = Grid("", base, tuple(models), tuple(_list(grid["unique_tokens"], "grid.unique_tokens", (int,))),
                    tuple(_list(grid["epochs"], "grid.epochs")), seeds)
        cells = [cell for name, table in recipes.items() for cell in found[name].cells(table, _replace(spec, recipe=name))]
    cells += _point_cells(points, base, models, seeds, recipes, command)
    return Study(name=str(raw.get("name", "study")), cells=tuple(cells))


def _point_cells(points: list, base: dict, models: list, seeds: tuple, recipes: dict, command: bool) -> list:
    """``[[runs]]``: single runs at chosen (model, U, epochs), e.g. the ones ``repetita suggest`` or the report
    asks for. They run the spec's single-model recipe (``command``, else ``standard`` with its table's
    settings), so they share ids with the grid's runs at the same point and land in the same fits."""
    from repetita import recipe_registry

    name = "command" if command else "standard"
    recipe = recipe_registry.get(name)
    table = {k: v for k, v in recipes.get(name, {}).items() if k not in GRID_KEYS}
    out = []
    for j, p in enumerate(points, 1):
        where = f"[[runs]] #{j}"
        _check_keys(p, RUN_KEYS, where)
        m = p.get("model")
        if "params" in p:  # a size of the user's trainer that needs no fields besides N
            require(command and m is None, f"{where}: give model = NUMBER of a [[models]] table" if not command else
                    f"{where}: give model or params, not both")
            n = p["params"]
            require(isinstance(n, int | float) and not isinstance(n, bool) and 0 < n < float("inf"),
                    f"{where}: params = {n!r} must be a positive number")
            model = {"params": n}
        else:
            require(isinstance(m, int) and not isinstance(m, bool) and 1 <= m <= len(models),
                    f"{where}: model = {m!r} must be the number of a [[models]] table, 1 to {len(models)}")
            model = models[m - 1]
        require(isinstance(p.get("why", ""), str), f"{where}: why must be a string")
        u, k = p.get("unique_tokens"), p.get("epochs")
        require(isinstance(u, int) and not isinstance(u, bool) and u > 0,
                f"{where}: unique_tokens = {u!r} must be a positive whole number")
        require(isinstance(k, int | float) and not isinstance(k, bool) and 0 < k < 1e6,
                f"{where}: epochs = {k!r} must be a positive number")
        seed = p.get("seed", seeds[0])
        require(isinstance(seed, int) and not isinstance(seed, bool), f"{where}: seed = {seed!r} must be an integer")
        out += recipe.cells(table, Grid(name, base, (model,), (u,), (k,), (seed,)))
    return out


def _absolute_corpus(spec: str, check: bool) -> str:
    """Path-like corpora become absolute (runs train from the study directory) and must exist."""
    if spec.startswith(("markov:", "shakespeare")):
        return spec
    prefix = next((p for p in ("files:", "hf:") if spec.startswith(p)), "")
    body = spec[len(prefix):]
    if prefix == "hf:":  # hf:DIR[:COLUMN]
        path, sep, column = body.partition(":")
        parts, tail = [path], sep + column
    else:
        parts, tail = body.split(","), ""
    out = []
    for part in parts:
        if check:
            require(Path(part).exists(), f"corpus path {part!r} does not exist")
        out.append(str(Path(part).resolve()) if Path(part).exists() else part)
    return prefix + ",".join(out) + tail
