"""The fit file: the one format a fitted law is saved in, read back from, and shipped as (``example:NAME``).

A fit file is a JSON object: ``law``, ``spec`` (the ``FitSpec``), ``params`` (every parameter, fitted and
frozen), ``natural``, ``free``, ``objective``, ``r2``, ``n_rows``, ``n_starts``, ``warnings``, ``region``
(the evidence: largest N, epochs, compute, tokens per parameter, epochs seen per model size),
``residual_log_sd`` and ``dof`` (the scatter a prediction interval adds), and optionally ``uncertainty``
(what ``repetita plan`` draws parameters from: a sandwich covariance or bootstrap samples), ``holdout``
and ``source``. ``repetita fit --out``, the study report and the shipped published fits all write it
through :func:`build` and :func:`save`; every reader goes through :func:`load` and :func:`estimator`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from repetita.errors import require
from repetita.io import read_json, write_json

SAVED_SAMPLES = 1000  # bootstrap samples kept in a fit file (enough for a plan's percentiles)


def uncertainty_block(u: dict) -> dict:
    """The saved form of ``uncertainty.laplace`` or ``uncertainty.bootstrap`` output."""
    block = {"method": u["method"], "level": u["level"], "free": list(u["free"])}
    if u["method"] == "bootstrap":
        block |= {"n": u["n_boot"], "seed": u["seed"], "samples": np.asarray(u["samples"])[:SAVED_SAMPLES].tolist()}
    else:
        block["cov"] = np.asarray(u["cov"]).tolist()
    return block


def build(est, *, uncertainty: dict | None = None, holdout: dict | None = None, source: str | None = None) -> dict:
    """The fit file of a fitted ``LawFit``; ``uncertainty`` is a laplace or bootstrap result."""
    record = est.result()
    if source is not None:
        record["source"] = source
    if holdout is not None:
        record["holdout"] = holdout
    if uncertainty is not None:
        record["intervals"] = uncertainty["params"]
        record["uncertainty"] = uncertainty_block(uncertainty)
    return record


def save(path: str | Path, record: dict) -> Path:
    return write_json(path, record)


def example_path(name: str) -> Path:
    """A published fit shipped with repetita (``example:datablations-published``, ``example:chinchilla-epoch``)."""
    from importlib import resources

    folder = resources.files("repetita.examples") / "laws"
    known = sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".json"))
    require(name in known, f"unknown example law file {name!r}; shipped: {', '.join(known)}")
    return Path(str(folder / f"{name}.json"))


PUBLISHED = "example:datablations-published"  # Muennighoff et al. 2023's published fit, as shipped


def published_chinchilla() -> dict[str, float]:
    """The Chinchilla part of Muennighoff et al.'s published fit (a, b, e, alpha, beta: their C4 fit with
    alpha = beta), read from the shipped fit file: the one place these numbers are written."""
    return {k: float(v) for k, v in load(PUBLISHED)["spec"]["freeze"].items()}


def freeze_args(values: dict[str, float]) -> list[str]:
    """``--freeze NAME=VALUE`` arguments for ``repetita fit``, in the given order."""
    return [arg for k, v in values.items() for arg in ("--freeze", f"{k}={v:.8g}")]


def load(path_text: str) -> dict:
    """A fit file from a path or ``example:NAME``; a missing, malformed or foreign file is one line."""
    path = example_path(path_text.split(":", 1)[1]) if path_text.startswith("example:") else Path(path_text)
    require(path.is_file(), f"{path}: no such fit file (write one with repetita fit ... --out FIT.json)")
    record = read_json(path, "fit file")
    require(isinstance(record, dict) and "law" in record and "params" in record, f"{path}: not a repetita fit file")
    return record


def estimator(fit):
    """A fitted ``LawFit`` as given, or rebuilt from a fit file (validated: law, spec, every parameter)."""
    from repetita.laws.fit import LawFit

    return fit if isinstance(fit, LawFit) else LawFit.from_result(fit)


def same_data(records: dict[str, dict]) -> list[str]:
    """Warnings when fit files compared side by side were fitted on different tables (their row counts differ,
    or a quantity of the evidence region that both records state), so that their held-out errors and
    decisions are not like for like. Laws read different columns, so a region key one record lacks (a
    Chinchilla fit has no epochs) is not a difference."""
    import math

    items = list(records.items())
    if len(items) < 2:
        return []
    (n0, r0), differ = items[0], None
    for name, r in items[1:]:
        if r.get("n_rows") != r0.get("n_rows"):
            differ = f"{n0} and {name}: {r0.get('n_rows')} and {r.get('n_rows')} rows"
            break
        a, b = r0.get("region") or {}, r.get("region") or {}
        key = next((k for k in sorted(set(a) & set(b)) if isinstance(a[k], int | float) and isinstance(b[k], int | float)
                    and not math.isclose(a[k], b[k], rel_tol=1e-9)), None)
        if key is not None:
            differ = f"{n0} and {name}: {key} {a[key]:.4g} and {b[key]:.4g}"
            break
    if differ is None:
        return []
    return [f"the fit files were fitted on different data ({differ}): their decisions are compared, "
            "not pooled"]


def sampled_records(record: dict, n: int = 400, seed: int = 0) -> list[dict] | None:
    """Fit records with parameters drawn from the fit's saved uncertainty (``uncertainty.theta_draws``);
    None when the fit saved none, one line when a parameter has no finite interval."""
    from repetita.laws.fit import LawFit
    from repetita.laws.uncertainty import theta_draws

    est = LawFit.from_result(record)
    thetas = theta_draws(est, n, seed=seed)
    if thetas is None:
        return None
    names = est.spec.law_obj.params
    return [record | {"params": dict(zip(names, map(float, t), strict=True))} for t in thetas]
