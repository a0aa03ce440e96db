"""What a knowledge-injection run trains on: documents, their rewrites, QA pairs, and the conditions.

A :class:`KnowledgeSet` is a list of documents (one per entity), optional extra renderings of each
(template variants or LLM rephrasings), and question-answer pairs tied to a document. It comes from
the synthetic biography world (``biographies.py``) or from a user's files (``--docs``, ``--qa``,
``--rephrased``), so the same conditions can be tried on one's own corpus before paying for
generation at scale.

Conditions, all at the same token budget (``stream``):

* ``repeat``: the original documents, cycled; then QA tuning on the QA pairs of the trained half.
* ``rewrite-template`` / ``rewrite-llm``: the original and ``K - 1`` rewrites per document, cycled
  (same document tokens in total, so each version is seen about K times less); then the same QA tuning.
* ``qa-mix``: the original documents and the trained half's QA pairs shuffled into one stream, with
  the same number of document and QA tokens as the others (Allen-Zhu and Li's mixed training).

The trained half is a seeded half of the documents; the other half's questions are never trained
on, and accuracy on them measures knowledge extraction.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from repetita.errors import UserError, require

CONDITIONS = ("repeat", "rewrite-template", "rewrite-llm", "qa-mix")
EOS, UNK = "<eos>", "<unk>"
_WORD = re.compile(r"\w+|[^\w\s]")


def words(text: str) -> list[str]:
    """Word-level tokens: runs of word characters and single punctuation marks."""
    return _WORD.findall(text)


@dataclass(frozen=True)
class QA:
    doc: str
    question: str
    answer: str
    attribute: str = ""

    @property
    def prompt(self) -> str:
        return f"Q: {self.question} A:"

    @property
    def text(self) -> str:
        return f"{self.prompt} {self.answer}"


@dataclass(frozen=True)
class KnowledgeSet:
    docs: dict[str, str]  # id -> original text
    templates: dict[str, tuple[str, ...]]  # id -> template renderings (not including the original)
    qa: tuple[QA, ...]
    rephrased: dict[str, tuple[str, ...]] = field(default_factory=dict)  # id -> LLM rewrites
    source: str = "synthetic"

    def trained_ids(self, seed: int) -> set[str]:
        """The seeded half of the documents whose QA pairs are trained on."""
        ids = sorted(self.docs)
        perm = np.random.default_rng([seed, 21]).permutation(len(ids))
        return {ids[i] for i in perm[: len(ids) // 2]}

    def versions(self, condition: str, k: int) -> dict[str, list[str]]:
        """Texts per document for ``condition``: the original, plus up to ``k - 1`` rewrites."""
        if condition in ("repeat", "qa-mix"):
            return {i: [t] for i, t in self.docs.items()}
        extra = self.templates if condition == "rewrite-template" else self.rephrased
        return {i: [t, *extra.get(i, ())[: k - 1]] for i, t in self.docs.items()}

    def texts(self) -> list[str]:
        """Every text a run can train or be tested on (the vocabulary is built from these)."""
        return [*self.docs.values(), *(t for v in self.templates.values() for t in v),
                *(t for v in self.rephrased.values() for t in v), *(q.text for q in self.qa)]


def synthetic(n: int, k: int, seed: int) -> KnowledgeSet:
    """The biography world: ``n`` individuals, ``k`` template renderings each, five questions each."""
    from repetita.data_mix import biographies as bio

    persons = bio.people(n, seed)
    docs, templates, qa = {}, {}, []
    for p in persons:
        texts = bio.renderings(p, k, seed)
        docs[p.id], templates[p.id] = texts[0], tuple(texts[1:])
        qa += [QA(p.id, q, a, attr) for attr, q, a in bio.questions(p)]
    return KnowledgeSet(docs, templates, tuple(qa))


def _jsonl(path: str, what: str, *, torn_last_ok: bool = False,
           decode_errors: str = "strict") -> tuple[list[tuple[int, dict]], bool]:
    """``(line number, object)`` for every non-blank line, and whether a torn last line was skipped.

    ``torn_last_ok``: a last line that is not JSON is what a killed appender leaves; skip it instead
    of refusing the file. Blank files, other malformed lines and non-objects are one-line errors.
    """
    p = Path(path)
    require(p.is_file(), f"{what}: no such file {path}")
    try:
        lines = p.read_text(encoding="utf-8", errors=decode_errors).splitlines()
    except UnicodeDecodeError:
        raise UserError(f"{what} {path}: not UTF-8 text") from None
    require(any(line.strip() for line in lines), f"{what} {path}: empty file")
    out, torn = [], False
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except ValueError:
            if torn_last_ok and i == len(lines):
                torn = True
                continue
            raise UserError(f"{what} {path}:{i}: not valid JSON") from None
        out.append((i, rec))
    return out, torn


def load_qa(path: str, docs: dict[str, str]) -> tuple[QA, ...]:
    """QA JSONL: ``doc`` (a document id), ``question``, ``answer`` (non-empty strings, answer in the doc)."""
    out = []
    for i, rec in _jsonl(path, "--qa")[0]:
        require(isinstance(rec, dict), f"--qa {path}:{i}: expected a JSON object")
        for key in ("doc", "question", "answer"):
            require(isinstance(rec.get(key), str) and rec[key].strip(),
                    f"--qa {path}:{i}: needs a non-empty string '{key}'")
        require(rec["doc"] in docs, f"--qa {path}:{i}: unknown document id '{rec['doc']}'")
        require(rec["answer"].strip() in docs[rec["doc"]],
                f"--qa {path}:{i}: answer '{rec['answer']}' does not occur in document '{rec['doc']}'")
        out.append(QA(rec["doc"], rec["question"].strip(), rec["answer"].strip(), str(rec.get("attribute", ""))))
    return tuple(out)


def load_rephrased(path: str, docs: dict[str, str]) -> tuple[dict[str, tuple[str, ...]], list[str]]:
    """Rewrites from a ``repetita rephrase`` output (``doc``, ``status``, ``text``); ok lines only.

    A torn last line (a killed run) is skipped; any other malformed line, an unknown document id or a
    file without a single ``ok`` rewrite is an error. Returns the rewrites and warnings.
    """
    records, torn = _jsonl(path, "--rephrased", torn_last_ok=True, decode_errors="replace")
    warnings, out = [], {}
    if torn:
        warnings.append(f"--rephrased {path}: last line is torn (an interrupted run); skipped")
    for i, rec in records:
        require(isinstance(rec, dict) and isinstance(rec.get("doc"), str),
                f"--rephrased {path}:{i}: expected an object with a 'doc' id")
        if rec.get("status") != "ok":
            continue
        require(rec["doc"] in docs, f"--rephrased {path}:{i}: unknown document id '{rec['doc']}'")
        require(isinstance(rec.get("text"), str) and rec["text"].strip(), f"--rephrased {path}:{i}: empty text")
        out.setdefault(rec["doc"], []).append(rec["text"].strip())
    require(out, f"--rephrased {path}: no finished ('ok') rewrites in the file")
    missing = sorted(set(docs) - set(out))
    if missing:
        warnings.append(f"--rephrased: {len(missing)} of {len(docs)} documents have no rewrite "
                        f"(e.g. '{missing[0]}'); they are trained on their original only")
    return {i: tuple(v) for i, v in out.items()}, warnings


def user_set(docs_path: str, qa_path: str) -> KnowledgeSet:
    from repetita.data_mix.rephrase import load_docs

    docs = {d["id"]: d["text"] for d in load_docs(docs_path)}
    require(len(docs) >= 2, f"--docs {docs_path}: need at least 2 documents")
    return KnowledgeSet(docs, {}, load_qa(qa_path, docs), source="files")


# --- tokens and streams --------------------------------------------------------------------------------


class Vocab:
    """A word-level vocabulary over every text a run can see (deterministic: sorted)."""

    def __init__(self, texts):
        found = set()
        for t in texts:
            found.update(words(t))
        self.itos = [EOS, UNK, *sorted(found)]
        self.stoi = {w: i for i, w in enumerate(self.itos)}

    def __len__(self) -> int:
        return len(self.itos)

    def encode(self, text: str) -> list[int]:
        return [self.stoi.get(w, 1) for w in words(text)]


def _cycle(rng: np.random.Generator, docs: list[list[int]], budget: int) -> list[list[int]]:
    """Whole documents in a fresh shuffled order each epoch until ``budget`` tokens (EOS included)."""
    out, n = [], 0
    require(docs, "no documents to train on")
    while n < budget:
        for j in rng.permutation(len(docs)):
            out.append(docs[j])
            n += len(docs[j]) + 1
            if n >= budget:
                break
    return out


@dataclass(frozen=True)
class Stream:
    """One condition's training tokens: ``stages`` (each a 1-D id array) and what they are made of."""

    stages: tuple[np.ndarray, ...]
    doc_tokens: int
    qa_tokens: int

    @property
    def tokens(self) -> int:
        return int(sum(s.size for s in self.stages))


def _pack(seqs: list[list[int]], length: int) -> np.ndarray:
    flat = np.fromiter((t for s in seqs for t in (*s, 0)), dtype=np.int64)  # 0 = EOS after every document
    require(flat.size >= length, "budget larger than the packed stream (internal)")
    return flat[:length]


def stream(ks: KnowledgeSet, vocab: Vocab, condition: str, k: int, doc_budget: int, qa_budget: int,
           trained: set[str], seed: int) -> Stream:
    """The condition's token stream: ``doc_budget`` document tokens and ``qa_budget`` QA tokens.

    Each stage is cut to its budget exactly, so every condition trains on the same number of tokens
    and the same split between documents and QA pairs (the tests check both).
    """
    require(condition in CONDITIONS, f"unknown condition '{condition}'; known: {', '.join(CONDITIONS)}")
    rng = np.random.default_rng([seed, 31, CONDITIONS.index(condition)])
    doc_seqs = [vocab.encode(t) for texts in ks.versions(condition, k).values() for t in texts]
    qa_seqs = [vocab.encode(q.text) for q in ks.qa if q.doc in trained]
    docs = _cycle(rng, doc_seqs, doc_budget)
    qas = _cycle(rng, qa_seqs, qa_budget)
    if condition == "qa-mix":
        # Same documents and QA pairs as repeat, interleaved; the cut at the end drops at most the
        # overshoot of the two cycles, so both shares stay within a document or two of their budgets.
        order = rng.permutation(len(docs) + len(qas))
        merged = [docs[j] if j < len(docs) else qas[j - len(docs)] for j in order]
        is_doc = np.repeat(order < len(docs), [len(s) + 1 for s in merged])
        total = doc_budget + qa_budget
        doc_tokens = int(is_doc[:total].sum())
        return Stream((_pack(merged, total),), doc_tokens, total - doc_tokens)
    return Stream((_pack(docs, doc_budget), _pack(qas, qa_budget)), doc_budget, qa_budget)


def corpus_tokens(ks: KnowledgeSet, vocab: Vocab, trained: set[str]) -> tuple[int, int]:
    """Tokens (EOS included) of one pass over the original documents and over the trained half's QA pairs."""
    doc = sum(len(vocab.encode(t)) + 1 for t in ks.docs.values())
    qa = sum(len(vocab.encode(q.text)) + 1 for q in ks.qa if q.doc in trained)
    return doc, qa
