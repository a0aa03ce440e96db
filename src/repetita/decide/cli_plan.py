"""``repetita plan`` and ``repetita predict``: deciding with fitted laws.

Thin wrappers over ``decide.fixed_size`` (fixed-size plans), ``decide.allocate`` (compute and corpus -> what to
train, the frontier), ``decide.efficiency`` (recipes) and ``laws.predict`` (multi-power curves for new
schedules). Fit files are read by ``laws.record.load`` (also ``example:NAME``); ``repetita reuse`` is in
``laws.cli_reuse``.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np

from repetita.cliargs import number_list, parse_number
from repetita.decide import plan_text
from repetita.errors import require
from repetita.io import FIGURE_SUFFIXES, check_file, write_json
from repetita.laws.cli import check_outputs, parse_pairs
from repetita.laws.record import load as load_fit


def _law_records(args) -> list[tuple[str, dict]]:
    """The laws to plan with: ``--law-file`` (repeatable) and/or ``--law NAME --param k=v ...``."""
    paths = list(args.law_file or [])
    twice = sorted({p for p in paths if paths.count(p) > 1})
    require(not twice, f"--law-file {twice[0] if twice else ''} given twice: each law file is planned once")
    out = [(path, load_fit(path)) for path in paths]
    if args.law:
        from repetita.laws.fit import LawFit

        params = {k: parse_number(v, f"--param {k}") for k, v in parse_pairs(args.param, "--param").items()}
        record = {"law": args.law, "spec": {"law": args.law}, "params": params,
                  "warnings": ["parameters given on the command line: no intervals"]}
        LawFit.from_result(record)  # an unknown law or a missing parameter is one line here
        out.append((f"--law {args.law}", record))
    require(out, "give --law-file FIT.json (or example:datablations-published) or --law NAME --param k=v ...")
    return out


def _recipe_effects(args) -> tuple[list, list]:
    """``--efficiency NAME=M`` (repeatable) and/or ``--efficiency-from`` a study's report.json (or its folder)."""
    from repetita.decide.efficiency import from_report, parse_efficiency
    from repetita.io import read_json
    from repetita.study import recipes  # noqa: F401  (registers the built-in recipes: their cost models)

    effects, warnings = parse_efficiency(args.efficiency), []
    if args.efficiency_from:
        path = Path(args.efficiency_from)
        if path.is_dir():
            path = path / "report" / "report.json" if (path / "report").is_dir() else path / "report.json"
        require(path.is_file(), f"--efficiency-from {args.efficiency_from}: no report.json there (run repetita report DIR)")
        measured, warnings = from_report(read_json(path, "report"), str(path))
        given = {e.name for e in effects}
        effects += [e for e in measured if e.name not in given]  # a value given on the command line wins
    return effects, warnings


def cmd_allocate(args) -> dict:
    """``plan --compute C --unique-tokens U``: what to train, for every law given, side by side, with the
    headline decision (``decide.laws``); with a budget range (FROM:TO:COUNT), the frontier; with recipe
    multipliers, the best recipe per budget."""
    from repetita.decide.allocate import parse_budgets
    from repetita.decide.laws import plan_compute

    if args.plot:
        check_file(args.plot, "--plot", suffixes=FIGURE_SUFFIXES)
    budgets = parse_budgets(args.compute)
    u = parse_number(args.unique_tokens, "--unique-tokens")
    require(u > 0 and np.isfinite(u), f"--unique-tokens must be positive, got {args.unique_tokens}")
    cap = parse_number(args.max_params, "--max-params") if args.max_params else None
    require(cap is None or (cap > 0 and np.isfinite(cap)), f"--max-params must be positive, got {args.max_params}")
    if args.trust is not None:
        from repetita.decide.allocate import check_trust

        check_trust(args.trust)
    effects, eff_warnings = _recipe_effects(args)
    result, ests = plan_compute(_law_records(args), budgets, u, flops_per_token=args.flops_per_token,
                                max_params=cap, wall_gain=args.wall_gain, effects=effects,
                                effect_warnings=eff_warnings, reuse_file=args.reuse_file, trust=args.trust)
    out = result.to_json()
    if args.plot:
        from repetita.decide.plot_plan import plot_allocation

        # one contour panel per law; the compute line: each law's own allocation, or the largest budget
        # of a frontier (both solved by the plan); the frontier panel holds every law's
        panels = [(name, est, (plan.allocation or plan.at_largest).to_dict())
                  for (name, est, _), plan in zip(ests, result.laws.values(), strict=True)]
        frontiers = [(name, plan.frontier.to_dict()) for (name, _, _), plan in
                     zip(ests, result.laws.values(), strict=True) if plan.frontier]
        out["plot"] = str(plot_allocation(panels, args.plot, frontiers=frontiers or None, recipes=result.recipes))
    from repetita.laws.caveats import fold

    # one line per (law, kind) and at most five of them, most severe first; --verbose prints every one
    for w in (result.warnings if args.verbose else fold(result.caveats)):
        sys.stderr.write(f"repetita plan: warning: {w}\n")
    if not args.json:
        print("\n".join(result.decision))
        plan_text.print_allocation(args.flops_per_token, budgets, u, result.laws, result.comparison)
        if result.recipes:
            plan_text.print_recipes(result.recipes)
    return out


def cmd_asymptotes(args) -> dict:
    """``plan --asymptote NAME=L ...``: recipe asymptotes at U as data efficiency (Kim et al.'s arithmetic)."""
    from repetita.decide.efficiency import efficiency_from_asymptotes

    losses = {k: parse_number(v, f"--asymptote {k}") for k, v in parse_pairs(args.asymptote, "--asymptote").items()}
    require(args.irreducible is not None and args.data_exponent is not None,
            "--asymptote needs the baseline's data-scaling law: --irreducible E --data-exponent ALPHA")
    u = parse_number(args.unique_tokens, "--unique-tokens")
    require(u > 0 and np.isfinite(u), f"--unique-tokens must be positive, got {args.unique_tokens}")
    baseline = args.baseline or next(iter(losses))
    res = efficiency_from_asymptotes(losses, baseline, args.irreducible, args.data_exponent, u)
    out = {"baseline": baseline, "irreducible": args.irreducible, "data_exponent": args.data_exponent,
           "unique_tokens": u, "recipes": res}
    if not args.json:
        print(f"baseline {baseline}: L(D) = {args.irreducible:g} + B D^-{args.data_exponent:g} through "
              f"({u:.4g}, {losses[baseline]:g})")
        print(f"{'recipe':<16} {'asymptote':>10} {'tokens needed':>14} {'efficiency':>10}")
        for name, r in res.items():
            print(f"{name:<16} {r['asymptote']:>10.4f} {r['tokens_needed']:>14.4g} {r['efficiency']:>9.3g}x")
    return out


def cmd_plan(args) -> dict:
    from repetita.decide import fixed_size as plan

    if args.asymptote:
        return cmd_asymptotes(args)
    if args.compute:
        return cmd_allocate(args)
    require(not (args.efficiency or args.efficiency_from), "--efficiency plans recipes for a budget: give --compute C")
    require(args.params, "give --params N (the fixed-size plan) or --compute C (allocation under two budgets)")
    require(args.law_file and len(args.law_file) == 1,
            "the fixed-size plan reads one --law-file (compare laws, or give --law, with --compute)")
    args.law_file = args.law_file[0]
    check_outputs(args, inputs=[args.law_file])
    record = load_fit(args.law_file)
    n = parse_number(args.params, "--params")
    u = parse_number(args.unique_tokens, "--unique-tokens")
    epochs = number_list(args.epochs, "--epochs")
    require(0 < args.fraction < 1, f"--fraction must lie in (0, 1), got {args.fraction}")
    losses = [parse_number(x, "--loss") for x in args.loss.split(",")] if args.loss else None
    require(not losses or all(math.isfinite(v) and v > 0 for v in losses),
            f"--loss {args.loss}: losses are positive numbers (a cross-entropy in nats)")
    out = plan.fixed_plan(record, n, u, epochs, fraction=args.fraction, losses=losses)
    table, summary = out.pop("_table"), out["summary"]
    if args.reuse_file:
        from repetita.decide.laws import measured_k_star_line
        from repetita.laws.record import estimator

        out["measured_k_star"] = measured_k_star_line(args.reuse_file, u, {args.law_file: estimator(record)})
    for w in out.get("warnings", []):
        sys.stderr.write(f"repetita plan: warning: {w}\n")
    if args.plot:
        from repetita.laws.plots import plot_plan

        out["plot"] = str(plot_plan(table, summary, args.plot))
    if not args.json:
        plan_text.print_fixed_size(out, summary, n, u)
    return out


def _predict_table(args) -> dict:
    """``repetita predict TABLE --law-file F``: every row's prediction with the interval of the law's mean and
    the 95% prediction interval (``laws.intervals``); where the table has losses, how often each covers them."""
    from repetita.examples import load_example
    from repetita.laws.checks import select
    from repetita.laws.data import canonical, read_table
    from repetita.laws.fit import LawFit
    from repetita.laws.intervals import coverage, row_intervals, width_warning

    require(bool(args.table) != bool(args.example), "give a TABLE or --example NAME (exactly one), or --schedule")
    require(not args.schedule, "--schedule predicts a multi-power curve; it does not go with a TABLE")
    require(0 < args.level < 1, f"--level must lie in (0, 1), got {args.level}")
    inputs = [args.law_file] + ([args.table] if args.table else [])
    if args.out:
        check_file(args.out, "--out", suffixes=(".csv", ".json"), inputs=inputs)
    record = load_fit(args.law_file)
    est = LawFit.from_result(record)
    source = f"example:{args.example}" if args.example else str(args.table)
    df = canonical(load_example(args.example)) if args.example else read_table(args.table, args.columns)
    df = select(df, args.where, source).reset_index(drop=True)
    beyond = _beyond_fit(est, df)  # before any draw: an absurd row stops here
    iv = row_intervals(est, df, level=args.level)
    table = df.join(iv.frame())
    out = {"law_file": args.law_file, "law": record["law"], "table": source, "rows": len(df), "level": args.level,
           "interval_source": iv.source, "warnings": []}
    if iv.source == "scatter":
        out["warnings"].append("the fit file has no finite parameter interval: the prediction interval is the "
                               "fit's scatter alone, and there is no interval of the mean")
    wide = width_warning(iv, est)
    if wide:
        out["warnings"].append(wide)
    if beyond:
        out["warnings"].append(beyond)
    if "loss" in df.columns:
        from repetita.laws.data import numeric_column

        out["scores"] = coverage(iv, numeric_column(df, "loss"))
    out["predictions"] = table.to_dict(orient="records")
    if args.out:
        from repetita.io import save_table

        out["out"] = str(save_table(table, args.out) if args.out.endswith(".csv") else write_json(args.out, out))
    for w in out["warnings"]:
        sys.stderr.write(f"repetita predict: warning: {w}\n")
    if not args.json:
        pct = f"{100 * args.level:g}%"
        print(f"{record['law']} law ({args.law_file}) on {source}: {len(df)} rows; intervals from "
              + {"laplace": "200 sandwich (Laplace) draws", "bootstrap": "the fit's bootstrap samples",
                 "scatter": "the fit's scatter alone"}[iv.source])
        cols = [c for c in ("params", "tokens", "unique_tokens", "epochs") if c in table.columns]
        print("  ".join(f"{c:>13}" for c in cols) + f"  {'predicted':>9}  {pct + ' mean':>17}  "
              f"{pct + ' prediction':>17}" + ("  observed" if "loss" in table.columns else ""))
        shown = table.iloc[np.unique(np.linspace(0, len(table) - 1, min(len(table), 12)).astype(int))]
        for r in shown.to_dict(orient="records"):
            print("  ".join(f"{float(r[c]):>13.4g}" for c in cols)
                  + f"  {r['predicted']:>9.4f}  {r['mean_lo']:>8.4f}-{r['mean_hi']:<8.4f}  {r['pred_lo']:>8.4f}-"
                  f"{r['pred_hi']:<8.4f}" + (f"  {float(r['loss']):.4f}" if "loss" in r else ""))
        if len(table) > len(shown):
            print(f"  ... {len(table) - len(shown)} more rows" + (f" in {out['out']}" if args.out else " (--out F.csv)"))
        if "scores" in out:
            s = out["scores"]
            print(f"coverage of the observed losses: {s['coverage']:.2f} inside the {pct} prediction interval, "
                  f"{s['coverage_mean']:.2f} inside the interval of the law's mean; mean |log residual| "
                  f"{s['mean_abs_log_residual']:.4f} over {s['rows']} rows")
    return out


def _beyond_fit(est, df) -> str | None:
    """One line when rows lie beyond the runs the fit rests on (``allocate.outside_evidence``, as a plan says
    it): their intervals are extrapolated, and the benchmark's coverage there is lower."""
    from repetita.decide.allocate import check_limits, outside_evidence
    from repetita.laws.data import FLOPS_PER_PARAM_TOKEN, numeric_column

    if not {"params", "tokens"} <= set(df.columns):
        return None
    n, d = numeric_column(df, "params"), numeric_column(df, "tokens")
    u = numeric_column(df, "unique_tokens") if "unique_tokens" in df.columns else d
    # an absurd row (params 1e300) is one line, as a plan's inputs are, not a prediction at infinite compute
    check_limits("params", n)
    check_limits("unique tokens", u)
    check_limits("compute", FLOPS_PER_PARAM_TOKEN * n * d)
    if not est.region_:
        return None
    far = [(i, why) for i in range(len(df))
           if (why := outside_evidence(est.region_, n[i], d[i], u[i], FLOPS_PER_PARAM_TOKEN * n[i] * d[i]))]
    if not far:
        return None
    i, why = far[0]
    return (f"{len(far)} of {len(df)} rows lie beyond the runs the fit rests on (row {i + 1}: {'; '.join(why)}): "
            "their intervals are extrapolated; read them as too narrow there")


def cmd_predict(args) -> dict:
    from repetita.laws.predict import named_schedule, predict_curve, read_schedule

    if args.table or args.example:
        return _predict_table(args)
    require(args.schedule, "give a TABLE (every row predicted with intervals) or --schedule (a multi-power curve)")
    inputs = [args.law_file] + ([args.schedule] if Path(args.schedule).exists() else [])
    if args.out:
        check_file(args.out, "--out", suffixes=(".csv", ".json"), inputs=inputs)
    if args.plot:
        check_file(args.plot, "--plot", suffixes=FIGURE_SUFFIXES, inputs=inputs)
    record = load_fit(args.law_file)
    if Path(args.schedule).exists():
        schedule = read_schedule(args.schedule, args.columns)
    else:
        schedule = named_schedule(args.schedule, warmup=args.warmup, peak_lr=args.peak_lr,
                                  final_frac=args.final_frac, every=args.every)
    curve = predict_curve(record, schedule)
    out = {"law_file": args.law_file, "schedule": args.schedule, "points": len(curve),
           "final": {"step": int(curve["step"].iloc[-1]), "loss": float(curve["loss"].iloc[-1])},
           "curve": curve.to_dict(orient="records")}
    if args.out:
        from repetita.io import save_table

        out["out"] = str(save_table(curve, args.out) if args.out.endswith(".csv") else write_json(args.out, out))
    if args.plot:
        from repetita.laws.plots import plot_predicted

        out["plot"] = str(plot_predicted(curve, args.schedule, args.plot))
    if not args.json:
        print(f"{'step':>8} {'lr':>10} {'loss':>8}")
        shown = curve.iloc[np.unique(np.linspace(0, len(curve) - 1, 12).astype(int))]
        for r in shown.itertuples():
            print(f"{int(r.step):>8} {r.lr:>10.4g} {r.loss:>8.4f}")
        print(f"predicted final loss {out['final']['loss']:.4f} at step {out['final']['step']} "
              f"({len(curve)} points{'; ' + out['out'] if args.out else ''})")
    return out


def register(sub) -> None:
    q = sub.add_parser(
        "plan",
        help="what to train for a compute budget and a corpus (--compute), or the worth of each epoch at one size",
        description="Example: repetita plan --law-file fit.json --params 3e9 --unique-tokens 4e9 --epochs 1,2,4,8,16",
    )
    q.add_argument("--law", help="plan with a law given by values (--param k=v ...) instead of a fit file")
    q.add_argument("--param", action="append", metavar="NAME=VALUE", help="with --law: a parameter value")
    q.add_argument("--wall-gain", type=float, default=0.01,
                   help="frontier: the data wall is where 10x compute buys less than this many nats (0.01)")
    q.add_argument("--law-file", action="append",
                   help="JSON written by repetita fit --out, or example:datablations-published; with --compute it "
                        "may be repeated to compare laws side by side")
    q.add_argument("--params", help="model parameters N (3e9, 3B): the fixed-size plan")
    q.add_argument("--compute", help="compute budget C in FLOPs (9.3e21): allocate N and epochs for U")
    q.add_argument("--flops-per-token", type=float, default=6.0, help="C = k N D; k (default 6)")
    q.add_argument("--max-params", help="largest model you can serve (caps N*)")
    q.add_argument("--verbose", action="store_true",
                   help="print every caveat (default: one line per law and kind, at most five)")
    q.add_argument("--trust", type=float, metavar="F",
                   help="with a budget range: frontier rows beyond F x the largest fitted N and C are no plan "
                   "(default 3, where the law benchmark's intervals still cover; 1 = inside the runs only)")
    q.add_argument("--unique-tokens", required=True, help="unique tokens U")
    q.add_argument("--efficiency", action="append", metavar="RECIPE=M",
                   help="with --compute: a recipe's data-efficiency multiplier (regularized=2.3, ensemble:4=3.1, "
                        "distill:4=2.0, self-distill=1.2); repeatable")
    q.add_argument("--efficiency-from", metavar="REPORT",
                   help="with --compute: the multipliers a study measured (its report.json or the study folder)")
    q.add_argument("--asymptote", action="append", metavar="RECIPE=LOSS",
                   help="recipe asymptotes at U, turned into data efficiency with --irreducible and --data-exponent")
    q.add_argument("--reuse-file", metavar="JSON",
                   help="a measured K*(U) law (repetita reuse ... --out) shown beside the fitted laws' own K*")
    q.add_argument("--irreducible", type=float, help="with --asymptote: E of the baseline's data-scaling law")
    q.add_argument("--data-exponent", type=float, help="with --asymptote: alpha of the baseline's data-scaling law")
    q.add_argument("--baseline", help="with --asymptote: the baseline recipe (default: the first given)")
    q.add_argument("--epochs", default="1,2,4,8,16,32,64", help="comma-separated epoch counts (>= 1)")
    q.add_argument("--fraction", type=float, default=0.5, help="worth threshold for the last useful epoch")
    q.add_argument(
        "--loss",
        help="comma-separated losses to express as fresh-token equivalents at N; with several, the data "
        "efficiency of each against the first (D_eff = (B/(L - E_rest))^(1/beta))",
    )
    q.add_argument("--plot", metavar="PNG", help="write reuse-rate and loss figure")
    q.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    q.set_defaults(func=cmd_plan)

    w = sub.add_parser(
        "predict",
        help="every row of a table predicted with intervals (and their coverage), or a multi-power law's "
        "loss curve for a new LR schedule",
        description="Examples: repetita predict runs.csv --law-file fit.json --out predicted.csv; "
        "repetita predict --law-file mpl.json --schedule wsd:24000:4800 --out curve.csv",
    )
    w.add_argument("table", nargs="?", help="a run table (CSV/Parquet): each row's loss predicted, with the 95%% "
                   "interval of the law's mean and the 95%% prediction interval; with a loss column, their coverage")
    w.add_argument("--example", help="a shipped table instead of TABLE (datablations, datablations-all)")
    w.add_argument("--where", metavar="EXPR", help="rows to predict, in pandas query syntax (\"epochs > 16\")")
    w.add_argument("--level", type=float, default=0.95, help="TABLE: interval level (default 0.95)")
    w.add_argument("--law-file", required=True, help="a fit file (repetita fit --out); with --schedule a "
                   "multi-power fit (repetita fit --law multipower --out)")
    w.add_argument("--schedule", help="CSV with step,lr or cosine:STEPS | wsd:STEPS:DECAY | constant:STEPS")
    w.add_argument("--warmup", type=int, default=2160, help="named schedules: linear warm-up steps (default 2160)")
    w.add_argument("--peak-lr", type=float, default=3e-4, help="named schedules: peak LR (default 3e-4)")
    w.add_argument("--final-frac", type=float, default=None,
                   help="named schedules: final LR as a fraction of the peak (cosine 0.1, wsd 0 by default)")
    w.add_argument("--every", type=int, default=None, help="named schedules: steps between points (STEPS/500)")
    from repetita.cliargs import column_map

    w.add_argument("--columns", type=column_map, metavar="NEW=OLD,...",
                   help="a schedule CSV's own column names: --columns step=iteration,lr=learning_rate")
    w.add_argument("--out", metavar="CSV|JSON", help="write the predicted curve")
    w.add_argument("--plot", metavar="PNG", help="write the schedule and the predicted loss")
    w.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    w.set_defaults(func=cmd_predict)
