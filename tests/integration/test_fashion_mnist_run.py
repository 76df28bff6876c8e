"""The cpu-fashion-mnist presets end to end on tiny IDX files: train with --data and --ood-data,
every new metric in evaluation.json, evaluate --ood, compare's tables and figures, held-out classes."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from _dummies import numbers_in, write_fashion_mnist
from hydraplus.cli import main
from hydraplus.config import read_config, scale_epochs, with_members
from hydraplus.data.shift import DISTORTIONS

STUDENTS = [{"method": "hydra+", "heads": 2, "lambda": "auto"}, {"method": "hydra", "heads": 2},
            {"method": "drop"}, {"method": "endd"}]
MODELS = {"ensemble", "member", "member-best", "hydra+-2-auto", "hydra+-2-auto-spread", "hydra-2",
          "hydra-2-spread", "drop", "endd"}
OOD_KEYS = {f"{m}_{s}" for m in ("msp", "predictive", "epistemic") for s in ("auroc", "aupr", "fpr95")}
LOGIT_OOD_KEYS = {f"{m}_{s}" for m in ("energy", "maxlogit") for s in ("auroc", "aupr", "fpr95")}
FIDELITY_KEYS = {"epistemic_spearman", "agreement", "kl"}


def _tiny(name: str, folder: Path) -> Path:
    """The preset with N = 2, one epoch and four students, as a JSON file."""
    raw = with_members(scale_epochs(read_config(name), 1), 2)
    raw["students"] = STUDENTS
    if "ood" in raw["data"]:  # a subset of the 30 OOD images, as the preset's 2,000 of 50,000
        raw["data"]["ood"]["limit"] = 20
    path = folder / f"{name}.json"
    path.write_text(json.dumps(raw))
    return path


def _rgb_npz(path: Path, n: int, seed: int) -> Path:
    """CIFAR-like 32 x 32 RGB images (only a training split, as cifar10_train.npz)."""
    rng = np.random.default_rng(seed)
    np.savez(path, x_train=rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8), y_train=np.arange(n) % 10)
    return path


def _train(config: Path, out: Path, *extra: str) -> None:
    assert main(["train", str(config), "--out", str(out), "--quiet", "--latency-batches", "1", "4",
                 *extra]) == 0


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("fmnist")
    data = write_fashion_mnist(root / "fashion-mnist", train=120, test=40)
    ood = _rgb_npz(root / "cifar.npz", 30, seed=1)
    out = root / "run"
    _train(_tiny("cpu-fashion-mnist", root), out, "--data", str(data), "--ood-data", str(ood))
    assert main(["evaluate", str(out / "seed-0"), "--ood", str(_rgb_npz(root / "other.npz", 12, seed=2)),
                 "--out", str(root / "other-ood"), "--latency-batches", "1", "--quiet"]) == 0
    assert main(["evaluate", str(out / "seed-0"), "--ood", str(ood), "--no-shifts",
                 "--out", str(root / "same-ood"), "--latency-batches", "1", "--quiet"]) == 0
    assert main(["compare", str(out), "--quiet"]) == 0
    return {"root": root, "data": data, "out": out, "seed": out / "seed-0"}



def test_the_run_uses_the_official_test_split_and_grey_ood_images(run: dict[str, Path]) -> None:
    evaluation = json.loads((run["seed"] / "evaluation.json").read_text())
    assert evaluation["problem"] == {"name": "fashion-mnist", "num_classes": 10, "test_size": 40,
                                     "probe_name": "cifar", "probe_size": 20}
    saved = json.loads((run["seed"] / "config.json").read_text())
    assert saved["ood_path"].endswith("cifar.npz") and saved["normalization"]["image_shape"] == [1, 28, 28]


def test_evaluation_json_has_every_new_metric(run: dict[str, Path]) -> None:
    evaluation = json.loads((run["seed"] / "evaluation.json").read_text())
    assert set(evaluation["models"]) == MODELS
    assert evaluation["settings"]["shift_levels"] == {k: list(v) for k, v in DISTORTIONS.items()}
    for name, row in evaluation["models"].items():
        assert all(math.isfinite(x) for x in numbers_in(row)), name
        assert {"error", "ece", "ece_15", "aurc"} <= set(row["clean"])
        assert {k: len(v) for k, v in row["shifts"].items()} == {k: 5 for k in DISTORTIONS}
        # EnDD's samples are log-probabilities: no energy or max-logit scores.
        assert set(row["ood"]) == OOD_KEYS | (set() if name == "endd" else LOGIT_OOD_KEYS)
        assert len(row["risk_coverage"]["risk"]) == 50
        if name == "ensemble":
            assert "fidelity" not in row
            continue
        assert set(row["fidelity"]["clean"]) == FIDELITY_KEYS
        assert {k: len(v) for k, v in row["fidelity"]["shifts"].items()} == {k: 5 for k in DISTORTIONS}
        assert all(set(m) == FIDELITY_KEYS for v in row["fidelity"]["shifts"].values() for m in v)


def test_evaluate_ood_converts_like_the_runs_data_ood(run: dict[str, Path]) -> None:
    evaluation = json.loads((run["root"] / "other-ood" / "evaluation.json").read_text())
    assert evaluation["problem"]["probe_name"] == "other" and evaluation["problem"]["probe_size"] == 12


def test_evaluate_with_the_runs_own_ood_file_takes_the_same_subset(run: dict[str, Path]) -> None:
    trained = json.loads((run["seed"] / "evaluation.json").read_text())
    again = json.loads((run["root"] / "same-ood" / "evaluation.json").read_text())
    assert again["problem"]["probe_size"] == 20
    for name in ("ensemble", "hydra-2", "member"):
        assert again["models"][name]["ood"] == pytest.approx(trained["models"][name]["ood"], abs=1e-9), name


def test_compare_tables_and_figures(run: dict[str, Path]) -> None:
    text = (run["out"] / "compare.md").read_text()
    for heading in ("## Out-of-distribution detection", "## Fidelity to the ensemble",
                    "### Gaussian noise corruption", "### Gaussian blur corruption", "### Rotation shift",
                    "## Calibration and selective prediction", "### FPR95 %"):
        assert heading in text, heading
    assert "ECE-15 %" in text and "AURC %" in text and "| MSP | entropy | epistemic | energy |" in text
    for png in ("shift-error.png", "shift-ece.png", "shift-epistemic-entropy.png", "fidelity-kl.png",
                "fidelity-agreement.png", "fidelity-epistemic-spearman.png", "reliability.png",
                "risk-coverage.png", "histograms-vertical-30.png"):
        assert (run["out"] / png).stat().st_size > 1000, png
        assert f"]({png})" in text


def test_held_out_classes_are_the_ood_set(run: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    out = run["root"] / "heldout"
    raw = json.loads(_tiny("cpu-fashion-mnist-heldout", run["root"]).read_text())
    raw["students"] = [{"method": "hydra+", "heads": 2}]
    config = run["root"] / "heldout.json"
    config.write_text(json.dumps(raw))
    _train(config, out, "--data", str(run["data"]))
    evaluation = json.loads((out / "seed-0" / "evaluation.json").read_text())
    assert evaluation["problem"] == {"name": "fashion-mnist", "num_classes": 7, "test_size": 28,
                                     "probe_name": "held-out classes 5,7,9", "probe_size": 12,
                                     "held_out_classes": [5, 7, 9]}
    assert set(evaluation["models"]["hydra+-2"]["ood"]) == OOD_KEYS | LOGIT_OOD_KEYS
    assert main(["evaluate", str(out / "seed-0"), "--data", str(run["root"] / "cifar.npz")]) == 1
    assert "leaves classes [5, 7, 9] out of training" in capsys.readouterr().err


def test_missing_fashion_mnist_and_ood_files_are_one_line_errors(
        run: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = _tiny("cpu-fashion-mnist", tmp_path)
    assert main(["train", str(config), "--out", str(tmp_path / "a"), "--data", str(tmp_path / "none")]) == 1
    assert main(["train", str(config), "--out", str(tmp_path / "b"), "--data", str(run["data"]),
                 "--ood-data", str(tmp_path / "missing.npz")]) == 1
    errors = capsys.readouterr().err.splitlines()
    assert "apt install dataset-fashion-mnist" in errors[0] and "--data" in errors[0]
    assert "missing.npz" in errors[1] and "--ood-data" in errors[1]


def test_resume_with_another_ood_file_is_refused(run: dict[str, Path],
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    config = _tiny("cpu-fashion-mnist", run["root"])
    assert main(["train", str(config), "--out", str(run["out"]), "--resume", "--data", str(run["data"]),
                 "--ood-data", str(run["root"] / "other.npz"), "--quiet"]) == 1
    assert "its saved ood_path do not match" in capsys.readouterr().err
