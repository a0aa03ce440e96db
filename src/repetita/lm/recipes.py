"""Recipes that squeeze a fixed dataset (Kim, Kotha, Liang, Hashimoto 2025, "Pre-training under infinite
compute"), each callable as ``run_recipe(RecipeConfig, out_dir) -> result dict``.

- ``standard``: weight decay fixed at 0.1, epochs tuned over a grid.
- ``regularized``: coordinate search over LR x WD x epochs grids. It stops at a grid point where every
  neighbour (one step along each axis) has been measured and is worse: a certified local optimum. Kim et
  al. find the tuned weight decay ~30x larger than the usual 0.1 when parameters outnumber tokens.
- ``ensemble``: K members with seeds seed..seed+K-1 trained as one batched model, evaluated by averaging
  logits (probability averaging is reported too).
- ``distill``: a K-member ensemble teaches a single student (token-level KL mixed with the data loss, and/or
  sequence-level distillation on teacher samples mixed with real data).
- ``self-distill``: the teacher is one model of the student's size.

Every sub-run lives in ``out_dir/runs/<config hash>``, so re-running a recipe reuses finished runs and resumes
interrupted ones.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from repetita.errors import UserError, require
from repetita.lm.config import TrainConfig
from repetita.lm.train import train

RECIPES = ("standard", "regularized", "ensemble", "distill", "self-distill")


@dataclass(frozen=True)
class RecipeConfig:
    recipe: str = "standard"
    base: TrainConfig = field(default_factory=TrainConfig)
    epoch_grid: tuple[float, ...] = (1, 2, 4, 8, 16)
    lr_grid: tuple[float, ...] = (1e-3, 2e-3, 4e-3, 8e-3)
    wd_grid: tuple[float, ...] = (0.1, 0.2, 0.4, 0.8, 1.6, 3.2)
    start: tuple[int, int, int] | None = None  # (lr, wd, epochs) grid indices; None = base's values / middle
    members: int = 4
    distill_alpha: float = 0.5
    distill_temperature: float = 1.0
    seq_distill_frac: float = 0.0
    max_runs: int = 60  # safety bound on the coordinate search

    def __post_init__(self):
        require(self.recipe in RECIPES, f"recipe={self.recipe!r} must be one of {RECIPES}")
        for name in ("epoch_grid", "lr_grid", "wd_grid"):
            grid = getattr(self, name)
            require(len(grid) >= 1 and list(grid) == sorted(set(grid)), f"{name}={grid} must be increasing")
            require(all(v > 0 or name == "wd_grid" for v in grid), f"{name} values must be > 0")
        require(self.members >= 2 or self.recipe not in ("ensemble", "distill"),
                f"members={self.members} must be >= 2 for an ensemble")
        require(self.start is None or len(self.start) == 3, "start must be (lr_index, wd_index, epochs_index)")
        require(0 <= self.distill_alpha <= 1, f"distill_alpha={self.distill_alpha} must be in [0, 1]")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["base"] = self.base.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict) -> RecipeConfig:
        d = dict(d)
        d["base"] = TrainConfig.from_dict(d.get("base", {}))
        for k in ("epoch_grid", "lr_grid", "wd_grid", "start"):
            if d.get(k) is not None:
                d[k] = tuple(d[k])
        return cls(**d)


def _run(cfg: TrainConfig, out: Path, progress: bool) -> dict:
    return train(cfg, out / "runs" / cfg.hash, progress=progress)


def _nearest(grid, value) -> int:
    return min(range(len(grid)), key=lambda i: abs(grid[i] - value))


def standard(rc: RecipeConfig, out: Path, progress: bool = False) -> dict:
    runs = [_run(rc.base.replace(epochs=float(e), weight_decay=0.1, members=1, recipe="standard"), out, progress)
            for e in rc.epoch_grid]
    best = min(runs, key=lambda r: r["val_loss"])
    return {"best": _summary(best), "runs": [_summary(r) for r in runs],
            "edge": best["config"]["epochs"] in (rc.epoch_grid[0], rc.epoch_grid[-1])}


def regularized(rc: RecipeConfig, out: Path, progress: bool = False) -> dict:
    grids = (rc.lr_grid, rc.wd_grid, rc.epoch_grid)
    if rc.start is not None:
        cur = tuple(rc.start)
        require(all(0 <= cur[a] < len(grids[a]) for a in range(3)), f"start={rc.start} is outside the grids")
    else:
        cur = (_nearest(rc.lr_grid, rc.base.lr), _nearest(rc.wd_grid, rc.base.weight_decay),
               _nearest(rc.epoch_grid, rc.base.epochs))
    measured: dict[tuple, dict] = {}
    trace = []

    def loss(idx: tuple) -> float:
        if idx not in measured:
            if len(measured) >= rc.max_runs:
                raise UserError(f"regularized search exceeded max_runs={rc.max_runs}")
            cfg = rc.base.replace(lr=grids[0][idx[0]], weight_decay=grids[1][idx[1]],
                                  epochs=float(grids[2][idx[2]]), members=1, recipe="regularized")
            measured[idx] = _run(cfg, out, progress)
            trace.append({"index": list(idx), **_summary(measured[idx])})
        return measured[idx]["val_loss"]

    def neighbours(idx: tuple) -> list[tuple]:
        out_ = []
        for a in range(3):
            for d in (-1, 1):
                j = idx[a] + d
                if 0 <= j < len(grids[a]):
                    out_.append(idx[:a] + (j,) + idx[a + 1 :])
        return out_

    loss(cur)
    moved = True
    while moved:  # coordinate descent: sweep the axes until a full pass makes no move
        moved = False
        for a in range(3):
            line = [n for n in neighbours(cur) if n[a] != cur[a]]
            best = min([cur] + line, key=loss)
            if best != cur:
                cur, moved = best, True
    nb = neighbours(cur)
    certified = all(loss(n) > loss(cur) for n in nb)
    edges = [name for a, name in enumerate(("lr", "weight_decay", "epochs"))
             if cur[a] in (0, len(grids[a]) - 1) and len(grids[a]) > 1]
    return {"best": _summary(measured[cur]), "index": list(cur), "certified_local_optimum": certified,
            "at_grid_edge": edges, "n_runs": len(measured), "trace": trace,
            "neighbours": {str(list(n)): measured[n]["val_loss"] for n in nb}}


def ensemble(rc: RecipeConfig, out: Path, progress: bool = False) -> dict:
    res = _run(rc.base.replace(members=rc.members, recipe="ensemble"), out, progress)
    return {"best": _summary(res), "member_losses": res["history"][-1]["val_member_losses"],
            "ensemble_logits_loss": res["history"][-1]["ensemble_logits_loss"],
            "ensemble_probs_loss": res["history"][-1]["ensemble_probs_loss"], "run": res}


def distill(rc: RecipeConfig, out: Path, progress: bool = False, self_distill: bool = False) -> dict:
    t_members = 1 if self_distill else rc.members
    tcfg = rc.base.replace(members=t_members, recipe="self-distill-teacher" if self_distill else "ensemble")
    teacher = _run(tcfg, out, progress)
    tdir = (out / "runs" / tcfg.hash).resolve()
    scfg = rc.base.replace(members=1, teacher=str(tdir), distill_alpha=rc.distill_alpha,
                           distill_temperature=rc.distill_temperature, seq_distill_frac=rc.seq_distill_frac,
                           recipe="self-distill" if self_distill else "distill")
    student = _run(scfg, out, progress)
    return {"best": _summary(student), "teacher": _summary(teacher), "student_run": student,
            "teacher_run": teacher}


def run_recipe(rc: RecipeConfig, out_dir: str | Path, progress: bool = False) -> dict:
    """Run a recipe into ``out_dir`` (recipe.json, runs/, recipe_result.json); returns its result dict."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "recipe.json").write_text(json.dumps(rc.to_dict(), indent=1, sort_keys=True))
    fn = {"standard": standard, "regularized": regularized, "ensemble": ensemble, "distill": distill,
          "self-distill": lambda r, o, p: distill(r, o, p, self_distill=True)}[rc.recipe]
    result = {"recipe": rc.recipe} | fn(rc, out, progress)
    result["rows"] = collect_rows(out)
    (out / "recipe_result.json").write_text(json.dumps(result, indent=1, default=str))
    return result


def collect_rows(out_dir: str | Path) -> list[dict]:
    """Tidy rows of every finished run under ``out_dir/runs`` (for the law engine)."""
    rows = []
    for p in sorted(Path(out_dir).glob("runs/*/result.json")):
        rows += json.loads(p.read_text())["rows"]
    return rows


def _summary(r: dict) -> dict:
    c = r["config"]
    return {"run_id": r["config_hash"], "val_loss": r["val_loss"], "train_loss": r["train_loss"], "gap": r["gap"],
            "epochs": r["epochs"], "lr": c["lr"], "weight_decay": c["weight_decay"], "members": c["members"],
            "params": r["params"], "unique_tokens": r["unique_tokens"], "tokens": r["tokens"]}
