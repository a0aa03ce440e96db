"""Tables as users have them: mapped column names, size suffixes, derived columns, conflicting aliases; the
reuse table's own checks; absurd plan inputs; the error contract with --json; and a seeded fuzz test over
the readers (every case ends in exit 0 or exit 2 with one line, never a traceback)."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from repetita.cli import main

DC = "example:datablations-published"


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _runs(params=("1B", "4.2B")) -> pd.DataFrame:
    """Runs drawn from the published data-constrained law: a reference made of that law reads E = 1 at K = 1."""
    from repetita.laws.evaluate import predicted_loss
    from repetita.laws.record import load

    law = load(DC)
    rows = []
    for n_text in params:
        n = float(n_text[:-1]) * 1e9
        for u in (1e9, 4e9):
            for k in (1, 2, 4, 8):
                rows.append({"params": n_text, "tokens": k * u, "unique_tokens": u, "epochs": k,
                             "loss": float(predicted_loss(law, n, k * u, u))})
    return pd.DataFrame(rows)


def test_size_suffixes_are_read_in_every_numeric_column(tmp_path, capsys):
    df = _runs()
    df.to_csv(tmp_path / "suffix.csv", index=False)  # params as "1B", "4.2B"
    df.assign(tokens=[f"{t / 1e9:g}B" for t in df["tokens"]]).to_csv(tmp_path / "tokens.csv", index=False)
    for name in ("suffix.csv", "tokens.csv"):
        code, out, err = run(capsys, "reuse", str(tmp_path / name), "--law-file", DC, "--json")
        assert code == 0, err
        table = pd.DataFrame(json.loads(out)["table"])
        ones = table[table["epochs"] == 1]["reuse_rate"]
        assert np.allclose(ones, 1.0, atol=1e-3)  # the reference is the law the runs came from
        assert set(table["params"]) == {1e9, 4.2e9}
    code, out, err = run(capsys, "fit", str(tmp_path / "suffix.csv"), "--law", "chinchilla", "--json")
    assert code == 0, err


def test_columns_are_mapped_and_missing_ones_derived(tmp_path, capsys):
    df = _runs().rename(columns={"tokens": "token_num", "loss": "openLM_loss"}).drop(columns="unique_tokens")
    df.to_csv(tmp_path / "theirs.csv", index=False)
    code, out, err = run(capsys, "reuse", str(tmp_path / "theirs.csv"), "--law-file", DC,
                         "--columns", "tokens=token_num,loss=openLM_loss", "--json")
    assert code == 0, err
    assert "note: column unique_tokens derived as tokens / epochs" in err
    assert sorted(set(pd.DataFrame(json.loads(out)["table"])["unique_tokens"])) == [1e9, 4e9]
    # a mapping from a column the table lacks names the mapping and the columns there are
    code, _, err = run(capsys, "reuse", str(tmp_path / "theirs.csv"), "--law-file", DC, "--columns", "tokens=tok")
    assert code == 2 and "tokens=tok" in err and "token_num" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("alias, canonical", [("num_params", "params"), ("val_loss", "loss")])
def test_conflicting_alias_columns_are_refused_naming_both(tmp_path, capsys, alias, canonical):
    df = _runs(params=("1B",))
    df["params"] = 1e9
    df[alias] = df[canonical] * 1.5
    df.to_csv(tmp_path / "both.csv", index=False)
    for argv in (["fit", str(tmp_path / "both.csv"), "--law", "chinchilla"],
                 ["reuse", str(tmp_path / "both.csv"), "--law-file", DC]):
        code, _, err = run(capsys, *argv)
        assert code == 2 and f"'{canonical}'" in err and f"'{alias}'" in err and "differ" in err
    df[alias] = df[canonical]  # the same values under two names: the alias is dropped, nothing to refuse
    df.to_csv(tmp_path / "same.csv", index=False)
    assert run(capsys, "fit", str(tmp_path / "same.csv"), "--law", "chinchilla")[0] == 0


def test_reuse_refuses_what_its_definition_forbids(tmp_path, capsys):
    df = _runs(params=("1B",))
    shifted = df.assign(loss=df["loss"] - 0.3)  # another corpus's level: one-epoch runs far from E = 1
    shifted.to_csv(tmp_path / "level.csv", index=False)
    code, _, err = run(capsys, "reuse", str(tmp_path / "level.csv"), "--law-file", DC)
    assert code == 2 and "one-epoch run" in err and "--anchor" in err
    # anchored at each model's one-epoch runs, the shape of the law reads the runs again
    code, out, err = run(capsys, "reuse", str(tmp_path / "level.csv"), "--law-file", DC, "--anchor", "--json")
    assert code == 0, err
    # far beyond the reference with --extrapolate: an overflow is refused, never printed as 1e302 or inf
    far = df.assign(loss=np.where(df["epochs"] == 8, 1e-3, df["loss"]))
    far.to_csv(tmp_path / "far.csv", index=False)
    code, _, err = run(capsys, "reuse", str(tmp_path / "far.csv"), "--law-file", DC, "--extrapolate")
    assert code == 2 and "overflows" in err and "inf" not in err and len(err.strip().splitlines()) == 1
    # a loss of zero or below is refused, in run tables and mid-curve alike
    df.assign(loss=np.where(df["epochs"] == 2, -0.5, df["loss"])).to_csv(tmp_path / "neg.csv", index=False)
    code, _, err = run(capsys, "reuse", str(tmp_path / "neg.csv"), "--law-file", DC)
    assert code == 2 and "column 'loss'" in err and "positive" in err
    curve = pd.DataFrame({"run": "a", "tokens": [1e9, 2e9, 3e9], "loss": [3.0, -1.0, 2.8], "params": 1e9,
                          "unique_tokens": 1e9})
    curve.assign(run=["a", "a", "a"]).to_csv(tmp_path / "curve.csv", index=False)
    code, _, err = run(capsys, "reuse", str(tmp_path / "curve.csv"), "--law-file", DC)
    assert code == 2 and "must be positive" in err


@pytest.mark.parametrize("law", ["multipower", "power"])
def test_reuse_names_the_laws_it_accepts(tmp_path, capsys, law):
    record = {"law": law, "spec": {"law": law}, "params": {"a": 1.0}}
    (tmp_path / "fit.json").write_text(json.dumps(record))
    _runs().to_csv(tmp_path / "runs.csv", index=False)
    code, _, err = run(capsys, "reuse", str(tmp_path / "runs.csv"), "--law-file", str(tmp_path / "fit.json"))
    assert code == 2 and f"a '{law}' fit" in err and "data-constrained" in err and len(err.strip().splitlines()) == 1


def test_reuse_says_why_k_star_is_missing(tmp_path, capsys):
    from repetita.laws.reuse import phase_transition

    table = pd.DataFrame({"unique_tokens": 1e9, "epochs": [1.0, 2.0], "reuse_rate": [0.5, 0.6], "extrapolated": False})
    assert np.isnan(phase_transition(table, 0.75)["k_star"].iloc[0])  # E never reaches 0.75 K: no K*
    # the CLI prints it as 'none' with its reason, never 'nan' (no one-epoch runs here: E < 0.9 K throughout)
    df = _runs(params=("1B",))
    df[df["epochs"] > 1].to_csv(tmp_path / "repeated.csv", index=False)
    code, out, err = run(capsys, "reuse", str(tmp_path / "repeated.csv"), "--law-file", DC, "--lam", "0.9")
    assert code == 0, err
    assert not re.search(r"\bnan\b", out) and "none (E never reaches lambda x K)" in out
    assert "K* could not be read" in err and "no one-epoch run" in err


@pytest.mark.parametrize("argv, message", [
    (["--compute", "1e300", "--unique-tokens", "1e10"], "compute 1e+300 is outside what a plan can speak for"),
    (["--compute", "1e20:1e300:5", "--unique-tokens", "1e10"], "is outside what a plan can speak for"),
    (["--compute", "1e22", "--unique-tokens", "1e300"], "unique tokens 1e+300 is outside"),
    (["--compute", "1e22", "--unique-tokens", "1"], "unique tokens 1 is outside"),
    (["--compute", "1e22", "--unique-tokens", "1e25", "--plot", "PLOT"], "unique tokens 1e+25 is outside"),
    (["--params", "1e300", "--unique-tokens", "1e10", "--epochs", "1,2"], "params 1e+300 is outside"),
    (["--params", "1e9", "--unique-tokens", "1e9", "--epochs", "1e300"], "epochs 1e+300 is outside"),
])
def test_absurd_plans_are_one_line(tmp_path, capsys, argv, message):
    argv = [str(tmp_path / "o.png") if a == "PLOT" else a for a in argv]
    code, out, err = run(capsys, "plan", "--law-file", DC, *argv)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert "numerical" not in err and "column 'tokens'" not in err and not (tmp_path / "o.png").exists()


def test_the_error_contract(tmp_path, capsys):
    # an unknown flag names the command, not "repetita repetita"
    code, _, err = run(capsys, "plan", "--law-file", DC, "--compute", "1e21", "--unique-tokens", "1e10", "--bogus")
    assert code == 2 and err.startswith("repetita plan: error: unrecognized arguments: --bogus")
    # with --json the error is also one JSON object on stdout
    code, out, err = run(capsys, "plan", "--law-file", str(tmp_path / "none.json"), "--params", "1e9",
                         "--unique-tokens", "1e9", "--json")
    assert code == 2 and len(err.strip().splitlines()) == 1
    obj = json.loads(out)
    assert obj["exit"] == 2 and obj["command"] == "plan" and "no such fit file" in obj["error"]
    # zero params: one line, no numpy warning leaks
    _runs().assign(params=0).to_csv(tmp_path / "zero.csv", index=False)
    code, _, err = run(capsys, "reuse", str(tmp_path / "zero.csv"), "--law-file", DC)
    assert code == 2 and err.strip() == "repetita reuse: error: column 'params', row 1: 0 must be positive"


# --- fuzz: malformed tables through every reader --------------------------------------------------------

CELLS = ["1e9", "4.2B", "85B", "100M", "5k", "nan", "inf", "-inf", "-3", "0", "", "abc", "1e400", "1e-300",
         "2.5", "  7 ", "TRUE", "1,5", "\x00", "3.0e", "1e9B"]
HEADERS = ["params", "tokens", "unique_tokens", "epochs", "loss", "num_params", "val_loss", "run", "step", "lr",
           "N", "D", "U", "", "loss"]


def _fuzz_table(rng, valid: pd.DataFrame) -> str:
    if rng.random() < 0.5:  # a valid table with a few cells, or a column name, spoiled
        df = valid.astype(str)
        for _ in range(int(rng.integers(0, 4))):
            df.iat[int(rng.integers(len(df))), int(rng.integers(df.shape[1]))] = str(rng.choice(CELLS))
        if rng.random() < 0.3:
            df = df.rename(columns={df.columns[int(rng.integers(df.shape[1]))]: str(rng.choice(HEADERS))})
        return df.to_csv(index=False)
    cols = list(rng.choice(HEADERS, size=rng.integers(0, 7), replace=True))
    rows = [",".join(str(rng.choice(CELLS)) for _ in cols) for _ in range(rng.integers(0, 6))]
    return "\n".join([",".join(cols), *rows]) + ("\n" if rng.random() < 0.8 else "")


N_FUZZ = 400


def test_fuzz_readers_never_trace_back(tmp_path, capsys):
    rng = np.random.default_rng(20261202)
    commands = [
        lambda p: ["fit", p, "--law", "chinchilla"],
        lambda p: ["fit", p, "--law", "data-constrained", "--columns", "tokens=D"],
        lambda p: ["reuse", p, "--law-file", DC],
        lambda p: ["reuse", p, "--fresh", p],
        lambda p: ["predict", "--law-file", DC, "--schedule", p],
        lambda p: ["fit", p, "--law", "multipower"],
    ]
    outcomes = {0: 0, 2: 0}
    valid = _runs()
    for case in range(N_FUZZ):
        path = tmp_path / f"case{case}.csv"
        if rng.random() < 0.08:
            path.write_bytes(bytes(rng.integers(0, 256, size=int(rng.integers(1, 64)), dtype=np.uint8)))
        else:
            path.write_text(_fuzz_table(rng, valid))
        argv = commands[case % len(commands)](str(path))
        code = main(argv)  # an exception here fails the test: that is the point
        out, err = capsys.readouterr()
        assert code in (0, 2), (argv, path.read_bytes()[:200], err)
        if code == 2:
            lines = [ln for ln in err.strip().splitlines() if ": error: " in ln]
            assert len(lines) == 1 and "Traceback" not in err, (argv, err)
        else:
            assert not re.search(r"\bnan\b", out) and "Traceback" not in err
        outcomes[code] += 1
    # both ends are exercised: tables that are read and fitted, and tables refused in one line
    assert sum(outcomes.values()) == N_FUZZ and outcomes[0] > N_FUZZ // 20 and outcomes[2] > N_FUZZ // 2


def test_the_colpret_curves_are_read_as_they_are(anchors, capsys):
    """docs/reuse.md: the raw ColPret file (num_params "2.8B", token_num, tokens_per_epoch, the run in a
    string-encoded dict) in one command."""
    path = anchors / "datablations-curves" / "datablations_losses.csv"
    code, out, err = run(capsys, "reuse", str(path), "--columns", "tokens=token_num,unique_tokens=tokens_per_epoch,corpus=data",
                         "--run-column", "model_args", "--law-file", DC, "--anchor", "--json")
    assert code == 0, err
    res = json.loads(out)
    table = pd.DataFrame(res["table"])
    assert len(table) == 48 and set(table["params"]) == {2.8e9, 4.2e9, 8.7e9} and set(table["corpus"]) == {"c4", "oscar"}
    assert np.allclose(table[table["epochs"] == 1]["reuse_rate"], 1.0, atol=0.01)  # anchored one-epoch runs
    assert any("--by params,corpus" in w for w in res["warnings"])


def test_a_string_cell_and_a_schedule_with_its_own_names(tmp_path, capsys):
    df = _runs(params=("1B",)).astype(object)
    df.loc[2, "loss"] = "abc"
    df.to_csv(tmp_path / "string.csv", index=False)
    code, _, err = run(capsys, "reuse", str(tmp_path / "string.csv"), "--law-file", DC)
    assert code == 2 and err.strip() == "repetita reuse: error: column 'loss', row 3: 'abc' is not a number"
    from repetita.examples import load_example
    from repetita.laws.fit import LawFit

    curves = load_example("multipowerlaw:25M")
    fit = LawFit("multipower").fit(curves[curves["curve"] == "cosine_24000"])
    (tmp_path / "mpl.json").write_text(json.dumps(fit.result()))
    pd.DataFrame({"iteration": [1, 1000, 2000, 3000], "learning_rate": [3e-4, 3e-4, 2e-4, 1e-4]}).to_csv(
        tmp_path / "sched.csv", index=False)
    code, out, err = run(capsys, "predict", "--law-file", str(tmp_path / "mpl.json"), "--schedule",
                         str(tmp_path / "sched.csv"), "--columns", "step=iteration,lr=learning_rate", "--json")
    assert code == 0, err
    assert json.loads(out)["points"] == 4


@pytest.mark.parametrize("mapping, message", [("tokens", "'tokens': give NEW=OLD"), ("tokens=a,tokens=b", "mapped twice")])
def test_a_malformed_column_mapping_is_one_line(tmp_path, capsys, mapping, message):
    _runs().to_csv(tmp_path / "runs.csv", index=False)
    with pytest.raises(SystemExit) as exc:  # argparse rejects the value itself (the CLI exits 2 from the parser)
        main(["fit", str(tmp_path / "runs.csv"), "--law", "chinchilla", "--columns", mapping])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and message in err and len(err.strip().splitlines()) == 1
