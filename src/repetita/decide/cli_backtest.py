"""``repetita backtest``: how good the decisions made from a table's smaller budgets were at its larger ones
(decide/backtest.py)."""

from __future__ import annotations

from repetita.cliargs import SEED
from repetita.errors import require


def study_table(directory: str):
    """A study's single-model runs of the standard recipe, one row per seed, as a run table (and its name)."""
    from pathlib import Path

    import pandas as pd

    from repetita.study.store import Store  # the edge may read a study

    path = Path(directory) / "store.sqlite"
    require(path.is_file(), f"{directory}: no study here (no store.sqlite)")
    tidy = Store(path, create=False, readonly=True).tidy()
    # an ensemble's members are standard runs that differ in their seed (in the demo study member seed 0 is
    # the standard run itself: 5.1119 both, at 11k params x 16 epochs): they are the seed replicates
    single = tidy[(tidy["members"] == 1) & tidy["recipe"].isin(["standard", "ensemble"])]
    std = single.drop_duplicates([c for c in ("params", "unique_tokens", "epochs", "seed", "lr", "weight_decay")
                                  if c in single])
    require(not std.empty, f"{directory}: the study has no finished standard runs to backtest")
    return (pd.DataFrame({"params": std["params"], "tokens": std["epochs"] * std["unique_tokens"],
                          "unique_tokens": std["unique_tokens"], "loss": std["loss"]}).reset_index(drop=True),
            f"study {directory}")


def cmd_backtest(args) -> dict:
    from repetita.decide.allocate import TRUST_FACTOR
    from repetita.decide.backtest import BacktestConfig, backtest, synthetic_table
    from repetita.io import check_file, write_json

    given = [x for x in (args.csv, args.example, args.study, args.synthetic) if x]
    require(len(given) == 1, "give one of: a run table (CSV), --example NAME, --study DIR or --synthetic")
    if args.out:
        check_file(args.out, "--out", inputs=[x for x in (args.csv,) if x])
    truth = None
    study = args.study is not None
    if args.synthetic:
        df, truth = synthetic_table(args.noise, args.seed)
        source = f"synthetic (published data-constrained law, log noise sd {args.noise:g}, seed {args.seed})"
    elif study:
        df, source = study_table(args.study)
    elif args.example:
        from repetita.examples import load_example

        df, source = load_example(args.example), f"example:{args.example}"
    else:
        from repetita.laws.data import read_table

        df, source = read_table(args.csv), str(args.csv)
    laws = tuple(dict.fromkeys(args.law or ["data-constrained"]))
    config = BacktestConfig(laws, args.levels, args.min_rows, args.trust or TRUST_FACTOR, tie_alpha_beta=study)
    result = backtest(df, config, source, truth)
    out = result.to_json()
    if args.out:
        write_json(args.out, out)
    if not args.json:
        print(f"backtest of {source}: {result.configurations} configurations; seed noise {result.noise:.4f} "
              f"({result.noise_how})" + (f"; seed sd {result.seed_sd:.4f}" if result.seed_sd else ""))
        print(f"{'law':<18} {'decisions':>9} {'scored':>6} {'median regret':>13} {'max':>8} {'contradicted':>12} "
              f"{'law alone':>9} {'runs only':>9}" + (f" {'true regret':>11}" if truth else ""))
        f = lambda v: "-" if v is None else f"{v:.4f}"  # noqa: E731
        for s in result.summaries:
            print(f"{s.law:<18} {s.decisions:>9} {s.scored:>6} {f(s.median_regret):>13} {f(s.max_regret):>8} "
                  f"{s.contradicted:>12} {f(s.median_regret_law_alone):>9} {f(s.median_regret_runs_only):>9}"
                  + (f" {f(s.median_true_regret):>11}" if truth else ""))
        print("regret: measured loss at the decision (the run within 1.25x of its N and K, else law-free "
              "interpolation) minus the best measured at (U, C), in nats; median over scored decisions")
        if args.out:
            print(f"every decision: {args.out}")
    return out


def register(sub) -> None:
    p = sub.add_parser(
        "backtest", help="replay a run table budget by budget and score each decision on the runs it had not seen",
        description="Cut the table into compute levels; at each, fit the laws on the runs below, decide at the "
        "level's budget for every unique-token count present (measured runs first, laws only inside the trust "
        "region), and score the decision against the runs: regret and whether a run contradicts it.")
    p.add_argument("csv", nargs="?", help="a run table: params, tokens, unique_tokens, loss (one row per run or seed)")
    p.add_argument("--example", help="a shipped table: datablations, datablations-all")
    p.add_argument("--study", help="a study folder: its standard single-model runs")
    p.add_argument("--synthetic", action="store_true", help="a table made from the published data-constrained law")
    p.add_argument("--noise", type=float, default=0.002, help="--synthetic: log-scale noise sd (default 0.002)")
    p.add_argument("--seed", type=SEED, default=0, help="--synthetic: noise seed")
    p.add_argument("--law", action="append", help="a law to decide with (repeatable; default data-constrained)")
    p.add_argument("--levels", type=int, help="compute levels (default: each level within --trust x the one below)")
    p.add_argument("--min-rows", type=int, default=20, help="fitting rows a level needs (default 20)")
    p.add_argument("--trust", type=float, help="trust-region factor (default 3)")
    p.add_argument("--out", help="write every decision as JSON")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_backtest)
