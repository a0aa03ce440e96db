"""The effective reuse rate E(K, U) measured from runs, as the theory defines it (Yan et al.).

For a K-epoch run on U unique tokens with final loss L, the fresh data it is worth is D' = L_fresh^-1(L),
where L_fresh(D) is the loss of the same model trained on D fresh tokens; E(K, U) = D' / U (= K when
repetition costs nothing). The reference is a one-pass curve (or single-epoch runs) given as a table of
(tokens, loss), or a fitted law (its loss with every token fresh). Inversion is monotone interpolation
in log-log; a loss outside the reference's range is an error unless extrapolation is asked for, and then
every extrapolated row is flagged. From the E table: the phase-transition epoch K*(U; lambda), the
largest K with E >= lambda K (lambda = 0.75 as Yan et al.), the plateau (the largest E measured), and the
fit K*(U) = A ln U + B with a t-interval on A.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from repetita.blas import single_threaded
from repetita.errors import UserError, require

LAMBDA = 0.75  # E(K*) = LAMBDA * K*: where repeating stops paying (Yan et al.'s phase transition)
MONOTONE_RTOL = 0.005  # a reference may wiggle by this much (evaluation noise) before it counts as rising


def data_laws() -> tuple[str, ...]:
    """The laws whose loss is a function of model size and tokens: those a reference can be made of."""
    from repetita.laws.law import LAWS

    return tuple(n for n, law in LAWS.items() if {"params", "tokens"} <= set(law.columns) and law.data_term)


def check_data_law(record: dict) -> None:
    law = record.get("law")
    require(law in data_laws(), f"a {law!r} fit gives no loss for a model size and a token count, so it cannot "
            f"be the fresh-data reference; give a fit of one of: {', '.join(data_laws())}")


class Reference:
    """L_fresh(D) and its inverse, from (tokens, loss) points or from a fitted law at model size N."""

    def __init__(self, tokens, loss, name: str = "reference"):
        d = np.asarray(tokens, dtype=float)
        lo = np.asarray(loss, dtype=float)
        require(d.size >= 2, f"{name}: a fresh reference needs at least 2 points")
        require(np.all(np.isfinite(d)) and np.all(d > 0) and np.all(np.isfinite(lo)) and np.all(lo > 0),
                f"{name}: tokens and losses must be positive and finite")
        order = np.argsort(d)
        d, lo = d[order], lo[order]
        require(np.all(np.diff(d) > 0), f"{name}: duplicate token counts in the reference")
        env = np.minimum.accumulate(lo)
        rise = lo > env * (1 + MONOTONE_RTOL)
        if rise.any():
            i = int(np.flatnonzero(rise)[0])
            raise UserError(f"{name}: the reference loss rises at {d[i]:.4g} tokens ({lo[i]:.4g} after "
                            f"{env[i]:.4g}); a fresh-data curve must fall")
        keep = np.concatenate([[True], np.diff(env) < 0])  # flat stretches would make the inverse ambiguous
        self.log_d, self.log_l = np.log(d[keep]), np.log(env[keep])
        self.name = name

    @classmethod
    def from_law(cls, record: dict, params: float, d_min: float = 1e3, d_max: float = 1e16) -> Reference:
        from repetita.laws.evaluate import predicted_loss

        check_data_law(record)

        d = np.geomspace(d_min, d_max, 4000)  # log-log interpolation error ~1e-6 relative
        return cls(d, predicted_loss(record, params, d, d), name=f"{record['law']} law at N = {params:.3g}")

    def loss_at(self, tokens) -> np.ndarray:
        """L_fresh(D) by log-log interpolation (for anchoring a reference at a measured run)."""
        ld = np.log(np.asarray(tokens, dtype=float))
        require(np.all((ld >= self.log_d[0] - 1e-9) & (ld <= self.log_d[-1] + 1e-9)),
                f"{self.name}: the anchoring run's tokens lie outside the reference")
        return np.exp(np.interp(ld, self.log_d, self.log_l))

    def tokens_for(self, loss, extrapolate: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """D' with L_fresh(D') = loss, and whether each needed extrapolation (log-log linear)."""
        ll = np.log(np.asarray(loss, dtype=float))
        x, y = self.log_l[::-1], self.log_d[::-1]  # increasing loss
        outside = (ll < x[0]) | (ll > x[-1])
        if outside.any() and not extrapolate:
            i = int(np.flatnonzero(outside)[0])
            raise UserError(f"loss {np.exp(ll[i]):.4g} lies outside {self.name} ({np.exp(x[0]):.4g} to "
                            f"{np.exp(x[-1]):.4g}); give a longer reference or --extrapolate")
        out = np.interp(ll, x, y)
        lo_slope = (y[1] - y[0]) / (x[1] - x[0])
        hi_slope = (y[-1] - y[-2]) / (x[-1] - x[-2])
        out = np.where(ll < x[0], y[0] + lo_slope * (ll - x[0]), out)
        out = np.where(ll > x[-1], y[-1] + hi_slope * (ll - x[-1]), out)
        with np.errstate(over="ignore"):  # an extrapolation past float range is inf, refused by check_reuse
            return np.exp(out), outside


def monotone_fit(tokens, loss) -> tuple[np.ndarray, np.ndarray, float]:
    """The closest non-increasing curve to (tokens, loss) in least squares (pool adjacent violators): a
    one-pass curve measured at a constant learning rate wiggles with evaluation and SGD noise, and the
    inverse L^-1 needs it to fall. Returns tokens, the fitted losses and the largest relative adjustment."""
    order = np.argsort(np.asarray(tokens, dtype=float))
    d, y = np.asarray(tokens, dtype=float)[order], np.asarray(loss, dtype=float)[order]
    vals, counts = [], []
    for v in y:  # blocks of equal fitted value; merge while a block rises above the one before it
        vals.append(v)
        counts.append(1)
        while len(vals) > 1 and vals[-1] > vals[-2]:
            c = counts[-1] + counts[-2]
            vals[-2] = (vals[-1] * counts[-1] + vals[-2] * counts[-2]) / c
            counts[-2] = c
            vals.pop()
            counts.pop()
    fit = np.repeat(vals, counts)
    return d, fit, float(np.max(np.abs(fit - y) / y))


ANCHOR_KEYS = ("params", "corpus", "draw")  # a reference is anchored per model size and corpus (and draw)


@single_threaded
def effective_reuse(runs: pd.DataFrame, reference, extrapolate: bool = False, anchor: bool = False) -> pd.DataFrame:
    """E(K, U) for every run: ``runs`` has unique_tokens, epochs (or tokens) and loss (and params when the
    reference is a law: ``reference(params) -> Reference``).

    ``anchor`` shifts the reference in loss, per model size (and corpus), so that the group's one-epoch run
    sits on it (E = 1 there): the reference then supplies only the shape of L_fresh(D), which is what a
    law fitted elsewhere (another corpus, other runs) can be trusted for; the measured one-epoch run
    supplies its level.
    """
    from repetita.laws.data import canonical, derive_columns, numeric_column

    df = derive_columns(canonical(runs).reset_index(drop=True), ("unique_tokens", "epochs"))
    law_reference = not isinstance(reference, Reference)
    for col in ("unique_tokens", "epochs", "loss", *(("params",) if law_reference else ())):
        require(col in df.columns, f"runs need column {col!r}; the table has: {', '.join(map(str, df.columns))}")
    for col in ("params", "tokens", "unique_tokens", "epochs", "loss"):
        if col in df.columns:  # numbers (size suffixes read: 4.2B), finite and positive, else one line
            df[col] = numeric_column(df, col)
    if "tokens" in df.columns:
        ratio = df["tokens"] / (df["epochs"] * df["unique_tokens"])
        bad = (ratio - 1).abs() > 0.02  # logs may end a little early; more than 2% is an inconsistent row
        require(not bad.any(), f"runs: tokens != epochs x unique_tokens in {int(bad.sum())} row(s) "
                f"(first: {df.loc[bad.idxmax(), 'tokens']:.4g} vs {df.loc[bad.idxmax(), 'epochs']:g} x "
                f"{df.loc[bad.idxmax(), 'unique_tokens']:.4g})")
    keys = [c for c in ANCHOR_KEYS if c in df.columns] if anchor else []
    # one reference per model size (a law) or one for all (a measured curve); anchoring is per group of keys,
    # done as a column of shifts so that thousands of bootstrap groups cost one pass, not one loop each
    by_ref = df.groupby("params").groups.items() if not isinstance(reference, Reference) else [(None, df.index)]
    refs = {n: (reference if n is None else reference(float(n))) for n, _ in by_ref}
    shift = np.zeros(len(df))
    if anchor:
        one = ((df["epochs"] - 1).abs() < 0.01).to_numpy()
        d1 = (df["tokens"] if "tokens" in df else df["epochs"] * df["unique_tokens"]).to_numpy(float)
        gap = np.full(len(df), np.nan)
        for n, idx in by_ref:
            sel = np.asarray(idx)[one[np.asarray(idx)]]
            gap[sel] = df.loc[sel, "loss"].to_numpy(float) - refs[n].loss_at(d1[sel])
        g = pd.Series(gap, index=df.index).groupby([df[k] for k in keys] if keys else np.zeros(len(df)))
        shift = g.transform("mean").to_numpy()
        if np.isnan(shift).any():
            row = df.loc[np.flatnonzero(np.isnan(shift))[0]]
            raise UserError("anchoring needs a one-epoch run for " + ", ".join(f"{k} = {row[k]}" for k in keys)
                    + "; there is none")
    d_eff = np.empty(len(df))
    flag = np.zeros(len(df), dtype=bool)
    for n, idx in by_ref:
        idx = np.asarray(idx)
        d_eff[idx], flag[idx] = refs[n].tokens_for(df.loc[idx, "loss"].to_numpy(float) - shift[idx], extrapolate)
    out = df.assign(effective_tokens=d_eff, reuse_rate=d_eff / df["unique_tokens"], extrapolated=flag)
    return out.assign(reference_shift=shift) if anchor else out


def final_loss_draws(curves: pd.DataFrame, n_boot: int = 1000, window: float = 0.1, seed: int = 0) -> pd.DataFrame:
    """Each run's final loss, and ``n_boot`` bootstrap draws of it from its evaluation noise.

    The final loss is the intercept, at the run's last token count, of a straight line through the
    evaluations in the last ``window`` fraction of its tokens (at least 3): one noisy evaluation does not
    decide E. Resampling those evaluations (multinomial weights, all draws in one weighted least-squares
    solve per run) gives the draws. This interval covers evaluation noise only, not seed-to-seed spread.
    """
    require(0 < window < 1, f"window must lie in (0, 1), got {window}")
    require(n_boot >= 1, f"bootstrap resamples must be >= 1, got {n_boot}")
    rng = np.random.default_rng(seed)
    rows, draws = [], []
    for _run, g in curves.groupby("run", sort=True):
        t = g["tokens"].to_numpy(float)
        last = t.max()
        tail = g[t >= last * (1 - window)]
        if len(tail) < 3:
            tail = g.iloc[np.argsort(t)[-3:]]
        x = tail["tokens"].to_numpy(float) / last - 1.0
        y = tail["loss"].to_numpy(float)
        W = np.vstack([np.ones(len(x)), rng.multinomial(len(x), np.full(len(x), 1 / len(x)), size=n_boot)])
        s0, s1, s2 = W.sum(1), W @ x, W @ x**2
        t0, t1 = W @ y, W @ (x * y)
        det = s0 * s2 - s1**2
        with np.errstate(divide="ignore", invalid="ignore"):
            a = np.where(det > 1e-12 * s0**2, (s2 * t0 - s1 * t1) / det, t0 / s0)  # one point resampled: its mean
        rows.append(g.loc[g["tokens"].idxmax()].drop(labels=["loss"]).to_dict() | {"loss": float(a[0])})
        draws.append(a[1:])
    out = pd.DataFrame(rows)
    out.attrs["draws"] = np.array(draws)  # (runs, n_boot), runs in the frame's order
    return out


@single_threaded
def reuse_with_intervals(curves: pd.DataFrame, reference, n_boot: int = 1000, window: float = 0.1, level: float = 0.95,
                         anchor: bool = False, extrapolate: bool = False, seed: int = 0) -> pd.DataFrame:
    """E(K, U) at each run's final loss with a percentile interval from :func:`final_loss_draws`."""
    finals = final_loss_draws(curves, n_boot, window, seed)
    table = effective_reuse(finals, reference, extrapolate=extrapolate, anchor=anchor)
    D = finals.attrs["draws"]
    long = finals.loc[finals.index.repeat(D.shape[1])].reset_index(drop=True)
    long["loss"] = D.ravel()
    long["draw"] = np.tile(np.arange(D.shape[1]), len(finals))
    e = effective_reuse(long, reference, extrapolate=True, anchor=anchor)["reuse_rate"].to_numpy().reshape(D.shape)
    q = np.nanquantile(e, ((1 - level) / 2, (1 + level) / 2), axis=1)
    return table.assign(reuse_rate_lo=q[0], reuse_rate_hi=q[1])


def fit_rd_star(table: pd.DataFrame, by: tuple[str, ...] = ("params",)) -> pd.DataFrame:
    """Muennighoff et al.'s E(K) = 1 + R_D* (1 - exp(-(K - 1) / R_D*)) fitted to measured E per group (least
    squares in E over K >= 1), so a measured table can be read as the constant R_D* it implies."""
    from scipy.optimize import minimize_scalar

    from repetita.laws.worth import reuse_rate

    keys = [c for c in by if c in table.columns]
    rows = []
    for key, g in (table.groupby(keys) if keys else [((), table)]):
        g = g.groupby("epochs", as_index=False)["reuse_rate"].mean()
        k, e = g["epochs"].to_numpy(float), g["reuse_rate"].to_numpy(float)
        row = dict(zip(keys, np.atleast_1d(key), strict=True))
        # all epoch counts, then only those up to the peak of E: the law's E never falls, so a collapse
        # at many epochs (overfitting under a fixed recipe) drags the all-runs value down
        for suffix, m in (("", np.ones_like(k, dtype=bool)), ("_to_peak", k <= k[np.argmax(e)])):
            res = minimize_scalar(lambda lr, k=k[m], e=e[m]: float(np.sum((reuse_rate(k, np.exp(lr)) - e) ** 2)),
                                  bounds=(-5, 12), method="bounded", options={"xatol": 1e-8})
            row |= {f"rd_star{suffix}": float(np.exp(res.x)), f"rd_star{suffix}_at_bound": bool(res.x > 11.9 or res.x < -4.9),
                    f"rms_E{suffix}": float(np.sqrt(res.fun / m.sum())), f"epochs{suffix}": int(m.sum())}
        rows.append(row)
    return pd.DataFrame(rows)


E_ONE_TOL = 0.25  # one-epoch runs must read E within 25% of 1: a reference whose level misses them is refused
E_OVER_K_TOL = 0.10  # E above K (1 + this) means a repeated token counted more than a fresh one: flagged
E_ABSURD = 1e3  # E above this many K is an overflow of the inversion, not a measurement: refused


def check_reuse(table: pd.DataFrame, anchored: bool) -> list[str]:
    """The E table's own sanity, as warnings; what makes it meaningless is refused in one line.

    By definition a one-epoch run is worth its own tokens (E = 1), and E(K) lies in [0, K]. A one-epoch
    run far from E = 1 means the reference's level is not these runs' (another corpus, tokenizer or
    evaluation set): every other E of its group is then wrong by the same token ratio. ``table`` gains a
    ``flag`` column naming the rows outside [0, K (1 + E_OVER_K_TOL)].
    """
    e, k = table["reuse_rate"].to_numpy(float), table["epochs"].to_numpy(float)
    bad = ~np.isfinite(e) | (e > E_ABSURD * k)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise UserError(f"E at K = {k[i]:g} (row {i + 1}) overflows: more than {E_ABSURD:g} K is an artefact of "
                        "extrapolating the reference, not a measurement; the loss lies far outside the reference, "
                        "so give a reference that covers it")
    warnings = []
    one = np.abs(k - 1) < 0.01
    if one.any():
        far = one & ((e < 1 / (1 + E_ONE_TOL)) | (e > 1 + E_ONE_TOL))
        if far.any():
            i = int(np.flatnonzero(far)[0])
            where = ", ".join(f"{c} = {table[c].iloc[i]:.4g}" for c in ("params", "unique_tokens") if c in table)
            hint = ("the anchoring does not hold: check the one-epoch runs" if anchored else
                    "its level is not these runs' (another corpus, tokenizer or evaluation set); use --anchor to "
                    "take the reference's shape with each model's one-epoch run as its level, or a reference "
                    "measured in the same setup")
            raise UserError(f"the one-epoch run at {where} reads E = {e[i]:.3g}, where a one-epoch run is worth its "
                            f"own tokens (E = 1): the reference does not describe these runs; {hint}")
    else:
        warnings.append("no one-epoch run: E = 1 at K = 1 cannot be checked, so the reference's level is unverified")
    over = (e > k * (1 + E_OVER_K_TOL)) | (e < 0)
    table["flag"] = np.where(over, "E outside [0, K]: a repeated token worth more than a fresh one", "")
    if over.any():
        warnings.append(f"{int(over.sum())} row(s) read E outside [0, K] (flagged in the table): the reference "
                        "and these runs disagree there")
    return warnings


def phase_transition(table: pd.DataFrame, lam: float = LAMBDA, by: tuple[str, ...] = ("unique_tokens",)) -> pd.DataFrame:
    """Per U (and any ``by`` columns): K* = the largest K with E >= lam K, the plateau (max E), seeds averaged."""
    require(0 < lam <= 1, f"lambda must lie in (0, 1], got {lam}")
    keys = [c for c in by if c in table.columns]
    rows = []
    for key, g in table.groupby(keys):
        g = g.groupby("epochs", as_index=False).agg(reuse_rate=("reuse_rate", "mean"),
                                                    sd=("reuse_rate", "std"), n=("reuse_rate", "size"),
                                                    extrapolated=("extrapolated", "any"))
        ok = g[g["reuse_rate"] >= lam * g["epochs"]]
        k_star = float(ok["epochs"].max()) if len(ok) else float("nan")
        # between grid points: where E/K crosses lam, linear in ln K from the last K that passes to the next
        # (a doubling K grid resolves K* to a factor 2; a slope in ln U of ~1 needs finer)
        k_interp = k_star
        after = g[g["epochs"] > k_star]
        if len(ok) and len(after):
            k0, k1 = k_star, float(after["epochs"].iloc[0])
            r0 = float(ok.loc[ok["epochs"] == k0, "reuse_rate"].iloc[0]) / k0
            r1 = float(after["reuse_rate"].iloc[0]) / k1
            if r0 > r1:
                k_interp = float(np.exp(np.log(k0) + (r0 - lam) / (r0 - r1) * (np.log(k1) - np.log(k0))))
        rows.append(dict(zip(keys, key if isinstance(key, tuple) else (key,), strict=True))
                    | {"k_star": k_star, "k_star_interp": k_interp,
                       "k_star_at_grid_edge": bool(len(ok) and k_star == g["epochs"].max()),
                       "plateau": float(g["reuse_rate"].max()), "max_epochs": float(g["epochs"].max()),
                       "extrapolated": bool(g["extrapolated"].any())})
    return pd.DataFrame(rows)


def fit_log_law(kstar: pd.DataFrame, level: float = 0.95, column: str = "k_star") -> dict:
    """K*(U) = A ln U + B by least squares, with a t-interval on A (needs >= 3 values of U); ``column`` picks
    the grid K* or the interpolated one (``k_star_interp``)."""
    from scipy.stats import t as student

    k = kstar.dropna(subset=[column])
    require(len(k) >= 3, f"K*(U) = A ln U + B needs K* at 3 or more U values, got {len(k)}")
    x, y = np.log(k["unique_tokens"].to_numpy(float)), k[column].to_numpy(float)
    X = np.column_stack([x, np.ones_like(x)])
    coef, *_ = np.linalg.lstsq(X, y, rcond=None)
    resid = y - X @ coef
    dof = len(y) - 2
    s2 = float(resid @ resid / dof) if dof > 0 else float("nan")
    se = float(np.sqrt(s2 * np.linalg.inv(X.T @ X)[0, 0])) if dof > 0 else float("nan")
    q = float(student.ppf(0.5 + level / 2, dof)) if dof > 0 else float("nan")
    # what a prediction interval of K* at a new U needs (the line's standard error grows away from mean ln U)
    return {"A": float(coef[0]), "B": float(coef[1]), "A_interval": [float(coef[0] - q * se), float(coef[0] + q * se)],
            "level": level, "points": int(len(y)), "mean_log_u": float(x.mean()), "sxx": float(((x - x.mean()) ** 2).sum()),
            "residual_sd": float(np.sqrt(s2)) if dof > 0 else float("nan"), "t": q, "column": column}


def law_k_star(rd_star, lam: float = LAMBDA) -> np.ndarray:
    """The constant-R_D* law's own phase-transition epoch: the largest K with E(K) >= lam K (E = 1 + R (1 -
    e^(-(K-1)/R))), solved on a fine log grid of K; comparable with a measured K*(U; lam)."""
    from repetita.laws.worth import reuse_rate

    k = np.geomspace(1.0, 1e5, 4001)
    r = np.atleast_1d(np.asarray(rd_star, dtype=float))
    ok = reuse_rate(k[None, :], r[:, None]) >= lam * k[None, :] * (1 - 1e-12)
    return np.where(ok.any(axis=1), k[np.where(ok, np.arange(k.size), 0).max(axis=1)], 1.0)


def measured_k_star(reuse_record: dict, unique_tokens: float) -> dict:
    """K*(U) from a saved ``repetita reuse --out`` fit (K* = A ln U + B) with the confidence interval of the
    fitted line at ln U (wider the further U lies from the U values measured)."""
    fit = reuse_record.get("fit") if isinstance(reuse_record, dict) else None
    keys = ("A", "B", "mean_log_u", "sxx", "residual_sd", "t", "points")
    require(isinstance(fit, dict) and set(keys) <= set(fit),
            "the reuse file has no K*(U) fit (it needs K* at 3 or more U of one model: repetita reuse ... --out)")
    bad = [k for k in keys if not (isinstance(fit[k], int | float) and not isinstance(fit[k], bool) and np.isfinite(fit[k]))]
    if bad:
        raise UserError(f"the reuse file's K*(U) fit has a non-numeric {bad[0]!r}")
    lu = float(np.log(unique_tokens))
    k = fit["A"] * lu + fit["B"]
    half = fit["t"] * fit["residual_sd"] * np.sqrt(1 / fit["points"] + (lu - fit["mean_log_u"]) ** 2 / fit["sxx"])
    return {"k_star": k, "interval": [k - half, k + half], "A": fit["A"], "lambda": reuse_record.get("lambda", LAMBDA),
            "extrapolated": bool(abs(lu - fit["mean_log_u"]) > np.sqrt(fit["sxx"] / fit["points"]) * 2)}
