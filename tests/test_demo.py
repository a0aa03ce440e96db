"""``repetita demo`` without its study part (the study is exercised by tests/test_study_*.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from repetita.cli import main


@pytest.mark.e2e
def test_demo_laws_and_theory(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--bootstrap", "5", "--skip-study", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    report = Path(res["report"]).read_text()
    assert "## Theory: multi-epoch SGD on linear regression" in report
    # the published grid reproduces datablations' constants (docs/laws.md)
    assert abs(res["laws"]["datablations"]["published_grid"]["rd_star"] - 15.372) < 0.01
    # theory: the plateau of E rises with N (larger datasets can be repeated more)
    e_max = res["theory"]["E_max"]
    assert e_max[0] < e_max[1] < e_max[2]
    import matplotlib.image as mpimg

    for name in ("datablations_fit.png", "plan.png", "multipower_100M.png", "theory_reuse.png"):
        img = mpimg.imread(out / name)  # a real PNG that decodes, of a figure's size, not blank
        assert img.shape[0] > 200 and img.shape[1] > 200 and float(img[..., :3].std()) > 0.01, name
    summary = json.loads((out / "summary.json").read_text())
    assert summary["laws"]["datablations"]["published_grid"]["rd_star"] == res["laws"]["datablations"]["published_grid"]["rd_star"]
