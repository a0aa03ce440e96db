"""Knowledge injection: the biography world, the equal-budget conditions, training and exact-match scoring."""

from __future__ import annotations

import json

import numpy as np
import pytest

from repetita.data_mix import biographies as bio
from repetita.data_mix.knowledge import CONDITIONS, QA, Vocab, corpus_tokens, load_qa, load_rephrased, stream, synthetic
from repetita.errors import UserError


def test_world_is_deterministic_from_its_seed():
    a, b, c = bio.people(60, 3), bio.people(60, 3), bio.people(60, 4)
    assert [(p.name, p.facts) for p in a] == [(p.name, p.facts) for p in b]
    assert [(p.name, p.facts) for p in a] != [(p.name, p.facts) for p in c]
    assert synthetic(30, 4, 7) == synthetic(30, 4, 7)
    assert len({p.name for p in bio.people(bio.max_people(), 0)}) == bio.max_people()


def test_every_question_is_answered_by_exactly_one_biography():
    ks = synthetic(200, 1, 0)
    names = {i: _full_name(t) for i, t in ks.docs.items()}
    for q in ks.qa:
        holders = [i for i, name in names.items() if name in q.question]
        assert holders == [q.doc], q  # the question names one individual, whose biography holds the answer
        assert q.answer in ks.docs[q.doc]
        assert bio.facts_of(ks.docs[q.doc])[q.attribute] == q.answer
        # No other biography mentions that full name at all.
        assert sum(names[q.doc] in t for t in ks.docs.values()) == 1
    assert len(ks.qa) == 5 * len(ks.docs)


def _full_name(doc: str) -> str:
    return bio.facts_of(doc)["name"]


def test_template_renderings_carry_the_same_facts():
    for p in bio.people(40, 1):
        texts = bio.renderings(p, 6, 1)
        assert len(texts) == len(set(texts)) == 6
        assert texts[0] == bio.render(p)
        for t in texts:
            assert bio.facts_of(t) == {**p.facts, "name": p.name}
        assert len({t.split(".")[0] for t in texts}) > 1  # order and templates vary


def test_facts_of_rejects_a_rendering_that_states_a_fact_twice_or_no_template():
    p = bio.people(2, 0)[0]
    doubled = bio.render(p) + f" {p.first} was born in {p.facts['birth_city']}."
    with pytest.raises(UserError, match="stated twice"):
        bio.facts_of(doubled)
    with pytest.raises(UserError, match="matches 0 templates"):
        bio.facts_of(f"{p.name} likes tea.")


@pytest.mark.parametrize("k", [1, 4])
def test_conditions_train_on_equal_budgets(k):
    ks = synthetic(80, max(k, 2), 0)
    vocab = Vocab(ks.texts())
    trained = ks.trained_ids(0)
    doc_pass, qa_pass = corpus_tokens(ks, vocab, trained)
    streams = {c: stream(ks, vocab, c, k, 7 * doc_pass, 3 * qa_pass, trained, 0) for c in CONDITIONS
               if c != "rewrite-llm"}
    totals = {c: s.tokens for c, s in streams.items()}
    assert len(set(totals.values())) == 1 and totals["repeat"] == 7 * doc_pass + 3 * qa_pass
    for s in streams.values():
        assert abs(s.doc_tokens / (7 * doc_pass) - 1) < 0.01
        assert abs(s.qa_tokens / (3 * qa_pass) - 1) < 0.01
    # Two stages except qa-mix, whose single stream really interleaves: QA tokens in both halves.
    assert [len(s.stages) for s in streams.values()] == [2, 2, 1]
    mixed = streams["qa-mix"].stages[0]
    q_id = vocab.stoi["Q"]
    half = mixed.size // 2
    assert (mixed[:half] == q_id).sum() > 0 and (mixed[half:] == q_id).sum() > 0
    assert (streams["repeat"].stages[0] == q_id).sum() == 0  # no QA in the repeat documents stage


def test_rewrite_stream_uses_every_version_equally_often():
    ks = synthetic(40, 4, 2)
    vocab = Vocab(ks.texts())
    trained = ks.trained_ids(0)
    doc_pass, qa_pass = corpus_tokens(ks, vocab, trained)
    s = stream(ks, vocab, "rewrite-template", 4, 40 * doc_pass, qa_pass, trained, 0)
    flat = s.stages[0]
    # Count how often each rendering's first five tokens open a document (after an EOS).
    starts = np.flatnonzero(flat[:-5] == 0) + 1
    opening = {tuple(flat[i:i + 5]) for i in starts}
    some = ks.templates[sorted(ks.docs)[0]]
    assert all(tuple(vocab.encode(t)[:5]) in opening for t in some)


def test_bad_inputs_are_one_line_errors(tmp_path):
    with pytest.raises(UserError, match="name lists make only"):
        bio.people(bio.max_people() + 1, 0)
    with pytest.raises(UserError, match="K must be >= 1"):
        bio.renderings(bio.people(2, 0)[0], 0, 0)
    docs = {"a": "Ada lives in Oslo.", "b": "Bo lives in Rome."}
    cases = {
        "not json\n": "not valid JSON",
        '{"doc": "a", "question": "Where?"}\n': "non-empty string 'answer'",
        '{"doc": "z", "question": "Where?", "answer": "Oslo"}\n': "unknown document id 'z'",
        '{"doc": "a", "question": "Where?", "answer": "Rome"}\n': "does not occur in document 'a'",
        "\n": "empty file",
        "[1, 2]\n": "expected a JSON object",
    }
    for text, message in cases.items():
        f = tmp_path / "qa.jsonl"
        f.write_text(text)
        with pytest.raises(UserError, match=message):
            load_qa(str(f), docs)
    rp = tmp_path / "r.jsonl"
    rp.write_text("")
    with pytest.raises(UserError, match="empty file|no finished"):
        load_rephrased(str(rp), docs)
    rp.write_text(json.dumps({"doc": "a", "status": "failed", "error": "timeout"}) + "\n")
    with pytest.raises(UserError, match="no finished"):
        load_rephrased(str(rp), docs)
    rp.write_text(json.dumps({"doc": "a", "status": "ok", "text": "Ada resides in Oslo."}) + '\n{"doc": "b", "sta')
    rewrites, warnings = load_rephrased(str(rp), docs)
    assert rewrites == {"a": ("Ada resides in Oslo.",)}
    assert any("torn" in w for w in warnings) and any("1 of 2 documents have no rewrite" in w for w in warnings)


class _Oracle:
    """A stand-in model whose greedy continuation of a QA prompt is a fixed token list."""

    def __init__(self, vocab, table):
        self.vocab, self.table = vocab, table

    def eval(self):
        pass

    def parameters(self):  # where the scorer puts its tensors
        import torch

        return iter([torch.zeros(1)])

    def train(self):
        pass

    def __call__(self, x):
        import torch

        rows = []
        for seq in x[0].tolist():
            for prompt, cont in self.table:
                if seq[: len(prompt)] == prompt:
                    j = len(seq) - len(prompt)
                    rows.append(cont[j] if j < len(cont) else 0)
        logits = torch.zeros(1, len(rows), x.shape[2], len(self.vocab))
        logits[0, torch.arange(len(rows)), -1, torch.tensor(rows)] = 1.0
        return logits


def test_exact_match_needs_the_whole_answer_then_end_of_text():
    from repetita.data_mix.inject import answer_accuracy

    qa = [QA("a", "When was Ada Lind born?", "3 May 1970"), QA("b", "When was Bo Kern born?", "9 June 1981"),
          QA("c", "When was Cy Orr born?", "1 July 1990"), QA("d", "Where was Cy Orr born?", "Oslo")]
    vocab = Vocab([q.text for q in qa] + ["1970 Rome"])
    enc = vocab.encode
    table = [(enc(qa[0].prompt), enc("3 May 1970") + [0]),      # right
             (enc(qa[1].prompt), enc("9 June 1970") + [0]),      # wrong year
             (enc(qa[2].prompt), enc("1 July 1990 Rome")),       # right, but does not stop
             (enc(qa[3].prompt), enc("Oslo") + [0])]             # right, other prompt and answer length
    hit = answer_accuracy(_Oracle(vocab, table), vocab, qa, context=64)
    assert hit.tolist() == [True, False, False, True]


def _tiny(**kw):
    from repetita.data_mix.inject import InjectConfig

    base = dict(people=16, passes=(10.0,), qa_passes=4.0, seeds=(0,), n_layer=1, n_head=2, d_model=16,
                context=32, batch=4, lr=1e-2, warmup=2, threads=1)
    return InjectConfig(**(base | kw))


def test_experiment_is_deterministic_and_resumes_from_its_rows(tmp_path, monkeypatch):
    from repetita.data_mix import inject

    cfg = _tiny()
    first = inject.experiment(cfg, tmp_path / "a")
    again = inject.experiment(cfg, tmp_path / "b")
    strip = [{k: v for k, v in r.items() if k != "seconds"} for r in first["rows"]]
    assert strip == [{k: v for k, v in r.items() if k != "seconds"} for r in again["rows"]]
    assert {r["condition"] for r in first["rows"]} == {"repeat", "rewrite-template", "qa-mix"}
    assert len({r["trained_tokens"] for r in first["rows"]}) == 1
    for r in first["rows"]:
        correct = r["acc_heldout"] * r["questions_heldout"]  # a share of 40 answers: a whole count
        assert r["questions_heldout"] == 40 and 0 <= correct <= 40 and correct == pytest.approx(round(correct), abs=1e-9)
        assert r["final_train_loss"] < np.log(r["vocab"]) - 1.0  # it trained: well below a uniform guess
    # Resume: every row is on disk, so a re-run trains nothing; a torn line is repaired and re-run.
    monkeypatch.setattr(inject, "run_one", lambda *a, **k: pytest.fail("re-ran a finished run"))
    assert inject.experiment(cfg, tmp_path / "a")["rows"] == first["rows"]
    with pytest.raises(UserError, match="another config"):
        inject.experiment(_tiny(lr=1e-3), tmp_path / "a")


def test_rewrite_llm_trains_on_rephrase_output(tmp_path):
    """The documented flow: export the world, rephrase it (echo backend here), train on the rewrites."""
    from repetita.cli import main
    from repetita.data_mix import inject

    assert main(["inject", "--export", str(tmp_path / "w"), "--people", "16", "--json"]) == 0
    assert main(["rephrase", "--docs", str(tmp_path / "w/docs.jsonl"), "--out", str(tmp_path / "r.jsonl"),
                 "--backend", "echo", "--templates", "teacher,discussion", "--max-new-tokens", "40", "--json"]) == 0
    cfg = _tiny(conditions=("repeat", "rewrite-llm"), rewrites=(3,), rephrased=str(tmp_path / "r.jsonl"))
    ks, warnings = inject.knowledge_set(cfg)
    assert warnings == [] and all(len(v) == 2 for v in ks.rephrased.values())
    out = inject.experiment(cfg)
    assert [r["condition"] for r in out["rows"]] == ["repeat", "rewrite-llm"]
    assert out["rows"][0]["tokens"] == out["rows"][1]["tokens"]


def test_cli_bad_inputs_exit_2_with_one_line(tmp_path, capsys):
    from repetita.cli import main

    qa = tmp_path / "qa.jsonl"
    qa.write_text("{broken\n")
    docs = tmp_path / "docs.jsonl"
    docs.write_text('{"id": "a", "text": "Ada lives in Oslo."}\n{"id": "b", "text": "Bo lives in Rome."}\n')
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    cases = [
        (["--people", str(bio.max_people() + 1)], "unique"),
        (["--rewrites", "0"], "K must be"),
        (["--docs", str(docs), "--qa", str(qa)], "not valid JSON"),
        (["--rephrased", str(empty)], "empty file"),
        (["--out", "/proc/inject"], "--out"),
        (["--conditions", "repeat,shuffle"], "unknown 'shuffle'"),
        (["--docs", str(docs), "--qa", str(qa), "--conditions", "rewrite-template"], "synthetic"),
    ]
    for extra, message in cases:
        assert main(["inject", "--passes", "1", "--seeds", "0", *extra]) == 2, extra
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and message in err, (extra, err)
