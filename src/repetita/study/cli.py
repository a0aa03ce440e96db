"""``repetita run``, ``repetita report``, ``repetita status``, ``repetita export``: thin wrappers."""

from __future__ import annotations

from pathlib import Path


def _default_dir(spec: str) -> str:
    return str(Path("out") / Path(spec.removeprefix("example:")).stem)


def cmd_run(args) -> dict:
    from repetita.study.driver import run_study

    result = run_study(
        args.spec,
        args.dir or _default_dir(args.spec),
        workers=args.workers,
        ray=args.ray is not None,
        ray_address=args.ray or None,
        retry_failed=args.retry_failed,
        progress=not args.json,
        add=args.add,
        runner=args.runner,
    )
    c = result["counts"]
    if not args.json:
        print(f"study {result['study_dir']}: {result['runs']} runs ({result['new_runs']} new); "
              + ", ".join(f"{k} {v}" for k, v in c.items()))
        if result["blocked"]:
            print(f"{len(result['blocked'])} runs wait on a failed teacher; see repetita status")
        if result["tidy"]:
            print(f"tidy table: {result['tidy']}")
    if c["failed"]:
        import sys

        sys.stderr.write(f"repetita run: {c['failed']} run(s) failed; see repetita status {result['study_dir']}, "
                         "then repetita run --retry-failed\n")
    return result


def cmd_report(args) -> dict:
    from repetita.study.report import build_report, terminal_text

    summary = build_report(args.dir)
    if not args.json:
        print(terminal_text(summary))
    return summary


def cmd_status(args) -> dict:
    from repetita.study.driver import study_status

    status = study_status(args.dir)
    if not args.json:
        print(", ".join(f"{k} {v}" for k, v in status["counts"].items()))
        if status["abandoned"]:
            print(f"  {len(status['abandoned'])} run(s) marked running have no live worker (killed?); "
                  "the next repetita run resumes them from their checkpoints")
        for f in status["failed"]:
            print(f"  {f['id']} {f['recipe']} {f['status']}: {f['error']}")
    return status


def cmd_export(args) -> dict:
    from repetita.io import check_file
    from repetita.study.driver import check_study_dir
    from repetita.study.store import Store

    check_study_dir(Path(args.dir), creating=False)
    check_file(args.out, "export", suffixes=(".csv", ".parquet"))
    store = Store.of_study(args.dir, verify=True, readonly=True)
    try:
        path = store.export(args.out)
        n = len(store.tidy())
    finally:
        store.close()
    if not args.json:
        print(f"wrote {n} rows to {path}")
    return {"out": str(path), "rows": n}


def register(sub) -> None:
    p = sub.add_parser(
        "run",
        help="run (or resume) a study described by a TOML spec",
        description="Example: repetita run examples/tiny.toml --dir out/tiny --workers 2. Re-running skips finished "
        "runs and resumes interrupted ones from their checkpoints. A spec with [recipes.command] runs your own "
        "training command per grid point (repetita run examples/hf_trainer/study.toml; docs/study.md).",
    )
    p.add_argument("spec", help="study spec (TOML); see examples/")
    p.add_argument("--dir", help="study directory (default out/<spec name>)")
    p.add_argument("--workers", type=int, default=1, help="parallel runs (processes or Ray tasks)")
    p.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                   help="run on Ray: a cluster address, or no value to start a local Ray")
    p.add_argument("--runner", help="where runs execute: a registered runner (local, ray, or a plug-in's; "
                   "default local, or ray with --ray)")
    p.add_argument("--retry-failed", action="store_true", help="queue failed runs again")
    p.add_argument("--add", action="store_true",
                   help="add this spec's runs to a study made from another spec (its spec.toml is kept; the added "
                   "spec is saved under added/)")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.set_defaults(func=cmd_run)

    r = sub.add_parser("report", help="write report.html (figures, fitted laws) and report.json for a study")
    r.add_argument("dir", help="study directory")
    r.add_argument("--json", action="store_true")
    r.set_defaults(func=cmd_report)

    s = sub.add_parser("status", help="run counts and failures of a study")
    s.add_argument("dir", help="study directory")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_status)

    e = sub.add_parser("export", help="export the tidy results table (CSV or .parquet)")
    e.add_argument("dir", help="study directory")
    e.add_argument("out", help="output path (.csv or .parquet)")
    e.add_argument("--json", action="store_true")
    e.set_defaults(func=cmd_export)
