"""Figures for fitted laws (matplotlib, Agg backend; imported only when a plot is asked for)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


def _plt():
    from repetita.io import plt

    return plt()


def _save(fig, path: str | Path) -> Path:
    from repetita.io import save_figure

    return save_figure(fig, path, dpi=120, bbox_inches="tight")


def plot_fit(est, df: pd.DataFrame, path: str | Path, title: str = "") -> Path:
    """Observed vs predicted loss, and the relative residual along the main data axis."""
    plt = _plt()
    df = df.reset_index(drop=True)
    pred = est.predict(df)
    obs = pd.to_numeric(df["loss"] if "loss" in df else df["val_loss"]).to_numpy()
    law = est.spec.law_obj
    if law.curves:
        return _plot_curves(df, pred, path, title)
    axis = law.plot_axis(est.spec.axis, df.columns)
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4), layout="constrained")
    color = np.log10(df["params"]) if "params" in df else None
    sc = a1.scatter(obs, pred, c=color, s=14, cmap="viridis")
    lo, hi = min(obs.min(), pred.min()), max(obs.max(), pred.max())
    a1.plot([lo, hi], [lo, hi], "k--", lw=1)
    a1.set(xlabel="observed loss", ylabel="predicted loss", xscale="log", yscale="log")
    if color is not None:
        fig.colorbar(sc, ax=a1, label="log10 params")
    a2.scatter(df[axis], pred / obs - 1, c=color, s=14, cmap="viridis")
    a2.axhline(0, color="k", lw=1)
    a2.set(xlabel=axis, ylabel="relative error", xscale="log")
    fig.suptitle(title or f"{est.law}: R^2 = {est.r2_:.4f}")
    return _save(fig, path)


def _plot_curves(df, pred, path, title):
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 5))
    curves = df["curve"].astype(str) if "curve" in df else pd.Series(["curve"] * len(df))
    for i, name in enumerate(pd.unique(curves)):
        m = (curves == name).to_numpy()
        order = np.argsort(df["step"].to_numpy()[m])
        steps = df["step"].to_numpy()[m][order]
        ax.plot(steps, df["loss"].to_numpy()[m][order], color=f"C{i}", lw=1, alpha=0.6, label=name)
        ax.plot(steps, pred[m][order], color=f"C{i}", lw=1.5, ls="--")
    ax.set(xlabel="step", ylabel="loss (solid: observed, dashed: law)")
    ax.legend(fontsize=7)
    fig.suptitle(title or "multi-power law")
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
