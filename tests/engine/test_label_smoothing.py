"""Label smoothing of the members' cross-entropy (the ensemble section's ``label_smoothing``)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from hydraplus.core.containers import Ensemble
from hydraplus.engine.modules import EnsembleModule
from hydraplus.models import mlp


def module(label_smoothing: float = 0.0, task: str = "classification") -> EnsembleModule:
    members = [mlp([2, 4, 3 if task == "classification" else 2]) for _ in range(2)]
    return EnsembleModule(Ensemble(members), task, lr=0.01, weight_decay=0.0, epochs=1,
                          label_smoothing=label_smoothing)


def test_smoothing_changes_each_members_loss_by_the_hand_computed_amount() -> None:
    # [B = 2, N = 2, C = 3] logits: member n's outputs on its own two examples
    out = torch.tensor([[[2.0, 0.0, -1.0], [0.5, 0.5, 0.0]],
                        [[0.0, 1.0, 3.0], [1.0, -2.0, 0.0]]])
    y = torch.tensor([[0, 2], [2, 1]])
    s, c = 0.2, 3
    log_p = out.log_softmax(-1)
    # the hand-computed targets: (1 - s) on the label plus s / C on every class
    target = (1 - s) * F.one_hot(y, c).float() + s / c
    by_hand = -(target * log_p).sum(-1).mean(0)  # each member's mean over its examples: [N]
    plain, smoothed = module(0.0).member_losses(out, y), module(s).member_losses(out, y)
    torch.testing.assert_close(smoothed, by_hand)
    # = (1 - s) CE + s * (mean over classes of -log p): the change is s * (uniform CE - CE)
    nll = -log_p.gather(-1, y.unsqueeze(-1)).squeeze(-1)
    uniform = -log_p.mean(-1)
    torch.testing.assert_close(smoothed - plain, (s * (uniform - nll)).mean(0))
    # one number worked through: member 0's first example, logits (2, 0, -1), label 0
    log_z = math.log(math.exp(2) + 1 + math.exp(-1))
    ce, flat = log_z - 2.0, log_z - (2.0 + 0.0 - 1.0) / 3
    assert (1 - s) * ce + s * flat == pytest.approx(float(-(target[0, 0] * log_p[0, 0]).sum()), abs=1e-6)
    # torch's own label_smoothing agrees
    torch.testing.assert_close(
        smoothed, F.cross_entropy(out.reshape(4, c), y.reshape(-1), label_smoothing=s,
                                  reduction="none").view(2, 2).mean(0))


def test_no_smoothing_is_the_plain_cross_entropy() -> None:
    out, y = torch.randn(5, 2, 3), torch.randint(0, 3, (5, 2))
    expected = torch.stack([F.cross_entropy(out[:, n], y[:, n]) for n in range(2)])
    torch.testing.assert_close(module(0.0).member_losses(out, y), expected)


@pytest.mark.parametrize(("value", "task", "message"), [
    (1.0, "classification", "label_smoothing must be in [0, 1), got 1.0"),
    (-0.5, "classification", "label_smoothing must be in [0, 1), got -0.5"),
    (0.1, "regression", "label_smoothing applies to classification only, not regression"),
])
def test_bad_label_smoothing_is_refused(value: float, task: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        module(value, task)
    assert str(info.value) == message
