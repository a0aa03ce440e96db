"""The package's import graph, read from the source: no circle, and no module importing a layer above its
own (docs/architecture.md lists the layers). Function-level imports count: a deferred import is still an
arrow."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "repetita"

# Bottom to top, as in docs/architecture.md. A module is placed by the longest prefix listed; the CLI
# modules of every package (``cli.py``, ``cli_*.py``) and ``demo`` are the edge.
LAYERS = {
    "base": ("repetita", "repetita.errors", "repetita.io", "repetita.blas", "repetita.schedules",
             "repetita.recipe_registry", "repetita.registry", "repetita.cliargs", "repetita.runpaths",
             "repetita.processes", "repetita.examples"),
    "laws": ("repetita.laws", "repetita.theory"),
    "decide": ("repetita.decide",),
    "lab": ("repetita.lm", "repetita.hfmodels"),
    "uses": ("repetita.sft", "repetita.data_mix", "repetita.study"),
    "edge": ("repetita.cli", "repetita.demo", "repetita.sft.demo", "repetita.study.builtin",
             "repetita.examples.specs"),
}
ORDER = list(LAYERS)


def modules() -> dict[str, Path]:
    out = {}
    for path in SRC.rglob("*.py"):
        name = ".".join(("repetita", *path.relative_to(SRC).with_suffix("").parts)).removesuffix(".__init__")
        out[name] = path
    return out


def layer(name: str) -> str:
    leaf = name.rsplit(".", 1)[-1]
    if leaf == "cli" or leaf.startswith("cli_"):
        return "edge"
    best, where = -1, None
    for lay, prefixes in LAYERS.items():
        for p in prefixes:
            if (name == p or name.startswith(p + ".")) and len(p) > best:
                best, where = len(p), lay
    assert where is not None, f"{name} is in no layer: add it to LAYERS and docs/architecture.md"
    return where


def edges(mods: dict[str, Path]) -> dict[str, set[str]]:
    """module -> the package modules it imports. ``from pkg import sub`` is an arrow to ``pkg.sub``."""
    out = {m: set() for m in mods}
    for m, path in mods.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("repetita"):
                subs = [f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in mods]
                targets = subs if len(subs) == len(node.names) else [node.module, *subs]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            out[m] |= {t for t in targets if t in mods and t != m}
    return out


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index, low, on, stack, found, counter = {}, {}, set(), [], [], [0]
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on.add(root)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = counter[0]
                    counter[0] += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                elif w in on:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    found.append(sorted(comp))
    return found


def test_the_checker_finds_a_circle_and_an_arrow_up():
    graph = {"repetita.laws.a": {"repetita.laws.b"}, "repetita.laws.b": {"repetita.laws.a"},
             "repetita.errors": {"repetita.study.store"}, "repetita.study.store": set()}
    assert circles(graph) == [["repetita.laws.a", "repetita.laws.b"]]
    assert layer("repetita.errors") == "base" and layer("repetita.study.cli") == "edge"
    assert ORDER.index(layer("repetita.study.store")) > ORDER.index(layer("repetita.errors"))


def test_no_import_circle():
    assert circles(edges(modules())) == []


def test_no_arrow_points_up():
    graph = edges(modules())
    up = sorted(f"{m} ({layer(m)}) -> {t} ({layer(t)})" for m, ts in graph.items() for t in ts
                if ORDER.index(layer(t)) > ORDER.index(layer(m)))
    assert up == []
