"""Ensemble and MultiHeadStudent: batched heads/members equal the looped ones; L4 weight rows."""

from __future__ import annotations

import copy
from collections.abc import Callable

import pytest
import torch
from torch import Tensor, nn

from hydraplus.core.batched import NotStackableError
from hydraplus.core.containers import Ensemble, MultiHeadStudent, _Group
from hydraplus.core.losses import diversity_loss
from hydraplus.models import (
    lenet_core,
    lenet_head,
    lenet_member,
    mlp,
    resnet_core,
    resnet_head,
    resnet_member,
)
from hydraplus.models.lenet import lenet_features

ATOL = 1e-5

# --- tiny architectures: (core factory, head factory, input shape) --------------------------


def mlp_setup() -> tuple[nn.Module, Callable[[], nn.Module], tuple[int, ...]]:
    return mlp([2, 8, 6], final_activation=True), lambda: mlp([6, 7, 5, 3]), (5, 2)


def lenet_mlp_setup() -> tuple[nn.Module, Callable[[], nn.Module], tuple[int, ...]]:
    """The paper's LeNet student: conv core, MLP head (lenet_head), tiny widths."""
    return lenet_core(in_channels=3, widths=(4, 1)), lambda: lenet_head(16, 8, 3), (3, 3, 16, 16)


def lenet_conv_setup() -> tuple[nn.Module, Callable[[], nn.Module], tuple[int, ...]]:
    """A LeNet-pattern head with convolutions (with biases) in the head."""
    core = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU())

    def head() -> nn.Module:
        return nn.Sequential(*lenet_features(4, (3, 5), pooled=2), *mlp([20, 6, 3]))

    return core, head, (3, 3, 8, 8)


def resnet_setup() -> tuple[nn.Module, Callable[[], nn.Module], tuple[int, ...]]:
    """ResNet student: stages as core, one stage of two basic blocks (+ pool + linear) as head."""
    core = resnet_core(in_channels=3, widths=(4, 6), strides=(1, 2), blocks=1)
    return core, lambda: resnet_head(in_channels=6, width=5, num_classes=3, stride=2, blocks=2), (4, 3, 8, 8)


def mlp_batchnorm_setup() -> tuple[nn.Module, Callable[[], nn.Module], tuple[int, ...]]:
    """MLP heads with a BatchNorm1d inside (and one on the shared core features)."""
    def head() -> nn.Module:
        return nn.Sequential(
            nn.BatchNorm1d(6), nn.Linear(6, 7), nn.BatchNorm1d(7), nn.ReLU(), nn.Linear(7, 3)
        )

    return mlp([2, 6], final_activation=True), head, (6, 2)


SETUPS = {
    "mlp": mlp_setup,
    "mlp-batchnorm": mlp_batchnorm_setup,
    "lenet-mlp-head": lenet_mlp_setup,
    "lenet-conv-head": lenet_conv_setup,
    "resnet": resnet_setup,
}


def randomise_norms(modules: list[nn.Module]) -> None:
    """Give every batch norm its own non-default statistics and affine weights (to catch copy bugs)."""
    with torch.no_grad():
        for module in modules:
            for m in module.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.running_mean.normal_()
                    m.running_var.uniform_(0.5, 2.0)
                    m.weight.normal_()
                    m.bias.normal_()


def twin_students(name: str, heads: int = 3) -> tuple[MultiHeadStudent, MultiHeadStudent, Tensor]:
    """A batched and a looped student with identical core and head weights, plus an input."""
    core, head, shape = SETUPS[name]()
    head_modules = [head() for _ in range(heads)]
    randomise_norms(head_modules)
    batched = MultiHeadStudent(copy.deepcopy(core), copy.deepcopy(head_modules), batched=True)
    looped = MultiHeadStudent(copy.deepcopy(core), copy.deepcopy(head_modules), batched=False)
    assert batched.heads.batched and not looped.heads.batched
    return batched, looped, torch.randn(*shape)


def per_copy(group: _Group, what: str = "data") -> Tensor:
    """Every parameter (or gradient) of each copy flattened into one row: ``[G, P]``."""
    def get(p: Tensor) -> Tensor:
        return p.detach() if what == "data" else p.grad

    if group.stacked is not None:
        return torch.cat([get(p).reshape(group.size, -1) for p in group.stacked.parameters()], dim=1)
    assert group.looped is not None
    return torch.stack([torch.cat([get(p).reshape(-1) for p in m.parameters()]) for m in group.looped])


def mean_cosine(rows: list[Tensor]) -> float:
    """Mean over layers, heads and units of cos(mean row, head's row)."""
    cos = [nn.functional.cosine_similarity(r.mean(0, keepdim=True).expand_as(r), r, dim=-1) for r in rows]
    return torch.cat([c.reshape(-1) for c in cos]).mean().item()


# --- batched == looped: students -----------------------------------------------------------


@pytest.mark.parametrize("name", list(SETUPS))
def test_student_batched_equals_looped_eval(name: str) -> None:
    batched, looped, x = twin_students(name)
    batched.eval()
    looped.eval()
    torch.testing.assert_close(per_copy(batched.heads), per_copy(looped.heads), rtol=0, atol=0)
    out_b, out_l = batched(x), looped(x)
    assert out_b.shape == (x.shape[0], 3, 3)
    torch.testing.assert_close(out_b, out_l, rtol=0, atol=ATOL)
    rows_b, rows_l = batched.head_weight_rows(), looped.head_weight_rows()
    assert len(rows_b) == len(rows_l)
    for rb, rl in zip(rows_b, rows_l, strict=True):
        torch.testing.assert_close(rb, rl, rtol=0, atol=0)


@pytest.mark.parametrize("name", list(SETUPS))
def test_student_batched_equals_looped_train_and_gradients(name: str) -> None:
    batched, looped, x = twin_students(name)
    batched.train()
    looped.train()
    out_b, out_l = batched(x), looped(x)
    torch.testing.assert_close(out_b, out_l, rtol=0, atol=ATOL)
    w = torch.randn_like(out_b)
    (out_b * w).sum().backward()
    (out_l * w).sum().backward()
    for pb, pl in zip(batched.core.parameters(), looped.core.parameters(), strict=True):
        torch.testing.assert_close(pb.grad, pl.grad, rtol=1e-4, atol=ATOL)
    torch.testing.assert_close(per_copy(batched.heads, "grad"), per_copy(looped.heads, "grad"),
                               rtol=1e-4, atol=ATOL)


def test_resnet_heads_batchnorm_running_stats_match() -> None:
    batched, looped, x = twin_students("resnet")
    batched.train()
    looped.train()
    for _ in range(2):
        batched(x)
        looped(x)
    assert batched.heads.stacked is not None and looped.heads.looped is not None
    block_b = batched.heads.stacked[0]
    for stat in ("running_mean", "running_var"):
        got = getattr(block_b.bn1.norm, stat).view(3, -1)
        want = torch.stack([getattr(h[0].bn1, stat) for h in looped.heads.looped])
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    # After the stats moved, eval mode still agrees.
    batched.eval()
    looped.eval()
    torch.testing.assert_close(batched(x), looped(x), rtol=0, atol=ATOL)


# --- L4 rows: every Linear/Conv layer, bias appended ---------------------------------------


@pytest.mark.parametrize(("name", "shapes"), [
    ("mlp", [(7, 7), (5, 8), (3, 6)]),
    ("lenet-mlp-head", [(8, 17), (8, 9), (3, 9)]),
    ("lenet-conv-head", [(3, 4 * 9 + 1), (5, 3 * 9 + 1), (6, 21), (3, 7)]),
    # resnet head: conv1 6->5 (no bias), conv2 5->5, 1x1 shortcut 6->5, block 2 conv1/conv2, linear 5->3
    ("resnet", [(5, 54), (5, 45), (5, 6), (5, 45), (5, 45), (3, 6)]),
])
@pytest.mark.parametrize("batched", [True, False])
def test_head_weight_rows_cover_every_layer_with_bias(
    name: str, shapes: list[tuple[int, int]], batched: bool
) -> None:
    core, head, _ = SETUPS[name]()
    heads = [head() for _ in range(3)]
    originals = copy.deepcopy(heads)
    student = MultiHeadStudent(core, heads, batched=batched)
    rows = student.head_weight_rows()
    assert [tuple(r.shape) for r in rows] == [(3, *s) for s in shapes]
    for m, original in enumerate(originals):
        layers = [layer for layer in original.modules() if isinstance(layer, nn.Linear | nn.Conv2d)]
        assert len(layers) == len(rows)
        for layer, r in zip(layers, rows, strict=True):
            w = layer.weight.detach().reshape(layer.weight.shape[0], -1)
            if layer.bias is None:
                torch.testing.assert_close(r[m], w, rtol=0, atol=0)
            else:
                torch.testing.assert_close(r[m, :, :-1], w, rtol=0, atol=0)
                torch.testing.assert_close(r[m, :, -1], layer.bias.detach(), rtol=0, atol=0)


@pytest.mark.parametrize("name", ["mlp", "lenet-conv-head", "resnet"])
@pytest.mark.parametrize("batched", [True, False])
def test_one_sgd_step_on_diversity_lowers_cosine_to_the_mean(name: str, batched: bool) -> None:
    core, head, _ = SETUPS[name]()
    student = MultiHeadStudent(core, [head() for _ in range(4)], batched=batched)
    before = mean_cosine(student.head_weight_rows())
    loss = diversity_loss(student.head_weight_rows())
    loss.backward()
    assert all(p.grad is None for p in student.core.parameters())  # L4 only touches the heads
    with torch.no_grad():
        for p in student.heads.parameters():
            if p.grad is not None:
                p -= 0.05 * p.grad
    after = mean_cosine(student.head_weight_rows())
    assert after < before - 0.01
    assert diversity_loss(student.head_weight_rows()).item() < loss.item()


# --- batched == looped: ensembles ----------------------------------------------------------


MEMBERS: dict[str, tuple[Callable[[], nn.Module], tuple[int, ...]]] = {
    "mlp": (lambda: mlp([4, 8, 8, 3]), (5, 4)),
    "lenet": (lambda: lenet_member(num_classes=3, in_channels=3, widths=(2, 3), hidden=5), (3, 3, 16, 16)),
    "resnet": (lambda: resnet_member(num_classes=3, in_channels=3, widths=(2, 3), strides=(1, 2), blocks=1),
               (4, 3, 8, 8)),
}


def twin_ensembles(name: str, size: int = 3) -> tuple[Ensemble, Ensemble, Tensor]:
    factory, shape = MEMBERS[name]
    members = [factory() for _ in range(size)]
    randomise_norms(members)
    batched = Ensemble(copy.deepcopy(members), batched=True)
    looped = Ensemble(copy.deepcopy(members), batched=False)
    assert batched.members.batched and not looped.members.batched
    return batched, looped, torch.randn(*shape)


@pytest.mark.parametrize("name", list(MEMBERS))
@pytest.mark.parametrize("train", [False, True])
def test_ensemble_batched_equals_looped(name: str, train: bool) -> None:
    batched, looped, x = twin_ensembles(name)
    batched.train(train)
    looped.train(train)
    out_b = batched(x)
    assert out_b.shape == (x.shape[0], 3, 3)
    torch.testing.assert_close(out_b, looped(x), rtol=0, atol=ATOL)
    # Per-member input [B, N, ...]: member n sees column n only.
    xs = torch.randn(x.shape[0], 3, *x.shape[1:])
    out_b = batched(xs, per_member=True)
    torch.testing.assert_close(out_b, looped(xs, per_member=True), rtol=0, atol=ATOL)
    if not train:  # column n of the output is member n applied to column n of the input
        assert looped.members.looped is not None
        for n, member in enumerate(looped.members.looped):
            torch.testing.assert_close(out_b[:, n], member(xs[:, n]), rtol=0, atol=ATOL)


@pytest.mark.parametrize("name", ["mlp", "resnet"])
def test_member_gradient_clipping_batched_equals_looped(name: str) -> None:
    batched, looped, x = twin_ensembles(name, size=4)
    xs = torch.randn(x.shape[0], 4, *x.shape[1:])
    xs = xs * torch.tensor([0.1, 1.0, 10.0, 100.0]).view(1, 4, *[1] * (xs.dim() - 2))
    for ens in (batched, looped):
        ens(xs, per_member=True).pow(2).sum().backward()
    raw = per_copy(looped.members, "grad").norm(dim=1)
    torch.testing.assert_close(per_copy(batched.members, "grad").norm(dim=1), raw, rtol=1e-4, atol=0)
    max_norm = raw.median().item()
    norms_b = batched.clip_member_grad_norms(max_norm)
    norms_l = looped.clip_member_grad_norms(max_norm)
    torch.testing.assert_close(norms_b, norms_l, rtol=1e-4, atol=0)
    torch.testing.assert_close(norms_l, raw, rtol=1e-5, atol=0)
    grads_b, grads_l = per_copy(batched.members, "grad"), per_copy(looped.members, "grad")
    torch.testing.assert_close(grads_b, grads_l, rtol=1e-4, atol=1e-6)
    clipped = grads_l.norm(dim=1)
    for n in range(4):
        if raw[n] > max_norm:  # clipped to max_norm, on its own
            assert clipped[n].item() == pytest.approx(max_norm, rel=1e-4)
        else:  # untouched
            assert clipped[n].item() == pytest.approx(raw[n].item(), rel=1e-6)
    assert (raw > max_norm).any() and (raw <= max_norm).any()


@pytest.mark.parametrize("batched", [True, False])
def test_ensemble_members_are_independently_initialised(batched: bool) -> None:
    ens = Ensemble.from_factory(lambda: mlp([2, 6, 3]), 4, batched=batched)
    assert ens.size == 4 and ens.members.batched == batched
    flat = per_copy(ens.members)
    for i in range(4):
        for j in range(i + 1, 4):
            assert not torch.allclose(flat[i], flat[j])
    # Different members therefore give different predictions.
    out = ens(torch.randn(5, 2))
    assert not torch.allclose(out[:, 0], out[:, 1])


def test_student_heads_are_independently_initialised() -> None:
    student = MultiHeadStudent.from_factories(lambda: mlp([2, 4]), lambda: mlp([4, 3]), 3)
    assert student.num_heads == 3
    rows = student.head_weight_rows()[0]
    assert not torch.allclose(rows[0], rows[1]) and not torch.allclose(rows[1], rows[2])


# --- fallback and validation ---------------------------------------------------------------


class _Custom(nn.Module):
    """A module with no batched form (forces the looped fallback)."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(3, 2)

    def forward(self, x: Tensor) -> Tensor:
        return self.lin(x) * 2


def test_unstackable_modules_fall_back_to_a_loop() -> None:
    members = [_Custom() for _ in range(2)]
    ens = Ensemble(members)
    assert not ens.members.batched
    x = torch.randn(4, 3)
    out = ens(x)
    torch.testing.assert_close(out[:, 1], members[1](x))
    assert [tuple(r.shape) for r in ens.members.weight_rows()] == [(2, 2, 4)]
    with pytest.raises(NotStackableError):
        Ensemble([_Custom(), _Custom()], batched=True)


def test_container_validation() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        Ensemble([])
    with pytest.raises(ValueError, match="N"):
        Ensemble.from_factory(lambda: mlp([2, 3]), 0)
    with pytest.raises(ValueError, match="M"):
        MultiHeadStudent(mlp([2, 3]), [])
    with pytest.raises(ValueError, match="M"):
        MultiHeadStudent.from_factories(lambda: mlp([2, 3]), lambda: mlp([3, 2]), 0)
