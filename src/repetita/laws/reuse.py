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

from repetita.errors import UserError, require

LAMBDA = 0.75
MONOTONE_RTOL = 0.005  # a reference may wiggle by this much (evaluation noise) before it counts as rising


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
        from repetita.laws.allocate import predicted_loss

        d = np.geomspace(d_min, d_max, 4000)  # log-log interpolation error ~1e-6 relative
        return cls(d, predicted_loss(record, params, d, d), name=f"{record['law']} law at N = {params:.3g}")

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
        return np.exp(out), outside


def effective_reuse(runs: pd.DataFrame, reference, extrapolate: bool = False) -> pd.DataFrame:
    """E(K, U) for every run: ``runs`` has unique_tokens, epochs (or tokens) and loss (and params when the
    reference is a law: ``reference(params) -> Reference``)."""
    from repetita.laws.data import canonical

    df = canonical(runs).reset_index(drop=True)
    if "epochs" not in df and {"tokens", "unique_tokens"} <= set(df.columns):
        df = df.assign(epochs=df["tokens"] / df["unique_tokens"])
    for col in ("unique_tokens", "epochs", "loss"):
        require(col in df.columns, f"runs need column {col!r}; the table has: {', '.join(map(str, df.columns))}")
        v = pd.to_numeric(df[col], errors="coerce")
        require(v.notna().all() and np.all(np.isfinite(v)) and (v > 0).all(), f"column {col!r}: values must be positive numbers")
    d_eff = np.empty(len(df))
    flag = np.zeros(len(df), dtype=bool)
    if isinstance(reference, Reference):
        d_eff[:], flag[:] = reference.tokens_for(df["loss"].to_numpy(float), extrapolate)
    else:
        require("params" in df.columns, "a law reference needs the runs' params column")
        for n, idx in df.groupby("params").groups.items():
            d_eff[idx], flag[idx] = reference(float(n)).tokens_for(df.loc[idx, "loss"].to_numpy(float), extrapolate)
    return df.assign(effective_tokens=d_eff, reuse_rate=d_eff / df["unique_tokens"], extrapolated=flag)


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
        rows.append(dict(zip(keys, key if isinstance(key, tuple) else (key,), strict=True))
                    | {"k_star": k_star, "k_star_at_grid_edge": bool(len(ok) and k_star == g["epochs"].max()),
                       "plateau": float(g["reuse_rate"].max()), "max_epochs": float(g["epochs"].max()),
                       "extrapolated": bool(g["extrapolated"].any())})
    return pd.DataFrame(rows)


def fit_log_law(kstar: pd.DataFrame, level: float = 0.95) -> dict:
    """K*(U) = A ln U + B by least squares, with a t-interval on A (needs >= 3 values of U)."""
    from scipy.stats import t as student

    k = kstar.dropna(subset=["k_star"])
    require(len(k) >= 3, f"K*(U) = A ln U + B needs K* at 3 or more U values, got {len(k)}")
    x, y = np.log(k["unique_tokens"].to_numpy(float)), k["k_star"].to_numpy(float)
    X = np.column_stack([x, np.ones_like(x)])
    coef, *_ = np.linalg.lstsq(X, y, rcond=None)
    resid = y - X @ coef
    dof = len(y) - 2
    s2 = float(resid @ resid / dof) if dof > 0 else float("nan")
    se = float(np.sqrt(s2 * np.linalg.inv(X.T @ X)[0, 0])) if dof > 0 else float("nan")
    q = float(student.ppf(0.5 + level / 2, dof)) if dof > 0 else float("nan")
    return {"A": float(coef[0]), "B": float(coef[1]), "A_interval": [float(coef[0] - q * se), float(coef[0] + q * se)],
            "level": level, "points": int(len(y))}
