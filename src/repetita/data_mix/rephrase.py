"""Resumable, deduplicated rephrasing of a small corpus (SPA-style: fixed templates x k samples).

Output is one JSONL line per finished ``(doc, template, sample)`` key, appended by
``repetita.io.JsonlAppender`` (one ``os.write`` per line under a lock, so lines never interleave). A run killed
mid-write can leave at most one partial trailing line; the next run truncates it and skips every key
already recorded as ``ok`` or ``duplicate``. Keys recorded ``failed`` (retries exhausted) are tried
again on the next run; their earlier failure lines stay as a log.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
import zlib
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from pathlib import Path

from repetita.data_mix.backends import BackendError, EchoBackend, HTTPBackend, RateLimiter, TransformersBackend
from repetita.data_mix.templates import TEMPLATES, render
from repetita.errors import UserError, require
from repetita.io import JsonlAppender, check_file, read_log, write_json


@dataclass(frozen=True)
class RephraseConfig:
    docs: str
    out: str
    backend: str = "http"
    model: str = ""
    url: str = ""
    templates: tuple[str, ...] = ()
    samples: int = 1
    max_new_tokens: int = 256
    temperature: float = 0.7
    concurrency: int = 4
    retries: int = 3
    timeout: float = 60.0
    rate: float = 0.0
    backoff: float = 0.5
    seed: int = 0

    def __post_init__(self):
        require(self.backend in ("http", "transformers", "echo"), f"backend: unknown '{self.backend}'")
        for name in self.templates:
            require(name in TEMPLATES, f"templates: unknown '{name}'; known: {', '.join(TEMPLATES)}")
        require(self.samples >= 1, f"samples must be >= 1, got {self.samples}")
        require(self.max_new_tokens >= 1, f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        require(self.temperature >= 0, f"temperature must be >= 0, got {self.temperature}")
        require(self.concurrency >= 1, f"concurrency must be >= 1, got {self.concurrency}")
        require(self.retries >= 0, f"retries must be >= 0, got {self.retries}")
        require(self.timeout > 0, f"timeout must be > 0, got {self.timeout}")
        require(self.rate >= 0, f"rate must be >= 0, got {self.rate}")
        require(self.backoff >= 0, f"backoff must be >= 0, got {self.backoff}")

    @property
    def template_names(self) -> tuple[str, ...]:
        return self.templates or tuple(TEMPLATES)


def load_docs(path: str) -> list[dict]:
    """Read ``{"id", "text"}`` JSONL; empty texts, missing fields and repeated ids are errors."""
    p = Path(path)
    require(p.is_file(), f"--docs: no such file {path}")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise UserError(f"{path}: not UTF-8 text (expected JSONL with 'id' and 'text' per line)") from None
    docs, seen = [], set()
    for i, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except ValueError:
            raise UserError(f"{path}:{i}: not valid JSON") from None
        require(isinstance(rec, dict) and "text" in rec, f"{path}:{i}: needs a 'text' field")
        doc_id = str(rec.get("id", i))
        require(isinstance(rec["text"], str) and rec["text"].strip(), f"{path}:{i}: document '{doc_id}' is empty")
        require(doc_id not in seen, f"{path}:{i}: repeated document id '{doc_id}'")
        seen.add(doc_id)
        docs.append({"id": doc_id, "text": rec["text"]})
    require(docs, f"{path}: no documents")
    return docs


def _norm_hash(text: str) -> str:
    return hashlib.sha1(" ".join(text.lower().split()).encode()).hexdigest()[:16]


def read_done(out: str) -> tuple[set, dict]:
    """Finished keys and per-doc text hashes from an output file, repairing a torn last line."""
    done: set = set()
    hashes: dict = {}
    for rec in read_log(out):  # repairs a torn last line left by a kill mid-write
        if rec.get("status") in ("ok", "duplicate"):
            done.add((rec["doc"], rec["template"], rec["sample"]))
            if rec.get("status") == "ok":
                hashes.setdefault(rec["doc"], set()).add(rec["hash"])
    return done, hashes


def make_backend(cfg: RephraseConfig):
    if cfg.backend == "http":
        require(cfg.url, "http backend needs --url (e.g. http://127.0.0.1:8000/v1)")
        return HTTPBackend(cfg.url, cfg.model, timeout=cfg.timeout, api_key=os.environ.get("OPENAI_API_KEY", ""))
    if cfg.backend == "transformers":
        return TransformersBackend(cfg.model)
    return EchoBackend()


def run(cfg: RephraseConfig, backend=None) -> dict:
    """Generate every missing key; returns counts and token totals for this run."""
    check_file(cfg.out, "--out", inputs=[cfg.docs])
    check_file(cfg.out + ".config.json", "--out", inputs=[cfg.docs])
    docs = load_docs(cfg.docs)
    backend = backend or make_backend(cfg)
    done, hashes = read_done(cfg.out)
    todo = [
        (d, t, s) for d in docs for t in cfg.template_names for s in range(cfg.samples)
        if (d["id"], t, s) not in done
    ]
    write_json(cfg.out + ".config.json", asdict(cfg), indent=1)
    limiter = RateLimiter(cfg.rate)
    hash_lock = threading.Lock()
    stats = {"skipped": len(done), "ok": 0, "duplicate": 0, "failed": 0, "retries": 0,
             "prompt_tokens": 0, "completion_tokens": 0}

    def work(doc, template, sample):
        prompt = render(template, doc["text"])
        # Per-key seed: the same key gets the same sample on any re-run, in any order.
        seed = (cfg.seed * 1_000_003 + zlib.crc32(f"{doc['id']}\x00{template}\x00{sample}".encode())) % 2**31
        error = ""
        for attempt in range(cfg.retries + 1):
            if attempt:
                with hash_lock:
                    stats["retries"] += 1
                time.sleep(cfg.backoff * 2 ** (attempt - 1))
            limiter.wait()
            try:
                gen = backend.generate(prompt, max_new_tokens=cfg.max_new_tokens,
                                       temperature=cfg.temperature, seed=seed)
                break
            except BackendError as exc:
                error = str(exc)
        else:
            return {"doc": doc["id"], "template": template, "sample": sample, "status": "failed",
                    "error": error, "attempts": cfg.retries + 1}
        h = _norm_hash(gen.text)
        with hash_lock:
            seen = hashes.setdefault(doc["id"], set())
            status = "duplicate" if h in seen or not gen.text.strip() else "ok"
            seen.add(h)
        return {"doc": doc["id"], "template": template, "sample": sample, "status": status, "seed": seed,
                "hash": h, "text": gen.text, "prompt_tokens": gen.prompt_tokens,
                "completion_tokens": gen.completion_tokens}

    out = JsonlAppender(cfg.out)
    try:
        with ThreadPoolExecutor(max_workers=cfg.concurrency) as pool:
            futures = [pool.submit(work, *key) for key in todo]
            for fut in as_completed(futures):
                rec = fut.result()
                out.write(rec)
                stats[rec["status"]] += 1
                stats["prompt_tokens"] += rec.get("prompt_tokens", 0)
                stats["completion_tokens"] += rec.get("completion_tokens", 0)
    finally:
        out.close()
    return stats


def run_from_config(cfg: RephraseConfig) -> dict:
    """``run``, and a run in which every request failed is an error (exit 2) that gives the count."""
    stats = run(cfg)
    if stats["failed"] and not stats["ok"] and not stats["duplicate"]:
        raise UserError(f"all {stats['failed']} requests failed (after {stats['retries']} retries); "
                        f"the errors are logged in {cfg.out}")
    return stats


def corpus(out: str) -> list[str]:
    """Texts of the finished, non-duplicate generations: a corpus for the LM lab (one per line)."""
    texts = []
    for line in Path(out).read_text(encoding="utf-8").splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if rec.get("status") == "ok":
            texts.append(rec["text"])
    return texts
