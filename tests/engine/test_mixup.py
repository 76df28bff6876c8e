"""Mixup: seeded, resumable choices; images and labels mixed by hand-checkable weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from hydraplus.core.losses import correctness_loss
from hydraplus.engine.data import SeededMixup


def test_mixup_is_the_hand_mix_of_its_seeded_choices() -> None:
    images, labels = torch.randn(6, 1, 4, 4), torch.tensor([0, 1, 2, 0, 1, 2])
    mixed, soft = SeededMixup(0.4, seed=3, num_classes=3)(images, labels, epoch=2, batch_idx=5)
    rng = np.random.default_rng([3, 2, 5])
    w, partner = rng.beta(0.4, 0.4), torch.as_tensor(rng.permutation(6))
    torch.testing.assert_close(mixed, w * images + (1 - w) * images[partner])
    expected = w * F.one_hot(labels, 3).float() + (1 - w) * F.one_hot(labels[partner], 3).float()
    torch.testing.assert_close(soft, expected)
    torch.testing.assert_close(soft.sum(1), torch.ones(6))
    again, _ = SeededMixup(0.4, seed=3, num_classes=3)(images, labels, epoch=2, batch_idx=5)
    torch.testing.assert_close(again, mixed)
    other, _ = SeededMixup(0.4, seed=3, num_classes=3)(images, labels, epoch=2, batch_idx=6)
    assert not torch.equal(other, mixed)


def test_soft_label_cross_entropy_is_the_mix_of_two_hard_ones() -> None:
    student = torch.randn(5, 3, 4)  # [B, M, C]
    a, b, w = torch.tensor([0, 1, 2, 3, 0]), torch.tensor([1, 1, 0, 2, 3]), 0.3
    soft = w * F.one_hot(a, 4).float() + (1 - w) * F.one_hot(b, 4).float()
    expected = w * correctness_loss(student, a) + (1 - w) * correctness_loss(student, b)
    torch.testing.assert_close(correctness_loss(student, soft), expected)


def test_mixup_needs_a_positive_concentration() -> None:
    with pytest.raises(ValueError, match="mixup must be > 0"):
        SeededMixup(0.0, seed=0, num_classes=3)
