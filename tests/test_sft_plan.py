import json

import numpy as np
import pytest

from repetita.cli import main
from repetita.errors import UserError
from repetita.sft.plan import fixed_budget_grid, summary_table


def test_anchor_grid():
    plan = fixed_budget_grid(51200, 51200, min_samples=200)
    assert plan.cells[0] == (200, 256) and plan.cells[-1] == (51200, 1) and len(plan.cells) == 9
    assert all(n * e == 51200 for n, e in plan.cells)


def test_nested_subsets_are_deterministic():
    plan = fixed_budget_grid(64, 100, [4, 16, 64], seed=3)
    subs = plan.subsets()
    assert list(subs[4]) == list(subs[16][:4]) and list(subs[16]) == list(subs[64][:16])
    assert len(set(subs[64].tolist())) == 64
    assert np.array_equal(subs[64], fixed_budget_grid(64, 100, [4, 16, 64], seed=3).subsets()[64])
    assert not np.array_equal(subs[64], fixed_budget_grid(64, 100, [4, 16, 64], seed=4).subsets()[64])


def test_pool_limits_default_grid():
    assert [n for n, _ in fixed_budget_grid(1024, 100).cells] == [1, 2, 4, 8, 16, 32, 64]


def test_bad_budgets():
    with pytest.raises(UserError, match="not divisible by sample count 3"):
        fixed_budget_grid(100, 100, [3])
    with pytest.raises(UserError, match="exceeds the pool"):
        fixed_budget_grid(100, 10, [50])


def test_summary_table():
    df = summary_table(
        [{"samples": 8, "epochs": 2, "answer_accuracy": 0.3}, {"samples": 2, "epochs": 8, "answer_accuracy": 0.5}]
    )
    assert list(df["samples"]) == [2, 8] and list(df["best"]) == [True, False]


def test_cli_plan_json_and_error(capsys):
    assert main(["sft", "plan", "--budget", "512", "--pool", "512", "--factor", "4", "--json"]) in (0, None)
    out = json.loads(capsys.readouterr().out)
    assert [c["samples"] for c in out["cells"]] == [2, 8, 32, 128, 512]
    assert main(["sft", "plan", "--budget", "10", "--pool", "10", "--samples", "3"]) == 2
    assert "not divisible" in capsys.readouterr().err


def test_demo_tiny_run_writes_results(tmp_path):
    from repetita.sft.demo import DemoConfig, run_demo, table

    cfg = DemoConfig(
        budget=128,
        pool_size=128,
        factor=8,
        min_samples=2,
        batch_size=16,
        n_ops=1,
        eval_size=20,
        window=2,
        plateau_window=0,
    )
    res = run_demo(cfg, tmp_path)
    assert [c["samples"] for c in res["cells"]] == [2, 16, 128]
    assert all(len(c["curve"]) == 8 for c in res["cells"])
    assert (tmp_path / "results.json").exists() and (tmp_path / "sft_token_accuracy.png").exists()
    assert json.loads((tmp_path / "config.json").read_text())["budget"] == 128
    assert set(table(res)["samples"]) == {2, 16, 128}


def test_demo_bad_config():
    from repetita.sft.demo import DemoConfig

    with pytest.raises(UserError, match="batch_size"):
        DemoConfig(budget=100, batch_size=32)
