"""``repetita theory``: multi-epoch SGD on linear regression, exact and by Monte Carlo.

Module-level imports stay light (argparse, numpy): every CLI start imports this file; numba and
scipy load inside the commands.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

from repetita.cliargs import SEED, number_list
from repetita.errors import require
from repetita.io import FIGURE_SUFFIXES, check_file, write_json
from repetita.theory.spectra import SPECTRUM_HELP, WSTAR_HELP

_SPECTRUM_HELP = SPECTRUM_HELP + " (default well:0.05)"
_WSTAR_HELP = WSTAR_HELP + " (default flat)"


# Size guards, checked before anything is allocated or simulated: the Monte Carlo holds N x d features and
# runs N x K steps per replicate and learning rate (N = 1e12 asked for terabytes, N = 1e300 hung); the exact
# one-pass risk is closed-form in n, but beyond 1e15 steps its table is digits, not information.
MAX_N = 10**7
MAX_K = 10**5
MAX_STEPS = 10**9  # N x K per replicate
MAX_ONEPASS_N = 10**15
MAX_D = 10**5
MAX_REPLICATES = 10**5


def _ints(values: list[str], what: str, maximum: float | None = None) -> tuple[int, ...]:
    """Positive whole numbers from '1e4 1e5' or '1e4,1e5'."""
    return tuple(number_list(values, what, whole=True, positive=True, maximum=maximum))


def _floats(values: list[str], what: str) -> tuple[float, ...]:
    return tuple(number_list(values, what))


def _replicates(values: list[str]) -> int | tuple[int, ...]:
    reps = _ints(values, "--replicates", MAX_REPLICATES)
    return reps[0] if len(reps) == 1 else reps


def _check_common(args) -> None:
    require(1 <= args.d <= MAX_D, f"--d must be a whole number from 1 to {MAX_D:,}, got {args.d}")
    require(math.isfinite(args.sigma) and args.sigma > 0, f"--sigma must be positive, got {args.sigma}")


def cmd_reuse(args) -> dict:
    """Fill the E(K, N) table by Monte Carlo and the exact one-pass curve."""
    _check_common(args)
    from repetita.theory.reuse import ReuseConfig, reuse_table

    Ns, Ks = _ints(args.N, "--N", MAX_N), _ints(args.K, "--K", MAX_K)
    require(max(Ns) * max(Ks) <= MAX_STEPS, f"--N {max(Ns):g} x --K {max(Ks):g} is {max(Ns) * max(Ks):.3g} SGD steps "
            f"per replicate, above the limit of {MAX_STEPS:.0e}; lower N or K")
    require(args.threads is None or args.threads >= 1, f"--threads must be at least 1, got {args.threads}")
    config = ReuseConfig(
        Ns=Ns, Ks=Ks, spectrum=args.spectrum, d=args.d, sigma=args.sigma,
        wstar=args.wstar, design=args.design, replicates=_replicates(args.replicates), order=args.order,
        fraction=args.fraction, seed=args.seed, threads=args.threads, fine_points=args.fine_points,
    )
    config.problem()  # parse the spectrum and target now: a bad string fails before any compute
    if args.save:
        check_file(args.save, "--save", suffixes=(".json",))
    if args.plot:
        check_file(args.plot, "--plot", suffixes=FIGURE_SUFFIXES)
    quiet = args.json or not sys.stderr.isatty()
    t0 = time.perf_counter()

    def progress(i, N):
        if not quiet:
            sys.stderr.write(f"  N = {N} ({i + 1}/{len(config.Ns)}), {time.perf_counter() - t0:.0f}s elapsed\n")

    result = reuse_table(config, progress=progress)
    out = result.to_dict()
    out["seconds_total"] = time.perf_counter() - t0
    if args.save:
        out["saved"] = str(write_json(args.save, out))
    if args.plot:
        from repetita.theory.plots import plot_reuse

        out["plot"] = str(plot_reuse(result, args.plot))
        out["plot_json"] = str(write_json(Path(args.plot).with_suffix(".json"), out))
    if not args.json:
        _print_reuse(out)
    return out


def _print_reuse(r: dict) -> None:
    Ks, Ns = r["Ks"], r["Ns"]
    c = r["config"]
    print(f"multi-epoch SGD ({c['order']}), spectrum {c['spectrum']}, d = {c['d']}, sigma = {c['sigma']:g}, "
          f"design {c['design']}, {c['replicates']} replicates; eta_max = {r['eta_max']:.4g}")
    print("E(K, N) = N'/N with R*(1, N') = R*(K, N)   (+- one standard error)")
    print(f"{'N':>9} " + " ".join(f"{'K=' + str(k):>13}" for k in Ks) + f" {'K*':>7}")
    for a, N in enumerate(Ns):
        cells = " ".join(f"{r['E'][a][b]:>7.3g}+-{r['E_se'][a][b]:<5.2g}" for b in range(len(Ks)))
        print(f"{N:>9} {cells} {r['k_star'][a]:>7.3g}")
    print("R*(K, N) (relative s.e.)")
    for a, N in enumerate(Ns):
        cells = " ".join(f"{r['risk_star'][a][b]:>8.3g}({r['risk_star_rel_se'][a][b]:.0%})" for b in range(len(Ks)))
        print(f"{N:>9} {cells}")
    asym = r["asymptotes"]
    print(f"asymptotes: R* ~ C1 log(KN)/(KN) with C1 = {asym['C1']:.4g} ({asym['C1_cells']} linear-regime cells), "
          f"R*(K_max, N) ~ C2/N with C2 = {asym['C2']:.4g}")
    for name, fit in r.get("plateau_fit", {}).items():
        print(f"plateau E(K_max, N) ~ C log N + c0 ({name}): C = {fit['C']:.3g} +- {fit['C_se']:.2g}, "
              f"c0 = {fit['offset']:.3g}, max relative residual {fit['max_rel_resid']:.1%}")
    if any(any(row) for row in r["eta_at_grid_edge"]):
        print("warning: some optima sit at the end of their learning-rate window (eta* is a bound there)")
    print(f"{r['seconds_total']:.1f} s")


def cmd_onepass(args) -> dict:
    """Exact one-pass risk R(1, n; eta), or its tuned value R*(1, n) when no --eta is given."""
    _check_common(args)
    import numpy as np

    from repetita.theory.exact import check_eta, eta_max, one_pass_risk, optimal_one_pass
    from repetita.theory.spectra import Problem

    problem = Problem.from_strings(args.spectrum, args.d, args.sigma, args.wstar, args.design)
    ns = np.asarray(_ints(args.n, "--n", MAX_ONEPASS_N), dtype=float)
    top = eta_max(problem)
    out = {"problem": problem.to_dict(), "eta_max": top, "n": ns}
    if args.eta is not None:
        etas = check_eta(problem, _floats(args.eta, "--eta"))
        out["eta"] = etas
        out["risk"] = np.array([one_pass_risk(problem, e, ns) for e in etas])
    else:
        e, r = optimal_one_pass(problem, ns)
        out["eta_star"], out["risk_star"] = e, r
    if not args.json:
        print(f"one-pass SGD, spectrum {args.spectrum}, d = {problem.d}, sigma = {args.sigma:g}, design {args.design}; "
              f"stable for 0 < eta < {top:.6g}")
        if args.eta is not None:
            print(f"{'n':>12} " + " ".join(f"{'eta=' + format(e, '.3g'):>14}" for e in out["eta"]))
            for i, n in enumerate(ns):
                print(f"{n:>12.0f} " + " ".join(f"{out['risk'][j][i]:>14.6g}" for j in range(len(out["eta"]))))
        else:
            print(f"{'n':>12} {'eta*':>12} {'R*(1, n)':>12}")
            for n, e, r in zip(ns, out["eta_star"], out["risk_star"], strict=True):
                print(f"{n:>12.0f} {e:>12.5g} {r:>12.5g}")
    return out


def _problem_args(p) -> None:
    p.add_argument("--spectrum", default="well:0.05", help=_SPECTRUM_HELP)
    p.add_argument("--d", type=int, default=10, help="dimension (ignored by file: spectra; default 10)")
    p.add_argument("--sigma", type=float, default=0.1, help="label-noise standard deviation (default 0.1)")
    p.add_argument("--wstar", default="flat", help=_WSTAR_HELP)
    p.add_argument("--design", default="gaussian", choices=["gaussian", "rademacher", "uniform"],
                   help="distribution of the whitened features z (fourth moment 3, 1, 9/5; default gaussian)")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")


def register(sub) -> None:
    t = sub.add_parser("theory", help="multi-epoch SGD theory on linear regression (exact + Monte Carlo)",
                       description="Exact one-pass risk and Monte Carlo multi-epoch SGD for linear regression.")
    tsub = t.add_subparsers(dest="theory_command", metavar="SUBCOMMAND", parser_class=type(t))
    tsub.required = True

    r = tsub.add_parser(
        "reuse",
        help="E(K, N) table: how many fresh-data epochs K repeated epochs are worth",
        description="Tune the learning rate per (K, N) by Monte Carlo, invert the exact one-pass curve "
        "n -> R*(1, n) to get E(K, N) = N'/N, the phase transition K*(N) and the plateau fit C log N. "
        "Example: repetita theory reuse --N 1e3,1e4 --K 1,2,4,8,16,32,64 --replicates 64",
    )
    r.add_argument("--N", nargs="+", default=["1000,10000"], help="sample sizes (e.g. 1e3,1e4,1e5)")
    r.add_argument("--K", nargs="+", default=["1,2,4,8,16,32,64"], help="epoch counts (e.g. 1,2,4,8)")
    _problem_args(r)
    r.add_argument("--replicates", nargs="+", default=["64"],
                   help="datasets (each with its own orders) per cell: one value, or one per N (e.g. 160,48,8)")
    r.add_argument("--order", default="reshuffle", choices=["reshuffle", "fixed", "replacement"],
                   help="sample order per epoch: fresh permutation, one permutation reused, or with replacement")
    r.add_argument("--fraction", type=float, default=0.5, help="K*(N) is where E(K, N) < fraction * K (default 0.5)")
    r.add_argument("--fine-points", type=int, default=9, help="learning rates per (K, N) in the fine stage")
    r.add_argument("--seed", type=SEED, default=0, help="seed of the Monte Carlo (default 0)")
    r.add_argument("--threads", type=int, default=None, help="numba threads (default: NUMBA_NUM_THREADS or all)")
    r.add_argument("--plot", metavar="PNG", help="write E vs K and R* vs asymptotes (config + table beside it)")
    r.add_argument("--save", metavar="JSON", help="write the table and its config as JSON")
    r.set_defaults(func=cmd_reuse)

    o = tsub.add_parser(
        "onepass",
        help="exact one-pass SGD risk R(1, n; eta), or R*(1, n) tuned over eta",
        description="Closed-form expected excess risk of one-pass constant-LR SGD (diagonal H). "
        "Example: repetita theory onepass --n 1e3,1e4 --eta 0.01",
    )
    o.add_argument("--n", nargs="+", required=True, help="numbers of steps (e.g. 1e3,1e4)")
    o.add_argument("--eta", nargs="+", help="learning rates; omitted: tuned per n")
    _problem_args(o)
    o.set_defaults(func=cmd_onepass)
