"""What a law is, the helpers its form is written with, and the one registry of laws.

A law is a :class:`Law`: a vectorized form returning **log predicted loss** with shape ``(S, n)`` for a
batch of ``S`` parameter vectors ``theta`` (``(S, P)``) and ``n`` design rows, plus its parameter
names, bounds, initial grid and the columns it needs. Forms use only operations analytic in ``theta``
(exp, log, powers, and ``np.minimum``/``np.maximum``, which compare complex numbers by real part), so
:mod:`repetita.laws.fit` gets exact gradients by complex-step differentiation; :func:`lse`, :func:`col`
and :func:`param` are the public helpers forms are written with.

A law family registers its laws where it defines them, with :func:`register_law`; the built-in
families (``forms``: Chinchilla, data-constrained, reuse, power, multi-power; ``overfit``: laws that
turn) are imported by the package (``repetita/laws/__init__.py``). ``fit``, ``laws``, the benchmark,
the study analysis and the planner read :data:`LAWS` and nothing else.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from repetita.errors import UserError
from repetita.registry import Registry

Array = np.ndarray


def lse(*terms: Array) -> Array:
    """log(sum(exp(t))) with the max factored out by its real part (complex-safe)."""
    m = terms[0].real.copy()
    for t in terms[1:]:
        m = np.maximum(m, t.real)
    return m + np.log(sum(np.exp(t - m) for t in terms))


def col(X: dict[str, Array], name: str) -> Array:
    """Column ``name`` of the design as a (1, n) row, broadcasting against (S, 1) parameters."""
    return X[name][None, :]


def param(theta: Array, i: int) -> Array:
    """Parameter ``i`` of every draw as an (S, 1) column."""
    return theta[:, i : i + 1]


@dataclass(frozen=True)
class Law:
    """A named law: its form, parameter names, bounds, default init grid and required columns."""

    name: str
    func: Callable[[Array, dict[str, Array]], Array]
    params: tuple[str, ...]
    bounds: dict[str, tuple[float, float]]
    grid: dict[str, tuple[float, ...]]
    columns: tuple[str, ...]
    log_params: tuple[str, ...] = ()  # fitted as ln of the natural value (a = ln A)
    defaults: dict[str, float] = field(default_factory=dict)  # values of params the grid omits
    doc: str = ""
    # Optional closed-form (log loss (n,), Jacobian (P, n)) at one theta; complex step otherwise.
    grad: Callable[[Array, dict[str, Array]], tuple[Array, Array]] | None = None
    # Optional closed-form batch (log loss (S, n), Jacobian (S, P, n)) for the vectorized refinement.
    batch_grad: Callable[[Array, dict[str, Array]], tuple[Array, Array]] | None = None
    # R_D*(params, U): how much repeated data is worth; None = the law has no notion of repetition.
    rd_star: Callable[[dict, Array], Array] | None = None
    # (params, N) -> (E_rest, B, beta) of L = E_rest + B / D'^beta; None = no data term.
    data_term: Callable[[dict, Array], tuple] | None = None
    axis: str | None = None  # the column along which fits are plotted (None: the fit's own axis)
    needs_axis: bool = False  # the power law: the user names the column x
    curves: bool = False  # the design is built from loss curves (multipower.prepare), not run rows
    # The simpler law this one extends, and how to turn its fitted parameters into starts here: a free fit
    # is seeded from the nested fit (Chinchilla before data-constrained, data-constrained before reuse).
    parent: str | None = None
    seeds: Callable[[dict, dict], list[dict]] | None = None
    # True when the loss never rises with more epochs at fixed N and U (its D' never falls): its turn is
    # infinite without a search (laws/overfit.py)
    monotone: bool = True
    # Fitted by a study's analysis on its standard runs (monotone laws up to each (N, U)'s turn, turning laws
    # on every run) and compared there by held-out error (repetita.study.analysis)
    study: bool = False
    # Why this law is left out of the default sets (the benchmark's laws, the list's ranking): a measured
    # reason it must not be read unasked; "" = in them. It can still be fitted by name (--law, --only).
    retired: str = ""
    # Laws over whole curves that build their own design (laws/curve_law.py): the table -> (X, y, row order)
    design: Callable | None = None
    # Parameters the design cannot determine, frozen at these values (one model size: no size term)
    fixed: Callable[[dict], dict[str, float]] | None = None
    # Grid values scaled to the design (the data term's amplitude depends on the table's units)
    grid_for: Callable[[dict], dict[str, tuple]] | None = None
    # What the law had to assume about the table, said once per fit (a schedule the table does not give)
    notes: Callable | None = None

    def __post_init__(self):
        missing = set(self.params) - set(self.grid) - set(self.defaults)
        if missing:
            raise ValueError(f"law {self.name}: no grid or default for {sorted(missing)}")

    def prepare(self, df, axis: str | None = None, warmup_steps: int | None = None, bin_width: int = 64):
        """Validated design dict, observed losses and the table positions of the design rows."""
        from repetita.laws import data as tables

        if self.design is not None:
            return self.design(df.reset_index(drop=True), warmup_steps=warmup_steps, bin_width=bin_width)
        if self.curves:
            from repetita.laws import multipower

            X, y, frame = multipower.prepare(df.reset_index(drop=True), warmup_steps=warmup_steps,
                                             bin_width=bin_width)
            return X, y, frame.index.to_numpy()
        if self.needs_axis:
            df = tables.canonical(df)
            tables.require_columns(df, (axis,), f"--axis {axis}")
            df = df.rename(columns={axis: "x"}) if axis != "x" else df
        runs = tables.runs_frame(df, self.columns)
        return tables.design(runs), runs["loss"].to_numpy(), np.arange(len(runs))

    def repetition(self, params: dict, unique) -> Array:
        """R_D* at dataset size U (constant for the published law, inf for Chinchilla)."""
        if self.rd_star is None:
            raise UserError(f"law {self.name!r} has no notion of repeated data; plan with a data-constrained "
                            "or reuse fit")
        return np.asarray(self.rd_star(params, np.asarray(unique, dtype=float)), dtype=float)

    def turn(self, params: dict, n, u) -> Array:
        """Epochs past which this law's loss rises at model size N on U unique tokens (inf: never)."""
        return turn(self, params, n, u)

    def data_terms(self, params: dict, n) -> tuple:
        if self.data_term is None:
            raise UserError(f"law {self.name!r} has no data term")
        return self.data_term(params, np.asarray(n, dtype=float))

    def plot_axis(self, spec_axis: str | None, columns) -> str:
        if self.needs_axis:
            return spec_axis
        return self.axis if self.axis in columns else list(columns)[0]


LAWS: Registry = Registry("law")


def register_law(law: Law) -> Law:
    """Add ``law`` to :data:`LAWS` under its name; a second law of the same name is refused in one line
    naming both places it was registered from."""
    return LAWS.add(law.name, law)


def get_law(name: str) -> Law:
    if name not in LAWS:
        raise UserError(f"unknown law {name!r}; choose one of {', '.join(LAWS)}")
    return LAWS[name]


def natural_params(law: Law, params: dict[str, float]) -> dict[str, float]:
    """Fitted values with the log-parametrised ones also given naturally (a -> A = e^a)."""
    out = dict(params)
    for name in law.log_params:
        if name in params:
            out[name.upper()] = float(np.exp(params[name]))
    return out


def law_loss(law: Law, theta: np.ndarray, params, tokens, unique) -> np.ndarray:
    """Loss (S, m) of S parameter vectors at m points; the points are (1, m) arrays shared by every draw,
    or (S, m) arrays, one row per draw. Includes D < U (a fraction of the corpus seen once)."""
    n, d, u = np.broadcast_arrays(*(np.atleast_2d(np.asarray(v, dtype=float)) for v in (params, tokens, unique)))
    X = {"params": n, "tokens": d, "unique_tokens": u,
         "log_params": np.log(n), "log_tokens": np.log(d), "log_unique": np.log(u)}
    with np.errstate(all="ignore"):
        return np.exp(law.func(np.asarray(theta, dtype=float), X)[0])


TURN_GRID = np.logspace(0.0, 6.0, 361)  # 1 to 1e6 epochs, 4% apart; refined by a parabola in log K


def turn(law: Law, params: dict, n, u) -> Array:
    """Epochs K >= 1 at which the law's loss at model size N on U unique tokens is lowest, vectorized over
    broadcast (N, U); infinity where the loss still falls at 1e6 epochs or the law never rises.

    The minimum is searched on a log grid and refined by a parabola through the three grid points around
    it (log K), which puts it within a fraction of the 4% grid step.
    """
    n, u = np.broadcast_arrays(np.asarray(n, dtype=float), np.asarray(u, dtype=float))
    shape = n.shape
    if law.monotone:
        return np.full(shape, np.inf)
    n, u = n.ravel(), u.ravel()
    k = TURN_GRID
    theta = np.array([[params[p] for p in law.params]])
    with np.errstate(all="ignore"):  # the parabola below is fitted to the log loss, as the laws' forms return it
        loss = np.log(law_loss(law, theta, np.repeat(n, k.size), np.repeat(u, k.size) * np.tile(k, n.size),
                               np.repeat(u, k.size))[0]).reshape(n.size, k.size)
    loss = np.where(np.isfinite(loss), loss, np.inf)
    i = np.argmin(loss, axis=1)
    out = np.full(n.size, np.inf)
    inside = (i > 0) & (i < k.size - 1)
    out[i == 0] = 1.0
    if inside.any():
        rows_in = np.flatnonzero(inside)
        j = i[inside]
        y0, y1, y2 = loss[rows_in, j - 1], loss[rows_in, j], loss[rows_in, j + 1]
        step = np.log(k[1] / k[0])
        denom = y0 - 2 * y1 + y2
        shift = np.where(denom > 0, 0.5 * (y0 - y2) / np.where(denom > 0, denom, 1.0), 0.0)
        out[rows_in] = np.exp(np.log(k[j]) + np.clip(shift, -1, 1) * step)
    return out.reshape(shape)
