"""The member reference: each member of the ensemble evaluated alone, as a one-member ensemble would be."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch

import hydraplus
from _dummies import TinyCNN, image_config, toy_config, train_members
from hydraplus.config import parse_config
from hydraplus.core.containers import Ensemble
from hydraplus.data.images import RawImages, make_image_problem
from hydraplus.data.toy import make_toy
from hydraplus.evaluation.images import evaluate_images
from hydraplus.evaluation.members import mean_row, member_scores, summarize
from hydraplus.evaluation.toy import evaluate_toy
from hydraplus.models.registry import build
from hydraplus.pipeline.builders import build_ensemble, build_members


def _close(a: Any, b: Any, path: str = "") -> None:
    """Every number of ``a`` equals ``b``'s (nested dicts and lists), up to float round-off."""
    if isinstance(a, dict):
        assert set(a) == set(b), path
        for key in a:
            _close(a[key], b[key], f"{path}.{key}")
    elif isinstance(a, list):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _close(x, y, f"{path}[{i}]")
    elif isinstance(a, float) and isinstance(b, float):
        assert a == pytest.approx(b, rel=1e-5, abs=1e-6), path
    else:
        assert a == b, path


def _image_problem() -> Any:
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (80, 3, 32, 32), dtype=torch.uint8, generator=g)
    problem = make_image_problem("random", RawImages(x, torch.randint(0, 10, (80,), generator=g)), seed=0,
                                 test_fraction=0.25, num_classes=10)
    problem.x_probe, problem.probe_name = problem.normalize(x[:12].flip(-1)), "flipped"
    return problem


@pytest.mark.parametrize("batched", [False, True])
def test_a_members_image_evaluation_is_that_of_a_one_member_ensemble(batched: bool) -> None:
    config = parse_config(image_config(members=3, widths=(4, 8)))
    torch.manual_seed(1)
    ensemble = build_ensemble(config, batched)
    problem = _image_problem()
    members = build_members(config, ensemble)
    result = evaluate_images(problem, {"ensemble": ensemble}, latency=False, members=members)
    assert list(result["models"]) == ["ensemble", "member", "member-best"]
    record = result["members"]
    assert record["count"] == 3 and record["selected_by"].startswith("validation error")
    for i, member in enumerate(members):
        alone = evaluate_images(problem, {"ensemble": member}, latency=False)["models"]["ensemble"]
        row = record["rows"][i]
        for key in ("clean", "ood", "shifts", "reliability", "risk_coverage", "profile"):
            _close(row[key], alone[key], f"member {i} {key}")
        for kind in ("predictive", "aleatoric", "epistemic"):  # the histograms themselves
            _close(row["shift_histograms"][kind], alone["shift_histograms"][kind], kind)
        assert row["fidelity"]["clean"]["kl"] > 0  # to the whole ensemble
    assert result["models"]["member-best"] == record["rows"][record["best"]]
    assert result["models"]["member"]["clean"]["error"] == pytest.approx(
        sum(r["clean"]["error"] for r in record["rows"]) / 3)
    assert result["models"]["ensemble"]["profile"]["params"] == 3 * record["rows"][0]["profile"]["params"]


@pytest.mark.parametrize("name", ["toy-spiral", "toy-regression"])
def test_a_members_toy_evaluation_is_that_of_a_one_member_ensemble(name: str) -> None:
    config = parse_config(toy_config(name, members=3))
    torch.manual_seed(2)
    ensemble = build_ensemble(config)  # MLP members: stacked
    assert ensemble.members.batched
    problem = make_toy(config.data.name, seed=0)
    members = build_members(config, ensemble)
    result = evaluate_toy(problem, {"ensemble": ensemble}, members=members)
    assert list(result.metrics) == ["ensemble", "member", "member-best"]
    assert result.members is not None
    for i, member in enumerate(members):
        alone = evaluate_toy(problem, {"ensemble": member}).metrics["ensemble"]
        row = result.members["rows"][i]
        for key, value in alone.items():
            if key != "tv":  # the member's TV is to the whole ensemble, alone's to itself
                assert row[key] == pytest.approx(value, rel=1e-5, abs=1e-7), (i, key)  # a group's keys
    unit = "error" if problem.task == "classification" else "RMSE"
    assert result.members["selected_by"].startswith(f"validation {unit}")


def test_a_stacked_members_weights_give_its_own_outputs() -> None:
    config = parse_config(toy_config(members=4))
    ensemble = build_ensemble(config, batched=True)
    x = torch.randn(7, 2)
    for i in range(4):
        member = ensemble.member(i, lambda: build(config.arch, "member"))
        torch.testing.assert_close(member(x), ensemble(x)[:, i : i + 1])
    with pytest.raises(ValueError, match="pass factory="):
        ensemble.member(0)
    with pytest.raises(IndexError, match="member index 4 out of range"):
        ensemble.member_state_dict(4)
    looped = Ensemble([torch.nn.Linear(2, 3), torch.nn.Linear(2, 3)], batched=False)
    torch.testing.assert_close(looped.member(1)(x), looped(x)[:, 1:2])


def test_mean_row_and_the_best_member_by_hand() -> None:
    rows = [{"clean": {"error": 0.2, "ece": 0.1}, "bins": [1, None], "name": "a"},
            {"clean": {"error": 0.4, "ece": 0.3}, "bins": [3, 2], "name": "b"}]
    assert mean_row(rows) == {"clean": {"error": pytest.approx(0.3), "ece": pytest.approx(0.2)},
                              "bins": [2.0, 2.0], "name": "a"}
    models, record = summarize(rows, {"error": [0.5, 0.1], "nll": [0.1, 0.9]}, "validation error")
    assert models["member-best"] is rows[1] and record["best"] == 1 and record["rows"] == rows
    assert summarize(rows, {"error": [0.1, 0.1], "nll": [0.9, 0.2]}, "test error")[1]["best"] == 1  # NLL
    assert summarize(rows, {"error": [0.1, 0.1], "nll": [0.2, 0.2]}, "test error")[1]["best"] == 0
    with pytest.raises(ValueError, match="one score per member"):
        summarize(rows, {"error": [0.1], "nll": [0.1]}, "test error")


def test_member_scores_by_hand() -> None:
    # two members on two inputs of class 0: member 0 right on both, member 1 wrong on the second
    logits = torch.tensor([[[2.0, 0.0], [1.0, 0.0]], [[1.0, 0.0], [0.0, 3.0]]])
    scores = member_scores(logits, torch.tensor([0, 0]), "classification")
    nll = lambda a, b: math.log(1 + math.exp(b - a))  # noqa: E731  (-log softmax of class 0)
    assert scores["error"] == [0.0, 0.5]
    assert scores["nll"] == pytest.approx([(nll(2, 0) + nll(1, 0)) / 2, (nll(1, 0) + nll(0, 3)) / 2])
    out = torch.tensor([[[0.0, 0.0], [1.0, 0.0]], [[2.0, 0.0], [2.0, 0.0]]])  # means; log-variance 0
    regression = member_scores(out, torch.tensor([0.0, 2.0]), "regression")
    assert regression["error"] == pytest.approx([0.0, math.sqrt(0.5)])
    assert regression["nll"][0] == pytest.approx(0.5 * math.log(2 * math.pi))


def test_distil_reports_teacher_members_and_student(tmp_path: Any) -> None:
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 3, (200,), generator=g)
    x = 0.3 * torch.randn(200, 1, 8, 8, generator=g) + y.view(-1, 1, 1, 1).float()
    torch.manual_seed(0)
    members = train_members([TinyCNN() for _ in range(3)], x, y, steps=30)
    result = hydraplus.distil(members, (x, y), method="hydra", epochs=3, batch_size=30, patience=2,
                              out=tmp_path / "run")
    metrics = result.evaluate((x[:60], y[:60]))
    assert list(metrics["models"]) == ["teacher", "member", "member-best", "student"]
    record = metrics["members"]
    assert record["selected_by"].startswith("validation error")
    assert record["scores"] == result.member_validation and set(record["scores"]) == {"error", "nll"}
    for i, member in enumerate(members):  # each member's row is that member alone
        with torch.no_grad():
            error = (member.eval()(x[:60]).argmax(-1) != y[:60]).double().mean().item()
        assert record["rows"][i]["clean"]["error"] == pytest.approx(error)
        assert record["rows"][i]["profile"]["params"] == sum(p.numel() for p in member.parameters())
    assert metrics["models"]["student"]["early_stopping"]["max_epochs"] == 3
    report = (tmp_path / "run" / "report.md").read_text()
    assert "| member (mean ± std of 3) |" in report and "| member (best: #" in report
    assert "early stopping on the validation KL" in report
