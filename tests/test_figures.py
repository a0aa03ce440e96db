"""The figures a reviewer reads: tick labels never overlap at the default size, the fit figure colours
groups by model size and never greys the largest, the multi-power demo draws its held-out schedules
dashed, the plan's frontier holds every law, and the reuse figure says where E < 1."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import repetita.io
import repetita.study.report as study_report
from repetita.cli import main


@pytest.fixture
def figures(monkeypatch):
    """Every figure saved through repetita.io.save_figure, drawn and kept (not closed) for inspection."""
    kept = []
    real = repetita.io.save_figure

    def keep(fig, path, *args, **kwargs):
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        canvas = FigureCanvasAgg(fig)
        canvas.draw()  # laid out as saved, at the figure's default size
        fig.tick_overlaps = _overlaps(fig, canvas.get_renderer())
        kept.append(fig)
        return real(fig, path, *args, **kwargs)

    monkeypatch.setattr(repetita.io, "save_figure", keep)
    monkeypatch.setattr(study_report, "save_figure", keep)  # imported by name there
    return kept


def _overlaps(fig, renderer) -> list[str]:
    """Pairs of visible tick labels on one axis whose boxes intersect."""
    out = []
    for ax in fig.axes:
        for name, axis in (("x", ax.xaxis), ("y", ax.yaxis)):
            lo, hi = sorted(ax.get_xlim() if name == "x" else ax.get_ylim())
            labels = [t for t, v in zip(axis.get_ticklabels(), axis.get_ticklocs(), strict=False)
                      if t.get_visible() and t.get_text() and lo <= v <= hi]
            boxes = [t.get_window_extent(renderer) for t in labels]
            for i in range(len(boxes)):
                for j in range(i + 1, len(boxes)):
                    if boxes[i].overlaps(boxes[j]):
                        out.append(f"{ax.get_title()!r} {name}: {labels[i].get_text()!r} / {labels[j].get_text()!r}")
    return out


@pytest.fixture(scope="module")
def refit(tmp_path_factory):
    """The data-constrained law refitted to the datablations runs (Chinchilla part frozen at the published)."""
    from conftest import PUBLISHED_FREEZE

    path = tmp_path_factory.mktemp("figures") / "dc.json"
    assert main(["fit", "--example", "datablations", "--law", "data-constrained", *PUBLISHED_FREEZE, "--out",
                 str(path), "--json"]) == 0
    return path


@pytest.mark.parametrize("budgets", ["1e20:3e20:4", "1e19:1e25:7"])
def test_plan_figures_have_no_overlapping_ticks_and_every_law_on_the_frontier(tmp_path, capsys, figures, refit,
                                                                            budgets):
    argv = ["plan", "--law-file", "example:datablations-published", "--law-file", str(refit),
            "--compute", budgets, "--unique-tokens", "25e9", "--plot", str(tmp_path / "plan.png"), "--json"]
    assert main(argv) == 0
    (fig,) = figures
    assert fig.tick_overlaps == []
    if ":" in budgets:  # the frontier panel: one L*(C) line per law
        frontier = fig.axes[-1]
        lines = [t for t in frontier.get_legend().get_texts() if t.get_text().endswith("L*(C)")]
        assert len(lines) == 2
    # the contour panels mark the runs the fit rests on
    assert any("fitted runs (182)" in t.get_text() for t in fig.axes[0].get_legend().get_texts())


def test_fit_figure_colours_by_size_keeps_the_largest_and_titles_the_held_out_error(tmp_path, capsys, figures):
    assert main(["fit", "--example", "datablations", "--law", "chinchilla", "--holdout", "largest:params:2",
                 "--plot", str(tmp_path / "fit.png"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    (fig,) = figures
    assert fig.tick_overlaps == []
    assert "held-out mean |log residual|" in fig._suptitle.get_text()
    assert f"{out['holdout']['rows'].__len__()} runs" in fig._suptitle.get_text()
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    sizes = [t.split(",")[0] for t in legend if t.startswith("N = ")]
    from repetita.cliargs import quantity

    values = [quantity(s.removeprefix("N = ")) for s in sizes]
    assert values == sorted(values)  # the legend in order of size
    assert any("in the middle of the sizes" in t for t in legend)
    # the largest curvable groups keep their colour and their curve (4.25B has runs at several epoch counts)
    assert any(s == "N = 4.25B" for s in sizes)


def test_the_isoflop_view_marks_the_laws_valley(tmp_path, capsys, figures):
    rng = np.random.default_rng(0)
    rows = []
    for c in np.geomspace(6e18, 3e21, 4):
        for n in 0.6 * (c / 6) ** 0.5 * np.geomspace(1 / 6, 6, 7):
            d = c / (6 * n)
            loss = (1.817 + 482.01 / n**0.3478 + 2085.43 / d**0.3658) * np.exp(0.005 * rng.standard_normal())
            rows.append({"params": n, "tokens": d, "loss": loss})
    pd.DataFrame(rows).to_csv(tmp_path / "iso.csv", index=False)
    assert main(["fit", str(tmp_path / "iso.csv"), "--law", "chinchilla", "--plot", str(tmp_path / "f.png"),
                 "--json"]) == 0
    (fig,) = figures
    iso = [ax for ax in fig.axes if ax.get_title().startswith("isoFLOP view")]
    assert len(iso) == 1 and fig.tick_overlaps == []
    stars = [ln for ln in iso[0].get_lines() if ln.get_label() == "law's N*(C)"]
    assert len(stars) == 1 and len(stars[0].get_xdata()) == 4  # one valley minimum per budget
    assert np.all(np.diff(stars[0].get_xdata()) > 0)  # N*(C) grows with C


def test_multipower_demo_figure_draws_held_out_schedules_dashed(tmp_path, figures):
    from repetita.demo import MPL_TRAIN
    from repetita.examples import load_example
    from repetita.laws.fit import LawFit
    from repetita.laws.plots import plot_fit

    curves = load_example("multipowerlaw:100M")
    curves = curves.iloc[::6].reset_index(drop=True)  # every 6th evaluation: the figure is tested, not the fit
    fit = LawFit("multipower").fit(curves[curves["curve"].isin(MPL_TRAIN)])
    plot_fit(fit, curves, tmp_path / "m.png", held_out=~curves["curve"].isin(MPL_TRAIN).to_numpy())
    (fig,) = figures
    law_lines = [ln for ln in fig.axes[0].get_lines() if ln.get_linewidth() > 1.5]
    dashed = sum(ln.get_linestyle() == "--" for ln in law_lines)
    assert (len(law_lines), dashed) == (9, 9 - len(MPL_TRAIN))
    assert sum("(held out)" in t.get_text() for t in fig.axes[0].get_legend().get_texts()) == 9 - len(MPL_TRAIN)


def test_reuse_figure_notes_e_below_one(tmp_path, figures):
    assert main(["reuse", "--example", "datablations-curves", "--law-file", "example:datablations-published",
                 "--chinchilla-part", "--anchor", "--plot", str(tmp_path / "r.png"), "--json"]) == 0
    (fig,) = figures
    assert any(t.get_text().startswith("E < 1 at K = 44") for t in fig.axes[0].texts)
    assert fig.tick_overlaps == []


def _cells() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Two (N, U) cells: standard best at 32 epochs, ensembles measured only at 16."""
    single = pd.DataFrame([
        {"recipe": "standard", "params": n, "unique_tokens": 8192.0, "epochs": k, "loss": loss}
        for n, losses in ((1e4, {16.0: 5.11, 32.0: 4.65}), (1e5, {16.0: 4.33, 32.0: 4.45}))
        for k, loss in losses.items()])
    best = pd.DataFrame([
        {"recipe": "standard", "params": 1e4, "unique_tokens": 8192.0, "epochs": 32.0, "loss": 4.65},
        {"recipe": "ensemble:4", "params": 1e4, "unique_tokens": 8192.0, "epochs": 16.0, "loss": 5.08},
        {"recipe": "standard", "params": 1e5, "unique_tokens": 8192.0, "epochs": 16.0, "loss": 4.33},
        {"recipe": "ensemble:4", "params": 1e5, "unique_tokens": 8192.0, "epochs": 16.0, "loss": 4.24}])
    return best, single


def test_study_recipes_are_compared_at_one_epoch_count(tmp_path, figures):
    from repetita.study.report import fig_recipes

    best, single = _cells()
    fig_recipes(best, tmp_path, single)
    (fig,) = figures
    ax = fig.axes[0]
    heights = sorted(round(p.get_height(), 2) for p in ax.patches)
    # standard at 16 epochs (5.11), not at its best count (32: 4.65), beside the ensembles' 16-epoch runs
    assert heights == [4.24, 4.33, 5.08, 5.11]
    assert all("at K = 16" in t.get_text() for t in ax.get_xticklabels())
    assert fig.tick_overlaps == []


def test_study_plan_figure_marks_the_search_floor_and_stops_bands_at_chance(tmp_path, figures):
    from repetita.study.report import chance_loss, fig_plan

    _, single = _cells()
    single = single.assign(tokens=single["epochs"] * single["unique_tokens"])
    plans = [{"unique_tokens": 8192.0, "compute": c, "member_params": n, "loss": loss,
              "prediction_interval": [loss - 0.5, loss + 0.9]}
             for c, n, loss in ((1e8, 1000.0, 6.4), (1e10, 2e4, 5.0), (1e12, 7e5, 4.4))]
    chance = chance_loss({"a": {"vocab_size": 512}, "b": {"failed": "failed", "config": {}}})
    assert chance == pytest.approx(np.log(512))
    assert chance_loss({"a": {"config": {"tokenizer": "bpe:512"}}}) == pytest.approx(np.log(512))
    assert chance_loss({"a": {"config": {"command": "train.sh"}}}) is None
    fig_plan(plans, single, tmp_path, chance)
    (fig,) = figures
    ax_n, ax_l = fig.axes
    assert any("search floor" in t.get_text() for t in ax_n.get_legend().get_texts())
    joined = [ln for ln in ax_n.get_lines() if ln.get_linestyle() == "-"]
    assert all(min(ln.get_ydata()) > 1000.0 for ln in joined)  # the floor is not joined as an optimum
    (band,) = ax_l.collections
    assert band.get_paths()[0].vertices[:, 1].max() <= chance + 1e-9


def test_a_law_along_a_named_axis_plots_predicts_and_has_no_isoflop_view(tmp_path, capsys, figures):
    fit = tmp_path / "power.json"
    assert main(["fit", "--example", "datablations", "--law", "power", "--axis", "params", "--where", "epochs <= 1",
                 "--bootstrap", "20", "--plot", str(tmp_path / "p.png"), "--out", str(fit), "--json"]) == 0
    (fig,) = figures
    assert not any(ax.get_title().startswith("isoFLOP") for ax in fig.axes)  # the law does not read D
    capsys.readouterr()
    assert main(["predict", "--example", "datablations", "--where", "epochs <= 1", "--law-file", str(fit),
                 "--json"]) == 0
    scores = json.loads(capsys.readouterr().out)["scores"]
    assert scores["rows"] == 29 and scores["coverage_mean"] <= scores["coverage"]
