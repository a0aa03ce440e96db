"""``repetita report DIR``: figures, fitted laws and a JSON summary of a study, as one HTML page.

Sections (each skipped with a stated reason when the study lacks the runs it needs):
loss vs epochs per U; E(K, N) from the constant-R* and the N-aware law side by side; regularized
vs standard; ensemble scaling in K with its fitted asymptote; the two-step asymptote; data
efficiency of every recipe against the standard law's data term.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

import numpy as np
import pandas as pd

from repetita.errors import UserError, require
from repetita.io import make_dir, save_figure, write_json, write_text
from repetita.io import plt as _pyplot
from repetita.study.driver import check_study_dir
from repetita.study.store import Store

REPORT = "report.html"
SUMMARY = "report.json"


def _plt():
    return _pyplot()


def _save(fig, path: Path) -> str:
    save_figure(fig, path, dpi=110, bbox_inches="tight")
    return path.name


def singles(tidy: pd.DataFrame) -> pd.DataFrame:
    """Single-model rows (ensemble members included), averaged over seeds per configuration."""
    df = tidy[tidy["members"] == 1]
    keys = ["recipe", "params", "unique_tokens", "epochs", "lr", "weight_decay"]
    return df.groupby(keys, as_index=False)["loss"].mean()


def fig_loss_vs_epochs(tidy: pd.DataFrame, out: Path) -> str | None:
    std = singles(tidy)
    std = std[std["recipe"] == "standard"]
    if std.empty:
        return None
    plt = _plt()
    sizes = sorted(std["params"].unique())
    fig, axes = plt.subplots(1, len(sizes), figsize=(5 * len(sizes), 4), squeeze=False, layout="constrained")
    for ax, n in zip(axes[0], sizes, strict=True):
        sub = std[std["params"] == n]
        for i, (u, g) in enumerate(sub.groupby("unique_tokens")):
            g = g.groupby("epochs", as_index=False)["loss"].min().sort_values("epochs")
            ax.plot(g["epochs"], g["loss"], "o-", color=f"C{i}", label=f"U = {u:,.0f}")
            best = g.loc[g["loss"].idxmin()]
            ax.plot(best["epochs"], best["loss"], "*", ms=14, color=f"C{i}")
        ax.set(xscale="log", xlabel="epochs", ylabel="validation loss (nats/token)", title=f"N = {n:,.0f} params")
        ax.legend(fontsize=8)
    return _save(fig, out / "loss_vs_epochs.png")


def before_turn(single: pd.DataFrame) -> pd.DataFrame:
    """Standard runs up to the best epoch count of each (N, U): the envelope the laws describe.

    Both reuse laws are non-increasing in epochs (an extra epoch is worth at least nothing), which
    is the loss of *tuned* training; runs past the turning point overfit a fixed recipe, and one
    collapsed 64-epoch run can outweigh the rest of the fit (measured on the demo study: R^2 0.31
    with them, see docs/study.md).
    """
    std = single[single["recipe"] == "standard"]
    best = std.loc[std.groupby(["params", "unique_tokens"])["loss"].idxmin(), ["params", "unique_tokens", "epochs"]]
    merged = std.merge(best.rename(columns={"epochs": "best_epochs"}), on=["params", "unique_tokens"])
    kept = merged[merged["epochs"] <= merged["best_epochs"]].drop(columns="best_epochs").reset_index(drop=True)
    kept.attrs["excluded"] = len(std) - len(kept)
    return kept


def fit_reuse_laws(tidy: pd.DataFrame) -> tuple[dict, object, pd.DataFrame]:
    """Fit the constant-R* and the N-aware law to the standard runs (alpha tied to beta: few runs).

    The N-aware law nests the constant one (r1 = 0, r0 = R_D*), so it also starts from the constant
    fit: its own default grid suits ln U ~ 20 (published runs) and can leave every start in the
    region where R_D*(U) sits on its floor and the gradient in r0, r1 vanishes.
    """
    from repetita.laws.fit import LawFit, init_grid

    std = before_turn(singles(tidy))
    out: dict = {}
    try:
        dc = LawFit("data-constrained", tie={"beta": "alpha"}).fit(std)
        out["data-constrained"] = dc.result() | {"excluded_past_turn": int(std.attrs["excluded"])}
    except UserError as exc:
        out["data-constrained"] = {"error": str(exc)}
        dc = None
    try:
        reuse = LawFit("reuse", tie={"beta": "alpha"})
        starts = init_grid(reuse.spec)
        if dc is not None:
            p = dc.params_
            warm = {**p, "r0": p["rd_star"], "r1": 0.0}
            starts = np.vstack([starts, [[warm[k] for k in reuse.spec.free_params()]]])
        out["reuse"] = reuse.fit(std, starts=starts).result() | {"excluded_past_turn": int(std.attrs["excluded"])}
    except UserError as exc:
        out["reuse"] = {"error": str(exc)}
    return out, dc, std


def fig_reuse(tidy: pd.DataFrame, fits: dict, out: Path) -> str | None:
    from repetita.laws.plan import rd_star_for, reuse_rate

    ok = {k: v for k, v in fits.items() if "error" not in v}
    if not ok:
        return None
    plt = _plt()
    us = sorted(tidy["unique_tokens"].unique())
    k = np.geomspace(1, max(64.0, tidy["epochs"].max() * 2), 60)
    fig, axes = plt.subplots(1, len(ok), figsize=(5 * len(ok), 4), squeeze=False, layout="constrained")
    for ax, (name, rec) in zip(axes[0], ok.items(), strict=True):
        for i, u in enumerate(us):
            rd = float(rd_star_for(rec, u))
            ax.plot(k, reuse_rate(k, rd), color=f"C{i}", label=f"U = {u:,.0f}: R_D* = {rd:.3g}")
        ax.plot(k, k, "k--", lw=1, label="E = K")
        ax.set(xscale="log", yscale="log", xlabel="epochs K", ylabel="E(K) = D'/U", title=f"{name} (R^2 {rec['r2']:.3f})")
        ax.legend(fontsize=7)
    return _save(fig, out / "reuse_rate.png")


def best_by_recipe(tidy: pd.DataFrame) -> pd.DataFrame:
    """Lowest loss per (recipe, N, U): over epochs and, for regularized, over the LR x WD grid."""
    rows = []
    single = singles(tidy)
    for (recipe, n, u), g in single.groupby(["recipe", "params", "unique_tokens"]):
        best = g.loc[g["loss"].idxmin()]
        # single rows of an ensemble run are its members (seed-averaged: the K = 1 point)
        rows.append({"recipe": "ensemble member" if recipe == "ensemble" else recipe, "params": n, "unique_tokens": u, "loss": best["loss"], "epochs": best["epochs"],
                     "lr": best["lr"], "weight_decay": best["weight_decay"], "members": 1})
    ens = tidy[(tidy["members"] > 1) & (tidy.get("combiner", "logits") == "logits")]
    for (n, u, m), g in ens.groupby(["params", "unique_tokens", "members"]):
        best = g.loc[g["loss"].idxmin()]
        rows.append({"recipe": f"ensemble x{m}", "params": n, "unique_tokens": u, "loss": best["loss"],
                     "epochs": best["epochs"], "lr": best["lr"], "weight_decay": best["weight_decay"], "members": m})
    return pd.DataFrame(rows)


def fig_recipes(best: pd.DataFrame, out: Path) -> str | None:
    if best.empty or best["recipe"].nunique() < 2:
        return None
    plt = _plt()
    # only the (N, U) cells where recipes meet: a standard-only cell compares nothing
    shared = best.groupby(["params", "unique_tokens"])["recipe"].transform("nunique") > 1
    best = best[shared] if shared.any() else best
    cells = best[["params", "unique_tokens"]].drop_duplicates().sort_values(["params", "unique_tokens"])
    recipes = sorted(best["recipe"].unique())
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(cells)), 4), layout="constrained")
    width = 0.8 / len(recipes)
    for j, r in enumerate(recipes):
        vals = [best[(best["recipe"] == r) & (best["params"] == c.params) & (best["unique_tokens"] == c.unique_tokens)]["loss"]
                for c in cells.itertuples()]
        ys = [v.iloc[0] if len(v) else np.nan for v in vals]
        ax.bar(np.arange(len(cells)) + j * width, ys, width, label=r)
    ax.set_xticks(np.arange(len(cells)) + 0.4 - width / 2)
    ax.set_xticklabels([f"N={c.params:,.0f}\nU={c.unique_tokens:,.0f}" for c in cells.itertuples()], fontsize=8)
    lo = np.nanmin(best["loss"])
    ax.set(ylim=(lo * 0.97, np.nanmax(best["loss"]) * 1.01), ylabel="best validation loss")
    ax.legend(fontsize=8)
    return _save(fig, out / "recipes.png")


def ensemble_table(tidy: pd.DataFrame) -> pd.DataFrame:
    """Loss vs members K per (N, U, epochs): K = 1 is the mean member of the ensembles."""
    rows = []
    ens = tidy[tidy["recipe"] == "ensemble"]
    for (n, u, k), g in ens.groupby(["params", "unique_tokens", "epochs"]):
        single = g[g["members"] == 1]["loss"].mean()
        rows.append({"params": n, "unique_tokens": u, "epochs": k, "members": 1, "loss": single})
        logits = g[(g["members"] > 1) & (g.get("combiner", "logits") == "logits")]
        for m, gm in logits.groupby("members"):
            rows.append({"params": n, "unique_tokens": u, "epochs": k, "members": m, "loss": gm["loss"].mean()})
    return pd.DataFrame(rows)


def fig_ensembles(table: pd.DataFrame, out: Path) -> tuple[str | None, list[dict]]:
    from repetita.laws.asymptote import MIN_POINTS, fit_power

    if table.empty:
        return None, []
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4), layout="constrained")
    fits = []
    for i, ((n, u, k), g) in enumerate(table.groupby(["params", "unique_tokens", "epochs"])):
        g = g.sort_values("members")
        ax.plot(g["members"], g["loss"], "o", color=f"C{i}", label=f"N={n:,.0f} U={u:,.0f} K={k:g}")
        if g["members"].nunique() >= MIN_POINTS:
            fit = fit_power(g, "members")
            nat = fit.natural_params()
            xs = np.geomspace(1, g["members"].max() * 4, 50)
            ax.plot(xs, nat["E"] + nat["A"] * xs ** -nat["alpha"], "-", color=f"C{i}", lw=1)
            ax.axhline(nat["E"], color=f"C{i}", ls=":", lw=1)
            fits.append({"params": n, "unique_tokens": u, "epochs": k, "asymptote": nat["E"], "A": nat["A"],
                         "alpha": nat["alpha"], "r2": fit.r2_})
    ax.set(xscale="log", xlabel="ensemble members K", ylabel="validation loss (logit averaging)")
    ax.legend(fontsize=7)
    return _save(fig, out / "ensembles.png"), fits


def two_step(table: pd.DataFrame) -> dict:
    from repetita.laws.asymptote import two_step_asymptote

    if table.empty:
        return {"skipped": "no ensemble runs"}
    # one (U, epochs) cell per size: the largest U, at its most common epoch count
    u = table["unique_tokens"].max()
    sub = table[table["unique_tokens"] == u]
    k = sub["epochs"].mode().iloc[0]
    sub = sub[sub["epochs"] == k]
    try:
        res = two_step_asymptote(sub, "members", "params") | {"unique_tokens": u, "epochs": k}
    except UserError as exc:
        return {"skipped": str(exc)}
    # E + A N^-alpha has three parameters: with three sizes the outer fit passes through every point
    # and its E is not identified (any value fits); say so rather than report it as an estimate.
    res["exactly_determined"] = len(res["groups"]) <= 3
    return res


def efficiency(best: pd.DataFrame, fits: dict) -> pd.DataFrame:
    """Fresh tokens each recipe's best loss is worth under the fitted standard law, per unique token."""
    from repetita.laws.plan import data_term, tokens_from_loss

    rec = fits.get("data-constrained", {})
    if "error" in rec or best.empty or not rec:
        return pd.DataFrame()
    out = best.copy()
    e_rest, b, beta = data_term(rec, out["params"].to_numpy())
    out["effective_tokens"] = tokens_from_loss(out["loss"].to_numpy(), e_rest, b, beta)
    out["tokens_per_unique_token"] = out["effective_tokens"] / out["unique_tokens"]
    from repetita.laws.efficiency import equivalent_data

    # the data multiplier m with law(N, m D, m U) = the best loss: how the planner applies a recipe
    out["data_multiplier"] = equivalent_data(rec, out["loss"].to_numpy(), out["params"].to_numpy(),
                                             (out["epochs"] * out["unique_tokens"]).to_numpy(),
                                             out["unique_tokens"].to_numpy())
    return out


def _decision(tidy: pd.DataFrame, dc, std: pd.DataFrame, eff: pd.DataFrame, fits: dict) -> dict:
    """What the study says to do on its own corpus (``study/decision.py``); a stated reason when it cannot."""
    from repetita.study.decision import decide, decision_lines

    if dc is None:
        return {"skipped": "the data-constrained law could not be fitted", "lines": []}
    try:
        d = decide(singles(tidy), dc, std, eff.to_dict(orient="records"), fits["data-constrained"])
    except UserError as exc:
        return {"skipped": str(exc), "lines": []}
    return d | {"lines": decision_lines(d)}


def _reuse(study_dir: Path, results: dict[str, dict]) -> dict | None:
    """E(K, U) from the study's reuse recipe (``study/reuse_lab.py``), None when it ran none."""
    from repetita.io import read_json
    from repetita.study.reuse_lab import measure
    from repetita.study.store import run_dir

    try:
        r = measure(results, history=lambda rid: read_json(run_dir(study_dir, rid) / "metrics.json", "run metrics"))
    except UserError as exc:
        return {"skipped": str(exc), "table": [], "k_star": []}
    if r and r.get("table"):
        from repetita.laws.plots import plot_reuse

        fit = next((f for f in r["fits"].values() if "A" in f), None) if len(r["fits"]) == 1 else None
        kstar = pd.DataFrame(r["k_star"]).assign(k_star=lambda d: d["k_star_interp"])
        r["figure"] = plot_reuse(pd.DataFrame(r["table"]), kstar, fit, r["lambda"], study_dir / "report" / "reuse_measured.png").name
    return r


def _reuse_html(r: dict | None) -> str:
    if r is None:
        return "<p><em>No reuse recipe in this study.</em></p>"
    if r.get("skipped"):
        return f"<p><em>{html.escape(r['skipped'])}</em></p>"
    table = pd.DataFrame(r["table"])
    wide = table.pivot_table(index="unique_tokens", columns="epochs", values="reuse_rate")
    ks = "".join(f"<li>N = {k['params']:,.0f}, U = {k['unique_tokens']:,.0f}: K* = {k['k_star']:g} on the grid, "
                 f"{k['k_star_interp']:.3g} interpolated; plateau E = {k['plateau']:.3g}</li>" for k in r["k_star"])
    fits = "".join(f"<li>N = {float(n):,.0f}: " + (html.escape(f["skipped"]) if "skipped" in f else
                   f"K*(U) = {f['A']:.3g} ln U + {f['B']:.3g}, A in [{f['A_interval'][0]:.3g}, {f['A_interval'][1]:.3g}]")
                   + "</li>" for n, f in r["fits"].items())
    warn = "".join(f'<li class="warn">{html.escape(w)}</li>' for w in r["warnings"])
    fig = f'<figure><img src="{r["figure"]}" alt="reuse_measured"><figcaption>E vs K per U (E = K dashed), and K* vs U with its fit</figcaption></figure>' if r.get("figure") else ""
    return (f"{fig}<p>E(K, U) (rows U, columns K; seeds averaged):</p>{wide.to_html(float_format=lambda v: f'{v:.3g}', border=0, classes='t')}"
            f"<ul>{ks}</ul><ul>{fits}</ul><ul>{warn}</ul>")


def _write_law_files(out: Path, name: str, fits: dict, uncertainty: dict | None) -> dict:
    """Through ``laws.record``, the one fit-file format. The fitted laws as fit files ``repetita plan --law-file`` reads (with the sandwich uncertainty of
    the data-constrained fit), so a plan for a bigger budget starts from the study's own law."""
    from repetita.laws.record import save as save_fit

    files = {}
    for law, rec in fits.items():
        if rec.get("error"):
            continue
        record = rec | {"source": f"study {name}: standard runs up to their best epoch count"}
        if law == "data-constrained" and uncertainty:
            record["uncertainty"] = uncertainty
        files[law] = str(save_fit(out / f"law-{law}.json", record).name)
    return files


def _table_html(df: pd.DataFrame) -> str:
    if df.empty:
        return "<p><em>none</em></p>"
    return df.to_html(index=False, float_format=lambda v: f"{v:.4g}", border=0, classes="t")


def build_report(study_dir: str | Path) -> dict:
    study_dir = Path(study_dir)
    check_study_dir(study_dir, creating=False)
    store = Store.of_study(study_dir, verify=True)
    try:
        tidy, counts, results = store.tidy(), store.counts(), store.results()
    finally:
        store.close()
    require(len(tidy) > 0, f"{study_dir}: no finished runs to report yet (run the study first)")
    out = make_dir(study_dir / "report", "report folder")
    fits, dc, std = fit_reuse_laws(tidy)
    best = best_by_recipe(tidy)
    ens = ensemble_table(tidy)
    ens_fig, ens_fits = fig_ensembles(ens, out)
    eff = efficiency(best, fits)
    decision = _decision(tidy, dc, std, eff, fits)
    reuse = _reuse(study_dir, results)
    figures = {
        "loss_vs_epochs": fig_loss_vs_epochs(tidy, out),
        "reuse_rate": fig_reuse(tidy, fits, out),
        "recipes": fig_recipes(best, out),
        "ensembles": ens_fig,
    }
    laws = _write_law_files(out, study_dir.name, fits, decision.pop("uncertainty", None))
    summary = {
        "decision": decision,
        "law_files": laws,
        "reuse": reuse,
        "counts": counts,
        "rows": int(len(tidy)),
        "fits": {k: {kk: v.get(kk) for kk in ("params", "objective", "r2", "n_rows", "excluded_past_turn", "error", "warnings")} for k, v in fits.items()},
        "best": best.to_dict(orient="records"),
        "ensemble_fits": ens_fits,
        "two_step": two_step(ens),
        "efficiency": eff.to_dict(orient="records"),
        "figures": {k: v for k, v in figures.items() if v},
    }
    write_json(out / SUMMARY, summary)
    write_text(out / REPORT, render_html(study_dir.name, summary, figures, best, eff))
    summary["report"] = str((out / REPORT).resolve())
    return summary


def render_html(name: str, summary: dict, figures: dict, best: pd.DataFrame, eff: pd.DataFrame) -> str:
    def img(key: str, caption: str) -> str:
        if not figures.get(key):
            return f"<p><em>{html.escape(caption)}: not enough runs for this figure.</em></p>"
        return f'<figure><img src="{figures[key]}" alt="{key}"><figcaption>{html.escape(caption)}</figcaption></figure>'

    fits = "".join(
        f"<li><b>{k}</b>: "
        + (html.escape(v["error"]) if v.get("error") else f"R^2 {v['r2']:.4f}, objective {v['objective']:.4g}, {v['n_rows']} runs "
           f"({v.get('excluded_past_turn') or 0} past their turning point left out); "
           + ", ".join(f"{p} = {x:.4g}" for p, x in v["params"].items()))
        + "".join(f'<br><span class="warn">warning: {html.escape(w)}</span>' for w in v.get("warnings") or [])
        + "</li>"
        for k, v in summary["fits"].items()
    )
    ts = summary["two_step"]
    if "asymptote" in ts:
        two = (f"<p>Two-step asymptote (U = {ts['unique_tokens']:,.0f}, {ts['epochs']:g} epochs): K-asymptotes "
               + ", ".join(f"{g['E']:.4f} (N = {g['params']:,.0f}, R^2 {g['r2']:.2f})" for g in ts["groups"])
               + f"; along N: E_inf = {ts['asymptote']:.4f} (alpha {ts['outer_fit']['alpha']:.3g}, R^2 {ts['outer_fit']['r2']:.2f})"
               + (" &mdash; <b>exactly determined</b> by three sizes, so not an estimate: add model sizes."
                  if ts.get("exactly_determined") else "") + "</p>")
    else:
        two = f"<p><em>Two-step asymptote: {html.escape(ts['skipped'])}</em></p>"
    counts = ", ".join(f"{k} {v}" for k, v in summary["counts"].items())
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>repetita report: {html.escape(name)}</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto;}} img{{max-width:100%;}}
table.t{{border-collapse:collapse;font-size:13px}} table.t td,table.t th{{padding:2px 8px;border-bottom:1px solid #ddd}}</style>
</head><body>
<h1>Study {html.escape(name)}</h1>
<h2>Decision for this corpus</h2>{_decision_html(summary['decision'])}
<p>Runs: {counts}. Tidy rows: {summary['rows']}.</p>
<h2>Loss vs epochs per unique-token budget</h2>{img('loss_vs_epochs', 'standard recipe; star = best epoch count')}
<h2>Effective reuse E(K, N): constant R* vs N-aware law</h2>{img('reuse_rate', 'fitted to the standard runs')}
<ul>{fits}</ul><p>Parameters a, b, e are the natural logs of A, B, E (the datablations convention).</p>
<h2>Recipes: best loss per (N, U)</h2>{img('recipes', 'regularized and ensembles vs standard')}{_table_html(best)}
<h2>Ensembles</h2>{img('ensembles', 'loss vs members with fitted power law and asymptote (dotted)')}{two}
<h2>Effective reuse E(K, U) measured (constant LR, one-pass reference)</h2>{_reuse_html(summary.get('reuse'))}
<h2>Data efficiency</h2><p>Fresh tokens each best loss is worth under the fitted data-constrained law, per unique token.</p>
{_table_html(eff[[c for c in ('recipe', 'params', 'unique_tokens', 'loss', 'effective_tokens', 'tokens_per_unique_token') if c in eff]] if not eff.empty else eff)}
<script>
window.addEventListener('load', function () {{
  var imgs = document.images, ok = 0;
  for (var i = 0; i < imgs.length; i++) if (imgs[i].complete && imgs[i].naturalWidth > 0) ok++;
  document.body.setAttribute('data-images', imgs.length);
  document.body.setAttribute('data-images-loaded', ok);
}});
</script>
</body></html>
"""


def _decision_html(d: dict) -> str:
    if d.get("skipped"):
        return f"<p><em>No decision: {html.escape(d['skipped'])}</em></p>"
    items = "".join(f"<li>{html.escape(line)}</li>" for line in d["lines"])
    caveats = "".join(f'<li class="warn">{html.escape(c)}</li>' for c in d["caveats"])
    return f"<ul>{items}</ul><p>Caveats:</p><ul>{caveats or '<li>none</li>'}</ul>"


def summary_json(study_dir: str | Path) -> dict:
    return json.loads((Path(study_dir) / "report" / SUMMARY).read_text())
