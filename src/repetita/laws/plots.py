"""Figures for fitted laws (matplotlib, Agg backend; imported only when a plot is asked for)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from repetita.cliargs import format_quantity


def _plt():
    from repetita.io import plt

    return plt()


def _save(fig, path: str | Path) -> Path:
    from repetita.io import save_figure

    return save_figure(fig, path, dpi=120, bbox_inches="tight")


MAX_GROUPS = 10  # fitted curves drawn on one panel; more groups are shown as points only


def _log_axis(ax, which: str = "x") -> None:
    """Log scale with readable tick labels (5e+08 as 500M, 1e3 as 1k, 0.5 as 0.5)."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    axis = ax.xaxis if which == "x" else ax.yaxis
    (ax.set_xscale if which == "x" else ax.set_yscale)("log")
    lo, hi = (ax.get_xlim() if which == "x" else ax.get_ylim())
    wide = lo > 0 and hi / lo > 1e4  # over many decades 2 and 5 crowd the labels: decades only
    axis.set_major_locator(LogLocator(subs=(1,) if wide else (1, 2, 5)))
    axis.set_major_formatter(FuncFormatter(lambda v, _: format_quantity(v)))
    axis.set_minor_formatter(NullFormatter())


def _legend_outside(ax, **kw) -> None:
    """The legend beside the axes, never over the data."""
    handles, _ = ax.get_legend_handles_labels()
    if handles:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0, fontsize=7, **kw)


SHORT = {"params": "N", "unique_tokens": "U", "tokens": "D", "epochs": "K"}


def plot_fit(est, df: pd.DataFrame, path: str | Path, title: str = "", held_out=None, samples=None) -> Path:
    """Loss along the law's axis per group with the fitted curves (and a band from parameter ``samples``,
    fit records drawn from the fit's uncertainty), beside observed vs predicted; ``held_out`` (a boolean
    mask over ``df``'s rows) marks rows the fit never saw."""
    plt = _plt()
    df = df.reset_index(drop=True)
    law = est.spec.law_obj
    held = np.zeros(len(df), dtype=bool) if held_out is None else np.asarray(held_out, dtype=bool)
    pred = est.predict(df)
    if law.curves:
        return _plot_curves(df, pred, path, title, held)
    obs = pd.to_numeric(df["loss"] if "loss" in df else df["val_loss"]).to_numpy()
    axis = "epochs" if "unique_tokens" in law.columns and "unique_tokens" in df else law.plot_axis(est.spec.axis, df.columns)
    x = (df["tokens"] / df["unique_tokens"]).to_numpy() if axis == "epochs" else df[axis].to_numpy(dtype=float)
    keys = [c for c in ("params", "unique_tokens") if c in df and c != axis]
    groups = list(df.groupby(keys).groups.items()) if keys else [("all", df.index)]
    groups.sort(key=lambda g: -len(g[1]))
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(13, 4.8), layout="constrained")
    for gi, (key, idx) in enumerate(groups):
        idx = np.asarray(idx)
        color = f"C{gi % 10}" if gi < MAX_GROUPS else "0.7"
        label = None
        if gi < MAX_GROUPS:
            label = ", ".join(f"{SHORT.get(k, k)} = {format_quantity(v)}"
                              for k, v in zip(keys, key if isinstance(key, tuple) else (key,), strict=True))
        elif gi == MAX_GROUPS:
            label = f"{len(groups) - MAX_GROUPS} more groups (points only)"
        a1.scatter(x[idx][~held[idx]], obs[idx][~held[idx]], s=14, color=color, label=label)
        a1.scatter(x[idx][held[idx]], obs[idx][held[idx]], s=30, facecolors="none", edgecolors=color)
        if gi >= MAX_GROUPS or len(idx) < 2 or x[idx].max() <= x[idx].min() * (1 + 1e-9):
            continue  # one x value: a curve or band there would be a vertical bar, not a curve
        grid = np.geomspace(x[idx].min(), x[idx].max(), 60)
        row = df.iloc[idx[0]]
        dense = pd.DataFrame({k: row[k] for k in keys} | {axis if axis != "epochs" else "tokens":
                                                         grid * row["unique_tokens"] if axis == "epochs" else grid})
        a1.plot(grid, est.predict(dense), color=color, lw=1.2)
        if samples:
            from repetita.laws.fit import LawFit

            band = np.array([LawFit.from_result(s).predict(dense) for s in samples])
            a1.fill_between(grid, *np.nanquantile(band, [0.025, 0.975], axis=0), color=color, alpha=0.15, lw=0)
    _log_axis(a1, "x")
    # the data set the loss range: a band that runs off (a poorly identified draw) is cut, not the data squeezed
    span = obs.max() - obs.min()
    a1.set_ylim(obs.min() - 0.08 * span, obs.max() + 0.08 * span)
    a1.set(xlabel={"epochs": "epochs K = D / U"}.get(axis, axis), ylabel="loss",
           title="runs and fitted curves" + (" (band: 95% of parameter draws)" if samples else ""))
    if held.any():
        a1.scatter([], [], s=30, facecolors="none", edgecolors="k", label="held out")
    _legend_outside(a1)
    a2.scatter(obs[~held], pred[~held], s=14, color="C0", label="fitted rows")
    if held.any():
        a2.scatter(obs[held], pred[held], s=30, facecolors="none", edgecolors="C3", label="held out")
    lo, hi = min(obs.min(), pred.min()), max(obs.max(), pred.max())
    a2.plot([lo, hi], [lo, hi], "k--", lw=1)
    a2.set(xlabel="observed loss", ylabel="predicted loss", title="observed vs predicted")
    _log_axis(a2, "x")
    _log_axis(a2, "y")
    a2.legend(fontsize=8)
    fig.suptitle(title or f"{est.law} law fitted to {int((~held).sum())} runs: R^2 = {est.r2_:.4f}")
    return _save(fig, path)


def _plot_curves(df, pred, path, title, held):
    """Multi-power: one colour per schedule; solid observed, dashed law; held-out schedules named so."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(9, 5.5), layout="constrained")
    curves = df["curve"].astype(str) if "curve" in df else pd.Series(["curve"] * len(df))
    for i, name in enumerate(pd.unique(curves)):
        m = (curves == name).to_numpy()
        order = np.argsort(df["step"].to_numpy()[m])
        steps = df["step"].to_numpy()[m][order]
        tag = " (held out)" if held[m].all() else " (fitted)"
        ax.plot(steps, df["loss"].to_numpy()[m][order], color=f"C{i % 10}", lw=1, alpha=0.5, label=name + tag)
        ax.plot(steps, pred[m][order], color=f"C{i % 10}", lw=1.6, ls="--" if held[m].all() else "-")
    ax.set(xlabel="step", ylabel="loss")
    ax.legend(fontsize=7, title="thin: observed; law solid where fitted,\ndashed on held-out schedules",
              title_fontsize=7)
    model = f" {df['model'].iloc[0]}" if "model" in df else ""
    fig.suptitle(title or f"multi-power law{model}")
    return _save(fig, path)


def plot_plan(table: pd.DataFrame, summary: dict, path: str | Path) -> Path:
    """Reuse rate and predicted loss against epochs for one (N, U)."""
    plt = _plt()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4), layout="constrained")
    k = table["epochs"]
    a1.plot(k, table["reuse_rate"], "o-", label="E(K) = D'/U")
    a1.plot(k, k, "k--", lw=1, label="E = K (fresh data)")
    a1.axhline(summary["plateau_reuse_rate"], color="gray", ls=":", label="plateau 1 + R_D*")
    a1.set(xlabel="epochs K", ylabel="effective reuse rate", xscale="log", yscale="log")
    a1.legend(fontsize=8)
    a2.plot(k, table["loss"], "o-")
    a2.set(xlabel="epochs K", ylabel="predicted loss", xscale="log")
    fig.suptitle(f"{summary['law']}: N = {summary['params']:.3g}, U = {summary['unique_tokens']:.3g}")
    return _save(fig, path)


def plot_predicted(curve: pd.DataFrame, name: str, path: str | Path) -> Path:
    """A predicted loss curve over its LR schedule."""
    plt = _plt()
    fig, (a1, a2) = plt.subplots(2, 1, figsize=(7, 5.5), sharex=True, layout="constrained")
    a1.plot(curve["step"], curve["lr"], color="C1")
    a1.set(ylabel="learning rate", title=f"multi-power law prediction for {name}")
    a2.plot(curve["step"], curve["loss"], color="C0")
    a2.set(xlabel="step", ylabel="predicted loss")
    return _save(fig, path)


def _contour_labels(ax, cs) -> None:
    """Contour labels that name distinct levels, sit on unbroken lines and stay inside the axes."""
    levels = np.asarray(cs.levels, dtype=float)
    gaps = np.diff(levels)
    digits = int(np.clip(np.ceil(-np.log10(gaps[gaps > 0].min())) + 1, 2, 6)) if (gaps > 0).any() else 3
    # one label per level, at the point of its line farthest from every edge of the axes (a label near an
    # edge is cut), drawn over the line on a white box instead of breaking it
    to_axes = ax.transAxes.inverted()
    positions = []
    for segs in cs.allsegs:
        pts = np.concatenate([seg for seg in segs if len(seg)]) if any(len(seg) for seg in segs) else None
        if pts is None:
            continue
        a = to_axes.transform(ax.transData.transform(pts))
        margin = np.minimum.reduce([a[:, 0], 1 - a[:, 0], a[:, 1], 1 - a[:, 1]])
        best = int(np.argmax(margin))
        if margin[best] > 0.06:
            positions.append(tuple(pts[best]))
    texts = ax.clabel(cs, fontsize=7, fmt=f"%.{digits}f", inline=False, manual=positions) if positions else []
    for t in texts:
        t.set_bbox({"facecolor": "white", "edgecolor": "none", "pad": 0.6, "alpha": 0.8})


def _contours(ax, name: str, est, allocation: dict) -> None:
    from repetita.laws.evaluate import predicted_loss

    n_opt, d_opt, u = allocation["params"], allocation["tokens"], allocation["unique_tokens"]
    n = np.geomspace(n_opt / 30, n_opt * 30, 160)
    d = np.geomspace(min(d_opt, u) / 30, max(d_opt, u) * 30, 160)
    nn, dd = np.meshgrid(n, d)
    loss = predicted_loss(est, nn, dd, u)
    finite = loss[np.isfinite(loss)]
    # evenly spaced in log loss from near the lowest to the 90th percentile: quantile levels clump where the
    # surface is flat (a reuse law's plateau) and their labels collide
    lo_hi = np.quantile(finite, [0.03, 0.9]) if finite.size else None
    levels = np.unique(np.geomspace(*lo_hi, 10)) if lo_hi is not None and lo_hi[1] > lo_hi[0] else []
    ax.set(xlim=(n[0], n[-1]), ylim=(d[0], d[-1]))
    _log_axis(ax, "x")  # the scales first: the labels are placed in the axes' own coordinates
    _log_axis(ax, "y")
    if len(levels) >= 2:
        _contour_labels(ax, ax.contour(nn, dd, loss, levels=levels, cmap="viridis", linewidths=0.9))
    k = allocation["flops_per_token"]
    ax.plot(n, allocation["compute"] / (k * n), "k-", lw=1.2, label=f"compute line C = {allocation['compute']:.3g}")
    ax.axhline(u, color="C3", ls="--", lw=1, label=f"unique data D = U = {format_quantity(u)}")
    ax.plot(n_opt, d_opt, "r*", ms=14, label=f"optimum: N = {format_quantity(n_opt)}, D = {format_quantity(d_opt)}, {d_opt / u:.3g} epochs")
    nv = allocation["naive"]
    ax.plot(nv["params"], nv["tokens"], "kx", ms=9, label="naive Chinchilla allocation")
    ax.set(xlim=(n[0], n[-1]), ylim=(d[0], d[-1]))
    ax.set(xlabel="parameters N", ylabel="tokens D", title=f"{name}: predicted loss")
    ax.legend(fontsize=7, loc="lower left", framealpha=0.9)


def plot_allocation(laws, path: str | Path, frontier: dict | None = None, recipes: dict | None = None) -> Path:
    """Iso-loss contours over (N, D) with the compute line, the unique-data line D = U and the optimum
    (the datablations figure style), one panel per law (``laws``: (name, fit, allocation dict) each);
    beside them, the frontier L*(C) of the first law per recipe, with the interval bands of the fit's
    draws, when a budget range was planned."""
    from repetita.laws.record import estimator

    plt = _plt()
    ncols = len(laws) + (1 if frontier else 0)
    fig, axes = plt.subplots(1, ncols, figsize=(6.2 * ncols, 5), layout="constrained", squeeze=False)
    for ax, (name, fit, allocation) in zip(axes[0], laws, strict=False):
        _contours(ax, name, estimator(fit), allocation)
    if frontier:
        ax2 = axes[0][-1]
        u = laws[0][2]["unique_tokens"]
        rows = frontier["rows"]
        c = [r["compute"] for r in rows]
        ax2.plot(c, [r["loss"] for r in rows], "o-", color="C0", ms=3, label="standard L*(C)")
        bands = frontier.get("bands")
        if bands:
            lo, hi = np.array(bands["loss"]).T
            ax2.fill_between(c, lo, hi, color="C0", alpha=0.2, label=f"{100 * bands['level']:g}% ({bands['samples']} draws)")
        for i, (name, r) in enumerate((recipes or {}).get("recipes", {}).items()):
            if name == "standard" or "error" in r:
                continue
            ax2.plot(c, [x["loss"] for x in r["rows"]], "-", color=f"C{i + 1}", label=f"{name} (m = {r['efficiency']:.3g})")
            if "loss_interval" in r["rows"][0]:
                lo, hi = np.array([x["loss_interval"] for x in r["rows"]]).T
                ax2.fill_between(c, lo, hi, color=f"C{i + 1}", alpha=0.15)
            ax2.axhline(r["asymptote"], color=f"C{i + 1}", ls=":", lw=0.8)
        ax2.axhline(frontier["loss_limit"], color="gray", ls=":", label=f"limit {frontier['loss_limit']:.4f}")
        if frontier["data_wall"]:
            ax2.axvline(frontier["data_wall"], color="C3", ls="--", lw=1, label="data wall")
        _log_axis(ax2, "x")
        ax2.set(xlabel="compute C (FLOPs)", ylabel="optimal predicted loss",
                title=f"{laws[0][0]}: frontier on U = {format_quantity(u)}")
        _legend_outside(ax2)
    return _save(fig, path)


def plot_reuse(table: pd.DataFrame, kstar: pd.DataFrame, fit: dict | None, lam: float, path: str | Path) -> Path:
    """E(K, U) against K with the line E = K (Yan et al.'s figure) and, where several K were measured per U,
    K*(U) with its log fit beside it. With one K per U (curves of runs that each set their own U), the
    points are joined per model size (and corpus) instead; more than ten series share one legend entry."""
    plt = _plt()
    several_k = table.groupby("unique_tokens")["epochs"].nunique().max() > 1
    k = kstar.dropna(subset=["k_star"])
    with_kstar = several_k and k["unique_tokens"].nunique() >= 2
    fig, axes = plt.subplots(1, 2 if with_kstar else 1, figsize=(12 if with_kstar else 7, 4.5),
                             layout="constrained", squeeze=False)
    a1 = axes[0][0]
    keys = ["unique_tokens"] if several_k else [c for c in ("params", "corpus") if c in table] or ["unique_tokens"]
    groups = list(table.groupby(keys))
    many = len(groups) > 10
    for i, (key, g) in enumerate(groups):
        g = g.groupby("epochs", as_index=False)["reuse_rate"].mean()
        key = key if isinstance(key, tuple) else (key,)
        label = ", ".join(f"{SHORT.get(c, c)} = {format_quantity(v) if not isinstance(v, str) else v}"
                          for c, v in zip(keys, key, strict=True))
        color = plt.get_cmap("viridis")(i / max(len(groups) - 1, 1)) if many else f"C{i % 10}"
        a1.plot(g["epochs"], g["reuse_rate"], "o-", color=color, ms=4,
                label=None if many and i not in (0, len(groups) - 1) else label)
    ks = np.geomspace(table["epochs"].min(), table["epochs"].max(), 50)
    a1.plot(ks, ks, "k--", lw=1, label="E = K (fresh data)")
    a1.plot(ks, lam * ks, "k:", lw=1, label=f"E = {lam:g} K")
    _log_axis(a1, "x")
    _log_axis(a1, "y")
    by = " per U" if several_k else " per " + " and ".join(SHORT.get(c, c) for c in keys)
    a1.set(xlabel="epochs K", ylabel="effective reuse rate E(K, U)",
           title=f"E(K, U): fresh tokens the repeats are worth, / U{by}"
           + (f" ({len(groups)} series; first and last labelled)" if many else ""))
    _legend_outside(a1)
    if with_kstar:
        a2 = axes[0][1]
        a2.plot(k["unique_tokens"], k["k_star"], "o", label="measured K*")
        if fit:
            u = np.geomspace(k["unique_tokens"].min(), k["unique_tokens"].max(), 50)
            a2.plot(u, fit["A"] * np.log(u) + fit["B"], "-",
                    label=f"K* = {fit['A']:.2f} ln U + {fit['B']:.2f} (A in [{fit['A_interval'][0]:.2f}, "
                          f"{fit['A_interval'][1]:.2f}])")
        _log_axis(a2, "x")
        a2.set(xlabel="unique tokens U", ylabel=f"K* (largest K with E >= {lam:g} K)", title="phase-transition epoch K*(U)")
        a2.legend(fontsize=8)
    return _save(fig, path)
