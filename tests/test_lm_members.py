"""Ensembles trained as one batched model, as separate members side by side, or as members in turn:
the same runs every way; auto picks one."""

from __future__ import annotations

import pytest
import torch

from repetita.errors import UserError
from repetita.lm import members
from repetita.lm.config import TrainConfig
from repetita.lm.model import GPT
from repetita.lm.train import train

TINY = TrainConfig(corpus="markov:V=24,order=1,n=30000,seed=2", context=16, unique_tokens=16 * 48, epochs=2.0,
                   n_layer=1, n_head=2, d_model=16, batch_size=8, lr=1e-2, val_tokens=16 * 32, members=3)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _losses(result):
    return [h["val_member_losses"] for h in result["history"]], [h["ensemble_logits_loss"] for h in result["history"]]


def test_separate_members_train_exactly_like_the_batched_model(tmp_path):
    b = train(TINY.replace(ensemble="batched"), tmp_path / "b")
    s = train(TINY.replace(ensemble="separate"), tmp_path / "s")
    assert b["ensemble"] == {"mode": "batched"} and s["ensemble"] == {"mode": "separate"}
    (mb, eb), (ms, es) = _losses(b), _losses(s)
    assert torch.allclose(torch.tensor(mb), torch.tensor(ms), atol=1e-5, rtol=0)
    assert torch.allclose(torch.tensor(eb), torch.tensor(es), atol=1e-5, rtol=0)
    assert b["config_hash"] == s["config_hash"]  # a speed option, not part of the run's id
    sb = torch.load(tmp_path / "b" / "model.pt")["state"]
    ss = torch.load(tmp_path / "s" / "model.pt")["state"]
    assert sb.keys() == ss.keys() and all(torch.allclose(sb[k], ss[k], atol=1e-5) for k in sb)


def test_members_in_turn_train_exactly_like_the_batched_model(tmp_path):
    b = train(TINY.replace(ensemble="batched"), tmp_path / "b")
    q = train(TINY.replace(ensemble="sequential"), tmp_path / "q")
    assert q["ensemble"] == {"mode": "sequential"}
    (mb, eb), (mq, eq) = _losses(b), _losses(q)
    assert torch.allclose(torch.tensor(mb), torch.tensor(mq), atol=1e-5, rtol=0)
    assert torch.allclose(torch.tensor(eb), torch.tensor(eq), atol=1e-5, rtol=0)
    for hb, hq in zip(b["history"], q["history"], strict=True):  # every column of metrics.json
        assert hb.keys() == hq.keys() and hb["step"] == hq["step"] and hb["lr"] == hq["lr"]
        assert hq["train_batch_loss"] == pytest.approx(hb["train_batch_loss"], abs=1e-5)
        assert hq["train_loss"] == pytest.approx(hb["train_loss"], abs=1e-5)
    sb = torch.load(tmp_path / "b" / "model.pt")["state"]
    sq = torch.load(tmp_path / "q" / "model.pt")["state"]
    assert sb.keys() == sq.keys() and all(torch.allclose(sb[k], sq[k], atol=1e-5) for k in sb)
    assert not (tmp_path / "q" / "snapshots").exists() and not (tmp_path / "q" / "ckpt.pt").exists()


@pytest.mark.parametrize("stop", [5, 12, 19])  # inside member 0, at the end of member 0, inside member 1
def test_members_in_turn_resume_exactly(tmp_path, stop):
    cfg = TINY.replace(ensemble="sequential", checkpoint_every=4)
    full = train(cfg, tmp_path / "full")
    part = train(cfg, tmp_path / "r", stop_at_step=stop)
    assert part == {"finished": False, "step": stop, "history": [], "config_hash": cfg.hash}
    assert not (tmp_path / "r" / "metrics.json").exists()  # written once the last member is trained
    resumed = train(cfg.replace(ensemble="auto"), tmp_path / "r")
    assert resumed["ensemble"] == {"mode": "sequential", "resumed": True}
    assert _losses(resumed) == _losses(full) and resumed["history"] == full["history"]


def test_a_lost_snapshot_is_one_line(tmp_path):
    cfg = TINY.replace(ensemble="sequential")
    train(cfg, tmp_path / "r", stop_at_step=20)  # member 0 trained, member 1 past its first evaluation step
    (tmp_path / "r" / "snapshots" / "1" / "6.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="6.pt: cannot read this member's snapshot"):
        train(cfg, tmp_path / "r")
    (tmp_path / "r" / "snapshots" / "1" / "6.pt").unlink()
    with pytest.raises(UserError, match="6.pt: a trained member's snapshot is missing"):
        train(cfg, tmp_path / "r")


def test_distilled_members_in_turn_match_the_batched_model(tmp_path):
    train(TINY.replace(members=1, epochs=1.0), tmp_path / "teacher")
    student = TINY.replace(members=2, teacher=str(tmp_path / "teacher"), distill_alpha=0.5, seq_distill_frac=0.25)
    b = train(student.replace(ensemble="batched"), tmp_path / "b")
    q = train(student.replace(ensemble="sequential"), tmp_path / "q")
    (mb, eb), (mq, eq) = _losses(b), _losses(q)
    assert torch.allclose(torch.tensor(mb), torch.tensor(mq), atol=1e-5, rtol=0)
    assert torch.allclose(torch.tensor(eb), torch.tensor(eq), atol=1e-5, rtol=0)


def test_auto_trains_a_short_run_in_turn_without_timing(tmp_path):
    members._CHOICES.clear()
    r = train(TINY, tmp_path / "auto")  # 12 steps < CALIBRATE_FROM
    assert r["ensemble"]["mode"] == "sequential" and "too short to calibrate" in r["ensemble"]["reason"]
    assert members._CHOICES == {}


def test_auto_times_every_layout_and_does_not_shift_the_run(tmp_path, monkeypatch):
    monkeypatch.setattr(members, "CALIBRATE_FROM", 0)
    members._CHOICES.clear()
    auto = train(TINY, tmp_path / "auto")
    e = auto["ensemble"]
    times = {m: e[f"{m}_s"] for m in members.LAYOUTS}
    assert all(t > 0 for t in times.values()) and e["mode"] == min(times, key=times.get)
    forced = train(TINY.replace(ensemble=e["mode"]), tmp_path / "forced")
    assert _losses(auto) == _losses(forced)  # calibration restores the random state it used


def test_auto_leaves_out_members_in_turn_when_snapshots_would_not_fit(monkeypatch):
    monkeypatch.setattr(members, "SNAPSHOT_LIMIT", 1000)
    members._CHOICES.clear()
    cfg = TINY.model_config(24)
    short = members.choose(cfg, 3, 8, total_steps=10, evaluations=2)  # too short, but in turn is ruled out
    assert short["mode"] in ("batched", "separate") and "disk limit" in short["reason"]
    assert members.snapshot_bytes(1000, 3, 2) == 24_000


def test_separate_members_resume_in_their_own_mode(tmp_path):
    cfg = TINY.replace(ensemble="separate", epochs=3.0, checkpoint_every=4)
    full = train(cfg, tmp_path / "full")
    part = train(cfg, tmp_path / "r", stop_at_step=7)
    assert part["finished"] is False
    # Resuming with auto must keep the checkpoint's layout (its optimizer state is per member).
    resumed = train(cfg.replace(ensemble="auto"), tmp_path / "r")
    assert resumed["ensemble"] == {"mode": "separate", "resumed": True}
    assert _losses(resumed) == _losses(full)


def test_members_module_matches_the_batched_forward_and_clips_each_member():
    cfg = TINY.model_config(24)
    sep, bat = members.Members(cfg, 3, seed=5), GPT(cfg, members=3, seed=5)
    x = torch.randint(0, 24, (3, 4, 16))
    assert torch.allclose(sep(x), bat(x), atol=1e-6)
    assert sep.num_params() == bat.num_params()
    assert torch.equal(sep.to_batched().state_dict()["wte"], bat.state_dict()["wte"])
    with pytest.raises(UserError, match="members=3"):
        sep(x[:2])


def test_the_help_states_the_auto_rule():
    from repetita.lm import cli

    assert f"below {members.CALIBRATE_FROM:,} steps" in cli._HELP["ensemble"]


def test_bad_ensemble_mode_is_a_user_error():
    with pytest.raises(UserError, match="ensemble="):
        TrainConfig(ensemble="threads")


def test_a_shape_that_does_not_fit_the_gpu_is_one_line():
    from repetita.lm.train import probe_memory

    class TooBig(torch.nn.Module):
        members = 1

        def forward(self, idx, targets):
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 80.00 GiB")

    with pytest.raises(UserError, match="does not fit in GPU memory at batch_size=8, context=16"):
        probe_memory(TooBig(), TINY, "cpu", None)
