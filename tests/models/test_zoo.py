"""Students cut from members of the model zoos (torchvision, timm, torch-uncertainty, plain modules):
where the heads start, that core + head is the member, and whole distillations of real architectures
(tiny variants, one epoch) evaluated and exported to .pt2 and ONNX."""

from __future__ import annotations

import copy
from collections.abc import Callable
from functools import partial
from pathlib import Path

import pytest
import timm
import torch
import torch_uncertainty.models.classification as tu
import torchvision
from torch import Tensor, nn
from torchvision.models import convnext, efficientnet, mobilenetv3

import hydraplus
from hydraplus.core.containers import MultiHeadStudent
from hydraplus.models.zoo import TimmFeatures, cut_member, fresh_copy, with_outputs

Builder = Callable[[], nn.Module]
CLASSES = 10


def tiny_vit() -> nn.Module:
    return torchvision.models.VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=2,
                                                hidden_dim=32, mlp_dim=64, num_classes=CLASSES)


def tiny_convnext() -> nn.Module:
    """torchvision's ConvNeXt class with two one-block stages."""
    stages = [convnext.CNBlockConfig(16, 32, 1), convnext.CNBlockConfig(32, None, 1)]
    return torchvision.models.ConvNeXt(stages, num_classes=CLASSES)


def tiny_densenet() -> nn.Module:
    return torchvision.models.DenseNet(growth_rate=8, block_config=(2, 2), num_init_features=16,
                                       num_classes=CLASSES)


def tiny_mobilenet_v3() -> nn.Module:
    """torchvision's MobileNetV3 class with three inverted residual blocks (one squeeze-excite)."""
    config = partial(mobilenetv3.InvertedResidualConfig, dilation=1, width_mult=1.0)
    blocks = [config(16, 3, 16, 16, True, "RE", 2), config(16, 3, 48, 24, False, "HS", 2),
              config(24, 3, 64, 32, True, "HS", 1)]
    return mobilenetv3.MobileNetV3(blocks, last_channel=64, num_classes=CLASSES)


def tiny_efficientnet() -> nn.Module:
    """torchvision's EfficientNet class with two MBConv stages."""
    stages = [efficientnet.MBConvConfig(1, 3, 1, 16, 8, 1), efficientnet.MBConvConfig(4, 3, 2, 8, 16, 1)]
    return torchvision.models.EfficientNet(stages, dropout=0.2, num_classes=CLASSES)


def plain_sequential() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(8, CLASSES))


FULL_SIZE: dict[str, tuple[Builder, str]] = {  # full-size zoo members: where their heads start
    "torchvision resnet18": (partial(torchvision.models.resnet18, num_classes=CLASSES), "'fc'"),
    "torchvision mobilenet_v3_small": (partial(torchvision.models.mobilenet_v3_small, num_classes=CLASSES),
                                       "'classifier'"),
    "torchvision efficientnet_b0": (partial(torchvision.models.efficientnet_b0, num_classes=CLASSES),
                                    "'classifier'"),
    "torchvision convnext_tiny": (partial(torchvision.models.convnext_tiny, num_classes=CLASSES),
                                  "'classifier'"),
    "torchvision densenet121": (partial(torchvision.models.densenet121, num_classes=CLASSES), "'classifier'"),
    "torchvision vit_b_16 at 32 x 32": (partial(torchvision.models.vit_b_16, image_size=32,
                                                num_classes=CLASSES), "'heads'"),
    "torchvision googlenet": (partial(torchvision.models.googlenet, num_classes=CLASSES, init_weights=False),
                              "'fc'"),
    "timm resnet18": (partial(timm.create_model, "resnet18", num_classes=CLASSES), "'fc'"),
    "timm convnext_atto": (partial(timm.create_model, "convnext_atto", num_classes=CLASSES), "'head.fc'"),
    "timm mobilenetv3_small_050": (partial(timm.create_model, "mobilenetv3_small_050", num_classes=CLASSES),
                                   "'classifier'"),
    "timm vit_tiny at 32 x 32": (partial(timm.create_model, "vit_tiny_patch16_224", num_classes=CLASSES,
                                         img_size=32, patch_size=8), "'head'"),
    "torch-uncertainty lenet": (partial(tu.lenet, in_channels=3, num_classes=CLASSES), "'fc3'"),
    "torch-uncertainty resnet18": (partial(tu.resnet, in_channels=3, num_classes=CLASSES, arch=18),
                                   "'linear'"),
    "nn.Sequential": (plain_sequential, "'4'"),
}


def images(n: int, seed: int = 0) -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, 32, 32, generator=g), torch.randint(0, CLASSES, (n,), generator=g)


def outputs(module: nn.Module, x: Tensor) -> Tensor:
    with torch.no_grad():
        return module.eval()(x)


@pytest.mark.parametrize("name", list(FULL_SIZE))
def test_the_heads_start_at_the_members_classifier_and_core_plus_head_is_the_member(name: str) -> None:
    build, where = FULL_SIZE[name]
    member = build().eval()
    x, _ = images(2)
    core, head, how = cut_member(member, None, x)
    assert how.endswith(f"heads from {where}"), how
    assert isinstance(core, TimmFeatures) == name.startswith("timm")
    student = MultiHeadStudent(core, [copy.deepcopy(head), fresh_copy(head)]).eval()
    got, expected = outputs(student, x), outputs(member, x)
    assert got.shape == (2, 2, CLASSES)
    torch.testing.assert_close(got[:, 0], expected, atol=1e-5, rtol=1e-4)
    assert not torch.allclose(got[:, 1], expected, atol=1e-3)  # a fresh head: new weights
    assert all(p.data_ptr() not in {q.data_ptr() for q in member.parameters()} for p in core.parameters())


def test_a_classifier_block_is_the_head_unless_it_outweighs_the_rest() -> None:
    x, _ = images(2)
    mobilenet = torchvision.models.mobilenet_v3_small(num_classes=CLASSES)
    _, head, _ = cut_member(mobilenet, None, x)  # Linear, Hardswish, Dropout, Linear: each head has depth
    assert [type(m) for m in head] == [nn.Linear, nn.Hardswish, nn.Dropout, nn.Linear]
    vgg = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(2), nn.Flatten(),
                        nn.Sequential(nn.Linear(16, 256), nn.ReLU(), nn.Linear(256, CLASSES)))
    _, head, how = cut_member(vgg, None, x)  # the block has 6,922 weights, the rest 112: its last layer alone
    assert how == "torch.fx graph, heads from '3.2'" and [type(m) for m in head] == [nn.Linear]


@pytest.mark.parametrize(("split", "head_modules"), [
    ("layer4", ["layer4", "fc"]),
    ("avgpool", ["fc"]),
    ("layer4.1", ["layer4.1", "fc"]),
])
def test_split_names_the_module_where_the_heads_start(split: str, head_modules: list[str]) -> None:
    member = torchvision.models.resnet18(num_classes=CLASSES).eval()
    x, _ = images(2)
    core, head, how = cut_member(member, split, x)
    assert how.endswith(f"heads from {split!r}")
    torch.testing.assert_close(outputs(head, outputs(core, x)), outputs(member, x), atol=1e-5, rtol=1e-4)
    weights = sum(p.numel() for name in head_modules for p in member.get_submodule(name).parameters())
    assert sum(p.numel() for p in head.parameters()) == weights
    assert sum(p.numel() for p in core.parameters()) == sum(p.numel() for p in member.parameters()) - weights
    mobilenet = torchvision.models.mobilenet_v3_small(num_classes=CLASSES)
    _, head, _ = cut_member(mobilenet, "classifier.3", x)
    assert [type(m) for m in head] == [nn.Linear]


def test_split_errors_name_the_path_and_the_nearest_ones() -> None:
    member = torchvision.models.resnet18(num_classes=CLASSES)
    x, _ = images(2)
    with pytest.raises(ValueError, match=r"split 'layer5' names no module of the first member; the closest "
                                         r"module paths are \['layer4', 'layer3', 'layer2', 'layer1', "
                                         r"'layer4.1'\]; "
                                         r"its children are \['conv1', 'bn1'"):
        cut_member(member, "layer5", x)
    with pytest.raises(ValueError, match=r"split 'conv1' is the first child: the core would be empty"):
        cut_member(member, "conv1", x)
    with pytest.raises(ValueError, match=r"not at 'layer4.0.bn1': 2 values cross the cut"):
        cut_member(member, "layer4.0.bn1", x)  # the block's shortcut also reads its input


class Untraceable(nn.Module):
    """Python control flow on a tensor's rank: torch.fx cannot trace it, torch.export can."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.fc = nn.Linear(4, CLASSES)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() == 3:
            x = x.unsqueeze(0)
        return self.fc(self.conv(x).relu().mean((2, 3)))


def test_a_member_torch_fx_cannot_trace_is_cut_from_its_torch_export_graph() -> None:
    member = Untraceable().eval()
    x, y = images(16)
    core, head, how = cut_member(member, None, x[:2])
    assert how == "torch.export graph, heads from 'fc'"
    assert isinstance(head[-1], nn.Linear)  # the aten call as a layer again: re-initialised, diversified
    torch.testing.assert_close(outputs(head, outputs(core, x)), outputs(member, x), atol=1e-5, rtol=1e-4)
    result = hydraplus.distil([member, Untraceable()], (x, y), heads=2, epochs=1, batch_size=8, lam=0.05)
    assert result.model.head_weight_rows()[-1].shape == (2, CLASSES, 5)


def test_googlenet_members_in_training_mode_teach_through_their_main_logits() -> None:
    x, y = images(16)
    members = [torchvision.models.googlenet(aux_logits=True, init_weights=False, num_classes=CLASSES)
               for _ in range(2)]
    with torch.no_grad():
        assert type(members[0](x[:2])).__name__ == "GoogLeNetOutputs"  # logits and two auxiliary logits
    result = hydraplus.distil(members, (x, y), heads=2, epochs=1, batch_size=8, lam=0.05)
    assert outputs(result.model, x[:3]).shape == (3, 2, CLASSES)
    assert [tuple(rows.shape) for rows in result.model.head_weight_rows()] == [(2, CLASSES, 1025)]  # fc
    assert not any(name.startswith("core.aux") for name in result.model.state_dict())


class MeanVariance(nn.Module):
    """(mean, variance): the second output of its last Linear through a softplus."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(3, 8), nn.ReLU())
        self.out = nn.Linear(8, 2)

    def forward(self, x: Tensor) -> Tensor:
        out = self.out(self.body(x))
        return torch.stack([out[:, 0], nn.functional.softplus(out[:, 1])], -1)


def test_with_outputs_ends_a_head_at_its_final_linear_with_new_outputs() -> None:
    x = torch.randn(4, 3)
    _, head, how = cut_member(MeanVariance(), None, x)
    assert how == "torch.fx graph, heads from 'out'"
    assert not isinstance(head, nn.Sequential)  # a graph: the Linear, then the softplus
    new = with_outputs(head, 2)
    assert [type(m) for m in new] == [nn.Linear] and (new[0].in_features, new[0].out_features) == (8, 2)
    chain = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 1), nn.Flatten(0))  # a mean, squeezed
    new = with_outputs(chain, 2)
    assert [type(m) for m in new] == [nn.Linear, nn.ReLU, nn.Linear] and new[-1].out_features == 2
    assert new[0] is not chain[0] and new(torch.randn(5, 8)).shape == (5, 2)
    with pytest.raises(ValueError, match=r"the heads cut from the first member end in Conv2d, not an "
                                         r"nn.Linear that could give 2 outputs; pass split= or student="):
        with_outputs(nn.Sequential(nn.Conv2d(4, 1, 1), nn.Flatten()), 2)


def test_single_head_methods_take_a_zoo_members_classifier() -> None:
    x, y = images(16)
    members = [tiny_convnext().eval() for _ in range(2)]
    for method in ("drop", "gauss", "endd"):
        result = hydraplus.distil(members, (x, y), method=method, epochs=1, batch_size=8)
        assert result.predict(x[:3])["probs"].shape == (3, CLASSES)


MATRIX: dict[str, Builder] = {  # tiny variants of the zoo's classes, distilled end to end
    "torchvision resnet": partial(torchvision.models.ResNet, torchvision.models.resnet.BasicBlock,
                                  [1, 1, 1, 1], num_classes=CLASSES),
    "torchvision mobilenet_v3": tiny_mobilenet_v3,
    "torchvision efficientnet": tiny_efficientnet,
    "torchvision convnext": tiny_convnext,
    "torchvision densenet": tiny_densenet,
    "torchvision vit": tiny_vit,
    "timm resnet10t": partial(timm.create_model, "resnet10t", num_classes=CLASSES),
    "timm convnext_atto": partial(timm.create_model, "convnext_atto", num_classes=CLASSES,
                                  depths=(1, 1, 1, 1)),
    "timm vit": partial(timm.create_model, "vit_tiny_patch16_224", num_classes=CLASSES, img_size=32,
                        patch_size=8, depth=2),
    "torch-uncertainty lenet": partial(tu.lenet, in_channels=3, num_classes=CLASSES),
    "torch-uncertainty resnet": partial(tu.resnet, in_channels=3, num_classes=CLASSES, arch=18,
                                        width_multiplier=0.25),
}


@pytest.mark.parametrize("name", list(MATRIX))
def test_a_zoo_ensemble_distils_evaluates_and_exports(name: str, tmp_path: Path) -> None:
    x, y = images(24)
    members = [MATRIX[name]().eval() for _ in range(2)]
    result = hydraplus.distil(members, (x[:16], y[:16]), heads=2, epochs=1, batch_size=8, lam=0.05)
    assert isinstance(result.model, MultiHeadStudent) and result.model.num_heads == 2
    metrics = result.evaluate((x[16:], y[16:]), latency_batches=(1,), out=tmp_path)
    assert metrics["test_size"] == 8 and 0 <= metrics["models"]["student"]["clean"]["error"] <= 1
    program = torch.export.load(result.export(tmp_path / "student.pt2", "pt2", example=x[:2])).module()
    with torch.no_grad():
        torch.testing.assert_close(program(x[16:]), outputs(result.model, x[16:]), atol=1e-4, rtol=1e-4)
    assert result.export(tmp_path / "student.onnx", "onnx", example=x[:2]).is_file()
