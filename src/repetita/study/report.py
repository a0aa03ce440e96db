"""``repetita report DIR``: a study's analysis (``study/analysis.py``) rendered as one HTML page, its
figures, its fitted laws as fit files and a JSON summary. This module only draws and renders.

Sections (each skipped with a stated reason when the study lacks the runs it needs): the first screen
(``decide/decision.py``: one sentence, one row per unique-token budget, the caveats that may change it,
the runs that would firm it up); then the evidence, tables folded and written beside the page as CSV; loss vs epochs per U; E(K, N) from the constant-R* and the N-aware law side by side;
regularized vs standard; ensemble scaling in K with its fitted asymptote; the two-step asymptote; data
efficiency of every recipe against the standard law's data term. The page comes from
``templates/report.html`` (``string.Template``).
"""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np
import pandas as pd

from repetita.errors import UserError
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


def _overlay_law(fits: dict) -> tuple[object | None, str]:
    """(the fitted law to draw over the runs, the line that names it or says why none is drawn): among the
    study's fits that pass their own diagnostics, the one that predicts its held-out runs best."""
    from repetita.decide.decision import finding_problem
    from repetita.laws.fit import LawFit

    ok = {k: f for k, f in fits.items() if isinstance(f, dict) and finding_problem(f) is None}
    if not ok:
        why = finding_problem(fits.get("data-constrained") or {"error": "no law was fitted"})
        return None, f"no law drawn: none passes its own diagnostics (data-constrained: {why})"
    name = min(ok, key=lambda k: (ok[k].get("study_holdout") or {}).get("rmse_log", np.inf))
    held = (ok[name].get("study_holdout") or {}).get("rmse_log")
    return LawFit.from_result(ok[name]), f"dashed: the {name} law" + (
        f" (held-out RMSE(log) {held:.3f}, the best of the laws that pass their checks)" if held else "")


def fig_loss_vs_epochs(single: pd.DataFrame, out: Path, fits: dict | None = None) -> str | None:
    """Measured losses per (N, U) against epochs, the best starred, two panels a row; over them, dashed, the
    study's best-predicting law that passes its own diagnostics (``_overlay_law``), or a line saying why
    none is drawn."""
    std = single[single["recipe"] == "standard"]
    if std.empty:
        return None
    plt = _plt()
    law, said = _overlay_law(fits or {})
    sizes = sorted(std["params"].unique())
    cols = min(2, len(sizes))
    rows = -(-len(sizes) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 3.6 * rows + 0.5), squeeze=False, layout="constrained",
                             sharex=True)
    for ax, n in zip(axes.flat, sizes, strict=False):
        sub = std[std["params"] == n]
        for i, (u, g) in enumerate(sub.groupby("unique_tokens")):
            g = g.groupby("epochs", as_index=False)["loss"].min().sort_values("epochs")
            ax.plot(g["epochs"], g["loss"], "o-", color=f"C{i}", label=f"U = {u:,.0f}")
            best = g.loc[g["loss"].idxmin()]
            ax.plot(best["epochs"], best["loss"], "*", ms=14, color=f"C{i}")
            if law is not None:
                k = np.geomspace(g["epochs"].min(), g["epochs"].max(), 40)
                grid = pd.DataFrame({"params": n, "unique_tokens": u, "tokens": k * u, "epochs": k})
                ax.plot(k, law.predict(grid), "--", lw=1.2, color=f"C{i}")
        ax.set(xscale="log", xlabel="epochs", ylabel="validation loss (nats/token)", title=f"N = {n:,.0f} params")
        ax.legend(fontsize=8)
    for ax in list(axes.flat)[len(sizes):]:
        ax.set_visible(False)
    fig.suptitle(f"standard recipe: loss against epochs; star: the best epoch count; {said}", fontsize=9)
    return _save(fig, out / "loss_vs_epochs.png")


def chance_loss(results: dict) -> float | None:
    """ln V, the loss of a uniform guess over the vocabulary, from the runs' results (their vocab_size, or the
    LM lab's tokenizer for studies run before results carried it); None when the runs do not say (a user's
    own trainer)."""
    sizes = {int(r["vocab_size"]) for r in results.values() if isinstance(r.get("vocab_size"), int | float)}
    if not sizes:
        from repetita.errors import UserError

        for r in results.values():
            tok = (r.get("config") or {}).get("tokenizer")
            if isinstance(tok, str) and "failed" not in r:
                from repetita.lm.data import parse_tokenizer

                try:
                    sizes.add(parse_tokenizer(tok)[1])
                except UserError:
                    continue
    return float(np.log(max(sizes))) if sizes else None


def fig_plan(plans: list[dict], single: pd.DataFrame, out: Path, chance: float | None = None) -> str | None:
    """The decision at every budget the study spans: N* and the predicted loss (with its 95% prediction
    band) against compute, one line per U, over the shaded region the runs measured. An N* at the floor of
    the sizes searched is no optimum: it is drawn hollow and named. The band stops at ``chance`` (ln V): no
    model does worse than a uniform guess."""
    if not plans or single.empty:
        return None
    from repetita.decide.allocate import N_RANGE
    from repetita.decide.decision import evidence_region, run_compute

    plt = _plt()
    df = pd.DataFrame(plans).sort_values(["unique_tokens", "compute"])
    ev = evidence_region(single)
    fig, (ax_n, ax_l) = plt.subplots(1, 2, figsize=(10, 4.2), layout="constrained")
    floor = df["member_params"] <= N_RANGE[0] * 1.01
    for i, (u, g) in enumerate(df.groupby("unique_tokens")):
        at_floor = floor.loc[g.index].to_numpy()
        ax_n.plot(g["compute"][~at_floor], g["member_params"][~at_floor], "o-", color=f"C{i}", label=f"U = {u:,.0f}")
        ax_n.plot(g["compute"][at_floor], g["member_params"][at_floor], "o", mfc="none", color=f"C{i}")
        ax_l.plot(g["compute"], g["loss"], "o-", color=f"C{i}", label=f"U = {u:,.0f}")
        band = [iv for iv in g["prediction_interval"] if iv] if "prediction_interval" in g else []
        if len(band) == len(g):
            hi = np.array([b[1] for b in band])
            ax_l.fill_between(g["compute"], [b[0] for b in band], np.minimum(hi, chance) if chance else hi,
                              color=f"C{i}", alpha=0.15)
    if floor.any():
        ax_n.plot([], [], "o", mfc="none", color="0.3",
                  label=f"at the search floor ({N_RANGE[0]:,.0f} params): no optimum found above it")
    if chance:
        ax_l.axhline(chance, color="0.3", ls=":", lw=1, label=f"chance level ln V = {chance:.2f} (bands stop there)")
    measured = single.assign(compute=run_compute(single))
    ax_n.scatter(measured["compute"], measured["params"], s=8, color="0.5", label="runs measured")
    lo = min(df["compute"].min(), measured["compute"].min()) / 2
    ax_n.fill_between([lo, ev.compute], measured["params"].min(), ev.params, color="0.9", zorder=0, label="measured region")
    ax_n.set(xscale="log", yscale="log", xlabel="compute C (FLOPs)", ylabel="recommended params per model",
             title="N*: outside the shaded region it is extrapolated",
             ylim=(min(df["member_params"].min(), measured["params"].min()) / 2, None))
    ax_l.set(xscale="log", xlabel="compute C (FLOPs)", ylabel="predicted loss (95% prediction band)",
             title="loss of the recommendation")
    for ax in (ax_n, ax_l):
        ax.set_xlim(lo, max(df["compute"].max(), ev.compute) * 2)
        ax.legend(fontsize=7)
    return _save(fig, out / "plan.png")


def fig_reuse(tidy: pd.DataFrame, fits: dict, out: Path) -> str | None:
    from repetita.decide.decision import finding_problem
    from repetita.laws.law import LAWS
    from repetita.laws.worth import rd_star_for, reuse_rate

    # E(K) needs an R_D*: a law that overfits instead (overfit-1) has none to draw
    ok = {k: v for k, v in fits.items() if finding_problem(v) is None and k in LAWS and LAWS[k].rd_star is not None}
    if not ok:  # a fit its own diagnostics reject is no curve to draw (the fits list says why)
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


def fig_recipes(best: pd.DataFrame, out: Path, single: pd.DataFrame | None = None) -> str | None:
    """Each recipe's loss per (N, U) cell at one epoch count: the most epochs every recipe of the cell ran
    (ensembles run fewer), so no recipe is read at its own best count against another's shorter one. Each
    recipe's best over every epoch count it ran is the black tick on its bar."""
    if best.empty or best["recipe"].nunique() < 2:
        return None
    plt = _plt()
    # only the (N, U) cells where recipes meet: a standard-only cell compares nothing
    shared = best.groupby(["params", "unique_tokens"])["recipe"].transform("nunique") > 1
    best = best[shared] if shared.any() else best
    cells = best[["params", "unique_tokens"]].drop_duplicates().sort_values(["params", "unique_tokens"])
    recipes = sorted(best["recipe"].unique())
    fig, ax = plt.subplots(figsize=(max(6, 1.7 * len(cells)), 4.2), layout="constrained")
    width = 0.8 / len(recipes)
    common_ks = []
    for c in cells.itertuples():
        in_cell = best[(best["params"] == c.params) & (best["unique_tokens"] == c.unique_tokens)]
        common_ks.append(float(in_cell["epochs"].min()))
    for j, r in enumerate(recipes):
        ys, ticks = [], []
        for c, k in zip(cells.itertuples(), common_ks, strict=True):
            row = best[(best["recipe"] == r) & (best["params"] == c.params) & (best["unique_tokens"] == c.unique_tokens)]
            ticks.append(row["loss"].iloc[0] if len(row) else np.nan)
            at_k = np.nan
            if len(row) and abs(float(row["epochs"].iloc[0]) - k) < 1e-9:
                at_k = row["loss"].iloc[0]
            elif single is not None and len(row):  # this recipe's best over its settings at the common count
                same = single[(single["recipe"] == r) & (single["params"] == c.params)
                              & (single["unique_tokens"] == c.unique_tokens) & (np.abs(single["epochs"] - k) < 1e-9)]
                at_k = float(same["loss"].min()) if len(same) else np.nan
            ys.append(at_k)
        x = np.arange(len(cells)) + j * width
        ax.bar(x, ys, width, label=r)
        ax.plot(x, ticks, "_", color="k", ms=10, mew=1.5)
    ax.plot([], [], "_", color="k", ms=10, mew=1.5, label="its best at any epoch count")
    ax.set_xticks(np.arange(len(cells)) + 0.4 - width / 2)
    ax.set_xticklabels([f"N={c.params:,.0f}\nU={c.unique_tokens:,.0f}\nat K = {k:g}"
                        for c, k in zip(cells.itertuples(), common_ks, strict=True)], fontsize=8)
    lo = np.nanmin(best["loss"])
    ax.set(ylim=(lo * 0.97, np.nanmax(best["loss"]) * 1.01), ylabel="validation loss",
           title="recipes at the same epoch count K (the most every recipe of the cell ran)")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    return _save(fig, out / "recipes.png")


def fig_ensembles(table: pd.DataFrame, fits: list[dict], out: Path) -> str | None:
    if table.empty:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7.5, 4.2), layout="constrained")
    # a fit in M worse than its mean, or whose asymptote vanished, is not drawn as a finding
    fitted = {(f["params"], f["unique_tokens"], f["epochs"]): f for f in fits
              if f["r2"] >= 0 and f["asymptote"] > 1e-3 * f["A"]}
    for i, ((n, u, k), g) in enumerate(table.groupby(["params", "unique_tokens", "epochs"])):
        g = g.sort_values("members")
        ax.plot(g["members"], g["loss"], "o", color=f"C{i}", label=f"N={n:,.0f}, U={u:,.0f}, {k:g} epochs")
        if (n, u, k) in fitted:
            f = fitted[(n, u, k)]
            xs = np.geomspace(1, g["members"].max() * 4, 50)
            ax.plot(xs, f["asymptote"] + f["A"] * xs ** -f["alpha"], "-", color=f"C{i}", lw=1)
            ax.axhline(f["asymptote"], color=f"C{i}", ls=":", lw=1)
    ax.set(xscale="log", xlabel="ensemble members M (each trained for the epochs named)",
           ylabel="validation loss (logit averaging)", title="ensembles: loss against members M, asymptote dotted")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
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


def _study_name(study_dir: Path) -> str:
    """The spec's name (the folder's name when the spec cannot be read)."""
    import tomllib

    try:
        return str(tomllib.loads((study_dir / "spec.toml").read_text()).get("name") or study_dir.name)
    except (OSError, tomllib.TOMLDecodeError):
        return study_dir.name


def _write_csvs(out: Path, tables: dict[str, pd.DataFrame]) -> dict[str, str]:
    """Each non-empty table as CSV beside the page (linked from it), sorted as shown."""
    links = {}
    for name, df in tables.items():
        if not df.empty:
            write_text(out / f"{name}.csv", df.to_csv(index=False))
            links[name] = f"{name}.csv"
    return links


def terminal_text(summary: dict) -> str:
    """What ``repetita report`` prints: the report's own first screen (the HTML renders the same Decision, so
    the terminal never says otherwise), the measured reuse when the study measured it, and where the page is."""
    lines = [summary["headline_markdown"]]
    r = summary.get("reuse")
    if r and r.get("k_star"):
        lines.append("measured reuse (constant LR, one-pass reference): " + "; ".join(
            f"U = {k['unique_tokens']:,.0f}: K* {k['k_star_interp']:.3g}, plateau E {k['plateau']:.3g}" for k in r["k_star"]))
        for n, f in r["fits"].items():
            if "A" in f:
                lines.append(f"  N = {float(n):,.0f}: K*(U) = {f['A']:.3g} ln U + {f['B']:.3g}, A in "
                             f"[{f['A_interval'][0]:.3g}, {f['A_interval'][1]:.3g}]")
        lines += [f"  caveat: {w}" for w in r.get("warnings", [])]
    lines.append(f"report: {summary['report']}")
    return "\n".join(lines)


def build_report(study_dir: str | Path) -> dict:
    from repetita.decide import report_schema
    from repetita.decide.decision import Decision
    from repetita.io import read_json
    from repetita.runpaths import run_dir
    from repetita.study.analysis import analyse, singles

    study_dir = Path(study_dir)
    check_study_dir(study_dir, creating=False)
    store = Store.of_study(study_dir, verify=True, readonly=True)
    try:
        tidy, counts, results = store.tidy(), store.counts(), store.results()
    finally:
        store.close()
    out = make_dir(study_dir / "report", "report folder")
    name = _study_name(study_dir)
    if tidy.empty:  # a page that says what it cannot decide, never an empty figure
        h = Decision(f"Study {name} has no finished runs yet: nothing to decide. Run it first "
                     f"(repetita run SPEC --dir {study_dir}).", decided=False)
        summary = report_schema.summary(headline=h.to_dict(), headline_markdown=h.markdown(),
                                        decision={"skipped": "no finished runs"}, counts=counts)
        write_json(out / SUMMARY, summary)
        write_text(out / REPORT, render_html(name, summary, {}, h, {}, {}))
        return summary | {"report": str((out / REPORT).resolve())}
    a = analyse(tidy, results, history=lambda rid: read_json(run_dir(study_dir, rid) / "metrics.json", "run metrics"),
                name=name)
    a, next_spec = _design_next_runs(study_dir, out, a, results)
    _reuse_figure(a.reuse, out)
    decision = dict(a.decision)
    figures = {
        "plan": (fig_plan(decision.get("plans") or [], singles(tidy), out, chance_loss(results))
                 if a.headline.decided else None),
        "loss_vs_epochs": fig_loss_vs_epochs(singles(tidy), out, a.fits),
        "reuse_rate": fig_reuse(tidy, a.fits, out),
        "recipes": fig_recipes(a.best, out, singles(tidy)),
        "ensembles": fig_ensembles(a.ensembles, a.ensemble_fits, out),
    }
    laws = _write_law_files(out, study_dir.name, a.fits, decision.pop("uncertainty", None))
    tables = {"best": _sorted(a.best, ["unique_tokens", "params", "loss"]),
              "efficiency": _sorted(a.efficiency, ["unique_tokens", "params", "recipe"]),
              "plans": _sorted(pd.DataFrame(decision.get("plans") or []), ["unique_tokens", "compute"])}
    csvs = _write_csvs(out, tables)
    summary = report_schema.summary(
        headline=a.headline.to_dict(),
        headline_markdown=a.headline.markdown(),
        decision=decision,
        law_files=laws,
        reuse=a.reuse,
        counts=counts,
        rows=int(len(tidy)),
        fits={k: {kk: v.get(kk) for kk in ("params", "objective", "r2", "n_rows", "excluded_past_turn", "error", "warnings")}
              for k, v in a.fits.items()},
        best=a.best.to_dict(orient="records"),
        ensemble_fits=a.ensemble_fits,
        two_step=a.two_step,
        efficiency=a.efficiency.to_dict(orient="records"),
        figures={k: v for k, v in figures.items() if v},
        tables=csvs,
        next_runs_spec=next_spec,
    )
    write_json(out / SUMMARY, summary)
    write_text(out / REPORT, render_html(name, summary, figures, a.headline, tables, csvs))
    summary["report"] = str((out / REPORT).resolve())
    return summary


def _design_next_runs(study_dir: Path, out: Path, a, results: dict):
    """The analysis with its next runs designed for its decision (decide/next_runs.py), and the spec that runs
    them (report/next_runs.toml; None when the rule's runs stand, with the reason in the headline)."""
    import dataclasses

    from repetita.decide.next_runs import model_numbers, plan_next, spec_with_runs
    from repetita.study.analysis import singles
    from repetita.study.driver import SPEC_NAME
    from repetita.study.spec import load_spec

    h = a.headline
    if not h.decided:
        return a, None
    spec = study_dir / SPEC_NAME
    try:
        if not spec.is_file():
            raise UserError(f"the study keeps no {SPEC_NAME} to build runs from")
        raw = load_spec(spec)
        plan = plan_next(a.law, h, singles(a.tidy), model_numbers(raw, results, a.tidy), tidy=a.tidy)
    except UserError as exc:
        reason = str(exc).rstrip(".")
        h = dataclasses.replace(h, next_method=f"{h.next_method}; not designed: {reason}")
        return dataclasses.replace(a, headline=h), None
    path = out / "next_runs.toml"
    write_text(path, spec_with_runs(spec.read_text(), plan, str(study_dir)))
    method = plan.method + "".join(f"; caveat: {w}" for w in plan.warnings)
    h = dataclasses.replace(h, next_runs=plan.runs, next_method=method + f"; run them with repetita run {path} "
                            f"--dir {study_dir}")
    return dataclasses.replace(a, headline=h), str(path)


def _sorted(df: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    keys = [k for k in keys if k in df.columns]
    return df.sort_values(keys).reset_index(drop=True) if keys and not df.empty else df


def _table_html(df: pd.DataFrame, table_id: str = "") -> str:
    if df.empty:
        return "<p><em>none</em></p>"
    return df.to_html(index=False, float_format=lambda v: f"{v:.4g}", border=0, classes="t",
                      table_id=table_id or None)


def _collapsed(title: str, body: str) -> str:
    return f"<details><summary>{title}</summary>{body}</details>"


def _fits_html(fits: dict) -> str:
    """Fits that pass their diagnostics as findings; the others folded under the reason."""
    from repetita.decide.decision import finding_problem

    items = []
    for k, v in fits.items():
        warn = "".join(f'<br><span class="warn">warning: {html.escape(w)}</span>' for w in v.get("warnings") or [])
        if v.get("error"):
            items.append(f"<li><b>{k}</b>: not fitted ({html.escape(v['error'])})</li>")
            continue
        body = (f"R^2 {v['r2']:.4f}, objective {v['objective']:.4g}, {v['n_rows']} runs "
                f"({v.get('excluded_past_turn') or 0} past their turning point left out); "
                + ", ".join(f"{p} = {x:.4g}" for p, x in v["params"].items()) + warn)
        problem = finding_problem(v)
        items.append(f"<li><b>{k}</b>: {body}</li>" if problem is None else
                     "<li>" + _collapsed(f"<b>{k}</b>: not a finding ({html.escape(problem)})", body) + "</li>")
    return f"<ul>{''.join(items)}</ul>"


def _two_step_html(ts: dict) -> str:
    from repetita.decide.decision import two_step_problem

    if "asymptote" not in ts:
        return f"<p><em>Two-step asymptote: {html.escape(ts['skipped'])}</em></p>"
    body = (f"<p>U = {ts['unique_tokens']:,.0f}, {ts['epochs']:g} epochs: K-asymptotes "
            + ", ".join(f"{g['E']:.4f} (N = {g['params']:,.0f}, R^2 {g['r2']:.2f})" for g in ts["groups"])
            + f"; along N: E_inf = {ts['asymptote']:.4g} (alpha {ts['outer_fit']['alpha']:.3g}, "
            f"R^2 {ts['outer_fit']['r2']:.2f})</p>")
    problem = two_step_problem(ts)
    return body if problem is None else _collapsed(f"Two-step asymptote: not a finding ({html.escape(problem)})", body)


def _interval(iv, fmt: str = ".3f") -> str:
    return f"{iv[0]:{fmt}}-{iv[1]:{fmt}}" if iv else "no interval"


def _headline_html(h) -> tuple[str, str, str]:
    """(decision table, caveats, next runs) of the first screen."""
    from repetita.cliargs import format_quantity

    if not h.rows:
        notes = "".join(f"<li>{html.escape(n)}</li>" for n in h.notes)
        return (f"<ul>{notes}</ul>" if notes else "", "", "<p><em>Nothing to suggest before the study has a decision.</em></p>")
    from repetita.decide.decision import best_text

    head = ("<tr><th>unique tokens U</th><th>compute C</th><th>recommendation</th><th>loss (95% prediction interval)</th>"
            "<th>gain vs standard (95% interval)</th><th>best measured at this U (at most C)</th>"
            "<th>measured at this U, up to (N, K, C)</th><th>outside the runs</th></tr>")
    body = "".join(
        f"<tr><td>{r.unique_tokens:,.0f}</td><td>{r.compute:.2g}</td><td>{html.escape(r.recipe)}, {format_quantity(r.params)} params, "
        f"{r.epochs:.3g} epochs{' (measured)' if r.source == 'measured' else ''}</td>"
        f"<td>{r.loss:.4f} ({'measured' if r.source == 'measured' else _interval(r.prediction_interval)})</td>"
        f"<td>{r.gain:.4f} ({_interval(r.gain_interval, '.4f')})</td><td>{html.escape(best_text(r.best))}</td>"
        f"<td>{format_quantity(r.evidence.params)}, {r.evidence.epochs:g}, {r.evidence.compute:.2g}</td>"
        + (f'<td class="out">{html.escape("; ".join(r.outside))}</td>' if r.outside else "<td>no</td>") + "</tr>"
        for r in h.rows)
    table = f'<table class="t" id="decision-table">{head}{body}</table>'
    caveats = ""
    if h.caveats:
        caveats = ("<p><b>Caveats that may change it</b> (most important first):</p><ol class=\"caveats\">"
                   + "".join(f'<li class="warn">{html.escape(c.line)}</li>' for c in h.caveats) + "</ol>")
    if h.more_caveats:
        caveats += _collapsed(f"{len(h.more_caveats)} more caveat(s)",
                              "<ul>" + "".join(f"<li>{html.escape(c.line)}</li>" for c in h.more_caveats) + "</ul>")
    if h.next_runs:
        runs = "".join(f"<li>N = {format_quantity(r.params)}, U = {r.unique_tokens:,.0f}, K = {r.epochs:.3g} "
                       f"(C = {r.compute:.2g} FLOPs): {html.escape(r.why)}</li>" for r in h.next_runs)
        nxt = f"<ol>{runs}</ol><p>{html.escape(h.next_method[0].upper() + h.next_method[1:])}.</p>"
    else:
        nxt = "<p>The decision lies inside the measured runs: no run is needed to check it.</p>"
    return table, caveats, nxt


def render_html(name: str, summary: dict, figures: dict, headline, tables: dict, csvs: dict) -> str:
    """The page, from the template beside this module (templates/report.html): the decision first."""
    from importlib import resources
    from string import Template

    def img(key: str, caption: str) -> str:
        if not figures.get(key):
            return f"<p><em>{html.escape(caption)}: not enough runs for this figure.</em></p>"
        return f'<figure><img src="{figures[key]}" alt="{key}"><figcaption>{html.escape(caption)}</figcaption></figure>'

    def folded(key: str, what: str) -> str:
        df = tables.get(key, pd.DataFrame())
        if df.empty:
            return f"<p><em>{what}: none.</em></p>"
        return _collapsed(f"{what}: {len(df)} rows (<a href=\"{csvs[key]}\">{csvs[key]}</a>)", _table_html(df))

    table, caveats, nxt = _headline_html(headline)
    eff = tables.get("efficiency", pd.DataFrame())
    cols = [c for c in ("recipe", "params", "unique_tokens", "loss", "effective_tokens", "tokens_per_unique_token")
            if c in eff]
    tables = dict(tables, efficiency=eff[cols] if not eff.empty else eff)
    page = Template((resources.files("repetita.study") / "templates" / "report.html").read_text())
    return page.substitute(
        title=html.escape(f"study {name!r}"), sentence=html.escape(headline.sentence), rows=table, caveats=caveats,
        next_runs=nxt, counts=", ".join(f"{k} {v}" for k, v in summary["counts"].items()), rows_count=summary["rows"],
        csv_links=", ".join(f'<a href="{f}">{f}</a>' for f in csvs.values()) or "none",
        other_budgets=img("plan", "the recommendation at every budget the study spans") if figures.get("plan") else "",
        plans_table=folded("plans", "The recommendation at every budget the study spans"),
        fig_loss_vs_epochs=img("loss_vs_epochs", "standard recipe; star = best epoch count; dashed: the study's "
                               "best-predicting law among those that pass their own diagnostics (the figure names "
                               "it, or says why none is drawn)"),
        fig_reuse_rate=img("reuse_rate", "fitted to the standard runs; only fits that pass their diagnostics are drawn"),
        fits=_fits_html(summary["fits"]),
        fig_recipes=img("recipes", "every recipe at the same epoch count per cell (ticks: each one's best at any "
                        "count)"), best=folded("best", "Best loss per recipe"),
        fig_ensembles=img("ensembles", "loss vs members M with fitted power law and asymptote (dotted) where the fit "
                          "holds"),
        two_step=_two_step_html(summary.get("two_step") or {"skipped": "no ensemble runs"}),
        reuse=_reuse_html(summary.get("reuse")), efficiency=folded("efficiency", "Data efficiency"))
