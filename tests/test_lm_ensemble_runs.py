"""Ensembles as member runs: K ordinary one-model runs, shared across K, then one ensemble evaluation."""

from __future__ import annotations

import json

import pytest
import torch

from repetita.errors import UserError
from repetita.lm.config import TrainConfig
from repetita.lm.distill import load_run_model
from repetita.lm.ensemble import evaluate
from repetita.lm.model import GPT
from repetita.lm.train import member_dir, train

TINY = TrainConfig(corpus="markov:V=24,order=1,n=30000,seed=2", context=16, unique_tokens=16 * 48, epochs=2.0,
                   n_layer=1, n_head=2, d_model=16, batch_size=8, lr=1e-2, val_tokens=16 * 32, members=3,
                   recipe="ensemble")

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_an_ensemble_is_its_member_runs_evaluated_together(tmp_path):
    ens = train(TINY, tmp_path / "ens", root=tmp_path)
    members = TINY.member_configs()
    assert [m.seed for m in members] == [0, 1, 2] and all(m.members == 1 for m in members)
    assert ens["member_runs"] == [m.hash for m in members]
    # each member is exactly the lone run of its seed, trained anywhere
    lone = train(TINY.replace(members=1, seed=1), tmp_path / "lone")
    stored = json.loads((member_dir(members[1], tmp_path / "ens", tmp_path) / "result.json").read_text())
    assert stored["val_loss"] == lone["val_loss"] and stored["history"] == lone["history"]
    # the ensemble's loss is the logit average of the three members' final models, recomputed here
    from repetita.lm.data import load_data

    data = load_data(TINY.corpus, TINY.tokenizer, TINY.context, TINY.unique_tokens, TINY.val_fraction,
                     TINY.val_tokens, TINY.split_seed)
    stacked = GPT.stack([load_run_model(member_dir(m, tmp_path / "ens", tmp_path))[0] for m in members])
    again = evaluate(stacked, data.val)
    assert ens["val_loss"] == pytest.approx(again["ensemble_logits_loss"], rel=1e-6)
    member_losses = [json.loads((member_dir(m, tmp_path, tmp_path) / "result.json").read_text())["val_loss"]
                     for m in members]
    assert again["member_losses"] == pytest.approx(member_losses, rel=1e-6)
    assert ens["val_loss"] < min(member_losses)  # averaging logits of three seeds helps on this corpus
    # the ensemble's rows are its own: K members, both combiners; the members' rows live in their runs
    assert {(r["members"], r["member"], r["combiner"]) for r in ens["rows"]} == {(3, -1, "logits"), (3, -1, "probs")}
    # model.pt is one batched model (the teacher format distillation reads)
    model, _ = load_run_model(tmp_path / "ens")
    assert model.members == 3


def test_members_are_shared_across_ensemble_sizes(tmp_path):
    small = train(TINY.replace(members=2), tmp_path / "e2", root=tmp_path)
    first = member_dir(TINY.member_configs()[0], tmp_path, tmp_path) / "result.json"
    before = first.stat().st_mtime_ns
    big = train(TINY, tmp_path / "e3", root=tmp_path)
    assert big["member_runs"][:2] == small["member_runs"]
    assert first.stat().st_mtime_ns == before  # reused, not retrained
    assert len(list((tmp_path / "runs").iterdir())) == 3  # three members in all for K = 2 and 3


def test_an_ensemble_without_a_root_keeps_its_members_in_its_folder(tmp_path):
    ens = train(TINY.replace(members=2), tmp_path / "ens")
    assert all((tmp_path / "ens" / "runs" / rid / "model.pt").exists() for rid in ens["member_runs"])
    assert train(TINY.replace(members=2), tmp_path / "ens") == ens  # finished: the stored result


def test_distilled_students_form_an_ensemble(tmp_path):
    train(TINY.replace(members=1, epochs=1.0), tmp_path / "teacher")
    student = TINY.replace(members=2, teacher=str(tmp_path / "teacher"), distill_alpha=0.5, seq_distill_frac=0.25,
                           recipe="distill")
    ens = train(student, tmp_path / "students", root=tmp_path)
    lone = train(student.member_configs()[1], tmp_path / "lone")
    stored = json.loads((member_dir(student.member_configs()[1], tmp_path, tmp_path) / "result.json").read_text())
    assert stored["val_loss"] == lone["val_loss"] and len(ens["rows"]) == 2


def test_a_damaged_member_model_is_one_line(tmp_path):
    cfg = TINY.replace(members=2)
    train(cfg.member_configs()[0], member_dir(cfg.member_configs()[0], tmp_path / "ens", tmp_path))
    (member_dir(cfg.member_configs()[0], tmp_path, tmp_path) / "model.pt").write_bytes(b"not a model")
    with pytest.raises(UserError, match="model.pt: cannot read this run's model"):
        train(cfg, tmp_path / "ens", root=tmp_path)


def test_older_configs_with_a_members_layout_still_load():
    old = TINY.to_dict() | {"ensemble": "sequential"}
    assert TrainConfig.from_dict(old).hash == TINY.hash  # the layout was bookkeeping: same run id


def test_a_shape_that_does_not_fit_the_gpu_is_one_line():
    from repetita.lm.train import probe_memory

    class TooBig(torch.nn.Module):
        members = 1

        def forward(self, idx, targets):
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 80.00 GiB")

    with pytest.raises(UserError, match="does not fit in GPU memory at batch_size=8, context=16"):
        probe_memory(TooBig(), TINY, "cpu", None)
