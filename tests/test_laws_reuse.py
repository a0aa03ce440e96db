"""E(K, U) measured against a fresh-data reference (repetita.laws.reuse)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from repetita.cli import main
from repetita.errors import UserError
from repetita.laws.evaluate import predicted_loss
from repetita.laws.record import PUBLISHED as PUBLISHED_FIT
from repetita.laws.record import load as load_fit
from repetita.laws.reuse import Reference, effective_reuse, fit_log_law, phase_transition
from repetita.laws.worth import reuse_rate

# Muennighoff et al.'s published point (the shipped fit file), as a fit with nothing frozen
PUBLISHED = {"law": "data-constrained", "spec": {"law": "data-constrained"}, "params": load_fit(PUBLISHED_FIT)["params"]}
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


def test_anchoring_and_the_implied_constant_rd_star():
    """A reference off by a constant in loss (another corpus, a law fitted elsewhere) is corrected by anchoring
    at the one-epoch run; fit_rd_star reads the law's own R_D* back from the measured E."""
    from repetita.laws.reuse import fit_rd_star

    runs = _runs(PUBLISHED, us=(1e10,))
    shifted = runs.assign(loss=runs["loss"] + 0.3)  # the same curves on a harder corpus
    plain = effective_reuse(shifted, lambda n: Reference.from_law(PUBLISHED, n), extrapolate=True)
    anchored = effective_reuse(shifted, lambda n: Reference.from_law(PUBLISHED, n), anchor=True)
    assert plain["reuse_rate"].iloc[0] < 0.3  # without the anchor the one-epoch run looks nearly worthless
    assert anchored["reference_shift"].iloc[0] == pytest.approx(0.3, abs=1e-6)
    # the shift moves the reference's level, not its shape: E is the law's up to the Chinchilla part's curvature
    assert np.allclose(anchored["reuse_rate"], reuse_rate(runs["epochs"].to_numpy(), 15.387756), rtol=2e-3)
    fit = fit_rd_star(effective_reuse(runs, lambda n: Reference.from_law(PUBLISHED, n)), ("params",))
    assert fit["rd_star"].iloc[0] == pytest.approx(15.387756, rel=1e-3) and fit["rms_E"].iloc[0] < 1e-3
    with pytest.raises(UserError, match="needs a one-epoch run"):
        effective_reuse(shifted[shifted["epochs"] > 1], lambda n: Reference.from_law(PUBLISHED, n), anchor=True)


def test_inconsistent_tokens_and_epochs_are_refused():
    runs = _runs(PUBLISHED, us=(1e10,))
    runs.loc[3, "tokens"] *= 1.5
    with pytest.raises(UserError, match="tokens != epochs x unique_tokens"):
        effective_reuse(runs, lambda n: Reference.from_law(PUBLISHED, n))


def test_datablations_curves_measurement(capsys):
    """docs/reuse.md: the datablations curves, final evaluations, against the published law's Chinchilla part
    anchored at each model's one-epoch run, with 200 bootstrap draws of each final loss."""
    assert main(["reuse", "--example", "datablations-curves", "--law-file", "example:datablations-published",
                 "--chinchilla-part", "--anchor", "--intervals", "200", "--by", "params,corpus", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    table = pd.DataFrame(out["table"])
    assert len(table) == 48 and not table["extrapolated"].any()
    assert np.allclose(table.loc[table["epochs"] == 1, "reuse_rate"], 1.0, atol=1e-4)
    assert (table["reuse_rate_lo"] <= table["reuse_rate"] + 1e-9).all() and (table["reuse_rate"] <= table["reuse_rate_hi"] + 1e-9).all()
    e44 = table[table["epochs"] == 44]["reuse_rate"]
    assert e44.max() < 0.7  # 44 epochs are worth less than one pass over their own unique tokens
    ks = {(r["params"], r["corpus"]): r for r in out["k_star"]}
    assert [ks[(n, c)]["k_star"] for n in (2810000000, 4246500000, 8670000000) for c in ("c4", "oscar")] == [5, 2, 4, 3, 4, 3]
    peak = sorted(round(r["rd_star_to_peak"], 2) for r in out["rd_star_implied"])
    assert peak == pytest.approx([2.43, 2.74, 3.12, 3.66, 3.72, 5.81], abs=0.01)  # all far below the published 15.4


def test_a_measured_k_star_law_stands_beside_the_fitted_laws(tmp_path, capsys):
    """repetita reuse --out saves K*(U) = A ln U + B; repetita plan --reuse-file shows it at the plan's U, with the
    line's confidence interval, beside each law's own K* (largest K with E_law(K) >= lambda K)."""
    from repetita.laws.reuse import law_k_star

    rec = {"law": "reuse", "spec": {"law": "reuse"}, "params": PUBLISHED["params"] | {"r0": -30.0, "r1": 2.5}}
    rec["params"].pop("rd_star")
    (tmp_path / "law.json").write_text(json.dumps(rec))
    _runs(rec, us=(1e8, 1e9, 1e10, 1e11)).to_csv(tmp_path / "runs.csv", index=False)
    assert main(["reuse", str(tmp_path / "runs.csv"), "--law-file", str(tmp_path / "law.json"), "--by",
                 "params,unique_tokens", "--out", str(tmp_path / "reuse.json"), "--json"]) == 0
    fit = json.loads(capsys.readouterr().out)["fit"]
    assert main(["plan", "--law-file", "example:datablations-published", "--params", "1e7", "--unique-tokens", "3e9",
                 "--reuse-file", str(tmp_path / "reuse.json"), "--json"]) == 0
    m = json.loads(capsys.readouterr().out)["measured_k_star"]
    assert m["k_star"] == pytest.approx(fit["A"] * np.log(3e9) + fit["B"])
    assert m["interval"][0] < m["k_star"] < m["interval"][1] and not m["extrapolated"]
    # the published law's own K*: brute force over whole epochs agrees with the solver to the grid's spacing
    ks = np.arange(1, 200)
    brute = ks[reuse_rate(ks, 15.387756) >= 0.75 * ks].max()
    law = m["laws"]["example:datablations-published"]
    assert law == pytest.approx(law_k_star(15.387756)[0]) and brute <= law < brute + 1


def test_malformed_reuse_file_is_one_line(tmp_path, capsys):
    f = tmp_path / "reuse.json"
    for content, message in ((json.dumps({"fit": 3}), "has no K*(U) fit"),
                             (json.dumps({"fit": {"A": 1, "B": 2, "mean_log_u": "x", "sxx": 1, "residual_sd": 1,
                                                  "t": 2, "points": 3}}), "non-numeric 'mean_log_u'")):
        f.write_text(content)
        assert main(["plan", "--law-file", "example:datablations-published", "--compute", "1e21", "--unique-tokens",
                     "25e9", "--reuse-file", str(f)]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1


def test_one_epoch_count_per_dataset_size_is_warned(capsys):
    """The datablations runs vary U with K (fixed tokens per model): grouped by U each has one K, so K*(U) means
    nothing there and the command says so; grouped by model and corpus it does not."""
    base = ["reuse", "--example", "datablations-curves", "--law-file", "example:datablations-published",
            "--chinchilla-part", "--anchor", "--json"]
    assert main(base) == 0
    assert any("one K per U" in w for w in json.loads(capsys.readouterr().out)["warnings"])
    assert main([*base, "--by", "params,corpus"]) == 0
    assert not any("one K per U" in w for w in json.loads(capsys.readouterr().out)["warnings"])
