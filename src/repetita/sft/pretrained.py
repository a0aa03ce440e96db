"""The SFT grid on a pretrained causal LM (SmolLM2-135M or any local Hugging Face model).

The repetition claim is about fine-tuning models that already know language; a tiny GPT-2 trained
from scratch (demo.py's default) only shows the mechanics. Here the same arithmetic task goes
through the pretrained model's own tokenizer: prompt and response are tokenized separately and
concatenated (the response ends with the end-of-text token), the loss and token accuracy count only
response tokens, and answers are read by greedy decoding. Every cell starts from the same pretrained
weights (kept once in memory and loaded back before each cell).
"""

from __future__ import annotations

import copy
from collections import defaultdict

import numpy as np

from repetita.errors import UserError, require
from repetita.sft.accuracy import IGNORE_INDEX
from repetita.sft.task import parse_answer


def load(name: str, device: str):
    """(tokenizer, model) for ``smollm2`` or a local model folder, on ``device`` in float32."""
    from pathlib import Path

    if name == "smollm2":
        from repetita.hfmodels import load_smollm2

        tokenizer, model = load_smollm2()
    else:
        require(Path(name).is_dir(), f"model={name!r}: expected 'scratch', 'smollm2' or a local model folder")
        from transformers import AutoModelForCausalLM, AutoTokenizer

        try:
            tokenizer = AutoTokenizer.from_pretrained(name, local_files_only=True)
            model = AutoModelForCausalLM.from_pretrained(name, local_files_only=True)
        except (OSError, ValueError) as exc:
            raise UserError(f"model={name!r}: cannot load a causal LM there ({str(exc).splitlines()[0][:160]})") from None
    require(tokenizer.eos_token_id is not None, f"model={name!r}: its tokenizer has no end-of-text token")
    # GGUF weights arrive dequantized to float32 (transformers refuses .float() on them: already cast).
    return tokenizer, model.to(device)


class HFCodec:
    """Batches and answer accuracy for a pretrained model's tokenizer."""

    def __init__(self, tokenizer, device: str):
        self.tok, self.device = tokenizer, device
        self.eos = tokenizer.eos_token_id
        self.pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.eos
        self._cache: dict[str, list[int]] = {}

    def encode(self, text: str) -> list[int]:
        if text not in self._cache:
            self._cache[text] = self.tok(text, add_special_tokens=False)["input_ids"]
        return self._cache[text]

    def batch(self, examples):
        """``(input_ids, labels, attention_mask)``, right-padded; prompt and padding labels are ignored."""
        import torch

        seqs = [(self.encode(p), self.encode(r) + [self.eos]) for p, r, _ in examples]
        T = max(len(p) + len(r) for p, r in seqs)
        ids = torch.full((len(seqs), T), self.pad, dtype=torch.long)
        labels = torch.full((len(seqs), T), IGNORE_INDEX, dtype=torch.long)
        mask = torch.zeros((len(seqs), T), dtype=torch.long)
        for i, (p, r) in enumerate(seqs):
            n = len(p) + len(r)
            ids[i, :n] = torch.tensor(p + r)
            labels[i, len(p) : n] = torch.tensor(r)
            mask[i, :n] = 1
        return ids.to(self.device), labels.to(self.device), mask.to(self.device)

    def accuracy(self, model, task, examples, batch: int = 128) -> float:
        """Greedy decoding, prompts grouped by token length (no padding needed); exact final answer."""
        import torch

        groups = defaultdict(list)
        for i, (p, _, _) in enumerate(examples):
            groups[len(self.encode(p))].append(i)
        new = max(len(self.encode(r)) for _, r, _ in examples) + 2
        right = np.zeros(len(examples), dtype=bool)
        model.eval()
        with torch.no_grad():
            for idx in groups.values():
                for j in range(0, len(idx), batch):
                    part = idx[j : j + batch]
                    x = torch.tensor([self.encode(examples[i][0]) for i in part], device=self.device)
                    start = x.shape[1]
                    for _ in range(new):
                        nxt = model(input_ids=x).logits[:, -1].argmax(-1, keepdim=True)
                        x = torch.cat([x, nxt], dim=1)
                    for row, i in zip(x[:, start:].tolist(), part, strict=True):
                        text = self.tok.decode(row, skip_special_tokens=True)
                        right[i] = parse_answer(text) == examples[i][2]
        model.train()
        return float(right.mean())


class Pretrained:
    """A fresh copy of the pretrained weights for every cell, from one load."""

    def __init__(self, name: str, device: str):
        self.tokenizer, self.model = load(name, device)
        self.state = copy.deepcopy(self.model.state_dict())

    def fresh(self):
        self.model.load_state_dict(self.state)
        self.model.train()
        return self.model
