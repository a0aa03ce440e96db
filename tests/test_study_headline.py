"""The report's first screen: the sentence states the planner's decision, degenerate fits are no findings,
the CSV links resolve, and studies that cannot decide say so instead of showing empty figures."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import pandas as pd
import pytest
from test_study_decision import _tidy  # tests/ is on sys.path (rootdir-relative import)
from test_study_run import _spec

from repetita.cli import main
from repetita.cliargs import format_quantity
from repetita.decide.decision import finding_problem, rank_caveats, two_step_problem
from repetita.study.analysis import analyse
from repetita.study.report import _fits_html, _two_step_html, fig_reuse


@pytest.fixture(scope="module")
def synthetic():
    tidy = _tidy()
    return tidy, analyse(tidy, {}, history=lambda rid: [], name="synthetic")


def test_sentence_states_the_planners_decision(synthetic):
    _, a = synthetic
    h, plans = a.headline, a.decision["plans"]
    u = max(p["unique_tokens"] for p in plans)
    top = max((p for p in plans if p["unique_tokens"] == u), key=lambda p: p["compute"])
    s = h.sentence
    assert f"U = {u:,.0f}" in s and f"C = {top['compute']:.2g}" in s
    assert f"train {top['recipe']}:" in s and f"{format_quantity(top['member_params'])}-parameter" in s
    assert f"{top['epochs']:.3g} epochs" in s and f"Expected loss {top['loss']:.4f}" in s
    assert f"{top['loss_standard'] - top['loss']:.4f} below the standard recipe" in s
    lo, hi = top["prediction_interval"]
    assert lo < top["loss"] < hi and f"{lo:.3f}-{hi:.3f}" in s
    # one row per unique-token budget, each the plan at the largest compute for that budget
    assert [r.unique_tokens for r in h.rows] == sorted({p["unique_tokens"] for p in plans})
    region = a.fits["data-constrained"]["region"]
    for r in h.rows:
        same = [p for p in plans if p["unique_tokens"] == r.unique_tokens]
        plan = max(same, key=lambda p: p["compute"])
        assert r.compute == plan["compute"] and r.recipe == "regularized"
        if plan["epochs"] > 3 * region["epochs"]:  # beyond the trust region: the best run measured there stands
            assert r.source == "measured" and "beyond the trust region" in r.overruled
            assert f"{plan['epochs']:.3g} epochs" in r.overruled
        else:
            assert r.source == "law" and r.gain_interval[0] <= r.gain <= r.gain_interval[1]
    assert {r.source for r in h.rows} == {"law", "measured"}  # this table has one of each


def test_degenerate_fits_are_not_findings(tmp_path):
    good = {"params": {"a": 1.0}, "r2": 0.95, "objective": 1e-3, "n_rows": 20, "warnings": [], "caveats": []}

    def said(kind, text):
        return good | {"warnings": [text], "caveats": [{"kind": kind, "text": text}]}

    cases = {
        "vanished": said("vanished", "the E term contributes under 1e-04 of the loss on every row: it has vanished"),
        "bound": said("at-bound", "rn_star = 1e+06 sits at its upper bound 1e+06: the optimum may lie beyond it"),
        "unidentified": said("not-identified", "the loss does not depend on e at the optimum (not identified)"),
        "negative": good | {"r2": -0.1},
    }
    # the kind decides, never the words: the same sentence stored as another kind is no rejection
    assert finding_problem(said("multimodal", cases["vanished"]["warnings"][0])) is None
    assert finding_problem(good) is None
    for name, fit in cases.items():
        assert finding_problem(fit), name
    page = _fits_html({"fine": good, **cases})
    assert "<li><b>fine</b>: R^2 0.9500" in page  # the valid fit stands as a finding
    for name in cases:  # each degenerate one is folded under its reason, never a bare number beside it
        assert re.search(rf"<details><summary><b>{name}</b>: not a finding \(", page), name
    # and no curve is drawn from a fit its diagnostics reject
    tidy = pd.DataFrame({"unique_tokens": [1e3], "epochs": [4.0]})
    assert fig_reuse(tidy, {"reuse": cases["bound"] | {"law": "reuse"}}, tmp_path) is None
    ts = {"asymptote": 4.9e-11, "unique_tokens": 8192, "epochs": 16.0, "outer_fit": {"alpha": 0.05, "r2": 0.99},
          "groups": [{"params": 1e4, "E": 4.8, "r2": -0.10}, {"params": 3e4, "E": 4.6, "r2": 0.83},
                     {"params": 8e4, "E": 4.3, "r2": 0.99}, {"params": 1.3e5, "E": 4.2, "r2": 1.0}]}
    why = two_step_problem(ts)
    assert "R^2 -0.10 < 0" in why and "vanished" in why
    assert _two_step_html(ts).startswith("<details><summary>Two-step asymptote: not a finding")


def test_caveats_are_ranked_by_kind_not_by_wording():
    from repetita.laws.caveats import Caveat, Kind

    caveats = [Caveat(Kind.MULTIPLIER_VARIES, "ensemble:2: the measured multiplier varies 2.3x"),
               Caveat(Kind.LOW_FIT, "the law: robust log-scale R^2 = 0.75 is below 0.8"),
               Caveat(Kind.OUTSIDE_RUNS, "U = 2,048: the recommendation lies outside the measured region (K 86.5 > 32)"),
               Caveat(Kind.OVERRULED, "the data-constrained law fails its own checks (x)"),
               Caveat(Kind.OTHER, "a"), Caveat(Kind.OTHER, "b"), Caveat(Kind.NO_RECIPE, "c")]
    top, rest = rank_caveats(caveats)
    assert [c.kind for c in top] == ["overruled", "outside-runs", "low-fit", "multiplier-varies", "no-recipe"]
    assert set(top) | set(rest) == set(caveats) and not set(top) & set(rest)
    # a reworded message changes no ranking, and another kind's words do not lift a caveat
    reworded = [Caveat(c.kind, f"reworded {i}: {c.text[::-1]}") for i, c in enumerate(caveats)]
    assert [c.kind for c in rank_caveats(reworded)[0]] == [c.kind for c in top]
    swapped = [Caveat(Kind.OTHER, caveats[3].text), Caveat(Kind.OVERRULED, "a")] + caveats[:3]
    assert rank_caveats(swapped)[0][0].text == "a" and rank_caveats(swapped)[0][-1].kind == "other"
    assert len(sum(rank_caveats(caveats + caveats), ())) == len(caveats)  # a repeated caveat counts once


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("headline")
    study = tmp / "study"
    assert main(["run", str(_spec(tmp)), "--dir", str(study), "--workers", "2", "--json"]) == 0
    return study


def test_report_links_its_tables_as_csv_and_opens_with_the_decision(study, capsys):
    capsys.readouterr()
    assert main(["report", str(study), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    page = Path(summary["report"]).read_text()
    links = re.findall(r'href="([^"]+\.csv)"', page)
    assert links and set(links) == set(summary["tables"].values())
    for link in links:  # every link resolves beside the page, to the table it names
        df = pd.read_csv(Path(summary["report"]).parent / link)
        assert len(df) >= 1 and "unique_tokens" in df.columns
    assert page.index('id="decision"') < page.index('id="evidence"')
    assert "study &#x27;unit&#x27;" in page and "Study study" not in page  # the spec's name, not the folder's
    assert html_sentence(page) == summary["headline"]["sentence"]


def test_the_terminal_and_the_page_say_the_same_decision(study, capsys):
    """`repetita report` in a terminal prints the first screen the HTML renders: the same sentence, the same
    rows (recommendation and best measured run per U), the same caveats."""
    import html

    capsys.readouterr()
    assert main(["report", str(study)]) == 0
    text = capsys.readouterr().out
    page = (study / "report" / "report.html").read_text()
    sentence = html_sentence(page)
    assert text.startswith(sentence)
    table = re.search(r'<table class="t" id="decision-table">(.*?)</table>', page, re.S)
    assert table is None  # this study has one model size: no recommendation, and the text says so too
    for c in re.findall(r'<li class="warn">(.*?)</li>', page, re.S):
        assert html.unescape(c) in text


def test_the_page_and_the_text_render_the_same_rows(synthetic):
    """A decided study (the synthetic one): the HTML table and the Markdown/terminal first screen give each
    U's recommendation, its loss and the best measured run in the same words."""
    import html

    from repetita.study.report import _headline_html

    _, a = synthetic
    table, caveats, _ = _headline_html(a.headline)
    text = a.headline.markdown()
    rows = re.findall(r"<tr><td>(.*?)</tr>", table, re.S)
    assert len(rows) == len(a.headline.rows) >= 2
    for row in rows:
        cells = [html.unescape(c) for c in re.findall(r"<td[^>]*>(.*?)</td>", "<td>" + row, re.S)]
        assert cells[0] in text and cells[2] in text and cells[5] in text and cells[3].split(" (")[0] in text
    for c in re.findall(r'<li class="warn">(.*?)</li>', caveats, re.S):
        assert html.unescape(c) in text


def html_sentence(page: str) -> str:
    import html

    return html.unescape(re.search(r'<p class="sentence" id="sentence">(.*?)</p>', page, re.S).group(1))


def test_a_study_without_finished_runs_says_it_cannot_decide(study, tmp_path, capsys):
    import shutil

    empty = tmp_path / "empty"
    shutil.copytree(study, empty)
    con = sqlite3.connect(empty / "store.sqlite")
    con.execute("DELETE FROM rows")
    con.execute("DELETE FROM curves")
    con.execute("UPDATE runs SET status = 'queued'")
    con.commit()
    con.close()
    shutil.rmtree(empty / "report", ignore_errors=True)
    capsys.readouterr()
    assert main(["report", str(empty), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    page = Path(summary["report"]).read_text()
    assert "no finished runs yet: nothing to decide" in html_sentence(page)
    assert "<img" not in page and summary["headline"]["decided"] is False


def test_a_single_model_size_says_why_no_size_is_recommended():
    tidy = _tidy()
    one = tidy[tidy["params"] == tidy["params"].min()]
    a = analyse(one, {}, history=lambda rid: [], name="one-size")
    assert a.headline.decided is False and not a.headline.rows
    assert "1 model size" in a.headline.sentence


def test_one_epoch_runs_and_one_budget_say_what_cannot_be_decided():
    import re as _re

    from repetita.decide.decision import headline

    tidy = _tidy()
    once = tidy[tidy["epochs"] == tidy["epochs"].min()].assign(epochs=1.0)
    h = headline({"plans": [{"unique_tokens": 1.0}]}, once, {}, "once")
    assert h.decided is False and not h.rows and "every run saw its data once" in h.sentence
    assert not _re.search(r"\d\.\d", h.sentence)  # one sentence, no number
    u = tidy["unique_tokens"].max()
    a = analyse(tidy[tidy["unique_tokens"] == u], {}, history=lambda rid: [], name="one-u")
    assert "one unique-token budget: this decides that budget only" in a.headline.sentence
    assert {r.unique_tokens for r in a.headline.rows} == {u}


def test_a_single_recipe_recommends_the_standard_one_and_says_so():
    tidy = _tidy()
    std = tidy[tidy["recipe"] == "standard"]
    a = analyse(std, {}, history=lambda rid: [], name="standard-only")
    assert a.headline.decided and {r.recipe for r in a.headline.rows} == {"standard"}
    assert "no measured recipe beats the standard one" in a.headline.sentence
    assert any(c.kind == "no-recipe" for c in a.headline.caveats + a.headline.more_caveats)
