from __future__ import annotations

import numpy as np
import pytest

from repetita.errors import UserError
from repetita.lm.corpora import (
    clean_play_markdown,
    load_corpus,
    markov_chain,
    markov_entropy_rate,
    sample_markov,
)
from repetita.lm.data import decode, encode_corpus, epoch_permutation, load_data, make_windows, split_windows

MARKOV = "markov:V=16,order=1,n=20000,seed=3"

# Markdown hard line breaks are two trailing spaces; spelled out so the file has no trailing whitespace.
BR = "  "
PLAY = "\n".join([
    "# A Play", "", "## ACT I", "", "### SCENE I. A heath.", "",
    "_Enter FIRST WITCH and", "SECOND WITCH_", "",
    "**FIRST WITCH**" + BR, "When shall we three meet again" + BR, "In thunder, lightning, or in rain?", "",
    "**SECOND WITCH**" + BR, "When the _hurlyburly_'s done, \\[aside]", "", "_Exeunt_", "",
])


def test_clean_play_markdown_drops_markup_and_keeps_dialogue():
    text = clean_play_markdown(PLAY)
    assert text == (
        "FIRST WITCH:\nWhen shall we three meet again\nIn thunder, lightning, or in rain?\n\n"
        "SECOND WITCH:\nWhen the hurlyburly's done, [aside]\n"
    )


def test_shakespeare_corpus_is_clean():
    c = load_corpus("shakespeare")
    assert len(c.text) > 3_000_000
    assert "**" not in c.text and "\n#" not in c.text and "  \n" not in c.text
    assert "HAMLET:\n" in c.text


def test_markov_entropy_rate_matches_empirical_conditional_entropy():
    V = 8
    P = markov_chain(V, 1, 0.3, seed=1)
    h = markov_entropy_rate(P, V, 1)
    ids = sample_markov(P, V, 1, 200_000, seed=1)
    counts = np.zeros((V, V))
    np.add.at(counts, (ids[:-1], ids[1:]), 1)
    q = counts / counts.sum(1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        emp = -(counts / counts.sum() * np.where(q > 0, np.log(q), 0)).sum()
    assert abs(emp - h) < 0.01
    assert 0 < h < np.log(V)


def test_markov_order2_stationary_is_consistent():
    c = load_corpus("markov:V=6,order=2,n=5000,seed=0,alpha=0.5")
    assert c.vocab_size == 6 and c.ids.max() < 6 and 0 < c.entropy_rate_nats < np.log(6)


def test_unique_budget_is_nested_and_val_is_disjoint():
    small = load_data(MARKOV, "bytes", 16, 1600, val_tokens=None)
    big = load_data(MARKOV, "bytes", 16, 6400, val_tokens=None)
    assert small.unique_tokens == 1600 and big.unique_tokens == 6400
    np.testing.assert_array_equal(big.train[: small.train.shape[0]], small.train)
    # distinct token ids per position, so a window's first id tells where it came from
    windows = make_windows(np.arange(17 * 500), 16)
    train, val = split_windows(windows, 0.05, 0)
    assert train.shape[0] + val.shape[0] == 500 and val.shape[0] == 25
    assert not set(train[:, 0]) & set(val[:, 0])
    assert not np.array_equal(train[:, 0], np.sort(train[:, 0]))  # windows are shuffled before the split


def test_epoch_order_is_fresh_permutation_and_supports_fractions():
    d = load_data(MARKOV, "bytes", 16, 16 * 40)
    n, B = d.train.shape[0], 8
    seen = np.concatenate([d.batch_indices(s, B, seed=5) for s in range(2 * n // B)])
    assert sorted(seen[:n]) == list(range(n)) and sorted(seen[n:]) == list(range(n))
    assert not np.array_equal(seen[:n], seen[n:])  # a fresh permutation each epoch
    np.testing.assert_array_equal(epoch_permutation(n, 5, 1), seen[n:])
    assert d.steps_for(2.5, B) == 12 and d.steps_for(0.1, B) == 1


def test_budget_larger_than_pool_is_a_user_error():
    with pytest.raises(UserError, match="unique_tokens"):
        load_data(MARKOV, "bytes", 16, 10**7)
    with pytest.raises(UserError, match="unknown corpus"):
        load_corpus("no-such-corpus-xyz")


def test_bpe_tokenizer_roundtrip_and_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("REPETITA_CACHE", str(tmp_path / "cache"))
    f = tmp_path / "t.txt"
    f.write_text("the quick brown fox jumps over the lazy dog\n" * 200 + "All's well that ends well.\n")
    c = load_corpus(str(f))
    ids, vocab = encode_corpus(c, "bpe:300")
    assert vocab == 300 and ids.max() < 300 and len(ids) < len(c.text) / 2  # merges compress
    assert decode(ids[:40], c, "bpe:300") in c.text
    assert list((tmp_path / "cache" / "lm").glob("bpe-*-300.json"))
    ids2, _ = encode_corpus(c, "bpe:300")  # from cache
    np.testing.assert_array_equal(ids, ids2)
    b, v = encode_corpus(c, "bytes")
    assert v == 256 and decode(b[:20], c, "bytes") == c.text[:20]
