"""The trainer's process-wide settings: deterministic algorithms, no NaN-filling of new memory, and
an Adam that gives the single-tensor floats."""

import torch
import torch.utils.deterministic

from hydraplus.core.containers import Ensemble
from hydraplus.engine.modules import EnsembleModule
from hydraplus.engine.trainer import _trainer


def test_trainer_is_deterministic_without_filling_new_memory(tmp_path) -> None:
    torch.utils.deterministic.fill_uninitialized_memory = True
    try:
        _trainer(tmp_path, "x", 1, False, "cpu", 1, "32", 1, 1, "auto")
        assert torch.are_deterministic_algorithms_enabled()
        assert torch.utils.deterministic.fill_uninitialized_memory is False
    finally:
        torch.use_deterministic_algorithms(False)
        torch.utils.deterministic.fill_uninitialized_memory = True


def test_adam_is_multi_tensor_and_gives_the_single_tensor_floats() -> None:
    torch.manual_seed(0)
    module = EnsembleModule(Ensemble([torch.nn.Linear(3, 2) for _ in range(2)]), "classification",
                            lr=0.01, weight_decay=0.0, epochs=2)
    optimizer = module.configure_optimizers()["optimizer"]
    assert optimizer.defaults["foreach"] is True
    params = [p.detach().clone().requires_grad_() for p in module.parameters()]
    single = torch.optim.Adam(params, lr=0.01, foreach=False)
    for step in range(5):
        for p, q in zip(module.parameters(), params, strict=True):
            p.grad = torch.full_like(p, 0.1 * step - 0.2) + p.detach()
            q.grad = p.grad.clone()
        optimizer.step()
        single.step()
    for p, q in zip(module.parameters(), params, strict=True):
        assert torch.equal(p, q)
