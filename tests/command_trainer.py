"""A stand-in for a user's trainer, run by the command-recipe tests: a known loss of (N, U, epochs, seed),
written as JSON the way a training script leaves its result. With ``--data`` it reads the first U ids of a
prepared corpus nanoGPT-style (np.memmap(...)[:U]) and folds their mean into the loss, so the result
depends on the budget's tokens. It records when it ran and which GPUs it was given."""

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

p = argparse.ArgumentParser()
p.add_argument("--params", type=float, required=True)
p.add_argument("--unique-tokens", type=int, required=True)
p.add_argument("--epochs", type=float, required=True)
p.add_argument("--seed", type=int, default=0)
p.add_argument("--out", required=True)
p.add_argument("--data")
p.add_argument("--dtype", default="uint16")
p.add_argument("--sleep", type=float, default=0.0)
p.add_argument("--mode", default="ok", choices=["ok", "fail", "nan", "nofile", "nokey", "kill-worker", "zero", "negative",
                                             "string", "sleeper"])
p.add_argument("--note", default="", help="any text: written back as given (the quoting tests)")
a = p.parse_args()
start = time.time()
if a.mode == "sleeper":  # a child that leaves the command's session and would outlive it (a launcher's worker)
    import subprocess

    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"], start_new_session=True,
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # not holding a pipe to tee open
time.sleep(a.sleep)
if a.mode == "kill-worker":  # a worker that dies under its run (killed, out of memory)
    import signal

    time.sleep(1.0)  # let runs started before this one finish: a broken pool fails whatever it still holds
    # the parent is the run's guard (repetita.study.guard); the worker is the guard's parent
    with open(f"/proc/{os.getppid()}/stat") as f:
        worker = int(f.read().rsplit(")", 1)[1].split()[1])
    os.kill(worker, signal.SIGKILL)
    time.sleep(5)
if a.mode == "fail":
    print("loading shards", file=sys.stderr)
    print("RuntimeError: out of memory", file=sys.stderr)
    sys.exit(3)
d = a.unique_tokens * a.epochs
# a Muennighoff-style loss: repeated tokens are worth less than fresh ones (R* = 5)
eff = a.unique_tokens * (1 + 5 * (1 - math.exp(-(a.epochs - 1) / 5)))
loss = 2.0 + 30 / a.params ** 0.3 + 60 / eff ** 0.3 + 1e-3 * a.seed
if a.data:
    import numpy as np

    ids = np.memmap(a.data, dtype=a.dtype, mode="r")[: a.unique_tokens]
    assert len(ids) == a.unique_tokens, "budget beyond the corpus"
    loss += float(ids.mean()) * 1e-6
if a.mode == "nan":
    loss = float("nan")
loss = {"zero": 0.0, "negative": -1.0, "string": "low"}.get(a.mode, loss)
out = Path(a.out)
if a.mode != "nofile":
    key = "eval_loss" if a.mode != "nokey" else "loss_eval"
    num = loss if isinstance(loss, float) else 3.0
    curve = [{"step": i, "loss": num + 1.0 / (i + 1)} for i in range(4)] + [{"step": 4, "loss": num}]
    (out / "result.json").write_text(json.dumps({key: loss, "curve": curve, "tokens": d} | ({"note": a.note} if a.note else {})))
(out / "ran.json").write_text(json.dumps({"start": start, "end": time.time(),
                                          "gpus": os.environ.get("CUDA_VISIBLE_DEVICES")}))
