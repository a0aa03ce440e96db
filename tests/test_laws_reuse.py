"""E(K, U) measured against a fresh-data reference (repetita.laws.reuse)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from repetita.cli import main
from repetita.errors import UserError
from repetita.laws.allocate import predicted_loss
from repetita.laws.plan import reuse_rate
from repetita.laws.reuse import Reference, effective_reuse, fit_log_law, phase_transition

PUBLISHED = {"law": "data-constrained", "spec": {"law": "data-constrained"},
             "params": {"a": 6.255414, "b": 7.3049974, "e": 0.6254804, "alpha": 0.3526596, "beta": 0.3526596,
                        "rd_star": 15.387756, "rn_star": 5.309743}}
KS = np.array([1, 2, 4, 8, 16, 32, 64, 128], dtype=float)


def _runs(record, n=1e7, us=(1e9, 1e10, 1e11, 1e12)):
    rows = [{"params": n, "unique_tokens": u, "epochs": k, "tokens": k * u,
             "loss": float(predicted_loss(record, n, k * u, u))} for u in us for k in KS]
    return pd.DataFrame(rows)


def test_recovers_the_laws_own_reuse_rate():
    """Runs drawn from the published law, measured against the same law with every token fresh: E(K, U)
    is the law's D'/U, and K* is where E falls below 0.75 K (the same for every U: constant R_D*)."""
    runs = _runs(PUBLISHED)
    table = effective_reuse(runs, lambda n: Reference.from_law(PUBLISHED, n))
    assert not table["extrapolated"].any()
    expected = reuse_rate(table["epochs"].to_numpy(), 15.387756)
    assert np.allclose(table["reuse_rate"], expected, rtol=1e-4)
    ks = phase_transition(table, 0.75)
    k_true = KS[reuse_rate(KS, 15.387756) >= 0.75 * KS].max()
    assert (ks["k_star"] == k_true).all() and len(ks) == 4
    assert fit_log_law(ks)["A"] == pytest.approx(0.0, abs=1e-9)


def test_n_aware_law_gives_a_growing_k_star():
    """A reuse law with R_D*(U) = r0 + r1 ln U: K* grows with U and the fitted A is positive."""
    rec = {"law": "reuse", "spec": {"law": "reuse"},
           "params": PUBLISHED["params"] | {"r0": -30.0, "r1": 2.5}}
    rec["params"].pop("rd_star")
    table = effective_reuse(_runs(rec, us=(1e8, 1e9, 1e10, 1e11)), lambda n: Reference.from_law(rec, n))
    ks = phase_transition(table, 0.75).sort_values("unique_tokens")
    assert ks["k_star"].is_monotonic_increasing and ks["k_star"].iloc[-1] > ks["k_star"].iloc[0]
    fit = fit_log_law(ks)
    assert fit["A"] > 0 and fit["A_interval"][0] < fit["A"] < fit["A_interval"][1]


def test_reference_must_fall_and_cover_the_losses():
    with pytest.raises(UserError, match="reference loss rises"):
        Reference([1e6, 2e6, 4e6], [3.0, 2.9, 3.2])
    ref = Reference([1e6, 1e7, 1e8], [3.0, 2.5, 2.2])
    with pytest.raises(UserError, match="outside"):
        ref.tokens_for([2.0])
    d, flag = ref.tokens_for([2.0, 2.5], extrapolate=True)
    assert flag.tolist() == [True, False] and d[0] > 1e8 and d[1] == pytest.approx(1e7)


def test_cli_with_a_fresh_curve(tmp_path, capsys):
    fresh = tmp_path / "fresh.csv"
    d = np.geomspace(1e6, 1e16, 60)
    pd.DataFrame({"tokens": d, "loss": predicted_loss(PUBLISHED, 1e7, d, d)}).to_csv(fresh, index=False)
    runs = tmp_path / "runs.csv"
    _runs(PUBLISHED).drop(columns=["params"]).to_csv(runs, index=False)
    png = tmp_path / "reuse.png"
    assert main(["reuse", str(runs), "--fresh", str(fresh), "--plot", str(png), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out["table"]) == 32 and len(out["k_star"]) == 4 and "fit" in out and png.stat().st_size > 20_000
    assert main(["reuse", str(runs)]) == 2
    assert "give the fresh-data reference" in capsys.readouterr().err
