"""Any run folder read back as one `Run`, and the API that evaluates, compares and exports it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import hydraplus
from _dummies import TinyCNN, blob_images, toy_config, train_members
from hydraplus import api
from hydraplus.pipeline.runs import open_run


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("runs")
    config = root / "toy.json"
    config.write_text(json.dumps(toy_config(members=2, epochs=2)))
    api.train(config, root / "train", progress=False)
    x, y = blob_images(120)
    members = train_members([TinyCNN(), TinyCNN()], x, y, steps=10)
    hydraplus.distil(members, (x, y), method="hydra", epochs=1, batch_size=20, out=root / "distil")
    data = root / "test.npz"
    test_x, test_y = blob_images(40, seed=1)
    np.savez(data, x_test=test_x.numpy(), y_test=test_y.numpy())
    return {"train": root / "train" / "seed-0", "distil": root / "distil", "data": data}


def test_one_run_shape_for_config_and_distil_runs(runs: dict[str, Path]) -> None:
    train, distil = open_run(runs["train"]), open_run(runs["distil"])
    assert (train.kind, distil.kind) == ("toy", "distil")
    assert next(iter(train.models.models)) == train.models.reference == "ensemble"
    assert list(distil.models.models) == ["teacher", "hydra-2"] and distil.models.reference == "teacher"
    assert distil.methods == {"teacher": None, "hydra-2": "hydra"} and distil.input_shape == [1, 8, 8]
    assert set(distil.exportable("onnx")) == {"hydra-2"}
    assert set(distil.exportable("pt2")) == {"teacher", "hydra-2"}
    assert train.input_shape == [2] and train.evaluation_seed == 0
    assert all((runs["train"] / name / "model.pt").is_file() for name in train.models.models)
    assert (runs["distil"] / "hydra-2" / "early_stopping.json").is_file()  # the one training path's records


def test_evaluate_writes_one_schema_that_compare_reads(runs: dict[str, Path], tmp_path: Path) -> None:
    api.evaluate_run(runs["train"], out=tmp_path / "train")
    api.evaluate_run(runs["distil"], data=runs["data"], out=tmp_path / "distil", latency_batches=(1,))
    for name in ("train", "distil"):
        evaluation = json.loads((tmp_path / name / "evaluation.json").read_text())
        assert set(evaluation) >= {"kind", "task", "models", "problem", "settings", "members"}
    assert not (tmp_path / "distil" / "metrics.json").exists()
    assert "# Distillation report" in (tmp_path / "distil" / "report.md").read_text()
    assert api.compare_runs([tmp_path / "distil"]) == tmp_path / "distil" / "compare.md"
    with pytest.raises(ValueError, match="is a distil run: pass --data FILE"):
        api.evaluate_run(runs["distil"], out=tmp_path / "none")


def test_export_reads_any_run(runs: dict[str, Path], tmp_path: Path) -> None:
    written = api.export_run(runs["distil"], tmp_path / "d")
    assert written == [tmp_path / "d" / "teacher.pt2", tmp_path / "d" / "hydra-2.pt2"]
    card = json.loads((tmp_path / "d" / "hydra-2.json").read_text())
    assert card["method"] == "hydra" and card["input_shape"] == ["batch", 1, 8, 8]
    program = torch.export.load(str(tmp_path / "d" / "hydra-2.pt2")).module()
    assert program(torch.randn(3, 1, 8, 8)).shape == (3, 2, 3)
    assert api.export_run(runs["train"], tmp_path / "t", ["ensemble"]) == [tmp_path / "t" / "ensemble.pt2"]
    with pytest.raises(ValueError, match=r"has no model\(s\) \['teacher'\] to export as onnx"):
        api.export_run(runs["distil"], tmp_path / "o", ["teacher"], format="onnx")


def train_seconds_of(evaluation: Path) -> dict[str, float]:
    rows = json.loads(evaluation.read_text())["models"]
    return {name: row["train"]["train_seconds"] if "train" in row else row.get("train_seconds")
            for name, row in rows.items() if "train" in row or "train_seconds" in row}


def test_evaluating_again_keeps_the_training_times(runs: dict[str, Path], tmp_path: Path) -> None:
    trained = train_seconds_of(runs["train"] / "evaluation.json")
    assert "ensemble" in trained and len(trained) > 1 and all(s > 0 for s in trained.values())
    for name, seconds in trained.items():  # each model folder keeps its own
        assert json.loads((runs["train"] / name / "training.json").read_text()) == {"train_seconds": seconds}
    api.evaluate_run(runs["train"], out=tmp_path / "again")
    assert train_seconds_of(tmp_path / "again" / "evaluation.json") == trained
    copy = tmp_path / "older"  # a run from before training.json: its earlier evaluation keeps them
    shutil.copytree(runs["train"], copy)
    for path in copy.glob("*/training.json"):
        path.unlink()
    api.evaluate_run(copy)
    assert train_seconds_of(copy / "evaluation.json") == trained
