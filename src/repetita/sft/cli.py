"""``repetita sft plan`` (the fixed-budget grid) and ``repetita sft run`` (the CPU demonstration)."""

from __future__ import annotations

from dataclasses import fields

from repetita.cliargs import SEED, bounded_int, number_list
from repetita.io import check_file, write_json


def _plan(args) -> dict:
    from repetita.sft.plan import fixed_budget_grid

    samples = number_list(args.samples, "--samples", whole=True, positive=True) if args.samples else None
    if args.subsets:
        check_file(args.subsets, "--subsets", suffixes=(".json",))
    plan = fixed_budget_grid(
        args.budget, args.pool, samples, factor=args.factor, min_samples=args.min_samples, seed=args.seed
    )
    out = plan.to_dict()
    if args.subsets:
        write_json(args.subsets, {str(n): s.tolist() for n, s in plan.subsets().items()})
        out["subsets_file"] = args.subsets
    if not args.json:
        print(f"budget {plan.budget} sample-passes, pool {plan.pool_size}, seed {plan.seed}")
        print(f"{'samples':>10} {'epochs':>8}")
        for n, e in plan.cells:
            print(f"{n:>10} {e:>8}")
    return out


def _run(args) -> dict:
    from repetita.errors import UserError
    from repetita.sft.demo import DemoConfig, run_demo, table

    names = {f.name for f in fields(DemoConfig)}
    overrides = {}
    for item in args.set or []:
        key, sep, value = item.partition("=")
        if not sep or key not in names:
            raise UserError(f"--set expects KEY=VALUE with KEY one of {sorted(names)}, got {item!r}")
        typ = type(getattr(DemoConfig(), key))
        try:
            overrides[key] = typ(value)
        except ValueError as exc:
            raise UserError(f"--set {key}: cannot read {value!r} as {typ.__name__}") from exc
    if args.quick:
        overrides = {"budget": 2048, "pool_size": 2048, "min_samples": 32, "eval_size": 200, **overrides}
    cfg = DemoConfig(**overrides)
    progress = None
    if not args.json:

        def progress(r):
            print(
                f"cell {r['samples']:>6} x {r['epochs']:<5} answer acc {r['answer_accuracy']:.3f}  "
                f"stop {r['stop_reason']} @ {r['stop_step']}  ({r['seconds']:.0f}s)",
                flush=True,
            )

    result = run_demo(cfg, args.out, progress=progress)
    if not args.json:
        print(table(result).to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    result["cells"] = [{k: v for k, v in r.items() if k != "curve"} for r in result["cells"]]
    return result


def register(subparsers) -> None:
    p = subparsers.add_parser("sft", help="SFT repetition: fixed-update-budget grids, token-accuracy stopping")
    sub = p.add_subparsers(dest="sft_command", metavar="SFT_COMMAND")
    sub.required = True
    pl = sub.add_parser("plan", help="the nested samples x epochs grid at a fixed budget of sample-passes")
    # bounds: the subsets file holds the pool's indices (a pool of 1e9 would be 8 GB of them)
    pl.add_argument("--budget", type=bounded_int(1, 10**12), required=True,
                    help="sample-passes per cell (samples x epochs)")
    pl.add_argument("--pool", type=bounded_int(1, 10**8), required=True, help="number of samples available")
    pl.add_argument("--samples", help="comma-separated sample counts (default: budget / factor^k)")
    pl.add_argument("--factor", type=bounded_int(2), default=2)
    pl.add_argument("--min-samples", type=bounded_int(1), default=1)
    pl.add_argument("--seed", type=SEED, default=0)
    pl.add_argument("--subsets", help="write the nested subsets' pool indices to this JSON file")
    pl.add_argument("--json", action="store_true")
    pl.set_defaults(func=_plan)
    rn = sub.add_parser("run", help="the CPU demonstration: tiny GPT-2 on arithmetic CoT across the grid")
    rn.add_argument("--out", default="runs/sft_demo", help="folder for config.json, results.json and plots")
    rn.add_argument("--quick", action="store_true", help="a 2,048-pass budget (about 15 s)")
    rn.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a DemoConfig field")
    rn.add_argument("--json", action="store_true")
    rn.set_defaults(func=_run)
