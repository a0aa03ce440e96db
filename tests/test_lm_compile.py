"""Speed options (torch.compile, the AdamW implementation): the same losses, the same run id, and a clear
refusal where an option fails."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from repetita.errors import UserError  # noqa: E402
from repetita.lm.config import TrainConfig  # noqa: E402
from repetita.lm.train import train  # noqa: E402

TINY = dict(corpus="markov:V=16,order=1,n=4000,seed=1", context=8, batch_size=4, d_model=16, n_head=2, n_layer=1,
            unique_tokens=256, epochs=3, val_tokens=128, lr=1e-2)


def test_compiled_and_eager_runs_give_the_same_losses(tmp_path):
    try:
        torch.compile(lambda x: x + 1)(torch.zeros(1))
    except Exception as exc:  # no compiler toolchain on this machine
        pytest.skip(f"torch.compile unavailable: {exc}")
    eager = TrainConfig(**TINY)
    compiled = eager.replace(compile=True)
    assert compiled.hash == eager.hash  # a speed option, not part of what the run computes
    a = train(eager, tmp_path / "eager")
    b = train(compiled, tmp_path / "compiled")
    la = [h["val_loss"] for h in a["history"]]
    lb = [h["val_loss"] for h in b["history"]]
    assert len(la) == len(lb) >= 3
    assert max(abs(x - y) for x, y in zip(la, lb, strict=True)) < 1e-5
    assert abs(a["train_loss"] - b["train_loss"]) < 1e-5


def test_compile_failure_is_one_line_and_writes_nothing(tmp_path, monkeypatch):
    def broken(fn, *args, **kwargs):
        def call(*a, **k):
            raise RuntimeError("no C++ compiler found\nlong traceback follows")
        return call

    monkeypatch.setattr(torch, "compile", broken)
    with pytest.raises(UserError, match="torch.compile fails on this machine .RuntimeError: no C.. compiler found"):
        train(TrainConfig(**TINY, compile=True), tmp_path / "run")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("impl", ["foreach", "fused"])
def test_adamw_implementations_train_the_same_run(tmp_path, impl):
    from repetita.lm.train import adamw

    base = TrainConfig(**TINY, adamw="for-loop")
    other = base.replace(adamw=impl)
    assert other.hash == base.hash
    opt = adamw([{"params": [torch.nn.Parameter(torch.zeros(2))]}], other, "cpu")
    assert opt.defaults["foreach" if impl == "foreach" else "fused"] is True
    a, b = train(base, tmp_path / "a"), train(other, tmp_path / impl)
    assert max(abs(x["val_loss"] - y["val_loss"]) for x, y in zip(a["history"], b["history"], strict=True)) < 1e-5


def test_unknown_adamw_implementation_is_refused():
    with pytest.raises(UserError, match="adamw='apex' must be auto, for-loop, foreach or fused"):
        TrainConfig(**TINY, adamw="apex")
