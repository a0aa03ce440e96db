"""The linear-regression problem of the theory lab: spectrum, target, noise and design.

y = <w*, x> + xi with E xi^2 = sigma^2 and x = H^(1/2) z, H = diag(lambda), z with independent
coordinates of mean 0, variance 1 and fourth moment kappa = E z^4.  kappa is all the one-pass risk
recursion needs to know about the design (see exact.py):

    gaussian    z ~ N(0, 1)                 kappa = 3
    rademacher  z = +-1                     kappa = 1
    uniform     z ~ U(-sqrt 3, sqrt 3)      kappa = 9/5

Spectrum strings (the eigenvalues are always scaled so that lambda_1 = max lambda = 1, so eta is in
units of 1/lambda_max):

    flat            lambda_i = 1                              (H = I)
    well:LO         lambda_i geometric from 1 down to LO, 0 < LO <= 1 (well conditioned, kappa(H) = 1/LO)
    power:A         lambda_i = i^-A, A > 0                    (power law)
    file:PATH.npy   a 1-d array of positive eigenvalues (its length overrides d)

Target strings (w* always has ||w*|| = 1 unless read from a file):

    flat            w*_i = 1/sqrt(d)
    power:B         w*_i^2 proportional to i^-B
    random:SEED     w* Gaussian, normalised, drawn with numpy seed SEED
    file:PATH.npy   a 1-d array of length d, used as is
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from repetita.errors import UserError, require

DESIGNS = {"gaussian": 3.0, "rademacher": 1.0, "uniform": 9.0 / 5.0}

SPECTRUM_HELP = (
    "eigenvalues of H, scaled to lambda_max = 1: 'flat' (H = I), 'well:LO' (geometric from 1 to LO), "
    "'power:A' (lambda_i = i^-A), 'file:PATH.npy'"
)
WSTAR_HELP = "target w*, ||w*|| = 1: 'flat', 'power:B' (w_i^2 ~ i^-B), 'random:SEED', 'file:PATH.npy'"


def _number(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise UserError(f"{what}: '{text}' is not a number") from None
    require(np.isfinite(value), f"{what}: '{text}' is not finite")
    return value


def _load_vector(path: str, what: str) -> np.ndarray:
    p = Path(path)
    require(p.is_file(), f"{what}: file '{path}' not found")
    try:
        arr = np.load(p, allow_pickle=False)
    except Exception as exc:  # any unreadable file is the user's to fix
        raise UserError(f"{what}: cannot read '{path}' as .npy ({type(exc).__name__})") from None
    arr = np.asarray(arr, dtype=float)
    require(arr.ndim == 1 and arr.size > 0, f"{what}: '{path}' must hold a non-empty 1-d array")
    require(bool(np.all(np.isfinite(arr))), f"{what}: '{path}' holds non-finite values")
    return arr


def _split(spec: str, what: str) -> tuple[str, str | None]:
    require(isinstance(spec, str) and spec.strip() != "", f"{what}: empty string")
    kind, _, arg = spec.strip().partition(":")
    return kind.lower(), (arg if _ else None)


def parse_spectrum(spec: str, d: int) -> np.ndarray:
    """Eigenvalues (descending, max 1) for a spectrum string; see the module docstring."""
    kind, arg = _split(spec, "spectrum")
    if kind == "file":
        require(arg is not None and arg != "", "spectrum 'file:' needs a path")
        lam = _load_vector(arg, "spectrum")
        require(bool(np.all(lam > 0)), f"spectrum: '{arg}' must hold positive eigenvalues")
        lam = np.sort(lam)[::-1]
        return lam / lam[0]
    require(int(d) >= 1, f"d must be a positive integer, got {d}")
    i = np.arange(1, int(d) + 1, dtype=float)
    if kind == "flat":
        require(arg is None, f"spectrum 'flat' takes no argument, got '{spec}'")
        return np.ones(int(d))
    if kind == "well":
        require(arg is not None, "spectrum 'well:LO' needs LO, e.g. well:0.1")
        lo = _number(arg, "spectrum well:LO")
        require(0 < lo <= 1, f"spectrum well:LO needs 0 < LO <= 1, got {lo}")
        return np.geomspace(1.0, lo, int(d)) if d > 1 else np.ones(1)
    if kind == "power":
        require(arg is not None, "spectrum 'power:A' needs A, e.g. power:1.5")
        a = _number(arg, "spectrum power:A")
        require(a > 0, f"spectrum power:A needs A > 0, got {a}")
        return i**-a
    raise UserError(f"spectrum '{spec}' not understood; use flat, well:LO, power:A or file:PATH.npy")


def parse_wstar(spec: str, d: int) -> np.ndarray:
    """The target vector for a target string; see the module docstring."""
    kind, arg = _split(spec, "wstar")
    if kind == "file":
        require(arg is not None and arg != "", "wstar 'file:' needs a path")
        w = _load_vector(arg, "wstar")
        require(w.size == d, f"wstar: '{arg}' has length {w.size}, the spectrum has d = {d}")
        return w
    if kind == "flat":
        require(arg is None, f"wstar 'flat' takes no argument, got '{spec}'")
        return np.full(d, 1.0 / np.sqrt(d))
    if kind == "power":
        require(arg is not None, "wstar 'power:B' needs B, e.g. power:1")
        b = _number(arg, "wstar power:B")
        w = np.arange(1, d + 1, dtype=float) ** (-b / 2.0)
        return w / np.linalg.norm(w)
    if kind == "random":
        require(arg is not None, "wstar 'random:SEED' needs an integer seed")
        try:
            seed = int(arg)
        except ValueError:
            raise UserError(f"wstar random:SEED needs an integer seed, got '{arg}'") from None
        w = np.random.default_rng(seed).standard_normal(d)
        return w / np.linalg.norm(w)
    raise UserError(f"wstar '{spec}' not understood; use flat, power:B, random:SEED or file:PATH.npy")


@dataclass(frozen=True)
class Problem:
    """One regression problem. Build with ``Problem.from_strings`` or directly from arrays."""

    lam: np.ndarray
    wstar: np.ndarray
    sigma: float = 1.0
    design: str = "gaussian"
    spectrum: str = field(default="custom", compare=False)
    wstar_spec: str = field(default="custom", compare=False)

    def __post_init__(self):
        lam = np.ascontiguousarray(self.lam, dtype=float)
        w = np.ascontiguousarray(self.wstar, dtype=float)
        require(lam.ndim == 1 and lam.size >= 1, "spectrum must be a non-empty 1-d array")
        require(bool(np.all(np.isfinite(lam)) and np.all(lam > 0)), "spectrum eigenvalues must be positive")
        require(w.shape == lam.shape, f"wstar has shape {w.shape}, the spectrum {lam.shape}")
        require(bool(np.all(np.isfinite(w))), "wstar must be finite")
        require(np.isfinite(self.sigma) and self.sigma > 0, f"sigma must be positive, got {self.sigma}")
        require(self.design in DESIGNS, f"design '{self.design}' unknown; use one of {sorted(DESIGNS)}")
        object.__setattr__(self, "lam", lam)
        object.__setattr__(self, "wstar", w)
        object.__setattr__(self, "sigma", float(self.sigma))

    @classmethod
    def from_strings(
        cls, spectrum: str = "flat", d: int = 10, sigma: float = 1.0, wstar: str = "flat", design: str = "gaussian"
    ) -> Problem:
        require(isinstance(d, int | np.integer) and d >= 1, f"d must be a positive integer, got {d}")
        lam = parse_spectrum(spectrum, int(d))
        return cls(lam, parse_wstar(wstar, lam.size), sigma, design, spectrum, wstar)

    @property
    def d(self) -> int:
        return int(self.lam.size)

    @property
    def kappa(self) -> float:
        return DESIGNS[self.design]

    def initial_risk(self) -> float:
        """R(0) = 1/2 w*^T H w*, the risk of the starting point w = 0."""
        return 0.5 * float(np.sum(self.lam * self.wstar**2))

    def to_dict(self) -> dict:
        return {
            "spectrum": self.spectrum,
            "wstar": self.wstar_spec,
            "d": self.d,
            "sigma": self.sigma,
            "design": self.design,
        }
