"""The ``repetita`` command: a thin map from subcommands to library functions.

Each command module exposes ``register(subparsers)``; it adds its parsers and sets ``func`` to a
function taking the parsed namespace and returning a JSON-able dict (or None). This file owns the
shared contract: ``--json`` prints exactly one JSON object on stdout, and a ``UserError`` becomes a
single line on stderr with exit code 2.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import sys

from repetita.errors import UserError
from repetita.io import dumps

# Command modules, imported at start-up; they must keep their own heavy imports inside functions.
COMMAND_MODULES = [
    "repetita.laws.cli",
    "repetita.decide.cli_plan",
    "repetita.laws.cli_reuse",
    "repetita.decide.cli_suggest",
    "repetita.decide.cli_backtest",
    "repetita.theory.cli",
    "repetita.lm.cli",
    "repetita.lm.cli_corpus",
    "repetita.sft.cli",
    "repetita.data_mix.cli",
    "repetita.data_mix.cli_inject",
    "repetita.study.cli",
    "repetita.demo",
]
# Optional heavy stacks and the extra that installs each (pyproject's optional-dependencies).
# Commands whose work is small dense algebra (fits, plans, reuse tables): run on one BLAS thread, so
# that they stay fast beside a training job and give the same digits on any core count (blas.py).
ONE_BLAS_THREAD = {"fit", "laws", "plan", "predict", "reuse", "report"}


def extras() -> dict[str, str]:
    """Top-level module -> the optional extra that installs it, read from the installed package's metadata
    (pyproject's [project.optional-dependencies], the one place they are listed; the dev tools left out)."""
    import re
    from importlib.metadata import PackageNotFoundError, requires

    try:
        reqs = requires("repetita") or []
    except PackageNotFoundError:  # a source tree that was never installed: no names to suggest
        return {}
    out = {}
    for req in reqs:
        extra = re.search(r"""extra\s*==\s*["']([^"']+)["']""", req)
        if extra and extra.group(1) != "dev":
            out[re.match(r"[A-Za-z0-9_.-]+", req).group(0).lower().replace("-", "_")] = extra.group(1)
    return out


class _Parser(argparse.ArgumentParser):
    """argparse prints usage plus a message; the contract is one line and exit code 2."""

    def error(self, message: str):  # noqa: D401 - argparse API
        name = self.prog.split(" ", 1)[1] if " " in self.prog else None
        _fail(name, message, "--json" in sys.argv[1:])
        sys.exit(2)


def _fail(command: str | None, message: str, as_json: bool) -> int:
    """The one error contract: one line on stderr, and with --json also one JSON object on stdout."""
    sys.stderr.write(f"repetita{' ' + command if command else ''}: error: {message}\n")
    if as_json:
        sys.stdout.write(dumps({"error": message, "exit": 2, "command": command}) + "\n")
    return 2


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="repetita", description=__doc__.splitlines()[0])
    from repetita import __version__

    parser.add_argument("--version", action="version", version=f"repetita {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            # A part not built in this checkout (its package or module is absent): skip it.
            if exc.name and name.startswith(exc.name):
                continue
            raise
        module.register(sub)
    return parser


@contextlib.contextmanager
def _numeric_warnings(command: str):
    """numpy's and scipy's RuntimeWarnings (an overflow in a start the search then drops, a NaN in a column
    that has no value for this law) never reach the user raw: each distinct one becomes one line of ours."""
    import warnings

    from repetita.errors import Note

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RuntimeWarning)
        warnings.simplefilter("always", Note)
        try:
            yield
        finally:
            seen: dict[str, int] = {}
            notes: list[str] = []
            for w in caught:
                if issubclass(w.category, RuntimeWarning):
                    seen[str(w.message)] = seen.get(str(w.message), 0) + 1
                elif issubclass(w.category, Note):
                    if str(w.message) not in notes:
                        notes.append(str(w.message))
                else:
                    warnings.showwarning(w.message, w.category, w.filename, w.lineno)
            for msg in notes:
                sys.stderr.write(f"repetita {command}: note: {msg}\n")
            for msg, n in list(seen.items())[:3]:
                sys.stderr.write(f"repetita {command}: note: numerical: {msg} ({n}x) inside the computation; "
                                 "such values are dropped or flagged, and every number reported is finite or "
                                 "marked\n")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    args, extra = parser.parse_known_args(argv)
    as_json = bool(getattr(args, "json", False))
    if extra:  # argparse would blame the top-level parser ("repetita repetita"): name the command
        return _fail(args.command, f"unrecognized arguments: {' '.join(extra)}", as_json)
    try:
        with _numeric_warnings(args.command):
            if args.command in ONE_BLAS_THREAD:
                from repetita.blas import one_blas_thread

                with one_blas_thread():
                    result = args.func(args)
            else:
                result = args.func(args)
    except UserError as exc:
        return _fail(args.command, str(exc), as_json)
    except ModuleNotFoundError as exc:
        top = (exc.name or "").split(".")[0]
        known = extras()
        if top not in known:
            raise
        return _fail(args.command, f"this command needs {top}, which is not installed: "
                     f"pip install 'repetita[{known[top]}]'", as_json)
    except KeyboardInterrupt:
        sys.stderr.write(f"repetita {args.command}: interrupted\n")
        return 130
    if getattr(args, "json", False) and result is not None:
        sys.stdout.write(dumps(result) + "\n")
    # a command that finished but not wholly (a study with failed runs) says so in its exit code
    return int(result.get("exit_code", 0)) if isinstance(result, dict) else 0


if __name__ == "__main__":
    sys.exit(main())
