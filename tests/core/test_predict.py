"""Batched inference: eval mode, chunking, mode restored."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from hydraplus.core.containers import Ensemble
from hydraplus.core.predict import predict
from hydraplus.models import mlp


def test_predict_chunks_match_one_pass_and_restore_the_mode() -> None:
    ens = Ensemble.from_factory(lambda: nn.Sequential(nn.Linear(2, 4), nn.BatchNorm1d(4), nn.Linear(4, 3)), 2)
    x = torch.randn(10, 2)
    ens.train()
    out = predict(ens, x, batch_size=3)
    assert ens.training  # the mode is restored
    assert out.shape == (10, 2, 3) and not out.requires_grad
    ens.eval()
    with torch.no_grad():
        expected = ens(x)  # eval mode: running statistics, so chunking does not matter
    torch.testing.assert_close(out, expected)


def test_predict_validation() -> None:
    model = Ensemble([mlp([2, 3])])
    with pytest.raises(ValueError, match="batch_size"):
        predict(model, torch.randn(3, 2), batch_size=0)
    with pytest.raises(ValueError, match="empty"):
        predict(model, torch.randn(0, 2))
