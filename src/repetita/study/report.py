"""``repetita report DIR``: a study's analysis (``study/analysis.py``) rendered as one HTML page, its
figures, its fitted laws as fit files and a JSON summary. This module only draws and renders.

Sections (each skipped with a stated reason when the study lacks the runs it needs): the decision for
the corpus, first; loss vs epochs per U; E(K, N) from the constant-R* and the N-aware law side by side;
regularized vs standard; ensemble scaling in K with its fitted asymptote; the two-step asymptote; data
efficiency of every recipe against the standard law's data term. The page comes from
``templates/report.html`` (``string.Template``).
"""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np
import pandas as pd

from repetita.errors import require
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


def fig_loss_vs_epochs(single: pd.DataFrame, out: Path) -> str | None:
    std = single[single["recipe"] == "standard"]
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


def fig_ensembles(table: pd.DataFrame, fits: list[dict], out: Path) -> str | None:
    if table.empty:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4), layout="constrained")
    fitted = {(f["params"], f["unique_tokens"], f["epochs"]): f for f in fits}
    for i, ((n, u, k), g) in enumerate(table.groupby(["params", "unique_tokens", "epochs"])):
        g = g.sort_values("members")
        ax.plot(g["members"], g["loss"], "o", color=f"C{i}", label=f"N={n:,.0f} U={u:,.0f} K={k:g}")
        if (n, u, k) in fitted:
            f = fitted[(n, u, k)]
            xs = np.geomspace(1, g["members"].max() * 4, 50)
            ax.plot(xs, f["asymptote"] + f["A"] * xs ** -f["alpha"], "-", color=f"C{i}", lw=1)
            ax.axhline(f["asymptote"], color=f"C{i}", ls=":", lw=1)
    ax.set(xscale="log", xlabel="ensemble members K", ylabel="validation loss (logit averaging)")
    ax.legend(fontsize=7)
    return _save(fig, out / "ensembles.png")


def _reuse_figure(r: dict | None, out: Path) -> None:
    """E vs K per U and K* vs U, when the study measured E (adds ``figure`` to the reuse section)."""
    if r and r.get("table"):
        from repetita.laws.plots import plot_reuse

        fit = next((f for f in r["fits"].values() if "A" in f), None) if len(r["fits"]) == 1 else None
        kstar = pd.DataFrame(r["k_star"]).assign(k_star=lambda d: d["k_star_interp"])
        r["figure"] = plot_reuse(pd.DataFrame(r["table"]), kstar, fit, r["lambda"], out / "reuse_measured.png").name


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
    from repetita.io import read_json
    from repetita.study.analysis import analyse, singles
    from repetita.study.store import run_dir

    study_dir = Path(study_dir)
    check_study_dir(study_dir, creating=False)
    store = Store.of_study(study_dir, verify=True)
    try:
        tidy, counts, results = store.tidy(), store.counts(), store.results()
    finally:
        store.close()
    require(len(tidy) > 0, f"{study_dir}: no finished runs to report yet (run the study first)")
    out = make_dir(study_dir / "report", "report folder")
    a = analyse(tidy, results, history=lambda rid: read_json(run_dir(study_dir, rid) / "metrics.json", "run metrics"))
    _reuse_figure(a.reuse, out)
    decision = dict(a.decision)
    figures = {
        "loss_vs_epochs": fig_loss_vs_epochs(singles(tidy), out),
        "reuse_rate": fig_reuse(tidy, a.fits, out),
        "recipes": fig_recipes(a.best, out),
        "ensembles": fig_ensembles(a.ensembles, a.ensemble_fits, out),
    }
    laws = _write_law_files(out, study_dir.name, a.fits, decision.pop("uncertainty", None))
    summary = {
        "decision": decision,
        "law_files": laws,
        "reuse": a.reuse,
        "counts": counts,
        "rows": int(len(tidy)),
        "fits": {k: {kk: v.get(kk) for kk in ("params", "objective", "r2", "n_rows", "excluded_past_turn", "error", "warnings")}
                 for k, v in a.fits.items()},
        "best": a.best.to_dict(orient="records"),
        "ensemble_fits": a.ensemble_fits,
        "two_step": a.two_step,
        "efficiency": a.efficiency.to_dict(orient="records"),
        "figures": {k: v for k, v in figures.items() if v},
    }
    write_json(out / SUMMARY, summary)
    write_text(out / REPORT, render_html(study_dir.name, summary, figures, a.best, a.efficiency))
    summary["report"] = str((out / REPORT).resolve())
    return summary


def _fits_html(fits: dict) -> str:
    return "".join(
        f"<li><b>{k}</b>: "
        + (html.escape(v["error"]) if v.get("error") else f"R^2 {v['r2']:.4f}, objective {v['objective']:.4g}, {v['n_rows']} runs "
           f"({v.get('excluded_past_turn') or 0} past their turning point left out); "
           + ", ".join(f"{p} = {x:.4g}" for p, x in v["params"].items()))
        + "".join(f'<br><span class="warn">warning: {html.escape(w)}</span>' for w in v.get("warnings") or [])
        + "</li>"
        for k, v in fits.items()
    )


def _two_step_html(ts: dict) -> str:
    if "asymptote" not in ts:
        return f"<p><em>Two-step asymptote: {html.escape(ts['skipped'])}</em></p>"
    return (f"<p>Two-step asymptote (U = {ts['unique_tokens']:,.0f}, {ts['epochs']:g} epochs): K-asymptotes "
            + ", ".join(f"{g['E']:.4f} (N = {g['params']:,.0f}, R^2 {g['r2']:.2f})" for g in ts["groups"])
            + f"; along N: E_inf = {ts['asymptote']:.4f} (alpha {ts['outer_fit']['alpha']:.3g}, R^2 {ts['outer_fit']['r2']:.2f})"
            + (" &mdash; <b>exactly determined</b> by three sizes, so not an estimate: add model sizes."
               if ts.get("exactly_determined") else "") + "</p>")


def render_html(name: str, summary: dict, figures: dict, best: pd.DataFrame, eff: pd.DataFrame) -> str:
    """The page, from the template beside this module (templates/report.html): the decision first."""
    from importlib import resources
    from string import Template

    def img(key: str, caption: str) -> str:
        if not figures.get(key):
            return f"<p><em>{html.escape(caption)}: not enough runs for this figure.</em></p>"
        return f'<figure><img src="{figures[key]}" alt="{key}"><figcaption>{html.escape(caption)}</figcaption></figure>'

    cols = [c for c in ("recipe", "params", "unique_tokens", "loss", "effective_tokens", "tokens_per_unique_token")
            if c in eff]
    page = Template((resources.files("repetita.study") / "templates" / "report.html").read_text())
    return page.substitute(
        name=html.escape(name), decision=_decision_html(summary["decision"]),
        counts=", ".join(f"{k} {v}" for k, v in summary["counts"].items()), rows=summary["rows"],
        fig_loss_vs_epochs=img("loss_vs_epochs", "standard recipe; star = best epoch count"),
        fig_reuse_rate=img("reuse_rate", "fitted to the standard runs"), fits=_fits_html(summary["fits"]),
        fig_recipes=img("recipes", "regularized and ensembles vs standard"), best=_table_html(best),
        fig_ensembles=img("ensembles", "loss vs members with fitted power law and asymptote (dotted)"),
        two_step=_two_step_html(summary["two_step"]), reuse=_reuse_html(summary.get("reuse")),
        efficiency=_table_html(eff[cols] if not eff.empty else eff))


def _decision_html(d: dict) -> str:
    if d.get("skipped"):
        return f"<p><em>No decision: {html.escape(d['skipped'])}</em></p>"
    items = "".join(f"<li>{html.escape(line)}</li>" for line in d["lines"])
    caveats = "".join(f'<li class="warn">{html.escape(c)}</li>' for c in d["caveats"])
    return f"<ul>{items}</ul><p>Caveats:</p><ul>{caveats or '<li>none</li>'}</ul>"
