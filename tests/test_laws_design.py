"""Experiment design (``repetita suggest``): the value of a run, the greedy batch, and its bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest

from repetita.cli import main
from repetita.decide import design


def _linear(S: int = 40_000, M: int = 6, seed: int = 0):
    """A linear-Gaussian design: theta ~ N(0, I_3), decision g = A theta, candidate m predicts x_m . theta."""
    rng = np.random.default_rng(seed)
    theta = rng.standard_normal((S, 3))
    A = np.array([[1.0, 0.5, 0.0], [0.0, 1.0, 0.0], [0.2, 0.0, 1.0]])
    X = rng.standard_normal((M, 3))
    return theta @ A.T, theta @ X.T, A, X


def test_a_run_all_draws_agree_on_is_worth_nothing():
    G, F, _, _ = _linear()
    F[:, 2] = 1.7  # every draw predicts the same loss here
    var_g, cov_gf, cov_ff = design.pooled_moments(G, F, np.ones(len(G)))
    v = design.values(cov_gf, np.diag(cov_ff), np.diag(var_g), 0.01)
    assert v[2] == pytest.approx(0.0, abs=1e-12) and (np.delete(v, 2) > 0.01).all()


def test_doubling_the_noise_lowers_every_value():
    G, F, _, _ = _linear()
    var_g, cov_gf, cov_ff = design.pooled_moments(G, F, np.ones(len(G)))
    v1 = design.values(cov_gf, np.diag(cov_ff), np.diag(var_g), 0.1)
    v2 = design.values(cov_gf, np.diag(cov_ff), np.diag(var_g), 0.2)
    assert (v2 < v1).all()


def test_the_batch_never_repeats_a_run_and_conditions_on_earlier_picks():
    G, F, _, _ = _linear(M=8)
    cost = np.ones(8)
    picks = design.greedy_batch(G, F, np.ones(len(G)), 0.05, cost, k=20)
    idx = [p.index for p in picks]
    assert len(set(idx)) == len(idx) and 1 <= len(idx) <= 8  # k beyond the pool: each run at most once
    # and only while a run is worth its compute: without the threshold the same runs come first, and the
    # next one would have removed less than MIN_VALUE of the decision's variance
    assert all(p.value >= design.MIN_VALUE for p in picks)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(design, "MIN_VALUE", 0.0)
        every = design.greedy_batch(G, F, np.ones(len(G)), 0.05, cost, k=20)
    assert [p.index for p in every[:len(idx)]] == idx and len(every) == 8
    assert len(idx) == 8 or every[len(idx)].value < design.MIN_VALUE
    # an exact duplicate of the first pick is worth far less once the first is observed
    F2 = np.concatenate([F, F[:, [idx[0]]]], axis=1)
    picks = design.greedy_batch(G, F2, np.ones(len(G)), 0.05, np.ones(9), k=2)
    assert picks[0].index == idx[0] and picks[1].index != 8
    # the decision's spread never grows as runs are added
    sds = [p.sd_before for p in picks] + [picks[-1].sd_after]
    assert all((b >= a - 1e-12).all() for a, b in zip(sds[1:], sds, strict=False))


def test_linear_gaussian_update_matches_the_exact_posterior():
    """For a linear-Gaussian model the ensemble update is Bayes' rule: after observing run m with noise
    s^2 the decision's variance is a' a - (a' x_m)^2 / (x_m' x_m + s^2) (prior N(0, I))."""
    G, F, A, X = _linear(S=200_000)
    picks = design.greedy_batch(G, F, np.ones(len(G)), 0.3, np.ones(F.shape[1]), k=1)
    m = picks[0].index
    exact = np.sqrt(np.einsum("ij,ij->i", A, A) - (A @ X[m]) ** 2 / (X[m] @ X[m] + 0.3))
    assert picks[0].sd_after == pytest.approx(exact, rel=0.02)


def test_value_is_per_flop():
    G, F, _, _ = _linear(M=2)
    F[:, 1] = F[:, 0]  # two identical runs, one ten times dearer
    picks = design.greedy_batch(G, F, np.ones(len(G)), 0.05, np.array([10.0, 1.0]), k=1)
    assert picks[0].index == 1


def test_discrimination_grows_where_laws_disagree():
    means = np.array([[1.0, 1.0, 1.0], [1.0, 1.1, 1.5]])
    variances = np.full((2, 3), 0.01)
    d = design.discrimination(means, variances, np.array([0.5, 0.5]), 0.01)
    assert d[0] == 0 and d[0] < d[1] < d[2]


def test_candidate_grid_applies_the_cap():
    cand = design.candidate_grid([1e8, 1e9], [1e9, 1e10], [1, 4], max_run_flops=6 * 1e9 * 1e10)
    assert len(cand) == 7 and cand.cost.max() <= 6e19 and np.allclose(cand.tokens, cand.unique_tokens * cand.epochs)


@pytest.fixture(scope="module")
def fit_files(tmp_path_factory):
    """Two laws fitted to the same runs (the 182 datablations runs shipped) with Laplace uncertainty."""
    folder = tmp_path_factory.mktemp("fits")
    paths = []
    for law in ("data-constrained", "chinchilla"):
        out = folder / f"{law}.json"
        assert main(["fit", "--example", "datablations", "--law", law, "--out", str(out), "--json"]) == 0
        paths.append(str(out))
    return folder, paths


def test_suggest_cli_ranks_runs_and_writes_them(fit_files, tmp_path, capsys):
    table, paths = fit_files
    capsys.readouterr()
    csv = tmp_path / "next.csv"
    argv = ["suggest", "--law-file", paths[0], "--law-file", paths[1], "--compute", "9.26e21", "--unique-tokens",
            "25e9", "--sizes", "1e7:9e9:6", "--budgets", "1e8:25e9:5", "--epochs", "1,4,16", "--runs", "3",
            "--csv", str(csv)]
    assert main(argv + ["--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out["runs"]) == 3 and set(out["laws"]) == {"data-constrained", "chinchilla"}
    # the decision names how far it lies beyond the runs each law was fitted to (largest fitted: 8.67e9 params)
    assert any(w.startswith("chinchilla: the decision lies outside the fitted runs (model size") for w in out["warnings"])
    keys = [(r["params"], r["unique_tokens"], r["epochs"]) for r in out["runs"]]
    assert len(set(keys)) == 3
    assert all(r["unique_tokens"] <= 25e9 * 1.0001 and r["flops"] == pytest.approx(6 * r["params"] * r["tokens"])
               for r in out["runs"])
    assert csv.read_text().splitlines()[0] == "params,unique_tokens,epochs,tokens,flops"
    # the same call reproduces bit for bit
    assert main(argv + ["--json"]) == 0
    assert json.loads(capsys.readouterr().out)["runs"] == out["runs"]
    # runs already measured are not suggested again
    done = tmp_path / "done.csv"
    done.write_text("params,unique_tokens,epochs\n" + "\n".join(f"{n},{u},{k}" for n, u, k in keys[:1]) + "\n")
    assert main(argv + ["--done", str(done), "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert keys[0] not in [(r["params"], r["unique_tokens"], r["epochs"]) for r in again["runs"]]
    # a malformed --done table is one line
    bad = tmp_path / "bad.csv"
    bad.write_text("params,unique_tokens,epochs\n1e7,1e8,1\nx,1e8,1\n")
    assert main(argv + ["--done", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "row 3: params, unique_tokens and epochs must be positive numbers" in err and err.count("\n") == 1


def test_suggest_writes_a_spec_that_repetita_run_expands_to_the_same_runs(fit_files, tmp_path, capsys):
    from repetita.study.spec import expand, load_spec

    _, paths = fit_files
    argv = ["suggest", "--law-file", paths[0], "--compute", "9.26e21", "--unique-tokens", "25e9", "--sizes",
            "1e7,1e8,1e9", "--budgets", "1e8,1e9,25e9", "--epochs", "1,4,16", "--runs", "3", "--json"]
    capsys.readouterr()
    assert main(argv + ["--spec-out", str(tmp_path / "s.toml")]) == 0
    out = json.loads(capsys.readouterr().out)

    def points(study):
        return sorted((r.config.values["params"], r.config.values["unique_tokens"], r.config.values["epochs"])
                      for r in study.runs)

    want = sorted((r["params"], int(r["unique_tokens"]), r["epochs"]) for r in out["runs"])
    assert points(expand(load_spec(tmp_path / "s.toml"))) == want
    # added to a command spec of the user's: its models are kept and numbered as it numbers them
    base = tmp_path / "mine.toml"
    text = ('name = "mine"\n[[models]]\nparams = 1e9\n{fields}[grid]\nunique_tokens = [100]\nepochs = [1]\n'
            '[recipes.command]\ncommand = "{{python}} t.py {{params}} {command} {{run_dir}}"\n'
            'result = {{kind = "json", path = "r.json", key = "loss"}}\n')
    base.write_text(text.format(fields="", command=""))
    assert main(argv + ["--spec-out", str(tmp_path / "t.toml"), "--spec-base", str(base)]) == 0
    capsys.readouterr()
    raw = load_spec(tmp_path / "t.toml")
    assert raw["models"][0] == {"params": 1e9}
    study = expand(raw)
    assert set(want) <= set(points(study)) and len(points(study)) == len(want) + 1  # + the base's own grid run
    # a size the base has no fields for is refused rather than written as a spec that cannot run
    base.write_text(text.format(fields="d_model = 64\n", command="{d_model}"))
    assert main(argv + ["--spec-out", str(tmp_path / "v.toml"), "--spec-base", str(base)]) == 2
    err = capsys.readouterr().err
    assert "its [[models]] tables carry d_model" in err and err.count("\n") == 1 and not (tmp_path / "v.toml").exists()
    # an LM-lab spec measures its sizes: it cannot take runs by N
    assert main(argv + ["--spec-out", str(tmp_path / "u.toml"), "--spec-base", "example:tiny"]) == 2
    err = capsys.readouterr().err
    assert "--spec-base must be a spec of your own trainer" in err and err.count("\n") == 1
    assert not (tmp_path / "u.toml").exists()


@pytest.mark.parametrize("change,message", [
    (["--max-run-flops", "1e3"], "the feasible set is empty after the per-run compute cap"),
    (["--budgets", "1e8:3e10:3"], "beyond the target's corpus"),
    (["--runs", "0"], "--runs (k) must be from 1"),
    (["--law-file", "example:datablations-published"], "has no parameter uncertainty"),
    (["--compute", "9.26e21", "--params", "1e8"], "give the target as --compute C or --params N"),
])
def test_bad_input_is_one_line_exit_2(fit_files, capsys, change, message):
    _, paths = fit_files
    base = {"--law-file": paths[0], "--compute": "9.26e21", "--unique-tokens": "25e9", "--sizes": "1e7:9e9:5",
            "--budgets": "1e8:25e9:4", "--runs": "3"}
    argv = ["suggest"]
    for flag, value in base.items():
        if flag not in change:
            argv += [flag, value]
    assert main(argv + change) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err


def test_fits_of_different_data_are_refused(fit_files, tmp_path, capsys):
    _, paths = fit_files
    other = tmp_path / "other.json"
    assert main(["fit", "--example", "datablations-all", "--law", "chinchilla", "--out", str(other), "--json"]) == 0
    capsys.readouterr()
    assert main(["suggest", "--law-file", paths[0], "--law-file", str(other), "--compute", "9.26e21", "--unique-tokens",
                 "25e9", "--sizes", "1e7:9e9:5", "--budgets", "1e8:25e9:4"]) == 2
    assert "fitted on different data" in capsys.readouterr().err


def test_retrospective_replay_ends_at_the_known_plan_and_never_repeats_a_run():
    """A synthetic pool from a known Chinchilla law: every order ends with every run revealed once and its
    plan at the known one; a replay's 'reached' is the compute from which the plan stays within tolerance."""
    from synthetic_laws import table as law_table
    from synthetic_laws import true_params

    from repetita.decide.retrospective import Replay, reference_plan, replay
    from repetita.laws.fit import LawFit

    rng = np.random.default_rng(5)
    df = law_table("chinchilla", true_params("chinchilla", rng), 40, rng, noise=0.003)
    est = LawFit("chinchilla").fit(df)
    C, U = 1e21, 1e11
    ref = reference_plan(est, C, U)
    reps = replay(est, df, C, U, start=12, seeds=2, n_starts=2)
    assert [r.name for r in reps] == ["suggest", "suggest-doubling", "random-0", "random-1", "cheapest"]
    doubling = reps[1]
    step_cost = np.diff(doubling.spent)
    cheapest_left = [min(6 * df["params"][j] * df["tokens"][j] for j in doubling.order[i:]) for i in range(28)]
    # each step at most doubles the compute spent, unless even the cheapest run left costs more
    assert np.all((step_cost <= doubling.spent[:-1] * (1 + 1e-12)) | np.isclose(step_cost, cheapest_left))
    for r in reps:
        assert sorted(r.order) == sorted(set(r.order)) and len(r.order) == 40 - 12
        assert np.all(np.diff(r.spent) > 0) and r.spent[-1] == pytest.approx(reps[0].spent[-1])
        assert np.allclose(r.plans[-1], ref, rtol=1e-3)  # all runs known: the multi-start plan
        assert r.reached(ref, 0.1) is not None
    fake = Replay("x", np.array([1.0, 2.0, 3.0, 4.0]), np.array([ref, ref + [0, 0, 1], ref, ref]), [])
    assert fake.reached(ref, 0.1) == 3.0  # in, out, then in for good from the third step


def test_greedy_batch_equals_conditioning_the_draws_themselves():
    """The rank-one covariance update is the square-root ensemble Kalman update of the draws: shrinking each
    draw's deviation along the observed prediction gives the same covariances, hence the same picks."""
    G, F, _, _ = _linear(S=5000, M=7, seed=2)
    w = np.full(len(G), 1.0 / len(G))
    noise = 0.2
    picks = design.greedy_batch(G, F, w, noise, np.ones(7), k=3)
    g, f = G.copy(), F.copy()
    for p in picks:
        d = f[:, p.index] - w @ f[:, p.index]
        vf = w @ (d * d)
        shrink = (1 - np.sqrt(noise / (vf + noise))) / vf
        g -= shrink * np.outer(d, (w * d) @ (g - w @ g))
        f -= shrink * np.outer(d, (w * d) @ (f - w @ f))
        sd = np.sqrt(w @ (g - w @ g) ** 2)
        assert sd == pytest.approx(p.sd_after, rel=1e-9)


def test_a_budget_is_spent_where_runs_can_still_change_the_decision(fit_files, capsys, monkeypatch):
    _, paths = fit_files
    base = ["suggest", "--law-file", paths[0], "--law-file", paths[1], "--compute", "9.26e21", "--unique-tokens",
            "25e9", "--sizes", "1e7:9e9:8", "--budgets", "1e8:25e9:6", "--epochs", "1,4,16,64", "--runs", "8", "--json"]
    for total in (1e20, 1e21):
        assert main(base + ["--total-flops", f"{total:g}"]) == 0
        out = json.loads(capsys.readouterr().out)
        assert out["total_flops"] <= total and out["total_flops"] >= 0.5 * total  # at least half of F is spent
        assert out["unspent"]["flops"] == pytest.approx(total - out["total_flops"]) and out["unspent"]["why"]
        assert out["selection"].startswith("the better of per FLOP and by value")
    # without --total-flops a compute target spends 10% of its compute, and says so
    assert main(base) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["budget"] == pytest.approx(9.26e20) and out["budget_source"] == "10% of the decision's compute"
    # a budget below the cheapest run is one sentence, exit 2
    assert main(base[:-1] + ["--total-flops", "1e10"]) == 2
    err = capsys.readouterr().err.strip()
    assert "below the cheapest run offered" in err and len(err.splitlines()) == 1
    # a decision no offered run can move says so in one sentence, exit 0, never an empty table without a word
    monkeypatch.setattr(design, "MIN_VALUE", 2.0)
    assert main(base[:-1]) == 0
    text = capsys.readouterr().out.strip()
    assert text.startswith("the decision is settled for these candidates") and len(text.splitlines()) == 1


def test_expected_regret_is_half_the_curvature_times_the_variance(fit_files, capsys, monkeypatch):
    from repetita.decide.allocate import solve
    from repetita.laws.evaluate import point_theta
    from repetita.laws.record import estimator, load

    _, paths = fit_files
    est = estimator(load(paths[0]))
    law, theta = est.spec.law_obj, point_theta(est)
    c, u = 9.26e21, 25e9
    n_star = float(solve(law, theta, [c], u)["params"][0, 0])
    h = design.curvature(law, theta[0], np.log(n_star), c, u)
    # the second-order expansion it stands for: the loss 0.2 in ln N off the optimum costs about h 0.2^2 / 2
    from repetita.laws.law import law_loss

    off = law_loss(law, theta, n_star * np.exp(0.2), c / (6 * n_star * np.exp(0.2)), u)[0, 0]
    at = law_loss(law, theta, n_star, c / (6 * n_star), u)[0, 0]
    assert off - at == pytest.approx(0.5 * h * 0.2 ** 2, rel=0.1) and h > 0
    base = ["suggest", "--law-file", paths[0], "--compute", "9.26e21", "--unique-tokens", "25e9", "--sizes",
            "1e7:9e9:6", "--budgets", "1e8:25e9:4", "--epochs", "1,4,16", "--json"]
    assert main(base) == 0
    r = json.loads(capsys.readouterr().out)["expected_regret"]
    assert 0 < r["after"] <= r["now"]
    monkeypatch.setattr(design, "SETTLED_REGRET", 10.0)  # any decision is settled to within 10 nats
    assert main(base[:-1]) == 0
    assert capsys.readouterr().out.startswith("the decision is settled to within")
