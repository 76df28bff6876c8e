"""Spread-scaled rows in image evaluations: one after each multi-head student, its scale fitted on
the validation split to the ensemble's mean epistemic entropy, measured like any model."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch

from _dummies import image_config
from hydraplus.config import parse_config
from hydraplus.core.metrics import ClassificationMetrics
from hydraplus.core.predict import predict
from hydraplus.core.spread import mean_epistemic, spread
from hydraplus.data.images import RawImages, make_image_problem
from hydraplus.evaluation import ImageSuite, Models, evaluate
from hydraplus.evaluation.spread import with_spread_scaled
from hydraplus.pipeline.builders import build_ensemble, build_student
from hydraplus.report.compare import check_evaluation


@pytest.fixture(scope="module")
def setup() -> tuple:
    config = parse_config(image_config(members=3, widths=(4, 8), students=[
        {"method": "hydra+", "heads": 2}, {"method": "endd"}]))
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (100, 3, 32, 32), dtype=torch.uint8, generator=g)
    problem = make_image_problem("random", RawImages(x, torch.randint(0, 10, (100,), generator=g)), seed=0,
                                 test_fraction=0.3, num_classes=10)
    torch.manual_seed(1)
    models = Models({"ensemble": build_ensemble(config),
                     **{spec.name: build_student(config, spec) for spec in config.students}},
                    train_seconds={"hydra+-2": 3.0, "endd": 2.0},
                    specs={spec.name: spec.to_dict() for spec in config.students})
    return problem, models


def test_each_multi_head_student_gets_a_spread_row(setup: tuple) -> None:
    problem, models = setup
    result = evaluate(models, ImageSuite(problem, shifts=False), latency_batches=(2,))
    check_evaluation(result, "random")  # what compare reads
    assert list(result["models"]) == ["ensemble", "member", "member-best", "hydra+-2", "hydra+-2-spread",
                                      "endd"]
    row, plain = result["models"]["hydra+-2-spread"], result["models"]["hydra+-2"]
    scale = row["spread_scale"]
    assert scale > 0 and "spread_scale" not in plain and row["train_seconds"] == plain["train_seconds"] == 3.0
    assert row["profile"]["params"] == plain["profile"]["params"]  # the same student
    student, ensemble = models.models["hydra+-2"], models.models["ensemble"]
    val = spread(predict(student, problem.x_val), scale, "classification")  # fitted on validation
    assert mean_epistemic(val, "classification") == pytest.approx(
        mean_epistemic(predict(ensemble, problem.x_val), "classification"), rel=1e-5)
    metrics = ClassificationMetrics(10)  # its test row is the scaled student's
    metrics.update(spread(predict(student, problem.x_test), scale, "classification"), problem.y_test)
    expected = metrics.compute()
    for key in ("error", "nll", "epistemic_entropy"):
        assert row["clean"][key] == pytest.approx(expected[key], rel=1e-5, abs=1e-7), key


def test_no_spread_rows_without_a_validation_split_or_a_multi_head_student(setup: tuple) -> None:
    problem, models = setup
    assert with_spread_scaled(models, problem.x_val[:0], "classification") == (models, {})
    single = Models({name: models.models[name] for name in ("ensemble", "endd")},
                    specs={"endd": models.specs["endd"]})
    assert with_spread_scaled(single, problem.x_val, "classification") == (single, {})
    unnamed = Models(dict(models.models))  # no specs: nothing says which students have heads
    assert with_spread_scaled(unnamed, problem.x_val, "classification")[1] == {}
    assert math.isfinite(with_spread_scaled(models, problem.x_val, "classification")[1]["hydra+-2-spread"])


def test_without_a_validation_split_the_earlier_scale_is_used(setup: tuple) -> None:
    problem, models = setup
    earlier = replace(models, spread_scales={"hydra+-2-spread": 1.5})
    scaled, scales = with_spread_scaled(earlier, problem.x_val[:0], "classification")
    assert scales == {"hydra+-2-spread": 1.5} and scaled.models["hydra+-2-spread"].scale.item() == 1.5
    assert list(scaled.models) == ["ensemble", "hydra+-2", "hydra+-2-spread", "endd"]
    refit = with_spread_scaled(earlier, problem.x_val, "classification")[1]["hydra+-2-spread"]
    assert refit != 1.5  # with a validation split the scale is fitted again
