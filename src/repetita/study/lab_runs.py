"""The LM lab's runs as a kind of study run (``repetita.study.kinds``): a ``TrainConfig`` trained by
``repetita.lm.train`` in its run folder, resumable from its checkpoint, one CPU each."""

from __future__ import annotations

import time
from pathlib import Path

from repetita.errors import UserError, require
from repetita.study.kinds import RunKind, register_kind
from repetita.study.store import StudyGone, check_study_alive, store_path

HEARTBEAT_EVERY = 20  # training steps between checks that the study folder still exists


def _load(config_json: str):
    from repetita.lm.config import TrainConfig

    return TrainConfig.from_json(config_json)


def _dependencies(config) -> tuple[str, ...]:
    from repetita.lm.recipes import dependencies

    return dependencies(config)


def _resources(_config) -> dict:
    return {"cpus": 1, "gpus": 0, "custom": {}}


def check_budgets(configs) -> None:
    """Every unique-token budget fits its corpus's training pool, checked once per corpus before any run is
    queued (otherwise the runs that ask for too much fail one by one, minutes into the study)."""
    from repetita.lm.data import load_data

    largest: dict[tuple, int] = {}
    for c in configs:
        key = (c.corpus, c.tokenizer, c.context, c.val_fraction, c.split_seed)
        if c.unique_tokens is not None:
            largest[key] = max(largest.get(key, 0), int(c.unique_tokens))
    for (corpus, tokenizer, context, val_fraction, split_seed), u in largest.items():
        data = load_data(corpus, tokenizer, context, None, val_fraction=val_fraction, val_tokens=None,
                         split_seed=split_seed)
        pool = data.pool_windows * context
        require(u <= pool, f"unique_tokens={u} (a [grid] budget or a reference run) exceeds the training pool of "
                f"{corpus!r} ({pool} tokens at context {context}"
                + ("" if corpus.startswith("markov") else f", tokenizer {tokenizer}") + "); lower it or use a larger corpus")


def execute(config, folder: Path, *, study_dir: str, gpu_ids=None, beat=None, threads: int = 1) -> tuple[str, dict]:
    """Train one run of the lab in ``folder`` (resuming from its checkpoint); touches no store."""
    import torch

    def alive(step):
        check_study_alive(store_path(study_dir))
        if beat is not None:
            beat()

    # One thread per worker: fair sharing of cores, and float reductions in a fixed order (restored after, for
    # a run in the caller's own process).
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return _train_here(study_dir, config, folder, alive)
    finally:
        torch.set_num_threads(before)


def _train_here(study_dir: str, config, folder: Path, alive) -> tuple[str, dict]:
    from repetita.lm.train import DamagedCheckpoint, train
    from repetita.lm.trainer import Diverged, Every

    try:
        # a distillation teacher is named relative to the study ("runs/<id>"): resolve it there
        result = train(config, folder, callbacks=[Every(alive, every=HEARTBEAT_EVERY)], root=study_dir)
    except StudyGone:
        raise
    except UserError as exc:
        message = str(exc)
        if isinstance(exc, DamagedCheckpoint):
            # kept for inspection under another name; --retry-failed then starts the run from scratch
            kept = exc.path.with_name(f"{exc.path.name}.damaged-{int(time.time())}")
            exc.path.rename(kept)
            message += f"; moved aside to {kept.name}, --retry-failed restarts the run from scratch"
        return ("diverged" if isinstance(exc, Diverged) else "failed"), {"error": message}
    check_study_alive(store_path(study_dir))
    return "done", {"result": result}


register_kind(RunKind("lm", _load, _resources, execute, _dependencies, check_budgets))
