"""``repetita train``: one training run (or one recipe) on a corpus; flags mirror ``TrainConfig`` fields."""

from __future__ import annotations

import argparse
import json
import sys
import types
import typing
from dataclasses import MISSING, fields
from pathlib import Path

from repetita.errors import UserError

_SKIP = {"recipe"}  # the label is set from --recipe


# Speed options (not part of the run id) say what they choose between; the other fields are in docs/lm.md.
_HELP = {
    "members": "ensemble members: K one-model runs (seeds seed..seed+K-1) under --out/runs, then their ensemble",
    "adamw": "AdamW implementation: auto (foreach on CPU, fused on CUDA), for-loop, foreach or fused",
    "compile": "torch.compile the model's forward",
    "device": "auto, cpu or cuda",
    "dtype": "auto (bf16 autocast on CUDA), fp32 or bf16",
    "threads": "torch CPU threads; only 1 reproduces a run bit for bit",
}


def _parse_bool(s: str) -> bool:
    if s.lower() in ("1", "true", "yes"):
        return True
    if s.lower() in ("0", "false", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, got {s!r}")


def _optional(cast):
    def parse(s: str):
        return None if s.lower() == "none" else cast(s)

    parse.__name__ = cast.__name__
    return parse


def _field_type(tp):
    """The argparse type for a TrainConfig annotation (``int | None`` accepts 'none')."""
    if isinstance(tp, str):
        tp = eval(tp, {"int": int, "float": float, "str": str, "bool": bool, "None": None})  # noqa: S307 - own code
    if isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union:
        inner = [a for a in typing.get_args(tp) if a is not type(None)][0]
        return _optional(inner)
    if tp is bool:
        return _parse_bool
    return tp


def _grid(s: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in s.split(","))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {s!r}") from exc


def register(subparsers) -> None:
    from repetita import recipe_registry
    from repetita.lm import recipes  # noqa: F401  (registers the lab's recipes, the choices below)
    from repetita.lm.config import TrainConfig

    p = subparsers.add_parser(
        "train", help="train a small GPT on a fixed token budget (one run or one recipe)",
        description="Train a compact GPT on a unique-token budget for some epochs; CPU by default, CUDA when "
                    "available. Results (config.json, metrics.json, result.json with tidy rows) go to --out.")
    p.add_argument("--recipe", choices=("run", *recipe_registry.names()), default="run",
                   help="'run' = one run of the config; otherwise a recipe over it (default: run)")
    p.add_argument("--config", help="JSON file with TrainConfig fields (flags override it)")
    p.add_argument("--out", help="output directory (default: runs/train/<config hash>)")
    p.add_argument("--epoch-grid", type=_grid, help="recipes: epochs to try, e.g. 1,2,4,8")
    p.add_argument("--lr-grid", type=_grid, help="regularized: learning rates, e.g. 1e-3,3e-3,1e-2")
    p.add_argument("--wd-grid", type=_grid, help="regularized: weight decays, e.g. 0.1,0.4,1.6")
    p.add_argument("--search", choices=("coordinate", "grid"), default="coordinate",
                   help="regularized: certified coordinate search (default) or every grid point")
    p.add_argument("--ensemble-members", type=int, default=4, help="ensemble/distill: K (default 4)")
    p.add_argument("--reference-tokens", type=int, help="reuse: fresh tokens of the one-pass reference run")
    p.add_argument("--progress", action="store_true", help="show a progress bar")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    hints = typing.get_type_hints(TrainConfig)
    for f in fields(TrainConfig):
        text = _HELP.get(f.name, "")
        if f.name in _SKIP:
            continue
        default = f.default if f.default is not MISSING else None
        p.add_argument("--" + f.name.replace("_", "-"), dest=f.name, type=_field_type(hints[f.name]), default=None,
                       metavar=f.name.upper(), help=f"{text} (default: {default})".strip())
    p.set_defaults(func=run_train)


def _config_from_args(args):
    from repetita.lm.config import TrainConfig

    base = {}
    if args.config:
        path = Path(args.config)
        if not path.exists():
            raise UserError(f"config file {path} does not exist")
        try:
            base = json.loads(path.read_bytes())
        except json.JSONDecodeError as exc:
            raise UserError(f"config file {path} is not valid JSON: {exc.msg} (line {exc.lineno})") from None
        except UnicodeDecodeError as exc:
            raise UserError(f"config file {path} is not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset "
                            f"{exc.start}): give a JSON TrainConfig") from None
        except (OSError, RecursionError) as exc:
            raise UserError(f"config file {path}: cannot read it ({exc})") from None
        if not isinstance(base, dict):
            raise UserError(f"config file {path} must hold a JSON object of TrainConfig fields")
    for f in fields(TrainConfig):
        v = getattr(args, f.name, None)
        if f.name not in _SKIP and v is not None:
            base[f.name] = v
    return TrainConfig.from_dict(base)


def run_train(args) -> dict:
    from repetita.io import check_dir

    cfg = _config_from_args(args)  # validated before anything is imported, created or written
    default = Path("runs") / ("train" if args.recipe == "run" else "recipes")
    out = Path(args.out or default / (cfg.hash if args.recipe == "run" else f"{args.recipe}-{cfg.hash}"))
    check_dir(out, "--out")

    from repetita.lm.recipes import RecipeConfig, run_recipe
    from repetita.lm.train import train

    if cfg.threads > 1:
        sys.stderr.write(f"repetita train: warning: --threads {cfg.threads}: float reductions then run in a "
                         "thread-dependent order, so this run is not bit-reproducible (the default, 1, is)\n")
    if args.recipe == "run":
        res = train(cfg, out, progress=args.progress and not args.json)
        if not args.json:
            _print_run(res, out)
        return {"out_dir": str(out)} | {k: v for k, v in res.items() if k != "config"}
    from dataclasses import fields

    from repetita import recipe_registry

    # the flags this recipe's params take (the others keep their defaults and do not apply to it)
    takes = {f.name for f in fields(recipe_registry.get(args.recipe).params)}
    knobs = {"members": args.ensemble_members, "search": args.search, "reference_tokens": args.reference_tokens,
             "lr_grid": args.lr_grid, "wd_grid": args.wd_grid}
    rc = RecipeConfig.of(args.recipe, cfg, args.epoch_grid or None,
                         **{k: v for k, v in knobs.items() if k in takes and v is not None})
    res = run_recipe(rc, out, progress=args.progress and not args.json)
    if not args.json:
        b = res["best"]
        print(f"{args.recipe}: best val loss {b['val_loss']:.4f} (lr {b['lr']:g}, wd {b['weight_decay']:g}, "
              f"{b['epochs']:g} epochs, members {b['members']}); {len(res['rows'])} tidy rows in {out}")
        if "certified_local_optimum" in res:
            print(f"certified local optimum: {res['certified_local_optimum']}; at grid edge: {res['at_grid_edge']}")
    slim = {k: v for k, v in res.items() if k not in ("run", "student_run", "teacher_run")}
    return {"out_dir": str(out)} | slim


def _print_run(res: dict, out: Path) -> None:
    w = sys.stdout.write
    w(f"params N = {res['params']:,} ({res['non_embedding_params']:,} non-embedding); unique tokens U = "
      f"{res['unique_tokens']:,}; tokens D = {res['tokens']:,} ({res['epochs']:.2f} epochs, {res['steps']} steps)\n")
    w(f"{'epoch':>7} {'train':>8} {'val':>8} {'gap':>7}\n")
    for h in res["history"]:
        w(f"{h['epoch']:7.2f} {h['train_loss']:8.4f} {h['val_loss']:8.4f} {h['gap']:7.4f}\n")
    w(f"val loss {res['val_loss']:.4f} nats/token = {res['bits_per_token']:.4f} bits/token")
    if res.get("irreducible_loss") is not None:
        w(f" (source entropy rate {res['irreducible_loss']:.4f})")
    w(f"\nresults in {out}\n")
