"""`export_onnx`: students as ONNX graphs with their uncertainty, run by onnxruntime and checked
against PyTorch (trained runs through `hydraplus export --format onnx`:
tests/integration/test_onnx_run.py)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from hydraplus.config import StudentSpec
from hydraplus.core.containers import MultiHeadStudent
from hydraplus.core.stochastic import DirichletStudent, DropoutStudent, GaussianStudent
from hydraplus.core.uncertainty import classification_uncertainty
from hydraplus.export.onnx import (
    MISSING,
    TOLERANCE,
    OnnxUnavailableError,
    compare,
    digamma,
    dirichlet_uncertainty,
    export_onnx,
    onnx_view,
)
from hydraplus.models import lenet_core, lenet_head, mlp_core, mlp_head
from hydraplus.pipeline.distil import Distilled

ort = pytest.importorskip("onnxruntime")


def session(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def run(path: Path, x: Tensor) -> dict[str, Tensor]:
    s = session(path)
    names = [o.name for o in s.get_outputs()]
    return dict(zip(names, (torch.from_numpy(o) for o in s.run(None, {"input": x.numpy()})), strict=True))


def expected(model: nn.Module, task: str, x: Tensor) -> dict[str, Tensor]:
    view = onnx_view(model, task)
    with torch.no_grad():
        return dict(zip(view.names, view(x), strict=True))


def mlp_student(outputs: int = 3, features: int = 2) -> MultiHeadStudent:
    return MultiHeadStudent(mlp_core(features, 8, 2), [mlp_head(8, 2, outputs) for _ in range(3)])


def lenet_student() -> MultiHeadStudent:
    return MultiHeadStudent(lenet_core(widths=(4, 2)), [lenet_head(32, 8, 3) for _ in range(3)])


@pytest.mark.parametrize(("build", "shape"), [(mlp_student, (2,)), (lenet_student, (3, 16, 16))],
                         ids=["mlp", "lenet"])
def test_multi_head_students_give_every_output_within_tolerance_at_any_batch_size(
        build, shape: tuple[int, ...], tmp_path: Path) -> None:
    torch.manual_seed(0)
    student = build()
    difference = export_onnx(student, torch.randn(2, *shape), tmp_path / "s.onnx", "classification")
    assert 0 <= difference <= TOLERANCE
    for batch in (1, 7):
        x = torch.randn(batch, *shape)
        got, want = run(tmp_path / "s.onnx", x), expected(student, "classification", x)
        assert list(got) == ["outputs", "probs", "predictive", "aleatoric", "epistemic"]
        for name in want:
            torch.testing.assert_close(got[name], want[name], rtol=0, atol=TOLERANCE)
        assert got["outputs"].shape == (batch, 3, 3) and got["epistemic"].shape == (batch,)
        with torch.no_grad():
            logits = student(x)
        torch.testing.assert_close(got["probs"], logits.softmax(-1).mean(1), rtol=0, atol=TOLERANCE)
        torch.testing.assert_close(got["aleatoric"], classification_uncertainty(logits)["aleatoric"].float(),
                                   rtol=0, atol=TOLERANCE)


def test_regression_students_give_the_mixture_mean_and_variances(tmp_path: Path) -> None:
    torch.manual_seed(0)
    student = mlp_student(outputs=2, features=1)
    assert export_onnx(student, torch.randn(2, 1), tmp_path / "r.onnx", "regression") <= TOLERANCE
    x = torch.randn(7, 1)
    got = run(tmp_path / "r.onnx", x)
    assert list(got) == ["outputs", "mean", "variance", "predictive", "aleatoric", "epistemic"]
    for name, value in expected(student, "regression", x).items():
        torch.testing.assert_close(got[name], value, rtol=0, atol=TOLERANCE)
    with torch.no_grad():
        out = student(x)
    torch.testing.assert_close(got["mean"], out[..., 0].mean(1), rtol=0, atol=TOLERANCE)
    torch.testing.assert_close(got["epistemic"], out[..., 0].var(1, unbiased=False), rtol=0, atol=TOLERANCE)
    torch.testing.assert_close(got["predictive"], got["aleatoric"] + got["epistemic"])


def test_digamma_matches_torch_from_one_to_huge_concentrations() -> None:
    x = torch.cat([torch.linspace(1, 20, 2000), torch.logspace(1, 14, 2000)])
    torch.testing.assert_close(digamma(x).double(), torch.digamma(x.double()), rtol=1e-6, atol=1e-5)


def test_dirichlet_uncertainty_is_the_limit_of_the_sampled_estimate() -> None:
    alpha = torch.tensor([[0.5, 2.0, 1.0], [30.0, 1.0, 1.0], [3.0, 3.0, 3.0]], dtype=torch.float64)
    closed = dirichlet_uncertainty(alpha)
    draws = torch.distributions.Dirichlet(alpha).sample((200_000,)).clamp_min(1e-300).log().transpose(0, 1)
    sampled = classification_uncertainty(draws)
    for name in ("predictive", "aleatoric", "epistemic"):
        torch.testing.assert_close(closed[name], sampled[name], rtol=0, atol=0.01)
    torch.testing.assert_close(closed["probs"], alpha / alpha.sum(-1, keepdim=True))


def test_endd_is_exported_as_concentrations_with_closed_form_uncertainty(tmp_path: Path) -> None:
    torch.manual_seed(0)
    student = DirichletStudent(mlp_core(2, 8, 2), mlp_head(8, 2, 3), samples=3)
    assert export_onnx(student, torch.randn(2, 2), tmp_path / "e.onnx", "classification") <= TOLERANCE
    for batch in (1, 7):
        x = torch.randn(batch, 2)
        got = run(tmp_path / "e.onnx", x)
        assert list(got) == ["concentrations", "probs", "predictive", "aleatoric", "epistemic"]
        for name, value in expected(student, "classification", x).items():
            torch.testing.assert_close(got[name], value, rtol=0, atol=TOLERANCE)
        with torch.no_grad():
            alpha = student.concentrations(x)
        torch.testing.assert_close(got["concentrations"], alpha, rtol=0, atol=TOLERANCE)


@pytest.mark.parametrize("kind", ["drop", "gauss"])
def test_sampling_students_sample_in_the_graph_and_match_on_average(kind: str, tmp_path: Path) -> None:
    torch.manual_seed(0)
    core, head = mlp_core(2, 8, 2), mlp_head(8, 2, 3)
    student = (DropoutStudent(core, head, 3) if kind == "drop"
               else GaussianStudent(core, head, 3, init_log_var=-2.0))
    difference = export_onnx(student, torch.randn(1, 2), tmp_path / "s.onnx", "classification")
    assert difference > TOLERANCE  # a Monte Carlo difference, not a round-off one
    graph, x = session(tmp_path / "s.onnx"), torch.randn(7, 2).numpy()
    first, second = graph.run(None, {"input": x}), graph.run(None, {"input": x})
    assert first[0].shape == (7, 3, 3) and first[1].shape == (7, 3)
    assert not np.array_equal(first[0], second[0])  # fresh samples on every run of a session
    assert (first[4] > 0).any()  # K samples that differ, as in PyTorch: epistemic uncertainty


def test_a_graph_that_does_not_sample_fails_the_statistical_check(tmp_path: Path) -> None:
    torch.manual_seed(0)
    student = DropoutStudent(mlp_core(2, 8, 2), mlp_head(8, 2, 3), 3)
    student.p = 0.0  # what an optimiser removing the dropout would leave
    export_onnx(student, torch.randn(2, 2), tmp_path / "s.onnx", "classification")
    student.p = 0.5
    with pytest.raises(RuntimeError, match="does not reproduce the model"):
        compare(onnx_view(student, "classification"), session(tmp_path / "s.onnx"), torch.randn(2, 2),
                tmp_path / "s.onnx")


def test_missing_packages_are_a_clear_import_error_and_nothing_is_written(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(OnnxUnavailableError, match=r"pip install 'hydraplus\[onnx\]'") as info:
        export_onnx(mlp_student(), torch.randn(2, 2), tmp_path / "s.onnx", "classification")
    assert isinstance(info.value, ImportError)
    assert str(info.value) == f"{MISSING} (missing: onnxruntime)"
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("format", ["pt2", "onnx"])
def test_a_distilled_student_exports_itself_with_a_card(format: str, tmp_path: Path) -> None:
    torch.manual_seed(0)
    student = mlp_student()
    result = Distilled(student, StudentSpec(method="hydra+", heads=3), "classification", nn.Identity(), 0.0)
    path = result.export(tmp_path / f"student.{format}", format=format, example=np.zeros((1, 2), np.float32))
    card = json.loads((tmp_path / ("student.onnx.json" if format == "onnx" else "student.json")).read_text())
    assert card["model"] == "hydra+-3" and card["format"] == format and card["input_shape"] == ["batch", 2]
    x = torch.randn(5, 2)
    with torch.no_grad():
        logits = student(x)
    if format == "pt2":
        assert card["outputs"] == {"output": ["batch", 3, 3]}
        got = torch.export.load(path).module()(x)
    else:
        assert card["outputs"]["probs"] == ["batch", 3] and card["max_abs_difference"] <= TOLERANCE
        got = run(path, x)["outputs"]
    torch.testing.assert_close(got, logits, rtol=0, atol=TOLERANCE)
    with pytest.raises(ValueError, match="example="):
        result.export(tmp_path / "again.onnx", format=format)
