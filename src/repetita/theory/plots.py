"""Figures of a reuse table: E(K, N) against K, and R*(K, N) against its two asymptotic forms."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from repetita.io import plt as pyplot
from repetita.io import save_figure


def plot_reuse(result, path: str | Path) -> Path:
    """Two panels: E vs K per N (with E = K and the fitted plateau C log N), and N R*(K, N) vs K with
    C1 N log(KN)/(KN) and C2.  Written as PNG; returns the path."""
    plt = pyplot()

    cfg = result.config
    Ks = np.asarray(cfg.Ks, dtype=float)
    Ns = np.asarray(cfg.Ns, dtype=float)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.3))
    colors = plt.cm.viridis(np.linspace(0.0, 0.85, len(Ns)))
    plateau = result.plateau.get("affine") or result.plateau.get("proportional")
    for a, (N, col) in enumerate(zip(Ns, colors, strict=True)):
        ax1.errorbar(Ks, result.E[a], yerr=result.E_se[a], marker="o", ms=3, color=col, capsize=2,
                     label=f"N = {N:.0e}")
        if plateau:
            level = plateau["C"] * np.log(N) + plateau["offset"]
            ax1.axhline(level, color=col, ls=":", lw=1)
        ax2.errorbar(Ks, result.risk[a] * N, yerr=result.risk[a] * N * result.risk_se[a], marker="o", ms=3,
                     color=col, capsize=2, label=f"N = {N:.0e}")
        c1 = result.asymptotes.get("C1", float("nan"))
        if np.isfinite(c1):
            kk = np.geomspace(Ks[0], Ks[-1], 100)
            ax2.plot(kk, c1 * np.log(kk * N) / kk, color=col, ls="--", lw=1)
    ax1.plot(Ks, Ks, color="gray", lw=1, label="E = K")
    ax1.set(xscale="log", yscale="log", xlabel="epochs K", ylabel="effective reuse E(K, N) = N'/N",
            title="E(K, N); dotted: plateau fit" if plateau else "E(K, N)")
    ax1.legend(fontsize=8)
    ax2.axhline(result.asymptotes["C2"], color="black", ls=":", lw=1, label=f"C2 = {result.asymptotes['C2']:.3g}")
    ax2.set(xscale="log", yscale="log", xlabel="epochs K", ylabel="N R*(K, N)",
            title=f"dashed: C1 log(KN)/(KN), C1 = {result.asymptotes.get('C1', float('nan')):.3g}")
    ax2.legend(fontsize=8)
    fig.suptitle(f"multi-epoch SGD, spectrum {cfg.spectrum}, d = {cfg.d}, sigma = {cfg.sigma:g}, "
                 f"replicates {cfg.replicates}", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path, dpi=120)


def plot_onepass_check(problem, eta_fracs=(0.05, 0.2, 0.6), n_max: int = 2000, replicates: int = 2000,
                       path: str | Path = "theory_onepass.png", seed: int = 0) -> dict:
    """Exact one-pass risk curves R(1, n; eta) with Monte Carlo points (+- 2 s.e.) on top.

    Returns the largest |MC - exact| / s.e. over the plotted points, and writes the PNG."""
    plt = pyplot()

    from repetita.theory.exact import eta_max, one_pass_risk
    from repetita.theory.simulate import SimConfig, simulate

    top = eta_max(problem)
    ns = np.unique(np.geomspace(4, n_max, 9).astype(int))
    fig, ax = plt.subplots(figsize=(6, 4.2))
    worst = 0.0
    for f in eta_fracs:
        eta = f * top
        grid = np.arange(0, n_max + 1)
        line, = ax.plot(grid[1:], one_pass_risk(problem, eta, grid[1:]), lw=1, label=f"exact, eta = {f:g} eta_max")
        mc, se = [], []
        for n in ns:
            r = simulate(problem, SimConfig(N=int(n), epochs=(1,), etas=(eta,), replicates=replicates, seed=seed))[:, 0, 0]
            mc.append(r.mean())
            se.append(r.std(ddof=1) / np.sqrt(r.size))
        mc, se = np.array(mc), np.array(se)
        worst = max(worst, float(np.max(np.abs(mc - one_pass_risk(problem, eta, ns)) / se)))
        ax.errorbar(ns, mc, yerr=2 * se, fmt="o", ms=3, color=line.get_color(), capsize=2)
    ax.set(xscale="log", yscale="log", xlabel="one-pass steps n", ylabel="excess risk",
           title=f"exact one-pass risk vs Monte Carlo ({replicates} replicates)\n"
                 f"spectrum {problem.spectrum}, d = {problem.d}, sigma = {problem.sigma:g}, {problem.design}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path, dpi=120)
    return {"max_abs_z": worst, "path": str(path)}
