"""The plan's figure: iso-loss contours over (N, D) per law, with the compute line, the unique-data line,
the optimum and the runs the fit rests on, beside the frontier L*(C) of every law (``plan --plot``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from repetita.cliargs import format_quantity
from repetita.laws.plots import _log_axis, _plt, _save


def _legend_below(ax) -> None:
    """The legend under the axes in two columns: beside them it would squeeze the panel."""
    handles, _ = ax.get_legend_handles_labels()
    if handles:
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2, fontsize=7, frameon=False)


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
    runs = np.asarray(est.runs_ or [], dtype=float).reshape(-1, 4)
    # the panel spans the optimum and the runs the fit rests on (up to 1e4x below it), so both are in view
    n_lo = min(n_opt / 30, max(runs[:, 0].min() / 2, n_opt / 1e4)) if len(runs) else n_opt / 30
    d_lo = min(min(d_opt, u) / 30, max(runs[:, 1].min() / 2, min(d_opt, u) / 1e4)) if len(runs) else min(d_opt, u) / 30
    n = np.geomspace(n_lo, n_opt * 30, 160)
    d = np.geomspace(d_lo, max(d_opt, u) * 30, 160)
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
    _runs_and_region(ax, est)
    ax.set(xlim=(n[0], n[-1]), ylim=(d[0], d[-1]))
    ax.set(xlabel="parameters N", ylabel="tokens D", title=f"{name}: predicted loss")
    _legend_below(ax)


def _runs_and_region(ax, est) -> None:
    """The fitted runs (grey points) and the box of their evidence region (largest N and D fitted)."""
    runs = np.asarray(est.runs_ or [], dtype=float).reshape(-1, 4)
    region = est.region_ or {}
    if len(runs):
        ax.scatter(runs[:, 0], runs[:, 1], s=6, color="0.35", zorder=4, label=f"fitted runs ({len(runs)})")
    if region.get("params") and region.get("tokens"):
        n0 = runs[:, 0].min() if len(runs) else ax.get_xlim()[0]
        d0 = runs[:, 1].min() if len(runs) else ax.get_ylim()[0]
        n1, d1 = region["params"], region["tokens"]
        ax.plot([n0, n1, n1, n0, n0], [d0, d0, d1, d1, d0], color="0.35", ls=":", lw=1,
                label=f"fitted region (N <= {format_quantity(n1)}, D <= {format_quantity(d1)})")
    elif not len(runs):
        ax.text(0.02, 0.02, "the fit file stores no runs or region", transform=ax.transAxes, fontsize=7)


def plot_allocation(laws, path: str | Path, frontiers: list | None = None, recipes: dict | None = None) -> Path:
    """Iso-loss contours over (N, D) with the compute line, the unique-data line D = U, the optimum and the
    fitted runs (the datablations figure style), one panel per law (``laws``: (name, fit, allocation dict)
    each); beside them, when a budget range was planned, the frontier L*(C) of every law (``frontiers``:
    (name, frontier dict) each) with the interval bands of its draws, and the first law's recipes."""
    from repetita.laws.record import estimator

    plt = _plt()
    ncols = len(laws) + (1 if frontiers else 0)
    fig, axes = plt.subplots(1, ncols, figsize=(6.2 * ncols, 6.2), layout="constrained", squeeze=False)
    for ax, (name, fit, allocation) in zip(axes[0], laws, strict=False):
        _contours(ax, name, estimator(fit), allocation)
    if frontiers:
        ax2 = axes[0][-1]
        u = laws[0][2]["unique_tokens"]
        for i, (name, frontier) in enumerate(frontiers):
            rows = frontier["rows"]
            c = np.array([r["compute"] for r in rows])
            loss = np.array([np.nan if r.get("withheld") else r["loss"] for r in rows], dtype=float)
            ax2.plot(c, loss, "o-", color=f"C{i}", ms=3, label=f"{name}: L*(C)")
            ax2.plot(c, [r["loss"] for r in rows], ":", color=f"C{i}", lw=0.8)  # the law's own optimum beyond the region
            bands = frontier.get("bands")
            if bands:
                lo, hi = np.array(bands["loss"]).T
                ax2.fill_between(c, lo, hi, color=f"C{i}", alpha=0.15,
                                 label=f"{name}: {100 * bands['level']:g}% ({bands['samples']} draws)")
            ax2.axhline(frontier["loss_limit"], color=f"C{i}", ls="--", lw=0.6,
                        label=f"{name}: limit {frontier['loss_limit']:.4f}")
            if frontier.get("data_wall"):
                ax2.axvline(frontier["data_wall"], color=f"C{i}", ls="-.", lw=0.8, label=f"{name}: data wall")
        for i, (name, r) in enumerate((recipes or {}).get("recipes", {}).items()):
            if name == "standard" or "error" in r:
                continue
            c = [x["compute"] for x in r["rows"]]
            ax2.plot(c, [x["loss"] for x in r["rows"]], "-", color=f"C{len(frontiers) + i}",
                     label=f"{frontiers[0][0]}, {name} (m = {r['efficiency']:.3g})")
            if "loss_interval" in r["rows"][0]:
                lo, hi = np.array([x["loss_interval"] for x in r["rows"]]).T
                ax2.fill_between(c, lo, hi, color=f"C{len(frontiers) + i}", alpha=0.15)
        _log_axis(ax2, "x")
        ax2.set(xlabel="compute C (FLOPs)", ylabel="optimal predicted loss",
                title=f"frontier on U = {format_quantity(u)} (dotted: beyond the trust region, no plan)")
        _legend_below(ax2)
    return _save(fig, path)
