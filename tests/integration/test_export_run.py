"""`hydraplus export` on a trained run: every model as a torch.export program that reproduces it,
with a model card."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from _dummies import image_config, image_problem, toy_config
from hydraplus import api
from hydraplus.cli import main
from hydraplus.core.spread import spread
from hydraplus.pipeline.config_run import TrainedModels, run_experiment
from hydraplus.pipeline.run_folder import read_spread_scales
from hydraplus.pipeline.runs import open_run

# M = 3 heads get the lambda tabulated for the nearest M (5), as the config warns.
pytestmark = pytest.mark.filterwarnings(
    "ignore:.*no lambda for M = 3 in student:hydraplus.config.ConfigWarning")


@pytest.fixture(scope="module")
def spiral_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, TrainedModels]:
    config = toy_config(epochs=2, members=3,
                        students=[{"method": m, "heads": 3} if m == "hydra+" else {"method": m}
                                  for m in ("hydra+", "drop", "gauss", "endd")])
    run_dir = tmp_path_factory.mktemp("export") / "run"
    _, models = run_experiment(config, run_dir, seed=0, progress=False)
    return run_dir, models


def test_every_model_is_exported_and_reproduced(spiral_run: tuple[Path, TrainedModels],
                                                capsys: pytest.CaptureFixture[str]) -> None:
    run_dir, models = spiral_run
    assert main(["export", str(run_dir), "--quiet"]) == 0
    out = run_dir / "export"
    assert capsys.readouterr().out.strip() == str(out)
    x = torch.randn(7, 2)  # a batch size the export never saw
    for name, model in models.all().items():
        program = torch.export.load(out / f"{name}.pt2").module()
        card = json.loads((out / f"{name}.json").read_text())
        assert card["model"] == name and card["input_shape"] == ["batch", 2]
        model.eval()
        with torch.no_grad():
            torch.manual_seed(3)
            got = program(x)
            torch.manual_seed(3)
            expected = model.concentrations(x) if name == "endd" else model(x)
        torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)
        if name == "endd":
            assert got.shape == (7, 3) and (got > 0).all() and "Dirichlet concentrations" in card["output"]
        else:
            assert got.shape == (7, 3, 3)  # [batch, K = 3 heads / members / samples, classes]


def test_only_the_named_models_and_unknown_names_are_an_error(
        spiral_run: tuple[Path, TrainedModels], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_dir, _ = spiral_run
    assert main(["export", str(run_dir), "--models", "hydra+-3", "--out", str(tmp_path / "x"),
                 "--quiet"]) == 0
    assert sorted(p.name for p in (tmp_path / "x").iterdir()) == ["hydra+-3.json", "hydra+-3.pt2"]
    capsys.readouterr()
    assert main(["export", str(run_dir), "--models", "hydra++", "--out", str(tmp_path / "y")]) == 1
    err = capsys.readouterr().err
    assert "has no model(s) ['hydra++']; it has ['drop', 'endd', 'ensemble', 'gauss', 'hydra+-3']" in err
    assert not (tmp_path / "y").exists()


def test_a_spread_scaled_student_is_exported_with_its_scale(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    for where in ("hydraplus.pipeline.config_run", "hydraplus.pipeline.runs"):
        monkeypatch.setattr(f"{where}.load_problem", lambda *a, **k: image_problem())
    run_dir = tmp_path / "run"
    run_experiment(image_config(epochs=1, students=[{"method": "hydra+", "heads": 2}]), run_dir, seed=0,
                   progress=False)
    assert read_spread_scales(run_dir) == {}  # nothing to export before an evaluation fitted it
    api.evaluate_run(run_dir, shifts=False)
    scale = json.loads((run_dir / "evaluation.json").read_text())["models"]["hydra+-2-spread"]["spread_scale"]
    assert main(["export", str(run_dir), "--models", "hydra+-2-spread", "--out", str(tmp_path / "x"),
                 "--quiet"]) == 0
    card = json.loads((tmp_path / "x" / "hydra+-2-spread.json").read_text())
    assert card["spread_scale"] == scale and card["method"] == "hydra+" and card["model"] == "hydra+-2-spread"
    program = torch.export.load(tmp_path / "x" / "hydra+-2-spread.pt2").module()
    student = open_run(run_dir).models.models["hydra+-2"].eval()
    x = image_problem().x_test[:5]
    with torch.no_grad():
        expected = spread(student(x), scale, "classification").float()
    torch.testing.assert_close(program(x), expected, rtol=0, atol=1e-5)
