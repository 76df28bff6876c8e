"""The fastconv architecture (gpu-cifar10's): shapes, core + head = a member, stacked = looped,
channels-last, every student method built from it, and its settings checked."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from hydraplus.config import StudentSpec, load_config
from hydraplus.core.batched import NotStackableError, stack
from hydraplus.core.containers import Ensemble, MultiHeadStudent
from hydraplus.core.memory_format import use_channels_last
from hydraplus.methods import get_method
from hydraplus.models.fastconv import Scale, fastconv_core, fastconv_head, fastconv_member
from hydraplus.models.registry import check_settings
from hydraplus.pipeline.builders import build_ensemble, build_student

WIDTHS = (4, 8, 6)
ATOL = 1e-5


def tiny_member(**kwargs) -> nn.Sequential:
    return fastconv_member(num_classes=5, widths=WIDTHS, stem_width=3, **kwargs)


def with_statistics(modules: list[nn.Module]) -> list[nn.Module]:
    """Batch norms with non-default statistics and affine parameters, as after training."""
    with torch.no_grad():
        for m in (m for module in modules for m in module.modules()):
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.normal_()
                m.running_var.uniform_(0.5, 2.0)
                m.weight.normal_()
                m.bias.normal_()
    return modules


def test_default_parts_have_the_published_shapes() -> None:
    x = torch.randn(2, 3, 32, 32)
    member, core, head = fastconv_member(), fastconv_core(), fastconv_head()
    assert member(x).shape == (2, 10)
    features = core(x)
    assert features.shape == (2, 256, 8, 8)  # stem + blocks of 64 and 256 channels, two halvings
    assert head(features).shape == (2, 10)
    convs = [m for m in member.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [32, 64, 64, 256, 256, 256, 256]
    assert all(c.kernel_size == (3, 3) and c.bias is None for c in convs)
    assert isinstance(member[-1], nn.Linear) and isinstance(member[-3], nn.AdaptiveMaxPool2d)
    # one block: conv -> max-pool 2 -> BatchNorm -> GELU -> conv -> BatchNorm -> GELU
    assert [type(m) for m in member[3]] == [nn.Conv2d, nn.MaxPool2d, nn.BatchNorm2d, nn.GELU,
                                           nn.Conv2d, nn.BatchNorm2d, nn.GELU]


@pytest.mark.parametrize("core_blocks", [0, 1, 2, 3])
def test_core_then_head_is_the_member(core_blocks: int) -> None:
    member = with_statistics([tiny_member(logit_scale=0.25, bias=False)])[0].eval()
    core = fastconv_core(widths=WIDTHS, blocks=core_blocks, stem_width=3)
    head = fastconv_head(num_classes=5, widths=WIDTHS, blocks=3 - core_blocks, stem_width=3,
                         logit_scale=0.25, bias=False)
    composed = nn.Sequential(*core, *head)
    composed.load_state_dict(member.state_dict())  # the same layers, in the same order
    composed.eval()
    x = torch.randn(4, 3, 16, 16)
    torch.testing.assert_close(composed(x), member(x), rtol=0, atol=0)


def test_logit_scale_scales_the_logits_of_a_bias_free_classifier() -> None:
    scaled = tiny_member(logit_scale=0.125, bias=False).eval()
    plain = tiny_member(bias=False).eval()
    last, moved = f"{len(scaled) - 1}.", f"{len(plain) - 1}."  # the classifier sits after the Scale
    plain.load_state_dict({moved + k[len(last):] if k.startswith(last) else k: v
                           for k, v in scaled.state_dict().items()})
    assert any(isinstance(m, Scale) for m in scaled) and not any(isinstance(m, Scale) for m in plain)
    x = torch.randn(3, 3, 16, 16)
    torch.testing.assert_close(scaled(x), 0.125 * plain(x))


@pytest.mark.parametrize("train", [True, False])
@pytest.mark.parametrize("channels_last", [False, True])
def test_stacked_members_and_heads_equal_looped_ones(train: bool, channels_last: bool) -> None:
    members = with_statistics([tiny_member(logit_scale=0.5) for _ in range(3)])
    stacked, looped = (Ensemble(copy.deepcopy(members), batched=b) for b in (True, False))
    assert stacked.members.batched and not looped.members.batched
    heads = with_statistics([fastconv_head(num_classes=5, widths=WIDTHS, logit_scale=0.5) for _ in range(4)])
    core = fastconv_core(widths=WIDTHS, stem_width=3)
    students = [MultiHeadStudent(copy.deepcopy(core), copy.deepcopy(heads), batched=b) for b in (True, False)]
    models = [stacked, looped, *students]
    for model in models:
        model.train(train)
        if channels_last:
            use_channels_last(model)
    x = torch.randn(6, 3, 16, 16)
    per_member = torch.randn(6, 3, 3, 16, 16)  # each member its own images, as in training
    torch.testing.assert_close(stacked(x), looped(x), rtol=0, atol=ATOL)
    torch.testing.assert_close(stacked(per_member, per_member=True), looped(per_member, per_member=True),
                               rtol=0, atol=ATOL)
    torch.testing.assert_close(students[0](x), students[1](x), rtol=0, atol=ATOL)
    assert students[0](x).shape == (6, 4, 5)
    for a, b in zip(students[0].head_weight_rows(), students[1].head_weight_rows(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_channels_last_gives_the_same_outputs() -> None:
    member = with_statistics([tiny_member()])[0].eval()
    nhwc = use_channels_last(copy.deepcopy(member))
    x = torch.randn(3, 3, 16, 16)
    torch.testing.assert_close(nhwc(x), member(x), rtol=0, atol=ATOL)
    assert next(m for m in nhwc.modules() if isinstance(m, nn.Conv2d)).weight.is_contiguous(
        memory_format=torch.channels_last)


def test_heads_that_cannot_stack_run_in_a_loop() -> None:
    heads = [fastconv_head(num_classes=5, widths=WIDTHS, logit_scale=s) for s in (0.5, 0.25)]
    with pytest.raises(NotStackableError, match="differ in factor"):
        stack(heads)
    with pytest.raises(NotStackableError):
        MultiHeadStudent(fastconv_core(widths=WIDTHS, stem_width=3), heads, batched=True)
    student = MultiHeadStudent(fastconv_core(widths=WIDTHS, stem_width=3), heads)  # automatic: loops
    assert not student.heads.batched
    x = torch.randn(2, 3, 16, 16)
    out = student(x)
    features = student.core(x)
    torch.testing.assert_close(out, torch.stack([h(features) for h in heads], dim=1))


@pytest.mark.parametrize("method", ["hydra+", "hydra", "drop", "gauss", "endd"])
def test_every_method_builds_its_student_from_fastconv(method: str) -> None:
    spec = StudentSpec(method, heads=3 if get_method(method).multi_head else 1, samples=4)
    student = get_method(method).build(fastconv_core(widths=WIDTHS, stem_width=3),
                                       lambda: fastconv_head(num_classes=5, widths=WIDTHS), spec,
                                       batched=True)
    out = student(torch.randn(2, 3, 16, 16))
    assert out.shape == (2, 3 if get_method(method).multi_head else 4, 5)
    assert torch.isfinite(out).all()


def test_the_gpu_cifar10_preset_builds_every_model() -> None:
    config = load_config("gpu-cifar10", members=2)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        ensemble = build_ensemble(config, batched=True).eval()
        assert ensemble(x).shape == (2, 2, 10)
        for spec in config.students:
            student = build_student(config, spec, batched=True).eval()
            k = spec.heads if get_method(spec.method).multi_head else spec.samples
            assert student(x).shape == (2, k, 10), spec.name


@pytest.mark.parametrize(("part", "settings", "message"), [
    ("member", {"widths": []}, "widths must be one or more positive integers"),
    ("member", {"widths": [8, 0]}, "widths must be one or more positive integers"),
    ("member", {"activation": "tanh"}, "activation must be one of ('gelu', 'relu'), got 'tanh'"),
    ("member", {"logit_scale": 0.0}, "logit_scale must be > 0, got 0.0"),
    ("core", {"widths": [8, 8], "blocks": 3}, "core blocks must be an integer in [0, 2]"),
    ("head", {"blocks": -1}, "head blocks must be an integer in [0, 3]"),
])
def test_bad_settings_are_clear_errors(part: str, settings: dict, message: str) -> None:
    factory = {"member": fastconv_member, "core": fastconv_core, "head": fastconv_head}[part]
    with pytest.raises(ValueError) as info:
        factory(**settings)
    assert message in str(info.value)


def test_the_registry_checks_fastconv_settings() -> None:
    check_settings("fastconv", {"member": {"num_classes": 10, "widths": [64, 256, 256]},
                                "core": {"blocks": 2}, "head": {"blocks": 1, "logit_scale": 0.1}})
    with pytest.raises(ValueError, match="bad settings for fastconv head"):
        check_settings("fastconv", {"head": {"in_features": 256}})


def test_relu_blocks() -> None:
    member = fastconv_member(num_classes=5, widths=WIDTHS, stem_width=3, activation="relu")
    assert any(isinstance(m, nn.ReLU) for m in member.modules())
    assert not any(isinstance(m, nn.GELU) for m in member.modules())
    assert member(torch.randn(2, 3, 16, 16)).shape == (2, 5)
