"""The gpu-cifar10 preset end to end on the CPU at a tiny size: `hydraplus train` with --data on a
CIFAR-10-shaped .npz (read as .npz although the preset names the cifar10 folder source) and
--ood-data on an .npz standing in for SVHN, then `hydraplus compare`. Both files are random
images written here, so the test runs wherever the suite does."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from _dummies import numbers_in
from hydraplus.cli import main
from hydraplus.config import read_config, scale_epochs, with_members
from hydraplus.pipeline import train as runner

MULTI_HEAD = ("hydra+-10", "hydra+-10-auto", "hydra+-5", "hydra+-2", "hydra-10")
MODELS = {"ensemble", "member", "member-best", *MULTI_HEAD, *(f"{m}-spread" for m in MULTI_HEAD), "drop",
          "gauss", "endd"}
TINY_WIDTHS = [4, 8, 8]


def tiny_preset(folder: Path) -> Path:
    """gpu-cifar10 with N = 2, one epoch, narrow widths and a few hundred images; every other setting
    (label smoothing, augmentation, batch 1024, bf16, the eight students) as the preset has it."""
    raw = with_members(scale_epochs(read_config("gpu-cifar10"), 1), 2)
    for part in ("member", "core", "head"):
        raw["arch"][part].update(widths=TINY_WIDTHS, stem_width=4)
    raw["data"].update(limit=300, test_limit=60)
    raw["data"]["ood"]["limit"] = 40
    path = folder / "gpu-cifar10-tiny.json"
    path.write_text(json.dumps(raw))
    return path


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("gpu-cifar10")
    rng = np.random.default_rng(0)
    data = root / "cifar10_like.npz"  # 32 x 32 RGB images in 10 classes, in the .npz layout
    np.savez(data, x_train=rng.integers(0, 256, (400, 32, 32, 3), dtype=np.uint8),
             y_train=np.arange(400) % 10, x_test=rng.integers(0, 256, (100, 32, 32, 3), dtype=np.uint8),
             y_test=np.arange(100) % 10)
    ood = root / "svhn_like.npz"  # no SVHN here: random 32 x 32 RGB images stand in for it
    np.savez(ood, x_test=rng.integers(0, 256, (50, 32, 32, 3), dtype=np.uint8), y_test=np.arange(50) % 10)
    smoothing: list[float] = []

    class Spy(runner.EnsembleModule):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            smoothing.append(self.label_smoothing)

    out = root / "run"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(runner, "EnsembleModule", Spy)
        assert main(["train", str(tiny_preset(root)), "--seeds", "0", "--out", str(out), "--data", str(data),
                     "--ood-data", str(ood), "--quiet", "--latency-batches", "1"]) == 0
    assert main(["compare", str(out), "--quiet"]) == 0
    return {"out": out, "seed": out / "seed-0", "smoothing": smoothing}


def test_every_model_is_trained_and_evaluated(run: dict[str, Any]) -> None:
    evaluation = json.loads((run["seed"] / "evaluation.json").read_text())
    assert set(evaluation["models"]) == MODELS
    assert evaluation["problem"] == {"name": "cifar10_like", "num_classes": 10, "test_size": 60,
                                     "probe_name": "svhn_like", "probe_size": 40}
    for name, row in evaluation["models"].items():
        assert all(math.isfinite(x) for x in numbers_in(row)), name
        assert set(row["ood"]) >= {"epistemic_auroc", "predictive_auroc", "msp_auroc"}
    assert (run["out"] / "compare.md").is_file()


def test_members_train_with_the_presets_label_smoothing(run: dict[str, Any]) -> None:
    assert run["smoothing"] == [0.2]
    saved = json.loads((run["seed"] / "config.json").read_text())
    assert saved["config"]["ensemble"]["label_smoothing"] == 0.2  # saved, and compared on --resume
    assert saved["config"]["ensemble"]["augment"] == {"crop_padding": 2, "flip": True}
    assert saved["config"]["arch"]["name"] == "fastconv"
