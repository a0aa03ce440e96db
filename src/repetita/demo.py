"""``repetita demo``: the main job on shipped data, written to one folder with a short report.

Steps (each one a library call, each result saved as JSON beside its figure):
1. the published data-constrained fit on the datablations runs, with bootstrap intervals, and the
   wider search that finds the lower optimum of the same objective;
2. held-out comparison of the N-aware ``reuse`` law against ``data-constrained``;
3. planning: the worth of each epoch for a 2.8B model on 4B unique tokens;
4. the multi-power law fitted on three LR schedules and predicting the six others;
5. the linear-regression theory of multi-epoch SGD (E(K, N) table);
6. a small end-to-end study on the default corpus (``examples/demo.toml``: repeat, regularize,
   ensemble on three small GPTs), then its HTML report. Re-running resumes the study where it stopped.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from repetita.laws.record import published_chinchilla

WIDE_GRID = {"rd_star": tuple(np.geomspace(0.5, 1e4, 15)), "rn_star": tuple(np.geomspace(0.5, 1e4, 15))}
MPL_TRAIN = ("cosine_24000", "constant_24000", "wsdcon_9")
# Muennighoff et al.'s README run: 8.67B params x 178B tokens of compute on 25B unique tokens
README_CASE = {"compute": 6 * 8.67e9 * 178e9, "unique_tokens": 25e9}


def _say(quiet: bool, msg: str) -> None:
    if not quiet:
        print(msg, flush=True)


def law_demo(out: Path, *, bootstrap: int = 50, quiet: bool = False) -> dict:
    from repetita.decide import fixed_size as plan
    from repetita.examples import load_example
    from repetita.io import write_json
    from repetita.laws.fit import LawFit
    from repetita.laws.fit import bootstrap as run_bootstrap
    from repetita.laws.holdout import evaluate, parse_holdout
    from repetita.laws.plots import plot_fit, plot_plan

    summary: dict = {}
    db = load_example("datablations")
    t0 = time.perf_counter()
    dc = LawFit("data-constrained", freeze=published_chinchilla()).fit(db)
    boot = run_bootstrap(dc, db, bootstrap, seed=0)
    wide = LawFit("data-constrained", freeze=published_chinchilla(), grid=WIDE_GRID, n_refine=30).fit(db)
    rec = dc.result() | {"intervals": boot["params"], "source": "example:datablations"}
    write_json(out / "datablations_fit.json", rec)
    write_json(out / "datablations_fit_wide.json", wide.result() | {"source": "example:datablations"})
    plot_fit(dc, db, out / "datablations_fit.png")
    summary["datablations"] = {
        "published_grid": {k: dc.params_[k] for k in ("rd_star", "rn_star")}
        | {"objective": dc.objective_, "r2": dc.r2_},
        "intervals": {k: [v["lo"], v["hi"]] for k, v in boot["params"].items()},
        "wide_grid": {k: wide.params_[k] for k in ("rd_star", "rn_star")}
        | {"objective": wide.objective_, "r2": wide.r2_},
        "seconds": time.perf_counter() - t0,
    }
    _say(
        quiet,
        f"[1] data-constrained on datablations: R_D*={dc.params_['rd_star']:.3f} "
        f"R_N*={dc.params_['rn_star']:.3f} objective={dc.objective_:.7f}; wide search: "
        f"R_D*={wide.params_['rd_star']:.1f} objective={wide.objective_:.7f}",
    )

    holdout = parse_holdout("largest:params:2")
    compare = {}
    for name in ("data-constrained", "reuse"):
        kwargs = {"freeze": published_chinchilla()}
        _, s = evaluate(lambda name=name, kwargs=kwargs: LawFit(name, **kwargs), db, holdout)
        compare[name] = {k: v for k, v in s.items() if k != "by_group"}
    summary["holdout_largest_models"] = compare
    _say(
        quiet,
        "[2] hold out the 2 largest model sizes: "
        + "; ".join(f"{k} RMSE(log)={v['rmse_log']:.4f}" for k, v in compare.items()),
    )

    table, plan_summary = plan.plan_table(rec, 2.8e9, 4e9, [1, 2, 4, 8, 16, 32, 64, 128])
    plot_plan(table, plan_summary, out / "plan.png")
    write_json(out / "plan.json", {"summary": plan_summary, "table": table.to_dict(orient="records")})
    summary["plan"] = plan_summary
    _say(
        quiet,
        f"[3] plan N=2.8B U=4B: plateau E={plan_summary['plateau_reuse_rate']:.2f}, "
        f"epoch worth < 0.5 after K={plan_summary['epochs_until_worth_below']:.0f}",
    )

    # the decision block report.md opens with: Muennighoff et al.'s README case under the refit law
    from repetita.decide.laws import plan_compute

    res, _ = plan_compute([("data-constrained, refit", rec)], np.array([README_CASE["compute"]]),
                          README_CASE["unique_tokens"])
    summary["decision"] = {"lines": res.decision, "warnings": res.warnings}

    mpl = {}
    for model in ("25M", "100M", "400M"):
        curves = load_example(f"multipowerlaw:{model}")
        _, s = evaluate(lambda: LawFit("multipower"), curves, parse_holdout("train:curve=" + ",".join(MPL_TRAIN)))
        mpl[model] = {curve: v["r2"] for curve, v in s["by_group"].items()}
        if model == "100M":
            fit = LawFit("multipower").fit(curves[curves["curve"].isin(MPL_TRAIN)])
            plot_fit(fit, curves, out / "multipower_100M.png", title="multi-power law, 100M: fit on 3 schedules",
                     held_out=~curves["curve"].isin(MPL_TRAIN).to_numpy())
    summary["multipower_r2"] = mpl
    worst = min(min(v.values()) for v in mpl.values())
    _say(quiet, f"[4] multi-power law: worst held-out curve R^2 = {worst:.4f}")
    return summary


def theory_demo(out: Path, *, quiet: bool = False) -> dict:
    """E(K, N) for K-epoch SGD on a well-conditioned linear regression, three decades of N.

    About 5 s on 2 cores; the replicate counts shrink with N because the per-replicate spread of
    the risk shrinks with N (docs/theory.md, measured at 2% relative error).
    """
    from repetita.io import write_json
    from repetita.theory.plots import plot_reuse
    from repetita.theory.reuse import ReuseConfig, reuse_table

    config = ReuseConfig(Ns=(100, 1000, 10000), Ks=(1, 2, 4, 8, 16, 32, 64, 128), replicates=(64, 32, 8), seed=0)
    result = reuse_table(config)
    rec = result.to_dict()
    write_json(out / "theory_reuse.json", rec)
    plot_reuse(result, out / "theory_reuse.png")
    plateau = rec["plateau_fit"].get("affine", {})
    E = np.asarray(rec["E"])
    rows = ["| N | " + " | ".join(f"K={k}" for k in rec["Ks"]) + " | K* |",
            "|---" * (len(rec["Ks"]) + 2) + "|"]
    for a, n in enumerate(rec["Ns"]):
        rows.append(f"| {n} | " + " | ".join(f"{e:.2f}" for e in E[a]) + f" | {rec['k_star'][a]:.1f} |")
    headline = (f"E(K_max, N) = {', '.join(f'{e:.1f}' for e in E[:, -1])} for N = "
                f"{', '.join(str(n) for n in rec['Ns'])}; plateau ~ {plateau.get('C', float('nan')):.2f} log N")
    _say(quiet, "[5] theory: " + headline)
    markdown = ("E(K, N), the fresh-sample equivalent of K epochs over N samples divided by N "
                "(well-conditioned spectrum, d = 10, sigma = 0.1):\n\n" + "\n".join(rows)
                + f"\n\n{headline}.\n\n![theory](theory_reuse.png)")
    return {"headline": headline, "markdown": markdown, "k_star": rec["k_star"], "plateau_fit": rec["plateau_fit"],
            "E_max": E[:, -1].tolist()}


def study_demo(out: Path, *, workers: int, quiet: bool = False) -> dict:
    from repetita.study.driver import run_study
    from repetita.study.report import build_report

    t0 = time.perf_counter()
    _say(quiet, f"[6] study examples/demo.toml with {workers} worker(s) (about 8 minutes on 2 cores) ...")
    run = run_study("example:demo", out / "study", workers=workers, progress=not quiet)
    report = build_report(out / "study")
    headline = ", ".join(f"{k} {v}" for k, v in run["counts"].items() if v)
    _say(quiet, f"[6] study: {headline}; report {report['report']}")
    return {"counts": run["counts"], "report": report["report"], "tidy": run["tidy"],
            "headline_markdown": report["headline_markdown"],
            "fits": report["fits"], "two_step": report["two_step"], "seconds": time.perf_counter() - t0}


def write_report(out: Path, summary: dict) -> Path:
    lines = ["# repetita demo", "", "## What to train", "",
             f"**The published runs** (datablations, Muennighoff et al.'s README case: C = "
             f"{README_CASE['compute']:.3g} FLOPs on U = {README_CASE['unique_tokens']:.3g} unique tokens; the "
             "data-constrained law refit with its Chinchilla part frozen as published):", ""]
    lines += [f"    {line}" for line in summary["laws"]["decision"]["lines"]]
    lines += [f"- caveat: {w}" for w in summary["laws"]["decision"]["warnings"][:3]]
    if summary.get("study"):
        lines += ["", "**The study on the default corpus** (its report: study/report/report.html):", "",
                  summary["study"]["headline_markdown"]]
    lines.append("")
    d = summary["laws"]["datablations"]
    lines += [
        "## Data-constrained law on the datablations runs",
        f"Published init grid: R_D* = {d['published_grid']['rd_star']:.3f}, R_N* = {d['published_grid']['rn_star']:.3f}, "
        f"objective {d['published_grid']['objective']:.7f}, R^2 {d['published_grid']['r2']:.4f}.",
        f"Wider grid: R_D* = {d['wide_grid']['rd_star']:.2f}, R_N* = {d['wide_grid']['rn_star']:.3f}, "
        f"objective {d['wide_grid']['objective']:.7f}.",
        "Bootstrap 95% intervals: " + ", ".join(f"{k} [{lo:.3g}, {hi:.3g}]" for k, (lo, hi) in d["intervals"].items()),
        "",
        "![fit](datablations_fit.png) ![plan](plan.png)",
        "",
        "## Held-out largest models",
    ]
    for k, v in summary["laws"]["holdout_largest_models"].items():
        lines.append(f"- {k}: RMSE(log) {v['rmse_log']:.4f}, mean |rel err| {v['mean_abs_rel']:.2%}")
    lines += ["", "## Multi-power law (fit on 3 schedules, R^2 on each curve)"]
    for model, r2s in summary["laws"]["multipower_r2"].items():
        lines.append(f"- {model}: " + ", ".join(f"{c} {r:.4f}" for c, r in r2s.items()))
    lines.append("\n![multipower](multipower_100M.png)")
    if summary.get("theory"):
        lines += ["", "## Theory: multi-epoch SGD on linear regression", summary["theory"].get("markdown", "")]
    if summary.get("study"):
        st = summary["study"]
        lines += ["", "## Study on the default corpus",
                  "Runs: " + ", ".join(f"{k} {v}" for k, v in st["counts"].items()) + ".",
                  f"Report with figures and fitted laws: [study/report/report.html]({Path(st['report']).relative_to(out.resolve())})."]
    from repetita.io import write_text

    return write_text(out / "report.md", "\n".join(lines) + "\n")


def cmd_demo(args) -> dict:
    from repetita.io import make_dir, write_json

    out = make_dir(args.out, "--out")
    t0 = time.perf_counter()
    summary = {"laws": law_demo(out, bootstrap=args.bootstrap, quiet=args.json)}
    if not args.skip_theory:
        summary["theory"] = theory_demo(out, quiet=args.json)
    if not args.skip_study:
        summary["study"] = study_demo(out, workers=args.workers, quiet=args.json)
    summary["seconds"] = time.perf_counter() - t0
    write_json(out / "summary.json", summary)
    report = write_report(out, summary)
    _say(args.json, f"report: {report.resolve()}")
    if summary.get("study"):
        _say(args.json, f"study report: {summary['study']['report']}")
    return {"report": str(report.resolve()), **summary}


def register(sub) -> None:
    p = sub.add_parser("demo", help="run the end-to-end demo on shipped data and write a report")
    p.add_argument("--out", default="out/demo", help="output folder (default out/demo)")
    p.add_argument("--bootstrap", type=int, default=50, help="bootstrap resamples for the datablations fit")
    p.add_argument("--skip-theory", action="store_true", help="skip the multi-epoch SGD theory part")
    p.add_argument("--skip-study", action="store_true", help="skip the study on the default corpus")
    p.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1),
                   help="parallel training runs for the study (default: 2, or 1 on a one-core machine)")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.set_defaults(func=cmd_demo)
