"""The ``command`` recipe: a study whose runs are the user's own training command.

```toml
[base]
corpus = "prepared:data/shakespeare"   # a folder written by `repetita corpus prepare` (optional)
lr = 3e-4                              # any other key is a template field

[[models]]
params = 2.1e6                         # N, required: the laws need it
n_layer = 2

[grid]
unique_tokens = [65536, 262144]
epochs = [1, 4]

[recipes.command]
command = "python train.py --data {corpus_path} --unique-tokens {unique_tokens} --epochs {epochs} --n-layer {n_layer} --seed {seed} --out {run_dir}"
result = {kind = "json", path = "result.json", key = "eval_loss"}
timeout = 3600                          # seconds; a run past it is killed and marked failed
resources = {gpus = 1, cpus = 4}        # passed to Ray; the local pool gives each GPU run a device
fields = {warmup = [0, 100]}            # more template fields; a list expands the grid
label = "standard"                      # the recipe the runs are fitted and reported as
```

Fields: every key of ``[base]`` and of each ``[[models]]`` table, the ``fields`` table, and ``params``,
``unique_tokens``, ``epochs``, ``tokens`` (U x epochs), ``seed``, ``run_dir``; with a prepared corpus also
``corpus_path`` (its ``train.bin``: budget U is its first U tokens, one file for every budget),
``val_path``, ``dtype`` and ``vocab_size``. The command is split like a shell line first, then each field
is put into the argument it sits in: a value is always one argument, whatever spaces, quotes or ``;`` it
holds, and no shell ever reads it. Every field is also in the command's environment as ``REPETITA_<NAME>``
(``REPETITA_PARAMS``, ``REPETITA_RUN_DIR``, ...): a command that needs a shell (a pipe, ``tee``) names
them there, ``bash -c 'python train.py --out "$REPETITA_RUN_DIR" | tee "$REPETITA_RUN_DIR/log.txt"'``,
and a ``{field}`` inside such a ``-c`` script is refused (the shell would read its value as code). The
command runs in the directory ``repetita run`` started in, under a guard (``repetita.study.guard``) that
kills everything it started when it ends, times out or loses its worker.

A run's id is the hash of its resolved command (``{run_dir}`` left as written), its fields, the result
spec and the corpus digest: a rerun finds finished runs, and a changed command or corpus is a new run.
Its folder keeps ``stdout.log``, ``stderr.log`` and ``command.json`` (the command, exit code, seconds).
A non-zero exit, a timeout, a missing result, and a loss that is not a positive finite number each mark
the run failed (diverged for a non-finite loss) with one line; the study goes on, and ``--retry-failed``
runs them again. The result path must stay inside the run folder (``..`` and symlinks out are refused).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
import re
import shlex
import shutil
import signal
import string
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import ClassVar

from repetita.errors import UserError, require
from repetita.io import inside
from repetita.laws.curves import READERS, read_curves
from repetita.recipe_registry import Recipe, register
from repetita.study.kinds import RunKind, register_kind

RESOURCES = ("cpus", "gpus", "custom")
BUILTIN_FIELDS = ("params", "unique_tokens", "epochs", "tokens", "seed", "run_dir", "python")
CORPUS_FIELDS = ("corpus_path", "val_path", "dtype", "vocab_size")
KEYS = frozenset({"command", "result", "timeout", "resources", "fields", "label", "epochs", "unique_tokens"})
TAIL_LINES = 5  # lines of stderr kept in a failed run's message


@dataclass(frozen=True)
class ResultSpec:
    """Where a command run leaves its loss: ``path`` (relative to the run folder) as ``kind``.

    ``json``: a JSON object, ``key`` the final loss (dots walk into nested objects; default ``eval_loss``),
    and an optional list of evaluations under ``curve`` ({step, tokens, loss}). ``tidy`` (a table) and every
    curve format registered in ``repetita.laws.curves.READERS`` (the readers of ``repetita fit --curves`` and
    ``reuse``) go through ``read_curves``: ``key`` is the scalar tag, the last
    evaluation is the final loss and the rest is the curve.
    """

    kind: str = "json"
    path: str = "result.json"
    key: str | None = None

    def __post_init__(self):
        kinds = ("json", "tidy", *READERS)  # a JSON file, a table, or any registered curve format
        require(self.kind in kinds, f"[recipes.command] result kind {self.kind!r}: use one of {', '.join(kinds)}")
        require(isinstance(self.path, str) and self.path and inside(None, self.path),
                f"[recipes.command] result path {self.path!r}: give a path inside the run folder (no absolute "
                "path, no '..' out of it)")
        require(self.key is None or (isinstance(self.key, str) and self.key),
                f"[recipes.command] result key {self.key!r} must be a non-empty string")

    @classmethod
    def parse(cls, table) -> ResultSpec:
        require(isinstance(table, dict), "[recipes.command] result must be a table, e.g. "
                "{kind = \"json\", path = \"result.json\", key = \"eval_loss\"}")
        unknown = sorted(set(table) - {"kind", "path", "key", "tag"})
        require(not unknown, f"[recipes.command] result: unknown key(s) {', '.join(unknown)}; use kind, path, key")
        return cls(table.get("kind", "json"), table.get("path", "result.json"), table.get("key", table.get("tag")))


def _value(v):
    """A field value as the template sees it: integral floats as integers (2e6 -> 2000000)."""
    if isinstance(v, float) and v.is_integer() and abs(v) < 2**63:
        return int(v)
    return v


def _shell(v) -> str:
    return shlex.quote(v) if isinstance(v, str) else str(v)


def split_template(template: str) -> list[str]:
    """The command template split like a shell line, before any field is put in (one line if unbalanced)."""
    try:
        tokens = shlex.split(template)
    except ValueError as exc:
        raise UserError(f"[recipes.command] command: {exc} (quotes must be balanced)") from None
    require(tokens, "[recipes.command] command is empty")
    return tokens


# Programs whose -c (shells, python) or -e (perl, ruby, node) argument is code: a field there would be
# read as code, so such a template is refused and the environment form is suggested.
_SCRIPT_FLAG = {"sh": "c", "bash": "c", "zsh": "c", "dash": "c", "ksh": "c", "ash": "c", "fish": "c",
                "csh": "c", "tcsh": "c", "python": "c", "python3": "c", "{python}": "c", "perl": "e",
                "ruby": "e", "node": "e"}


def env_name(field: str) -> str:
    return "REPETITA_" + re.sub(r"\W", "_", field.upper())


def _check_env_names(fields) -> None:
    seen: dict[str, str] = {}
    for key in fields:
        other = seen.setdefault(env_name(key), key)
        require(other == key, f"[recipes.command] fields {other} and {key} would share the environment variable "
                f"{env_name(key)}; rename one")


def check_no_field_in_script(tokens: list[str]) -> None:
    """Refuse ``bash -c '... {field} ...'``: the value would reach the shell unquoted (injection, and a
    value with spaces cut to its first word)."""
    flag = None
    script_next = False
    for tok in tokens:
        if script_next and not tok.startswith("-"):
            fields = _template_fields(tok)
            if fields:
                name = fields[0]
                raise UserError(
                    f"[recipes.command] command: {{{name}}} sits inside a -{flag} script, where the shell or "
                    f"interpreter would read its value as code; write \"${env_name(name)}\" there instead (every "
                    f"field is in the command's environment), e.g. bash -c 'python train.py --out "
                    f"\"$REPETITA_RUN_DIR\"'")
            script_next = False
            continue
        name = tok if tok == "{python}" else os.path.basename(tok)
        base = name.rstrip("0123456789.") if name.startswith("python") else name
        if base in _SCRIPT_FLAG:
            flag = _SCRIPT_FLAG[base]
        elif flag and tok.startswith("-") and not tok.startswith("--") and flag in tok[1:]:
            script_next = True


@dataclass(frozen=True)
class CommandRun:
    """One run of the command recipe: everything that determines it (JSON round-trippable, hashed)."""

    template: str
    fields: tuple  # ((name, value), ...) sorted by name: the template's fields except run_dir
    result: ResultSpec
    corpus_digest: str = ""
    timeout: float | None = None
    resources: tuple = ()  # ((name, amount), ...); custom Ray resources as ("custom:NAME", amount)
    cwd: str = "."  # bookkeeping: where the command runs (not in the id)
    label: str = "standard"  # the recipe label of its tidy row
    recipe: str = "command"
    kind: ClassVar[str] = "command"  # the kind of study run (repetita.study.kinds)

    @property
    def values(self) -> dict:
        return dict(self.fields)

    def _values(self, folder: str | Path) -> dict[str, str]:
        return {k: str(v) for k, v in self.fields} | {"run_dir": str(folder)}

    def argv(self, folder: str | Path) -> list[str]:
        """The command's arguments: the template split first, then each field put into its argument (a value
        is never split or read by a shell, whatever it holds)."""
        values = self._values(folder)
        return [tok.format(**values) for tok in split_template(self.template)]

    def env(self, folder: str | Path) -> dict[str, str]:
        """Every field as ``REPETITA_<NAME>``: what a ``bash -c`` script uses, quoted by the shell itself."""
        return {env_name(k): v for k, v in self._values(folder).items()}

    def _identity(self) -> str:
        # the id's command text (unchanged since ids were introduced, so studies keep their finished runs)
        return self.template.format(**{k: _shell(v) for k, v in self.fields}, run_dir=_shell("{run_dir}"))

    @property
    def hash(self) -> str:
        d = {"command": self._identity(), "fields": [list(f) for f in self.fields],
             "result": asdict(self.result), "corpus": self.corpus_digest}
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]

    def resource_request(self) -> dict:
        r = dict(self.resources)
        return {"cpus": float(r.get("cpus", 1)), "gpus": float(r.get("gpus", 0)),
                "custom": {k.split(":", 1)[1]: float(v) for k, v in r.items() if k.startswith("custom:")}}

    def to_dict(self) -> dict:
        return {"kind": self.kind, "template": self.template, "fields": [list(f) for f in self.fields],
                "result": asdict(self.result), "corpus_digest": self.corpus_digest, "timeout": self.timeout,
                "resources": [list(r) for r in self.resources], "cwd": self.cwd, "label": self.label,
                "recipe": self.recipe}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> CommandRun:
        d = json.loads(text)
        d.pop("kind", None)
        d["fields"] = tuple(tuple(f) for f in d["fields"])
        d["resources"] = tuple(tuple(r) for r in d.get("resources", ()))
        d["result"] = ResultSpec(**d["result"])
        return cls(**d)


# --- the spec side: [recipes.command] -> CommandRun cells ------------------------------------------------


def _template_fields(template: str) -> list[str]:
    try:
        names = [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    except ValueError as exc:
        raise UserError(f"[recipes.command] command: malformed template ({exc})") from None
    for name in names:
        require(name.isidentifier(), f"[recipes.command] command: {{{name}}} is not a field name (write a literal "
                "brace as {{ or }})")
    return names


def _resources(table) -> tuple:
    if table is None:
        return ()
    require(isinstance(table, dict), "[recipes.command] resources must be a table, e.g. {gpus = 1, cpus = 4}")
    unknown = sorted(set(table) - set(RESOURCES))
    require(not unknown, f"[recipes.command] resources: unknown resource name(s) {', '.join(unknown)}; use cpus, "
            "gpus, or custom = {NAME = amount} for a Ray cluster's own resources")
    out = []
    for name in ("cpus", "gpus"):
        if name in table:
            v = table[name]
            require(isinstance(v, int | float) and not isinstance(v, bool) and v >= 0 and math.isfinite(v),
                    f"[recipes.command] resources.{name} = {v!r} must be a number >= 0")
            out.append((name, float(v)))
    custom = table.get("custom", {})
    require(isinstance(custom, dict), "[recipes.command] resources.custom must be a table {NAME = amount}")
    for name, v in sorted(custom.items()):
        require(isinstance(v, int | float) and not isinstance(v, bool) and v > 0,
                f"[recipes.command] resources.custom.{name} = {v!r} must be a number > 0")
        out.append((f"custom:{name}", float(v)))
    return tuple(out)


def corpus_fields(spec: str | None) -> tuple[dict, str, int | None]:
    """(template fields, digest, training tokens) of ``[base] corpus``: a prepared folder or none."""
    if spec is None:
        return {}, "", None
    require(isinstance(spec, str), "[base] corpus must be a string")
    from repetita.lm.prepare import read_manifest

    folder = Path(spec.removeprefix("prepared:")).expanduser().resolve()
    m = read_manifest(folder)
    digest = hashlib.sha256((folder / "manifest.json").read_bytes()).hexdigest()[:16]
    fields = {"corpus_path": str(folder / m["files"]["train"]), "val_path": str(folder / m["files"]["val"]),
              "dtype": m["dtype"], "vocab_size": int(m["vocab_size"])}
    return fields, digest, int(m["tokens"]["train"])


def check_command(argv0: str, cwd: str) -> None:
    """The program must exist before any run is queued (a typo would otherwise fail every run)."""
    if "/" in argv0:
        p = Path(cwd) / Path(argv0).expanduser()
        require(p.is_file() and os.access(p, os.X_OK), f"[recipes.command] command {argv0!r}: no such executable")
    else:
        require(shutil.which(argv0) is not None, f"[recipes.command] command {argv0!r}: not found on PATH")


def cells(table: dict, grid) -> list[CommandRun]:
    """Every (model, U, epochs, seed, listed field values) of the spec: one CommandRun each."""
    from repetita import recipe_registry

    require(isinstance(table.get("command"), str) and table["command"].strip(),
            "[recipes.command] needs command = \"...\", the training command with {fields}")
    template = table["command"]
    used = _template_fields(template)
    tokens = split_template(template)
    for tok in tokens:
        _template_fields(tok)  # a brace pair cut by the split (a field across two arguments) is one line
    check_no_field_in_script(tokens)
    result = ResultSpec.parse(table.get("result", {}))
    timeout = table.get("timeout")
    # a year bounds it: the waits below take seconds as a C double and overflow far beyond that
    require(timeout is None or (isinstance(timeout, int | float) and not isinstance(timeout, bool)
                                and 0 < timeout <= 3.2e7),
            f"[recipes.command] timeout = {timeout!r} must be a number of seconds > 0 and at most a year (3.2e7)")
    resources = _resources(table.get("resources"))
    label = table.get("label", "standard")
    require(isinstance(label, str), "[recipes.command] label must be a recipe name")
    recipe_registry.get(label, "[recipes.command] label")
    extra = table.get("fields", {})
    require(isinstance(extra, dict), "[recipes.command] fields must be a table {NAME = value or [values]}")
    base = dict(grid.base)
    corpus, digest, available = corpus_fields(base.pop("corpus", None))
    clash = sorted(set(extra) & (set(base) | set(BUILTIN_FIELDS) | set(CORPUS_FIELDS)))
    require(not clash, f"[recipes.command] fields: {', '.join(clash)} is already a field ([base] or built in)")
    names = sorted(extra)
    choices = [v if isinstance(v, list) else [v] for v in (extra[n] for n in names)]
    for n, vs in zip(names, choices, strict=True):
        require(vs and all(isinstance(v, str | int | float) and not isinstance(v, bool) for v in vs),
                f"[recipes.command] fields.{n}: give a string, a number or a non-empty list of them")
    cwd = os.getcwd()
    out = []
    for model, u, seed in grid.where(table):
        require("params" in model, "[[models]]: each model table needs params (its parameter count N, for the laws)")
        n = model["params"]
        require(isinstance(n, int | float) and not isinstance(n, bool) and n > 0 and math.isfinite(n),
                f"[[models]] params = {n!r} must be a positive number")
        if available is not None:
            require(u <= available, f"unique_tokens={u:,} exceeds the prepared corpus: it has {available:,} "
                    "training tokens; prepare a larger one or lower the budget")
        for k, combo in itertools.product(grid.epochs(table), itertools.product(*choices)):
            values = {"python": sys.executable} | base | model | corpus | dict(zip(names, combo, strict=True)) | {
                "params": n, "unique_tokens": u, "epochs": k, "tokens": u * k, "seed": seed}
            missing = [f for f in used if f not in values and f != "run_dir"]
            if missing:
                raise UserError(f"[recipes.command] command: field {{{missing[0]}}} does not exist; fields: "
                                + ", ".join(sorted(set(values) | {"run_dir"})))
            for key, v in values.items():
                require(not isinstance(v, str) or "\0" not in v, f"field {key}: a NUL byte cannot be passed "
                        "to a command")
            _check_env_names([*values, "run_dir"])
            fields = tuple(sorted((key, _value(v)) for key, v in values.items()))
            out.append(CommandRun(template, fields, result, digest, float(timeout) if timeout else None, resources,
                                  cwd, label))
    if out:
        argv = out[0].argv("run_dir")
        require(argv, "[recipes.command] command is empty")
        check_command(argv[0], cwd)
    return out


def run(cell: CommandRun, measure) -> dict:
    """The recipe's run function: one command run per cell (its loss, or the failure marker)."""
    r = measure([cell])[0]
    return {"best": {"run_id": cell.hash, "val_loss": r.get("val_loss"), "params": cell.values["params"],
                     "unique_tokens": cell.values["unique_tokens"], "epochs": cell.values["epochs"],
                     "failed": r.get("failed")}}


# --- the worker side: run it, read it back -----------------------------------------------------------------


def _tail(path: Path) -> str:
    try:
        lines = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(lines[-TAIL_LINES:])


GUARD = Path(__file__).with_name("guard.py")
GUARD_LOCK = ".guard.lock"


def _stop_guard(proc: subprocess.Popen) -> int:
    """Tell a guard to stop (it kills everything of its run) and wait until it has."""
    try:
        proc.send_signal(signal.SIGTERM)
    except ProcessLookupError:
        pass
    return proc.wait()


BEAT_EVERY = 10.0  # seconds between calls of ``beat`` while a command runs


def _wait(proc: subprocess.Popen, timeout: float | None, beat) -> int:
    """The command's exit code; ``beat()`` every BEAT_EVERY seconds meanwhile (a run in the driver's own
    process keeps its heartbeat fresh this way). TimeoutExpired past ``timeout``."""
    if beat is None:
        return proc.wait(timeout=timeout)
    end = None if timeout is None else time.time() + timeout
    while True:
        left = None if end is None else end - time.time()
        try:
            return proc.wait(timeout=BEAT_EVERY if left is None else max(0.0, min(BEAT_EVERY, left)))
        except subprocess.TimeoutExpired:
            if left is not None and left <= BEAT_EVERY:
                raise
            beat()


def execute(run: CommandRun, folder: Path, gpu_ids=None, beat=None) -> tuple[str, dict]:
    """Run the command in its folder; (status, payload) as ``repetita.study.runners.work`` returns it.

    The command runs under ``repetita.study.guard``: nothing it starts outlives its end, its timeout, or
    the death of this worker (kill -9 of the study)."""
    folder.mkdir(parents=True, exist_ok=True)
    argv = run.argv(folder)
    result_path = folder / run.result.path
    if not inside(folder, run.result.path):  # a symlink in the run folder pointing out of it
        return "failed", {"error": f"result path {run.result.path!r} leads out of the run folder; refused"}
    env = dict(os.environ) | run.env(folder)
    if gpu_ids is not None:
        env["CUDA_VISIBLE_DEVICES"] = ",".join(gpu_ids)
    result_path.unlink(missing_ok=True)  # a stale result from a killed attempt is not this one's
    t0 = time.time()
    timed_out = False
    guard = [sys.executable, "-I", str(GUARD), str(os.getpid()), str(folder / GUARD_LOCK), "--", *argv]
    with open(folder / "stdout.log", "wb") as out, open(folder / "stderr.log", "wb") as err:
        # its own session: kill -9 of the study's process group leaves the guard to reap the command
        proc = subprocess.Popen(guard, cwd=run.cwd, env=env, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                start_new_session=True)
        try:
            code = _wait(proc, run.timeout, beat)
        except subprocess.TimeoutExpired:
            code, timed_out = _stop_guard(proc), True
        finally:
            if proc.poll() is None:  # Ctrl-C or an error here: the command must not outlive this worker
                _stop_guard(proc)
    seconds = time.time() - t0
    (folder / "command.json").write_text(json.dumps({"command": shlex.join(argv), "exit_code": code,
                                                     "timed_out": timed_out, "seconds": seconds}, indent=1))
    if timed_out:
        return "failed", {"error": f"timed out after {run.timeout:g} s (killed); stderr: {_tail(folder / 'stderr.log')}"}
    if code != 0:
        return "failed", {"error": f"exit code {code}; stderr: {_tail(folder / 'stderr.log')}"}
    try:
        loss, history = read_result(run.result, folder)
    except UserError as exc:
        return "failed", {"error": str(exc)}
    if not math.isfinite(loss):
        return "diverged", {"error": f"{run.result.path}: the final loss is {loss}"}
    if loss <= 0:  # a loss is a cross-entropy: 0 or below is a broken result, not a record
        return "failed", {"error": f"{run.result.path}: the final loss is {loss:g}; a loss must be a positive "
                          "number (is this an accuracy or a log-likelihood?)"}
    v = run.values
    n, u, k = float(v["params"]), float(v["unique_tokens"]), float(v["epochs"])
    row = {"params": n, "tokens": u * k, "unique_tokens": u, "epochs": k, "loss": loss, "recipe": run.label,
           "seed": int(v["seed"]), "run_id": run.hash, "corpus": run.corpus_digest or None}
    result = {"val_loss": loss, "params": n, "unique_tokens": u, "epochs": k, "tokens": u * k, "history": history,
              "rows": [row], "config_hash": run.hash, "exit_code": code, "seconds": seconds}
    return "done", {"result": result}


def _number(v) -> float | None:
    """A JSON value as a number, or None (a curve entry of the wrong type is skipped, never a crash)."""
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


def _walk(obj, key: str):
    for part in key.split("."):
        if not isinstance(obj, dict) or part not in obj:
            return None
        obj = obj[part]
    return obj


def read_result(spec: ResultSpec, folder: Path) -> tuple[float, list[dict]]:
    """(final loss, curve) from a finished run's folder; a missing file or key is one line."""
    path = folder / spec.path
    require(inside(folder, spec.path), f"result path {spec.path!r} leads out of the run folder; refused")
    require(path.is_file(), f"no result file {spec.path} in the run folder (the command exited 0 without writing it)")
    if spec.kind == "json":
        try:
            data = json.loads(path.read_bytes())
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
            raise UserError(f"{spec.path}: not valid JSON ({exc})") from None
        key = spec.key or "eval_loss"
        value = _walk(data, key)
        require(value is not None, f"{spec.path}: no key {key!r}" + (
            f" (keys: {', '.join(list(data)[:10])})" if isinstance(data, dict) else ""))
        require(isinstance(value, int | float) and not isinstance(value, bool), f"{spec.path}: {key} = {value!r} "
                "is not a number")
        curve = data.get("curve", []) if isinstance(data, dict) else []
        history = [{"step": int(c.get("step", i)), "epoch": _number(c.get("epoch")), "val_loss": float(c["loss"]),
                    "tokens": _number(c.get("tokens"))}
                   for i, c in enumerate(curve if isinstance(curve, list) else [])
                   if isinstance(c, dict) and _number(c.get("loss")) is not None
                   and _number(c.get("step", i)) is not None and math.isfinite(float(c.get("step", i)))]
        return float(value), history
    curves = read_curves(path, tag=spec.key, kind=spec.kind)  # the format the spec names, not detected again
    axis = "step" if "step" in curves.columns else "tokens"
    curves = curves.sort_values(axis)
    history = [{"step": int(r.get("step", i)), "val_loss": float(r["loss"])}
               for i, r in enumerate(curves.to_dict("records"))]
    return float(curves["loss"].iloc[-1]), history


register(Recipe("command", run, cells, KEYS, "your own training command, run per (model, U, epochs, seed)"))


def _execute_kind(config: CommandRun, folder: Path, *, study_dir: str, gpu_ids=None, beat=None, threads: int = 1):
    return execute(config, folder, gpu_ids=gpu_ids, beat=beat)


register_kind(RunKind("command", CommandRun.from_json, CommandRun.resource_request, _execute_kind))
