"""Small configs and tiny architectures shared by the tests (one definition each)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from hydraplus.config import read_config, scale_epochs, with_members
from hydraplus.models import lenet_core, lenet_head, lenet_member, mlp, resnet_core, resnet_head, resnet_member

Factory = Callable[[], nn.Module]


def toy_config(name: str = "toy-spiral", *, epochs: int = 2, members: int = 2,
               students: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """A built-in toy config's JSON, shortened: ``epochs`` for everything, N = ``members`` and
    ``students`` (default: one Hydra+ student with M = N)."""
    raw = with_members(scale_epochs(read_config(name), epochs), members)
    raw["students"] = students if students is not None else [{"method": "hydra+", "heads": members}]
    return raw


def image_config(*, members: int = 2, epochs: int = 1, students: list[dict[str, Any]] | None = None,
                 **sections: Any) -> dict[str, Any]:
    """A tiny LeNet config for 32 x 32 RGB images with 10 classes; ``sections`` replace or extend
    the ``data``, ``ensemble`` and ``student`` sections."""
    raw: dict[str, Any] = {
        "name": "tiny-images", "task": "classification",
        "data": {"name": "npz", "path": "unused.npz"},
        "arch": {"name": "lenet",
                 "member": {"num_classes": 10, "in_channels": 3, "widths": [4, 4], "hidden": 8},
                 "core": {"in_channels": 3, "widths": [4, 4]},
                 "head": {"in_features": 64, "hidden": 8, "num_classes": 10}},
        "ensemble": {"members": members, "epochs": epochs, "lr": 0.002, "weight_decay": 1e-4,
                     "batch_size": 32},
        "student": {"epochs": epochs, "lr": 0.002, "weight_decay": 1e-7, "batch_size": 32,
                    "lambda": {str(members): {"value": 0.1}}},
        "students": students if students is not None else [{"method": "hydra+", "heads": members},
                                                           {"method": "drop"}],
    }
    for key, value in sections.items():
        raw[key] = {**raw[key], **value} if isinstance(value, dict) else value
    return raw


# name: (member, core, head, task, input shape of one example); tiny widths, same layer types as
# the paper's spiral/regression MLPs, SVHN LeNet and CIFAR-10 ResNet; 3 classes.
ARCHS: dict[str, tuple[Factory, Factory, Factory, str, tuple[int, ...]]] = {
    "mlp": (lambda: mlp([2, 8, 8, 3]), lambda: mlp([2, 8], final_activation=True),
            lambda: mlp([8, 8, 3]), "classification", (2,)),
    "mlp-regression": (lambda: mlp([1, 8, 8, 2]), lambda: mlp([1, 8], final_activation=True),
                       lambda: mlp([8, 8, 2]), "regression", (1,)),
    "lenet": (lambda: lenet_member(num_classes=3, widths=(4, 6), hidden=8),
              lambda: lenet_core(widths=(4, 2)), lambda: lenet_head(32, 8, 3),
              "classification", (3, 16, 16)),
    "resnet": (lambda: resnet_member(num_classes=3, widths=(4, 4, 6, 6), blocks=1),
               lambda: resnet_core(widths=(4, 6), strides=(1, 2), blocks=1),
               lambda: resnet_head(in_channels=6, width=5, num_classes=3, stride=2, blocks=2),
               "classification", (3, 8, 8)),
}
