"""``repetita inject``: rewrite or repeat, measured on the biography world or on one's own documents."""

from __future__ import annotations

from repetita.cliargs import number_list
from repetita.io import check_dir


def _config(args):
    from repetita.data_mix.inject import InjectConfig

    conditions = tuple(c.strip() for c in args.conditions.split(",") if c.strip())
    if args.rephrased and args.conditions == DEFAULT_CONDITIONS:
        conditions += ("rewrite-llm",)
    if args.docs and args.conditions == DEFAULT_CONDITIONS:
        conditions = tuple(c for c in conditions if c != "rewrite-template")
    rewrites = tuple(int(k) for k in number_list(args.rewrites, "--rewrites", whole=True))
    return InjectConfig(
        people=args.people, world_seed=args.world_seed, conditions=conditions, rewrites=rewrites,
        passes=tuple(number_list(args.passes, "--passes")), qa_passes=args.qa_passes,
        seeds=tuple(int(s) for s in number_list(args.seeds, "--seeds", whole=True)), n_layer=args.n_layer,
        n_head=args.n_head, d_model=args.d_model, context=args.context, batch=args.batch, lr=args.lr,
        threads=args.threads, device=args.device, docs=args.docs or "", qa=args.qa or "", rephrased=args.rephrased or "")


def cmd_inject(args) -> dict:
    if args.export:
        return _export(args)
    cfg = _config(args)
    inputs = [p for p in (cfg.docs, cfg.qa, cfg.rephrased) if p]
    if args.out:
        check_dir(args.out, "--out", inputs=inputs)
    from repetita.data_mix.inject import experiment, knowledge_set, save, table
    from repetita.lm.train import resolve_device

    resolve_device(cfg.device)  # a missing GPU is one line before anything is written
    knowledge_set(cfg)  # reads and validates every input file before any training
    result = experiment(cfg, args.out, log=None if args.json else print)
    if args.out:
        save(result, args.out)
    if not args.json:
        print(table(result))
        for w in result["warnings"]:
            print(f"warning: {w}")
    return result


def _export(args) -> dict:
    """Write the world's documents (``docs.jsonl``, the input of ``repetita rephrase``) and ``qa.jsonl``."""
    from repetita.data_mix.knowledge import synthetic
    from repetita.io import dumps, make_dir, write_text

    check_dir(args.export, "--export")
    ks = synthetic(args.people, 1, args.world_seed)
    path = make_dir(args.export, "--export")
    write_text(path / "docs.jsonl", "".join(dumps({"id": i, "text": t}) + "\n" for i, t in ks.docs.items()))
    write_text(path / "qa.jsonl", "".join(dumps({"doc": q.doc, "question": q.question, "answer": q.answer,
                                                 "attribute": q.attribute}) + "\n" for q in ks.qa))
    if not args.json:
        print(f"wrote {len(ks.docs)} documents and {len(ks.qa)} questions to {path}")
    return {"docs": str(path / "docs.jsonl"), "qa": str(path / "qa.jsonl"), "documents": len(ks.docs),
            "questions": len(ks.qa)}


DEFAULT_CONDITIONS = "repeat,rewrite-template,qa-mix"


def register(subparsers) -> None:
    p = subparsers.add_parser("inject", help="knowledge injection: rewrite vs repeat at an equal token budget")
    p.add_argument("--conditions", default=DEFAULT_CONDITIONS,
                   help="comma-separated: repeat, rewrite-template, rewrite-llm, qa-mix "
                        "(rewrite-llm is added when --rephrased is given)")
    p.add_argument("--rewrites", default="4", help="K, versions per document incl. the original (list = sweep)")
    p.add_argument("--passes", default="300", help="document budgets in passes over the originals (list)")
    p.add_argument("--qa-passes", type=float, default=100.0, help="QA budget in passes over the trained QA pairs")
    p.add_argument("--seeds", default="0,1", help="run seeds (split, order, init), comma-separated")
    p.add_argument("--people", type=int, default=100, help="synthetic individuals")
    p.add_argument("--world-seed", type=int, default=0, help="seed of the synthetic world")
    p.add_argument("--docs", help="your documents (JSONL: id, text) instead of the synthetic world")
    p.add_argument("--qa", help="QA pairs for --docs (JSONL: doc, question, answer)")
    p.add_argument("--rephrased", help="a repetita rephrase output: rewrites for the rewrite-llm condition")
    p.add_argument("--n-layer", type=int, default=2)
    p.add_argument("--n-head", type=int, default=4)
    p.add_argument("--d-model", type=int, default=128)
    p.add_argument("--context", type=int, default=64)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"], help="cuda: bf16 autocast")
    p.add_argument("--out", help="folder: inject.jsonl (rows as runs finish; resumable), inject.json, inject.png")
    p.add_argument("--export", help="write the synthetic world's docs.jsonl and qa.jsonl here and stop")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_inject)
