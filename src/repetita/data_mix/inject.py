"""Rewrite or repeat? Knowledge injection at an equal token budget, trained through the one loop.

Each run trains the LM lab's GPT from scratch on one condition's stream (``knowledge.stream``): the
documents at a budget of ``passes`` times the tokens of the original documents, then (except
``qa-mix``, which interleaves them) QA tuning on the trained half's QA pairs at ``qa_passes``
times their tokens. Evaluation is exact match of greedy answers to every question: on the trained
half (memorised QA) and on the held-out half (knowledge extraction: the facts were only ever seen
in documents). Rows are appended to ``inject.jsonl`` as runs finish, so an interrupted experiment
resumes where it stopped; the config is saved beside them.
"""

from __future__ import annotations

import json
import math
import time
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from repetita.data_mix.knowledge import CONDITIONS, KnowledgeSet, Vocab, corpus_tokens, stream, synthetic
from repetita.errors import require


@dataclass(frozen=True)
class InjectConfig:
    people: int = 100  # synthetic individuals (ignored with --docs)
    world_seed: int = 0  # the synthetic world (names, facts, renderings); run seeds vary split, order and init
    conditions: tuple[str, ...] = ("repeat", "rewrite-template", "qa-mix")
    rewrites: tuple[int, ...] = (4,)  # K: versions per document in the rewrite conditions (original included)
    passes: tuple[float, ...] = (300.0,)  # document budgets, in passes over the original documents
    qa_passes: float = 100.0  # QA budget, in passes over the trained half's QA pairs
    seeds: tuple[int, ...] = (0, 1)
    n_layer: int = 2
    n_head: int = 4
    d_model: int = 128
    context: int = 64
    batch: int = 32
    lr: float = 3e-3
    weight_decay: float = 0.1
    warmup: int = 20
    threads: int = 0  # torch threads (0 = torch's default)
    device: str = "cpu"  # cpu | cuda | auto (bf16 autocast on CUDA)
    docs: str = ""  # user files instead of the synthetic world
    qa: str = ""
    rephrased: str = ""

    def __post_init__(self):
        require(self.conditions, "conditions: need at least one")
        for c in self.conditions:
            require(c in CONDITIONS, f"conditions: unknown '{c}'; known: {', '.join(CONDITIONS)}")
        require(len(set(self.conditions)) == len(self.conditions), "conditions: listed twice")
        require(self.rewrites and all(isinstance(k, int) and k >= 1 for k in self.rewrites),
                f"rewrites K must be integers >= 1, got {self.rewrites}")
        require(self.passes and all(math.isfinite(p) and p > 0 for p in self.passes),
                f"passes must be > 0, got {self.passes}")
        require(math.isfinite(self.qa_passes) and self.qa_passes > 0, f"qa_passes must be > 0, got {self.qa_passes}")
        require(self.seeds, "seeds: need at least one")
        require(self.people >= 2, f"people must be >= 2, got {self.people}")
        require(self.n_layer >= 1 and self.n_head >= 1 and self.d_model % (2 * self.n_head) == 0,
                f"d_model must be a multiple of 2*n_head, got d_model={self.d_model}, n_head={self.n_head}")
        require(self.context >= 16, f"context must be >= 16, got {self.context}")
        require(self.batch >= 1, f"batch must be >= 1, got {self.batch}")
        require(math.isfinite(self.lr) and self.lr > 0, f"lr must be > 0, got {self.lr}")
        require(self.weight_decay >= 0 and self.warmup >= 0 and self.threads >= 0,
                "weight_decay, warmup and threads must be >= 0")
        require(self.device in ("cpu", "cuda", "auto"), f"device must be cpu, cuda or auto, got {self.device!r}")
        require(bool(self.docs) == bool(self.qa), "--docs and --qa go together")
        if self.docs:
            require("rewrite-template" not in self.conditions,
                    "rewrite-template needs the synthetic biographies; with --docs use rewrite-llm and --rephrased")
        require(("rewrite-llm" in self.conditions) == bool(self.rephrased),
                "rewrite-llm needs --rephrased (a repetita rephrase output), and --rephrased needs rewrite-llm")

    def runs(self) -> list[tuple[str, int, float, int]]:
        """Every ``(condition, K, passes, seed)``; K is 1 for the conditions without rewrites."""
        out = []
        for seed in self.seeds:
            for p in self.passes:
                for c in self.conditions:
                    for k in (self.rewrites if c.startswith("rewrite") else (1,)):
                        out.append((c, k, float(p), seed))
        return out


def knowledge_set(cfg: InjectConfig) -> tuple[KnowledgeSet, list[str]]:
    """The synthetic world (renderings up to the largest K), or the user's files."""
    from dataclasses import replace

    from repetita.data_mix.knowledge import load_rephrased, user_set

    warnings = []
    ks = synthetic(cfg.people, max(cfg.rewrites), cfg.world_seed) if not cfg.docs else user_set(cfg.docs, cfg.qa)
    if cfg.rephrased:
        rephrased, warnings = load_rephrased(cfg.rephrased, ks.docs)
        short = sum(len(rephrased.get(i, ())) < max(cfg.rewrites) - 1 for i in ks.docs)
        if short:
            warnings.append(f"--rephrased: {short} documents have fewer than K-1 = {max(cfg.rewrites) - 1} "
                            "rewrites; they cycle through the ones they have")
        ks = replace(ks, rephrased=rephrased)
    return ks, warnings


def _windows(ids: np.ndarray, context: int, batch: int):
    """Consecutive ``context``-token windows of the stream, in stream order; whole batches only."""
    n = (ids.size - 1) // context
    steps = n // batch
    return steps, lambda step: slice(step * batch * context, (step + 1) * batch * context)


def _train_stage(model, opt, ids: np.ndarray, cfg: InjectConfig, device: str = "cpu") -> tuple[int, float]:
    import torch

    from repetita.lm.trainer import Every, Trainer

    steps, window = _windows(ids, cfg.context, cfg.batch)
    require(steps >= 1, f"budget of {ids.size} tokens is less than one batch of {cfg.batch} x {cfg.context}")
    x_all = torch.as_tensor(ids[: steps * cfg.batch * cfg.context + 1]).to(device)
    autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if device == "cuda" else None

    def batches(step: int):
        s = window(step)
        x = x_all[s].view(cfg.batch, cfg.context)
        y = x_all[s.start + 1: s.stop + 1].view(cfg.batch, cfg.context)
        return x[None], y[None]

    last = []
    Trainer(model, opt, batches, total_steps=steps, lr=cfg.lr, schedule="cosine", warmup=cfg.warmup,
            final_lr_frac=0.1, grad_clip=1.0, autocast=autocast,
            callbacks=[Every(lambda r: last.append(r.loss), every=1)]).run()
    return steps, float(np.mean(last[-max(1, steps // 20):]))


def answer_accuracy(model, vocab: Vocab, qa, context: int) -> np.ndarray:
    """Exact match per question: greedy decoding from ``Q: ... A:`` must give the answer then EOS."""
    import torch

    device = next(model.parameters()).device
    prompts = [vocab.encode(q.prompt) for q in qa]
    answers = [vocab.encode(q.answer) + [0] for q in qa]
    hit = np.zeros(len(qa), dtype=bool)
    groups = defaultdict(list)
    for i, (p, a) in enumerate(zip(prompts, answers, strict=True)):
        groups[(len(p), len(a))].append(i)
    model.eval()
    with torch.no_grad():
        for (lp, la), idx in groups.items():
            require(lp + la - 1 <= context, f"a question and its answer need {lp + la - 1} tokens, context {context}")
            x = torch.tensor([prompts[i] for i in idx], device=device)
            for _ in range(la):
                nxt = model(x[None])[0, :, -1].argmax(-1)
                x = torch.cat([x, nxt[:, None]], dim=1)
            want = torch.tensor([answers[i] for i in idx], device=device)
            hit[idx] = (x[:, lp:] == want).all(1).cpu().numpy()
    model.train()
    return hit


def majority_guess(qa, in_train: np.ndarray) -> np.ndarray:
    """Whether answering every question with its attribute's most common trained answer is right.

    The floor a model reaches without knowing anyone (e.g. a field that a fifth of people share).
    Questions without an attribute are their own group, so their floor is about 0.
    """
    from collections import Counter

    counts = defaultdict(Counter)
    for q, t in zip(qa, in_train, strict=True):
        if t:
            counts[q.attribute or q.question][q.answer] += 1
    guess = {a: c.most_common(1)[0][0] for a, c in counts.items()}
    return np.array([guess.get(q.attribute or q.question) == q.answer for q in qa])


def run_one(ks: KnowledgeSet, vocab: Vocab, cfg: InjectConfig, condition: str, k: int, passes: float,
            seed: int) -> dict:
    import torch

    from repetita.lm.model import GPT, ModelConfig
    from repetita.lm.train import resolve_device

    t0 = time.perf_counter()
    device = resolve_device(cfg.device)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    trained = ks.trained_ids(seed)
    doc_pass, qa_pass = corpus_tokens(ks, vocab, trained)
    st = stream(ks, vocab, condition, k, int(round(passes * doc_pass)), int(round(cfg.qa_passes * qa_pass)),
                trained, seed)
    torch.manual_seed(seed)
    mc = ModelConfig(vocab_size=len(vocab), context=cfg.context, n_layer=cfg.n_layer, n_head=cfg.n_head,
                     d_model=cfg.d_model)
    model = GPT(mc, members=1, seed=seed).to(device)
    opt = torch.optim.AdamW(model.param_groups(cfg.weight_decay), lr=cfg.lr, betas=(0.9, 0.95))
    steps, loss = 0, float("nan")
    for ids in st.stages:
        s, loss = _train_stage(model, opt, ids, cfg, device)
        steps += s
    hit = answer_accuracy(model, vocab, ks.qa, cfg.context)
    in_train = np.array([q.doc in trained for q in ks.qa])
    majority = majority_guess(ks.qa, in_train)
    by_attr = {}
    for attr in sorted({q.attribute for q in ks.qa if q.attribute}):
        sel = np.array([q.attribute == attr for q in ks.qa]) & ~in_train
        by_attr[attr] = float(hit[sel].mean()) if sel.any() else None
    return {"condition": condition, "k": k, "passes": passes, "seed": seed,
            "acc_heldout": float(hit[~in_train].mean()), "acc_trained": float(hit[in_train].mean()),
            "acc_heldout_majority": float(majority[~in_train].mean()), "acc_heldout_by_attribute": by_attr, "final_train_loss": loss,
            "doc_tokens": st.doc_tokens, "qa_tokens": st.qa_tokens, "tokens": st.tokens,
            "trained_tokens": steps * cfg.batch * cfg.context, "steps": steps, "params": model.num_params(), "vocab": len(vocab),
            "questions_heldout": int((~in_train).sum()), "seconds": round(time.perf_counter() - t0, 2)}


def _key(row: dict) -> tuple:
    return row["condition"], int(row["k"]), float(row["passes"]), int(row["seed"])


def experiment(cfg: InjectConfig, out_dir: str | Path | None = None, log=None) -> dict:
    """Every run of ``cfg``; with ``out_dir`` rows already in ``inject.jsonl`` are kept, not re-run."""
    from repetita.io import JsonlAppender, dumps, make_dir, read_json, read_log, write_json
    from repetita.lm.train import resolve_device

    resolve_device(cfg.device)  # a missing GPU is one line, before anything is written
    rows, appender, warnings = {}, None, []
    if out_dir is not None:
        path = make_dir(out_dir)
        saved = path / "inject.config.json"
        config = json.loads(dumps(asdict(cfg)))
        if saved.exists():
            require(read_json(saved, "inject config") == config,
                    f"{out_dir} holds an experiment with another config; use a new --out")
        else:
            write_json(saved, config, indent=1)
        rows = {_key(r): r for r in read_log(path / "inject.jsonl")}
        appender = JsonlAppender(path / "inject.jsonl")
    ks, warnings = knowledge_set(cfg)
    vocab = Vocab(ks.texts())
    for cond, k, passes, seed in cfg.runs():
        if appender is not None:  # another process on the same folder may have finished it meanwhile
            rows |= {_key(r): r for r in read_log(path / "inject.jsonl")}
        if (cond, k, passes, seed) in rows:
            continue
        row = run_one(ks, vocab, cfg, cond, k, passes, seed)
        rows[_key(row)] = row
        if appender is not None:
            appender.write_unique(row, _key)  # keyed: a row two writers both ran is written once
        if log:
            log(f"{cond:<17} K={k} passes={passes:g} seed={seed}: held-out {row['acc_heldout']:.3f} "
                f"trained {row['acc_trained']:.3f} (majority guess {row['acc_heldout_majority']:.3f}; "
                f"{row['seconds']:.0f} s)")
    ordered = [rows[key] for key in map(tuple, cfg.runs()) if key in rows]
    return {"config": asdict(cfg), "rows": ordered,
            "summary": summarize(ordered), "warnings": warnings}


def summarize(rows: list[dict]) -> list[dict]:
    """Mean, min and max over seeds per (condition, K, passes)."""
    groups = defaultdict(list)
    for r in rows:
        groups[(r["condition"], r["k"], r["passes"])].append(r)
    out = []
    for (cond, k, passes), rs in groups.items():
        held = [r["acc_heldout"] for r in rs]
        out.append({"condition": cond, "k": k, "passes": passes, "seeds": len(rs),
                    "tokens": rs[0]["tokens"], "acc_heldout": float(np.mean(held)),
                    "acc_heldout_min": float(min(held)), "acc_heldout_max": float(max(held)),
                    "acc_trained": float(np.mean([r["acc_trained"] for r in rs])),
                    "acc_heldout_majority": float(np.mean([r["acc_heldout_majority"] for r in rs]))})
    return out


def table(result: dict) -> str:
    lines = [f"{'condition':<17} {'K':>2} {'passes':>6} {'tokens':>9} {'seeds':>5}  "
             f"{'held-out acc (min-max)':>24}  {'trained acc':>11}  {'majority guess':>14}"]
    for s in result["summary"]:
        lines.append(f"{s['condition']:<17} {s['k']:>2} {s['passes']:>6g} {s['tokens']:>9} {s['seeds']:>5}  "
                     f"{s['acc_heldout']:>8.3f} ({s['acc_heldout_min']:.3f}-{s['acc_heldout_max']:.3f})  "
                     f"{s['acc_trained']:>11.3f}  {s['acc_heldout_majority']:>14.3f}")
    return "\n".join(lines)


def save(result: dict, out_dir: str | Path) -> None:
    """``inject.json`` (config, rows, summary, warnings) and ``inject.png``: held-out accuracy vs tokens."""
    from repetita.io import make_dir, save_figure, write_json
    from repetita.io import plt as pyplot

    path = make_dir(out_dir)
    write_json(path / "inject.json", result, indent=1)
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    lines = defaultdict(list)
    for s in result["summary"]:
        lines[(s["condition"], s["k"])].append(s)
    for (cond, k), ss in lines.items():
        ss = sorted(ss, key=lambda s: s["tokens"])
        x = [s["tokens"] for s in ss]
        y = [s["acc_heldout"] for s in ss]
        err = [[s["acc_heldout"] - s["acc_heldout_min"] for s in ss], [s["acc_heldout_max"] - s["acc_heldout"] for s in ss]]
        ax.errorbar(x, y, yerr=err, marker="o", capsize=3, label=cond if k == 1 else f"{cond} K={k}")
    floor = np.mean([s["acc_heldout_majority"] for s in result["summary"]])
    ax.axhline(floor, color="grey", ls=":", label="majority guess")
    ax.set_xscale("log")
    ax.set_xlabel("training tokens (documents + QA)")
    ax.set_ylabel("held-out QA exact match")
    ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, path / "inject.png", dpi=120)
