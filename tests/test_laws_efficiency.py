"""Recipes in the planner: data-efficiency multipliers, their costs, the serving cap, the study's
measured multipliers, and Kim et al.'s asymptote arithmetic."""

from __future__ import annotations

import json

import numpy as np
import pytest

from repetita import recipe_registry
from repetita.cli import main
from repetita.decide.allocate import allocate, loss_limit
from repetita.decide.efficiency import (
    effect,
    efficiency_from_asymptotes,
    from_report,
    implied_exponent,
    parse_efficiency,
    plan_recipes,
)
from repetita.errors import UserError
from repetita.laws.record import PUBLISHED as PUBLISHED_FIT
from repetita.laws.record import load as load_fit
from repetita.study import recipes as builtin_recipes  # noqa: F401  (ensemble, distill, ...: their cost models)

# Muennighoff et al.'s published point (the shipped fit file), as a fit with nothing frozen
PUBLISHED = {"law": "data-constrained", "spec": {"law": "data-constrained"}, "params": load_fit(PUBLISHED_FIT)["params"]}


def test_cost_model_of_recipe_names():
    assert (effect("ensemble:4", 3.1).train_cost, effect("ensemble:4", 3.1).serve_factor) == (4.0, 4.0)
    assert (effect("distill:4", 2.0).train_cost, effect("distill:4", 2.0).serve_factor) == (5.0, 1.0)
    assert effect("self-distill", 1.2).train_cost == 2.0 and effect("distill", 1.2).train_cost == 2.0
    assert (effect("regularized", 2.3).train_cost, effect("regularized", 2.3).serve_factor) == (1.0, 1.0)


@pytest.mark.parametrize("items, message", [
    (["regularized=0"], "must be a positive number"),
    (["regularized=-2"], "must be a positive number"),
    (["regularized"], "give NAME=MULTIPLIER"),
    (["ensemble=3"], "name the members"),
    (["regularized=2", "regularized=3"], "given twice"),
    (["regularized=nan"], "must be a positive number"),
    (["mystery=2"], "unknown recipe .mystery.; registered recipes: standard, regularized, ensemble"),
    (["regularized:4=2"], "takes no member count"),
])
def test_bad_multipliers_are_refused(items, message):
    with pytest.raises(UserError, match=message):
        parse_efficiency(items)


@pytest.fixture
def same_recipe():
    """A recipe that changes nothing and costs nothing extra, registered for one test."""
    recipe_registry.register(recipe_registry.Recipe("same", run=None, cells=None, keys=(), summary="the standard runs"))
    yield
    recipe_registry.unregister("same")


def test_a_recipe_is_the_law_with_m_times_the_data(same_recipe):
    """Efficiency m at (N, D, U) is the standard law at (N, m D, m U): a free recipe with m = 1 is the standard
    recipe, its asymptote is the limit on m U, and a larger m never loses at the same cost."""
    c, u = 1e22, 25e9
    res = plan_recipes(PUBLISHED, parse_efficiency(["same=1", "regularized=2.3"]), [c], u)
    std, same, reg = (res["recipes"][n] for n in ("standard", "same", "regularized"))
    assert same["rows"][0]["loss"] == pytest.approx(std["rows"][0]["loss"], rel=1e-12)
    assert reg["rows"][0]["loss"] < std["rows"][0]["loss"] and res["best"][0]["recipe"] == "regularized"
    assert reg["asymptote"] == pytest.approx(loss_limit(PUBLISHED, 2.3 * u), rel=1e-12)
    assert std["rows"][0]["loss"] == pytest.approx(allocate(PUBLISHED, c, u).loss, rel=1e-9)


def test_ensemble_pays_only_with_compute_and_the_cap_binds():
    """An ensemble of 4 costs 4x: at a small budget the single model wins, near the data wall the ensemble
    (lower asymptote) does; a serving cap divides among its members and can take the win away."""
    eff = parse_efficiency(["ensemble:4=3.1"])
    res = plan_recipes(PUBLISHED, eff, [1e20, 1e25], 25e9)
    assert [b["recipe"] for b in res["best"]] == ["standard", "ensemble:4"]
    # docs/plan.md: beside a 2.3x regularized recipe the ensemble takes over from 1e24, past the data wall
    both = plan_recipes(PUBLISHED, parse_efficiency(["regularized=2.3", "ensemble:4=3.1", "distill:4=2.0"]),
                        np.geomspace(1e20, 1e26, 7), 25e9)
    assert [b["recipe"] for b in both["best"]] == ["regularized"] * 4 + ["ensemble:4"] * 3
    ens = res["recipes"]["ensemble:4"]
    assert ens["rows"][1]["served_params"] == pytest.approx(4 * ens["rows"][1]["member_params"])
    capped = plan_recipes(PUBLISHED, eff, [1e25], 25e9, max_params=4e9)
    row = capped["recipes_within_cap"]["ensemble:4"]["rows"][0]
    assert row["served_params"] <= 4e9 * (1 + 1e-9) and row["at_cap"]
    assert capped["best_within_cap"][0]["recipe"] == "standard"  # 1B members lose to one capped 4B model
    assert capped["best"][0]["recipe"] == "ensemble:4"


def test_multipliers_from_a_study_report():
    """report.json efficiency rows -> median per recipe of the effective-token ratio to standard, same (N, U)."""
    rows = []
    for n, u, std, reg, ens in ((1e4, 8e3, 1e5, 1.2e5, 2.0e5), (3e4, 8e3, 2e5, 2.2e5, 3.0e5), (8e4, 8e3, 3e5, 3.9e5, 3.3e5)):
        rows += [{"recipe": "standard", "params": n, "unique_tokens": u, "effective_tokens": std},
                 {"recipe": "regularized", "params": n, "unique_tokens": u, "effective_tokens": reg},
                 {"recipe": "ensemble x4", "params": n, "unique_tokens": u, "effective_tokens": ens},
                 {"recipe": "ensemble member", "params": n, "unique_tokens": u, "effective_tokens": std}]
    effects, warnings = from_report({"efficiency": rows, "fits": {"data-constrained": {"warnings": ["asymptote E not identified"]}}})
    got = {e.name: e for e in effects}
    assert set(got) == {"regularized", "ensemble:4"}
    assert got["regularized"].efficiency == pytest.approx(1.2)  # median of 1.2, 1.1, 1.3
    assert got["ensemble:4"].efficiency == pytest.approx(1.5) and got["ensemble:4"].train_cost == 4
    assert any("asymptote E not identified" in w.text for w in warnings)
    with pytest.raises(UserError, match="no standard runs"):
        from_report({"efficiency": [r for r in rows if r["recipe"] != "standard"]})


def test_kim_headline_arithmetic():
    """Kim et al. 2025 at 200M tokens: regularized asymptote 3.43, joint 3.17. With the regularized recipe's
    data-scaling law L(D) = E + B D^-alpha through (200M, 3.43), the joint asymptote is worth the tokens
    where that law reaches 3.17; the efficiency is their ratio to 200M (5.17 in the paper)."""
    e, alpha, u = 1.9, 0.11, 200e6
    res = efficiency_from_asymptotes({"standard": 3.75, "regularized": 3.43, "joint": 3.17}, "regularized", e, alpha, u)
    b = (3.43 - e) * u ** alpha
    d = res["joint"]["tokens_needed"]
    assert e + b * d ** -alpha == pytest.approx(3.17, abs=1e-12)  # the law itself, evaluated independently
    assert res["regularized"]["efficiency"] == pytest.approx(1.0) and res["standard"]["efficiency"] < 1
    # the exponent their 5.17x implies for a given E, and back
    a = implied_exponent(3.43, 3.17, 5.17, e)
    assert a == pytest.approx(0.1134, abs=1e-4)  # docs/plan.md
    assert efficiency_from_asymptotes({"r": 3.43, "j": 3.17}, "r", e, a)["j"]["efficiency"] == pytest.approx(5.17)
    assert np.isinf(efficiency_from_asymptotes({"r": 3.43, "j": 1.5}, "r", e, a)["j"]["tokens_needed"])


def test_cli_recipes_with_cap_and_draws(bootstrap_fit, capsys):
    fit = bootstrap_fit(30)
    assert main(["plan", "--law-file", str(fit), "--compute", "1e20:1e25:3", "--unique-tokens", "25e9",
                 "--efficiency", "regularized=2.3", "--efficiency", "ensemble:4=3.1", "--efficiency", "distill:4=2.0",
                 "--max-params", "2e10", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    rec = out["recipes"]
    assert set(rec["recipes"]) == {"standard", "regularized", "ensemble:4", "distill:4"}
    for b in rec["best"]:
        assert sum(b["share_best"].values()) == pytest.approx(1.0)
    lo, hi = rec["recipes"]["regularized"]["rows"][0]["loss_interval"]
    assert lo <= rec["recipes"]["regularized"]["rows"][0]["loss"] <= hi
    assert all(r["served_params"] <= 2e10 * (1 + 1e-9) for x in rec["recipes_within_cap"].values() if "rows" in x
               for r in x["rows"])
    assert any(line.startswith("within the serving cap") for line in out["decision"])


@pytest.mark.parametrize("argv, message", [
    (["--compute", "1e21", "--efficiency", "regularized=0"], "must be a positive number"),
    (["--compute", "1e21", "--efficiency", "ensemble:4"], "give NAME=MULTIPLIER"),
    (["--params", "1e9", "--efficiency", "regularized=2"], "give --compute C"),
    (["--compute", "1e21", "--efficiency-from", "/nonexistent/study"], "no report.json there"),
    (["--asymptote", "a=3.4", "--asymptote", "b=3.1"], "--irreducible E --data-exponent"),
    (["--compute", "1e21", "--max-params", "0"], "--max-params must be positive"),
])
def test_bad_recipe_input_is_one_line(capsys, argv, message):
    assert main(["plan", "--law-file", "example:datablations-published", "--unique-tokens", "25e9", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_cli_asymptotes(capsys):
    assert main(["plan", "--asymptote", "standard=3.75", "--asymptote", "regularized=3.43", "--asymptote", "joint=3.17",
                 "--baseline", "regularized", "--irreducible", "1.9", "--data-exponent", "0.11",
                 "--unique-tokens", "200e6", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["recipes"]["joint"]["efficiency"] == pytest.approx(((3.43 - 1.9) / (3.17 - 1.9)) ** (1 / 0.11))


def test_docs_recipe_table_at_the_datablations_budget():
    """docs/plan.md's table: the four recipes at 9.26e21 FLOPs on 25B tokens, without and with a 5B cap."""
    eff = parse_efficiency(["regularized=2.3", "ensemble:4=3.1", "distill:4=2.0"])
    res = plan_recipes(PUBLISHED, eff, [9.26e21], 25e9, max_params=5e9)
    free = {n: r["rows"][0]["loss"] for n, r in res["recipes"].items()}
    capped = {n: r["rows"][0]["loss"] for n, r in res["recipes_within_cap"].items()}
    asym = {n: r["asymptote"] for n, r in res["recipes"].items()}
    assert free == pytest.approx({"standard": 2.2253, "regularized": 2.1640, "ensemble:4": 2.2106, "distill:4": 2.2541}, abs=5e-5)
    assert capped == pytest.approx({"standard": 2.2280, "regularized": 2.1787, "ensemble:4": 2.2906, "distill:4": 2.2541}, abs=5e-5)
    assert asym == pytest.approx({"standard": 2.1559, "regularized": 2.0829, "ensemble:4": 2.0616, "distill:4": 2.0937}, abs=5e-5)


@pytest.mark.parametrize("report, message", [
    ({"efficiency": [{"recipe": "standard"}]}, "efficiency row 1 is malformed"),
    ({"efficiency": [{"recipe": "standard", "params": 1, "unique_tokens": 2, "effective_tokens": "x"}]},
     "efficiency row 1 is malformed"),
    ({"efficiency": "x"}, "no efficiency table"),
    ({"schema": 99, "efficiency": []}, "schema 99 is newer than this repetita reads"),
    ({"schema": "x", "efficiency": []}, "schema 'x' is not a version number"),
])
def test_malformed_report_is_one_line(tmp_path, capsys, report, message):
    f = tmp_path / "report.json"
    f.write_text(json.dumps(report))
    assert main(["plan", "--law-file", "example:datablations-published", "--compute", "1e21", "--unique-tokens", "25e9",
                 "--efficiency-from", str(f)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_a_report_written_by_the_schema_reads_back_as_an_older_one_does(tmp_path):
    """Version 2 (written now: schema key, data_multiplier) and version 1 (no schema key, effective_tokens)
    give the same multipliers for the same cells."""
    from repetita.decide.report_schema import SCHEMA, summary

    cells = [(1e8, 1e9, 2.0e9, 3.0e9), (4e8, 1e9, 2.5e9, 4.5e9)]
    new = summary(efficiency=[{"recipe": r, "params": n, "unique_tokens": u, "data_multiplier": m}
                              for n, u, std, reg in cells for r, m in (("standard", std), ("regularized", reg))])
    assert new["schema"] == SCHEMA and list(new)[0] == "schema"
    old = {"efficiency": [{"recipe": r, "params": n, "unique_tokens": u, "effective_tokens": m}
                          for n, u, std, reg in cells for r, m in (("standard", std), ("regularized", reg))]}
    (tmp_path / "report.json").write_text(json.dumps(new))
    read_new, _ = from_report(json.loads((tmp_path / "report.json").read_text()))
    read_old, _ = from_report(old)
    assert [(e.name, e.efficiency) for e in read_new] == [(e.name, e.efficiency) for e in read_old]
    assert read_new[0].name == "regularized" and read_new[0].efficiency == pytest.approx(np.median([1.5, 1.8]))


def test_a_null_multiplier_counts_as_beyond_the_law():
    """The strict JSON writer stores an infinite multiplier as null: it is warned about, not silently dropped."""
    rows = [{"recipe": "standard", "params": 1.0, "unique_tokens": 2.0, "data_multiplier": 1.0},
            {"recipe": "regularized", "params": 1.0, "unique_tokens": 2.0, "data_multiplier": None},
            {"recipe": "standard", "params": 3.0, "unique_tokens": 2.0, "data_multiplier": 1.0},
            {"recipe": "regularized", "params": 3.0, "unique_tokens": 2.0, "data_multiplier": 1.4}]
    effects, warnings = from_report({"efficiency": rows})
    assert [e.efficiency for e in effects] == [pytest.approx(1.4)]
    assert any("below the fitted law's reach" in w.text and w.kind == "multiplier-varies" for w in warnings)


def test_non_finite_asymptote_is_refused(capsys):
    assert main(["plan", "--asymptote", "a=3.4", "--asymptote", "b=nan", "--irreducible", "1.9", "--data-exponent",
                 "0.1", "--unique-tokens", "2e8"]) == 2
    assert "asymptote b: the loss must be a finite number" in capsys.readouterr().err
