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
``val_path``, ``dtype`` and ``vocab_size``. Strings are shell-quoted; the command is split like a shell
line and run without a shell (``bash -c '...'`` for pipes), in the directory ``repetita run`` started in.

A run's id is the hash of its resolved command (``{run_dir}`` left as written), its fields, the result
spec and the corpus digest: a rerun finds finished runs, and a changed command or corpus is a new run.
Its folder keeps ``stdout.log``, ``stderr.log`` and ``command.json`` (the command, exit code, seconds).
A non-zero exit, a timeout, a missing result and a non-finite loss each mark the run failed (diverged
for a non-finite loss) with one line; the study goes on, and ``--retry-failed`` runs them again.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
import shlex
import shutil
import signal
import string
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from repetita.errors import UserError, require

KINDS = ("json", "tensorboard", "trainer_state", "wandb-history")
RESOURCES = ("cpus", "gpus", "custom")
BUILTIN_FIELDS = ("params", "unique_tokens", "epochs", "tokens", "seed", "run_dir", "python")
CORPUS_FIELDS = ("corpus_path", "val_path", "dtype", "vocab_size")
KEYS = frozenset({"command", "result", "timeout", "resources", "fields", "label", "epochs", "unique_tokens"})
TAIL_LINES = 5  # lines of stderr kept in a failed run's message


@dataclass(frozen=True)
class ResultSpec:
    """Where a command run leaves its loss: ``path`` (relative to the run folder) in one of ``KINDS``.

    ``json``: a JSON object, ``key`` the final loss (dots walk into nested objects; default ``eval_loss``),
    and an optional list of evaluations under ``curve`` ({step, tokens, loss}). The curve kinds go through
    ``repetita.laws.curves`` (the readers of ``repetita fit --curves``): ``key`` is the scalar tag, the last
    evaluation is the final loss and the rest is the curve.
    """

    kind: str = "json"
    path: str = "result.json"
    key: str | None = None

    def __post_init__(self):
        require(self.kind in KINDS, f"[recipes.command] result kind {self.kind!r}: use one of {', '.join(KINDS)}")
        require(isinstance(self.path, str) and self.path and not Path(self.path).is_absolute(),
                f"[recipes.command] result path {self.path!r}: give a path inside the run folder")
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
    kind = "command"

    @property
    def values(self) -> dict:
        return dict(self.fields)

    def command(self, folder: str | Path) -> str:
        return self.template.format(**{k: _shell(v) for k, v in self.fields}, run_dir=_shell(str(folder)))

    def argv(self, folder: str | Path) -> list[str]:
        return shlex.split(self.command(folder))

    @property
    def hash(self) -> str:
        d = {"command": self.command("{run_dir}"), "fields": [list(f) for f in self.fields],
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


def execute(run: CommandRun, folder: Path, gpu_ids=None) -> tuple[str, dict]:
    """Run the command in its folder; (status, payload) as ``repetita.study.runners.work`` returns it."""
    # the command gets SIGKILL when the worker that started it dies (kill -9 of the study), as workers do
    from repetita.study.runners import _die_with_parent

    folder.mkdir(parents=True, exist_ok=True)
    argv = run.argv(folder)
    env = dict(os.environ, REPETITA_RUN_DIR=str(folder))
    if gpu_ids is not None:
        env["CUDA_VISIBLE_DEVICES"] = ",".join(gpu_ids)
    (folder / run.result.path).unlink(missing_ok=True)  # a stale result from a killed attempt is not this one's
    t0 = time.time()
    timed_out = False
    with open(folder / "stdout.log", "wb") as out, open(folder / "stderr.log", "wb") as err:
        try:
            proc = subprocess.Popen(argv, cwd=run.cwd, env=env, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                    start_new_session=True, preexec_fn=_die_with_parent)
        except OSError as exc:
            return "failed", {"error": f"cannot start {argv[0]!r}: {exc.strerror or exc}"}
        try:
            code = proc.wait(timeout=run.timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # the whole process group: a launcher's children too
            code, timed_out = proc.wait(), True
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
    v = run.values
    n, u, k = float(v["params"]), float(v["unique_tokens"]), float(v["epochs"])
    row = {"params": n, "tokens": u * k, "unique_tokens": u, "epochs": k, "loss": loss, "recipe": run.label,
           "seed": int(v["seed"]), "run_id": run.hash, "corpus": run.corpus_digest or None}
    result = {"val_loss": loss, "params": n, "unique_tokens": u, "epochs": k, "tokens": u * k, "history": history,
              "rows": [row], "config_hash": run.hash, "exit_code": code, "seconds": seconds}
    return "done", {"result": result}


def _walk(obj, key: str):
    for part in key.split("."):
        if not isinstance(obj, dict) or part not in obj:
            return None
        obj = obj[part]
    return obj


def read_result(spec: ResultSpec, folder: Path) -> tuple[float, list[dict]]:
    """(final loss, curve) from a finished run's folder; a missing file or key is one line."""
    path = folder / spec.path
    require(path.exists(), f"no result file {spec.path} in the run folder (the command exited 0 without writing it)")
    if spec.kind == "json":
        try:
            data = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise UserError(f"{spec.path}: not valid JSON ({exc})") from None
        key = spec.key or "eval_loss"
        value = _walk(data, key)
        require(value is not None, f"{spec.path}: no key {key!r}" + (
            f" (keys: {', '.join(list(data)[:10])})" if isinstance(data, dict) else ""))
        require(isinstance(value, int | float) and not isinstance(value, bool), f"{spec.path}: {key} = {value!r} "
                "is not a number")
        curve = data.get("curve", []) if isinstance(data, dict) else []
        history = [{"step": int(c.get("step", i)), "epoch": c.get("epoch"), "val_loss": float(c["loss"]),
                    "tokens": c.get("tokens")}
                   for i, c in enumerate(curve if isinstance(curve, list) else []) if isinstance(c, dict) and "loss" in c]
        return float(value), history
    from repetita.laws.curves import read_curves

    curves = read_curves(path, tag=spec.key)
    axis = "step" if "step" in curves.columns else "tokens"
    curves = curves.sort_values(axis)
    history = [{"step": int(r.get("step", i)), "val_loss": float(r["loss"])}
               for i, r in enumerate(curves.to_dict("records"))]
    return float(curves["loss"].iloc[-1]), history


def _register() -> None:
    from repetita.recipe_registry import REGISTRY, Recipe, register

    if "command" not in REGISTRY:
        register(Recipe("command", run, cells, KEYS, "your own training command, run per (model, U, epochs, seed)"))


_register()
