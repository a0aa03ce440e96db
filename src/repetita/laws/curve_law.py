"""A law over whole loss curves: the multi-power schedule term joined with a repetition penalty that turns.

Every evaluation of a multi-epoch run is a point of the law, not only the last one. An intermediate point of
a cosine run is not a run that ended there (its learning rate is still high), so the law reads the schedule
the way the multi-power law does (Luo et al. 2025, arXiv:2503.12811): the area under the learning rate up to
the evaluation, and a saturating gain from every LR drop before it. The model size enters as in Chinchilla,
and repetition as the one-coefficient additive overfitting penalty of ``overfit-1`` (after Lovelace et al.
2026, arXiv:2605.01640), on the tokens seen so far:

    L(N, U, t) = E + A / N^alpha + B / S(t)^beta - LD(t) + k R(t) N / U,    R(t) = max(t / U - 1, 0)

S(t) is the area under the LR normalised by its peak, in tokens (a constant LR gives S = t: Chinchilla in
tokens), and LD(t) = B_d sum_k (eta_{k-1} - eta_k) (1 - (C_d eta_k^-gamma S_k(t) + 1)^-beta_d) the multi-power
annealing term. With one model size and no repetition it is the multi-power law (its L0 is E + A/N^alpha),
and a table of final losses is a table of curves with one point each, at the end of their schedules.

The schedule of a run comes from its logged ``lr`` (rebuilt between evaluations), else a ``schedule`` column
(:data:`SCHEDULES`), else :data:`DEFAULT_SCHEDULE`, which is said. A run's schedule spans ``epochs x
unique_tokens`` when the table gives them (a curve cut short keeps the schedule it was trained with), else
the run's last evaluation. Tables of ``step`` and ``lr`` (the multi-power law's) are binned by
:func:`repetita.laws.multipower.prepare`.

Token-indexed schedules are resampled on :data:`NSTEP` steps per run and their LR drops pooled into
:data:`NBINS` equal bins, plus one partial bin per evaluation for the drops between the last bin edge and
the evaluation, so the design is (rows x 65) whatever the run's length: 9,260 evaluations of 48 runs fit in
seconds (benchmarks/curve_law.py).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from repetita.errors import UserError, require
from repetita.laws.data import canonical, numeric_column, require_columns
from repetita.laws.law import Law, col, param, register_law

Array = np.ndarray

NSTEP = 4096  # steps a token-indexed schedule is resampled on
NBINS = 64  # LR-drop bins per run (plus one partial bin per evaluation)
WARMUP_FRACTION = 0.01
COSINE_FLOOR = 0.1
FINAL_RTOL = 0.01  # an evaluation within 1% of its schedule's end is the run's final loss (the 4.2B logs stop 0.14% short)
DEFAULT_SCHEDULE = "cosine"
DEFAULT_TEXT = (f"cosine decay to {COSINE_FLOOR:g} of the peak over the run after a {WARMUP_FRACTION:.0%} "
                "linear warmup")


def schedule_lr(kind: str, frac: Array) -> Array:
    """The LR, as a fraction of its peak, at ``frac`` of a run (0..1) under a named schedule."""
    frac = np.asarray(frac, dtype=float)
    w = WARMUP_FRACTION
    ramp = np.clip(frac / w, 0.0, 1.0)
    s = np.clip((frac - w) / (1.0 - w), 0.0, 1.0)
    if kind == "cosine":
        after = COSINE_FLOOR + (1.0 - COSINE_FLOOR) * 0.5 * (1.0 + np.cos(np.pi * s))
    elif kind == "linear":
        after = 1.0 - s
    elif kind == "constant":
        after = np.ones_like(s)
    else:
        raise UserError(f"schedule {kind!r} is not known; use one of {', '.join(SCHEDULES)}, or log the lr")
    return np.where(frac < w, ramp, after)


SCHEDULES = ("cosine", "linear", "constant")
_GRID = np.arange(NSTEP + 1.0)


def run_design(tokens: Array, total: float, eta: Array) -> tuple[Array, Array, Array, Array]:
    """The schedule part of the design for one run: per evaluation the LR area S(t) in tokens and, over
    :data:`NBINS` + 1 bins, the LR drop, S_k(t) and log eta_k (zeros for bins after t).

    ``eta`` is the normalised LR on the run's NSTEP + 1 grid points (index 0: the start).
    """
    u = total / NSTEP  # tokens per grid step
    cum = np.concatenate([[0.0], np.cumsum(eta[1:])]) * u  # area at each grid step, in tokens
    t = np.clip(np.asarray(tokens, dtype=float) / u, 0.0, NSTEP)
    peak = int(np.argmax(eta))
    k = np.arange(1, NSTEP + 1.0)
    drop = eta[:-1] - eta[1:]
    drop[:peak] = 0.0  # the warmup's rise is not a drop
    c_drop = np.concatenate([[0.0], np.cumsum(np.abs(drop))])
    c_pos = np.concatenate([[0.0], np.cumsum(np.abs(drop) * k)])
    c_signed = np.concatenate([[0.0], np.cumsum(drop)])
    area = np.maximum(np.interp(t, _GRID, cum), 1e-30 * total)
    edges = np.linspace(0, NSTEP, NBINS + 1).astype(int)

    def pooled(a, b):
        """Drop, S(k-1) and log eta at the drop-weighted mean step of the drops in (a, b]."""
        mass = c_drop[b] - c_drop[a]
        some = mass > 0
        kbar = np.where(some, (c_pos[b] - c_pos[a]) / np.where(some, mass, 1.0), 0.5 * (a + b + 1))
        return (c_signed[b] - c_signed[a], np.interp(kbar - 1, _GRID, cum),
                np.log(np.maximum(np.interp(kbar, _GRID, eta), 1e-12)))

    f_drop, f_before, f_log = pooled(edges[:-1], edges[1:])
    full = edges[1:][None, :] <= t[:, None]
    last = np.minimum((t // (NSTEP / NBINS)).astype(int), NBINS - 1)
    a = edges[last]
    b = np.maximum(np.floor(t).astype(int), a)
    p_drop, p_before, p_log = pooled(a, b)
    partial = (p_drop != 0)
    drop_m = np.column_stack([np.where(full, f_drop, 0.0), np.where(partial, p_drop, 0.0)])
    s_k = np.column_stack([np.where(full, area[:, None] - f_before, 0.0), np.where(partial, area - p_before, 0.0)])
    log_eta = np.column_stack([np.where(full, f_log, 0.0), np.where(partial, p_log, 0.0)])
    return area, drop_m, np.maximum(s_k, 0.0), log_eta


def _eta_from_log(tokens: Array, lrs: Array, total: float) -> Array:
    """A run's normalised LR on its grid from the LR logged at its evaluations (linear between them, a
    linear warmup from 0 before the first, the last value held after the last)."""
    peak = float(np.max(lrs))
    require(peak > 0, "a run's logged lr must be positive somewhere")
    x = tokens / total * NSTEP
    eta = np.interp(_GRID, np.concatenate([[0.0], x]), np.concatenate([[0.0], lrs / peak]))
    return eta


_TEMPLATE: dict[str, tuple] = {}


def end_template() -> tuple[float, Array, Array, Array]:
    """The schedule part at the end of a one-token run under the default schedule: area, drop, S_k and log
    eta per bin. A run of D tokens scales the area and S_k by D (a plan's rows: each the end of its run)."""
    if DEFAULT_SCHEDULE not in _TEMPLATE:
        eta = schedule_lr(DEFAULT_SCHEDULE, _GRID / NSTEP)
        area, drop, s_k, log_eta = run_design(np.array([1.0]), 1.0, eta)
        keep = drop[0] != 0
        _TEMPLATE[DEFAULT_SCHEDULE] = (float(area[0]), drop[0][keep], s_k[0][keep], log_eta[0][keep])
    return _TEMPLATE[DEFAULT_SCHEDULE]


def run_ids(df: pd.DataFrame) -> pd.Series:
    for name in ("run", "curve"):
        if name in df.columns:
            return df[name].astype(str)
    return pd.Series([f"row {i + 1}" for i in range(len(df))], index=df.index)  # each row its own run


def prepare(df: pd.DataFrame, *, warmup_steps: int | None = None, bin_width: int = 64):
    """Design, losses and the table position of each design row, for a curve table or a run table."""
    df = canonical(df).reset_index(drop=True)
    if {"step", "lr"} <= set(df.columns) and "tokens" not in df.columns:
        from repetita.laws import multipower

        X, y, frame = multipower.prepare(df, warmup_steps=warmup_steps, bin_width=bin_width)
        return to_pairs(X | {"log_area": np.log(X["area"])}), y, frame.index.to_numpy()
    require_columns(df, ("tokens", "loss"), "the curve law")
    tokens = numeric_column(df, "tokens")
    loss = numeric_column(df, "loss")
    cols = {c: numeric_column(df, c) for c in ("params", "unique_tokens", "epochs", "lr", "total_tokens")
            if c in df.columns}
    runs = run_ids(df)
    spans = schedule_spans(runs, tokens, cols)
    blocks, order = [], []
    for name, idx in runs.groupby(runs, sort=False).groups.items():
        pos = df.index.get_indexer(idx)
        t = tokens[pos]
        back = np.flatnonzero(np.diff(t) <= 0)
        if back.size:
            i = int(pos[back[0] + 1])
            raise UserError(f"run {name!r}: tokens go backwards or repeat at row {i + 1} ({t[back[0] + 1]:.4g} after "
                            f"{t[back[0]]:.4g}); a restarted run logs part of its curve twice: keep one copy")
        for c in ("params", "unique_tokens", "epochs", "total_tokens"):
            if c in cols and np.ptp(cols[c][pos]) > 1e-9 * np.max(np.abs(cols[c][pos])):
                raise UserError(f"run {name!r}: column {c!r} changes within the run; one run has one {c}")
        if "schedule" in df.columns:
            kinds = df["schedule"].iloc[pos].astype(str).unique()
            require(len(kinds) == 1, f"run {name!r}: mixed schedules within one curve ({', '.join(kinds[:3])}); "
                    "give each schedule its own run")
        total = float(spans[pos[0]])
        require(total >= t[-1] * (1 - 1e-6), f"run {name!r}: its schedule spans {total:.4g} tokens but it was "
                f"evaluated at {t[-1]:.4g}")
        if "lr" in cols:
            eta = _eta_from_log(t, cols["lr"][pos], total)
        else:
            kind = str(df["schedule"].iloc[pos[0]]) if "schedule" in df.columns else DEFAULT_SCHEDULE
            eta = schedule_lr(kind, _GRID / NSTEP)
        blocks.append(run_design(t, total, eta))
        order.append(pos)
    pos_all = order
    order = np.concatenate(order)
    X = {"tokens": tokens[order], "log_tokens": np.log(tokens[order])}
    for c, short in (("params", "params"), ("unique_tokens", "unique")):
        if c in cols:
            X[c] = cols[c][order]
            X[f"log_{short}"] = np.log(X[c])
    if "unique_tokens" in X:
        over = X["unique_tokens"] > spans[order] * (1 + 1e-9)
        if over.any():
            raise UserError("a run cannot see more unique tokens than its schedule trains on "
                            f"(row {int(order[np.flatnonzero(over)[0]]) + 1})")
    # the evaluations at the end of their run's schedule: the only ones that are what a run table calls a run
    # (a plan checks its decision against them, decide/engine.py; mid-run points were taken at a high LR)
    last = np.zeros(len(order), dtype=bool)
    last[np.cumsum([len(p) for p in pos_all]) - 1] = True
    X["final"] = last & (tokens[order] >= spans[order] * (1 - FINAL_RTOL))
    X["area"] = np.concatenate([b[0] for b in blocks])
    X["log_area"] = np.log(X["area"])
    X["drop"] = np.concatenate([b[1] for b in blocks])
    X["s_k"] = np.concatenate([b[2] for b in blocks])
    X["log_eta_k"] = np.concatenate([b[3] for b in blocks])
    return to_pairs(X), loss[order], order


def to_pairs(X: dict) -> dict:
    """The (rows x bins) schedule design as the flat list of the (row, bin) pairs that act (a bin before the
    evaluation), row by row, each row holding at least one (a zero drop where none acts): about half the
    dense design on curves, so each evaluation of the law costs half."""
    drop, s_k, log_eta = X.pop("drop"), X.pop("s_k"), X.pop("log_eta_k")
    act = (drop != 0) & (s_k > 0)
    act[:, -1] |= ~act.any(axis=1)  # every row keeps one pair, so that the row sums below see every row
    rows, cols_ = np.nonzero(act)  # row-major: sorted by row
    X["pair_drop"] = np.where(act[rows, cols_] & (drop[rows, cols_] != 0), drop[rows, cols_], 0.0)
    X["pair_s"] = s_k[rows, cols_]
    X["pair_log_eta"] = log_eta[rows, cols_]
    X["pair_start"] = np.searchsorted(rows, np.arange(drop.shape[0]))
    return X


def schedule_spans(runs: pd.Series, position, cols: dict) -> Array:
    """Per row, how far its run's schedule reaches (tokens, or steps for a step-logged table): ``total_tokens``
    where given, else ``epochs x unique_tokens`` and never short of the run's last evaluation, else that last
    evaluation."""
    position = np.asarray(position, dtype=float)
    last = pd.Series(position).groupby(np.asarray(runs)).transform("max").to_numpy()
    if "total_tokens" in cols:
        return np.asarray(cols["total_tokens"], dtype=float)
    if "epochs" in cols and "unique_tokens" in cols:
        return np.maximum(np.asarray(cols["epochs"], dtype=float) * np.asarray(cols["unique_tokens"], dtype=float),
                          last)
    return last


def schedule_notes(df: pd.DataFrame) -> list[str]:
    """Said once when the table gives no schedule: the default is an assumption about the user's runs."""
    df = canonical(df)
    if "lr" in df.columns or "schedule" in df.columns or "step" in df.columns:
        return []
    return [f"the table gives no lr or schedule column: every run is read as a {DEFAULT_TEXT} (the "
            "datablations runs' schedule); add a schedule column (cosine, linear, constant) or the logged lr"]


def design_fixed(X: dict) -> dict[str, float]:
    """Parameters a table cannot determine, frozen: one model size leaves E + A/N^alpha a constant (the
    multi-power law's L0, carried by E), no unique_tokens column leaves no repetition to penalise."""
    out = {}
    if "params" not in X or np.ptp(X["log_params"]) == 0:
        out |= {"a": -60.0, "alpha": 0.5}
    if "unique_tokens" not in X or not np.any(X["tokens"] > X["unique_tokens"] * (1 + 1e-9)):
        out |= {"c": -60.0, "sigma": 1.0}
    return out


def curve_overfit(theta: Array, X: dict) -> Array:
    """theta = (e, a, alpha, b, beta, bd, cd, beta_d, gamma, c); log loss (S, n).

    A design without the schedule columns (a plan's (N, D, U) rows) is read as final losses of runs under
    the default schedule, each ending at its D (:func:`end_template`)."""
    e, a, alpha, b, beta, bd, cd, beta_d, gamma, c, sigma = (param(theta, i) for i in range(11))
    if "area" in X:  # evaluations of curves: the acting (row, bin) pairs
        log_area = col(X, "log_area")
        x = np.exp(-gamma * X["pair_log_eta"][None]) * X["pair_s"][None]
        g = 1.0 - np.exp(-beta_d * np.log1p(np.exp(cd) * x))
        ld = np.exp(bd) * np.add.reduceat(g * X["pair_drop"][None], X["pair_start"], axis=1)
    else:  # one extra axis over the template's bins, broadcast like every other law's columns
        area1, drop1, s1, log1 = end_template()
        d = col(X, "tokens")[..., None]
        log_area = np.log(area1) + col(X, "log_tokens")
        x = np.exp(-gamma[..., None] * log1) * s1 * d
        g = 1.0 - (np.exp(cd)[..., None] * x + 1.0) ** (-beta_d[..., None])
        ld = np.exp(bd) * np.sum(g * drop1, axis=-1)
    total = np.exp(e) + np.exp(b - beta * log_area) - ld
    if "log_params" in X:
        total = total + np.exp(a - alpha * col(X, "log_params"))
        if "unique_tokens" in X:
            r = np.maximum(col(X, "tokens") / col(X, "unique_tokens") - 1.0, 0.0)
            total = total + np.exp(c + col(X, "log_params") - col(X, "log_unique")) * np.where(
                r > 0, r, 1.0) ** sigma * (r > 0)
    return np.log(total)


def curve_overfit_grad(theta: Array, X: dict) -> tuple[Array, Array]:
    """Log loss (n,) and its Jacobian (10, n) at one theta on a curve design, in closed form: the complex
    step would cost ten complex passes over the (rows x bins) design, this about two real ones."""
    e, a, alpha, b, beta, bd, cd, beta_d, gamma, c, sigma = (float(v) for v in theta)
    le, s_k, drop, start = X["pair_log_eta"], X["pair_s"], X["pair_drop"], X["pair_start"]

    def rows(v):
        return np.add.reduceat(v * drop, start)

    x = np.exp(-gamma * le) * s_k
    big_c = np.exp(cd)
    log_u = np.log1p(big_c * x)
    u_pow = np.exp(-beta_d * log_u)
    amp = np.exp(bd)
    ld = amp * rows(1.0 - u_pow)
    dg_du = beta_d * u_pow * np.exp(-log_u)
    t_e = np.full(X["log_area"].shape, np.exp(e))
    t_b = np.exp(b - beta * X["log_area"])
    zero = np.zeros_like(t_b)
    t_a, log_n, pen, log_r = zero, zero, zero, zero
    if "log_params" in X:
        log_n = X["log_params"]
        t_a = np.exp(a - alpha * log_n)
        if "unique_tokens" in X:
            r = np.maximum(X["tokens"] / X["unique_tokens"] - 1.0, 0.0)
            pen = np.exp(c) * np.where(r > 0, r, 1.0) ** sigma * (r > 0) * X["params"] / X["unique_tokens"]
            log_r = np.log(np.where(r > 0, r, 1.0))
    loss = t_e + t_a + t_b - ld + pen
    jac = np.stack([
        t_e, t_a, -log_n * t_a, t_b, -X["log_area"] * t_b, -ld,
        -amp * rows(dg_du * big_c * x),
        -amp * rows(u_pow * log_u),
        amp * rows(dg_du * big_c * x * le),
        pen, pen * log_r,
    ])
    return np.log(loss), jac / loss


def _grid_for(X: dict) -> dict[str, tuple]:
    """Starts scaled to the table: the data term's amplitude from the loss at the median area, the annealing
    constant from the areas the drops act over."""
    area = np.median(X["area"])
    s = X["pair_s"][X["pair_s"] > 0]
    scale = float(np.median(s)) if s.size else 1.0
    return {"b": tuple(float(np.log(f * area ** 0.35)) for f in (0.5, 2.0)),
            "cd": tuple(float(-np.log(scale) + v) for v in (-2.0, 1.0)),
            "bd": (-2.0, 0.0, 2.0)}


def _from_multipower(parent: dict, X: dict) -> list[dict]:
    """On a step/lr table, start from the multi-power fit of the same curves (the law this one reduces to
    there): L0 -> E, A S^-alpha -> B/S^beta, and its annealing term unchanged."""
    if "L0" not in parent:
        return []
    pos = {k: float(np.log(max(parent[k], 1e-12))) for k in ("L0", "A", "B", "C")}
    return [{"e": pos["L0"], "b": pos["A"], "beta": parent["alpha"], "bd": max(pos["B"], -30.0), "cd": pos["C"],
             "beta_d": parent["beta"], "gamma": parent["gamma"]}]


CURVE_LAW = Law(
    "curve-overfit", curve_overfit,
    ("e", "a", "alpha", "b", "beta", "bd", "cd", "beta_d", "gamma", "c", "sigma"),
    {"e": (-5.0, 3.0), "a": (-60.0, 60.0), "alpha": (1e-4, 3.0), "b": (-60.0, 80.0), "beta": (1e-4, 3.0),
     "bd": (-30.0, 15.0), "cd": (-60.0, 20.0), "beta_d": (1e-3, 5.0), "gamma": (0.0, 5.0), "c": (-60.0, 20.0), "sigma": (0.05, 3.0)},
    {"e": (0.5, 1.0), "a": (6.0,), "alpha": (0.35,), "b": (0.0,), "beta": (0.3, 0.45), "bd": (0.0,),
     "cd": (0.0,), "beta_d": (0.5, 5.0), "gamma": (0.5,), "c": (-6.0, -4.0), "sigma": (0.5, 1.0)},
    ("params", "tokens", "unique_tokens"), log_params=("e", "a", "b", "bd", "cd"),
    doc="whole loss curves: Chinchilla in the LR area + the multi-power annealing term + k R N/U, "
        "each evaluation a point (after Luo et al. 2025 and Lovelace et al. 2026)",
    axis="tokens", curves=True, monotone=False, parent="multipower", seeds=_from_multipower,
    grad=curve_overfit_grad, fixed=design_fixed, grid_for=_grid_for, notes=schedule_notes, design=prepare,
)
register_law(CURVE_LAW)
