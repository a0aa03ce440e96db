"""``repetita mix optimize|composition|sequence`` and ``repetita rephrase``; heavy imports stay inside functions."""

from __future__ import annotations

import math

from repetita.cliargs import SEED, bounded_float, number_list
from repetita.errors import UserError, require
from repetita.io import check_dir


def _floats(text: str | None, name: str) -> list[float] | None:
    return None if text is None else number_list(text, name)


def _per_group(values: list[float] | None, k: int, default: float, name: str) -> list[float]:
    if values is None:
        return [default] * k
    if len(values) == 1:
        return values * k
    require(len(values) == k, f"{name}: need 1 or {k} values, got {len(values)}")
    return values


MAX_GROUPS = 1_000_000


def cmd_optimize(args) -> dict:
    import numpy as np

    from repetita.data_mix import mixture as mx

    if args.zipf:
        try:
            k, alpha = args.zipf.split(":")
            k, alpha = int(k), float(alpha)
        except ValueError:
            raise UserError(f"--zipf: expected GROUPS:ALPHA like 100:1.1, got '{args.zipf}'") from None
        # the optimum is solved over every group: a million groups is far past any skill or domain count
        require(1 <= k <= MAX_GROUPS and math.isfinite(alpha), f"--zipf: GROUPS must be from 1 to {MAX_GROUPS:,} "
                f"and ALPHA a finite number, got '{args.zipf}'")
        p = mx.zipf(k, alpha)
    else:
        require(args.weights is not None, "give --weights p1,p2,... or --zipf GROUPS:ALPHA")
        p = mx.check_weights(_floats(args.weights, "--weights"), "--weights")
    k = p.size
    names = [str(i) for i in range(k)]
    fitted = None
    if args.memorize:
        curves = [mx.MissCurve()] * k
        model = "memorize"
    elif args.curves:

        from repetita.laws.data import read_table

        df = read_table(args.curves)
        names, curves, fitted = mx.fit_curves(df, group=args.group, axis=args.axis)
        require(len(curves) == k, f"--curves has {len(curves)} groups but --weights has {k}")
        model = "fitted power laws"
    else:
        ex = _per_group(_floats(args.exponents, "--exponents"), k, 1.0, "--exponents")
        co = _per_group(_floats(args.coefs, "--coefs"), k, 1.0, "--coefs")
        fl = _per_group(_floats(args.floors, "--floors"), k, 0.0, "--floors")
        curves = [mx.PowerCurve(coef=c, exponent=e, floor=f) for c, e, f in zip(co, ex, fl, strict=True)]
        model = "power laws"
    q = mx.optimal_mixture(p, curves, args.budget)
    err_p = mx.expected_error(p, p, curves, args.budget)
    err_q = mx.expected_error(p, q, curves, args.budget)
    out = {
        "model": model,
        "budget": args.budget,
        "groups": names,
        "test_weights": p.tolist(),
        "train_mixture": np.round(q, 10).tolist(),
        "error_at_test_mix": err_p,
        "error_at_optimum": err_q,
        "gain": err_p - err_q,
        "relative_gain": (err_p - err_q) / err_p if err_p > 0 else 0.0,
    }
    if fitted is not None:
        out["fitted"] = dict(zip(names, fitted, strict=True))
    if not args.json:
        shown = range(k) if k <= 30 else list(range(20)) + [k - 1]
        print(f"{'group':>8} {'test p':>10} {'train q':>10}")
        for i in shown:
            print(f"{names[i]:>8} {p[i]:10.4f} {q[i]:10.4f}")
        print(f"expected test error: q=p {err_p:.6g}  optimum {err_q:.6g}  "
              f"gain {err_p - err_q:.6g} ({100 * out['relative_gain']:.2f}%)")
    return out


SAMPLING_HELP = ("independent: each of the k positions drawn on its own, a skill may repeat (the theorem's task; "
                 "default); distinct: k distinct skills per example (the earlier variant)")


def cmd_composition(args) -> dict:
    from repetita.data_mix.composition import CompositionConfig, compare

    cfg = CompositionConfig(dims=args.dims, k=args.k, exponent=args.exponent, samples=args.samples,
                            lr=args.lr, init=args.init, batch=args.batch, seed=args.seed, evals=args.evals,
                            sampling=args.sampling)
    if args.out:
        check_dir(args.out, "--out")
    out = compare(cfg)
    if args.out:
        from repetita.data_mix.composition import save

        save(out, args.out)
    if not args.json:
        print(f"{'samples':>10} {'uniform':>10} {'power':>10}")
        for n, u, w in zip(out["samples"], out["uniform"], out["power"], strict=True):
            print(f"{n:10d} {u:10.4f} {w:10.4f}")
    return out


def _pairs(text: str, name: str, cast, expected: str) -> list[tuple]:
    """``A:B,C:D`` -> ``[(A, B), (C, D)]`` with both parts read by ``cast``; anything else is one line."""
    out = []
    for item in text.split(","):
        try:
            a, b = (cast(x) for x in item.split(":"))
        except ValueError:
            raise UserError(f"{name}: expected {expected}, got '{item}'") from None
        out.append((a, b))
    return out


def cmd_regime(args) -> dict:
    from repetita.data_mix.composition import regime, regime_summary

    sizes = _pairs(args.sizes, "--sizes", int, "D:K pairs like 256:4")
    runs = _pairs(args.runs, "--runs", float, "EXPONENT:LR pairs like 1.5:1")
    seeds = number_list(args.seeds, "--seeds", whole=True)
    require(seeds, "--seeds: give at least one seed")
    if args.out:
        check_dir(args.out, "--out")
    results = []
    for d, k in sizes:
        for seed in seeds:
            results.append(regime(d, k, runs, args.samples, seed=int(seed), init=args.init, batch=args.batch,
                                  evals=args.evals, sampling=args.sampling))
    out = {"level": args.level, "results": results, "summary": regime_summary(results, args.level)}
    if args.out:
        from repetita.io import make_dir, write_json

        write_json(make_dir(args.out) / "mix_regime.json", out, indent=1)
    if not args.json:
        print(f"{'d':>5} {'k':>2} {'a':>4} {'d^(k/2)':>10} {'reached':>8} {'median samples':>15} {'final loss':>10}")
        for s in out["summary"]:
            med = "-" if s["median_samples"] is None else f"{s['median_samples']:,.0f}"
            fin = "-" if s["median_final_loss"] is None else f"{s['median_final_loss']:.3f}"
            print(f"{s['dims']:>5} {s['k']:>2} {s['exponent']:>4g} {s['d_to_k_over_2']:>10.3g} "
                  f"{s['reached']:>4}/{s['seeds']:<3} {med:>15} {fin:>10}")
    return out


def cmd_sequence(args) -> dict:
    from repetita.data_mix.sequence import SequenceConfig, compare

    cfg = SequenceConfig(p=args.p, skills=args.skills, k=args.k, samples=args.samples, batch=args.batch, lr=args.lr,
                         weight_decay=args.weight_decay, warmup=args.warmup, n_layer=args.n_layer,
                         n_head=args.n_head, d_model=args.d_model, evals=args.evals, test_size=args.test_size,
                         scratchpad=args.scratchpad, threads=args.threads, sampling=args.sampling)
    exponents = _floats(args.exponents, "--exponents")
    seeds = number_list(args.seeds, "--seeds", whole=True)
    require(len(exponents) >= 1, "--exponents: give at least one exponent")
    require(all(e >= 0 for e in exponents), f"--exponents must be >= 0, got {args.exponents}")
    require(len(seeds) >= 1, "--seeds: give at least one seed")
    if args.out:
        check_dir(args.out, "--out")
    out = compare(cfg, exponents=exponents, seeds=seeds, level=args.level, metric=args.metric)
    if args.out:
        from repetita.data_mix.sequence import save

        save(out, args.out)
    if not args.json:
        print(f"{'exponent':>8} {'reached':>8} {'median samples':>15}  per seed")
        for e, s in out["summary"].items():
            med = "-" if s["median_reached_at"] is None else f"{s['median_reached_at']:,.0f}"
            print(f"{e:>8} {s['reached']:>4}/{s['seeds']:<3} {med:>15}  {s['reached_at']}")
    return out


def read_counts(spec: str) -> tuple[list[float], list[str] | None]:
    """``--counts``: a comma list of numbers, or a CSV file with a count column (``count``, else the last
    column) and optionally a name column (``skill`` or ``domain``, else the first)."""
    import os

    try:
        is_file = os.path.exists(spec)
    except (OSError, ValueError):  # a long list of numbers is not a path
        is_file = False
    if not is_file:
        values = _floats(spec, "--counts")
        require(values, "--counts: give counts, e.g. 500,200,80, or a CSV file with a count column")
        return values, None
    import pandas as pd

    try:
        df = pd.read_csv(spec)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError, IsADirectoryError) as exc:
        raise UserError(f"{spec}: not a readable CSV table ({str(exc).splitlines()[0] if str(exc) else exc})") from None
    require(len(df) > 0 and len(df.columns) >= 1, f"{spec}: no rows")
    count_col = "count" if "count" in df.columns else df.columns[-1]
    counts = pd.to_numeric(df[count_col], errors="coerce")
    bad = counts.isna() | ~counts.map(lambda v: v == v and abs(v) != float("inf"))
    require(not bad.any(), f"{spec}: column {count_col!r} row {int(bad.idxmax()) + 2}: not a finite number")
    name_col = next((c for c in ("skill", "domain", "name") if c in df.columns), None)
    if name_col is None and len(df.columns) >= 2:
        name_col = df.columns[0]
    return counts.astype(float).tolist(), (df[name_col].astype(str).tolist() if name_col else None)


def cmd_advise(args) -> dict:
    from repetita.data_mix.skill_mix import CAVEAT, advise
    from repetita.io import check_file

    counts, names = read_counts(args.counts)
    if args.out:
        check_file(args.out, "--out", suffixes=(".csv", ".parquet"))
    adv = advise(counts, names, k=args.k, budget=args.budget, target=args.target)
    out = adv.to_dict()
    if args.out:
        import pandas as pd

        from repetita.io import save_table

        save_table(pd.DataFrame(out["table"]), args.out)
        out["out"] = str(args.out)
    if not args.json:
        lo, hi = adv.exponent_interval
        print(f"{adv.d} skills; fitted power law a = {adv.exponent:.3f} (95% [{lo:.3f}, {hi:.3f}]), "
              f"R^2 {adv.fit_r2:.2f} in log share vs log rank")
        print(("reweight: " if adv.reweight else "keep: ") + adv.reason)
        b = out["bounds"]
        line = f"samples the result names: power law d^(2a) = {b['power_law_target']:.3g}"
        if "uniform" in b:
            line += f", uniform d^(k/2) = {b['uniform']:.3g} (k = {adv.k})"
        print(line)
        if adv.reweight:
            print(f"{'skill':>12} {'count':>12} {'observed':>9} {'target':>9} {'weight':>8}")
            rows = out["table"]
            for r in rows[:5] + ([None] if len(rows) > 10 else []) + rows[max(5, len(rows) - 5):]:
                if r is None:
                    print(f"{'...':>12}")
                    continue
                print(f"{r['skill'][:12]:>12} {r['count']:>12,.0f} {r['observed_share']:>9.4f} {r['target_share']:>9.4f} "
                      f"{r['weight']:>8.3g}")
        for w in out["warnings"]:
            print(f"  warning: {w}")
        print(f"  note: {CAVEAT}")
        if args.out:
            print(f"weights: {args.out}")
    return out


def cmd_rephrase(args) -> dict:
    from repetita.data_mix.rephrase import RephraseConfig, run_from_config

    cfg = RephraseConfig(
        docs=args.docs, out=args.out, backend=args.backend, model=args.model, url=args.url,
        templates=tuple(args.templates.split(",")) if args.templates else (), samples=args.samples,
        max_new_tokens=args.max_new_tokens, temperature=args.temperature, concurrency=args.concurrency,
        retries=args.retries, timeout=args.timeout, rate=args.rate, seed=args.seed,
    )
    stats = run_from_config(cfg)
    if not args.json:
        print(" ".join(f"{k}={v}" for k, v in stats.items()))
    return stats


def register(subparsers) -> None:
    mix = subparsers.add_parser("mix", help="optimal training mixtures and the skill-composition testbed")
    mix_sub = mix.add_subparsers(dest="mix_command", metavar="ACTION", parser_class=type(mix))
    mix_sub.required = True
    p = mix_sub.add_parser("optimize", help="training mixture minimising expected test error at a budget")
    p.add_argument("--weights", help="test weights p_k, comma-separated, summing to 1")
    p.add_argument("--zipf", help="test weights p_k ∝ k^-alpha, as GROUPS:ALPHA")
    p.add_argument("--exponents", help="power-law exponents gamma_k of e_k(n) = floor + c n^-gamma (default 1)")
    p.add_argument("--coefs", help="coefficients c_k (default 1)")
    p.add_argument("--floors", help="irreducible errors (default 0)")
    p.add_argument("--memorize", action="store_true", help="error = (1-q_k)^N, atom never sampled")
    p.add_argument("--curves", help="CSV of learning curves (group, n, loss); fits one power law per group")
    p.add_argument("--group", default="group", help="group column of --curves")
    p.add_argument("--axis", default="n", help="sample-count column of --curves")
    # 1e15 samples is beyond any training set; past it the errors underflow and the gain is noise
    p.add_argument("--budget", type=bounded_float(0, 1e15, open_low=True), default=1000.0,
                   help="total training samples N (at most 1e15)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_optimize)

    c = mix_sub.add_parser("composition", help="k-multiplicative skill composition: uniform vs power-law skills")
    c.add_argument("--dims", type=int, default=32, help="number of skills d")
    c.add_argument("--k", type=int, default=3, help="skills per example")
    c.add_argument("--exponent", type=float, default=1.0, help="power-law exponent a of the training skills")
    c.add_argument("--samples", type=int, default=1_000_000)
    c.add_argument("--lr", type=float, default=0.5)
    c.add_argument("--init", type=float, default=0.5, help="std of the initial weights")
    c.add_argument("--batch", type=int, default=64)
    c.add_argument("--evals", type=int, default=20)
    c.add_argument("--seed", type=SEED, default=0)
    c.add_argument("--sampling", default="independent", choices=["independent", "distinct"], help=SAMPLING_HELP)
    c.add_argument("--out", help="write the curves (JSON + config) to this directory")
    c.add_argument("--json", action="store_true")
    c.set_defaults(func=cmd_composition)

    g = mix_sub.add_parser("regime", help="skill-composition size sweep: uniform vs power law, tuned learning rates")
    g.add_argument("--sizes", default="256:4", help="D:K pairs, comma-separated")
    g.add_argument("--runs", default="0:1,0:4,0:16,1:0.5,1:1,1.5:0.5,1.5:1",
                   help="EXPONENT:LR pairs; each exponent's curve is the best over its rates")
    g.add_argument("--samples", type=int, default=1_000_000, help="budget (fresh samples; log-spaced evaluations)")
    g.add_argument("--seeds", default="0,1,2")
    g.add_argument("--init", type=float, default=0.5)
    g.add_argument("--batch", type=int, default=64)
    g.add_argument("--evals", type=int, default=12)
    g.add_argument("--level", type=float, default=0.1, help="test loss counted as learned (default 0.1)")
    g.add_argument("--sampling", default="independent", choices=["independent", "distinct"], help=SAMPLING_HELP)
    g.add_argument("--out", help="write mix_regime.json here")
    g.add_argument("--json", action="store_true")
    g.set_defaults(func=cmd_regime)

    q = mix_sub.add_parser("sequence", help="GPT on composed affine maps mod p: uniform vs power-law skills")
    q.add_argument("--p", type=int, default=17, help="prime modulus (value tokens 0..p-1)")
    q.add_argument("--skills", type=int, default=8, help="number of skills d")
    q.add_argument("--k", type=int, default=2, help="skills per example")
    q.add_argument("--exponents", default="0,1", help="training-skill exponents a, comma-separated (0 = uniform)")
    q.add_argument("--seeds", default="0,1,2", help="seeds, comma-separated")
    q.add_argument("--samples", type=int, default=200_000, help="training examples per run")
    q.add_argument("--batch", type=int, default=64)
    q.add_argument("--lr", type=float, default=3e-3)
    q.add_argument("--weight-decay", type=float, default=0.0)
    q.add_argument("--warmup", type=int, default=100, help="linear warm-up steps, then constant")
    q.add_argument("--n-layer", type=int, default=2)
    q.add_argument("--n-head", type=int, default=4)
    q.add_argument("--d-model", type=int, default=64)
    q.add_argument("--evals", type=int, default=16, help="log-spaced evaluation points")
    q.add_argument("--test-size", type=int, default=2048)
    q.add_argument("--scratchpad", action="store_true", help="also train on the intermediate values")
    q.add_argument("--level", type=float, default=0.9, help="threshold on --metric")
    q.add_argument("--metric", default="acc", choices=["acc", "loss"], help="accuracy (>= level) or loss (<= level)")
    q.add_argument("--threads", type=int, default=1, help="torch threads (0: torch default)")
    q.add_argument("--sampling", default="independent", choices=["independent", "distinct"], help=SAMPLING_HELP)
    q.add_argument("--out", help="write mix_sequence.json and mix_sequence.png to this directory")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_sequence)

    v = mix_sub.add_parser(
        "advise", help="advice for your own skill or domain mix from the power-law composition result",
        description="Example: repetita mix advise --counts skills.csv --k 3 --budget 1e7 --out weights.csv. Fits the "
        "power-law exponent of your skill counts; if the mix is near uniform, gives sampling weights toward a power "
        "law. A hypothesis tested on synthetic tasks (docs/data_mix.md), not a measured result for LM data.")
    v.add_argument("--counts", required=True, help="counts per skill: 500,200,80 or a CSV (skill,count columns)")
    v.add_argument("--k", type=int, help="skills composed per example (for the uniform bound d^(k/2))")
    v.add_argument("--budget", type=float, help="training examples you can afford")
    v.add_argument("--target", type=float, default=1.0, help="exponent to skew a near-uniform mix to (default 1)")
    v.add_argument("--out", help="write the per-skill weights (.csv or .parquet)")
    v.add_argument("--json", action="store_true")
    v.set_defaults(func=cmd_advise)

    r = subparsers.add_parser("rephrase", help="rephrase a JSONL corpus with prompt templates (resumable)")
    r.add_argument("--docs", required=True, help="JSONL with 'id' and 'text' per line")
    r.add_argument("--out", required=True, help="output JSONL (appended to; finished keys are skipped)")
    r.add_argument("--backend", default="http", choices=["http", "transformers", "echo"])
    r.add_argument("--model", default="", help="model name (http); local path or 'smollm2' (transformers)")
    r.add_argument("--url", default="", help="OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1")
    r.add_argument("--templates", default="", help="comma-separated template names (default: all)")
    r.add_argument("--samples", type=int, default=1, help="generations per (document, template)")
    r.add_argument("--max-new-tokens", type=int, default=256)
    r.add_argument("--temperature", type=float, default=0.7)
    r.add_argument("--concurrency", type=int, default=4)
    r.add_argument("--retries", type=int, default=3)
    r.add_argument("--timeout", type=float, default=60.0)
    r.add_argument("--rate", type=float, default=0.0, help="max requests per second (0: unlimited)")
    r.add_argument("--seed", type=SEED, default=0)
    r.add_argument("--json", action="store_true")
    r.set_defaults(func=cmd_rephrase)
