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

[recipes.ensemble]     # K-member ensembles trained as one batched model
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

A spec expands to *cells*: one ``repetita.lm.recipes.RecipeConfig`` per (recipe, model, U, seed, and
the recipe's own lists), and each cell decides which runs it needs through the same recipe code as
``repetita train --recipe`` (``proposals``): a static recipe asks for all its runs at once, the
coordinate search asks for the next points once the previous ones are measured. Every run's id is the
content hash of its ``TrainConfig`` (``TrainConfig.hash``), so re-running a study finds finished runs by
id. Distillation students name their teacher as ``runs/<id>`` and depend on it.
"""

from __future__ import annotations

import itertools
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path

from repetita.errors import UserError, require

TOP_KEYS = {"name", "seeds", "base", "models", "grid", "recipes", "description"}
GRID_KEYS = {"unique_tokens", "epochs"}
RECIPE_KEYS = {
    "standard": {"weight_decay", "lr", "epochs", "unique_tokens"},
    "regularized": {"weight_decay", "lr", "epochs", "unique_tokens", "search", "max_runs"},
    "ensemble": {"members", "epochs", "weight_decay", "unique_tokens"},
    "distill": {"teacher_members", "alpha", "seq_frac", "temperature", "epochs", "unique_tokens"},
    "self-distill": {"alpha", "seq_frac", "temperature", "epochs", "unique_tokens"},
    "reuse": {"epochs", "unique_tokens", "weight_decay", "lr", "reference_tokens", "reference_evals"},
}
# Fields the study sets itself; a spec must not fix them in [base] or [[models]].
MANAGED = {"unique_tokens", "epochs", "members", "teacher", "distill_alpha", "seq_distill_frac", "recipe", "seed"}


@dataclass(frozen=True)
class RunSpec:
    """One run of a study: its config, the label of its cell, and the run it depends on (its teacher)."""

    config: object  # repetita.lm.config.TrainConfig
    recipe: str

    @property
    def id(self) -> str:
        return self.config.hash

    @property
    def depends_on(self) -> str | None:
        from repetita.lm.recipes import teacher_id

        return teacher_id(self.config.teacher)


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
        runs.sort(key=lambda r: r.depends_on is not None)  # stable: the queue order stays deterministic
        return runs

    @property
    def runs(self) -> tuple[RunSpec, ...]:
        """The runs known before anything is measured (a coordinate search adds more as it goes)."""
        return tuple(self.proposals({}))


def _list(value, where: str, kind=(int, float)) -> list:
    values = value if isinstance(value, list) else [value]
    require(len(values) > 0, f"{where}: empty list")
    for v in values:
        ok = isinstance(v, kind) and not isinstance(v, bool)
        require(ok, f"{where}: {v!r} has the wrong type (expected {' or '.join(k.__name__ for k in kind)})")
    return values


def _check_keys(table: dict, allowed: set[str], where: str) -> None:
    require(isinstance(table, dict), f"{where} must be a table")
    unknown = sorted(set(table) - allowed)
    require(not unknown, f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}")


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
    from repetita.lm.config import TrainConfig
    from repetita.lm.recipes import RecipeConfig

    _check_keys(raw, TOP_KEYS, "study spec")
    train_fields = {f.name for f in fields(TrainConfig)}
    base = dict(raw.get("base", {}))
    _check_keys(base, train_fields - MANAGED, "[base]")
    if isinstance(base.get("corpus"), str):
        base["corpus"] = _absolute_corpus(base["corpus"], check_corpus)
    models = raw.get("models", [{}])
    require(isinstance(models, list) and models, "[[models]]: give at least one model table")
    for i, m in enumerate(models):
        _check_keys(m, train_fields - MANAGED, f"[[models]] #{i + 1}")
    grid = raw.get("grid")
    require(grid is not None, "missing [grid] with unique_tokens and epochs")
    _check_keys(grid, GRID_KEYS, "[grid]")
    require("unique_tokens" in grid and "epochs" in grid, "[grid] needs unique_tokens and epochs")
    us = _list(grid["unique_tokens"], "grid.unique_tokens", (int,))
    ks = _list(grid["epochs"], "grid.epochs")
    seeds = _list(raw.get("seeds", [0]), "seeds", (int,))
    recipes = raw.get("recipes")
    require(isinstance(recipes, dict) and recipes, "missing [recipes.<name>]: enable at least one recipe")
    for name, table in recipes.items():
        require(name in RECIPE_KEYS, f"unknown recipe {name!r}; choose from {', '.join(RECIPE_KEYS)}")
        _check_keys(table, RECIPE_KEYS[name], f"[recipes.{name}]")

    def config(model: dict, **kw) -> TrainConfig:
        try:
            return TrainConfig.from_dict(base | model | kw)
        except TypeError as exc:
            raise UserError(f"bad value in [base] or [[models]]: {exc}") from None

    def recipe(name: str, **kw) -> RecipeConfig:
        try:
            return RecipeConfig(recipe=name, **kw)
        except TypeError as exc:
            raise UserError(f"[recipes.{name}]: {exc}") from None

    default_lr = base.get("lr", TrainConfig().lr)
    default_wd = base.get("weight_decay", TrainConfig().weight_decay)
    cells = []
    for name, table in recipes.items():
        epochs = tuple(sorted(set(_list(table.get("epochs", ks), f"recipes.{name}.epochs"))))
        # a recipe may narrow the U budgets (e.g. ensembles only where they are affordable)
        budgets = _list(table.get("unique_tokens", us), f"recipes.{name}.unique_tokens", (int,))
        where = itertools.product(models, budgets, seeds)
        if name == "standard":
            lrs = _list(table.get("lr", default_lr), "recipes.standard.lr")
            wd = _list(table.get("weight_decay", 0.1), "recipes.standard.weight_decay")
            require(len(wd) == 1, "recipes.standard.weight_decay: the standard recipe has one weight decay "
                    "(tune it with [recipes.regularized])")
            for (model, u, seed), lr in itertools.product(where, lrs):
                cells.append(recipe(name, base=config(model, unique_tokens=u, epochs=epochs[0], lr=lr, seed=seed),
                                    epoch_grid=epochs, weight_decay=wd[0]))
        elif name == "regularized":
            lrs = tuple(sorted(set(_list(table.get("lr", default_lr), "recipes.regularized.lr"))))
            wds = tuple(sorted(set(_list(table.get("weight_decay", default_wd), "recipes.regularized.weight_decay"))))
            search = table.get("search", "coordinate")
            max_runs = table.get("max_runs", 60)
            require(isinstance(max_runs, int), f"recipes.regularized.max_runs: {max_runs!r} must be an integer")
            for model, u, seed in where:
                start = config(model, unique_tokens=u, epochs=epochs[len(epochs) // 2], lr=lrs[len(lrs) // 2],
                               weight_decay=wds[0], seed=seed)
                cells.append(recipe(name, base=start, epoch_grid=epochs, lr_grid=lrs, wd_grid=wds, search=search,
                                    max_runs=max_runs))
        elif name == "reuse":  # Yan et al.'s protocol: constant LR, K-epoch runs per U, one shared reference
            require("reference_tokens" in table, "[recipes.reuse] needs reference_tokens (the fresh tokens of the "
                    "one-pass reference run; at least the largest U x the epochs whose worth you want to read)")
            lr = table.get("lr", default_lr)
            for model, u, seed in where:
                cells.append(recipe(name, base=config(model, unique_tokens=u, epochs=epochs[0], lr=lr, seed=seed),
                                    epoch_grid=epochs, weight_decay=table.get("weight_decay", default_wd),
                                    reference_tokens=int(table["reference_tokens"]),
                                    reference_evals=int(table.get("reference_evals", 48))))
        elif name == "ensemble":
            members = _list(table.get("members", [4]), "recipes.ensemble.members", (int,))
            wd = table.get("weight_decay", default_wd)
            for (model, u, seed), k, m in itertools.product(where, epochs, members):
                cells.append(recipe(name, base=config(model, unique_tokens=u, epochs=k, weight_decay=wd, seed=seed),
                                    members=m))
        else:
            alphas = _list(table.get("alpha", [0.5]), f"recipes.{name}.alpha")
            kw = {"seq_distill_frac": table.get("seq_frac", 0.0), "distill_temperature": table.get("temperature", 1.0),
                  "members": table.get("teacher_members", 4) if name == "distill" else 4}
            for (model, u, seed), k, a in itertools.product(where, epochs, alphas):
                cells.append(recipe(name, base=config(model, unique_tokens=u, epochs=k, seed=seed),
                                    distill_alpha=a, **kw))
    return Study(name=str(raw.get("name", "study")), cells=tuple(cells))


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
