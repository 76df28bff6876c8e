"""A distillation's output folder is a run: `load_distilled`, ``hydraplus evaluate``, ``compare`` and
``export`` read it, and an interrupted one resumes."""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import hydraplus
from _dummies import TinyCNN, blob_images, toy_config, train_members
from hydraplus.cli import main
from hydraplus.config import StudentSpec
from hydraplus.core.predict import predict
from hydraplus.core.spread import fit_spread_scale, spread
from hydraplus.core.uncertainty import classification_uncertainty
from hydraplus.pipeline.config_run import load_trained, run_experiment
from hydraplus.pipeline.distil import Distilled, load_distilled

# M = 2 heads of the toy run get the lambda tabulated for the nearest M (5), as the config warns.
pytestmark = pytest.mark.filterwarnings(
    "ignore:.*no lambda for M = 2 in student:hydraplus.config.ConfigWarning")

STUDENTS = {"hydra": "hydra+-3", "endd": "endd"}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Distilled], list[nn.Module]]:
    """test.npz and ood.npz, and a user's CNN ensemble distilled into runs hydra/ (Hydra+) and endd/."""
    folder = tmp_path_factory.mktemp("distil-runs")
    x, y = blob_images(180)
    x_test, y_test = blob_images(60, seed=1)
    np.savez(folder / "test.npz", x_test=x_test.numpy(), y_test=y_test.numpy())
    np.savez(folder / "ood.npz", x=np.random.default_rng(2).random((30, 1, 8, 8), np.float32))
    members = train_members([TinyCNN() for _ in range(3)], x, y, steps=40)
    results = {"hydra": hydraplus.distil(members, (x, y), heads=3, lam=0.05, epochs=2, out=folder / "hydra"),
               "endd": hydraplus.distil(members, (x, y), method="endd", epochs=2, out=folder / "endd")}
    return folder, results, members


def one_line_error(capsys: pytest.CaptureFixture[str], message: str) -> None:
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and err.startswith("hydraplus: error: "), err
    assert re.search(message, err), err


@pytest.mark.parametrize("name", ["hydra", "endd"])
def test_the_folder_holds_its_config_and_programs_and_loads_back(
        runs: tuple[Path, dict[str, Distilled], list[nn.Module]], name: str) -> None:
    folder, results, members = runs
    result, run = results[name], folder / name
    meta = json.loads((run / "config.json").read_text())
    assert meta["kind"] == "distil" and meta["task"] == "classification" and meta["seed"] == 0
    assert meta["student"] == STUDENTS[name] and meta["method"] == result.spec.method
    assert meta["input_shape"] == [1, 8, 8] and meta["precision"] == "32" and "torch" in meta["versions"]
    assert StudentSpec.from_dict(meta["spec"]) == result.spec
    assert meta["programs"] == {"student": f"{STUDENTS[name]}/student.pt2", "teacher": "teacher.pt2"}
    loaded = load_distilled(run)
    assert loaded.spec == result.spec and loaded.task == result.task and loaded.folder == run
    assert result.early_stopping is not None and result.early_stopping["max_epochs"] == 2  # the default
    assert loaded.early_stopping == result.early_stopping
    assert loaded.member_validation == result.member_validation
    assert meta["val_fraction"] == 0.1 and meta["spec"]["patience"] == 5
    x = blob_images(7, seed=3)[0]  # a batch size the export never saw
    with torch.no_grad():
        torch.testing.assert_close(loaded.teacher(x), torch.stack([m(x) for m in members], 1))
        if name == "endd":
            torch.testing.assert_close(loaded.model.concentrations(x), result.model.eval().concentrations(x))
            assert loaded.predict(x)["epistemic"].shape == (7,)  # it samples like the trained student
        else:
            torch.testing.assert_close(loaded.model(x), result.model.eval()(x))


def test_evaluate_and_compare_a_distil_run(runs: tuple[Path, dict[str, Distilled], list[nn.Module]],
                                           capsys: pytest.CaptureFixture[str]) -> None:
    folder = runs[0]
    for name in STUDENTS:
        assert main(["evaluate", str(folder / name), "--data", str(folder / "test.npz"), "--ood",
                     str(folder / "ood.npz"), "--latency-batches", "1", "--quiet"]) == 0
        evaluation = json.loads((folder / name / "eval-test" / "evaluation.json").read_text())
        assert evaluation["kind"] == "distil" and evaluation["problem"]["test_size"] == 60
        assert list(evaluation["models"]) == ["teacher", "member", "member-best", STUDENTS[name]]
        # the loaded teacher is one program: each member's metrics, not its cost; picked on validation
        assert "profile" not in evaluation["models"]["member"] and evaluation["members"]["count"] == 3
        assert evaluation["members"]["selected_by"].startswith("validation error (the early-stopping split")
        assert evaluation["models"]["teacher"]["clean"]["error"] < 0.2
        assert "epistemic_auroc" in evaluation["models"][STUDENTS[name]]["ood"]
        assert (folder / name / "eval-test" / "report.md").is_file()
    capsys.readouterr()
    assert main(["compare", *(str(folder / name / "eval-test") for name in STUDENTS), "--out",
                 str(folder), "--quiet"]) == 0
    report = (folder / "compare.md").read_text()
    for name, student in STUDENTS.items():
        assert f"| {name}/teacher | 1 |" in report and f"| {name}/{student} | 1 |" in report
        assert f"| {name}/member | 1 |" in report and f"| {name}/member-best | 1 |" in report


def test_evaluate_needs_data_for_a_distil_run(runs: tuple[Path, dict[str, Distilled], list[nn.Module]],
                                              capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["evaluate", str(runs[0] / "hydra")]) == 1
    one_line_error(capsys, r"is a distil run: pass --data FILE")


@pytest.mark.parametrize("name", ["hydra", "endd"])
def test_export_reproduces_the_loaded_student(runs: tuple[Path, dict[str, Distilled], list[nn.Module]],
                                              name: str) -> None:
    run = runs[0] / name
    loaded = load_distilled(run)
    student = STUDENTS[name]
    x = blob_images(7, seed=3)[0]
    with torch.no_grad():
        want = loaded.model.concentrations(x) if name == "endd" else loaded.model(x)
    assert main(["export", str(run), "--format", "pt2", "--quiet"]) == 0
    assert sorted(p.name for p in (run / "export").iterdir()) == sorted(
        [f"{student}.pt2", f"{student}.json", "teacher.pt2", "teacher.json"])
    card = json.loads((run / "export" / f"{student}.json").read_text())
    assert card["model"] == student and card["input_shape"] == ["batch", 1, 8, 8]
    with torch.no_grad():
        torch.testing.assert_close(torch.export.load(run / "export" / f"{student}.pt2").module()(x), want)

    ort = pytest.importorskip("onnxruntime")
    assert main(["export", str(run), "--format", "onnx", "--quiet"]) == 0
    session = ort.InferenceSession(str(run / "export" / f"{student}.onnx"),
                                   providers=["CPUExecutionProvider"])
    got = torch.from_numpy(session.run(None, {"input": x.numpy()})[0])
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


def test_a_train_run_is_no_distil_run(tmp_path: Path, runs: tuple[Path, dict[str, Distilled], list[nn.Module]]
                                      ) -> None:
    run_experiment(toy_config(epochs=1, members=2), tmp_path / "toy", seed=0, progress=False)
    with pytest.raises(ValueError, match=r"toy is a toy run, not a distil run") as err:
        load_distilled(tmp_path / "toy")
    assert len(str(err.value).splitlines()) == 1
    with pytest.raises(ValueError, match=r"hydra is a distil run .*load it with hydraplus.load_distilled"):
        load_trained(runs[0] / "hydra")


def test_without_out_nothing_stays_on_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The teacher's cache and the checkpoints of a call without ``out`` go in a scratch folder that is
    removed when the call returns, and when it fails (a loop of calls must not fill the disk)."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    x, y = blob_images(60)
    members = train_members([TinyCNN() for _ in range(2)], x, y, steps=5)
    result = hydraplus.distil(members, (x, y), lam=0.05, epochs=1)
    assert result.folder is None and result.model(x[:2]).shape[:2] == (2, 2)
    assert not list(tmp_path.glob("hydraplus-distil-*"))

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("stopped in training")

    monkeypatch.setattr("hydraplus.pipeline.distil.distil_student", broken)
    with pytest.raises(RuntimeError, match="stopped in training"):
        hydraplus.distil(members, (x, y), lam=0.05, epochs=1)
    assert not list(tmp_path.glob("hydraplus-distil-*"))


def test_an_interrupted_run_resumes_and_refuses_other_settings(tmp_path: Path) -> None:
    x, y = blob_images(60)
    members = train_members([TinyCNN() for _ in range(2)], x, y, steps=5)
    out = tmp_path / "run"
    hydraplus.distil(members, (x, y), lam=0.05, epochs=1, out=out)
    meta = json.loads((out / "config.json").read_text())
    del meta["programs"]  # as if stopped after its last checkpoint, before the programs
    (out / "config.json").write_text(json.dumps(meta))
    for program in (out / "teacher.pt2", out / "hydra+-2" / "student.pt2"):
        program.unlink()
    with pytest.raises(ValueError, match=r"has not finished .*resume"):
        load_distilled(out)
    with pytest.raises(ValueError, match=r"cannot resume .*its saved seed do not match"):
        hydraplus.distil(members, (x, y), lam=0.05, epochs=1, out=out, resume=True, seed=1)
    hydraplus.distil(members, (x, y), lam=0.05, epochs=1, out=out, resume=True)
    assert hydraplus.load_distilled(out).teacher is not None and (out / "hydra+-2" / "student.pt2").is_file()


def test_a_teacher_torch_export_cannot_trace_leaves_the_student_alone(tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]
                                                                      ) -> None:
    x, y = blob_images(60)
    members = train_members([TinyCNN() for _ in range(2)], x, y, steps=5)

    def teacher(inputs: torch.Tensor) -> torch.Tensor:  # through NumPy: torch.export cannot trace it
        return torch.from_numpy(np.stack([m(inputs).detach().numpy() for m in members], 1))

    core = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.GELU())
    out = tmp_path / "run"
    hydraplus.distil(teacher, (x, y), student=(core, lambda: nn.Linear(16, 3)), lam=0.05, epochs=1, out=out)
    meta = json.loads((out / "config.json").read_text())
    assert meta["programs"]["teacher"] is None and meta["teacher_not_exported"]
    assert not (out / "teacher.pt2").exists() and load_distilled(out).teacher is None
    x_test, y_test = blob_images(30, seed=1)
    np.savez(tmp_path / "test.npz", x_test=x_test.numpy(), y_test=y_test.numpy())
    assert main(["evaluate", str(out), "--data", str(tmp_path / "test.npz"), "--latency-batches", "1",
                 "--quiet"]) == 0
    evaluation = json.loads((out / "eval-test" / "evaluation.json").read_text())
    assert list(evaluation["models"]) == ["hydra+-2"]
    assert evaluation["record"]["teacher"].startswith("not evaluated: torch.export could not export it")
    assert "its teacher is not evaluated here" in (out / "eval-test" / "report.md").read_text()
    np.savez(tmp_path / "rgb.npz", x_test=np.zeros((4, 3, 8, 8), np.float32), y_test=np.zeros(4, np.int64))
    capsys.readouterr()
    assert main(["evaluate", str(out), "--data", str(tmp_path / "rgb.npz")]) == 1
    one_line_error(capsys, r"rgb\.npz holds inputs of shape \[3, 8, 8\], but the run's student takes "
                           r"\[1, 8, 8\]")


def test_a_cli_distil_folder_compares_right_away(runs: tuple[Path, dict[str, Distilled], list[nn.Module]],
                                                 tmp_path: Path) -> None:
    members = runs[2]
    batch = torch.export.Dim("batch", min=1, max=4096)
    x = blob_images(4)[0]
    for name, member in zip("ab", members, strict=False):
        torch.export.save(torch.export.export(member, (x[:2],), dynamic_shapes=({0: batch},)),
                          tmp_path / f"{name}.pt2")
    x_train, y_train = blob_images(90)
    x_test, y_test = blob_images(30, seed=1)
    np.savez(tmp_path / "data.npz", x_train=x_train.numpy(), y_train=y_train.numpy(), x_test=x_test.numpy(),
             y_test=y_test.numpy())
    out = tmp_path / "out"
    assert main(["distil", "--teacher", str(tmp_path / "a.pt2"), str(tmp_path / "b.pt2"), "--data",
                 str(tmp_path / "data.npz"), "--lam", "0.05", "--epochs", "1", "--latency-batches", "1",
                 "--out", str(out), "--quiet"]) == 0
    meta = json.loads((out / "config.json").read_text())
    assert meta["kind"] == "distil" and meta["inputs"] == "float in [0, 1]" and meta["normalization"] is None
    assert meta["programs"]["teacher"] == "teacher.pt2"
    assert json.loads((out / "evaluation.json").read_text())["kind"] == "distil"
    assert main(["compare", str(out), "--quiet"]) == 0
    assert "| teacher | 1 |" in (out / "compare.md").read_text()


def test_a_distilled_student_is_spread_scaled_on_new_inputs(
        runs: tuple[Path, dict[str, Distilled], list[nn.Module]], tmp_path: Path) -> None:
    folder, results, _ = runs
    result = results["hydra"]
    x_val = blob_images(80, seed=4)[0]  # inputs the members never saw
    scaled = result.spread_scaled(x_val)
    assert scaled.spread_scale == pytest.approx(scaled.model.scale.item()) and result.spread_scale is None
    assert scaled.folder is None and result.folder == folder / "hydra"  # the run folder is left alone
    student, teacher = predict(result.model, x_val), predict(result.teacher, x_val)
    assert scaled.spread_scale == fit_spread_scale(student, teacher, "classification")
    moved = spread(student, scaled.spread_scale, "classification")
    assert torch.allclose(scaled.predict(x_val)["epistemic"], classification_uncertainty(moved)["epistemic"])
    assert torch.allclose(scaled.predict(x_val)["probs"].sum(-1), torch.ones(80))
    again = scaled.spread_scaled((x_val, torch.zeros(80, dtype=torch.long)))  # refits the student as trained
    assert again.spread_scale == pytest.approx(scaled.spread_scale)
    path = scaled.export(tmp_path / "scaled.pt2", example=x_val[:2])
    assert json.loads(path.with_suffix(".json").read_text())["spread_scale"] == scaled.spread_scale
    with torch.no_grad():
        torch.testing.assert_close(torch.export.load(path).module()(x_val[:5]), scaled.model(x_val[:5]))
    with pytest.raises(ValueError, match="'endd' has no heads to spread"):
        results["endd"].spread_scaled(x_val)
