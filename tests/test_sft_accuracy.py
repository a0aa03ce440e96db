import pytest
import torch

from repetita.errors import UserError
from repetita.sft.accuracy import IGNORE_INDEX, WindowedAccuracy, token_accuracy


def _logits_predicting(pred, vocab=5):
    """Logits whose argmax at each position is pred[b, t]."""
    out = torch.zeros(*pred.shape, vocab)
    out.scatter_(-1, pred.unsqueeze(-1), 1.0)
    return out


def test_prompt_and_padding_never_count():
    # Sequence 0: prompt at 0..2, response 3..5, padding 6..7. Predictions at prompt positions are
    # all wrong and at response positions all right, so accuracy must be exactly 1.
    labels = torch.tensor([[IGNORE_INDEX] * 3 + [1, 2, 3] + [IGNORE_INDEX] * 2])
    pred = torch.tensor([[4, 4, 1, 2, 3, 4, 4, 4]])  # shifted: position t predicts label t+1
    b = token_accuracy(_logits_predicting(pred), labels)
    assert b.total == [3] and b.correct == [3] and b.accuracy == 1.0
    # Same labels but break the prompt-position predictions further: still 1.0.
    pred2 = pred.clone()
    pred2[0, 0] = 0
    assert token_accuracy(_logits_predicting(pred2), labels).accuracy == 1.0
    # One wrong response token -> 2/3.
    pred3 = pred.clone()
    pred3[0, 3] = 0
    assert token_accuracy(_logits_predicting(pred3), labels).accuracy == pytest.approx(2 / 3)


def test_mask_and_unshifted_and_per_sample():
    labels = torch.tensor([[1, 2, 3, 4], [1, 1, 1, 1]])
    pred = torch.tensor([[1, 2, 0, 0], [1, 0, 0, 0]])
    mask = torch.tensor([[0, 1, 1, 1], [0, 0, 0, 0]], dtype=torch.bool)
    b = token_accuracy(_logits_predicting(pred), labels, mask, shift=False)
    assert b.correct == [1, 0] and b.total == [3, 0]
    assert b.per_sample() == [pytest.approx(1 / 3), None]


def test_no_response_tokens_gives_none_not_nan():
    labels = torch.full((2, 4), IGNORE_INDEX)
    b = token_accuracy(torch.randn(2, 4, 7), labels)
    assert b.n_tokens == 0 and b.accuracy is None


def test_shape_mismatch_is_user_error():
    with pytest.raises(UserError, match="shape mismatch"):
        token_accuracy(torch.randn(2, 5, 7), torch.zeros(2, 4, dtype=torch.long))
    with pytest.raises(UserError, match="mask shape"):
        token_accuracy(torch.randn(2, 4, 7), torch.zeros(2, 4, dtype=torch.long), torch.ones(2, 3))


def test_window_mean_and_skips():
    w = WindowedAccuracy(window=3)
    assert w.update(0, 0) is None and w.skipped == 1
    w.update(1, 2)
    w.update(3, 4)
    assert not w.full
    assert w.update(0, 0) == pytest.approx(4 / 6) and w.skipped == 2
    w.update(2, 2)
    assert w.full and w.value == pytest.approx(6 / 8)
    w.update(10, 10)  # pushes out (1, 2)
    assert w.value == pytest.approx(15 / 16)
    s = WindowedAccuracy(window=2, weighting="steps")
    s.update(1, 2)
    s.update(10, 10)
    assert s.value == pytest.approx(0.75)
    with pytest.raises(UserError):
        WindowedAccuracy(window=0)
    with pytest.raises(UserError):
        w.update(3, 2)
