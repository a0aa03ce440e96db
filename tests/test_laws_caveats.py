"""Caveats typed by kind: ranked and folded by their kind, never by their words; `plan` prints at most five
lines by default, one per (law, kind) with a count, and every one with --verbose."""

from __future__ import annotations

import json

from repetita.cli import main
from repetita.laws.caveats import SEVERITY, SHOWN, Caveat, Kind, fold, of_record


def test_folding_reads_the_kind_not_the_words():
    a = [Caveat(Kind.AT_BOUND, "x sits at a bound", "f.json"), Caveat(Kind.OUTSIDE_RUNS, "far away", "f.json"),
         Caveat(Kind.AT_BOUND, "x sits at a bound", "f.json", split=2),
         Caveat(Kind.AT_BOUND, "x sits at a bound", "f.json", split=4)]
    # the same kinds in other words: the same order and the same counts
    b = [Caveat(c.kind, f"reworded {i}: " + c.text[::-1], c.law, c.split) for i, c in enumerate(a)]
    fa, fb = fold(a), fold(b)
    assert len(fa) == len(fb) == 2
    assert fa[0].startswith("f.json: far away") and fb[0].startswith("f.json: reworded 1")
    assert fa[1].endswith("(+2 more of this kind, in 2 training split(s))")
    assert fb[1].endswith("(+2 more of this kind, in 2 training split(s))")


def test_at_most_five_lines_the_most_severe_first():
    kinds = list(Kind)
    many = [Caveat(k, f"text-{k.value}", law) for law in ("a.json", "b.json") for k in reversed(kinds)]
    lines = fold(many)
    assert len(lines) == SHOWN and lines[-1].startswith(f"{len(many) - SHOWN + 1} more caveat(s)")
    # the two most severe kinds, for each law in the order the laws came: whatever order the caveats came in
    assert lines[:4] == [f"a.json: text-{kinds[0].value}", f"b.json: text-{kinds[0].value}",
                         f"a.json: text-{kinds[1].value}", f"b.json: text-{kinds[1].value}"]
    assert SEVERITY[kinds[0]] < SEVERITY[kinds[1]] < SEVERITY[Kind.OTHER]
    assert len(fold(many, limit=None)) == len(many)


def test_a_file_without_kinds_reads_as_other_and_a_stored_kind_round_trips():
    assert of_record({"warnings": ["old words"]}, "x") == [Caveat(Kind.OTHER, "old words", "x")]
    c = Caveat(Kind.MULTIMODAL, "two optima", split=3)
    assert of_record({"caveats": [c.to_dict()]}) == [c]
    assert of_record({"caveats": [{"kind": "nonsense", "text": "t"}]})[0].kind is Kind.OTHER
    assert of_record({"caveats": [{"kind": 5, "text": None}, "x", {"kind": "vanished", "text": "t"}]}) == [
        Caveat(Kind.VANISHED, "t")]


def test_plan_prints_five_warning_lines_and_every_one_with_verbose(tmp_path, capsys):
    from repetita.laws.record import example_path

    record = json.loads(example_path("datablations-published").read_text())
    kinds = [k for k in Kind if k is not Kind.OTHER]
    record["caveats"] = [Caveat(k, f"made-up {k}", split=s).to_dict() for k in kinds for s in (None, 1, 2)]
    path = tmp_path / "fit.json"
    path.write_text(json.dumps(record))
    argv = ["plan", "--law-file", str(path), "--compute", "9.26e21", "--unique-tokens", "25e9"]
    assert main(argv) == 0
    warned = [line for line in capsys.readouterr().err.splitlines() if ": warning: " in line]
    assert len(warned) == SHOWN and "--verbose" in warned[-1]
    assert main(argv + ["--verbose"]) == 0
    warned = [line for line in capsys.readouterr().err.splitlines() if ": warning: " in line]
    assert len(warned) >= 3 * len(kinds)
    assert main(argv + ["--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {c["kind"] for c in out["caveats"]} >= {str(k) for k in kinds}
