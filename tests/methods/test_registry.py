"""Methods by name: each knows its student, loss terms and export view; a new one is one object."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor, nn

from _dummies import toy_config
from hydraplus.config import StudentSpec, parse_config
from hydraplus.core.containers import MultiHeadStudent
from hydraplus.core.losses import correctness_loss, diversity_loss, l2_penalty
from hydraplus.core.schedules import LambdaSchedule
from hydraplus.core.stochastic import DirichletStudent, DropoutStudent, GaussianStudent
from hydraplus.engine.modules import DistillModule
from hydraplus.methods import StudentMethod, get_method, method_names, register
from hydraplus.methods.base import HeadFactory
from hydraplus.models import mlp
from hydraplus.pipeline.config_run import run_experiment

B, N, M, C = 6, 3, 3, 3


def core() -> nn.Module:
    return mlp([2, 8], final_activation=True)


def head() -> nn.Module:
    return mlp([8, 8, C])


@pytest.mark.parametrize(("name", "kind", "terms"), [
    ("hydra+", MultiHeadStudent, {"correctness", "aggregation", "individuality", "diversity",
                                  "weight_decay"}),
    ("hydra", MultiHeadStudent, {"correctness", "aggregation", "individuality", "diversity",
                                 "weight_decay"}),
    ("drop", DropoutStudent, {"correctness", "aggregation", "individuality", "weight_decay"}),
    ("gauss", GaussianStudent, {"correctness", "aggregation", "individuality", "kl", "weight_decay"}),
    ("endd", DirichletStudent, {"endd", "weight_decay"}),
])
def test_each_method_builds_its_student_and_its_terms(name: str, kind: type, terms: set[str]) -> None:
    method = get_method(name)
    spec = StudentSpec(name, heads=M if method.multi_head else 1, samples=1 if method.multi_head else N,
                       lam=LambdaSchedule(0.5))
    student = method.build(core(), head, spec)
    assert isinstance(student, kind)
    x, y = torch.randn(B, 2), torch.randint(0, C, (B,))
    out = method.loss_terms(student, x, y, torch.randn(B, N, C), "classification", spec, 0.5)
    assert set(out) == terms
    assert all(torch.isfinite(v) for v in out.values())
    assert method.total(out, spec, 0.5).dim() == 0


def test_hydra_plus_total_is_the_papers_sum() -> None:
    spec = StudentSpec("hydra+", heads=M, alpha=0.9, beta=0.5, t_ind=3.0, lam=LambdaSchedule(2.0),
                       weight_decay=1e-3)
    method = get_method("hydra+")
    student = method.build(core(), head, spec)
    x, y, teacher = torch.randn(B, 2), torch.randint(0, C, (B,)), torch.randn(B, N, C)
    terms = method.loss_terms(student, x, y, teacher, "classification", spec, 2.0)
    torch.testing.assert_close(terms["correctness"], correctness_loss(student(x), y))
    torch.testing.assert_close(terms["diversity"], diversity_loss(student.head_weight_rows()))
    torch.testing.assert_close(terms["weight_decay"], l2_penalty(student.parameters()))
    expected = (0.9 * (0.5 * terms["aggregation"] + 0.5 * terms["individuality"])
                + 0.1 * terms["correctness"] + 2.0 * terms["diversity"] + 1e-3 * terms["weight_decay"])
    torch.testing.assert_close(method.total(terms, spec, 2.0), expected)


def test_export_views() -> None:
    spec = StudentSpec("endd", samples=N)
    endd = get_method("endd").build(core(), head, spec)
    view, meaning = get_method("endd").export_view(endd, "classification")
    x = torch.randn(B, 2)
    torch.testing.assert_close(view(x), endd.concentrations(x))
    assert "Dirichlet concentrations" in meaning
    hydra = get_method("hydra+").build(core(), head, StudentSpec("hydra+", heads=M))
    assert get_method("hydra+").export_view(hydra, "regression")[0] is hydra


def test_unknown_method_and_wrong_student_are_refused() -> None:
    with pytest.raises(ValueError, match=r"unknown method 'hydra\+\+'; choose one of \('hydra\+', 'hydra'"):
        get_method("hydra++")
    spec = StudentSpec("gauss", samples=N)
    drop = get_method("drop").build(core(), head, StudentSpec("drop", samples=N))
    with pytest.raises(TypeError, match="method 'gauss' needs a GaussianStudent, got DropoutStudent"):
        DistillModule(drop, "gauss", "classification", spec)
    with pytest.raises(ValueError, match="already registered"):
        register(get_method("drop"))


class CorrectnessOnly(StudentMethod):
    """A method added by a user: Hydra's student trained on the labels only (L1)."""

    name = "test-correctness-only"
    multi_head = True
    student_type = MultiHeadStudent

    def defaults(self, shared: Any, members: int) -> dict[str, Any]:
        return {"alpha": 0.0}

    def build(self, core: nn.Module, head: HeadFactory, spec: StudentSpec,
              batched: bool | None = None) -> nn.Module:
        return MultiHeadStudent(core, [head() for _ in range(spec.heads)], batched)

    def loss_terms(self, student: nn.Module, x: Tensor, y: Tensor, teacher: Tensor, task: str,
                   spec: StudentSpec, lam: float) -> dict[str, Tensor]:
        return {"correctness": correctness_loss(student(x), y), "aggregation": x.new_zeros(()),
                "individuality": x.new_zeros(())}


def test_a_registered_method_runs_from_a_config(tmp_path: Path) -> None:
    if CorrectnessOnly.name not in method_names():
        register(CorrectnessOnly())
    raw = toy_config(epochs=2, members=2, students=[{"method": "test-correctness-only", "heads": 2}])
    config = parse_config(raw)
    assert config.students[0].name == "test-correctness-only-2" and config.students[0].alpha == 0.0
    _, models = run_experiment(config, tmp_path, seed=0, progress=False)
    assert isinstance(models.students["test-correctness-only-2"], MultiHeadStudent)
    assert (tmp_path / "test-correctness-only-2" / "model.pt").is_file()


@pytest.mark.parametrize("name", ["hydra+", "gauss", "endd"])
def test_under_bf16_autocast_every_term_is_float32(name: str) -> None:
    from hydraplus.core.precision import autocast

    method = get_method(name)
    spec = StudentSpec(name, heads=M if method.multi_head else 1, samples=1 if method.multi_head else N,
                       lam=LambdaSchedule(0.5))
    student = method.build(core(), head, spec)
    x, y, teacher = torch.randn(B, 2), torch.randint(0, C, (B,)), torch.randn(B, N, C)
    with autocast("bf16-mixed", "cpu"):
        terms = method.loss_terms(student, x, y, teacher, "classification", spec, 0.5)
        total = method.total(terms, spec, 0.5)
    assert all(value.dtype == torch.float32 for value in terms.values()) and total.dtype == torch.float32
    if name == "hydra+":  # the weights are float32, so the diversity term is exactly the float32 one
        assert terms["diversity"].item() == diversity_loss(student.head_weight_rows()).item()


def test_register_decorates_a_class_and_listings_keep_the_papers_order_first() -> None:
    assert method_names()[:5] == ("hydra+", "hydra", "drop", "gauss", "endd")
    if "test-decorated" not in method_names():

        @register
        class Decorated(CorrectnessOnly):
            name = "test-decorated"

        assert isinstance(Decorated, type) and isinstance(get_method("test-decorated"), Decorated)
    assert method_names()[:5] == ("hydra+", "hydra", "drop", "gauss", "endd")
    assert "test-decorated" in method_names()[5:]
    assert StudentSpec("test-decorated", heads=2).name == "test-decorated-2"  # its naming rule, via spec
