"""Small configs and tiny architectures shared by the tests (one definition each)."""

from __future__ import annotations

import gzip
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from hydraplus.config import read_config, scale_epochs, with_members
from hydraplus.data.images import ImageProblem, RawImages, make_image_problem
from hydraplus.models import (
    fastconv_core,
    fastconv_head,
    fastconv_member,
    lenet_core,
    lenet_head,
    lenet_member,
    mlp,
    resnet_core,
    resnet_head,
    resnet_member,
)

Factory = Callable[[], nn.Module]


def toy_config(name: str = "toy-spiral", *, epochs: int = 2, members: int = 2,
               students: list[dict[str, Any]] | None = None,
               batch_size: int | None = None) -> dict[str, Any]:
    """A built-in toy config's JSON, shortened: ``epochs`` for everything, N = ``members`` and
    ``students`` (default: one Hydra+ student with M = N); ``batch_size`` (if given) for the
    ensemble and the students."""
    raw = with_members(scale_epochs(read_config(name), epochs), members)
    raw["students"] = students if students is not None else [{"method": "hydra+", "heads": members}]
    if batch_size is not None:
        raw["ensemble"]["batch_size"] = raw["student"]["batch_size"] = batch_size
    return raw


def image_config(*, members: int = 2, epochs: int = 1, students: list[dict[str, Any]] | None = None,
                 widths: tuple[int, int] = (4, 4), **sections: Any) -> dict[str, Any]:
    """A tiny LeNet config for 32 x 32 RGB images with 10 classes; ``widths`` are its two
    convolutions' channels; ``sections`` replace or extend the ``data``, ``ensemble`` and
    ``student`` sections (or replace ``name``)."""
    raw: dict[str, Any] = {
        "name": "tiny-images", "task": "classification",
        "data": {"name": "npz", "path": "unused.npz"},
        "arch": {"name": "lenet",
                 "member": {"num_classes": 10, "in_channels": 3, "widths": list(widths), "hidden": 8},
                 "core": {"in_channels": 3, "widths": list(widths)},
                 "head": {"in_features": 16 * widths[1], "hidden": 8, "num_classes": 10}},
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


def image_problem(n: int = 90, seed: int = 0) -> ImageProblem:
    """``n`` random 32 x 32 RGB images with labels 0..9 (for `image_config` runs)."""
    g = torch.Generator().manual_seed(seed)
    raw = RawImages(torch.randint(0, 256, (n, 3, 32, 32), generator=g, dtype=torch.uint8),
                    torch.randint(0, 10, (n,), generator=g))
    return make_image_problem("tiny", raw, seed=seed, num_classes=10)


def write_fashion_mnist(folder: Path, train: int = 60, test: int = 20, seed: int = 0,
                        size: int = 28) -> Path:
    """Random Fashion-MNIST-like gzip IDX files (``size`` x ``size`` grey images, labels 0..9 in
    turn) with ``train`` training and ``test`` test images, as Debian installs them."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", train), ("t10k", test)):
        for kind, array in (("images-idx3", rng.integers(0, 256, (n, size, size))),
                            ("labels-idx1", np.arange(n) % 10)):
            header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
            raw = header + array.astype(np.uint8).tobytes()
            (folder / f"{prefix}-{kind}-ubyte.gz").write_bytes(gzip.compress(raw))
    return folder


# name: (member, core, head, task, input shape of one example); tiny widths, same layer types as
# the paper's spiral/regression MLPs, SVHN LeNet and CIFAR-10 ResNet, and gpu-cifar10's fastconv; 3 classes.
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
    "fastconv": (lambda: fastconv_member(num_classes=3, widths=(4, 6, 6), stem_width=4, logit_scale=0.5),
                 lambda: fastconv_core(widths=(4, 6, 6), stem_width=4),
                 lambda: fastconv_head(num_classes=3, widths=(4, 6, 6), logit_scale=0.5),
                 "classification", (3, 16, 16)),
}


class TinyCNN(nn.Module):
    """A user's own architecture (hydraplus ships nothing like it): conv, pool, linear."""

    def __init__(self, width: int = 6, classes: int = 3, channels: int = 1):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(channels, width, 3, padding=1), nn.GELU(),
                                      nn.AdaptiveAvgPool2d(2), nn.Flatten())
        self.hidden = nn.Sequential(nn.Linear(4 * width, 16), nn.GELU())
        self.classifier = nn.Linear(16, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.hidden(self.features(x)))


def blob_images(n: int = 240, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """8 x 8 one-channel images whose class (of 3) is the quadrant that holds a bright blob."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 3, (n,), generator=g)
    x = 0.3 * torch.randn(n, 1, 8, 8, generator=g)
    for i, label in enumerate(y.tolist()):
        r, c = divmod(label, 2)
        x[i, 0, 4 * r: 4 * r + 4, 4 * c: 4 * c + 4] += 1.0
    return x, y


def train_members(members: list[nn.Module], x: torch.Tensor, y: torch.Tensor,
                  steps: int = 60) -> list[nn.Module]:
    """Each member trained briefly with Adam on random batches of (x, y); returned in eval mode."""
    for i, member in enumerate(members):
        torch.manual_seed(i)
        opt = torch.optim.Adam(member.parameters(), lr=0.02)
        for _ in range(steps):
            idx = torch.randint(0, len(x), (64,))
            loss = nn.functional.cross_entropy(member(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return [m.eval() for m in members]


def numbers_in(value: Any) -> list[float]:
    """Every number in a JSON-like value (dicts and lists walked), for finiteness checks."""
    if isinstance(value, dict):
        return [x for v in value.values() for x in numbers_in(v)]
    if isinstance(value, list):
        return [x for v in value for x in numbers_in(v)]
    return [float(value)] if isinstance(value, int | float) and not isinstance(value, bool) else []
