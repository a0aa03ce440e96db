"""``repetita suggest``: the next runs that would settle a plan's decision at the least compute (decide/design.py)."""

from __future__ import annotations

import math

from repetita.cliargs import SEED, number_list, parse_number
from repetita.errors import UserError, require


def _range(text: str, what: str) -> list[float]:
    """``A,B,C`` or ``FROM:TO:COUNT`` (log-spaced) as a list of positive numbers."""
    import numpy as np

    if ":" in text:
        parts = text.split(":")
        require(len(parts) == 3, f"{what}: use FROM:TO:COUNT or a comma list, got {text!r}")
        lo, hi = parse_number(parts[0], what), parse_number(parts[1], what)
        n = parse_number(parts[2], what)
        require(0 < lo <= hi and n >= 1 and n == int(n) and math.isfinite(hi), f"{what}: need 0 < FROM <= TO and a "
                f"whole COUNT, got {text!r}")
        require(n <= MAX_VALUES, f"{what}: COUNT {n:g} is above the limit of {MAX_VALUES:,} values")
        return np.geomspace(lo, hi, int(n)).tolist()
    values = number_list(text, what, positive=True)
    require(len(values) <= MAX_VALUES, f"{what}: {len(values):,} values is above the limit of {MAX_VALUES:,}")
    return values


# Size guards before any allocation: the design holds candidates x draws x laws predictions (a grid of
# 1e5 x 1e5 candidates asked for 522 GiB). The documented speed case is 1,000 candidates x 3 laws x 500 draws.
MAX_VALUES = 1000  # per offered axis (sizes, budgets, epochs)
MAX_CANDIDATES = 100_000
MAX_CELLS = 50_000_000  # candidates x draws x laws: 400 MB per array of predictions
MAX_DRAWS = 100_000


def _exclude_done(cand, path: str):
    """Candidates already in the run table ``path`` (same N, U and epochs within 1%) are not offered again."""
    import numpy as np

    from repetita.laws.data import read_table

    done = read_table(path)
    require({"params", "unique_tokens", "epochs"} <= set(done.columns),
            f"{path}: --done needs params, unique_tokens and epochs columns")
    import pandas as pd

    cols = done[["params", "unique_tokens", "epochs"]].apply(pd.to_numeric, errors="coerce")
    bad = ~(np.isfinite(cols.to_numpy(dtype=float)) & (cols.to_numpy(dtype=float) > 0)).all(axis=1)
    require(not bad.any(), f"{path}: row {int(np.argmax(bad)) + 2}: params, unique_tokens and epochs must be "
            "positive numbers")
    keep = np.ones(len(cand), dtype=bool)
    for n, u, k in cols.to_numpy(dtype=float):
        keep &= ~((np.abs(cand.params / n - 1) < 0.01) & (np.abs(cand.unique_tokens / u - 1) < 0.01)
                  & (np.abs(cand.epochs / k - 1) < 0.01))
    require(keep.any(), "every candidate is already in --done: widen the feasible set")
    return cand.take(keep)


def cmd_suggest(args) -> dict:
    from repetita.decide.design import (
        DEFAULT_BUDGET_SHARE,
        Target,
        candidate_grid,
        decision_candidates,
        joined,
        suggest,
    )
    from repetita.io import check_file
    from repetita.laws.record import estimator, load, same_data

    require(1 <= args.runs <= 1000, f"--runs (k) must be from 1 to 1,000, got {args.runs}")
    require(2 <= args.draws <= MAX_DRAWS, f"--draws must be from 2 to {MAX_DRAWS:,}, got {args.draws}")
    target = Target(parse_number(args.unique_tokens, "--unique-tokens"),
                    compute=parse_number(args.compute, "--compute") if args.compute else None,
                    params=parse_number(args.params, "--params") if args.params else None)
    budgets = _range(args.budgets, "--budgets")
    require(max(budgets) <= target.unique_tokens * 1.0001, f"--budgets reach {max(budgets):.3g} unique tokens, beyond "
            f"the target's corpus of {target.unique_tokens:.3g}: a run can only use a prefix of the corpus")
    for path in (args.csv, args.json_out, args.spec_out):
        if path:
            check_file(path, "output")
    base_text = None
    if args.spec_base:
        require(args.spec_out, "--spec-base needs --spec-out (the spec to write)")
        from repetita.study.spec import resolve_spec

        base = resolve_spec(args.spec_base)
        require(base.is_file(), f"{args.spec_base}: no such study spec")
        try:
            base_text = base.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise UserError(f"{args.spec_base}: cannot read it as a study spec ({exc})") from None
    records = {path: load(path) for path in args.law_file}
    differ = same_data(records)
    require(not differ, differ[0].replace("their decisions are compared, not pooled", "suggest pools their draws, so "
                                          "fit every law to the same runs") if differ else "")
    fits = {r.get("law", path) if sum(x.get("law") == r.get("law") for x in records.values()) == 1 else path:
            estimator(r) for path, r in records.items()}
    sizes, epochs = _range(args.sizes, "--sizes"), _range(args.epochs, "--epochs")
    n_cand = len(sizes) * len(budgets) * len(epochs)
    require(n_cand <= MAX_CANDIDATES, f"--sizes x --budgets x --epochs offer {n_cand:,} candidates, above the limit of "
            f"{MAX_CANDIDATES:,}; offer fewer values")
    require(n_cand * args.draws * len(records) <= MAX_CELLS, f"{n_cand:,} candidates x {args.draws} draws x "
            f"{len(records)} law(s) is above the limit of {MAX_CELLS:,} predictions; lower --draws or the grid")
    cand = candidate_grid(sizes, budgets, epochs, flops_per_token=args.flops_per_token,
                          max_run_flops=args.max_run_flops)
    if args.done:
        cand = _exclude_done(cand, args.done)
    budget = args.total_flops
    if budget is None and target.compute is not None:
        budget = DEFAULT_BUDGET_SHARE * target.compute  # a budget to spend, stated, not cheapest-first for ever
    require(budget is None or (math.isfinite(budget) and budget > 0), f"--total-flops must be a positive number, "
            f"got {budget}")
    extra, what = decision_candidates(fits, target, budget, args.max_run_flops, args.flops_per_token)
    inside = (extra.params >= min(sizes) / 1.001) & (extra.params <= max(sizes) * 1.001)  # sizes you can train
    extra, what = extra.take(inside), [w for w, ok in zip(what, inside, strict=True) if ok]
    grid = len(cand)
    cand = joined(cand, extra)
    out = suggest(fits, target, cand, args.runs, n_draws=args.draws, seed=args.seed,
                  flops_per_token=args.flops_per_token, budget=budget)
    for r in out["runs"]:  # which runs test the decision itself rather than a grid point
        r["why"] = next((w for i, w in enumerate(what) if r["params"] == float(extra.params[i])
                         and r["epochs"] == float(extra.epochs[i])), "grid")
    out["decision_candidates"] = [{"params": float(extra.params[i]), "epochs": float(extra.epochs[i]),
                                   "flops": float(extra.cost[i]), "what": w} for i, w in enumerate(what)]
    out["candidates_grid"] = grid
    out["budget_source"] = ("--total-flops" if args.total_flops is not None else
                            f"{100 * DEFAULT_BUDGET_SHARE:g}% of the decision's compute" if budget else None)
    if args.csv:
        import pandas as pd

        from repetita.io import save_table

        save_table(pd.DataFrame([{k: r[k] for k in ("params", "unique_tokens", "epochs", "tokens", "flops")}
                                 for r in out["runs"]]), args.csv)
        out["csv"] = args.csv
    if args.spec_out:
        from repetita.decide.next_runs import spec_for_suggestion
        from repetita.io import write_text

        write_text(args.spec_out, spec_for_suggestion(out["runs"], base_text))
        out["spec"] = args.spec_out
    if args.json_out:
        from repetita.io import write_json

        write_json(args.json_out, out, indent=1)
    if not args.json:
        _print(out)
    return out


def _print(out: dict) -> None:
    t = out["target"]
    if out["settled"]:
        print(out["settled"])
        return
    where = f"C = {t['compute']:.3g} FLOPs" if t["compute"] else f"N = {t['params']:.3g}"
    print(f"decision at {where}, U = {t['unique_tokens']:.3g} ({len(out['laws'])} law(s), {out['draws']} draws each, "
          f"{out['candidates']} candidates; noise {out['noise_log_sd']:.3f} in log loss)")
    for law, d in out["decision_now"].items():
        n, k, loss = d["log_params"], d["log_epochs"], d["loss"]
        print(f"  {law}: N* {n['median']:.3g} [{n['interval'][0]:.3g}, {n['interval'][1]:.3g}], K* {k['median']:.3g} "
              f"[{k['interval'][0]:.3g}, {k['interval'][1]:.3g}], loss {loss['median']:.4f} "
              f"[{loss['interval'][0]:.4f}, {loss['interval'][1]:.4f}]")
    # at a fixed compute ln K* = const - ln N* (one number); at a fixed size N is given and K* is the decision
    key, label = ("log_params", "sd ln N*") if t["compute"] else ("log_epochs", "sd ln K*")
    print(f"{'#':>2} {'N':>9} {'U':>9} {'K':>6} {'FLOPs':>9} {'value':>6} {label:>15} {'sd loss':>17} {'discr.':>8}")
    for i, r in enumerate(out["runs"], 1):
        b, a = r["sd_before"], r["sd_after"]
        print(f"{i:>2} {r['params']:>9.3g} {r['unique_tokens']:>9.3g} {r['epochs']:>6.3g} {r['flops']:>9.3g} "
              f"{r['value']:>6.3f} {b[key]:>6.3f} -> {a[key]:<6.3f} {b['loss']:>7.4f} -> {a['loss']:<7.4f} "
              f"{r['discrimination']:>8.3g}" + ("" if r.get("why", "grid") == "grid" else f"  ({r['why']})"))
    print(f"total {out['total_flops']:.3g} FLOPs ({out['method']}; chosen {out['selection']})")
    if out.get("expected_regret"):
        r = out["expected_regret"]
        print(f"expected regret of the decision (h Var(ln N*) / 2, h the loss's curvature in ln N): {r['now']:.3g} nats "
              f"now, {r['after']:.3g} after these runs")
    if out["budget"]:
        u = out["unspent"]
        print(f"budget {out['budget']:.3g} FLOPs ({out['budget_source']}): {100 * out['total_flops'] / out['budget']:.0f}% "
              f"spent" + (f"; {u['flops']:.3g} left: {u['why']}" if u and u["flops"] > 0 else ""))
    for w in out["warnings"]:
        print(f"  warning: {w}")


def register(sub) -> None:
    p = sub.add_parser(
        "suggest", help="the next runs that would settle the plan's decision at the least compute",
        description="Example: repetita suggest --law-file dc.json --law-file reuse.json --compute 9.26e21 "
        "--unique-tokens 25e9 --sizes 1e7:9e9:12 --budgets 1e8:25e9:10 --epochs 1,2,4,8,16,32,64 --max-run-flops 1e21 "
        "--runs 5. Value = expected share of the decision's variance a run removes (ensemble linearisation over "
        "the fits' parameter draws, docs/plan.md), ranked per FLOP; a batch is chosen greedily, each run valued "
        "given the ones before it.")
    p.add_argument("--law-file", action="append", required=True, help="a fit with uncertainty (repeatable)")
    p.add_argument("--compute", help="target compute C in FLOPs (the decision: N* and K*)")
    p.add_argument("--params", help="target model size N (the decision: K*)")
    p.add_argument("--unique-tokens", required=True, help="target unique tokens U")
    p.add_argument("--sizes", required=True, help="model sizes offered: A,B,C or FROM:TO:COUNT (log-spaced)")
    p.add_argument("--budgets", required=True, help="unique-token budgets offered (prefixes of U)")
    p.add_argument("--epochs", default="1,2,4,8,16,32,64", help="epoch counts offered")
    p.add_argument("--max-run-flops", type=lambda v: parse_number(v, "--max-run-flops"), help="per-run compute cap")
    p.add_argument("--total-flops", type=lambda v: parse_number(v, "--total-flops"),
                   help="budget for the whole batch (default with --compute: 10%% of the decision's compute)")
    p.add_argument("--runs", type=int, default=5, help="at most this many runs (k)")
    p.add_argument("--done", help="a run table: its (N, U, K) are not suggested again")
    p.add_argument("--draws", type=int, default=500, help="parameter draws per law")
    p.add_argument("--seed", type=SEED, default=0)
    p.add_argument("--flops-per-token", type=float, default=6.0, help="FLOPs per parameter per token (6)")
    p.add_argument("--csv", help="write the runs as a CSV for your own trainer")
    p.add_argument("--spec-out", help="write a study spec (TOML) that runs them: repetita run FILE --dir STUDY")
    p.add_argument("--spec-base", help="your command spec to add them to (its [[models]] name params); without it "
                   "the spec has a training command for you to fill in")
    p.add_argument("--json-out", help="write the full result as JSON")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_suggest)
