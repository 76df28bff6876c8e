"""`hydraplus.evaluation.evaluate`: any models, any suite, one schema."""

from __future__ import annotations

import json

import pytest
import torch

from _dummies import TinyCNN, blob_images, toy_config, train_members
from hydraplus.config import parse_config
from hydraplus.data.toy import make_toy
from hydraplus.evaluation import HeldOutSuite, Models, ToySuite, evaluate
from hydraplus.evaluation.held_out import teacher_student_view
from hydraplus.evaluation.toy import evaluate_toy, toy_evaluation
from hydraplus.inputs.contracts import Members
from hydraplus.pipeline.builders import build_ensemble, build_student
from hydraplus.report.compare import check_evaluation


def test_the_toy_suite_gives_the_toy_evaluation() -> None:
    config = parse_config(toy_config(members=3))
    torch.manual_seed(0)
    models = {"ensemble": build_ensemble(config), "hydra+-3": build_student(config, config.students[0])}
    problem = make_toy("spiral", seed=0)
    got = evaluate(models, ToySuite(problem), seed=3)
    toy = evaluate_toy(problem, models, seed=3)
    assert got == toy_evaluation(toy.metrics, "classification", "spiral", toy.members)
    assert got["kind"] == "toy" and list(got["models"]) == ["ensemble", "member", "member-best", "hydra+-3"]
    check_evaluation(got, problem.name)  # what compare reads
    with pytest.raises(ValueError, match="needs the reference model 'ensemble'"):
        evaluate({"hydra+-3": models["hydra+-3"]}, ToySuite(problem))


def test_the_held_out_suite_puts_a_teacher_beside_its_student() -> None:
    x, y = blob_images(60)
    members = train_members([TinyCNN(), TinyCNN()], x, y, steps=10)
    teacher = Members(members)
    student = Members([TinyCNN()])  # any module giving [B, K, D] is a student
    spec = {"name": "mine", "method": "hydra", "epochs": 1, "heads": 1, "lam": {"value": 0.0}}
    models = Models({"teacher": teacher, "mine": student}, "teacher", members=members,
                    train_seconds={"mine": 1.5}, specs={"mine": spec})
    suite = HeldOutSuite(x, y, "classification", x_ood=x + 5, test_name="blobs", ood_name="far",
                         record={"note": "kept"})
    evaluation = evaluate(models, suite, latency_batches=(1,))
    assert evaluation["kind"] == "distil" and list(evaluation["models"]) == [
        "teacher", "member", "member-best", "mine"]
    assert evaluation["problem"] == {"name": "blobs", "test_size": 60, "num_classes": 3, "members": 2,
                                     "probe_name": "far", "probe_size": 60}
    assert evaluation["record"] == {"note": "kept"} and evaluation["models"]["mine"]["train_seconds"] == 1.5
    row = evaluation["models"]["mine"]
    assert row["spec"] == spec and 0 <= row["agreement"] <= 1 and set(row["tv"]) == {
        "predictive", "aleatoric", "epistemic"}
    params = sum(p.numel() for p in members[0].parameters())
    assert evaluation["members"]["rows"][0]["profile"]["params"] == params
    check_evaluation(json.loads(json.dumps(evaluation)), "evaluation.json")
    view = teacher_student_view(evaluation)  # the form report.md and Distilled.metrics take
    assert view["models"]["student"] is row and view["test_size"] == 60 and view["ood_size"] == 60
    alone = evaluate(Models({"mine": student}, "teacher", specs={"mine": spec}), suite, latency_batches=(1,))
    assert list(alone["models"]) == ["mine"] and alone["problem"]["members"] is None
    with pytest.raises(ValueError, match="one student beside its teacher"):
        evaluate(Models({"teacher": teacher, "a": student, "b": student}, "teacher"), suite)
