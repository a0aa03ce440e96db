import json
import math

import numpy as np
import pytest

from repetita.cli import main
from repetita.data_mix import composition as cp
from repetita.data_mix import sequence as sq
from repetita.errors import UserError


def test_answers_equal_step_by_step_composition():
    for scratchpad, sampling in ((False, "distinct"), (True, "distinct"), (False, "independent")):
        cfg = sq.SequenceConfig(p=13, skills=6, k=3, scratchpad=scratchpad, sampling=sampling)
        a, b = sq.make_task(cfg)
        assert np.all((a >= 1) & (a < 13)) and np.all((b >= 0) & (b < 13))
        seqs, skills = sq.sample_examples(np.random.default_rng(0), cfg, cp.skill_probs(6, 1.0), 500, (a, b))
        assert seqs.shape == (500, cfg.length) and seqs.max() < cfg.vocab
        for row, sk in zip(seqs, skills, strict=True):
            x, steps = int(row[0]), []
            assert list(row[1:4] - 13) == list(sk) and row[4] == 13 + 6
            assert len(set(sk)) == 3 or sampling == "independent"
            for s in sk:
                x = (int(a[s]) * x + int(b[s])) % 13
                steps.append(x)
            assert row[-1] == x
            if scratchpad:
                assert list(row[5:]) == steps


def test_independent_positions_repeat_skills_as_often_as_pi_says():
    cfg = sq.SequenceConfig(p=13, skills=6, k=2)
    probs = cp.skill_probs(6, 1.0)
    _, skills = sq.sample_examples(np.random.default_rng(0), cfg, probs, 50_000, sq.make_task(cfg))
    assert (skills[:, 0] == skills[:, 1]).mean() == pytest.approx((probs ** 2).sum(), abs=0.01)


def test_mask_covers_exactly_the_answer():
    cfg = sq.SequenceConfig(k=3)
    mask = sq.target_mask(cfg)
    assert mask.shape == (cfg.length - 1,) and mask.sum() == 1 and mask[-1]
    pad = sq.target_mask(sq.SequenceConfig(k=3, scratchpad=True))
    assert pad.sum() == 3 and pad[-3:].all()


def test_skill_frequencies_follow_pi():
    cfg = sq.SequenceConfig(skills=10, k=1)
    probs = cp.skill_probs(10, 1.0)
    _, skills = sq.sample_examples(np.random.default_rng(1), cfg, probs, 40_000, sq.make_task(cfg))
    assert np.bincount(skills.ravel(), minlength=10) / 40_000 == pytest.approx(probs, abs=0.01)
    # k = 2: order within an example is uniform, so each skill is first about half the time.
    cfg = sq.SequenceConfig(skills=10, k=2)
    _, skills = sq.sample_examples(np.random.default_rng(2), cfg, probs, 20_000, sq.make_task(cfg))
    first = np.bincount(skills[:, 0], minlength=10)
    second = np.bincount(skills[:, 1], minlength=10)
    assert first[0] > first[4] > first[9]
    assert first / (first + second) == pytest.approx(np.full(10, 0.5), abs=0.05)


TINY = dict(p=5, skills=3, k=1, samples=64 * 300, batch=64, lr=1e-2, warmup=20, n_layer=1, n_head=2,
            d_model=32, evals=3, test_size=256)


def test_tiny_run_learns_and_is_deterministic():
    cfg = sq.SequenceConfig(**TINY)
    r1 = sq.train(cfg, 0.0)
    r2 = sq.train(cfg, 0.0)
    assert r1 == r2
    assert r1["samples"][-1] == 64 * 300 and len(r1["loss"]) == 3
    assert r1["loss"][-1] < 0.3 * math.log(5) and r1["acc"][-1] > 0.9


def test_first_reaching_reads_the_curve():
    curve = {"samples": [64, 128, 256, 512], "acc": [0.1, 0.5, 0.45, 0.95], "loss": [2.0, 1.0, 1.1, 0.2]}
    assert sq.first_reaching(curve, 0.5) == 128  # first crossing, not the last or the best
    assert sq.first_reaching(curve, 0.9) == 512
    assert sq.first_reaching(curve, 0.96) is None
    assert sq.first_reaching(curve, 1.05, "loss") == 128  # loss levels are reached from above


def test_compare_and_save(tmp_path):
    cfg = sq.SequenceConfig(**(TINY | {"samples": 64 * 40, "skills": 4}))
    out = sq.compare(cfg, exponents=[0, 1.0], seeds=[0], level=0.5)
    assert set(out["summary"]) == {"0.0", "1.0"}
    for run in out["runs"]:  # the summary is the first evaluation at or above the level, per run
        assert run["reached_at"] == sq.first_reaching(run, 0.5)
        s = out["summary"][str(run["exponent"])]
        assert s["reached_at"] == [run["reached_at"]] and s["reached"] == int(run["reached_at"] is not None)
    never = sq.compare(cfg, exponents=[0], seeds=[0], level=1.01)["summary"]["0.0"]
    assert never["reached"] == 0 and never["median_reached_at"] is None
    json.dumps(out)
    sq.save(out, str(tmp_path))
    assert (tmp_path / "mix_sequence.png").stat().st_size > 1000
    assert json.loads((tmp_path / "mix_sequence.json").read_text())["exponents"] == [0.0, 1.0]


@pytest.mark.parametrize("kw,field", [({"p": 15}, "p"), ({"p": 2}, "p"), ({"k": 0}, "k"), ({"skills": 1}, "skills"),
                                      ({"exponent": -1}, "exponent"), ({"samples": 10, "batch": 64}, "samples"),
                                      ({"lr": 0}, "lr"), ({"evals": 1}, "evals"), ({"d_model": 30}, "d_model")])
def test_bad_config_names_the_field(kw, field):
    with pytest.raises(UserError, match=rf"^{field} "):
        sq.SequenceConfig(**kw)


@pytest.mark.parametrize("argv,msg", [(["--p", "9"], "p must be a prime"), (["--exponents", "0,-1"], "--exponents"),
                                      (["--seeds", "x"], "--seeds"),
                                      (["--k", "9", "--sampling", "distinct"], "k = 9 distinct skills need k <= skills")])
def test_cli_bad_input_is_one_line_exit_2(capsys, argv, msg):
    code = main(["mix", "sequence", *argv, "--json"])
    out, err = capsys.readouterr()
    # with --json the error is also one JSON object on stdout, the same message as the stderr line
    assert code == 2 and json.loads(out)["exit"] == 2 and json.loads(out)["error"] in err
    assert msg in err and err.count("\n") == 1


def test_cli_json(capsys):
    code = main(["mix", "sequence", "--p", "5", "--skills", "3", "--k", "1", "--samples", "128", "--batch", "64",
                 "--n-layer", "1", "--d-model", "16", "--n-head", "2", "--evals", "2", "--test-size", "32",
                 "--seeds", "0", "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    r = json.loads(out)
    assert r["exponents"] == [0.0, 1.0] and len(r["runs"]) == 2
