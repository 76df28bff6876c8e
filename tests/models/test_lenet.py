"""LeNet parts: the pooled feature map size sets the heads' input width."""

import torch
from torch import nn

from hydraplus.models.lenet import PoolTo, lenet_core, lenet_head, lenet_member


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
