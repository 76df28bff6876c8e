"""The fast training paths give the naive paths' losses and gradients.

Fast: batched (stacked) heads or members, teacher outputs computed once and read from the
cache. Naive: heads and members looped one after another, the teacher run on every batch.
Both go through the full Hydra+ loss of DistillModule (L1-L4 and the weight decay) or the
ensemble's per-member loss of EnsembleModule.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

from _dummies import ARCHS
from hydraplus.config import StudentSpec
from hydraplus.core.containers import Ensemble, MultiHeadStudent, _Group
from hydraplus.core.losses import l2_penalty
from hydraplus.core.schedules import LambdaSchedule
from hydraplus.engine.cache import teacher_outputs
from hydraplus.engine.modules import DistillModule, EnsembleModule

ATOL = 1e-5

SETTINGS = ARCHS
N, M, EXAMPLES, BATCH = 3, 4, 12, 5


def data(name: str) -> tuple[Tensor, Tensor]:
    *_, task, shape = SETTINGS[name]
    x = torch.randn(EXAMPLES, *shape)
    y = torch.randn(EXAMPLES) if task == "regression" else torch.randint(0, 3, (EXAMPLES,))
    return x, y


def trained_like(modules: list[nn.Module]) -> list[nn.Module]:
    """Give batch norms non-default statistics, as a trained teacher or student has."""
    with torch.no_grad():
        for m in (m for module in modules for m in module.modules()):
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.normal_()
                m.running_var.uniform_(0.5, 2.0)
                m.weight.normal_()
                m.bias.normal_()
    return modules


def student_module(name: str, core: nn.Module, heads: list[nn.Module], batched: bool) -> DistillModule:
    """Hydra+ with every term on (alpha, beta in (0, 1), lambda > 0, weight decay)."""
    *_, task, _ = SETTINGS[name]
    student = MultiHeadStudent(copy.deepcopy(core), copy.deepcopy(heads), batched=batched)
    assert student.heads.batched == batched
    spec = StudentSpec("hydra+", heads=len(heads), alpha=0.9, beta=0.5, t_ind=3.0, lam=LambdaSchedule(0.5),
                       lr=0.01, weight_decay=1e-4)
    return DistillModule(student, "hydra+", task, spec)


def per_copy_grads(group: _Group) -> Tensor:
    """Every parameter gradient of each copy flattened into one row: ``[G, P]``."""
    if group.stacked is not None:
        return torch.cat([p.grad.reshape(group.size, -1) for p in group.stacked.parameters()], dim=1)
    assert group.looped is not None
    return torch.stack([torch.cat([p.grad.reshape(-1) for p in m.parameters()]) for m in group.looped])


@pytest.mark.parametrize("name", list(SETTINGS))
def test_cached_teacher_and_batched_heads_give_the_naive_hydra_plus_loss(name: str, tmp_path: Path) -> None:
    member, core, head, _, _ = SETTINGS[name]
    x, y = data(name)
    members = trained_like([member() for _ in range(N)])
    fast_teacher, naive_teacher = Ensemble(members, batched=True), Ensemble(members, batched=False)
    cached = teacher_outputs(fast_teacher, x, tmp_path / "cache", batch_size=5)
    naive_teacher.eval()

    core_module, heads = core(), trained_like([head() for _ in range(M)])
    fast = student_module(name, core_module, heads, batched=True)
    naive = student_module(name, core_module, heads, batched=False)
    index = torch.randperm(EXAMPLES)[:BATCH]
    xb, yb = x[index], y[index]

    fast_loss, fast_terms = fast.loss_terms(xb, yb, cached[index])
    with torch.no_grad():
        teacher_batch = naive_teacher(xb)
    naive_loss, naive_terms = naive.loss_terms(xb, yb, teacher_batch)

    assert torch.allclose(cached[index], teacher_batch, atol=ATOL)
    assert set(fast_terms) == {"correctness", "aggregation", "individuality", "diversity", "weight_decay"}
    for term, value in naive_terms.items():
        assert torch.allclose(fast_terms[term], value, atol=ATOL), term
    assert torch.allclose(fast_loss, naive_loss, atol=ATOL)

    fast_loss.backward()
    naive_loss.backward()
    for p_fast, p_naive in zip(fast.student.core.parameters(), naive.student.core.parameters(), strict=True):
        assert torch.allclose(p_fast.grad, p_naive.grad, atol=ATOL)
    assert torch.allclose(per_copy_grads(fast.student.heads), per_copy_grads(naive.student.heads), atol=ATOL)


@pytest.mark.parametrize("name", list(SETTINGS))
def test_batched_members_give_the_looped_ensemble_loss(name: str) -> None:
    member, *_, task, shape = SETTINGS[name]
    members = [member() for _ in range(N)]
    modules = {batched: EnsembleModule(Ensemble(copy.deepcopy(members), batched=batched), task,
                                       lr=0.01, weight_decay=1e-4, epochs=1) for batched in (True, False)}
    # one own data order per member, as the training loader gives it
    index = torch.stack([torch.randperm(EXAMPLES)[:BATCH] for _ in range(N)], dim=1)
    x, y = data(name)
    xb, yb = x[index], y[index]
    assert xb.shape == (BATCH, N, *shape)

    losses = {}
    for batched, module in modules.items():
        per_member = module.member_losses(module.ensemble(xb, per_member=True), yb)
        losses[batched] = per_member
        (per_member.sum() + 1e-4 * l2_penalty(module.ensemble.parameters())).backward()
        module.clip_gradients_()
    assert torch.allclose(losses[True], losses[False], atol=ATOL)
    grads = [per_copy_grads(modules[b].ensemble.members) for b in (True, False)]
    assert torch.allclose(grads[0], grads[1], atol=ATOL)
