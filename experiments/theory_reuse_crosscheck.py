"""The measured-reuse estimator (laws.reuse) on the theory lab: E(K, N) from K-epoch SGD runs and a Monte
Carlo one-pass reference, beside the E(K, N) of ``repetita theory reuse`` (docs/reuse.md).

    python experiments/theory_reuse_crosscheck.py [--replicates 64,16] [--reference-replicates 256]
"""

from __future__ import annotations

import argparse
import time

import pandas as pd

from repetita.theory.crosscheck import crosscheck
from repetita.theory.reuse import ReuseConfig


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--N", default="1000,10000")
    ap.add_argument("--K", default="1,2,4,8,16,32,64")
    ap.add_argument("--replicates", default="64,16")
    ap.add_argument("--reference-replicates", type=int, default=256)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    cfg = ReuseConfig(Ns=tuple(int(x) for x in args.N.split(",")), Ks=tuple(int(x) for x in args.K.split(",")),
                      replicates=tuple(int(x) for x in args.replicates.split(",")), threads=args.threads)
    t0 = time.perf_counter()
    tab = crosscheck(cfg, reference_replicates=args.reference_replicates)
    pd.set_option("display.width", 200)
    cols = ["unique_tokens", "epochs", "reuse_rate", "E_theory", "E_theory_se", "E_reference_se", "z"]
    print(tab[cols].to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"|z| <= 2 in {int((tab['z'].abs() <= 2).sum())} of {len(tab)} cells; largest |z| {tab['z'].abs().max():.2f}; "
          f"{time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
