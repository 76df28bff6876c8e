"""Image runs end to end through the CLI: train (2 seeds), evaluate on an unseen .npz, compare."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from _dummies import image_config, numbers_in
from hydraplus.cli import main
from hydraplus.data.shift import DISTORTIONS, SHIFTS

MODELS = {"ensemble", "member", "member-best", "hydra+-2", "hydra+-2-spread", "hydra-2", "hydra-2-spread",
          "drop", "gauss", "endd"}
SEEDS = (1, 2)
OOD_KEYS = {f"{m}_{s}" for m in ("msp", "predictive", "epistemic") for s in ("auroc", "aupr", "fpr95")}
LOGIT_OOD_KEYS = {f"{m}_{s}" for m in ("energy", "maxlogit") for s in ("auroc", "aupr", "fpr95")}


def _write_images(path: Path, n: int, seed: int, test: int = 0) -> Path:
    """Random 32x32 RGB uint8 images with labels 0..9 (and a test split of ``test`` images)."""
    rng = np.random.default_rng(seed)
    arrays = {"x_train": rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8),
              "y_train": rng.integers(0, 10, n)}
    if test:
        arrays.update(x_test=rng.integers(0, 256, (test, 32, 32, 3), dtype=np.uint8),
                      y_test=rng.integers(0, 10, test))
    np.savez(path, **arrays)
    return path


def tiny_config(ood: Path) -> dict[str, Any]:
    """LeNet widths 4/8, N = 2, one epoch, every student method."""
    return image_config(
        widths=(4, 8),
        students=[{"method": "hydra+", "heads": 2}, {"method": "hydra", "heads": 2},
                  {"method": "drop"}, {"method": "gauss"}, {"method": "endd"}],
        data={"path": "replaced-by-data.npz", "val_fraction": 0.1, "test_fraction": 0.2,
              "ood": {"name": "npz", "path": str(ood), "limit": 40}},
        ensemble={"batch_size": 64},
        student={"batch_size": 64, "t_mean": 1.0, "t_ind": 8.0, "alpha": 0.95, "beta": 0.5,
                 "kl_coeff": 1e-4})


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("images")
    data = _write_images(root / "train.npz", 250, seed=0)
    unseen = _write_images(root / "unseen.npz", 60, seed=1)  # no test split: used whole
    ood = _write_images(root / "ood.npz", 50, seed=2, test=30)
    config = root / "tiny.json"
    config.write_text(json.dumps(tiny_config(ood)))
    out = root / "run"
    seeds = [str(s) for s in SEEDS]
    assert main(["train", str(config), "--seeds", *seeds, "--out", str(out), "--data", str(data),
                 "--quiet", "--latency-batches", "1", "8"]) == 0
    assert main(["evaluate", str(out), "--data", str(unseen), "--ood", str(ood),
                 "--latency-batches", "1", "8", "--quiet"]) == 0
    assert main(["compare", str(out), "--quiet"]) == 0
    return {"out": out, "unseen": out / "eval-unseen"}



@pytest.mark.parametrize("where", ["out", "unseen"])
def test_evaluations_cover_every_model_shift_and_level(pipeline: dict[str, Path], where: str) -> None:
    for seed in SEEDS:
        folder = pipeline[where] / f"seed-{seed}"
        assert (folder / "evaluation.md").stat().st_size > 0
        evaluation = json.loads((folder / "evaluation.json").read_text())
        assert set(evaluation["models"]) == MODELS
        own = json.loads((pipeline["out"] / f"seed-{seed}" / "evaluation.json").read_text())["models"]
        for name in ("hydra+-2-spread", "hydra-2-spread"):  # other data: the run's own fitted scale
            assert evaluation["models"][name]["spread_scale"] == own[name]["spread_scale"] > 0
        for name, row in evaluation["models"].items():
            assert all(math.isfinite(x) for x in numbers_in(row)), name
            assert set(row["clean"]) >= {"error", "ece", "nll", "brier", "predictive_entropy",
                                         "aleatoric_entropy", "epistemic_entropy"}
            assert set(row["shifts"]) == set(DISTORTIONS)
            assert all(len(levels) == 5 and all("ece" in m for m in levels)
                       for levels in row["shifts"].values())
            # EnDD's samples are log-probabilities: no energy or max-logit scores.
            assert set(row["ood"]) == OOD_KEYS | (set() if name == "endd" else LOGIT_OOD_KEYS)
            assert {"params", "flops", "latency_b1_s", "latency_b8_s"} <= set(row["profile"])
            assert sum(row["reliability"]["count"]) == evaluation["problem"]["test_size"]
            hist = row["shift_histograms"]
            assert all(len(hist[k]) == 50 and sum(hist[k]) == pytest.approx(1.0)
                       for k in ("predictive", "aleatoric", "epistemic"))
        assert evaluation["models"]["ensemble"]["tv"]["epistemic"] == 0.0


def test_unseen_data_is_the_whole_file_normalised_like_training(pipeline: dict[str, Path]) -> None:
    evaluation = json.loads((pipeline["unseen"] / "seed-1" / "evaluation.json").read_text())
    assert evaluation["problem"] == {"name": "unseen", "num_classes": 10, "test_size": 60,
                                     "probe_name": "ood", "probe_size": 30}
    run = json.loads((pipeline["out"] / "seed-1" / "config.json").read_text())
    assert len(run["normalization"]["mean"]) == 3 and run["normalization"]["image_shape"] == [3, 32, 32]
    own = json.loads((pipeline["out"] / "seed-1" / "evaluation.json").read_text())
    assert own["problem"]["test_size"] == 50 and own["problem"]["probe_size"] == 30
    assert "train_seconds" in own["models"]["hydra+-2"]


def test_compare_writes_mean_and_std_and_figures(pipeline: dict[str, Path]) -> None:
    text = (pipeline["out"] / "compare.md").read_text()
    assert "run (2 seeds)" in text
    clean = text.split("## Clean test set")[1].split("##")[0]
    rows = [line for line in clean.splitlines() if line.startswith("| ") and "method" not in line]
    assert {line.split(" | ")[0][2:] for line in rows} == MODELS
    assert all(line.count(" ± ") >= 5 for line in rows)
    for kind in SHIFTS:
        assert f"### {kind.capitalize()} shift" in text
    assert "| ECE % | hydra+-2 |" in text
    for png in ("shift-error.png", "shift-ece.png", "shift-nll.png", "shift-predictive-entropy.png",
                "reliability.png", "histograms-vertical-30.png", "error-flops.png"):
        assert (pipeline["out"] / png).stat().st_size > 1000, png
        assert f"]({png})" in text


def test_cli_errors_are_one_line(pipeline: dict[str, Path], tmp_path: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "gray.npz"
    np.savez(bad, x_train=np.zeros((4, 28, 28, 1), np.uint8), y_train=np.zeros(4, np.int64))
    assert main(["evaluate", str(pipeline["out"] / "seed-1"), "--data", str(bad)]) == 1
    assert main(["compare", str(tmp_path)]) == 1
    assert main(["evaluate", str(tmp_path / "missing")]) == 1
    errors = capsys.readouterr().err.splitlines()
    assert len(errors) == 3 and all(e.startswith("hydraplus: error: ") for e in errors)
    assert "differ from the run's training images" in errors[0]
    assert "no evaluation.json" in errors[1] and "run folder not found" in errors[2]
