"""Kinds of run a study can hold, and the one registry of them.

A run in the store is a JSON config; its ``kind`` key says what it is (no key: the LM lab's
``TrainConfig``, for studies written before kinds existed). Everything the study machinery asks of a run
that depends on its kind is asked here, by name, instead of by ``isinstance`` or string tests spread over
the driver, the runners and the recipes:

- ``load(config_json)``: the frozen config (with ``hash`` and ``to_json``);
- ``resources(config)``: what the scheduler must reserve, ``{"cpus", "gpus", "custom"}``;
- ``dependencies(config)``: the run ids that must finish first (an ensemble's members, a teacher);
- ``check_budgets(configs)``: one check of a batch before it is queued (the LM lab: every unique-token
  budget fits its corpus), raising ``UserError``;
- ``execute(config, folder, study_dir, gpu_ids, beat)``: run it, touching no store; returns
  ``(status, payload)`` as ``repetita.study.runners.work`` does (``done`` with a ``result`` holding
  ``val_loss``, ``history`` and tidy ``rows``; ``failed`` or ``diverged`` with an ``error``).

The built-in kinds register where they are defined: ``lm`` in ``repetita.study.lab_runs``, ``command`` in
``repetita.study.command``; ``repetita.study.runners`` imports both.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

from repetita.errors import UserError
from repetita.registry import Registry

DEFAULT_KIND = "lm"  # a stored config with no "kind" key


def _none(_config) -> tuple[str, ...]:
    return ()


def _no_check(_configs) -> None:
    return None


@dataclass(frozen=True)
class RunKind:
    name: str
    load: Callable[[str], object]
    resources: Callable[[object], dict]
    execute: Callable[..., tuple[str, dict]]
    dependencies: Callable[[object], tuple[str, ...]] = _none
    check_budgets: Callable[[list], None] = _no_check


RUN_KINDS: Registry = Registry("run kind")


def register_kind(kind: RunKind) -> RunKind:
    """Add a kind of run; a name registered twice is refused in one line naming both places."""
    return RUN_KINDS.add(kind.name, kind)


def kind_named(name: str) -> RunKind:
    if name not in RUN_KINDS:
        raise UserError(f"a run of unknown kind {name!r}; known kinds: {', '.join(RUN_KINDS)} (is the module that "
                        "registers it imported?)")
    return RUN_KINDS[name]


def kind_of_json(config_json: str) -> RunKind:
    """The kind of a stored config."""
    data = json.loads(config_json)
    return kind_named(data.get("kind", DEFAULT_KIND) if isinstance(data, dict) else DEFAULT_KIND)


def kind_of(config) -> RunKind:
    """The kind of a config object (its ``kind`` attribute; the LM lab's TrainConfig has none)."""
    return kind_named(getattr(config, "kind", DEFAULT_KIND))
