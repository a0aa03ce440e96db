"""``repetita compose``: single-epoch runs of one's own plus a repetition term measured elsewhere, as one
law file that plans with intervals; and the direct fit of the same rows, which must not decide repetition."""

from __future__ import annotations

import json

import numpy as np
import pytest

from repetita.cli import main
from repetita.laws.record import PUBLISHED, load


def _run(capsys, *argv) -> dict:
    capsys.readouterr()
    assert main([*argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def _one_line(capsys, argv, words) -> None:
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert words in err and len(err.splitlines()) == 1 and "Traceback" not in err, err


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A Chinchilla fit of the 29 one-epoch datablations runs (sandwich intervals), as a user's own."""
    path = tmp_path_factory.mktemp("compose") / "base.json"
    assert main(["fit", "--example", "datablations", "--law", "chinchilla", "--where", "epochs <= 1",
                 "--out", str(path), "--json"]) == 0
    return path


def test_the_composed_file_joins_both_parts_and_both_regions(tmp_path, capsys, base):
    out = tmp_path / "composed.json"
    _run(capsys, "compose", "--base", str(base), "--out", str(out))
    comp, b, pub = json.loads(out.read_text()), json.loads(base.read_text()), load(PUBLISHED)
    assert comp["law"] == "data-constrained"
    assert {k: comp["params"][k] for k in ("a", "b", "e", "alpha", "beta")} == {
        k: b["params"][k] for k in ("a", "b", "e", "alpha", "beta")}
    assert (comp["params"]["rd_star"], comp["params"]["rn_star"]) == (pub["params"]["rd_star"], pub["params"]["rn_star"])
    # the region: the one-epoch runs' model sizes and compute, the published runs' epochs
    assert comp["region"]["params"] == min(b["region"]["params"], pub["region"]["params"])
    assert comp["region"]["compute"] == min(b["region"]["compute"], pub["region"]["compute"])
    assert comp["region"]["epochs"] == pub["region"]["epochs"] > 1 == b["region"].get("epochs", 1)
    # joint draws: the published point carries none, so they are the base fit's sandwich draws
    u = comp["uncertainty"]
    assert u["free"] == ["a", "b", "e", "alpha", "beta"] and np.shape(u["samples"]) == (1000, 5)
    alpha = np.asarray(u["samples"])[:, 3]
    lo, hi = np.quantile(alpha, [0.025, 0.975])
    iv = b["intervals"]["alpha"]  # its Laplace interval, on the log scale
    assert np.log(lo / iv["lo"]) == pytest.approx(0.0, abs=0.15) and np.log(hi / iv["hi"]) == pytest.approx(0.0, abs=0.15)
    assert any("no parameter interval" in w for w in comp["warnings"])
    assert len(comp["runs"]) == 29 and all(r[1] == r[2] for r in comp["runs"])  # one-epoch runs: D = U


def test_the_composed_file_plans_with_intervals_and_the_direct_fit_withholds(tmp_path, capsys, base):
    out = tmp_path / "composed.json"
    _run(capsys, "compose", "--base", str(base), "--out", str(out))
    plan = _run(capsys, "plan", "--law-file", str(out), "--compute", "9.26e21", "--unique-tokens", "25e9")
    (law,) = plan["laws"].values()
    assert law["epochs"] > 1 and law["intervals"]["loss"][0] < law["loss"] < law["intervals"]["loss"][1]
    assert law["intervals"]["epochs"][0] < law["epochs"] < law["intervals"]["epochs"][1]
    assert plan["decision"][0].startswith("decision: train N* = ")
    # docs/plan.md's worked example: 6.59B params for 9.37 epochs, loss 2.4012 [2.1785, 2.6641]
    assert (law["params"], law["epochs"], law["loss"]) == (pytest.approx(6.587e9, rel=0.02), pytest.approx(9.37, rel=0.02),
                                                           pytest.approx(2.4012, abs=1e-3))
    assert law["intervals"]["loss_prediction"] == pytest.approx([2.1785, 2.6641], abs=0.01)
    direct = tmp_path / "direct.json"
    _run(capsys, "fit", "--example", "datablations", "--law", "data-constrained", "--where", "epochs <= 1",
         "--out", str(direct))
    plan = _run(capsys, "plan", "--law-file", str(direct), "--compute", "9.26e21", "--unique-tokens", "25e9")
    assert plan["decision"][0].startswith("decision withheld: the law was fitted on one-epoch runs only")


def test_composition_is_reproducible_from_its_seed(tmp_path, capsys, base):
    for name in ("one", "two"):
        _run(capsys, "compose", "--base", str(base), "--out", str(tmp_path / f"{name}.json"), "--seed", "3")
    assert (tmp_path / "one.json").read_bytes() == (tmp_path / "two.json").read_bytes()


def test_conflicting_or_wrong_sources_are_one_line(tmp_path, capsys, base):
    rec = load(PUBLISHED)
    # a repetition fit that fitted its own Chinchilla part, to other values than the base's
    other = rec | {"spec": {"law": "data-constrained", "freeze": {}}, "free": list(rec["params"])}
    path = tmp_path / "joint.json"
    path.write_text(json.dumps(other))
    out = str(tmp_path / "c.json")
    _one_line(capsys, ["compose", "--base", str(base), "--repetition", str(path), "--out", out],
              "both fitted the Chinchilla part and disagree")
    _one_line(capsys, ["compose", "--base", PUBLISHED, "--repetition", str(path), "--out", out],
              "terms beyond the Chinchilla part")
    _one_line(capsys, ["compose", "--base", str(base), "--repetition", str(base), "--out", out], "name the same file")
    _one_line(capsys, ["compose", "--base", str(tmp_path / "none.json"), "--out", out], "no such fit file")
    assert not (tmp_path / "c.json").exists()
