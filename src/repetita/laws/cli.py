"""``repetita fit``, ``repetita plan`` and ``repetita laws``: thin wrappers over the law engine."""

from __future__ import annotations

import sys

import numpy as np

from repetita.cliargs import SEED, number_list, parse_number
from repetita.errors import UserError, require
from repetita.io import FIGURE_SUFFIXES, check_file, write_json


def parse_pairs(items: list[str] | None, what: str) -> dict[str, str]:
    out = {}
    for item in items or []:
        require("=" in item, f"{what} {item!r}: expected NAME=VALUE")
        k, v = item.split("=", 1)
        require(k.strip() and v.strip(), f"{what} {item!r}: expected NAME=VALUE")
        out[k.strip()] = v.strip()
    return out


def _load_table(args):
    from repetita.cliargs import table_columns
    from repetita.examples import load_example
    from repetita.laws.caveats import Caveat, Kind

    require(bool(args.csv) != bool(args.example), "give a CSV file or --example NAME (exactly one)")
    if args.example:
        df, source = load_example(args.example), f"example:{args.example}"
        curves = "run" in df.columns and df["run"].duplicated().any()
    else:
        from repetita.laws.curves import load

        # a run table, or curves from any logger (laws.curves): every evaluation is a row, or with --final
        # only each run's last one
        df, curves = load(args.csv, tag=args.tag, tokens_per_step=args.tokens_per_step, meta=args.meta,
                          columns=table_columns(args), recursive=args.recursive)
        source = str(args.csv)
    from repetita.laws.checks import question, select, separator_hint

    hint = separator_hint(source, df) if not args.example else None
    if hint:  # a tab- or semicolon-separated file: read it again with its own separator
        import pandas as pd

        from repetita.laws.data import canonical

        df = canonical(pd.read_csv(args.csv, sep="\t" if "tabs" in hint else ";", skipinitialspace=True),
                       table_columns(args))
    df = select(df, getattr(args, "where", None), source)
    if not curves:
        df, asked = question(df, source)
        args.table_caveats = ([Caveat(Kind.OTHER, hint, source)] if hint else []) + asked
    else:
        from repetita.laws.checks import question_curves

        args.table_caveats = question_curves(df, source)
    require(curves or not args.final, f"{source}: --final needs curves (several evaluations per run)")
    if curves:
        from repetita.laws.curves import as_runs, final_losses

        if args.final:
            df, source = final_losses(df), source + " (final evaluations)"
        from repetita.laws.law import get_law

        if not get_law(args.law).curves:  # the curve laws read the curves themselves, every evaluation
            df = as_runs(df)
    return df, source


def spec_kwargs(args) -> dict:
    freeze = {k: parse_number(v, f"--freeze {k}") for k, v in parse_pairs(args.freeze, "--freeze").items()}
    tie = {}
    for leader, follower in parse_pairs(args.tie, "--tie").items():
        tie[follower] = leader  # --tie alpha=beta: beta follows alpha
    grid = {}
    for k, v in parse_pairs(args.grid, "--grid").items():
        grid[k] = tuple(number_list(v, f"--grid {k}"))
    return {
        "freeze": freeze,
        "tie": tie,
        "grid": grid,
        "delta": args.delta,
        "n_refine": args.n_refine,
        "axis": args.axis,
    }


def check_outputs(args, inputs=()) -> None:
    """Output paths are checked before any fitting: a bad one costs a second, not the whole fit."""
    if getattr(args, "plot", None):
        check_file(args.plot, "--plot", suffixes=FIGURE_SUFFIXES, inputs=inputs)
    if getattr(args, "out", None):
        check_file(args.out, "--out", suffixes=(".json",), inputs=inputs)


def _holdout_caveats(holdout: dict, fitted: list, saved) -> list:
    """Held-out fits warn as full fits do: a group the law predicts worse than its mean (R^2 < 0.5,
    negative R^2 included), and what the training splits' own diagnostics found (unidentified parameters),
    each typed by kind and marked with its split (the plan folds them per kind)."""
    from repetita.laws.caveats import Caveat, Kind

    out = []
    for group, s in holdout.get("by_group", {}).items():
        if s["rows"] >= 3 and np.isfinite(s["r2"]) and s["r2"] < 0.5:
            out.append(Caveat(Kind.HELD_OUT, f"held-out R^2 = {s['r2']:.3g} on {group} ({s['rows']} rows): the law "
                              "does not extrapolate there" + (" (worse than predicting the group's mean)"
                                                              if s["r2"] < 0 else "")))
    for i, (est, _) in enumerate(fitted):
        if est is saved:
            continue  # its warnings are the saved fit's own
        for c in est.caveats_:
            out.append(Caveat(c.kind, c.text, split=i + 1))
    return out


def cmd_fit(args) -> dict:
    from repetita.laws import record
    from repetita.laws.fit import LawFit

    check_outputs(args, inputs=[args.csv] if args.csv else [])
    df, source = _load_table(args)
    kwargs = spec_kwargs(args)
    if args.by:
        return _two_step(args, df, source, kwargs)
    if args.holdout:
        from repetita.laws.holdout import evaluate, parse_holdout

        ho = parse_holdout(args.holdout)
        fitted: list = []
        require(0 < args.level < 1, f"--level must lie in (0, 1), got {args.level}")
        from repetita.laws.law import get_law

        # interval coverage needs 200 evaluations of the law per held-out row: seconds for a run table,
        # over a minute for the multi-power law's thousands of curve points, so curve laws report errors only
        level = None if get_law(args.law).curves else args.level
        table, summary = evaluate(lambda: LawFit(args.law, **kwargs), df, ho, fitted=fitted, intervals=level)
        holdout = {"spec": args.holdout, **summary, "rows": table.to_dict(orient="records")}
    full, held = df.reset_index(drop=True), None
    if args.holdout and len(fitted) == 1:  # one train/test split: report and save the fit on the training rows
        est, df = fitted[0]
        held = ~full.index.isin(df.index)
        source = f"{source} (training rows of {args.holdout})"
    else:
        est = LawFit(args.law, **kwargs).fit(df)
    result = record.build(est, source=source, holdout=holdout if args.holdout else None)
    table = getattr(args, "table_caveats", [])  # what the table says about itself (laws/checks.py), said once
    result["warnings"] = [c.text for c in table] + result["warnings"]
    result["caveats"] = [c.to_dict() for c in table] + result.get("caveats", [])
    if args.holdout:
        extra = _holdout_caveats(holdout, fitted, est)
        result["warnings"] = result["warnings"] + [f"training split {c.split} of {len(fitted)}: {c.text}"
                                                   if c.split else c.text for c in extra]
        result["caveats"] = result.get("caveats", []) + [c.to_dict() for c in extra]
    if est.free_:
        result |= _uncertainty(args, est, df)
        from repetita.laws.influence import influential_rows

        moved = _wide_interval(args, est, df) + influential_rows(est, df, args.level)
        result["warnings"] = result["warnings"] + [c.text for c in moved]
        result["caveats"] = result.get("caveats", []) + [c.to_dict() for c in moved]
    if args.plot:
        from repetita.laws.plots import plot_fit
        from repetita.laws.record import sampled_records

        try:
            draws = sampled_records(result, n=100) if result.get("uncertainty") else None
        except UserError:
            draws = None  # unidentified parameters: curves without a band (the warnings say why)
        what = f"the {args.example} runs" if args.example else f"{est.n_rows_} runs"
        title = f"{args.law} law fitted to {what}" + (f", {args.holdout} held out" if args.holdout else "")
        if args.example and args.example.startswith("multipowerlaw:"):
            title = f"multi-power law, {args.example.split(':', 1)[1]} model, fitted on {est.n_rows_} points"
        result["plot"] = str(plot_fit(est, full if held is not None else df, args.plot, title=title,
                                      held_out=held, samples=draws))
    if args.out:
        record.save(args.out, result)
        result["out"] = str(args.out)
    _warn(result)
    if not args.json:
        _print_fit(result)
    return result


def _uncertainty(args, est, df) -> dict:
    """Intervals of the free parameters: the sandwich (Laplace) interval by default, a vectorized bootstrap
    with ``--bootstrap B``; the record keeps what ``repetita plan`` needs to propagate them."""
    from repetita.laws import uncertainty
    from repetita.laws.record import uncertainty_block

    require(0 < args.level < 1, f"--level must lie in (0, 1), got {args.level}")
    if args.bootstrap:
        from repetita.laws.fit import bootstrap

        u = bootstrap(est, df, args.bootstrap, seed=args.seed, level=args.level)
    else:
        u = uncertainty.laplace(est, df, level=args.level)
    est.uncertainty_ = uncertainty_block(u)  # what the fit file saves, and what the width check draws from
    return {"intervals": u["params"], "uncertainty": est.uncertainty_}


def _wide_interval(args, est, df) -> list:
    """A Laplace interval of the law's mean far wider than the fit's scatter, as a caveat (``laws.intervals``).
    It evaluates the law under 200 draws at every row: run tables only (a curve law has thousands of points)."""
    from repetita.laws.caveats import Caveat, Kind
    from repetita.laws.intervals import row_intervals, width_warning

    if args.bootstrap or est.spec.law_obj.curves:
        return []
    wide = width_warning(row_intervals(est, df, level=args.level, prediction=False), est)
    return [Caveat(Kind.WIDE_INTERVAL, wide)] if wide else []


def _two_step(args, df, source, kwargs) -> dict:
    from repetita.laws.asymptote import two_step_asymptote

    require(args.law == "power" and args.axis, "--by needs --law power --axis INNER (e.g. --axis members --by params)")
    for flag, value in (("--plot", args.plot), ("--bootstrap", args.bootstrap), ("--holdout", args.holdout)):
        require(not value, f"--by fits one law per group and then one along the groups; {flag} is not "
                "supported with it (fit a group on its own to get one)")
    kwargs = {k: v for k, v in kwargs.items() if k != "axis"}
    result = two_step_asymptote(df, args.axis, args.by, **kwargs)
    result["source"] = source
    if args.out:
        write_json(args.out, result)
    if not args.json:
        print(f"two-step asymptote along {args.axis} within each {args.by}, then along {args.by}")
        for g in result["groups"]:
            print(
                f"  {args.by}={g[args.by]:<12.4g} E={g['E']:.4f}  A={g['A']:.4g}  alpha={g['alpha']:.3f}  R^2={g['r2']:.4f}"
            )
        o = result["outer_fit"]
        print(f"outer fit: E_inf={o['E']:.4f}  A={o['A']:.4g}  alpha={o['alpha']:.3f}  R^2={o['r2']:.4f}")
    return result


def _warn(result: dict) -> None:
    for w in result.get("warnings", []):
        sys.stderr.write(f"repetita fit: warning: {w}\n")


def _print_fit(r: dict) -> None:
    print(f"law {r['law']} on {r['source']}: {r['n_rows']} rows, {r['n_starts']} starts")
    print(f"objective {r['objective']:.10g}   R^2 {r['r2']:.4f}")
    intervals = r.get("intervals", {})
    if intervals:
        u = r["uncertainty"]
        how = f"bootstrap, {u['n']} resamples" if u["method"] == "bootstrap" else "sandwich (Laplace)"
        print(f"intervals: {100 * u['level']:g}% {how}, on the fitted scale (a = ln A; positive parameters on "
              "the log scale); these are intervals of the parameters, not of a run's loss (plan gives that)")
    for name, value in r["params"].items():
        ties = r["spec"]["tie"]
        tag = "" if name in r["free"] else (f"  (tied to {ties[name]})" if name in ties else "  (fixed)")
        iv = intervals.get(name)
        ci = (f"  [{iv['lo']:.6g}, {iv['hi']:.6g}]" + ("  (reaches its bound: not bounded by the data)"
                                                     if iv.get("at_bound") else "")) if iv else ""
        print(f"  {name:>8} = {value:.6g}{ci}{tag}")
    extra = {k: v for k, v in r["natural"].items() if k not in r["params"]}
    if extra:
        print("  natural: " + ", ".join(f"{k} = {v:.6g}" for k, v in extra.items()))
    if "holdout" in r:
        h = r["holdout"]
        print(
            f"holdout {h['spec']}: {len(h['rows'])} rows, RMSE(log) {h['rmse_log']:.4g}, "
            f"mean |rel err| {h['mean_abs_rel']:.4%}, max {h['max_abs_rel']:.4%}, R^2 {h['r2']:.4f}"
        )
        if "coverage" in h:
            pct = f"{100 * r.get('uncertainty', {}).get('level', 0.95):g}%"
            print(f"  held-out losses inside the {pct} prediction interval: {h['coverage']:.2f}; inside the "
                  f"interval of the law's mean: {h['coverage_mean']:.2f}")
        for g, s in h["by_group"].items():
            print(f"  {g}: R^2 {s['r2']:.4f}  mean |rel err| {s['mean_abs_rel']:.4%}")


def cmd_laws(args) -> dict:
    from repetita.laws.law import LAWS

    if args.benchmark and args.curves:
        return _benchmark_curves(args)
    require(not args.curves, "--curves goes with --benchmark")
    if args.benchmark:
        return _benchmark(args)
    require(not args.table, f"{args.table}: a table is read by laws --benchmark TABLE")
    out = {
        name: {"params": list(law.params), "columns": list(law.columns), "doc": law.doc}
        | ({"retired": law.retired} if law.retired else {}) for name, law in LAWS.items()
    }
    if not args.json:
        for name, info in out.items():
            print(
                f"{name:<17} {info['doc']}\n{'':<17} params: {', '.join(info['params'])}; columns: {', '.join(info['columns'])}"
                + (f"\n{'':<17} not in the default set: {info['retired']}" if "retired" in info else "")
            )
    return out


def _benchmark(args) -> dict:
    """``repetita laws --benchmark``: every law x shipped multi-epoch table x extrapolation split."""
    import time

    from repetita.io import check_file, save_table
    from repetita.laws import benchmark
    from repetita.laws.law import get_law

    laws = tuple(args.only.split(",")) if args.only else benchmark.benchmark_laws()
    for name in laws:
        get_law(name)
    splits = tuple(args.splits.split(",")) if args.splits else benchmark.SPLITS
    for sp in splits:
        require(sp in benchmark.SPLITS, f"--splits: unknown split {sp!r}; choose from {', '.join(benchmark.SPLITS)}")
    if args.out:
        check_file(args.out, "--out", suffixes=(".csv", ".parquet"), inputs=[args.table] if args.table else [])
    tables = None
    if args.table:  # the user's own table instead of the shipped ones
        from repetita.laws.checks import select
        from repetita.laws.data import read_table, runs_frame

        # validated as any fit's table is: numbers, no NaN, unique tokens within tokens (one line otherwise)
        runs = runs_frame(select(read_table(args.table), args.where, str(args.table)),
                          ("params", "tokens", "unique_tokens"))
        tables = {str(args.table): runs.assign(epochs=runs["tokens"] / runs["unique_tokens"])}
    else:
        require(not args.where, "--where selects rows of a TABLE given to laws --benchmark")
    t0 = time.perf_counter()
    scores = benchmark.run(laws, splits, tables=tables)
    seconds = time.perf_counter() - t0
    df = benchmark.table(scores)
    if args.out:
        save_table(df, args.out)
    narrow = df[df["coverage"] < 0.9]
    warnings = [f"{len(narrow)} of {len(df)} law x table x split cells cover under 90% of held-out losses with "
                "their 95% prediction interval: read intervals there as too narrow"] if len(narrow) else []
    if not args.json:
        print(benchmark.markdown(scores))
        for w in warnings:
            print(f"warning: {w}")
        print(f"{len(df)} fits in {seconds:.1f} s" + (f"; table in {args.out}" if args.out else ""))
    return {"scores": df.to_dict(orient="records"), "seconds": seconds, "warnings": warnings}


def _benchmark_curves(args) -> dict:
    """``repetita laws --benchmark --curves [TABLE]``: the curve law's curve and run splits (laws/curve_bench.py)."""
    import time

    from repetita.io import check_file, save_table
    from repetita.laws import curve_bench

    require(not args.only and not args.splits, "--only and --splits rank run-table laws; --curves scores the curve law")
    if args.out:
        check_file(args.out, "--out", suffixes=(".csv", ".parquet"), inputs=[args.table] if args.table else [])
    tables = None
    if args.table:
        from repetita.laws.checks import select
        from repetita.laws.curves import load

        df, curves = load(args.table)
        require(curves, f"{args.table}: --curves needs loss curves (several evaluations per run)")
        tables = {str(args.table): select(df, args.where, str(args.table))}
    else:
        require(not args.where, "--where selects rows of a TABLE given to laws --benchmark")
    t0 = time.perf_counter()
    df = curve_bench.run(tables)
    seconds = time.perf_counter() - t0
    if args.out:
        save_table(df, args.out)
    if not args.json:
        print(curve_bench.markdown(df))
        print(f"{len(df)} splits in {seconds:.1f} s" + (f"; table in {args.out}" if args.out else ""))
    return {"scores": df.to_dict(orient="records"), "seconds": seconds}


def cmd_compose(args) -> dict:
    """``repetita compose``: the user's Chinchilla fit and a repetition term, as one fit file (laws/compose.py)."""
    from repetita.laws import record
    from repetita.laws.compose import compose

    require(args.base != args.repetition, "--base and --repetition name the same file")
    check_file(args.out, "--out", suffixes=(".json",), inputs=[args.base, args.repetition])
    result, notes = compose(record.load(args.base), record.load(args.repetition), base_name=args.base,
                            rep_name=args.repetition, seed=args.seed)
    record.save(args.out, result)
    if not args.json:
        p = result["params"]
        u = result.get("uncertainty")
        print(f"{result['law']} law composed into {args.out}: " + ", ".join(f"{k} = {v:.4g}" for k, v in p.items()))
        print(f"  joint draws: {u['n']} over {', '.join(u['free'])}" if u else "  no parameter interval (neither "
              "source carries one)")
        reg = result.get("region") or {}
        if reg:
            print("  speaks for: " + ", ".join(f"{k} <= {reg[k]:.3g}" for k in ("params", "compute", "epochs")
                                              if k in reg))
        for n in notes:
            print(f"  note: {n}")
    return result | {"out": str(args.out)}


def register(sub) -> None:
    from repetita.laws.record import freeze_args, published_chinchilla

    p = sub.add_parser(
        "fit",
        help="fit a scaling law to a run table",
        description="Fit a law by Huber loss on log predictions (delta 1e-3), vectorized init grid + L-BFGS. "
        "Example: repetita fit --example datablations --law data-constrained "
        + " ".join(freeze_args(published_chinchilla())) + " --bootstrap 100",
    )
    p.add_argument("csv", nargs="?", help="run table (CSV/Parquet): params, tokens, unique_tokens, epochs, loss; or "
                   "curves (tidy curve table, TensorBoard event files, trainer_state.json, W&B CSV)")
    p.add_argument(
        "--example", help="shipped published data: datablations, datablations-all, datablations-curves, "
        "multipowerlaw[:25M|100M|400M]"
    )
    p.add_argument("--final", action="store_true", help="curves: fit each run's final evaluation only")
    from repetita.cliargs import add_curve_arguments

    add_curve_arguments(p)
    from repetita.laws.law import LAWS

    p.add_argument("--law", required=True, help=f"one of {', '.join(LAWS)} (repetita laws describes each)")
    p.add_argument("--freeze", action="append", metavar="NAME=VALUE", help="fix a parameter (E=1.69 means e = ln 1.69)")
    p.add_argument("--tie", action="append", metavar="LEADER=FOLLOWER", help="e.g. alpha=beta: beta follows alpha")
    p.add_argument("--grid", action="append", metavar="NAME=V1,V2,..", help="replace a parameter's init-grid values")
    p.add_argument("--n-refine", type=int, default=4, help="best grid starts refined with L-BFGS (default 4)")
    p.add_argument("--delta", type=float, default=1e-3, help="Huber delta (default 1e-3)")
    p.add_argument("--axis", help="power law: the column x in L = E + A x^-alpha")
    p.add_argument("--by", help="power law: two-step asymptote, fit along --axis within each value of this column")
    p.add_argument("--bootstrap", type=int, default=0, metavar="B", help="percentile intervals from B resamples")
    p.add_argument("--seed", type=SEED, default=0, help="bootstrap seed (default 0)")
    p.add_argument("--level", type=float, default=0.95, help="interval level (default 0.95)")
    p.add_argument(
        "--holdout", metavar="SPEC", help="kfold:K[:SEED], largest:COL[:N], group:COL, test:COL=V,.., train:COL=V,.."
    )
    p.add_argument("--plot", metavar="PNG", help="write observed-vs-predicted figure")
    p.add_argument("--out", metavar="FIT.json", help="save the fit record (read by repetita plan)")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.set_defaults(func=cmd_fit)

    c = sub.add_parser(
        "compose", help="your Chinchilla fit plus a repetition term measured elsewhere, as one law file",
        description="The typical case: single-epoch runs of your own (repetita fit runs.csv --law chinchilla --out "
        "base.json) and a fixed corpus that must be repeated. Example: repetita compose --base base.json "
        "--repetition example:datablations-published --out composed.json; then repetita plan --law-file "
        "composed.json --compute C --unique-tokens U")
    c.add_argument("--base", required=True, help="a Chinchilla fit of your runs (fit file with intervals)")
    c.add_argument("--repetition", default="example:datablations-published",
                   help="a data-constrained or reuse fit whose repetition term is used (default: the published one)")
    c.add_argument("--seed", type=SEED, default=0, help="seed of the joint draws (default 0)")
    c.add_argument("--out", required=True, metavar="FIT.json", help="the composed fit file")
    c.add_argument("--json", action="store_true")
    c.set_defaults(func=cmd_compose)

    r = sub.add_parser("laws", help="list the available laws, or rank them (--benchmark)",
                       description="With --benchmark: fit every law on one side of each extrapolation split (size, "
                       "epochs, compute, unique) of every shipped multi-epoch table and score it on the other side "
                       "(held-out |log residual|, 95%% prediction-interval coverage, decision regret).")
    r.add_argument("table", nargs="?", help="--benchmark: your own run table (params, tokens, unique_tokens, loss; "
                   "some runs repeating their data) instead of the shipped ones")
    r.add_argument("--where", metavar="EXPR", help="--benchmark TABLE: rows to use, in pandas query syntax")
    r.add_argument("--benchmark", action="store_true", help="rank the laws by how they extrapolate")
    r.add_argument("--curves", action="store_true", help="--benchmark: score the law over whole curves on curve and "
                   "run splits (the shipped curves, or TABLE's)")
    r.add_argument("--only", help="--benchmark: comma-separated laws (default: every law with a repetition term)")
    r.add_argument("--splits", help="--benchmark: comma-separated splits (default: size,epochs,compute,unique)")
    r.add_argument("--out", help="--benchmark: write the score table (.csv or .parquet)")
    r.add_argument("--json", action="store_true")
    r.set_defaults(func=cmd_laws)
