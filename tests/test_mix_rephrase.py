import json
import os
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from repetita.data_mix import rephrase as rp
from repetita.data_mix.backends import BackendError, HTTPBackend, TransformersBackend
from repetita.data_mix.templates import TEMPLATES, render
from repetita.errors import UserError


class _Handler(BaseHTTPRequestHandler):
    """A tiny OpenAI-compatible chat endpoint whose misbehaviour is set per server."""

    def log_message(self, *args):
        pass

    def do_POST(self):
        srv = self.server
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        prompt = body["messages"][0]["content"]
        with srv.lock:
            srv.calls += 1
            n = srv.calls
        time.sleep(srv.delay)
        if srv.mode == "malformed" or (srv.mode == "flaky" and n % 2 == 1):
            payload = b"{not json"
        elif srv.mode == "slow":
            time.sleep(2.0)
            payload = b"{}"
        else:
            # Content depends on the seed, so samples differ; "dup" mode returns one text per document.
            text = prompt[-40:] if srv.mode == "dup" else f"rewrite {body['seed']} of: {prompt[-30:]}"
            payload = json.dumps({"choices": [{"message": {"content": text}}],
                                  "usage": {"prompt_tokens": 11, "completion_tokens": 7}}).encode()
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass


@pytest.fixture
def server():
    started = []

    def start(mode="ok", delay=0.0):
        srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        srv.mode, srv.delay, srv.calls, srv.lock = mode, delay, 0, threading.Lock()
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        started.append(srv)
        return srv, f"http://127.0.0.1:{srv.server_address[1]}/v1"

    yield start
    for srv in started:
        srv.shutdown()
        srv.server_close()


def _docs(tmp_path, n=3):
    path = tmp_path / "docs.jsonl"
    path.write_text("".join(json.dumps({"id": f"d{i}", "text": f"Fact number {i}: the value is {i * 7}."}) + "\n"
                            for i in range(n)))
    return str(path)


def _lines(path):
    return [json.loads(x) for x in Path(path).read_text().splitlines()]


def test_templates_cover_spa_families():
    assert set(TEMPLATES) == {"key_concepts", "mind_map", "implications", "qa_critical", "case_study",
                              "discussion", "teacher"}
    assert "DOC-XYZ" in render("teacher", "DOC-XYZ")
    with pytest.raises(UserError):
        render("nope", "x")


def test_http_run_then_resume_skips_everything(tmp_path, server):
    srv, url = server()
    cfg = rp.RephraseConfig(docs=_docs(tmp_path), out=str(tmp_path / "o.jsonl"), url=url, model="m", samples=2,
                            templates=("teacher", "mind_map"), concurrency=4)
    stats = rp.run(cfg)
    assert stats["ok"] == 12 and stats["failed"] == 0
    assert stats["prompt_tokens"] == 12 * 11 and stats["completion_tokens"] == 12 * 7
    keys = {(r["doc"], r["template"], r["sample"]) for r in _lines(cfg.out)}
    assert len(keys) == 12
    calls = srv.calls
    again = rp.run(cfg)
    assert again["skipped"] == 12 and again["ok"] == 0 and srv.calls == calls
    assert len(rp.corpus(cfg.out)) == 12
    assert json.loads(Path(cfg.out + ".config.json").read_text())["samples"] == 2


def test_duplicates_are_marked_not_counted_twice(tmp_path, server):
    _, url = server("dup")
    cfg = rp.RephraseConfig(docs=_docs(tmp_path, 2), out=str(tmp_path / "o.jsonl"), url=url, samples=3,
                            templates=("teacher",))
    stats = rp.run(cfg)
    assert stats["ok"] == 2 and stats["duplicate"] == 4
    assert len(rp.corpus(cfg.out)) == 2


def test_malformed_json_is_retried_then_recorded_failed_and_retried_next_run(tmp_path, server):
    srv, url = server("malformed")
    out = str(tmp_path / "o.jsonl")
    cfg = rp.RephraseConfig(docs=_docs(tmp_path, 1), out=out, url=url, templates=("teacher",), retries=2,
                            backoff=0.01)
    stats = rp.run(cfg)
    assert stats["failed"] == 1 and stats["retries"] == 2 and srv.calls == 3
    rec = _lines(out)[0]
    assert rec["status"] == "failed" and "malformed" in rec["error"]
    # The failed key is not finished: a later run against a healthy server completes it.
    _, good = server()
    stats = rp.run(rp.RephraseConfig(docs=cfg.docs, out=out, url=good, templates=("teacher",)))
    assert stats["ok"] == 1 and [r["status"] for r in _lines(out)] == ["failed", "ok"]


def test_flaky_server_succeeds_after_retry(tmp_path, server):
    _, url = server("flaky")
    cfg = rp.RephraseConfig(docs=_docs(tmp_path, 2), out=str(tmp_path / "o.jsonl"), url=url,
                            templates=("teacher",), retries=3, backoff=0.01, concurrency=1)
    stats = rp.run(cfg)
    assert stats["ok"] == 2 and stats["failed"] == 0 and stats["retries"] == 2


def test_timeout_is_a_backend_error(server):
    _, url = server("slow")
    with pytest.raises(BackendError):
        HTTPBackend(url, "m", timeout=0.3).generate("hi", max_new_tokens=4, temperature=0.0, seed=0)


def test_rate_limit_spaces_requests(tmp_path, server):
    _, url = server()
    cfg = rp.RephraseConfig(docs=_docs(tmp_path, 1), out=str(tmp_path / "o.jsonl"), url=url,
                            templates=("teacher",), samples=5, rate=20.0, concurrency=5)
    t0 = time.monotonic()
    rp.run(cfg)
    assert time.monotonic() - t0 >= 4 / 20.0 - 0.01


def test_bad_documents_are_user_errors(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a", "text": "ok"}\n{"id": "b", "text": "   "}\n')
    with pytest.raises(UserError, match="'b' is empty"):
        rp.load_docs(str(bad))
    bad.write_text('{"id": "a", "text": "ok"}\n{"id": "a", "text": "again"}\n')
    with pytest.raises(UserError, match="repeated"):
        rp.load_docs(str(bad))
    with pytest.raises(UserError):
        rp.RephraseConfig(docs="x", out="y", templates=("nope",))


def test_torn_last_line_is_repaired(tmp_path):
    out = tmp_path / "o.jsonl"
    good = {"doc": "d0", "template": "teacher", "sample": 0, "status": "ok", "hash": "h", "text": "t"}
    out.write_text(json.dumps(good) + "\n" + '{"doc": "d0", "templ')
    done, _ = rp.read_done(str(out))
    assert done == {("d0", "teacher", 0)}
    assert out.read_text().endswith("\n") and len(out.read_text().splitlines()) == 1


@pytest.mark.serial
def test_resume_after_sigkill(tmp_path, server):
    srv, url = server(delay=0.05)
    docs, out = _docs(tmp_path, 4), str(tmp_path / "o.jsonl")
    cmd = [sys.executable, "-m", "repetita.cli", "rephrase", "--docs", docs, "--out", out, "--url", url,
           "--samples", "2", "--concurrency", "2", "--json"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # kill once some but not all 56 keys are written
        if os.path.exists(out) and len(Path(out).read_bytes().splitlines()) >= 10:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = {(r["doc"], r["template"], r["sample"]) for r in _lines(out) if r["status"] == "ok"}
    assert 10 <= len(before) < 56
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    stats = json.loads(r.stdout)
    assert stats["skipped"] == len(before) and stats["ok"] == 56 - len(before)
    recs = _lines(out)
    keys = [(x["doc"], x["template"], x["sample"]) for x in recs]
    assert len(keys) == len(set(keys)) == 56


def test_transformers_backend_with_tiny_random_model():
    torch = pytest.importorskip("torch")
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(["[UNK]", "[EOS]", "the", "cat", "sat", "a", "mat", "on"])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    hf_tok = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", eos_token="[EOS]")
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=len(vocab), n_positions=64, n_embd=16, n_layer=1, n_head=2,
                                       eos_token_id=1, bos_token_id=1))
    backend = TransformersBackend(model=model, tokenizer=hf_tok)
    g1 = backend.generate("the cat sat on", max_new_tokens=5, temperature=1.0, seed=3)
    g2 = backend.generate("the cat sat on", max_new_tokens=5, temperature=1.0, seed=3)
    assert g1 == g2  # seeded sampling is reproducible
    assert g1.prompt_tokens == 4 and 1 <= g1.completion_tokens <= 5
