"""``repetita corpus prepare``: documents tokenized once into nested budgets, held out by document, read by
the lab through a memory map with the same losses as from memory; bad input is one line, nothing written."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from repetita.cli import main

pytest.importorskip("tokenizers")


def _docs(n: int = 60) -> list[str]:
    rng = np.random.default_rng(0)
    words = ["the", "king", "queen", "sword", "crown", "night", "day", "love", "war", "peace", "ship", "sea"]
    return [f"doc{i:03d} " + " ".join(rng.choice(words, size=int(rng.integers(20, 60)))) + "." for i in range(n)]


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory) -> Path:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<|endoftext|>"], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(_docs(), trainer=trainer)
    path = tmp_path_factory.mktemp("tok") / "tokenizer.json"
    tok.save(str(path))
    return path


@pytest.fixture
def inputs(tmp_path) -> list[str]:
    docs = _docs()
    jsonl = tmp_path / "a.jsonl"
    jsonl.write_text("".join(json.dumps({"text": d}) + "\n" for d in docs[:40]))
    folder = tmp_path / "txt"
    folder.mkdir()
    for i, d in enumerate(docs[40:]):
        (folder / f"{i:02d}.txt").write_text(d)
    return [str(jsonl), str(folder)]


def _prepare(capsys, inputs, tokenizer, out, *extra) -> tuple[int, dict | None, str]:
    code = main(["corpus", "prepare", *inputs, "--tokenizer", str(tokenizer), "--out", str(out),
                 "--val-docs", "6", "--json", *extra])
    o, err = capsys.readouterr()
    return code, (json.loads(o) if code == 0 else None), err


def test_prepare_writes_nested_budgets_held_out_by_document(tmp_path, capsys, inputs, tokenizer):
    from tokenizers import Tokenizer

    code, m, err = _prepare(capsys, inputs, tokenizer, tmp_path / "c", "--budgets", "500,1500")
    assert code == 0, err
    assert m["documents"] == {"train": 54, "val": 6} and m["dtype"] == "uint16" and m["end_of_text"] is not None
    train = np.fromfile(tmp_path / "c" / "train.bin", dtype=np.uint16)
    val = np.fromfile(tmp_path / "c" / "val.bin", dtype=np.uint16)
    assert len(train) == m["tokens"]["train"] and len(val) == m["tokens"]["val"]
    tok = Tokenizer.from_file(str(tokenizer))
    # every document lands once, whole, in exactly one split: the held-out ones never in training
    text = {s: tok.decode(ids.tolist(), skip_special_tokens=False) for s, ids in (("train", train), ("val", val))}
    markers = {s: set(re.findall(r"doc\d{3}", t)) for s, t in text.items()}
    assert len(markers["val"]) == 6 and len(markers["train"]) == 54 and not markers["val"] & markers["train"]
    # budgets are prefixes of one file: the lab's windows for U = 500 are the first windows for U = 1500
    from repetita.lm.data import load_data

    small = load_data(f"prepared:{tmp_path / 'c'}", "bpe:512", 16, 500, val_tokens=None)
    large = load_data(f"prepared:{tmp_path / 'c'}", "bpe:512", 16, 1500, val_tokens=None)
    assert np.array_equal(small.train, large.train[: len(small.train)]) and len(large.train) > len(small.train)
    assert isinstance(small.train.base, np.memmap) or isinstance(small.train, np.memmap)  # a view, not a copy
    assert m["budgets"]["500"]["tokens"] == 500 and m["budgets"]["500"]["documents"] <= m["budgets"]["1500"]["documents"]
    # the same inputs and seed give the same bytes; another seed another order
    code, m2, _ = _prepare(capsys, inputs, tokenizer, tmp_path / "again")
    assert code == 0 and (tmp_path / "again" / "train.bin").read_bytes() == (tmp_path / "c" / "train.bin").read_bytes()
    code, _, _ = _prepare(capsys, inputs, tokenizer, tmp_path / "other", "--seed", "1")
    assert (tmp_path / "other" / "train.bin").read_bytes() != (tmp_path / "c" / "train.bin").read_bytes()
    assert m2["inputs"][0]["sha256"] == m["inputs"][0]["sha256"] and m["tokenizer"]["sha256"]


def test_the_lab_trains_from_the_memmap_as_from_memory(tmp_path, capsys, inputs, tokenizer, monkeypatch):
    from repetita.lm import prepare as prep
    from repetita.lm.config import TrainConfig
    from repetita.lm.train import train

    assert _prepare(capsys, inputs, tokenizer, tmp_path / "c")[0] == 0
    cfg = TrainConfig(corpus=f"prepared:{tmp_path / 'c'}", context=16, n_layer=1, d_model=16, n_head=2,
                      batch_size=8, unique_tokens=1024, epochs=2, val_tokens=256)
    mapped = train(cfg, tmp_path / "mapped")
    opened = prep.open_prepared

    def in_memory(folder):  # the same ids, read whole into RAM
        tr, va, m = opened(folder)
        return np.array(tr), np.array(va), m

    monkeypatch.setattr(prep, "open_prepared", in_memory)
    ram = train(cfg, tmp_path / "ram")
    assert mapped["val_loss"] == ram["val_loss"]  # bit for bit: the storage is not part of the computation
    assert [r["val_loss"] for r in mapped["history"]] == [r["val_loss"] for r in ram["history"]]


@pytest.mark.parametrize("case", ["not-a-tokenizer", "budget-too-large", "out-not-empty", "no-documents",
                                  "damaged-parquet", "absurd-budget", "unwritable"])
def test_bad_input_is_one_line_and_nothing_is_written(tmp_path, capsys, inputs, tokenizer, case):
    out = tmp_path / "c"
    tok, extra = tokenizer, []
    if case == "not-a-tokenizer":
        tok = tmp_path / "tokenizer.json"
        tok.write_text('{"hello": 1}')
    elif case == "budget-too-large":
        extra = ["--budgets", "1e9"]
    elif case == "out-not-empty":
        out.mkdir()
        (out / "keep.txt").write_text("mine")
    elif case == "no-documents":
        empty = tmp_path / "empty.jsonl"
        empty.write_text("\n")
        inputs = [str(empty)]
    elif case == "damaged-parquet":
        bad = tmp_path / "bad.parquet"
        bad.write_bytes(bytes(range(200)))
        inputs = [str(bad)]
    elif case == "absurd-budget":
        extra = ["--budgets", "1e300"]
    elif case == "unwritable":
        out = Path("/proc/x/y")
    code, _, err = _prepare(capsys, inputs, tok, out, *extra)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    expected = {"not-a-tokenizer": "not a tokenizer", "budget-too-large": "training tokens, fewer than the budget",
                "out-not-empty": "not empty", "no-documents": "no documents",
                "damaged-parquet": "not readable as Parquet", "absurd-budget": "from 1 to 1e16",
                "unwritable": "cannot write"}[case]
    assert expected in err
    if case == "out-not-empty":
        assert [p.name for p in out.iterdir()] == ["keep.txt"]
    else:
        assert not out.exists()
    assert not list(tmp_path.glob("*.partial"))  # no temporary folder left behind


def test_a_truncated_prepared_corpus_is_one_line(tmp_path, capsys, inputs, tokenizer):
    from repetita.errors import UserError
    from repetita.lm.data import load_data

    assert _prepare(capsys, inputs, tokenizer, tmp_path / "c")[0] == 0
    path = tmp_path / "c" / "train.bin"
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(UserError, match="damaged or truncated"):
        load_data(f"prepared:{tmp_path / 'c'}", "bpe:512", 16, None)


def test_a_full_disk_is_one_line_and_leaves_nothing(tmp_path, inputs, tokenizer):
    """A file-size limit (ulimit -f) stands in for a full disk: the write fails part-way through."""
    import subprocess
    import sys

    big = tmp_path / "big.jsonl"
    big.write_text("".join(json.dumps({"text": d * 20}) + "\n" for d in _docs() * 20))
    code = ("import resource, sys; resource.setrlimit(resource.RLIMIT_FSIZE, (50_000, 50_000)); "
            "from repetita.cli import main; sys.exit(main(sys.argv[1:]))")
    res = subprocess.run([sys.executable, "-c", code, "corpus", "prepare", str(big), "--tokenizer", str(tokenizer),
                          "--out", str(tmp_path / "c"), "--val-docs", "2"], capture_output=True, text=True)
    assert res.returncode == 2 and "cannot write the prepared corpus" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and "Traceback" not in res.stderr
    assert not (tmp_path / "c").exists() and not list(tmp_path.glob("*.partial"))


def test_two_prepares_into_one_folder_one_succeeds_the_other_refuses(tmp_path, tokenizer):
    """Five times: two processes prepare into the same --out at once. One exits 0 with a manifest that
    matches its files; the other refuses in one line (the lock, or the finished corpus), and no temp
    folder or lock file stays behind."""
    import subprocess
    import sys

    docs = _docs(400) * 20  # enough work that the two overlap
    src = tmp_path / "docs.jsonl"
    src.write_text("".join(json.dumps({"text": d}) + "\n" for d in docs))
    for i in range(5):
        out = tmp_path / f"out{i}"
        cmd = [sys.executable, "-m", "repetita.cli", "corpus", "prepare", str(src), "--tokenizer", str(tokenizer),
               "--out", str(out), "--val-docs", "50"]
        procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
        results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
        codes = sorted(c for c, _ in results)
        assert codes == [0, 2], results
        err = next(e for c, e in results if c == 2)
        assert len(err.strip().splitlines()) == 1 and ("another repetita corpus prepare" in err
                                                      or "already holds a prepared corpus" in err), err
        from repetita.lm.prepare import check_files, read_manifest

        m = read_manifest(out)
        check_files(out, m)  # the sizes match the manifest's token counts
        train = np.memmap(out / "train.bin", dtype=m["dtype"], mode="r")
        assert len(train) == m["tokens"]["train"] > 0 and m["documents"]["train"] == len(docs) - 50
        assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_a_large_validation_share_is_noted_with_the_flag(tmp_path, capsys, inputs, tokenizer):
    code = main(["corpus", "prepare", *inputs, "--tokenizer", str(tokenizer), "--out", str(tmp_path / "c"),
                 "--val-docs", "20"])
    err = capsys.readouterr().err
    assert code == 0 and "note: the validation split holds" in err and "--val-docs" in err, err
    code = main(["corpus", "prepare", *inputs, "--tokenizer", str(tokenizer), "--out", str(tmp_path / "d"),
                 "--val-docs", "2"])
    assert code == 0 and "validation split holds" not in capsys.readouterr().err


def test_a_long_document_is_tokenized_in_pieces_with_the_same_ids(tmp_path, capsys, tokenizer, monkeypatch):
    """A document past CHUNK_CHARS goes to the tokenizer in pieces cut after line breaks (bounded memory);
    a byte-level BPE that never merges across a line break gives the same ids either way."""
    from tokenizers import Tokenizer

    from repetita.lm import prepare as prep

    long_doc = "\n".join(_docs(300))
    src = tmp_path / "long.jsonl"
    src.write_text(json.dumps({"text": long_doc}) + "\n" + "".join(json.dumps({"text": d}) + "\n" for d in _docs(3)))
    monkeypatch.setattr(prep, "CHUNK_CHARS", 500)
    assert len(prep._pieces(long_doc)) > 20 and "".join(prep._pieces(long_doc)) == long_doc
    code, m, err = _prepare(capsys, [str(src)], tokenizer, tmp_path / "c", "--val-docs", "1")
    assert code == 0, err
    tok = Tokenizer.from_file(str(tokenizer))
    whole = tok.encode(long_doc).ids + [tok.token_to_id("<|endoftext|>")]
    train = np.fromfile(tmp_path / "c" / "train.bin", dtype=m["dtype"]).tolist()
    val = np.fromfile(tmp_path / "c" / "val.bin", dtype=m["dtype"]).tolist()
    assert any(train[i:i + len(whole)] == whole for i in range(len(train) - len(whole) + 1)) or val == whole


def test_invalid_utf8_names_the_file_and_line(tmp_path, capsys, tokenizer):
    src = tmp_path / "bad.jsonl"
    src.write_bytes(b'{"text": "fine"}\n{"text": "also fine"}\n{"text": "bad \xff"}\n')
    code, _, err = _prepare(capsys, [str(src)], tokenizer, tmp_path / "c")
    assert code == 2 and f"{src}, line 3: not UTF-8" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "c").exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
