"""A law, a recipe, a curve reader and a runner added from this file alone reach every part of the
package that uses them.

No plug-in here is known to the package: each is registered in the one registry of its kind
(``repetita.laws.law.LAWS``, ``repetita.recipe_registry``, ``repetita.laws.curves.READERS``,
``repetita.study.runners.RUNNERS``), and the CLI, its help, the benchmark, the study's analysis, the study
spec, the study driver, the command recipe and the planner find it there. A name registered twice is one
line naming both places.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import ClassVar

import numpy as np
import pandas as pd
import pytest
from test_study_run import SPEC as UNIT_SPEC  # tests/ is on sys.path (rootdir-relative import)

from repetita import recipe_registry
from repetita.cli import main
from repetita.laws.law import LAWS, Law, col, lse, param

# --- a toy law: L = E + B / D^beta (a data-only Chinchilla), fitted in logs like the built-in laws --


def _data_only(theta, X):
    b, e, beta = (param(theta, i) for i in range(3))
    return lse(b - beta * col(X, "log_tokens"), e)


TOY_LAW = Law("toy-data-only", _data_only, ("b", "e", "beta"),
              {"b": (0.0, 20.0), "e": (-2.0, 2.0), "beta": (0.05, 2.0)},
              {"b": (3.0, 6.0, 9.0), "e": (0.0, 0.5), "beta": (0.2, 0.4, 0.6)},
              ("params", "tokens"), log_params=("b", "e"), doc="L = E + B/D^beta (a test's toy law)")
TRUTH = {"b": np.log(400.0), "e": np.log(1.8), "beta": 0.3}


@pytest.fixture
def toy_law(monkeypatch):
    monkeypatch.setitem(LAWS, TOY_LAW.name, TOY_LAW)
    return TOY_LAW


def _toy_table(path):
    tokens = np.geomspace(1e8, 1e11, 12)
    loss = np.exp(TRUTH["e"]) + np.exp(TRUTH["b"]) / tokens ** TRUTH["beta"]
    pd.DataFrame({"params": 1e8, "tokens": tokens, "loss": loss}).to_csv(path, index=False)
    return tokens, loss


def test_toy_law_is_listed_fitted_and_saved_through_the_cli(toy_law, tmp_path, capsys):
    assert main(["laws"]) == 0
    assert "toy-data-only" in capsys.readouterr().out
    tokens, loss = _toy_table(tmp_path / "runs.csv")
    out = tmp_path / "fit.json"
    assert main(["fit", str(tmp_path / "runs.csv"), "--law", "toy-data-only", "--out", str(out), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    # the data identify the whole curve (noise-free, three parameters, twelve points): the fit lands on it
    assert res["law"] == "toy-data-only"
    assert res["params"]["beta"] == pytest.approx(TRUTH["beta"], rel=1e-3)
    assert res["params"]["e"] == pytest.approx(TRUTH["e"], abs=1e-3)
    assert json.loads(out.read_text())["law"] == "toy-data-only"


def test_toy_law_through_the_estimator(toy_law, tmp_path):
    from repetita.laws.fit import LawFit

    tokens, loss = _toy_table(tmp_path / "runs.csv")
    fit = LawFit("toy-data-only").fit(pd.read_csv(tmp_path / "runs.csv"))
    far = pd.DataFrame({"params": [1e8], "tokens": [1e12]})
    want = np.exp(TRUTH["e"]) + np.exp(TRUTH["b"]) / 1e12 ** TRUTH["beta"]
    assert fit.predict(far)[0] == pytest.approx(want, rel=1e-4)  # an extrapolation, identified by the form


def test_toy_law_reaches_the_help_the_benchmark_and_the_study(toy_law, monkeypatch, capsys):
    import dataclasses

    from repetita.laws.benchmark import benchmark_laws
    from repetita.study.analysis import study_laws

    with pytest.raises(SystemExit):
        main(["fit", "--help"])
    assert "toy-data-only" in "".join(capsys.readouterr().out.split())  # help text wraps at hyphens
    assert "toy-data-only" in benchmark_laws()  # fitted on (N, D) rows: the benchmark scores it
    assert "toy-data-only" not in sum(study_laws(), ())  # a study fits only the laws that ask for it
    monkeypatch.setitem(LAWS, TOY_LAW.name, dataclasses.replace(TOY_LAW, study=True))
    assert "toy-data-only" in study_laws()[0]


def test_a_law_registered_twice_is_one_line_naming_both_places(toy_law):
    from repetita.errors import UserError
    from repetita.laws.law import register_law

    with pytest.raises(UserError) as err:
        register_law(LAWS["chinchilla"])
    msg = str(err.value)
    assert "\n" not in msg and "forms.py:" in msg and "test_plugins.py:" in msg


def test_unknown_law_lists_the_registry(toy_law, tmp_path, capsys):
    _toy_table(tmp_path / "runs.csv")
    assert main(["fit", str(tmp_path / "runs.csv"), "--law", "toy-nonesuch"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "toy-data-only" in err[0] and "data-constrained" in err[0]


# --- a toy recipe: one run per cell at the largest epoch count, costing 3 standard runs to the planner --


@dataclasses.dataclass(frozen=True)
class LongestParams:
    """The toy recipe's own knob: epochs added beyond the grid's largest."""

    extra: int = 0


def _longest_cells(table, grid):
    epochs = grid.epochs(table)
    return [grid.cell(base=grid.config(model, unique_tokens=u, epochs=epochs[-1], seed=seed), epoch_grid=epochs,
                      extra=table.get("extra", 0))
            for model, u, seed in grid.where(table)]


def _longest(rc, measure):
    from repetita.lm.recipes import summary

    k = rc.epoch_grid[-1] + rc.params.extra
    (run,) = measure([rc.base.replace(epochs=k, members=1, recipe="toy-longest")])
    return {"best": summary(run)}


TOY_RECIPE = recipe_registry.Recipe("toy-longest", _longest, _longest_cells, {"epochs", "unique_tokens", "extra"},
                                    "one run at the largest epoch count (a test's toy recipe)",
                                    train_cost=lambda k: 3.0, params=LongestParams)


@pytest.fixture
def toy_recipe():
    recipe_registry.register(TOY_RECIPE, replace=True)
    yield TOY_RECIPE
    recipe_registry.unregister(TOY_RECIPE.name)


# the unit study's corpus, model and optimisation (tests/test_study_run.py), with this file's grid and recipe
SPEC = UNIT_SPEC.split("[grid]")[0].format(ckpt=50).replace('name = "unit"', 'name = "toy"') + """[grid]
unique_tokens = [256, 512]
epochs = [1, 2]
[recipes.toy-longest]
{extra}
"""


def test_toy_recipe_expands_from_a_spec_with_its_own_knob(toy_recipe, tmp_path):
    from repetita.study.spec import expand, load_spec

    (tmp_path / "s.toml").write_text(SPEC.format(extra="unique_tokens = [512]"))
    study = expand(load_spec(str(tmp_path / "s.toml")))
    assert [(r.recipe, r.config.unique_tokens, r.config.epochs) for r in study.runs] == [("toy-longest", 512, 2)]
    (tmp_path / "s.toml").write_text(SPEC.format(extra="unique_tokens = [512]\nextra = 1"))
    study = expand(load_spec(str(tmp_path / "s.toml")))
    assert [r.config.epochs for r in study.runs] == [3]  # the knob reached the recipe through its params class


def test_toy_recipe_key_it_does_not_take_is_one_line(toy_recipe, tmp_path, capsys):
    (tmp_path / "s.toml").write_text(SPEC.format(extra="weight_decay = [0.3]"))
    assert main(["run", str(tmp_path / "s.toml"), "--dir", str(tmp_path / "study")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "weight_decay" in err[0] and "toy-longest" in err[0]
    assert not (tmp_path / "study").exists() or not any((tmp_path / "study").rglob("result.json"))


def test_toy_recipe_runs_in_a_study(toy_recipe, tmp_path, capsys):
    (tmp_path / "s.toml").write_text(SPEC.format(extra=""))
    assert main(["run", str(tmp_path / "s.toml"), "--dir", str(tmp_path / "study"), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["counts"]["done"] == 2 and res["counts"]["failed"] == 0
    tidy = pd.read_csv(res["tidy"])
    assert set(tidy["recipe"]) == {"toy-longest"} and set(tidy["epochs"]) == {2}
    assert np.isfinite(tidy["loss"]).all()


def test_toy_recipe_cost_model_reaches_the_planner(toy_recipe, capsys):
    args = ["plan", "--law-file", "example:datablations-published", "--compute", "1e21", "--unique-tokens", "2e10",
            "--json"]
    assert main([*args, "--efficiency", "toy-longest=1.5"]) == 0
    res = json.loads(capsys.readouterr().out)
    text = json.dumps(res)
    assert "toy-longest" in text
    # a count on a recipe that takes none is refused in one line naming the recipe
    assert main([*args, "--efficiency", "toy-longest:4=1.5"]) == 2
    assert "toy-longest" in capsys.readouterr().err


# --- a toy curve reader: "step loss" pairs, one per line, in a .toylog file -------------------------------


def _toylog_read(path, tag, run):
    pairs = [line.split() for line in path.read_text().splitlines() if line.strip()]
    return pd.DataFrame({"run": run or path.stem, "step": [int(a) for a, _ in pairs],
                         "loss": [float(b) for _, b in pairs]})


@pytest.fixture
def toy_reader(monkeypatch):
    from repetita.laws import curves

    reader = curves.Reader("toylog", lambda path, recursive: path.is_file() and path.suffix == ".toylog",
                           _toylog_read)
    monkeypatch.setitem(curves.READERS, reader.name, reader)
    return reader


def test_toy_reader_is_detected_read_and_taken_by_the_command_recipe(toy_reader, tmp_path):
    from repetita.laws.curves import detect, read_curves
    from repetita.study.command import ResultSpec, read_result

    log = tmp_path / "run-a.toylog"
    log.write_text("10 3.5\n20 3.1\n30 2.9\n")
    assert detect(log) == "toylog"
    curves = read_curves(log)
    assert list(curves["loss"]) == [3.5, 3.1, 2.9] and set(curves["run"]) == {"run-a"}
    # the command recipe's result kinds are the registered readers: a run may leave its curve in this format
    spec = ResultSpec.parse({"kind": "toylog", "path": "run-a.toylog"})
    loss, history = read_result(spec, tmp_path)
    assert loss == 2.9 and [h["step"] for h in history] == [10, 20, 30]


def test_a_reader_registered_twice_is_one_line_naming_both_places(toy_reader):
    from repetita.errors import UserError
    from repetita.laws.curves import READERS, register_reader

    with pytest.raises(UserError) as err:
        register_reader(READERS["tensorboard"])
    assert "curves.py:" in str(err.value) and "test_plugins.py:" in str(err.value)


# --- a toy runner: the runs in this process, in reverse queue order, counted -------------------------------


class ReversedRunner:
    calls: list = []

    def __init__(self, study_dir, workers=1, progress=True, address=None):
        self.study_dir = str(study_dir)

    def run(self):
        from repetita.study.runners import record, work
        from repetita.study.store import Store

        store = Store.of_study(self.study_dir)
        try:
            out = {}
            for rid in reversed(store.ready()):
                assert store.claim(rid)
                status, payload = work(self.study_dir, rid, store.config(rid))
                record(store, rid, status, payload)
                out[rid] = status
            ReversedRunner.calls.append(sorted(out))
            return out
        finally:
            store.close()

    def close(self):
        ReversedRunner.calls.append("closed")


@pytest.fixture
def toy_runner(monkeypatch):
    from repetita.study import runners

    monkeypatch.setitem(runners.RUNNERS, "toy-reversed", ReversedRunner)
    ReversedRunner.calls = []
    return ReversedRunner


def test_toy_runner_runs_a_study_named_on_the_command_line(toy_runner, toy_recipe, tmp_path, capsys):
    (tmp_path / "s.toml").write_text(SPEC.format(extra=""))
    assert main(["run", str(tmp_path / "s.toml"), "--dir", str(tmp_path / "study"), "--runner", "toy-reversed",
                 "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["counts"]["done"] == 2
    ran = [c for c in toy_runner.calls if c != "closed"]
    assert sum(len(c) for c in ran) == 2 and toy_runner.calls[-1] == "closed"  # one runner, closed once
    assert toy_runner.calls.count("closed") == 1


def test_unknown_runner_is_one_line_and_writes_nothing(tmp_path, capsys):
    (tmp_path / "s.toml").write_text(SPEC.format(extra="").replace("toy-longest", "standard"))
    assert main(["run", str(tmp_path / "s.toml"), "--dir", str(tmp_path / "study"), "--runner", "nope"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nope" in err[0] and "local" in err[0] and "ray" in err[0]
    assert not (tmp_path / "study").exists()


def test_a_runner_or_recipe_registered_twice_is_one_line_naming_both_places(toy_recipe):
    from repetita.errors import UserError
    from repetita.study.runners import RUNNERS, register_runner

    with pytest.raises(UserError) as err:
        register_runner("local", RUNNERS["local"])
    assert "runners.py:" in str(err.value) and "test_plugins.py:" in str(err.value)
    with pytest.raises(UserError) as err:
        recipe_registry.register(TOY_RECIPE)
    assert "test_plugins.py:" in str(err.value) and "registered twice" in str(err.value)


# --- a toy kind of run: a formula in the learning rate and epochs, trained by nothing ----------------------


@dataclasses.dataclass(frozen=True)
class FormulaRun:
    lr: float
    epochs: int
    recipe: str = "toy-formula"
    kind: ClassVar[str] = "toy-formula"

    @property
    def hash(self) -> str:
        return hashlib.sha256(self.to_json().encode()).hexdigest()[:16]

    def to_json(self) -> str:
        return json.dumps({"kind": self.kind, "lr": self.lr, "epochs": self.epochs, "recipe": self.recipe},
                          sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> FormulaRun:
        d = json.loads(text)
        d.pop("kind")
        return cls(**d)


def formula_loss(lr: float, epochs: int) -> float:
    return 3.0 + (np.log10(lr) + 2.0) ** 2 / 4 + 1.0 / epochs


def _formula_execute(config, folder, *, study_dir, gpu_ids=None, beat=None, threads=1):
    loss = formula_loss(config.lr, config.epochs)
    # labelled as the study's baseline runs, so that its analysis fits its laws to them
    row = {"params": 1e6, "tokens": 1e3 * config.epochs, "unique_tokens": 1e3, "epochs": config.epochs,
           "loss": loss, "recipe": "standard", "seed": 0, "run_id": config.hash, "lr": config.lr}
    return "done", {"result": {"val_loss": loss, "history": [], "rows": [row]}}


def _formula_cells(table, grid):
    return [FormulaRun(lr, k) for lr in table["lr"] for k in grid.epochs(table)]


def _formula_run(cell, measure):
    (r,) = measure([cell])
    return {"best": {"run_id": cell.hash, "val_loss": r["val_loss"]}}


@pytest.fixture
def toy_kind(monkeypatch):
    from repetita.study import kinds

    kind = kinds.RunKind("toy-formula", FormulaRun.from_json, lambda c: {"cpus": 1, "gpus": 0, "custom": {}},
                         _formula_execute)
    monkeypatch.setitem(kinds.RUN_KINDS, kind.name, kind)
    recipe = recipe_registry.Recipe("toy-formula", _formula_run, _formula_cells, {"lr"},
                                    "a formula in lr and epochs (a test's toy kind of run)")
    recipe_registry.register(recipe, replace=True)
    yield kind
    recipe_registry.unregister(recipe.name)


def test_toy_kind_of_run_goes_through_the_driver_and_the_store(toy_kind, tmp_path, capsys):
    """A kind that trains nothing: the driver queues it, the runner executes it by its kind, the store keeps
    its rows; the tidy table holds the formula's values."""
    text = SPEC.replace("[recipes.toy-longest]\n{extra}\n", "[recipes.toy-formula]\nlr = [1e-3, 1e-2]\n")
    (tmp_path / "s.toml").write_text(text)
    assert main(["run", str(tmp_path / "s.toml"), "--dir", str(tmp_path / "study"), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["counts"]["done"] == 4 and res["counts"]["failed"] == 0
    tidy = pd.read_csv(res["tidy"])
    assert sorted(zip(tidy["lr"], tidy["epochs"], tidy["loss"], strict=True)) == sorted(
        (lr, k, formula_loss(lr, k)) for lr in (1e-3, 1e-2) for k in (1, 2))


def test_toy_law_with_study_set_is_fitted_in_the_report(toy_kind, toy_law, monkeypatch, tmp_path, capsys):
    """A law that asks for it (``study=True``) is fitted by a study's analysis and listed in its report."""
    monkeypatch.setitem(LAWS, TOY_LAW.name, dataclasses.replace(TOY_LAW, study=True))
    text = SPEC.replace("[recipes.toy-longest]\n{extra}\n", "[recipes.toy-formula]\nlr = [1e-2]\n").replace(
        "epochs = [1, 2]", "epochs = [1, 2, 4, 8, 16]")
    (tmp_path / "s.toml").write_text(text)
    assert main(["run", str(tmp_path / "s.toml"), "--dir", str(tmp_path / "study"), "--json"]) == 0
    capsys.readouterr()
    assert main(["report", str(tmp_path / "study"), "--json"]) == 0
    fits = json.loads(capsys.readouterr().out)["fits"]
    assert set(fits) == {"data-constrained", "reuse", "overfit-1", "toy-data-only"}
    toy = fits["toy-data-only"]
    assert toy["error"] is None and toy["n_rows"] == 5  # the five formula runs (one lr x five epoch counts)


def test_a_kind_registered_twice_is_one_line_naming_both_places():
    from repetita.errors import UserError
    from repetita.study.kinds import RUN_KINDS, register_kind
    from repetita.study.runners import run_resources  # noqa: F401  (the built-in kinds are registered)

    with pytest.raises(UserError) as err:
        register_kind(RUN_KINDS["lm"])
    assert "lab_runs.py:" in str(err.value) and "test_plugins.py:" in str(err.value)
