"""`hydraplus export --format onnx` on a trained run: every model as one ONNX graph with its
uncertainty, run by onnxruntime and matching PyTorch, with a model card."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from _dummies import toy_config
from hydraplus.api import export_run
from hydraplus.cli import main
from hydraplus.core.uncertainty import classification_uncertainty
from hydraplus.export.onnx import TOLERANCE, dirichlet_uncertainty
from hydraplus.pipeline.config_run import TrainedModels, run_experiment

ort = pytest.importorskip("onnxruntime")

# M = 2 heads get the lambda tabulated for the nearest M (5), as the config warns.
pytestmark = pytest.mark.filterwarnings(
    "ignore:.*no lambda for M = 2 in student:hydraplus.config.ConfigWarning")


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, TrainedModels]:
    config = toy_config(epochs=1, members=2, students=[{"method": "hydra+", "heads": 2}, {"method": "endd"}])
    run_dir = tmp_path_factory.mktemp("onnx") / "run"
    _, models = run_experiment(config, run_dir, seed=0, progress=False)
    return run_dir, models


def test_the_cli_exports_every_model_as_a_graph_that_matches_pytorch(
        toy_run: tuple[Path, TrainedModels], capsys: pytest.CaptureFixture[str]) -> None:
    run_dir, models = toy_run
    assert main(["export", str(run_dir), "--format", "onnx", "--quiet"]) == 0
    out = run_dir / "export"
    assert capsys.readouterr().out.strip() == str(out)
    assert sorted(p.name for p in out.iterdir()) == sorted(
        f"{name}{suffix}" for name in ("endd", "ensemble", "hydra+-2") for suffix in (".onnx", ".onnx.json"))
    x = torch.randn(7, 2)  # a batch size the export never saw
    for name, model in models.all().items():
        card = json.loads((out / f"{name}.onnx.json").read_text())
        assert card["model"] == name and card["format"] == "onnx" and card["input_shape"] == ["batch", 2]
        assert 0 <= card["max_abs_difference"] <= TOLERANCE
        session = ort.InferenceSession(str(out / f"{name}.onnx"), providers=["CPUExecutionProvider"])
        names = [o.name for o in session.get_outputs()]
        assert names == list(card["outputs"])
        got = dict(zip(names, (torch.from_numpy(o) for o in session.run(None, {"input": x.numpy()})),
                       strict=True))
        model.eval()
        with torch.no_grad():
            if name == "endd":
                alpha = model.concentrations(x)
                want = {"concentrations": alpha, **dirichlet_uncertainty(alpha)}
            else:
                logits = model(x)
                want = {"outputs": logits, "probs": logits.softmax(-1).mean(1),
                        **classification_uncertainty(logits)}
        assert sorted(want) == sorted(got)
        for key, value in want.items():  # the graph's outputs are float32
            torch.testing.assert_close(got[key], value.float(), rtol=0, atol=TOLERANCE)
        assert card["outputs"]["probs"] == ["batch", 3] and got["probs"].shape == (7, 3)


def test_export_run_writes_the_named_models_and_pt2_cards_name_their_format(
        toy_run: tuple[Path, TrainedModels], tmp_path: Path) -> None:
    run_dir, _ = toy_run
    assert export_run(run_dir, tmp_path, ["hydra+-2"], format="onnx") == [tmp_path / "hydra+-2.onnx"]
    assert export_run(run_dir, tmp_path, ["hydra+-2"]) == [tmp_path / "hydra+-2.pt2"]
    card = json.loads((tmp_path / "hydra+-2.json").read_text())
    assert card["format"] == "pt2" and card["outputs"] == {"output": ["batch", 2, 3]}
    assert json.loads((tmp_path / "hydra+-2.onnx.json").read_text())["format"] == "onnx"  # not overwritten
    with pytest.raises(ValueError, match="unknown export format 'tflite'"):
        export_run(run_dir, tmp_path, format="tflite")


def test_without_the_onnx_extra_the_cli_says_what_to_install(
        toy_run: tuple[Path, TrainedModels], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    run_dir, _ = toy_run
    monkeypatch.setitem(sys.modules, "onnx", None)
    assert main(["export", str(run_dir), "--format", "onnx", "--out", str(tmp_path / "x")]) == 1
    err = capsys.readouterr().err
    assert ("hydraplus: error: ONNX export needs the optional packages onnx and onnxruntime: "
            "pip install 'hydraplus[onnx]' (missing: onnx)") in err
    assert not (tmp_path / "x").exists()
