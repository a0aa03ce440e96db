"""Does `repetita suggest` reach the all-runs decision with less compute? A retrospective on datablations.

    .venv/bin/python experiments/suggest_retrospective.py [--table datablations_182.csv] [--seeds 20]
        [--start 30] [--out docs/figures] [--synthetic-seeds 5] [--law data-constrained]

1. Measured pool: the datablations runs (Muennighoff et al. 2023; the shipped 182-run table, or the
   296-row one with --table datablations_all.csv). The law is the data-constrained one unless --law names
   another; the plan is the README case (C = 6 x 8.67e9 x 178e9, U = 25e9). Orders: suggest,
   suggest-doubling, `--seeds` random permutations, cheapest first (laws/retrospective.py). Reported: the compute
   each order spent until its plan (N*, K*, loss) came within 10% of the all-runs plan and stayed there.
2. Synthetic pool: the same (N, D, U) grid with losses drawn from the same law at the
   all-runs fit's parameters, with log-normal noise of ``--synthetic-noise`` (seeded). The right answer
   is exact: the plan of those parameters. (At the measured fit's own scatter, 7% in log loss, even all
   182 runs leave the plan 15% from the truth: no order can reach it, so the default noise is 1%.)

Writes suggest_retrospective.json and suggest_retrospective.png (decision error against compute spent, per order)
to --out, and prints the table docs/plan.md quotes.
"""

from __future__ import annotations

import argparse
import json
import time
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd


def summarise(reps, reference, tol):
    out = {}
    for r in reps:
        out[r.name] = r.reached(reference, tol)
    rnd = [v for k, v in out.items() if k.startswith("random")]
    finite = [v for v in rnd if v is not None]
    return out, {"suggest": out.get("suggest"), "suggest-doubling": out.get("suggest-doubling"),
                 "suggest-budget": out.get("suggest-budget"), "cheapest": out.get("cheapest"),
                 "random_median": float(np.median([v if v is not None else np.inf for v in rnd])) if rnd else None,
                 "random_reached": f"{len(finite)}/{len(rnd)}",
                 "random_range": [min(finite), max(finite)] if finite else None}


ORDERS = ("suggest", "suggest-doubling", "suggest-budget", "random", "cheapest")


def run(df, name, seeds, start, reference=None, log=print, law="data-constrained", orders=ORDERS):
    from repetita.decide.retrospective import reference_plan, relative_error, replay
    from repetita.laws.fit import LawFit

    C, U = 6 * 8.67e9 * 178e9, 25e9
    est = LawFit(law).fit(df)
    ref = reference_plan(est, C, U) if reference is None else reference
    t = time.time()
    reps = replay(est, df, C, U, start=start, seeds=seeds, n_starts=2, orders=orders)
    seconds = time.time() - t
    per, summary = summarise(reps, ref, 0.10)
    total = float(reps[0].spent[-1])
    log(f"{name}: {len(df)} runs, start {start} cheapest ({reps[0].spent[0]:.3g} FLOPs), all {total:.3g} FLOPs; "
        f"{seconds:.0f} s; reference N* {np.exp(ref[0]):.3g}, K* {np.exp(ref[1]):.3g}, loss {ref[2]:.4f}")
    for k in ("suggest", "suggest-doubling", "suggest-budget", "cheapest"):
        if k not in orders:
            continue
        v = summary[k]
        log(f"  {k:>16}: {'never' if v is None else f'{v:.3g} FLOPs ({v / total:.0%} of the grid)'}")
    if "random" in orders:
        log(f"  random median {summary['random_median']:.3g} FLOPs, reached {summary['random_reached']}, range "
            f"{summary['random_range']}")
    curves = {r.name: {"spent": r.spent.tolist(), "error": np.max(relative_error(r.plans, ref), axis=1).tolist()}
              for r in reps}
    return {"name": name, "runs": len(df), "start": start, "total_flops": total, "seconds": seconds,
            "reference": {"params": float(np.exp(ref[0])), "epochs": float(np.exp(ref[1])), "loss": float(ref[2])},
            "reached": per, "summary": summary, "curves": curves}


def figure(results, path):
    from repetita.io import plt as pyplot
    from repetita.io import save_figure

    plt = pyplot()
    fig, axes = plt.subplots(1, len(results), figsize=(5 * len(results), 3.6), squeeze=False)
    for ax, res in zip(axes[0], results, strict=True):
        for name, c in res["curves"].items():
            style = {"suggest": ("C0", 2.0, 1.0), "suggest-doubling": ("C2", 2.0, 1.0),
                     "cheapest": ("C3", 1.6, 1.0)}.get(name, ("0.6", 0.6, 0.5))
            ax.plot(c["spent"], np.maximum(c["error"], 1e-4), color=style[0], lw=style[1], alpha=style[2],
                    label=name if not name.startswith("random-") or name == "random-0" else None)
        ax.axhline(0.1, color="k", ls=":", lw=0.8)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("compute spent on runs (FLOPs)")
        ax.set_ylabel("largest relative error of N*, K*, loss")
        ax.set_title(res["name"], fontsize=9)
        ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, path, dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--table", default="datablations_182.csv")
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--synthetic-seeds", type=int, default=5)
    ap.add_argument("--start", type=int, default=30)
    ap.add_argument("--synthetic-noise", type=float, default=0.01, help="log-normal noise sd of the synthetic pool")
    ap.add_argument("--only", choices=["measured", "synthetic"], help="run one of the two checks")
    ap.add_argument("--law", default="data-constrained", choices=["data-constrained", "reuse", "chinchilla"],
                    help="the law refitted at every step (and, for the synthetic pool, the law that makes it)")
    ap.add_argument("--orders", default=",".join(ORDERS), help="comma-separated orders to replay")
    ap.add_argument("--out", default="docs/figures")
    args = ap.parse_args()
    from repetita.decide.retrospective import reference_plan
    from repetita.laws.fit import LawFit
    from repetita.laws.law import get_law

    df = pd.read_csv(str(resources.files("repetita.examples") / "data" / args.table)).rename(columns={"val_loss": "loss"})
    df = df[["params", "tokens", "unique_tokens", "loss"]].reset_index(drop=True)
    t0 = time.time()
    orders = tuple(args.orders.split(","))
    measured = (run(df, f"datablations ({args.table}), {args.law} law", args.seeds, args.start, law=args.law,
                    orders=orders)
                if args.only != "synthetic" else None)
    # synthetic: the same grid, losses from the law at the all-runs fit, noise at its residual scatter
    est = LawFit(args.law).fit(df)
    law = get_law(args.law)
    theta = np.array([[est.params_[p] for p in law.params]])
    X, _, _ = law.prepare(df.assign(loss=1.0), axis="x")
    rng = np.random.default_rng(0)
    synth = df.assign(loss=np.exp(law.func(theta, X)[0] + args.synthetic_noise * rng.standard_normal(len(df))))
    known = reference_plan(est, 6 * 8.67e9 * 178e9, 25e9)
    synthetic = None if args.only == "measured" else run(
        synth, f"synthetic: the {args.law} law at the all-runs fit, noise {args.synthetic_noise:g}",
        args.synthetic_seeds, args.start, reference=known, law=args.law, orders=orders)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "suggest_retrospective.json"
    old = json.loads(path.read_text()) if path.exists() else {}
    result = {"measured": measured or old.get("measured"), "synthetic": synthetic or old.get("synthetic")}
    path.write_text(json.dumps(result | {"seconds": time.time() - t0}, indent=1, default=float))
    figure([r for r in (result["measured"], result["synthetic"]) if r], out / "suggest_retrospective.png")
    print(f"total {time.time() - t0:.0f} s; wrote {path} and {out / 'suggest_retrospective.png'}")


if __name__ == "__main__":
    main()
