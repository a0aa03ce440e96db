import json

import pytest

from repetita.cli import main


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_onepass_json(capsys):
    code, out, err = run(capsys, "theory", "onepass", "--n", "10,1e3", "--spectrum", "power:1.5", "--d", "8", "--json")
    assert code == 0 and err == ""
    r = json.loads(out)
    assert len(r["risk_star"]) == 2 and r["risk_star"][1] < r["risk_star"][0]
    code, out, _ = run(capsys, "theory", "onepass", "--n", "100", "--eta", "0.01", "0.02", "--json")
    assert code == 0 and len(json.loads(out)["risk"]) == 2


def test_reuse_json_and_files(capsys, tmp_path):
    png, saved = tmp_path / "e.png", tmp_path / "t.json"
    code, out, err = run(capsys, "theory", "reuse", "--N", "200", "--K", "1,4", "--d", "3", "--replicates", "16",
                         "--threads", "1", "--plot", str(png), "--save", str(saved), "--json")
    assert code == 0, err
    r = json.loads(out)
    assert r["Ks"] == [1, 4] and len(r["E"][0]) == 2
    assert png.stat().st_size > 1000 and json.loads(saved.read_text())["config"]["replicates"] == 16
    assert (tmp_path / "e.json").is_file()


@pytest.mark.parametrize(
    "argv,msg",
    [
        (["theory", "reuse", "--N", "0"], "--N must be positive"),
        (["theory", "reuse", "--K", "-2"], "--K must be positive"),
        (["theory", "reuse", "--d", "0"], "--d must be"),
        (["theory", "reuse", "--sigma", "0"], "--sigma must be"),
        (["theory", "reuse", "--spectrum", "power:"], "spectrum"),
        (["theory", "onepass", "--n", "10", "--eta", "3"], "stable range"),
        (["theory", "onepass", "--n", "10", "--spectrum", "zipf"], "not understood"),
    ],
)
def test_bad_input_is_one_line_exit_2(capsys, argv, msg):
    code, out, err = run(capsys, *argv, "--json")
    # with --json the error is also one JSON object on stdout, the same message as the stderr line
    assert code == 2 and json.loads(out)["exit"] == 2 and json.loads(out)["error"] in err
    assert msg in err and err.count("\n") == 1
