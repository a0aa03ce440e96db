"""``repetita corpus prepare``: tokenize a corpus once into nested unique-token budgets (``lm/prepare.py``)."""

from __future__ import annotations

from repetita.cliargs import SEED


def cmd_prepare(args) -> dict:
    from repetita.cliargs import number_list
    from repetita.lm.prepare import PrepareConfig, prepare

    budgets = tuple(int(b) for b in number_list(args.budgets, "--budgets", positive=True)) if args.budgets else ()
    cfg = PrepareConfig(inputs=tuple(args.inputs), tokenizer=args.tokenizer, out=args.out, budgets=budgets,
                        val_docs=args.val_docs, seed=args.seed)
    m = prepare(cfg)
    if not args.json:
        print(f"{m['out']}: {m['tokens']['train']:,} training tokens in {m['documents']['train']:,} documents, "
              f"{m['tokens']['val']:,} validation tokens in {m['documents']['val']:,} held-out documents "
              f"({m['dtype']}, vocabulary {m['vocab_size']:,})")
        for b in m["budgets"].values():
            print(f"  U = {b['tokens']:,}: the first {b['tokens']:,} tokens of train.bin ({b['documents']:,} documents)")
        print(f"train with: repetita train --corpus prepared:{m['out']} --unique-tokens U ...; or read "
              "np.memmap('train.bin', dtype, mode='r')[:U] in your own script")
    return m


def register(sub) -> None:
    c = sub.add_parser("corpus", help="prepare a real corpus: tokenized once, nested unique-token budgets")
    csub = c.add_subparsers(dest="corpus_command", metavar="ACTION", required=True)
    p = csub.add_parser(
        "prepare",
        help="tokenize documents into train.bin / val.bin (memory maps) with a manifest",
        description="Example: repetita corpus prepare docs.jsonl --tokenizer ./gpt2 --out corpus "
        "--budgets 1e7,1e8,1e9. Inputs: .jsonl (text field), .txt files or folders, .parquet (text column), "
        "or a datasets folder saved with save_to_disk. Budget U is the first U tokens of train.bin.",
    )
    p.add_argument("inputs", nargs="+", help="documents: .jsonl, .txt (or a folder of them), .parquet, datasets folder")
    p.add_argument("--tokenizer", required=True, help="a local tokenizer.json, or a folder holding one")
    p.add_argument("--out", required=True, help="output folder (must not exist or be empty)")
    p.add_argument("--budgets", help="unique-token budgets to record, e.g. 1e7,1e8 (checked against the corpus)")
    p.add_argument("--val-docs", type=int, default=100, help="documents held out for validation (default 100)")
    p.add_argument("--seed", type=SEED, default=0, help="document shuffle seed (default 0)")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.set_defaults(func=cmd_prepare)
