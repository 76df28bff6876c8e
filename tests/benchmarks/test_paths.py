"""The paths benchmark's reference: today's LeNet put back as it was when the speed work began."""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import paths

from hydraplus.models import lenet_core, lenet_member


def test_as_filed_puts_relu_out_of_place_before_each_pool() -> None:
    core = paths.as_filed(lenet_core())
    kinds = [type(m).__name__ for m in core]
    assert kinds[:6] == ["Conv2d", "ReLU", "MaxPool2d", "Conv2d", "ReLU", "MaxPool2d"]
    assert not any(m.inplace for m in core.modules() if isinstance(m, nn.ReLU))


def test_as_filed_computes_the_same_values_and_gradients() -> None:
    torch.manual_seed(0)
    today = lenet_member()
    filed = paths.as_filed(copy.deepcopy(today))
    x = torch.randn(4, 3, 32, 32)
    out_today, out_filed = today(x), filed(x)
    assert torch.equal(out_today, out_filed)
    out_today.square().sum().backward()
    out_filed.square().sum().backward()
    for a, b in zip(today.parameters(), filed.parameters(), strict=True):
        assert torch.equal(a.grad, b.grad)
