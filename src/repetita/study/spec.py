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

[recipes.regularized]  # static LR x WD grid at every (model, U, epochs); the report keeps the best
lr = [1e-3, 3e-3]
weight_decay = [0.1, 0.4, 1.6]

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

Every run's id is the content hash of its full ``TrainConfig`` (``TrainConfig.hash``), so re-running
a study finds finished runs by id. Distillation runs depend on their teacher's run.
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
    "regularized": {"weight_decay", "lr", "epochs", "unique_tokens"},
    "ensemble": {"members", "epochs", "weight_decay", "unique_tokens"},
    "distill": {"teacher_members", "alpha", "seq_frac", "temperature", "epochs", "unique_tokens"},
    "self-distill": {"alpha", "seq_frac", "temperature", "epochs", "unique_tokens"},
}
# Fields the study sets itself; a spec must not fix them in [base] or [[models]].
MANAGED = {"unique_tokens", "epochs", "members", "teacher", "distill_alpha", "seq_distill_frac", "recipe", "seed"}


@dataclass(frozen=True)
class RunSpec:
    """One run of a study: its config, the label of its cell, and the run it depends on."""

    config: object  # repetita.lm.config.TrainConfig (imported lazily: torch is heavy)
    recipe: str
    depends_on: str | None = None

    @property
    def id(self) -> str:
        return self.config.hash


@dataclass(frozen=True)
class Study:
    name: str
    runs: tuple[RunSpec, ...]


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
    """Validate a parsed spec and expand it into runs (teachers before their students)."""
    from repetita.lm.config import TrainConfig

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

    runs: list[RunSpec] = []
    seen: set[str] = set()

    def add(run: RunSpec) -> None:
        if run.id not in seen:
            seen.add(run.id)
            runs.append(run)

    for name, table in recipes.items():
        epochs = _list(table.get("epochs", ks), f"recipes.{name}.epochs")
        # a recipe may narrow the U budgets (e.g. ensembles only where they are affordable)
        budgets = _list(table.get("unique_tokens", us), f"recipes.{name}.unique_tokens", (int,))
        cells = list(itertools.product(models, budgets, seeds))
        if name in ("standard", "regularized"):
            default_wd = 0.1 if name == "standard" else base.get("weight_decay", 0.1)
            lrs = _list(table.get("lr", base.get("lr", TrainConfig().lr)), f"recipes.{name}.lr")
            wds = _list(table.get("weight_decay", default_wd), f"recipes.{name}.weight_decay")
            for (model, u, seed), k, lr, wd in itertools.product(cells, epochs, lrs, wds):
                add(RunSpec(config(model, unique_tokens=u, epochs=k, lr=lr, weight_decay=wd, recipe=name, seed=seed), name))
        elif name == "ensemble":
            members = _list(table.get("members", [4]), "recipes.ensemble.members", (int,))
            wd = table.get("weight_decay", base.get("weight_decay", TrainConfig().weight_decay))
            for (model, u, seed), k, m in itertools.product(cells, epochs, members):
                add(RunSpec(config(model, unique_tokens=u, epochs=k, members=m, weight_decay=wd, recipe=name, seed=seed), name))
        else:
            alphas = _list(table.get("alpha", [0.5]), f"recipes.{name}.alpha")
            seq = table.get("seq_frac", 0.0)
            temp = table.get("temperature", 1.0)
            t_members = table.get("teacher_members", 4) if name == "distill" else 1
            for (model, u, seed), k in itertools.product(cells, epochs):
                teacher = config(
                    model, unique_tokens=u, epochs=k, members=t_members, recipe="ensemble" if t_members > 1 else "standard", seed=seed
                )
                add(RunSpec(teacher, teacher.recipe))
                for a in alphas:
                    student = config(
                        model,
                        unique_tokens=u,
                        epochs=k,
                        # relative to the study directory (the runner trains from there), so a
                        # run id does not depend on where the study lives
                        teacher=f"runs/{teacher.hash}",
                        distill_alpha=a,
                        seq_distill_frac=seq,
                        distill_temperature=temp,
                        recipe=name,
                        seed=seed + 1000,  # a student must not start from its teacher's initialisation
                    )
                    add(RunSpec(student, name, depends_on=teacher.hash))
    # teachers first: a stable topological order keeps the queue deterministic
    runs.sort(key=lambda r: r.depends_on is not None)
    return Study(name=str(raw.get("name", "study")), runs=tuple(runs))


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
