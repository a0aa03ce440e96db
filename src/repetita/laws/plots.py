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


MAX_GROUPS = 10  # fitted curves drawn on one panel; the other groups are grey points
BAND_SHARE = 0.5  # a band wider than this share of the data's loss range is not drawn (it would hide the runs)


def _log_axis(ax, which: str = "x") -> None:
    """Log scale with readable tick labels (5e+08 as 500M, 1e3 as 1k, 0.5 as 0.5) that never overlap: 1, 2
    and 5 per decade over at most two decades, decades alone up to eight, every other decade beyond."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    axis = ax.xaxis if which == "x" else ax.yaxis
    (ax.set_xscale if which == "x" else ax.set_yscale)("log")
    lo, hi = (ax.get_xlim() if which == "x" else ax.get_ylim())
    decades = np.log10(hi / lo) if lo > 0 and hi > lo else 1.0
    if decades <= 2:
        locator = LogLocator(subs=(1, 2, 5))
    elif decades <= 8:
        locator = LogLocator(subs=(1,))
    else:
        locator = LogLocator(base=100.0, subs=(1,))
    axis.set_major_locator(locator)
    axis.set_major_formatter(FuncFormatter(lambda v, _: format_quantity(v)))
    axis.set_minor_formatter(NullFormatter())


def _legend_outside(ax, **kw) -> None:
    """The legend beside the axes, never over the data."""
    handles, _ = ax.get_legend_handles_labels()
    if handles:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0, fontsize=7, **kw)


SHORT = {"params": "N", "unique_tokens": "U", "tokens": "D", "epochs": "K"}
MARKERS = "osD^v<>ph"


def _drawn_groups(curvable: list[bool], limit: int = MAX_GROUPS) -> set[int]:
    """Which groups (sorted by model size) get a fitted curve: the largest ones always (extrapolation is
    judged there), the smallest two, and the middle evenly; the rest of the middle are grey points."""
    idx = [i for i, ok in enumerate(curvable) if ok]
    if len(idx) <= limit:
        return set(idx)
    top = idx[-(limit // 2):]
    bottom = idx[:2]
    middle = [i for i in idx if i not in top and i not in bottom]
    k = limit - len(top) - len(bottom)
    picks = [middle[int(round(j))] for j in np.linspace(0, len(middle) - 1, k)] if k > 0 and middle else []
    return set(top) | set(bottom) | set(picks)


def _held_out_title(est, obs, pred, held) -> str:
    if held.any():
        err = float(np.mean(np.abs(np.log(pred[held] / obs[held]))))
        return (f"held-out mean |log residual| {err:.4f} on {int(held.sum())} runs (training R^2 "
                f"{est.r2_:.4f} on {int((~held).sum())})")
    return f"training R^2 = {est.r2_:.4f} on {int(len(obs))} runs (no held-out runs)"


def plot_fit(est, df: pd.DataFrame, path: str | Path, title: str = "", held_out=None, samples=None) -> Path:
    """Loss along the law's axis per group, coloured by model size on a sequential scale, with the fitted
    curves (and a band from parameter ``samples``, fit records drawn from the fit's uncertainty), beside
    observed vs predicted, and an isoFLOP view when the table holds several sizes per compute budget;
    ``held_out`` (a boolean mask over ``df``'s rows) marks rows the fit never saw, and the title then
    gives the held-out error."""
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
    # the groups: the law's other inputs (a Chinchilla table is not split by U), every other one for a law
    # along a named axis
    keys = [c for c in ("params", "unique_tokens") if c in df and c != axis and (c in law.columns or law.needs_axis)]
    groups = list(df.groupby(keys if len(keys) > 1 else keys[0]).groups.items()) if keys else [("all", df.index)]
    groups.sort(key=lambda g: g[0] if isinstance(g[0], tuple) else (g[0],))  # by N, then U: the legend in order
    iso = isoflop_groups(df) if {"params", "tokens"} <= set(df.columns) & set(law.columns) else []
    fig, axes = plt.subplots(1, 3 if iso else 2, figsize=(19 if iso else 13, 4.8), layout="constrained")
    a1, a2 = axes[0], axes[1]
    first = [(k if isinstance(k, tuple) else (k,))[0] for k, _ in groups]
    logn = np.log(np.asarray(first, dtype=float)) if keys and keys[0] == "params" else np.arange(len(groups), dtype=float)
    span_n = max(float(logn.max() - logn.min()), 1e-12)
    cmap = plt.get_cmap("viridis")
    curvable = [len(idx) >= 2 and x[np.asarray(idx)].max() > x[np.asarray(idx)].min() * (1 + 1e-9) for _, idx in groups]
    drawn = _drawn_groups(curvable)
    greyed = [gi for gi, ok in enumerate(curvable) if ok and gi not in drawn]  # the middle, beyond the limit
    span = obs.max() - obs.min()
    thetas = np.array([[float(r["params"][p]) for p in law.params] for r in samples]) if samples else None
    u_all = sorted(df["unique_tokens"].unique()) if "unique_tokens" in keys else []
    u_values = u_all if len(u_all) <= len(MARKERS) // 2 else []  # a marker per U only where few are told apart
    grey_label, cut = f"{len(greyed)} curves in the middle of the sizes not drawn (grey points)", 0
    for gi, (key, idx) in enumerate(groups):
        idx = np.asarray(idx)
        key = key if isinstance(key, tuple) else (key,)
        color = "0.78" if gi in greyed else cmap(0.9 * (logn[gi] - logn.min()) / span_n)
        marker = MARKERS[u_values.index(key[keys.index("unique_tokens")])] if u_values else "o"
        key = key if keys else ()
        label = (", ".join(f"{SHORT.get(k, k)} = {format_quantity(v)}" for k, v in zip(keys, key, strict=True))
                 or "all runs") if gi in drawn else None
        if gi in greyed and grey_label:
            label, grey_label = grey_label, None
        a1.scatter(x[idx][~held[idx]], obs[idx][~held[idx]], s=14, color=color, marker=marker, label=label,
                   zorder=3 if gi in drawn else 2)
        a1.scatter(x[idx][held[idx]], obs[idx][held[idx]], s=30, facecolors="none", edgecolors=color, marker=marker,
                   zorder=3)
        if gi not in drawn:
            continue
        grid = np.geomspace(x[idx].min(), x[idx].max(), 60)
        row = df.iloc[idx[0]]
        dense = pd.DataFrame({k: row[k] for k in keys} | {axis if axis != "epochs" else "tokens":
                                                         grid * row["unique_tokens"] if axis == "epochs" else grid})
        a1.plot(grid, est.predict(dense), color=color, lw=1.2)
        if samples:
            from repetita.laws.fit import prepare

            X, _, order = prepare(est.spec, dense.assign(loss=1.0))
            with np.errstate(all="ignore"):  # every draw at once: one vectorized evaluation of the law
                draws = np.full((len(thetas), len(dense)), np.nan)
                draws[:, order] = np.exp(law.func(thetas, X))
                band = np.nanquantile(np.where(np.isfinite(draws), draws, np.nan), [0.025, 0.975], axis=0)
            if np.nanmedian(band[1] - band[0]) > BAND_SHARE * span:
                cut += 1  # a band wider than half the data's range says "unknown", and would hide the runs
                continue
            a1.fill_between(grid, *band, color=color, alpha=0.15, lw=0)
    _log_axis(a1, "x")
    # the data set the loss range: a band that runs off (a poorly identified draw) is cut, not the data squeezed
    a1.set_ylim(obs.min() - 0.08 * span, obs.max() + 0.08 * span)
    note = (f"; {cut} band(s) wider than half the loss range not drawn" if cut else "")
    a1.set(xlabel={"epochs": "epochs K = D / U"}.get(axis, axis), ylabel="loss",
           title="runs and fitted curves, coloured by N" + (f" (band: 95% of parameter draws{note})" if samples else ""))
    if keys and keys[0] == "params" and len(groups) > 1:  # the colour scale itself, for the points without a curve
        from matplotlib.cm import ScalarMappable
        from matplotlib.colors import LogNorm, Normalize

        lo_n, hi_n = float(np.exp(logn.min())), float(np.exp(logn.min() + span_n / 0.9))
        norm = LogNorm(lo_n, hi_n) if hi_n > lo_n else Normalize(lo_n, lo_n + 1)
        bar = a1.figure.colorbar(ScalarMappable(norm, cmap), ax=a1, location="left", pad=0.01, fraction=0.04)
        bar.set_label("model size N (every point)", fontsize=7)
        bar.ax.tick_params(labelsize=7)
    if u_values and len(u_values) > 1:
        for j, u in enumerate(u_values[:len(MARKERS)]):
            a1.scatter([], [], s=14, color="k", marker=MARKERS[j], label=f"marker: U = {format_quantity(u)}")
    if held.any():
        a1.scatter([], [], s=30, facecolors="none", edgecolors="k", label="held out")
    _legend_outside(a1)
    a2.scatter(obs[~held], pred[~held], s=14, color="C0", label="fitted rows")
    if held.any():
        a2.scatter(obs[held], pred[held], s=30, facecolors="none", edgecolors="C3", label="held out")
    lo, hi = min(obs.min(), pred.min()), max(obs.max(), pred.max())
    a2.plot([lo, hi], [lo, hi], "k--", lw=1)
    a2.set(xlabel="observed loss", ylabel="predicted loss", title="observed vs predicted")
    a2.set(xlim=(lo * 0.97, hi * 1.03), ylim=(lo * 0.97, hi * 1.03))
    _log_axis(a2, "x")
    _log_axis(a2, "y")
    a2.legend(fontsize=8)
    if iso:
        _isoflop_panel(axes[2], est, df, obs, iso)
    fig.suptitle((title + ": " if title else f"{est.law} law: ") + _held_out_title(est, obs, pred, held))
    return _save(fig, path)


def isoflop_groups(df: pd.DataFrame, width: float = 0.05, min_sizes: int = 3) -> list[tuple[float, np.ndarray]]:
    """(compute, row indices) of each isoFLOP budget: runs whose C = 6 N D agree within ``width`` decades,
    kept when they hold at least ``min_sizes`` model sizes; an empty list unless two budgets qualify."""
    from repetita.laws.data import FLOPS_PER_PARAM_TOKEN

    c = FLOPS_PER_PARAM_TOKEN * df["params"].to_numpy(dtype=float) * df["tokens"].to_numpy(dtype=float)
    if not np.all(np.isfinite(c) & (c > 0)):
        return []
    if "unique_tokens" in df.columns:  # runs that repeated their data are not on an isoFLOP curve of fresh data
        fresh = df["tokens"].to_numpy(dtype=float) <= df["unique_tokens"].to_numpy(dtype=float) * (1 + 1e-6)
        c = np.where(fresh, c, np.nan)
    logc = np.log10(c)
    order = np.argsort(logc)[: int(np.isfinite(logc).sum())]
    out, start = [], 0
    for i in range(1, len(order) + 1):  # a new budget where the sorted log C jumps by more than the width
        if i == len(order) or logc[order[i]] - logc[order[i - 1]] > width:
            idx = order[start:i]
            if df["params"].iloc[idx].nunique() >= min_sizes:
                out.append((float(10 ** np.median(logc[idx])), idx))
            start = i
    return out if len(out) >= 2 else []


def _isoflop_panel(ax, est, df: pd.DataFrame, obs: np.ndarray, iso) -> None:
    """Loss against N along each compute budget, with the law's valley and its minimum N*(C) joined."""
    from repetita.laws.data import FLOPS_PER_PARAM_TOKEN

    cmap = _plt().get_cmap("plasma")
    stars = []
    for i, (c, idx) in enumerate(iso):
        color = cmap(0.85 * i / max(len(iso) - 1, 1))
        n = df["params"].to_numpy(dtype=float)[idx]
        ax.scatter(n, obs[idx], s=14, color=color, label=f"C = {format_quantity(c)}")
        grid = np.geomspace(n.min() / 1.5, n.max() * 1.5, 80)
        d = c / (FLOPS_PER_PARAM_TOKEN * grid)
        row = {"params": grid, "tokens": d}
        if "unique_tokens" in df.columns:  # one pass over fresh data, as the runs of the budget
            row["unique_tokens"] = d
        loss = est.predict(pd.DataFrame(row))
        ax.plot(grid, loss, color=color, lw=1.1)
        k = int(np.argmin(loss))
        if 0 < k < len(grid) - 1:  # a minimum at the edge of the sizes drawn is no valley
            stars.append((grid[k], loss[k]))
    if stars:
        sx, sy = zip(*stars, strict=True)
        ax.plot(sx, sy, "k*--", ms=9, lw=0.8, label="law's N*(C)")
    ax.set(xlabel="parameters N", ylabel="loss", title="isoFLOP view: loss along each compute budget")
    _log_axis(ax, "x")
    _legend_outside(ax)


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
    # repeats worth less than one pass (K > 1; E(1) = 1 by definition, up to rounding): the loss after K epochs
    # is above the one-epoch run's
    below = table[(table["reuse_rate"] < 1 - 1e-6) & (table["epochs"] > 1 + 1e-9)]
    if len(below):
        ylim = a1.get_ylim()
        a1.axhspan(ylim[0], 1.0, color="C3", alpha=0.07, lw=0)
        a1.set_ylim(ylim)
        ks_below = ", ".join(f"{k:g}" for k in sorted(below["epochs"].unique())[:4])
        a1.text(0.02, 0.03, f"E < 1 at K = {ks_below} ({len(below)} of {len(table)} points): K epochs end worse\n"
                "than one fresh pass over U would (the loss rose again; overfitting)", transform=a1.transAxes,
                fontsize=7, color="C3", va="bottom")
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
