"""``repetita reuse``: how repeatable is this corpus? E(K, U) measured from runs or curves (``laws.reuse``).

A thin wrapper: reads runs or curves (``laws.curves``), builds the fresh-data reference (a measured curve
or a fitted law, optionally only its Chinchilla part, optionally anchored at each model's one-epoch run),
and prints the E table, K*(U) and its log fit, and the constant R_D* the measured E implies.
"""

from __future__ import annotations

import sys

from repetita.cliargs import SEED
from repetita.errors import require
from repetita.io import FIGURE_SUFFIXES, check_file, write_json
from repetita.laws.record import load as load_fit


def _reference(args, reuse):
    from repetita.laws.data import numeric_column, read_table

    if args.fresh:
        ref_df = read_table(args.fresh)
        require("tokens" in ref_df and "loss" in ref_df, f"{args.fresh}: the reference needs tokens and loss columns")
        return reuse.Reference(numeric_column(ref_df, "tokens"), numeric_column(ref_df, "loss"), name=str(args.fresh))
    record = load_fit(args.law_file)
    if args.chinchilla_part:
        from repetita.laws.law import get_law

        names = get_law("chinchilla").params
        require(all(p in record["params"] for p in names), f"{args.law_file}: no Chinchilla part to take")
        record = {"law": "chinchilla", "spec": {"law": "chinchilla"}, "params": {p: record["params"][p] for p in names}}
    return lambda n: reuse.Reference.from_law(record, n)


def cmd_reuse(args) -> dict:
    from repetita.cliargs import table_columns
    from repetita.laws import reuse
    from repetita.laws.curves import final_losses, load

    require(bool(args.fresh) != bool(args.law_file), "give the fresh-data reference: --fresh CSV or --law-file FIT.json")
    require(bool(args.runs) != bool(args.example), "give RUNS (a table or curves) or --example datablations-curves")
    inputs = [x for x in (args.runs, args.meta, args.fresh) if x]
    if args.plot:
        check_file(args.plot, "--plot", suffixes=FIGURE_SUFFIXES, inputs=inputs)
    if args.out:
        check_file(args.out, "--out", suffixes=(".json",), inputs=inputs)
    if args.example:
        from repetita.examples import load_example

        require(args.example.startswith("datablations-curves"), f"--example {args.example}: reuse reads datablations-curves")
        runs, curves = load_example(args.example), True
    else:
        runs, curves = load(args.runs, tag=args.tag, tokens_per_step=args.tokens_per_step, meta=args.meta,
                           columns=table_columns(args), recursive=args.recursive)
    from repetita.laws.checks import select

    runs = select(runs, args.where, str(args.runs or args.example))  # --where, as fit reads it
    reference = _reference(args, reuse)
    if curves:
        require("tokens" in runs.columns, "curves need token counts: give --tokens-per-step or a tokens column")
        if args.intervals:  # each run's final loss from its last evaluations, with bootstrap draws
            table = reuse.reuse_with_intervals(runs, reference, n_boot=args.intervals, anchor=args.anchor,
                                               extrapolate=args.extrapolate, seed=args.seed)
        else:
            table = reuse.effective_reuse(final_losses(runs), reference, args.extrapolate, anchor=args.anchor)
    else:
        table = reuse.effective_reuse(runs, reference, args.extrapolate, anchor=args.anchor)
    checks = reuse.check_reuse(table, anchored=args.anchor)
    default_by = ("params", "corpus", "unique_tokens")
    by = tuple(c for c in (args.by.split(",") if args.by else default_by) if c in table.columns)
    kstar = reuse.phase_transition(table, args.lam, by=by)
    out = {"lambda": args.lam, "table": table.to_dict(orient="records"), "k_star": kstar.to_dict(orient="records"),
           "rd_star_implied": reuse.fit_rd_star(table, tuple(c for c in by if c != "unique_tokens")).to_dict(orient="records"),
           "warnings": checks}
    if table["extrapolated"].any():
        out["warnings"].append(f"{int(table['extrapolated'].sum())} run(s) needed the reference extrapolated "
                               "(flagged in the table)")
    if kstar["k_star"].isna().any():
        out["warnings"].append(f"K* could not be read for {int(kstar['k_star'].isna().sum())} group(s): E never "
                               f"reaches lambda x K there (lambda = {args.lam:g}); those groups show K* as 'none'")
    if (kstar["k_star_at_grid_edge"]).any():
        out["warnings"].append("K* is the largest K measured for some group: the transition lies beyond the grid")
    if "unique_tokens" in by and table.groupby(list(by))["epochs"].nunique().max() == 1:
        out["warnings"].append("one K per U: K*(U) needs several epoch counts per U (try --by params,corpus)")
    one_model = "params" not in by or kstar["params"].nunique() == 1
    if "unique_tokens" in by and one_model and kstar["k_star"].notna().sum() >= 3:  # across sizes would mix models
        out["fit"] = reuse.fit_log_law(kstar)
    if args.plot:
        from repetita.laws.plots import plot_reuse

        out["plot"] = str(plot_reuse(table, kstar, out.get("fit"), args.lam, args.plot))
    if args.out:
        write_json(args.out, out)
    for w in out["warnings"]:
        sys.stderr.write(f"repetita reuse: warning: {w}\n")
    if not args.json:
        _print(args, table, kstar, out, by)
    return out


def _print(args, table, kstar, out, by) -> None:
    iv = "reuse_rate_lo" in table.columns
    extra = [c for c in ("corpus", "params") if c in table.columns]
    print(" ".join(f"{c:>10}" for c in extra) + f" {'U':>12} {'K':>7} {'loss':>8} {'D_eff':>11} {'E(K,U)':>8}"
          + ("   95% interval" if iv else ""))
    for r in table.sort_values([*extra, "unique_tokens", "epochs"]).to_dict(orient="records"):
        cells = " ".join(f"{r[c]:>10}" if isinstance(r[c], str) else f"{r[c]:>10.3g}" for c in extra)
        print(f"{cells} {r['unique_tokens']:>12.4g} {r['epochs']:>7.3g} {r['loss']:>8.4f} {r['effective_tokens']:>11.4g} "
              f"{r['reuse_rate']:>8.3f}" + (f"   [{r['reuse_rate_lo']:.3f}, {r['reuse_rate_hi']:.3f}]" if iv else "")
              + ("  (extrapolated)" if r["extrapolated"] else "") + (f"  ({r['flag']})" if r.get("flag") else ""))
    for r in kstar.to_dict(orient="records"):
        ks = "none (E never reaches lambda x K)" if r["k_star"] != r["k_star"] else f"{r['k_star']:g}"
        print(f"{_label(r, by)}: K*(lambda={args.lam:g}) = {ks}, plateau E = {r['plateau']:.3g}")
    for r in out["rd_star_implied"]:
        label = _label(r, [k for k in r if not k.startswith(("rd_star", "rms_E", "epochs"))])
        print(f"constant-R_D* reading{' (' + label + ')' if label else ''}: R_D* = {r['rd_star']:.3g} over all "
              f"{r['epochs']} epoch counts (RMS error in E {r['rms_E']:.2f}), {r['rd_star_to_peak']:.3g} up to the peak "
              f"of E ({r['epochs_to_peak']} counts, RMS {r['rms_E_to_peak']:.2f})")
    if "fit" in out:
        f = out["fit"]
        print(f"K*(U) = {f['A']:.3g} ln U + {f['B']:.3g}; A in [{f['A_interval'][0]:.3g}, {f['A_interval'][1]:.3g}] "
              f"({100 * f['level']:g}%, {f['points']} values of U)")


def _label(row: dict, keys) -> str:
    """``params = 2.81e+09, corpus = c4``: a group's key columns, numbers short."""
    return ", ".join(f"{k} = {row[k]}" if isinstance(row[k], str) else f"{k} = {row[k]:.4g}" for k in keys)


def register(sub) -> None:
    e = sub.add_parser(
        "reuse",
        help="effective reuse rate E(K, U) of multi-epoch runs against a fresh-data reference, and K*(U)",
        description="Example: repetita reuse runs.csv --fresh onepass.csv --plot reuse.png. RUNS has "
                    "unique_tokens, epochs (or tokens) and loss, or is a set of curves (their final evaluations); "
                    "the reference is a (tokens, loss) curve of fresh data, or a fitted law (--law-file) "
                    "evaluated with every token fresh at each run's params.",
    )
    e.add_argument("runs", nargs="?", help="run table (CSV/Parquet) or curves: a tidy curve table, TensorBoard "
                   "event files, a Hugging Face trainer_state.json, a W&B history or chart CSV")
    e.add_argument("--example", help="shipped curves: datablations-curves")
    from repetita.cliargs import add_curve_arguments

    add_curve_arguments(e)
    e.add_argument("--fresh", help="fresh-data reference: CSV with tokens and loss (a one-pass curve)")
    e.add_argument("--law-file", help="fresh-data reference from a fitted law (needs params in RUNS)")
    e.add_argument("--chinchilla-part", action="store_true",
                   help="with --law-file: use only the law's Chinchilla part (every token and parameter fresh)")
    e.add_argument("--anchor", action="store_true",
                   help="shift the reference per model (and corpus) so its one-epoch run has E = 1")
    e.add_argument("--intervals", type=int, default=0, metavar="B",
                   help="curves: bootstrap the final losses from their last evaluations, B resamples")
    e.add_argument("--seed", type=SEED, default=0, help="bootstrap seed")
    e.add_argument("--by", help="K* groups, comma-separated (default params,corpus,unique_tokens where present)")
    e.add_argument("--lam", type=float, default=0.75, help="K* = the largest K with E >= lam K (default 0.75)")
    e.add_argument("--extrapolate", action="store_true", help="allow (and flag) losses outside the reference")
    e.add_argument("--plot", metavar="PNG", help="E vs K per U with E = K, and K* vs U with the fit")
    e.add_argument("--out", metavar="JSON", help="write the result")
    e.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    e.set_defaults(func=cmd_reuse)
