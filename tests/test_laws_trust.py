"""Uncertainty, prediction and the refusals around them: vectorized bootstrap against per-resample fits,
intervals carried into plans, multi-power prediction of held-out schedules, bad fit files and flags."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from repetita.cli import main
from repetita.examples import load_example
from repetita.laws.fit import LawFit
from repetita.laws.record import freeze_args, published_chinchilla
from repetita.laws.uncertainty import bootstrap, refine_batch, resample_counts

MPL_TRAIN = ("cosine_24000", "constant_24000", "wsdcon_9")
# docs/laws.md, multi-power table, 100M row: R^2 of each held-out curve
MPL_100M_R2 = {"constant_72000": 0.9986, "cosine_72000": 0.9934, "wsd_20000_24000": 0.9987, "wsdcon_18": 0.9998,
               "wsdcon_3": 0.9985, "wsdld_20000_24000": 0.9992}


def test_vectorized_bootstrap_equals_per_resample_fits():
    df = load_example("datablations").head(120)
    est = LawFit("chinchilla").fit(df)
    problem = est.problem_for(df)
    z0 = np.array([est.params_[p] for p in problem.free])
    W = resample_counts(np.random.default_rng(3), len(df), 6)
    Z, f, _ = refine_batch(problem, np.repeat(z0[None], 6, axis=0), W)
    for w, z, obj in zip(W, Z, f, strict=True):
        one = LawFit("chinchilla").fit(df, starts=z0[None], weights=w)
        assert np.allclose([one.params_[p] for p in problem.free], z, rtol=1e-4, atol=1e-4)
        assert obj <= one.objective_ * (1 + 1e-6)
    boot = bootstrap(est, df, 50, seed=0)
    again = bootstrap(est, df, 50, seed=0)
    assert np.array_equal(boot["samples"], again["samples"])  # seeded


def test_plan_carries_the_fit_intervals(tmp_path, capsys):
    fit = tmp_path / "fit.json"
    freeze = freeze_args(published_chinchilla())
    assert main(["fit", "--example", "datablations", "--law", "data-constrained", *freeze, "--bootstrap", "40",
                 "--out", str(fit), "--json"]) == 0
    rec = json.loads(capsys.readouterr().out)
    assert rec["uncertainty"]["method"] == "bootstrap" and len(rec["uncertainty"]["samples"]) == 40
    assert rec["r2"] == pytest.approx(0.772, abs=1e-3) and rec["r2_log"] == pytest.approx(0.833, abs=1e-3)
    assert not any("explains too little" in w for w in rec["warnings"])  # judged on the log scale
    assert main(["plan", "--law-file", str(fit), "--params", "2.8B", "--unique-tokens", "4B", "--epochs", "1,4,16",
                 "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    iv = plan["intervals"]
    assert iv["samples"] == 40 and iv["level"] == 0.95
    # the band is the spread of the 40 resampled fits' own predictions, recomputed here through the estimator
    est = LawFit.from_result(rec)
    rows = pd.DataFrame({"params": 2.8e9, "unique_tokens": 4e9, "tokens": 4e9 * np.array([1.0, 4.0, 16.0])})
    losses = []
    for z in rec["uncertainty"]["samples"]:
        est.params_ = rec["params"] | dict(zip(rec["uncertainty"]["free"], z, strict=True))
        losses.append(est.predict(rows))
    want = np.quantile(np.array(losses), [0.025, 0.975], axis=0)
    got = np.array([band["loss"] for band in iv["table"]]).T
    np.testing.assert_allclose(got, want, rtol=1e-9)
    sat = 1 + np.quantile(np.array(rec["uncertainty"]["samples"])[:, rec["uncertainty"]["free"].index("rd_star")],
                          [0.025, 0.975])
    np.testing.assert_allclose(iv["summary"]["saturation_epochs"], sat, rtol=1e-9)


def test_laplace_interval_is_the_default_and_agrees_with_the_bootstrap(capsys):
    assert main(["fit", "--example", "datablations", "--law", "chinchilla"]) == 0
    out = capsys.readouterr().out
    assert "intervals: 95% sandwich (Laplace)" in out
    line = next(ln for ln in out.splitlines() if ln.strip().startswith("alpha ="))
    lo, hi = (float(x) for x in line.split("[")[1].split("]")[0].split(","))
    # the printed half-width is 1.96 sandwich standard errors, and the sandwich agrees with an independent
    # estimate of the spread, 200 bootstrap refits, within a factor 1.6 (0.71-1.41 measured on this table)
    db = load_example("datablations")
    boot = bootstrap(LawFit("chinchilla").fit(db), db, 200, seed=0)
    ratio = (hi - lo) / (2 * 1.959964) / boot["params"]["alpha"]["std"]
    assert 1 / 1.6 < ratio < 1.6, ratio


def test_predict_reproduces_held_out_schedules(tmp_path, capsys):
    curves = load_example("multipowerlaw:100M")
    fit = tmp_path / "mpl.json"
    assert main(["fit", "--example", "multipowerlaw:100M", "--law", "multipower", "--holdout",
                 "train:curve=" + ",".join(MPL_TRAIN), "--out", str(fit), "--json"]) == 0
    rec = json.loads(capsys.readouterr().out)
    assert rec["n_rows"] == int(curves["curve"].isin(MPL_TRAIN).sum())  # saved fit = the training rows' fit
    for name, r2 in MPL_100M_R2.items():
        cur = curves[curves["curve"] == name]
        sched = tmp_path / f"{name}.csv"
        cur[["step", "lr"]].to_csv(sched, index=False)
        out = tmp_path / f"{name}-pred.csv"
        assert main(["predict", "--law-file", str(fit), "--schedule", str(sched), "--out", str(out), "--json"]) == 0
        capsys.readouterr()
        pred = pd.read_csv(out)
        obs = cur.sort_values("step")["loss"].to_numpy()
        got = 1 - np.sum((pred["loss"].to_numpy() - obs) ** 2) / np.sum((obs - obs.mean()) ** 2)
        assert got == pytest.approx(r2, abs=5e-5), name
    assert main(["predict", "--law-file", str(fit), "--schedule", "wsd:24000:4800", "--json"]) == 0
    named = json.loads(capsys.readouterr().out)
    losses = [p["loss"] for p in named["curve"]]
    assert named["curve"][-1]["step"] == 24000 and losses[-1] < losses[len(losses) // 2] < losses[0]


@pytest.mark.parametrize("argv, message", [
    (["fit", "--example", "datablations", "--law", "power", "--axis", "params", "--by", "unique_tokens",
      "--bootstrap", "10"], "--bootstrap is not supported"),
    (["fit", "--example", "datablations", "--law", "power", "--axis", "params", "--by", "unique_tokens",
      "--plot", "x.png"], "--plot is not supported"),
    (["predict", "--law-file", "FIT", "--schedule", "cosine:100"], "must exceed the warm-up"),
    (["predict", "--law-file", "FIT", "--schedule", "linear:1000"], "use a CSV of step,lr"),
])
def test_refusals_are_one_line(tmp_path, capsys, argv, message):
    fit = tmp_path / "fit.json"
    fit.write_text(json.dumps({"law": "multipower", "params": {"L0": 1.0}, "spec": {"law": "multipower"}}))
    argv = [str(fit) if a == "FIT" else a for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_fit_file_missing_parameters_and_duplicate_headers(tmp_path, capsys):
    fit = tmp_path / "fit.json"
    fit.write_text(json.dumps({"law": "data-constrained", "params": {"a": 1.0}, "spec": {"law": "data-constrained"}}))
    assert main(["plan", "--law-file", str(fit), "--params", "1e9", "--unique-tokens", "1e9"]) == 2
    err = capsys.readouterr().err
    assert "lacks parameter(s)" in err and err.count("\n") == 1
    table = tmp_path / "dup.csv"
    table.write_text("params,tokens,loss,loss\n1e8,1e9,3.0,3.1\n")
    assert main(["fit", str(table), "--law", "chinchilla"]) == 2
    assert "column name(s) loss appear more than once" in capsys.readouterr().err


def test_mixed_recipes_warn(tmp_path, capsys):
    df = load_example("datablations").head(60).assign(recipe=["standard", "regularized"] * 30)
    path = tmp_path / "mixed.csv"
    df.to_csv(path, index=False)
    assert main(["fit", str(path), "--law", "chinchilla", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert any("rows mix recipes (regularized, standard)" in w for w in out["warnings"])


def test_fit_figures_with_band_and_held_out_rows(tmp_path, capsys, monkeypatch):
    import repetita.laws.plots as plots

    drawn = {}
    real = plots.plot_fit

    def spy(est, df, path, title="", held_out=None, samples=None):
        drawn.update(rows=len(df), held=int(np.sum(held_out)), samples=len(samples or []), title=title)
        return real(est, df, path, title=title, held_out=held_out, samples=samples)

    monkeypatch.setattr(plots, "plot_fit", spy)
    png = tmp_path / "fit.png"
    assert main(["fit", "--example", "datablations", "--law", "chinchilla", "--holdout", "largest:params:2",
                 "--bootstrap", "20", "--plot", str(png), "--json"]) == 0
    capsys.readouterr()
    # all 182 rows drawn, the 17 rows of the two largest models marked held out, a band from 20 draws
    assert drawn["rows"] == 182 and drawn["held"] == 17 and drawn["samples"] == 20
    assert png.stat().st_size > 20_000
