"""The report's next runs: designed for the study's own decision, written as a spec that `repetita run`
takes, and run beside the finished grid; ``[[runs]]`` points in a spec."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import pandas as pd
import pytest

from repetita.cli import main
from repetita.study.spec import expand, load_spec
from repetita.study.store import Store

TRAINER = Path(__file__).with_name("command_trainer.py")
SPEC = f"""
name = "next"
seeds = [0]
[[models]]
params = 1e6
[[models]]
params = 4e6
[[models]]
params = 16e6
[grid]
unique_tokens = [1000, 4000, 16000]
epochs = [1, 2, 4, 8]
[recipes.command]
command = {json.dumps(f"{shlex.quote(sys.executable)} {shlex.quote(str(TRAINER))} --params {{params}} "
                      "--unique-tokens {unique_tokens} --epochs {epochs} --seed {seed} --out {run_dir}")}
result = {{kind = "json", path = "result.json", key = "eval_loss"}}
"""


def _points(study: Path) -> set[tuple[float, float, float]]:
    store = Store(study / "store.sqlite", create=False)
    try:
        tidy = store.tidy()
    finally:
        store.close()
    return {(float(n), float(u), float(k)) for n, u, k in tidy[["params", "unique_tokens", "epochs"]].to_numpy()}


@pytest.mark.e2e
def test_report_designs_next_runs_and_run_takes_them(tmp_path, capsys, monkeypatch):
    from repetita.decide import design

    spec, study = tmp_path / "spec.toml", tmp_path / "study"
    spec.write_text(SPEC)
    assert main(["run", str(spec), "--dir", str(study), "--workers", "2", "--json"]) == 0
    grid = _points(study)
    assert len(grid) == 36
    capsys.readouterr()
    # the toy trainer's losses follow a law almost exactly: its decision is already settled, and says so
    assert main(["report", str(study), "--json"]) == 0
    settled = json.loads(capsys.readouterr().out)["headline"]["next_method"]
    assert "not designed: the decision is settled to within" in settled
    monkeypatch.setattr(design, "SETTLED_REGRET", 0.0)  # below, the design path itself
    assert main(["report", str(study), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    nxt = summary["headline"]["next_runs"]
    method = summary["headline"]["next_method"]
    assert 1 <= len(nxt) <= 5 and method.startswith("the batch that removes the most of the decision's variance")
    assert "10% of its compute" in method and "no run past a measured turn" in method
    asked = {(r["params"], r["unique_tokens"], r["epochs"]) for r in nxt}
    assert len(asked) == len(nxt) and not asked & grid  # different runs, none done already
    assert sum(6 * n * u * k for n, u, k in asked) <= 0.1 * summary["headline"]["rows"][-1]["compute"] * 1.0001
    # the study's own sizes, budgets and epoch counts (with 2x and 4x the largest): runs the spec can build
    assert {n for n, _, _ in asked} <= {1e6, 4e6, 16e6} and {u for _, u, _ in asked} <= {1e3, 4e3, 16e3}
    assert {k for _, _, k in asked} <= {1, 2, 4, 8, 16, 32}
    path = Path(summary["next_runs_spec"])
    assert path.is_file() and "[[runs]]" in path.read_text()
    html = (study / "report" / "report.html").read_text()
    assert "the batch that removes the most" in html.lower() and "next_runs.toml" in html
    assert main(["run", str(path), "--dir", str(study), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["new_runs"] == len(asked) and res["counts"]["done"] == 36 + len(asked)
    assert _points(study) == grid | asked  # exactly the suggested runs were added
    assert main(["report", str(study), "--json"]) == 0
    again = json.loads(capsys.readouterr().out)["headline"]["next_runs"]
    assert not {(r["params"], r["unique_tokens"], r["epochs"]) for r in again} & (grid | asked)


def test_runs_points_share_ids_with_the_grid_and_need_no_grid():
    raw = load_spec("example:tiny")
    grid_ids = {r.id for r in expand(raw).runs}
    point = {"model": 2, "unique_tokens": 16384, "epochs": 4}
    with_point = expand(raw | {"runs": [point]})
    assert {r.id for r in with_point.runs} == grid_ids  # a point of the grid is the grid's run
    only = expand({k: v for k, v in raw.items() if k != "grid"} | {"runs": [point, point | {"epochs": 16}]})
    runs = only.runs
    assert len(runs) == 2 and runs[0].id in grid_ids and runs[1].id not in grid_ids
    assert (runs[1].config.n_layer, runs[1].config.d_model, runs[1].config.epochs) == (2, 64, 16)


@pytest.mark.parametrize("point, message", [
    ({"model": 3, "unique_tokens": 1000, "epochs": 1}, "model = 3 must be the number of a [[models]] table, 1 to 2"),
    ({"model": 1, "unique_tokens": 1.5, "epochs": 1}, "unique_tokens = 1.5 must be a positive whole number"),
    ({"model": 1, "unique_tokens": 1000, "epochs": -2}, "epochs = -2 must be a positive number"),
    ({"model": 1, "unique_tokens": 1000, "epochs": 1, "lr": 1}, "unknown key(s) lr"),
])
def test_bad_runs_points_are_one_line_and_exit_2(tmp_path, capsys, point, message):
    body = "\n".join(f"{k} = {json.dumps(v)}" for k, v in point.items())
    spec = tmp_path / "s.toml"
    spec.write_text(Path(__file__).parents[1].joinpath("src/repetita/examples/specs/tiny.toml").read_text()
                    + f"\n[[runs]]\n{body}\n")
    assert main(["run", str(spec), "--dir", str(tmp_path / "st")]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "st").exists()


def test_lab_sizes_are_matched_to_their_model_tables_by_config():
    """An LM-lab study measures N: each size maps to the [[models]] table whose fields its runs' configs carry."""
    import pandas as pd

    from repetita.decide.next_runs import model_numbers

    raw = load_spec("example:tiny")
    runs = expand(raw).runs
    small = next(r for r in runs if r.config.n_layer == 1)
    large = next(r for r in runs if r.config.n_layer == 2)
    results = {r.id: {"config": r.config.to_dict()} for r in (small, large)}
    tidy = pd.DataFrame({"run_id": [small.id, large.id, "gone"], "params": [9000.0, 70000.0, 5.0]})
    assert model_numbers(raw, results, tidy) == {9000.0: 1, 70000.0: 2}  # a run without a config maps to nothing
    command = {"models": [{"params": 1e6}, {"params": 4e6, "d": 2}], "recipes": {"command": {}}}
    assert model_numbers(command, {}, tidy) == {1e6: 1, 4e6: 2}


def test_a_longer_run_always_says_why_and_a_near_tie_gets_seed_replicates():
    from repetita.decide.decision import Decision, Row
    from repetita.decide.measured import Measured
    from repetita.decide.next_runs import longer_reason, replicates

    std = pd.DataFrame({"recipe": "standard", "params": 1e6, "unique_tokens": 1e3, "epochs": [4.0, 8.0, 16.0],
                        "loss": [4.0, 3.8, 3.7]})
    assert longer_reason(std, 1e6, 1e3, 16.0) is None  # no longer than measured: nothing to explain
    why = longer_reason(std, 1e6, 1e3, 32.0)
    assert "still fell from 3.8000 at 8 to 3.7000 at 16 epochs" in why
    assert "unmeasured" in longer_reason(std.iloc[:1], 1e6, 1e3, 8.0)
    # the decision rests on two runs 0.02 apart while seeds of one configuration spread 0.05: replicate both
    tidy = pd.DataFrame({"recipe": "standard", "members": 1, "params": [1e6, 1e6, 2e6, 4e6, 4e6],
                         "unique_tokens": 1e3, "epochs": [8.0, 8.0, 4.0, 2.0, 2.0], "seed": [0, 1, 0, 0, 1],
                         "loss": [3.70, 3.75, 3.745, 3.90, 3.95], "lr": 1e-3, "weight_decay": 0.1})
    best = Measured("standard", 1e6, 1e3, 8.0, 3.725, 2, 0.05)
    row = Row(1e3, 6 * 4e6 * 1e3 * 2, "standard", 1e6, 8.0, 3.725, None, 3.725, None, None, (), best, "measured",
              "the law fails its own checks")
    runs = replicates(Decision("s", (row,)), tidy, {1e6: 1, 2e6: 2, 4e6: 3})
    assert [(r.params, r.epochs, r.seed) for r in runs] == [(1e6, 8.0, 2), (2e6, 4.0, 1)]
    # the difference's noise: 0.05 x sqrt((1/2 + 1/1) / 2) = 0.043 for two seeds against one
    assert all("within the seed noise of that difference (0.043" in r.why for r in runs)
    # with more seeds the same difference is resolved: no more replicates
    many = pd.concat([tidy] + [tidy.iloc[[0, 2]].assign(seed=s, loss=[3.725, 3.745]) for s in (5, 6, 7, 8, 9)])
    best8 = Measured("standard", 1e6, 1e3, 8.0, 3.725, 7, 0.05)
    row8 = Row(1e3, row.compute, "standard", 1e6, 8.0, 3.725, None, 3.725, None, None, (), best8, "measured", "x")
    assert replicates(Decision("s", (row8,)), many, {1e6: 1, 2e6: 2, 4e6: 3}) == []
    # a clear winner needs no replicate
    clear = tidy.assign(loss=[3.50, 3.55, 3.745, 3.90, 3.95])
    assert replicates(Decision("s", (row,)), clear, {1e6: 1, 2e6: 2, 4e6: 3}) == []
    from repetita.decide.next_runs import NextPlan, spec_with_runs

    text = spec_with_runs('name = "s"', NextPlan(tuple(runs), (1, 2), "m"), "S")
    assert text.count("[[runs]]") == 2 and "seed = 2" in text and "seed = 1" in text  # a new seed: a new run id
