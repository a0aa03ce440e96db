"""``repetita corpus prepare``: a real corpus as nested unique-token budgets, tokenized once, on disk.

Documents are read from JSON lines (``text`` field), text files (one document per file), Parquet (a
``text`` column) or a ``datasets`` folder saved with ``save_to_disk``; a user-given Hugging Face
tokenizer (a local ``tokenizer.json`` or a folder holding one; nothing is downloaded) turns them into
ids in batches. Documents are shuffled once with a seed; the first ``val_docs`` of that order are the
validation split (held out by document), the rest are written in order to ``train.bin``, each followed by
the end-of-text id when the tokenizer has one.

Every unique-token budget U is the first U tokens of ``train.bin``: budgets nest by construction, and one
file serves them all (nanoGPT style: ``np.memmap(path, dtype, mode="r")[:U]``; a training script takes
``--data train.bin --unique-tokens U``). ``manifest.json`` records the input digests, the tokenizer and
its digest, the dtype (uint16 when the vocabulary fits, else uint32), the token counts and, for each
requested budget, where it ends (token and document). The LM lab reads the folder as corpus
``prepared:DIR`` through a memory map, so a 1e9-token corpus never sits in RAM and is never tokenized
twice.

Memory: tokens are written in input order to a temporary file, with one int64 offset per document, then
copied into shuffled order by positional reads; the resident set is a batch of documents plus the
offsets (8 bytes per document), not the corpus. A document longer than ``CHUNK_CHARS`` is tokenized in
pieces cut at line breaks: a fast tokenizer holds ~165 bytes per character of one input (one document of
20M characters peaked at 3.3 GB whole, 0.35 GB in pieces, with the same ids;
benchmarks/prepare_long_document.py). Everything is written into a temporary folder of its own beside the
output, checked against the manifest and renamed into place, so an interrupted run leaves no partial
folder; a lock on the output (``.<name>.prepare.lock`` beside it, removed afterwards) makes a second
prepare into the same folder refuse in one line instead of destroying the first one's work.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from repetita.errors import UserError, require

MANIFEST = "manifest.json"
FORMAT = 1
BATCH_DOCS = 1024  # documents tokenized per batch (the tokenizer's Rust side parallelises within one)
CHUNK_CHARS = 1 << 20  # the longest piece of a document handed to the tokenizer at once (module docstring)
VAL_SHARE_WARN = 0.10  # a validation split above this share of the tokens is noted (--val-docs changes it)
DTYPES = ("uint16", "uint32")


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for f in files:
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()[:16]


def load_tokenizer(path: str | Path):
    """A Hugging Face fast tokenizer from a local ``tokenizer.json`` (or a folder holding one)."""
    from tokenizers import Tokenizer

    p = Path(path).expanduser()
    file = p / "tokenizer.json" if p.is_dir() else p
    require(file.is_file(), f"tokenizer {path}: no tokenizer.json there (give a local file or folder; nothing is "
            "downloaded)")
    try:
        return Tokenizer.from_file(str(file)), file
    except Exception as exc:  # tokenizers raises its own exception types on malformed files
        raise UserError(f"tokenizer {file}: not a tokenizer ({type(exc).__name__}: "
                        f"{str(exc).splitlines()[0][:120] if str(exc) else 'unreadable'})") from None


def _end_of_text(tok) -> int | None:
    for name in ("<|endoftext|>", "</s>", "<eos>", "[SEP]", "<|end_of_text|>"):
        i = tok.token_to_id(name)
        if i is not None:
            return int(i)
    return None


def iter_documents(inputs: list[str]) -> Iterator[str]:
    """Documents, in input order, from every input (format by suffix; a folder of .txt files, or a
    ``datasets`` folder when it holds ``dataset_info.json``)."""
    for spec in inputs:
        p = Path(spec).expanduser()
        require(p.exists(), f"{spec}: no such file or folder")
        if p.is_dir() and ((p / "dataset_info.json").exists() or (p / "state.json").exists()):
            from datasets import load_from_disk

            try:
                ds = load_from_disk(str(p))
            except Exception as exc:  # datasets raises assorted errors on damaged folders
                raise UserError(f"{spec}: not readable as a saved dataset ({type(exc).__name__})") from None
            require("text" in ds.column_names, f"{spec}: the dataset has no 'text' column ({ds.column_names})")
            yield from (str(t) for t in ds["text"])
        elif p.is_dir():
            files = sorted(p.rglob("*.txt"))
            require(files, f"{spec}: no .txt files in this folder")
            for f in files:
                yield f.read_text(encoding="utf-8", errors="replace")
        elif p.suffix in (".jsonl", ".json"):
            with open(p, "rb") as fh:
                for i, raw in enumerate(fh, 1):
                    try:
                        line = raw.decode("utf-8")
                    except UnicodeDecodeError as exc:
                        raise UserError(f"{spec}, line {i}: not UTF-8 (byte {raw[exc.start]:#04x} at column "
                                        f"{exc.start + 1})") from None
                    if not line.strip():
                        continue
                    try:
                        row = json.loads(line)
                    except (json.JSONDecodeError, RecursionError):
                        raise UserError(f"{spec}, line {i}: not a JSON object") from None
                    require(isinstance(row, dict) and isinstance(row.get("text"), str),
                            f"{spec}, line {i}: no 'text' string")
                    yield row["text"]
        elif p.suffix == ".parquet":
            import pyarrow.parquet as pq

            try:
                table = pq.ParquetFile(p)
            except Exception as exc:  # pyarrow raises ArrowInvalid and OSError variants on damaged files
                raise UserError(f"{spec}: not readable as Parquet ({str(exc).splitlines()[0][:100]})") from None
            require("text" in table.schema.names, f"{spec}: no 'text' column ({', '.join(table.schema.names)})")
            for batch in table.iter_batches(columns=["text"]):
                yield from (str(t) for t in batch.column(0).to_pylist())
        else:
            yield p.read_text(encoding="utf-8", errors="replace")


@dataclass(frozen=True)
class PrepareConfig:
    inputs: tuple[str, ...]
    tokenizer: str
    out: str
    budgets: tuple[int, ...] = ()
    val_docs: int = 100
    seed: int = 0

    def __post_init__(self):
        require(len(self.inputs) >= 1, "give at least one input")
        require(self.val_docs >= 1, f"val_docs={self.val_docs} must be >= 1")
        require(0 <= self.seed < 2**63, f"seed={self.seed} must be an integer from 0 to 2**63-1")
        # 1e16 tokens is ~10x all text ever written (the planner's bound, decide/allocate.py LIMITS)
        require(all(1 <= b <= 1e16 for b in self.budgets), "budgets must be token counts from 1 to 1e16")


def prepare(cfg: PrepareConfig) -> dict:
    """Tokenize, shuffle by document, write ``train.bin``, ``val.bin`` and the manifest (module docstring)."""
    from repetita.io import check_dir

    out = Path(cfg.out)
    check_dir(out, "--out", inputs=cfg.inputs)  # before any tokenizing: an unwritable target fails at once
    tok, tok_file = load_tokenizer(cfg.tokenizer)
    out.parent.mkdir(parents=True, exist_ok=True)
    with _OutLock(out):
        require(not (out / MANIFEST).exists(), f"{out}: already holds a prepared corpus (remove it or choose "
                "another --out)")
        require(not out.exists() or not any(out.iterdir()), f"{out}: exists and is not empty")
        return _prepare(cfg, out, tok, tok_file)


class _OutLock:
    """An exclusive lock on ``--out``: a second prepare into the same folder refuses in one line."""

    def __init__(self, out: Path):
        self.path = out.with_name(f".{out.name}.prepare.lock")

    def __enter__(self):
        import fcntl
        import os

        while True:
            try:
                self.fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o644)
            except OSError as exc:
                raise UserError(f"{self.path.parent}: cannot write the lock for --out ({exc.strerror})") from None
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(self.fd)
                raise UserError(f"{self.path.name[1:-13]}: another repetita corpus prepare is writing this --out "
                                "now; wait for it to finish or choose another folder") from None
            # the holder before us may have removed the file after we opened it: lock the current one
            try:
                same = os.stat(self.path).st_ino == os.fstat(self.fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                return self
            os.close(self.fd)

    def __exit__(self, *exc):
        import os

        try:
            self.path.unlink(missing_ok=True)
        finally:
            os.close(self.fd)


def _prepare(cfg: PrepareConfig, out: Path, tok, tok_file: Path) -> dict:
    import tempfile

    vocab = tok.get_vocab_size()
    dtype = np.uint16 if vocab <= np.iinfo(np.uint16).max + 1 else np.uint32
    eot = _end_of_text(tok)
    try:
        work = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    except OSError as exc:
        raise UserError(f"{out.parent}: cannot write the prepared corpus ({exc.strerror})") from None
    try:
        raw_path, offsets = _tokenize_in_order(cfg.inputs, tok, eot, dtype, work / "raw.bin")
        n_docs = len(offsets) - 1
        require(n_docs > cfg.val_docs, f"{n_docs} document(s) cannot hold out {cfg.val_docs} for validation "
                "and still leave training data (lower --val-docs)")
        order = np.random.default_rng([int(cfg.seed), 0xC0]).permutation(n_docs)
        val_docs, train_docs = order[: cfg.val_docs], order[cfg.val_docs :]
        n_val = _gather(raw_path, offsets, val_docs, work / "val.bin", dtype)
        ends = _gather(raw_path, offsets, train_docs, work / "train.bin", dtype, cumulative=True)
        n_train = int(ends[-1])
        raw_path.unlink()
        too_big = [b for b in cfg.budgets if b > n_train]
        if too_big:
            raise UserError(f"the corpus has {n_train:,} training tokens, fewer than the budget {max(too_big):,}")
        budgets = {str(b): {"tokens": int(b), "documents": int(np.searchsorted(ends, b) + 1)} for b in cfg.budgets}
        manifest = {
            "format": FORMAT, "dtype": np.dtype(dtype).name, "vocab_size": int(vocab), "end_of_text": eot,
            "tokenizer": {"path": str(tok_file.resolve()), "sha256": _digest(tok_file)},
            "inputs": [{"path": str(Path(i).resolve()), "sha256": _digest(Path(i).expanduser())} for i in cfg.inputs],
            "seed": cfg.seed, "documents": {"train": int(len(train_docs)), "val": int(len(val_docs))},
            "tokens": {"train": n_train, "val": int(n_val)}, "budgets": budgets,
            "files": {"train": "train.bin", "val": "val.bin"},
            "reading": "budget U is the first U tokens of train.bin: np.memmap(train.bin, dtype, mode='r')[:U]",
        }
        (work / MANIFEST).write_text(json.dumps(manifest, indent=1))
        check_files(work, read_manifest(work))  # what is renamed into place is what the manifest says
        if out.exists():
            out.rmdir()
        work.rename(out)
    except OSError as exc:  # a full disk or a file-size limit: nothing half-written stays behind
        shutil.rmtree(work, ignore_errors=True)
        raise UserError(f"{out}: cannot write the prepared corpus ({exc.strerror or exc})") from None
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    share = n_val / max(n_val + n_train, 1)
    if share > VAL_SHARE_WARN:
        from repetita.errors import note

        note(f"the validation split holds {share:.0%} of the tokens ({cfg.val_docs} of {n_docs} documents held "
             "out); --val-docs sets how many documents it takes")
    return manifest | {"out": str(out)}


def _pieces(doc: str) -> list[str]:
    """A document as pieces of at most ``CHUNK_CHARS`` characters, cut after a line break where there is one."""
    if len(doc) <= CHUNK_CHARS:
        return [doc]
    out, start = [], 0
    while start < len(doc):
        stop = min(start + CHUNK_CHARS, len(doc))
        if stop < len(doc):
            cut = doc.rfind("\n", start, stop)
            stop = cut + 1 if cut > start else stop
        out.append(doc[start:stop])
        start = stop
    return out


def _tokenize_in_order(inputs, tok, eot, dtype, path: Path) -> tuple[Path, np.ndarray]:
    """Every document's ids, in input order, appended to ``path``; returns the per-document offsets."""
    offsets = [0]
    batch: list[str] = []
    with open(path, "wb") as fh:
        def flush():
            for enc in tok.encode_batch(batch):
                ids = np.asarray(enc.ids + ([eot] if eot is not None else []), dtype=dtype)
                fh.write(ids.tobytes())
                offsets.append(offsets[-1] + len(ids))
            batch.clear()

        for doc in iter_documents(list(inputs)):
            if len(doc) > CHUNK_CHARS:  # one long document, in pieces: bounded memory (module docstring)
                flush()
                n = 0
                for piece in _pieces(doc):
                    ids = np.asarray(tok.encode(piece).ids, dtype=dtype)
                    fh.write(ids.tobytes())
                    n += len(ids)
                if eot is not None:
                    fh.write(np.asarray([eot], dtype=dtype).tobytes())
                    n += 1
                offsets.append(offsets[-1] + n)
                continue
            if doc:
                batch.append(doc)
            if len(batch) >= BATCH_DOCS:
                flush()
        if batch:
            flush()
    require(len(offsets) > 1, "the inputs hold no documents")
    return path, np.asarray(offsets, dtype=np.int64)


def _gather(raw: Path, offsets, docs, path: Path, dtype, cumulative: bool = False):
    """Copy documents ``docs`` (in that order) from the file ``raw`` into ``path``; the total, or each end.

    Positional reads, not a memory map: mapped pages count in the resident set (measured: 436 MB peak for a
    199 MB corpus with a map), reads do not outlive their copy."""
    import os

    size = np.dtype(dtype).itemsize
    ends = np.empty(len(docs), dtype=np.int64)
    total = 0
    fd = os.open(raw, os.O_RDONLY)
    try:
        with open(path, "wb") as fh:
            for j, d in enumerate(docs):
                start, stop = int(offsets[d]), int(offsets[d + 1])
                fh.write(os.pread(fd, (stop - start) * size, start * size))
                total += stop - start
                ends[j] = total
    finally:
        os.close(fd)
    return ends if cumulative else total


def read_manifest(folder: str | Path) -> dict:
    """The manifest of a prepared corpus, its schema checked: files named inside the folder, known dtype,
    token counts as non-negative integers (a damaged or hand-edited manifest is one line)."""
    from repetita.io import inside

    p = Path(folder).expanduser()
    where = p / MANIFEST
    require(where.is_file(), f"{folder}: not a prepared corpus (no {MANIFEST}; run repetita corpus prepare)")
    try:
        m = json.loads(where.read_bytes())
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
        raise UserError(f"{where}: not valid JSON") from None
    require(isinstance(m, dict) and m.get("format") == FORMAT, f"{where}: not a repetita corpus manifest")
    files, tokens = m.get("files"), m.get("tokens")
    require(isinstance(files, dict) and isinstance(tokens, dict), f"{where}: no files or tokens table")
    for split in ("train", "val"):
        name = files.get(split)
        require(isinstance(name, str) and name and inside(p, name),
                f"{where}: files.{split} = {name!r} must name a file inside the corpus folder")
        n = tokens.get(split)
        require(isinstance(n, int) and not isinstance(n, bool) and n >= 0,
                f"{where}: tokens.{split} = {n!r} must be a non-negative integer")
    require(m.get("dtype") in DTYPES, f"{where}: dtype {m.get('dtype')!r} must be one of {', '.join(DTYPES)}")
    v = m.get("vocab_size")
    require(isinstance(v, int) and not isinstance(v, bool) and v > 0, f"{where}: vocab_size {v!r} must be a "
            "positive integer")
    return m


def check_files(folder: Path, m: dict) -> None:
    """Each split's file holds exactly the tokens the manifest says (a truncated copy is one line)."""
    for split in ("train", "val"):
        f = folder / m["files"][split]
        size = np.dtype(m["dtype"]).itemsize * m["tokens"][split]
        require(f.is_file() and f.stat().st_size == size,
                f"{f}: damaged or truncated ({f.stat().st_size if f.is_file() else 0} bytes, manifest says {size})")


def open_prepared(folder: str | Path) -> tuple[np.memmap, np.memmap, dict]:
    """The training and validation ids as read-only memory maps, and the manifest (sizes checked)."""
    p = Path(folder).expanduser()
    m = read_manifest(p)
    check_files(p, m)
    arrays = [np.memmap(p / m["files"][split], dtype=m["dtype"], mode="r") for split in ("train", "val")]
    return arrays[0], arrays[1], m
