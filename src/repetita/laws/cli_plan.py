"""``repetita plan`` and ``repetita predict``: deciding with fitted laws.

Thin wrappers over ``laws.plan`` (fixed-size plans), ``laws.allocate`` (compute and corpus -> what to
train, the frontier), ``laws.efficiency`` (recipes) and ``laws.predict`` (multi-power curves for new
schedules). Fit files are read by ``laws.record.load`` (also ``example:NAME``); ``repetita reuse`` is in
``laws.cli_reuse``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from repetita.cliargs import number_list, parse_number
from repetita.errors import UserError, require
from repetita.io import FIGURE_SUFFIXES, check_file, write_json
from repetita.laws.cli import _check_outputs, _pairs
from repetita.laws.record import load as load_fit


def _law_records(args) -> list[tuple[str, dict]]:
    """The laws to plan with: ``--law-file`` (repeatable) and/or ``--law NAME --param k=v ...``."""
    out = [(path, load_fit(path)) for path in (args.law_file or [])]
    if args.law:
        from repetita.laws.fit import LawFit

        params = {k: parse_number(v, f"--param {k}") for k, v in _pairs(args.param, "--param").items()}
        record = {"law": args.law, "spec": {"law": args.law}, "params": params,
                  "warnings": ["parameters given on the command line: no intervals"]}
        LawFit.from_result(record)  # an unknown law or a missing parameter is one line here
        out.append((f"--law {args.law}", record))
    require(out, "give --law-file FIT.json (or example:datablations-published) or --law NAME --param k=v ...")
    return out


def _recipe_effects(args) -> tuple[list, list[str]]:
    """``--efficiency NAME=M`` (repeatable) and/or ``--efficiency-from`` a study's report.json (or its folder)."""
    from repetita.io import read_json
    from repetita.laws.efficiency import from_report, parse_efficiency

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


def _draws(est, n: int = 200):
    """Parameter draws for intervals, or (None, why not)."""
    from repetita.laws.uncertainty import theta_draws

    try:
        return theta_draws(est, n), None
    except UserError as exc:
        return None, str(exc)


def cmd_allocate(args) -> dict:
    """``plan --compute C --unique-tokens U``: what to train, for every law given, side by side; with a
    budget range (FROM:TO:COUNT), the frontier, the data wall and the limit as C -> infinity; with
    recipe multipliers, the best recipe per budget."""
    from repetita.laws.allocate import allocate, allocation_intervals, estimator, frontier, parse_budgets
    from repetita.laws.efficiency import plan_recipes

    if args.plot:
        check_file(args.plot, "--plot", suffixes=FIGURE_SUFFIXES)
    budgets = parse_budgets(args.compute)
    u = parse_number(args.unique_tokens, "--unique-tokens")
    require(u > 0 and np.isfinite(u), f"--unique-tokens must be positive, got {args.unique_tokens}")
    cap = parse_number(args.max_params, "--max-params") if args.max_params else None
    require(cap is None or (cap > 0 and np.isfinite(cap)), f"--max-params must be positive, got {args.max_params}")
    effects, eff_warnings = _recipe_effects(args)
    kw = {"flops_per_token": args.flops_per_token, "max_params": cap}
    laws, warnings, ests = {}, [], []
    for path, record in _law_records(args):
        est = estimator(record)
        name = f"{path} ({est.law})"
        thetas, why = _draws(est)
        ests.append((name, est, thetas))
        if len(budgets) > 1:
            res = frontier(est, budgets, u, wall_gain=args.wall_gain, thetas=thetas, **kw)
            edge = any(r["at_search_edge"] for r in res["rows"])
        else:
            res = allocate(est, float(budgets[0]), u, **kw)
            if thetas is not None:
                res["intervals"] = allocation_intervals(est, float(budgets[0]), u, thetas=thetas, **kw)
            edge = res["at_search_edge"]
        res["warnings"] = [why] if why else []
        beyond = sorted({w for r in res.get("rows", [res]) for w in r.get("outside_evidence", [])})
        if beyond:
            res["warnings"].append("the decision lies outside the runs the fit rests on: " + "; ".join(beyond))
        if edge:
            res.setdefault("warnings", []).append("the optimum lies at the edge of the model sizes searched "
                                                  "(or at --max-params)")
        flat = [r["compute"] for r in res["rows"] if r["size_undetermined"]] if "rows" in res else (
            [res["compute"]] if res["size_undetermined"] else [])
        if flat:
            res.setdefault("warnings", []).append(
                f"from C = {min(flat):.3g} the predicted loss is flat in N along the compute line (10% either way "
                "changes it by < 1e-12): the loss is decided, the model size and epochs are not")
        law_obj = est.spec.law_obj
        if law_obj.monotone and not np.isfinite(law_obj.repetition(est.params_, u)):
            res.setdefault("warnings", []).append("this law has no repetition penalty: the allocation is the "
                                                  "naive Chinchilla one, as if every token were fresh")
        res["fit_warnings"] = list(getattr(est, "warnings_", []))
        if est.holdout_ and "rmse_log" in est.holdout_:
            res["holdout"] = {"spec": est.holdout_.get("spec"), "rmse_log": est.holdout_["rmse_log"]}
        laws[name] = res
        warnings += [f"{path}: {w}" for w in res.get("warnings", []) + res["fit_warnings"]]
    first = next(iter(laws.values()))
    said = [w for r in laws.values() for w in r["fit_warnings"]]
    eff_warnings = [w for w in eff_warnings if not any(w.endswith(x) for x in said)]  # the study's law, once
    out = {"laws": laws, "warnings": warnings + eff_warnings}
    if len(laws) > 1 and len(budgets) == 1:
        out["comparison"] = _compare_laws(laws)
    if len(budgets) == 1:
        out["allocation"] = {k: first[k] for k in ("params", "tokens", "epochs", "loss")} | (
            {"intervals": first["intervals"]} if "intervals" in first else {})
    else:
        out["frontier"] = first["rows"]
    if effects:
        name, est, thetas = ests[0]
        out["recipes"] = plan_recipes(est, effects, budgets, u, thetas=thetas, **kw) | {"law": name}
    out["decision"] = _decision(budgets, u, first, out.get("recipes"), cap)
    if args.reuse_file:
        out["measured_k_star"] = _measured_k_star(args.reuse_file, u, {n: e for n, e, _ in ests})
        out["decision"].append(out["measured_k_star"]["line"])
    if args.plot:
        from repetita.laws.plots import plot_allocation

        est = ests[0][1]
        single = first if len(budgets) == 1 else allocate(est, float(budgets[-1]), u, **kw)
        out["plot"] = str(plot_allocation(est, single, args.plot, frontier=first if len(budgets) > 1 else None,
                                          recipes=out.get("recipes")))
    for w in out["warnings"]:
        sys.stderr.write(f"repetita plan: warning: {w}\n")
    if not args.json:
        print("\n".join(out["decision"]))
        _print_allocation(args, budgets, u, laws)
        if "recipes" in out:
            _print_recipes(out["recipes"])
    return out


def _measured_k_star(path: str, u: float, ests: dict) -> dict:
    """A measured K*(U) law (``repetita reuse --out``) beside each law's own K* at this U."""
    from repetita.io import read_json
    from repetita.laws.reuse import law_k_star, measured_k_star

    m = measured_k_star(read_json(path, "reuse file"), u)
    laws = {}
    for name, est in ests.items():
        rd = est.spec.law_obj.repetition(est.params_, u) if est.spec.law_obj.rd_star else np.inf
        laws[name] = float(law_k_star(rd, m["lambda"])[0]) if np.isfinite(rd) else None
    said = ", ".join(f"{n.split(' ')[0]}: {k:.3g}" for n, k in laws.items() if k is not None)
    line = (f"measured K*(U = {u:.4g}; lambda {m['lambda']:g}) = {m['k_star']:.3g} [{m['interval'][0]:.3g}, "
            f"{m['interval'][1]:.3g}]" + (" (extrapolated in U)" if m["extrapolated"] else "")
            + (f"; the laws' own K*: {said}" if said else ""))
    return m | {"laws": laws, "line": line}


def _decision(budgets, u, first: dict, recipes: dict | None, cap) -> list[str]:
    """The answer first: what to train (and with which recipe), the loss and how sure it is."""
    lines = []
    if len(budgets) == 1:
        iv = first.get("intervals")
        pi = (iv or {}).get("loss_prediction") or first.get("loss_prediction")
        sure = (f" [95% prediction interval {pi[0]:.4f}-{pi[1]:.4f}]" if pi else "") + ((
            f" [{100 * iv['level']:g}% of the law's mean: {iv['loss'][0]:.4f}-{iv['loss'][1]:.4f}; "
            f"N* {iv['params'][0]:.3g}-{iv['params'][1]:.3g}, K* {iv['epochs'][0]:.3g}-{iv['epochs'][1]:.3g}]")
            if iv else " (no parameter interval)")
        lines.append(f"decision: train N* = {first['params']:.4g} params on D* = {first['tokens']:.4g} tokens "
                     f"({first['epochs']:.3g} epochs of U = {u:.4g}); predicted loss {first['loss']:.4f}{sure}")
    else:
        wall = first["data_wall"]
        limit = (f"lowest {first['loss_limit']:.4f} on this frontier; this law overfits as C grows"
                 if first.get("loss_limit_is") else f"limit {first['loss_limit']:.4f} as C -> infinity")
        lines.append(f"decision: on U = {u:.4g} the loss reaches {first['rows'][-1]['loss']:.4f} at C = "
                     f"{budgets[-1]:.3g} ({limit}); "
                     + (f"beyond C = {wall:.3g} another 10x of compute buys < {first['wall_gain']:g} nats: "
                        "more data, not compute, is what helps" if wall else "no data wall in this range"))
        if first.get("spend_at_most"):
            lines.append(f"  the loss is lowest at C = {first['spend_at_most']:.3g}: larger budgets overfit this corpus "
                         "under this law (more epochs past its turn, or a larger model it cannot feed); spend at "
                         "most that, or add data")
    if recipes:
        for key, label in (("best", "recipe"), ("best_within_cap", f"within the serving cap ({cap:.3g} params)" if cap else "")):
            if key not in recipes:
                continue
            best, per = recipes[key], recipes["recipes" if key == "best" else "recipes_within_cap"]
            names = [b["recipe"] for b in best]
            b = best[-1]
            row = next(x for x in per[b["recipe"]]["rows"] if x["compute"] == b["compute"])
            share = b.get("share_best", {}).get(b["recipe"])
            where = "" if len(budgets) == 1 else f" at C = {b['compute']:.3g}"
            lines.append(f"{label}: {b['recipe']}{where}: {row['served_params']:.3g} params served "
                         f"({row['member_params']:.3g} per model), {row['epochs']:.3g} epochs, loss {b['loss']:.4f} "
                         f"(standard {b['loss_standard']:.4f})"
                         + (f"; best in {100 * share:.0f}% of the fit's draws" if share is not None else ""))
            if len(set(names)) > 1:
                changes = [f"{names[i]} from C = {best[i]['compute']:.3g}" for i in range(1, len(names)) if names[i] != names[i - 1]]
                lines.append(f"  the best recipe changes with the budget: {names[0]} first, then " + ", ".join(changes))
    return lines


def _print_recipes(rec: dict) -> None:
    print(f"recipes (data-efficiency multipliers on {rec['law']}; an ensemble of K costs K x compute and serves "
          f"K x params, distillation costs its teacher plus the student)")
    print(f"{'recipe':<16} {'m':>6} {'cost':>5} {'asymptote':>10}  source")
    for name, r in rec["recipes"].items():
        if "error" in r:
            print(f"{name:<16} {r['error']}")
            continue
        print(f"{name:<16} {r['efficiency']:>6.3g} {r['train_cost']:>5g} {r['asymptote']:>10.4f}  {r['source']}")
    for key, per_key in (("best", "recipes"), ("best_within_cap", "recipes_within_cap")):
        if key not in rec:
            continue
        title = "no serving cap" if key == "best" else f"serving cap {rec['max_params']:.3g} params"
        per = rec[per_key]
        names = [n for n in per if "error" not in per[n]]
        print(f"predicted loss per recipe ({title}); * = best")
        print(f"{'C':>10}  " + " ".join(f"{n[:14]:>14}" for n in names))
        for j, b in enumerate(rec[key]):
            cells = []
            for n in names:
                x = per[n]["rows"][j]
                cells.append(f"{x['loss']:>13.4f}{'*' if n == b['recipe'] else ' '}")
            print(f"{b['compute']:>10.3g}  " + " ".join(cells))


def _compare_laws(laws: dict) -> dict:
    """Which law the held-out errors favour (same holdout only) and whether the decision depends on the law."""
    specs = {r["holdout"]["spec"] for r in laws.values() if "holdout" in r}
    favoured = None
    if len(specs) == 1 and sum("holdout" in r for r in laws.values()) >= 2:
        favoured = min((k for k, r in laws.items() if "holdout" in r), key=lambda k: laws[k]["holdout"]["rmse_log"])
    n = np.array([r["params"] for r in laws.values()])
    k = np.array([r["epochs"] for r in laws.values()])
    changes = bool(n.max() / n.min() > 1.1 or k.max() / k.min() > 1.1)
    return {"favoured_by_holdout": favoured, "holdout": next(iter(specs)) if len(specs) == 1 else None,
            "decision_changes": changes,
            "spread": {"params": [float(n.min()), float(n.max())], "epochs": [float(k.min()), float(k.max())]}}


def _print_allocation(args, budgets, u, laws) -> None:
    print(f"unique tokens U = {u:.4g}; C = {args.flops_per_token:g} N D")
    if len(budgets) > 1:
        for name, r in laws.items():
            bands = r.get("bands")
            print(f"{name}")
            print(f"{'C':>10} {'N*':>10} {'D*':>10} {'K*':>8} {'L*':>8} {'10x C buys':>11}"
                  + (f"   {100 * bands['level']:g}%: K*, L*" if bands else ""))
            for j, row in enumerate(r["rows"]):
                extra = (f"   [{bands['epochs'][j][0]:.3g}, {bands['epochs'][j][1]:.3g}], "
                         f"[{bands['loss'][j][0]:.4f}, {bands['loss'][j][1]:.4f}]") if bands else ""
                print(f"{row['compute']:>10.3g} {row['params']:>10.4g} {row['tokens']:>10.4g} {row['epochs']:>8.3g} "
                      f"{row['loss']:>8.4f} {row['gain_from_10x']:>11.4f}{extra}")
            wall = f"{r['data_wall']:.3g} FLOPs" if r["data_wall"] else "not reached in this range"
            print(f"data wall (10x compute buys < {r['wall_gain']:g} nats): {wall}; loss as C -> infinity "
                  f"{r['loss_limit']:.4f}" + (f" [{bands['loss_limit'][0]:.4f}, {bands['loss_limit'][1]:.4f}]" if bands else ""))
        return
    print(f"compute C = {budgets[0]:.4g} FLOPs")
    print(f"{'law':<40} {'N*':>10} {'D*':>10} {'K*':>7} {'loss':>8} {'last epoch':>10}   naive N, D: loss with U")
    for name, r in laws.items():
        nv = r["naive"]
        print(f"{name[:40]:<40} {r['params']:>10.4g} {r['tokens']:>10.4g} {r['epochs']:>7.3g} {r['loss']:>8.4f} "
              f"{r.get('last_epoch_worth', float('nan')):>10.3f}   {nv['params']:.3g}, {nv['tokens']:.3g}: "
              f"{nv['loss_with_U']:.4f} (+{nv['penalty_vs_optimum']:.4f})")
        if "intervals" in r:
            iv = r["intervals"]
            print(f"{'':<40} {100 * iv['level']:g}%: N* [{iv['params'][0]:.3g}, {iv['params'][1]:.3g}], "
                  f"K* [{iv['epochs'][0]:.3g}, {iv['epochs'][1]:.3g}], loss [{iv['loss'][0]:.4f}, {iv['loss'][1]:.4f}]")
        if "holdout" in r:
            print(f"{'':<40} held-out RMSE(log) {r['holdout']['rmse_log']:.4f} ({r['holdout']['spec']})")
    if len(laws) > 1:
        c = _compare_laws(laws)
        fav = f"the held-out errors ({c['holdout']}) favour {c['favoured_by_holdout']}" if c["favoured_by_holdout"] \
            else "no common held-out error to compare the laws by (fit each with the same --holdout)"
        print(f"{fav}; the decision {'changes' if c['decision_changes'] else 'does not change'} with the law "
              f"(N* {c['spread']['params'][0]:.3g}-{c['spread']['params'][1]:.3g}, "
              f"K* {c['spread']['epochs'][0]:.3g}-{c['spread']['epochs'][1]:.3g})")


def cmd_asymptotes(args) -> dict:
    """``plan --asymptote NAME=L ...``: recipe asymptotes at U as data efficiency (Kim et al.'s arithmetic)."""
    from repetita.laws.efficiency import efficiency_from_asymptotes

    losses = {k: parse_number(v, f"--asymptote {k}") for k, v in _pairs(args.asymptote, "--asymptote").items()}
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
    from repetita.laws import plan

    if args.asymptote:
        return cmd_asymptotes(args)
    if args.compute:
        return cmd_allocate(args)
    require(not (args.efficiency or args.efficiency_from), "--efficiency plans recipes for a budget: give --compute C")
    require(args.params, "give --params N (the fixed-size plan) or --compute C (allocation under two budgets)")
    require(args.law_file and len(args.law_file) == 1,
            "the fixed-size plan reads one --law-file (compare laws, or give --law, with --compute)")
    args.law_file = args.law_file[0]
    _check_outputs(args, inputs=[args.law_file])
    record = load_fit(args.law_file)
    n = parse_number(args.params, "--params")
    u = parse_number(args.unique_tokens, "--unique-tokens")
    epochs = number_list(args.epochs, "--epochs")
    require(0 < args.fraction < 1, f"--fraction must lie in (0, 1), got {args.fraction}")
    table, summary = plan.plan_table(record, n, u, epochs, fraction=args.fraction)
    out = {"summary": summary, "table": table.to_dict(orient="records")}
    try:
        intervals = plan.plan_intervals(record, n, u, epochs, fraction=args.fraction)
    except UserError as exc:  # a fit with unidentified parameters still plans, without an interval
        intervals, out["warnings"] = None, [str(exc)]
    if intervals is not None:
        out["intervals"] = intervals
    elif "warnings" not in out:
        out["warnings"] = ["the fit file holds no uncertainty (refit with this repetita to save intervals): "
                           "the plan is a point estimate"]
    if args.reuse_file:
        from repetita.laws.allocate import estimator

        out["measured_k_star"] = _measured_k_star(args.reuse_file, u, {args.law_file: estimator(record)})
    for w in out.get("warnings", []):
        sys.stderr.write(f"repetita plan: warning: {w}\n")
    if args.loss:
        e_rest, b, beta = plan.data_term(record, n)
        losses = [parse_number(x, "--loss") for x in args.loss.split(",")]
        toks = plan.tokens_from_loss(losses, e_rest, b, beta)
        out["effective_tokens_for_loss"] = [
            {"loss": lo, "tokens": float(t)} for lo, t in zip(losses, toks, strict=True)
        ]
        if len(losses) > 1:  # data efficiency of each loss against the first one (the baseline recipe)
            out["data_efficiency_vs_first"] = [float(t / toks[0]) for t in toks]
    if args.plot:
        from repetita.laws.plots import plot_plan

        out["plot"] = str(plot_plan(table, summary, args.plot))
    if not args.json:
        s = summary
        turn = "never (this law's loss does not rise)" if not np.isfinite(s["turn_epochs"]) else f"{s['turn_epochs']:.4g}"
        if np.isfinite(s["rd_star"]):
            print(f"{s['law']}: N = {n:.4g}, U = {u:.4g}; R_D* = {s['rd_star']:.4g}, plateau E = "
                  f"{s['plateau_reuse_rate']:.4g}")
            print(f"saturation K* = 1 + R_D* = {s['saturation_epochs']:.4g}; epoch worth falls below "
                  f"{s['worth_fraction']:g} of fresh data after K = {s['epochs_until_worth_below']}")
        else:
            print(f"{s['law']}: N = {n:.4g}, U = {u:.4g}; an overfitting law (no R_D*: E(K) columns empty)")
        print(f"the loss turns (rises with more epochs) past K = {turn}")
        iv = out.get("intervals")
        if iv:
            lo, hi = iv["summary"]["saturation_epochs"]
            print(f"intervals: {100 * iv['level']:g}% from {iv['samples']} draws of the fit's {iv['method']} "
                  f"uncertainty; K* in [{lo:.4g}, {hi:.4g}]")
        print(f"{'epochs':>8} {'tokens':>11} {'eff.tokens':>11} {'E(K)':>8} {'next':>7} {'loss':>8}"
              + ("  mean-loss interval  prediction interval  next-epoch worth" if iv else ""))
        for i, row in enumerate(out["table"]):
            extra = ""
            if iv:
                (l0, l1), (w0, w1) = iv["table"][i]["loss"], iv["table"][i]["next_epoch_worth"]
                pi = iv["table"][i].get("loss_prediction")
                pi_text = f"[{pi[0]:.4f}, {pi[1]:.4f}]" if pi else "(no residual scale)"
                extra = f"  [{l0:.4f}, {l1:.4f}]    {pi_text:<20} [{w0:.3f}, {w1:.3f}]"
            print(
                f"{row['epochs']:>8.4g} {row['tokens']:>11.4g} {row['effective_tokens']:>11.4g} "
                f"{row['reuse_rate']:>8.4g} {row['next_epoch_worth']:>7.3f} {row['loss']:>8.4f}{extra}"
            )
        print(f"lowest predicted loss {s['best_loss']:.4f} at {s['best_epochs']:g} epochs")
        if "measured_k_star" in out:
            print(out["measured_k_star"]["line"])
        for i, item in enumerate(out.get("effective_tokens_for_loss", [])):
            if not np.isfinite(item["tokens"]):
                print(f"loss {item['loss']:g} is below what any amount of data reaches at this N under this law")
                continue
            ratio = out.get("data_efficiency_vs_first", [None] * (i + 1))[i]
            extra = (
                f" ({ratio:.3g}x the data of loss {out['effective_tokens_for_loss'][0]['loss']:g})"
                if i and ratio
                else ""
            )
            print(f"loss {item['loss']:g} is worth {item['tokens']:.4g} fresh tokens under this law{extra}")
    return out


def cmd_predict(args) -> dict:
    from repetita.laws.predict import named_schedule, predict_curve, read_schedule

    inputs = [args.law_file] + ([args.schedule] if Path(args.schedule).exists() else [])
    if args.out:
        check_file(args.out, "--out", suffixes=(".csv", ".json"), inputs=inputs)
    if args.plot:
        check_file(args.plot, "--plot", suffixes=FIGURE_SUFFIXES, inputs=inputs)
    record = load_fit(args.law_file)
    if Path(args.schedule).exists():
        schedule = read_schedule(args.schedule)
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
        help="loss curve of a fitted multi-power law for a new LR schedule",
        description="Example: repetita predict --law-file mpl.json --schedule wsd:24000:4800 --out curve.csv",
    )
    w.add_argument("--law-file", required=True, help="a multi-power fit (repetita fit --law multipower --out)")
    w.add_argument("--schedule", required=True,
                   help="CSV with step,lr or cosine:STEPS | wsd:STEPS:DECAY | constant:STEPS")
    w.add_argument("--warmup", type=int, default=2160, help="named schedules: linear warm-up steps (default 2160)")
    w.add_argument("--peak-lr", type=float, default=3e-4, help="named schedules: peak LR (default 3e-4)")
    w.add_argument("--final-frac", type=float, default=None,
                   help="named schedules: final LR as a fraction of the peak (cosine 0.1, wsd 0 by default)")
    w.add_argument("--every", type=int, default=None, help="named schedules: steps between points (STEPS/500)")
    w.add_argument("--out", metavar="CSV|JSON", help="write the predicted curve")
    w.add_argument("--plot", metavar="PNG", help="write the schedule and the predicted loss")
    w.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    w.set_defaults(func=cmd_predict)
