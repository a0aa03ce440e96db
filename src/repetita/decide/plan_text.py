"""Text output of ``repetita plan``: the tables a person reads (the JSON is the typed results' own)."""

from __future__ import annotations

import numpy as np


def print_allocation(flops_per_token: float, budgets, u: float, laws: dict, comparison: dict | None) -> None:
    """Each law's allocation (one budget) or frontier (several), from ``decide.LawPlan`` objects."""
    print(f"unique tokens U = {u:.4g}; C = {flops_per_token:g} N D")
    if len(budgets) > 1:
        for name, plan in laws.items():
            f = plan.frontier
            bands = f.bands
            print(f"{name}")
            print(f"{'C':>10} {'N*':>10} {'D*':>10} {'K*':>8} {'L*':>8} {'10x C buys':>11}"
                  + (f"   {100 * bands['level']:g}%: K*, L*" if bands else ""))
            for j, row in enumerate(f.rows):
                if row.withheld:  # no size is invented where the law cannot speak (allocate.frontier)
                    most = (f"spend at most C = {f.supported_up_to:.3g}" if f.supported_up_to else
                            "no budget of this range has a supported plan")
                    print(f"{row.compute:>10.3g}   no better plan: {most} ({row.withheld})")
                    continue
                extra = (f"   [{bands['epochs'][j][0]:.3g}, {bands['epochs'][j][1]:.3g}], "
                         f"[{bands['loss'][j][0]:.4f}, {bands['loss'][j][1]:.4f}]") if bands else ""
                print(f"{row.compute:>10.3g} {row.params:>10.4g} {row.tokens:>10.4g} {row.epochs:>8.3g} "
                      f"{row.loss:>8.4f} {row.gain_from_10x:>11.4f}{extra}")
            wall = f"{f.data_wall:.3g} FLOPs" if f.data_wall else "not reached in this range"
            limit = "lowest loss on the frontier" if f.loss_limit_is else "loss as C -> infinity"
            print(f"data wall (10x compute buys < {f.wall_gain:g} nats): {wall}; {limit} {f.loss_limit:.4f}"
                  + (f" [{bands['loss_limit'][0]:.4f}, {bands['loss_limit'][1]:.4f}]" if bands else ""))
        return
    print(f"compute C = {budgets[0]:.4g} FLOPs")
    print(f"{'law':<40} {'N*':>10} {'D*':>10} {'K*':>7} {'loss':>8} {'last epoch':>10}   naive N, D: loss with U")
    for name, plan in laws.items():
        r, nv = plan.allocation, plan.allocation.naive
        worth = r.last_epoch_worth
        # under one epoch, or a law without a repetition term (a penalty law): no "last epoch" to price
        worth = f"{worth:>10.3f}" if worth is not None and worth == worth else f"{'-':>10}"
        print(f"{name[:40]:<40} {r.params:>10.4g} {r.tokens:>10.4g} {r.epochs:>7.3g} {r.loss:>8.4f} "
              f"{worth}   {nv.params:.3g}, {nv.tokens:.3g}: {nv.loss_with_U:.4f} (+{nv.penalty_vs_optimum:.4f})")
        if plan.intervals:
            iv = plan.intervals
            print(f"{'':<40} {100 * iv['level']:g}%: N* [{iv['params'][0]:.3g}, {iv['params'][1]:.3g}], "
                  f"K* [{iv['epochs'][0]:.3g}, {iv['epochs'][1]:.3g}], loss [{iv['loss'][0]:.4f}, {iv['loss'][1]:.4f}]")
        if plan.holdout:
            print(f"{'':<40} held-out RMSE(log) {plan.holdout['rmse_log']:.4f} ({plan.holdout['spec']})")
    if len(laws) > 1 and comparison:
        c = comparison
        fav = f"the held-out errors ({c['holdout']}) favour {c['favoured_by_holdout']}" if c["favoured_by_holdout"] \
            else "no common held-out error to compare the laws by (fit each with the same --holdout)"
        print(f"{fav}; the decision {'changes' if c['decision_changes'] else 'does not change'} with the law "
              f"(N* {c['spread']['params'][0]:.3g}-{c['spread']['params'][1]:.3g}, "
              f"K* {c['spread']['epochs'][0]:.3g}-{c['spread']['epochs'][1]:.3g})")


def print_recipes(rec: dict) -> None:
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


def print_fixed_size(out: dict, summary: dict, n: float, u: float) -> None:
    """The fixed-size plan: the repetition summary, the turn and the per-epoch table."""
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
