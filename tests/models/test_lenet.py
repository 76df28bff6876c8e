"""LeNet parts: the pooled feature map size sets the heads' input width."""

import pytest
import torch
from torch import nn

from hydraplus.models.lenet import MaxPool2, PoolTo, lenet_core, lenet_head, lenet_member


def test_pooled_seven_keeps_a_28_pixel_images_full_feature_map() -> None:
    member = lenet_member(10, 1, (4, 6), 8, pooled=7)
    first_linear = next(m for m in member if isinstance(m, nn.Linear))
    assert first_linear.in_features == 6 * 7 * 7
    assert member(torch.zeros(3, 1, 28, 28)).shape == (3, 10)
    core = lenet_core(1, (4, 6), pooled=7)
    assert core(torch.zeros(3, 1, 28, 28)).shape == (3, 6 * 49)
    assert lenet_head(6 * 49, 8, 10)(core(torch.zeros(3, 1, 28, 28))).shape == (3, 10)


def test_default_pool_averages_to_four_by_four() -> None:
    member = lenet_member(10, 3, (4, 6), 8)
    assert next(m for m in member if isinstance(m, nn.Linear)).in_features == 6 * 16


def test_pooling_before_the_relu_gives_the_values_and_gradients_of_relu_then_pool() -> None:
    torch.manual_seed(0)
    member = lenet_member(10, 3, (4, 6), 8)
    relu_first = nn.Sequential(member[0], nn.ReLU(), nn.MaxPool2d(2), member[3], nn.ReLU(), nn.MaxPool2d(2),
                               *list(member)[6:])
    x = torch.randn(5, 3, 32, 32, requires_grad=True)
    ours, reference = member(x), relu_first(x)
    assert torch.equal(ours, reference)
    for a, b in zip(torch.autograd.grad(ours.square().sum(), [x, member[0].weight]),
                    torch.autograd.grad(reference.square().sum(), [x, member[0].weight]), strict=True):
        assert torch.equal(a, b)


def test_a_map_already_pooled_size_passes_through_with_the_values_and_gradients_of_pooling() -> None:
    torch.manual_seed(0)
    pool = PoolTo(7)
    for shape in [(3, 6, 7, 7), (3, 6, 14, 14)]:  # passed through, pooled
        x = torch.randn(*shape, requires_grad=True).contiguous(memory_format=torch.channels_last)
        ours, reference = pool(x), nn.AdaptiveAvgPool2d(7)(x)
        assert ours.shape == (3, 6, 7, 7) and torch.equal(ours, reference)
        weights = torch.randn(3, 6, 7, 7)
        assert torch.equal(torch.autograd.grad((ours * weights).sum(), x)[0],
                           torch.autograd.grad((reference * weights).sum(), x)[0])
    assert isinstance(pool, nn.AdaptiveAvgPool2d)  # stacked and profiled as the pooling it replaces


def test_max_pool_without_gradients_gives_torchs_values_and_layout() -> None:
    torch.manual_seed(0)
    pool = MaxPool2()
    for shape in [(4, 3, 8, 8), (2, 5, 7, 9)]:  # even, and odd sizes (the last row and column dropped)
        x = torch.randn(*shape)
        x[0, 0, 0, 0] = float("nan")  # NaN wins a window, as in torch's kernel
        x[1, 1, 2:4, 2:4] = 0.5  # a tie
        for laid_out in (x, x.contiguous(memory_format=torch.channels_last)):
            with torch.no_grad():
                ours, reference = pool(laid_out), nn.MaxPool2d(2)(laid_out)
            assert ours.shape == reference.shape
            assert torch.equal(ours.nan_to_num(9.0), reference.nan_to_num(9.0))
            assert ours.isnan()[0, 0, 0, 0]
            assert (ours.is_contiguous(memory_format=torch.channels_last)
                    == reference.is_contiguous(memory_format=torch.channels_last))
    with pytest.raises(RuntimeError, match="too small"), torch.no_grad():
        pool(torch.randn(3, 2, 1, 5))


def test_max_pool_with_gradients_is_torchs_own_ties_included() -> None:
    x = torch.zeros(1, 1, 2, 2, requires_grad=True)  # a four-way tie: torch gives the first all of it
    grad = torch.autograd.grad(MaxPool2()(x).sum(), x)[0]
    assert grad.flatten().tolist() == [1.0, 0.0, 0.0, 0.0]
