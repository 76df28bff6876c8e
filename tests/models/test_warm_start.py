"""A student core started from a member computes the member's first layers exactly."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from hydraplus.core.containers import Ensemble
from hydraplus.models.lenet import lenet_core, lenet_member
from hydraplus.models.warm_start import init_core_from_member


@pytest.mark.parametrize("batched", [False, True])
def test_core_equals_member_prefix(batched: bool) -> None:
    torch.manual_seed(0)
    ensemble = Ensemble.from_factory(lambda: lenet_member(10, 1, (4, 8), 16, 7), 3, batched=batched)
    core = lenet_core(1, (4, 8), 7)
    init_core_from_member(core, ensemble.member_state_dict(2))
    member = ensemble.member(2, lambda: lenet_member(10, 1, (4, 8), 16, 7))
    x = torch.randn(5, 1, 28, 28)
    expected = member(x)[:, 0]
    features = core(x)
    head = lenet_member(10, 1, (4, 8), 16, 7)[8:]
    head.load_state_dict(_plain_state(ensemble, 2))
    torch.testing.assert_close(head(features), expected, rtol=1e-5, atol=1e-5)


def _plain_state(ensemble: Ensemble, index: int) -> dict[str, torch.Tensor]:
    """The member's classifier tensors (after the 8 feature modules), named as in ``member[8:]``."""
    values = [v for v in ensemble.member_state_dict(index).values() if v.dim() > 0][4:]
    names = list(lenet_member(10, 1, (4, 8), 16, 7)[8:].state_dict())
    shapes = [t.shape for t in lenet_member(10, 1, (4, 8), 16, 7)[8:].state_dict().values()]
    return {n: v.reshape(s) for n, v, s in zip(names, values, shapes, strict=True)}


def test_mismatched_core_is_refused() -> None:
    ensemble = Ensemble.from_factory(lambda: lenet_member(10, 1, (4, 8), 16, 7), 2, batched=False)
    with pytest.raises(ValueError, match=r"core tensor 0.weight \(6, 1, 3, 3\) does not match .*0.weight"):
        init_core_from_member(lenet_core(1, (6, 8), 7), ensemble.member_state_dict(0))
    with pytest.raises(ValueError, match="the core has 3 tensors, the member only 2"):
        init_core_from_member(nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 1, bias=False)),
                              nn.Linear(2, 2).state_dict())
