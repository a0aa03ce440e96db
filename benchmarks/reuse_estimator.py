"""E(K, U) with bootstrap intervals on the 9,261-row datablations curves: vectorized vs one estimate per draw.

Timed: ``laws.reuse.reuse_with_intervals`` (final loss of each of the 48 runs from its last evaluations, 1,000
bootstrap draws of it, every draw anchored and inverted against the published law's Chinchilla part in one
pass). Baseline, same run, same draws: the straightforward loop, ``effective_reuse`` called once per draw on
that draw's 48 final losses, on ``--loop`` draws, its time scaled to the full count. The two must agree.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from importlib import resources

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--resamples", type=int, default=1000)
    ap.add_argument("--loop", type=int, default=50)
    args = ap.parse_args()

    from repetita.examples import load_example
    from repetita.laws.reuse import Reference, effective_reuse, final_loss_draws, reuse_with_intervals

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    curves = load_example("datablations-curves")
    rec = json.loads((resources.files("repetita.examples") / "laws" / "datablations-published.json").read_text())
    chin = {"law": "chinchilla", "spec": {"law": "chinchilla"},
            "params": {k: rec["params"][k] for k in ("a", "b", "e", "alpha", "beta")}}
    reference = lambda n: Reference.from_law(chin, n)  # noqa: E731

    t0 = time.perf_counter()
    table = reuse_with_intervals(curves, reference, n_boot=args.resamples, anchor=True, seed=0)
    ours = time.perf_counter() - t0
    print(f"repetita : {ours:7.2f} s  {len(curves):,} evaluations, {len(table)} runs, {args.resamples} resamples")

    finals = final_loss_draws(curves, args.resamples, seed=0)
    draws = finals.attrs["draws"]
    t0 = time.perf_counter()
    loop = []
    for b in range(args.loop):
        loop.append(effective_reuse(finals.assign(loss=draws[:, b]), reference, extrapolate=True, anchor=True)["reuse_rate"])
    per = (time.perf_counter() - t0) / args.loop
    loop = np.array(loop).T
    # the vectorized draws, recomputed for the same first ``loop`` resamples, must equal the loop's
    long = finals.loc[finals.index.repeat(args.loop)].reset_index(drop=True)
    long["loss"] = draws[:, : args.loop].ravel()
    long["draw"] = np.tile(np.arange(args.loop), len(finals))
    vec = effective_reuse(long, reference, extrapolate=True, anchor=True)["reuse_rate"].to_numpy().reshape(len(finals), -1)
    print(f"baseline : {per * 1e3:7.1f} ms per resample ({args.loop} run), {per * args.resamples:7.1f} s for {args.resamples}")
    print(f"speed-up : {per * args.resamples / ours:7.1f}x   largest difference in E: {np.max(np.abs(vec - loop)):.1e}")


if __name__ == "__main__":
    main()
