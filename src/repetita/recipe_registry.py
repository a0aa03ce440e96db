"""The one registry of recipes: each recipe is a :class:`Recipe` naming everything the package asks of it.

A recipe answers five questions, and every part of repetita asks them here instead of switching on its
name: which keys its ``[recipes.NAME]`` table in a study spec takes (``keys``), which cells a table
expands into (``cells``), which runs it needs and what it makes of their results (``run``), what it
costs the planner (``train_cost`` and ``serve_factor``, as functions of its member count K), and how
the report labels it. Each recipe registers itself where it is defined (``register(Recipe(...))``): the LM lab's in
``repetita.lm.recipes``, the ``command`` recipe in ``repetita.study.command``; ``repetita.study.recipes``
lists those modules and is imported by the CLI and the study. A user's recipe is one
``register(Recipe(...))`` call in one file.

Names: a recipe whose cost depends on a member count is written ``NAME:K`` (``ensemble:4``,
``distill:4``) wherever a count is needed: in ``repetita plan --efficiency``, in report labels and in
report.json. Older reports spelled an ensemble ``ensemble x4``; :func:`parse` still reads that.

It sits below both ``repetita.laws`` and ``repetita.lm`` and imports nothing of either: the planner
resolves cost models through it on the base install (no torch).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from repetita.errors import UserError, require
from repetita.registry import Registry


def _one(_k: int) -> float:
    return 1.0


@dataclass(frozen=True)
class NoParams:
    """The params of a recipe with no knobs of its own (besides the base run and the epoch grid)."""


@dataclass(frozen=True)
class Recipe:
    """One recipe: what a spec table holds, how it expands and runs, what it costs, how it is labelled.

    ``cells(table, grid)`` returns the recipe's ``RecipeConfig`` cells for one spec table (``grid`` is
    the spec's models, budgets, seeds and defaults; ``repetita.study.spec.Grid``). ``run(rc, measure)``
    asks ``measure`` for the results of the runs it needs and returns its result dict (``best``, ...).
    ``sized``: the name takes a member count (``ensemble:4``); ``min_members`` is the least K it takes.
    ``member_label``: how the report labels the recipe's one-model runs when they are parts of a larger
    model (an ensemble's members); None when its one-model runs are the recipe itself. ``params``: the
    frozen dataclass holding the recipe's own knobs, validated on construction; a cell carries one.
    """

    name: str
    run: Callable
    cells: Callable
    keys: frozenset[str]
    summary: str
    sized: bool = False
    min_members: int = 1
    train_cost: Callable[[int], float] = field(default=_one)
    serve_factor: Callable[[int], float] = field(default=_one)
    member_label: str | None = None
    check: Callable | None = None  # extra validation of a RecipeConfig (raises UserError)
    params: type = NoParams  # the frozen dataclass of the recipe's own knobs (RecipeConfig.params)

    def __post_init__(self):
        require(re.fullmatch(r"[a-z][a-z0-9-]*", self.name) is not None,
                f"recipe name {self.name!r}: use lower-case letters, digits and dashes")
        object.__setattr__(self, "keys", frozenset(self.keys))

    def label(self, members: int = 1) -> str:
        """The report's name for a model of this recipe with ``members`` members."""
        if members > 1:
            return f"{self.name}:{members}"
        return self.member_label or self.name

    def costs(self, members: int | None) -> tuple[float, float]:
        """(training compute, served params), each as a multiple of one standard run of the same size."""
        k = members if members is not None else self.min_members
        return float(self.train_cost(k)), float(self.serve_factor(k))


REGISTRY: Registry = Registry("recipe")


def register(recipe: Recipe, replace: bool = False) -> Recipe:
    """Add a recipe to the registry (``replace=True`` to redefine one, e.g. in a test); a name registered
    twice is refused in one line naming both places."""
    return REGISTRY.add(recipe.name, recipe, replace=replace)


def unregister(name: str) -> None:
    REGISTRY.pop(name, None)


def names() -> tuple[str, ...]:
    return tuple(REGISTRY)


def get(name: str, where: str = "recipe") -> Recipe:
    """The registered recipe ``name``; an unknown name is one line listing the registry."""
    if name not in REGISTRY:
        raise UserError(f"{where}: unknown recipe {name!r}; registered recipes: {', '.join(REGISTRY)}")
    return REGISTRY[name]


_OLD_ENSEMBLE = re.compile(r"^ensemble x(\d+)$")


def parse(label: str, where: str = "recipe") -> tuple[Recipe, int | None]:
    """``"ensemble:4"`` -> (the ensemble recipe, 4); ``"regularized"`` -> (..., None). Reads the older
    report spelling ``ensemble x4`` too. A count on a recipe that takes none, or too small a count, is one line."""
    old = _OLD_ENSEMBLE.match(label)
    if old:
        label = f"ensemble:{old.group(1)}"
    name, sep, count = label.partition(":")
    recipe = get(name.strip(), where)
    if not sep:
        require(not recipe.sized or recipe.min_members <= 1,
                f"{where} {label}: name the members, e.g. {recipe.name}:4")
        return recipe, None
    require(recipe.sized, f"{where} {label}: the {recipe.name} recipe takes no member count")
    require(count.isdigit() and int(count) >= recipe.min_members,
            f"{where} {label}: the member count must be a whole number >= {recipe.min_members}")
    return recipe, int(count)


def cost(label: str, where: str = "recipe") -> tuple[float, float]:
    """The planner's cost model of a recipe label: (training compute, served params) factors."""
    recipe, k = parse(label, where)
    return recipe.costs(k)


def canonical(label: str) -> str:
    """The one spelling of a label (``ensemble x4`` -> ``ensemble:4``)."""
    recipe, k = parse(label)
    return recipe.name if k is None else f"{recipe.name}:{k}"
