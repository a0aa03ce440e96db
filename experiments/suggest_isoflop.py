"""How much compute suggest needs on a single-epoch isoFLOP table before its decision at the largest budget
is within 10% of the truth.

The table is made from a published law: the Chinchilla fit of Hoffmann et al. 2022 (their approach 3:
E = 1.69, A = 406.4, B = 410.7, alpha = 0.34, beta = 0.28), 9 model sizes around the optimum at each of
7 budgets from 1e18 to 1e21 FLOPs, every run seeing its data once (U = D), losses times exp(noise),
noise normal with sd 0.01 on the log scale. Every order starts from the runs of the two smallest
budgets; the decision is N* and the loss at 1e21 FLOPs (the largest budget), judged against the law that
made the table. Orders: suggest's default (by value, runs within a tenth of the decision's compute),
suggest per FLOP, cheapest first, random permutations (decide/retrospective.py).

    .venv/bin/python experiments/suggest_isoflop.py --seeds 10
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

TRUTH = {"a": np.log(406.4), "b": np.log(410.7), "e": np.log(1.69), "alpha": 0.34, "beta": 0.28}
BUDGETS = np.geomspace(1e18, 1e21, 7)
TARGET = 1e21


def table(noise: float, seed: int) -> pd.DataFrame:
    """9 sizes per budget, spread 3x either way of the law's optimum, one epoch each."""
    from repetita.laws.law import LAWS

    law = LAWS["chinchilla"]
    theta = np.array([[TRUTH[p] for p in law.params]])
    rows = []
    for c in BUDGETS:
        n_opt = _optimum(law, theta, c)
        for n in n_opt * np.geomspace(1 / 3, 3, 9):
            d = c / (6 * n)
            rows.append({"params": n, "tokens": d, "unique_tokens": d})
    df = pd.DataFrame(rows)
    from repetita.laws.law import law_loss

    clean = law_loss(law, theta, df["params"].to_numpy(), df["tokens"].to_numpy(), df["unique_tokens"].to_numpy())[0]
    return df.assign(loss=clean * np.exp(noise * np.random.default_rng(seed).standard_normal(len(df))))


def _optimum(law, theta, c: float) -> float:
    from repetita.laws.law import law_loss

    n = np.geomspace(1e6, c / 6 / 10, 4001)
    return float(n[np.argmin(law_loss(law, theta, n, c / (6 * n), c / (6 * n))[0])])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=10, help="random orders")
    ap.add_argument("--noise", type=float, default=0.01)
    args = ap.parse_args()
    from repetita.decide.retrospective import relative_error, replay
    from repetita.laws.fit import LawFit
    from repetita.laws.law import LAWS

    df = table(args.noise, 0)
    law = LAWS["chinchilla"]
    n_true = _optimum(law, np.array([[TRUTH[p] for p in law.params]]), TARGET)
    from repetita.laws.law import law_loss

    theta = np.array([[TRUTH[p] for p in law.params]])
    d_true = TARGET / (6 * n_true)
    reference = np.array([np.log(n_true), 0.0, law_loss(law, theta, n_true, d_true, d_true)[0, 0]])
    start = int((6 * df["params"] * df["tokens"] <= BUDGETS[1] * 1.001).sum())
    est = LawFit("chinchilla").fit(df)
    t = time.time()
    # U = the target's tokens: at 1e21 every plan is one epoch or less, so K* says nothing; judge N* and loss
    reps = replay(est, df, TARGET, 1e15, start=start, seeds=args.seeds,
                  orders=("suggest-budget", "suggest", "random", "cheapest"), n_starts=2)
    total = float(reps[0].spent[-1])
    print(f"isoFLOP table: {len(df)} runs, {len(BUDGETS)} budgets {BUDGETS[0]:.2g}-{BUDGETS[-1]:.2g}, noise "
          f"{args.noise:g}; start: {start} runs ({reps[0].spent[0]:.3g} FLOPs); all {total:.3g}; {time.time() - t:.0f} s")
    print(f"truth at {TARGET:.0e}: N* {n_true:.3g}, loss {reference[2]:.4f}")
    reached = {}
    for r in reps:
        err = relative_error(r.plans, reference)[:, [0, 2]]  # N* and loss
        ok = np.all(err <= 0.10, axis=1)
        if ok[-1]:
            bad = np.flatnonzero(~ok)
            reached[r.name] = float(r.spent[0 if bad.size == 0 else bad[-1] + 1])
        else:
            reached[r.name] = None
    rnd = [v for k, v in reached.items() if k.startswith("random")]
    for k in ("suggest-budget", "suggest", "cheapest"):
        v = reached[k]
        print(f"  {k:>15}: {'never' if v is None else f'{v:.3g} FLOPs ({v / total:.0%})'}")
    med = float(np.median([v if v is not None else np.inf for v in rnd]))
    print(f"  random median {med:.3g} FLOPs ({sum(v is not None for v in rnd)}/{len(rnd)} reach)")


if __name__ == "__main__":
    main()
