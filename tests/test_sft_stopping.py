import sys

import pytest
import torch

from repetita.errors import UserError
from repetita.sft.stopping import StopConfig, StopRule, TokenAccuracyHook, slope


def _feed(rule, accs):
    for i, a in enumerate(accs, start=1):
        d = rule.update_accuracy(i, a)
        if d is not None:
            return d
    return None


def test_threshold_fires_only_when_window_mean_reaches_it():
    rule = StopRule(StopConfig(threshold=0.9, window=4, plateau_window=0))
    # One lucky 1.0 early must not stop: the window is not full / mean is low.
    d = _feed(rule, [1.0, 0.2, 0.3, 0.5, 0.8, 0.95, 0.95, 0.95, 0.95])
    assert d is not None and d.reason == "threshold"
    # Window mean after step 8 is (0.8+0.95*3)/4 = 0.9125 >= 0.9; after step 7 it is 0.8625.
    assert d.step == 8 and d.accuracy == pytest.approx(0.9125)


def test_plateau_fires_on_flat_curve_not_on_rising_one():
    cfg = StopConfig(threshold=None, window=2, plateau_window=5, plateau_tol=1e-3)
    rising = StopRule(cfg)
    assert _feed(rising, [0.1 + 0.01 * i for i in range(40)]) is None
    flat = StopRule(cfg)
    d = _feed(flat, [0.1 + 0.01 * i for i in range(10)] + [0.6] * 20)
    assert d is not None and d.reason == "plateau" and d.slope < 1e-3
    assert d.step > 10  # not before the curve flattened


def test_min_steps_and_decision_sticks():
    rule = StopRule(StopConfig(threshold=0.5, window=1, plateau_window=0, min_steps=5))
    assert _feed(rule, [1.0] * 4) is None
    d = rule.update_accuracy(5, 1.0)
    assert d.step == 5
    assert rule.update_accuracy(6, 0.0) is d


def test_slope_is_least_squares():
    assert slope([0.0, 1.0, 2.0, 3.0]) == pytest.approx(1.0)
    assert slope([5.0, 5.0, 5.0]) == pytest.approx(0.0)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"threshold": 1.5},
        {"window": 0},
        {"plateau_window": 1},
        {"threshold": None, "plateau_window": 0},
        {"plateau_tol": -1.0},
    ],
)
def test_bad_config(kwargs):
    with pytest.raises(UserError):
        StopConfig(**kwargs)


def test_hook_on_logits_counts_skipped_batches():
    hook = TokenAccuracyHook(StopConfig(threshold=0.99, window=2, plateau_window=0))
    labels = torch.tensor([[-100, 1, 2, 3]])
    logits = torch.zeros(1, 4, 5)
    logits[0, 0, 1] = logits[0, 1, 2] = logits[0, 2, 3] = 1.0  # perfect next-token predictions
    empty = torch.full((1, 4), -100)
    assert hook(1, logits, labels) is False  # window not full yet
    assert hook(2, logits, empty) is False and hook.rule.skipped == 1
    assert hook(3, logits, labels) is True
    assert hook.decision.reason == "threshold" and hook.decision.step == 3
    assert hook(4, accuracy=0.0) is True


def test_import_does_not_load_transformers():
    import subprocess

    code = "import sys, repetita.sft; print('transformers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
