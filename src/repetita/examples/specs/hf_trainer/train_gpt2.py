"""A small GPT-2 trained with Hugging Face transformers' Trainer on a budget of a prepared corpus.

This is the kind of script a team already has; repetita runs it through the command recipe of a study
spec (examples/hf_trainer/study.toml). Its contract with repetita is three things:

- it reads budget U as the first U tokens of the prepared ``train.bin`` (``np.memmap(path, dtype)[:U]``,
  nanoGPT style; every budget is a prefix of the next) and evaluates on ``val.bin``;
- it trains ``--epochs`` passes over those U tokens;
- it writes ``result.json`` in ``--out`` with the final ``eval_loss`` (and the evaluation curve), and the
  Trainer's own ``trainer_state.json`` beside it.

CPU-sized by default (2 layers, width 64, context 64); ``--device cuda`` is the GPU path. Deterministic
from its arguments on the CPU (one thread by default; ``--threads`` changes the float reduction order).

    python examples/hf_trainer/train_gpt2.py --data corpus/train.bin --val corpus/val.bin --dtype uint16 \\
        --vocab-size 512 --unique-tokens 65536 --epochs 4 --n-layer 2 --d-model 64 --out /tmp/run
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np


def windows(ids: np.ndarray, context: int) -> np.ndarray:
    """Non-overlapping windows of ``context`` tokens (the tail that does not fill one is dropped)."""
    n = len(ids) // context
    return np.asarray(ids[: n * context], dtype=np.int64).reshape(n, context)


class Windows:
    """A map-style dataset of token windows for causal LM training (labels are the inputs; the model shifts)."""

    def __init__(self, rows: np.ndarray):
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict:
        import torch

        x = torch.from_numpy(self.rows[i])
        return {"input_ids": x, "labels": x}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="train.bin of a prepared corpus")
    ap.add_argument("--val", required=True, help="val.bin of the same corpus")
    ap.add_argument("--dtype", default="uint16")
    ap.add_argument("--vocab-size", type=int, required=True)
    ap.add_argument("--unique-tokens", type=int, required=True)
    ap.add_argument("--epochs", type=float, required=True)
    ap.add_argument("--n-layer", type=int, default=2)
    ap.add_argument("--d-model", type=int, default=64)
    ap.add_argument("--n-head", type=int, default=4)
    ap.add_argument("--context", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--weight-decay", type=float, default=0.1)
    ap.add_argument("--val-tokens", type=int, default=16384, help="validation tokens evaluated (a prefix of val.bin)")
    ap.add_argument("--evals", type=int, default=4, help="evaluations along the run (the last at its end)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", required=True)
    ap.add_argument("--count-params", action="store_true", help="print the model's parameter count and exit")
    args = ap.parse_args()

    import torch
    from transformers import GPT2Config, GPT2LMHeadModel, Trainer, TrainingArguments, set_seed

    torch.set_num_threads(args.threads)
    set_seed(args.seed)
    config = GPT2Config(vocab_size=args.vocab_size, n_positions=args.context, n_embd=args.d_model,
                        n_layer=args.n_layer, n_head=args.n_head, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                        bos_token_id=None, eos_token_id=None)  # GPT-2's 50256 is outside a small vocabulary
    model = GPT2LMHeadModel(config)
    params = sum(p.numel() for p in model.parameters())  # tied input/output embeddings counted once
    if args.count_params:
        print(params)
        return
    train_ids = np.memmap(args.data, dtype=args.dtype, mode="r")
    if len(train_ids) < args.unique_tokens:
        raise SystemExit(f"{args.data} holds {len(train_ids)} tokens, fewer than --unique-tokens {args.unique_tokens}")
    train = Windows(windows(train_ids[: args.unique_tokens], args.context))
    val = Windows(windows(np.memmap(args.val, dtype=args.dtype, mode="r")[: args.val_tokens], args.context))
    steps = math.ceil(len(train) * args.epochs / args.batch_size)
    out = Path(args.out)
    targs = TrainingArguments(
        output_dir=str(out / "trainer"), max_steps=steps, per_device_train_batch_size=args.batch_size,
        per_device_eval_batch_size=64, learning_rate=args.lr, weight_decay=args.weight_decay,
        lr_scheduler_type="cosine", warmup_steps=max(1, steps // 20), eval_strategy="steps",
        eval_steps=max(1, steps // args.evals), logging_steps=max(1, steps // args.evals), save_strategy="no",
        report_to=[], seed=args.seed, data_seed=args.seed, use_cpu=args.device == "cpu",
        dataloader_num_workers=0, disable_tqdm=True)
    trainer = Trainer(model=model, args=targs, train_dataset=train, eval_dataset=val)
    trainer.train()
    final = trainer.evaluate()
    trainer.state.save_to_json(str(out / "trainer_state.json"))
    curve = [{"step": h["step"], "loss": h["eval_loss"]} for h in trainer.state.log_history if "eval_loss" in h]
    curve = list({c["step"]: c for c in curve}.values())  # the final evaluation repeats the last step's
    result = {"eval_loss": final["eval_loss"], "params": params, "steps": steps,
              "tokens": steps * args.batch_size * args.context, "curve": curve}
    (out / "result.json").write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
