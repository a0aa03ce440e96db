"""Study specs: every shipped spec parses; bad specs fail with one line naming the problem."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pytest

from repetita.cli import main
from repetita.errors import UserError
from repetita.study.spec import expand, load_spec, resolve_spec

SPECS = sorted(p.name for p in (resources.files("repetita.examples") / "specs").iterdir() if p.name.endswith(".toml"))

GOOD = """
name = "t"
seeds = [0, 1]
[base]
corpus = "markov:V=24,order=1,n=30000,seed=2"
context = 16
[[models]]
n_layer = 1
d_model = 16
[[models]]
n_layer = 2
d_model = 16
[grid]
unique_tokens = [256, 512]
epochs = [1, 2, 4]
[recipes.standard]
[recipes.regularized]
weight_decay = [0.1, 0.8]
epochs = [2]
[recipes.ensemble]
members = [2, 4]
unique_tokens = [512]
epochs = [2]
[recipes.distill]
teacher_members = 2
alpha = [0.5, 0.9]
epochs = [2]
unique_tokens = [512]
"""


def _spec(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "spec.toml"
    p.write_text(text)
    return p


@pytest.mark.parametrize("name", SPECS)
def test_every_shipped_spec_parses(name, tmp_path):
    from repetita.lm.config import TrainConfig

    spec = load_spec(f"example:{name[:-5]}")
    study = expand(spec)
    assert len({r.id for r in study.runs}) == len(study.runs)
    # each run id is the hash of the config it carries, and the config survives its JSON round trip
    for r in study.runs:
        assert TrainConfig.from_json(r.config.to_json()).hash in r.id
    # the standard recipe trains every model x budget x epochs x seed of the grid
    if "standard" in spec.get("recipes", {}):
        std = spec["recipes"]["standard"] or {}
        grid = spec.get("grid", {})
        want = len(spec["models"]) * len(spec.get("seeds", [0]))
        for key in ("unique_tokens", "epochs"):
            want *= len(std.get(key, grid.get(key, [None])))
        assert sum(r.recipe == "standard" for r in study.runs) == want


def test_examples_folder_is_the_shipped_specs():
    root = Path(__file__).resolve().parents[1] / "examples"
    assert sorted(p.name for p in root.glob("*.toml")) == SPECS
    assert {"tiny.toml", "demo.toml", "gpu.toml"} <= set(SPECS)


def test_expansion_counts_ids_and_dependencies(tmp_path):
    study = expand(load_spec(_spec(tmp_path, GOOD)))
    by_recipe = {}
    for r in study.runs:
        by_recipe.setdefault(r.recipe, []).append(r)
    # standard: 2 models x 2 U x 3 K x 2 seeds; regularized (coordinate search): its start point in each of
    # 2 models x 2 U x 2 seeds cells, the next points come once it is measured; ensemble: 2 x 1 U x 1 K x
    # 2 sizes x 2 seeds
    assert len(by_recipe["standard"]) == 24
    assert len(by_recipe["regularized"]) == 8
    assert all(r.config.weight_decay == 0.1 for r in by_recipe["regularized"])
    # the fixed grid is an explicit option: every (WD, K) point of every cell at once
    grid = expand(load_spec(_spec(tmp_path, GOOD.replace("epochs = [2]\n[recipes.ensemble]",
                                                         "epochs = [2]\nsearch = \"grid\"\n[recipes.ensemble]"))))
    assert sum(r.recipe == "regularized" for r in grid.runs) == 16
    # the distill teachers (2 members) coincide with the ensemble runs of 2 members: shared, not duplicated.
    # Ensembles are member runs: 2 models x 2 sizes x 2 seeds evaluations; their members (seeds s..s+K-1)
    # are shared across K and seeds: seeds 0..3 and 1..4, so 5 member runs per model
    ensembles = [r for r in by_recipe["ensemble"] if r.config.members > 1]
    members = [r for r in by_recipe["ensemble"] if r.config.members == 1]
    assert len(ensembles) == 8 and len(members) == 2 * 5
    assert sorted({r.config.seed for r in members}) == [0, 1, 2, 3, 4]
    assert len(by_recipe["distill"]) == 2 * 2 * 2
    ids = {r.id for r in study.runs}
    assert len(ids) == len(study.runs)
    position = {r.id: i for i, r in enumerate(study.runs)}
    for r in by_recipe["distill"]:
        (teacher,) = r.depends_on
        assert teacher in ids and position[teacher] < position[r.id]
        assert r.config.teacher.endswith(teacher)
    for r in ensembles:  # an ensemble waits for exactly its K members
        assert set(r.depends_on) == {m.hash for m in r.config.member_configs()} <= ids
        assert len(r.depends_on) == r.config.members
    # the id is the config hash: expanding again gives the same ids
    again = expand(load_spec(_spec(tmp_path, GOOD)))
    assert [r.id for r in again.runs] == [r.id for r in study.runs]


@pytest.mark.parametrize(
    "edit, message",
    [
        (("[grid]", "[grid]\nbatch = 3"), "[grid]: unknown key(s) batch"),
        (("name = \"t\"", "name = \"t\"\nepochs = 3"), "study spec: unknown key(s) epochs"),
        (("context = 16", "context = 16\nlearning_rate = 1"), "[base]: unknown key(s) learning_rate"),
        (("epochs = [1, 2, 4]", "epochs = []"), "grid.epochs: empty list"),
        (("epochs = [1, 2, 4]", "epochs = [\"many\"]"), "grid.epochs: 'many' has the wrong type"),
        (("unique_tokens = [256, 512]", "unique_tokens = [256.5]"), "grid.unique_tokens: 256.5 has the wrong type"),
        (("[recipes.standard]", "[recipes.bagging]"), "unknown recipe 'bagging'"),
        (("members = [2, 4]", "members = [2, 4]\nlr = 1"), "[recipes.ensemble]: unknown key(s) lr"),
        (("context = 16", "context = 16\nunique_tokens = 5"), "[base]: unknown key(s) unique_tokens"),
        (("corpus = \"markov:V=24,order=1,n=30000,seed=2\"", "corpus = \"/no/such/corpus.txt\""),
         "corpus path '/no/such/corpus.txt' does not exist"),
        (("context = 16", "context = 2"), "context=2 must be in [8, 4096]"),
        (("context = 16", "context = \"wide\""), "context='wide' has the wrong type"),
        (("epochs = [2]\n[recipes.ensemble]", "search = \"random\"\n[recipes.ensemble]"), "search='random' must be"),
    ],
)
def test_bad_specs_name_the_problem(tmp_path, edit, message):
    old, new = edit
    assert old in GOOD
    with pytest.raises(UserError) as err:
        expand(load_spec(_spec(tmp_path, GOOD.replace(old, new, 1))))
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_malformed_toml_and_missing_file(tmp_path):
    with pytest.raises(UserError, match="malformed TOML"):
        load_spec(_spec(tmp_path, "name = [unclosed"))
    with pytest.raises(UserError, match="no such study spec"):
        load_spec(tmp_path / "absent.toml")
    with pytest.raises(UserError, match="unknown example spec 'nope'"):
        resolve_spec("example:nope")
    with pytest.raises(UserError, match=r"missing \[grid\]"):
        expand(load_spec(_spec(tmp_path, 'name = "x"\n[recipes.standard]\n')))


def test_cli_bad_spec_exit_2_one_line_and_nothing_written(tmp_path, capsys):
    spec = _spec(tmp_path, GOOD.replace("[grid]", "[grid]\nbatch = 3"))
    study = tmp_path / "study"
    rc = main(["run", str(spec), "--dir", str(study)])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.count("\n") == 1 and "unknown key(s) batch" in err
    assert not study.exists()


def test_cli_refuses_a_folder_that_is_not_a_study(tmp_path, capsys):
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    rc = main(["run", str(_spec(tmp_path, GOOD)), "--dir", str(other)])
    assert rc == 2
    assert "not a study directory" in capsys.readouterr().err
    assert sorted(p.name for p in other.iterdir()) == ["notes.txt"]
    for cmd in (["report", str(other)], ["status", str(other)], ["export", str(other), str(tmp_path / "x.csv")]):
        assert main(cmd) == 2
        assert "not a study directory" in capsys.readouterr().err
    assert main(["report", str(tmp_path / "absent")]) == 2
    assert "no such study directory" in capsys.readouterr().err


def test_run_counts_in_the_study_doc_are_the_expanded_counts():
    # docs/study.md's table of shipped specs gives each spec's run count ("44 + search" where a coordinate
    # search adds runs later): every count there is what expand() queues now
    import re

    doc = (Path(__file__).resolve().parents[1] / "docs" / "study.md").read_text()
    rows = re.findall(r"^\| `([a-z0-9-]+)\.toml` \| (\d+)( \+ search)? \|", doc, flags=re.M)
    assert {"tiny", "demo", "gpu"} <= {name for name, _, _ in rows}
    for name, count, _ in rows:
        assert len(expand(load_spec(f"example:{name}")).runs) == int(count), name
