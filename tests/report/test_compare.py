"""Image evaluation data, its Markdown tables (evaluation.md, compare.md) and figures."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch

from _dummies import image_config
from hydraplus import metrics
from hydraplus.cli import main
from hydraplus.config import parse_config
from hydraplus.core.predict import predict
from hydraplus.data.images import ImageProblem, RawImages, make_image_problem
from hydraplus.data.shift import DISTORTIONS
from hydraplus.evaluation.images import evaluate_images, reliability
from hydraplus.evaluation.rows import row_groups, validation_outputs
from hydraplus.evaluation.toy import toy_evaluation
from hydraplus.metrics import (
    CALIBRATION,
    CLEAN,
    DISTIL_TEST,
    DISTIL_UNCERTAINTY,
    HIGHER,
    SHIFT,
    SHIFT_ONE_RUN,
    TOY,
    UNCERTAINTY,
    Metric,
)
from hydraplus.pipeline.builders import build_ensemble, build_members, build_student
from hydraplus.pipeline.run_folder import write_evaluation
from hydraplus.report.compare import (
    compare_markdown,
    evaluation_markdown,
    find_evaluations,
    load_pooled,
    pool,
    read_evaluation,
)
from hydraplus.report.distil import distil_markdown
from hydraplus.report.image_figures import write_figures
from hydraplus.report.markdown import toy_table
from hydraplus.report.tables import Column, at, cell, mean_std

# LeNet widths 4/8, N = 2, an untrained Hydra+-2 and Drop student
CONFIG = parse_config(image_config(widths=(4, 8)))


def _models(seed: int) -> dict[str, torch.nn.Module]:
    torch.manual_seed(seed)
    models = {"ensemble": build_ensemble(CONFIG)}
    for spec in CONFIG.students:
        models[spec.name] = build_student(CONFIG, spec)
    return models


def _problem(seed: int) -> ImageProblem:
    """60 random images (15 for testing) and 10 mirrored ones as the OOD probe."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (60, 3, 32, 32), dtype=torch.uint8, generator=generator)
    y = torch.randint(0, 10, (60,), generator=generator)
    problem = make_image_problem("random", RawImages(x, y), seed=seed, test_fraction=0.25, num_classes=10)
    problem.x_probe, problem.probe_name = problem.normalize(x[:10].flip(-1)), "flipped"
    return problem


def _evaluation(seed: int) -> dict[str, Any]:
    """An image evaluation as `hydraplus train` writes it."""
    models = _models(seed)
    result = evaluate_images(_problem(seed), models, latency_batch_sizes=(1, 4), seed=seed,
                             members=build_members(CONFIG, models["ensemble"]))
    return {"kind": "image", "task": "classification", **result}


@pytest.fixture(scope="module")
def evaluations() -> list[dict[str, Any]]:
    return [_evaluation(1), _evaluation(2)]


def _write_run(folder: Path, evaluations: list[dict[str, Any]]) -> Path:
    for i, evaluation in enumerate(evaluations, start=1):
        (folder / f"seed-{i}").mkdir(parents=True)
        (folder / f"seed-{i}" / "evaluation.json").write_text(json.dumps(evaluation))
    return folder


def test_evaluation_is_finite_json_with_every_shift(evaluations: list[dict[str, Any]]) -> None:
    evaluation = evaluations[0]
    text = json.dumps(evaluation, allow_nan=False)
    assert list(json.loads(text)["models"]) == ["ensemble", "member", "member-best", "hydra+-2", "drop"]
    for row in evaluation["models"].values():
        assert {k: len(v) for k, v in row["shifts"].items()} == {k: 5 for k in DISTORTIONS}
        assert sum(row["reliability"]["count"]) == evaluation["problem"]["test_size"] == 15
        assert {"params", "flops", "latency_b1_s", "latency_b4_s"} <= set(row["profile"])
        assert 0.0 <= row["tv"]["predictive"] <= 1.0
        assert all(math.isfinite(v) for v in row["ood"].values())
    assert "core_params" in evaluation["models"]["hydra+-2"]["profile"]
    assert evaluation["settings"]["histogram"]["magnitude"] == 0.3
    assert evaluation["settings"]["corruptions"] == ["gaussian_noise", "gaussian_blur"]


def test_evaluation_has_calibration_selective_and_logit_ood_keys(evaluations: list[dict[str, Any]]) -> None:
    for row in evaluations[0]["models"].values():
        clean = row["clean"]
        assert {"ece_adaptive", "augrc", "risk_80", "risk_95", "temperature", "ece_ts", "nll_ts"} \
            <= set(clean)
        assert 0.0 <= clean["augrc"] <= clean["aurc"] <= 1.0 and 1e-2 <= clean["temperature"] <= 1e2
        assert all("augrc" in m and "temperature" not in m
                   for levels in row["shifts"].values() for m in levels)
        assert {"energy_auroc", "maxlogit_fpr95"} <= set(row["ood"])  # these models output logits


def test_temperature_scaling_needs_a_validation_split() -> None:
    problem, model = _problem(0), _models(0)["ensemble"]
    logits = predict(model, problem.x_test)
    validation = validation_outputs(model, problem)
    groups = row_groups("classification", logits, problem.y_test, validation=validation)
    assert set(groups["temperature"]) == {"temperature", "ece_ts", "nll_ts"}
    problem.x_val, problem.y_val = problem.x_val[:0], problem.y_val[:0]
    assert validation_outputs(model, problem) is None  # never fitted on the test set
    assert "temperature" not in row_groups("classification", logits, problem.y_test, validation=None)


def test_evaluation_has_aurc_ece_15_risk_coverage_and_fidelity(evaluations: list[dict[str, Any]]) -> None:
    models = evaluations[0]["models"]
    for name, row in models.items():
        assert {"ece", "ece_15", "aurc"} <= set(row["clean"]) and 0.0 <= row["clean"]["aurc"] <= 1.0
        assert all({"ece_15", "aurc"} <= set(m) for levels in row["shifts"].values() for m in levels)
        curve = row["risk_coverage"]
        assert len(curve["coverage"]) == len(curve["risk"]) == 50 and curve["coverage"][-1] == 1.0
        assert curve["risk"][-1] == pytest.approx(row["clean"]["error"])
        assert ("fidelity" in row) == (name != "ensemble")
    fidelity = models["drop"]["fidelity"]
    assert set(fidelity["clean"]) == {"epistemic_spearman", "agreement", "kl"}
    assert {k: len(v) for k, v in fidelity["shifts"].items()} == {k: 5 for k in DISTORTIONS}
    assert all(0.0 <= m["agreement"] <= 1.0 and m["kl"] >= 0.0
               for levels in fidelity["shifts"].values() for m in levels)


def test_evaluation_is_seeded_and_leaves_the_global_rng_alone() -> None:
    problem, models = _problem(3), _models(3)
    torch.manual_seed(5)
    expected = torch.rand(1)
    torch.manual_seed(5)
    a = evaluate_images(problem, models, shifts=False, latency=False, seed=3)
    assert torch.rand(1) == expected
    b = evaluate_images(problem, models, shifts=False, latency=False, seed=3)
    assert a["models"]["drop"]["clean"] == b["models"]["drop"]["clean"]
    assert "shifts" not in a["models"]["drop"] and "shift_histograms" not in a["models"]["drop"]
    assert not any(k.startswith("latency") for k in a["models"]["drop"]["profile"])


def test_reliability_bins() -> None:
    probs = torch.tensor([[0.95, 0.05], [0.95, 0.05], [0.55, 0.45], [0.5, 0.5]])
    out = reliability(probs.log().unsqueeze(1), torch.tensor([0, 1, 0, 0]))
    assert out["count"] == [0, 0, 0, 0, 0, 2, 0, 0, 0, 2]
    assert out["accuracy"][9] == 0.5 and out["accuracy"][5] == 1.0 and out["accuracy"][0] is None
    assert out["confidence"][5] == pytest.approx(0.525)


def test_mean_std_and_cells() -> None:
    assert mean_std([1.0, None, 2.0]) == (1.5, pytest.approx(0.7071, abs=1e-4))
    assert mean_std([None]) is None
    rows = [{"a": 0.1}, {"a": 0.2}]
    assert cell(rows, Column("a", at("a"), 100.0, ".1f")) == "15.0 ± 7.1"
    assert cell(rows, Column("a", at("a"), 100.0, ".1f", spread=False)) == "15.0"
    assert cell(rows[:1], Column("a", at("a"))) == "0.100"
    assert cell(rows, Column("b", at("b"))) == "–"


def test_evaluation_markdown_has_error_and_ece_per_level(evaluations: list[dict[str, Any]]) -> None:
    text = evaluation_markdown(evaluations[0])
    assert "| ensemble | " in text
    spread = [line for line in text.splitlines() if " ± " in line and not line.startswith("One seed")]
    assert spread and all("| member (mean ± std of 2) |" in line for line in spread)  # over members only
    assert "| member (best: #" in text
    assert "| ECE % | drop |" in text and "| NLL | drop |" not in text
    assert "| metric | method | clean | 15° | 30° | 45° | 60° | 75° |" in text
    assert "## Out-of-distribution detection" in text and "images of flipped" in text
    ood = text.split("## Out-of-distribution detection")[1].split("\n## ")[0]
    assert [line.split("\n")[0] for line in ood.split("### ")[1:]] == ["AUROC", "AUPR", "FPR95 %"]
    assert ood.count("| method | MSP | entropy | epistemic | energy | max logit |") == 3
    assert "latency b4 ms" in text
    calibration = text.split("## Calibration and selective prediction")[1].split("\n## ")[0]
    assert "| method | adaptive ECE % | ECE % (T-scaled) | NLL (T-scaled) | T | AUGRC % | risk@80% % |" \
        in calibration
    assert "### Gaussian blur corruption" in text and "| σ 0.4px | σ 0.6px |" in text
    assert "| agreement % | drop |" in text and "| agreement % | ensemble |" not in text
    fidelity = text.split("## Fidelity to the ensemble")[1].split("##")[0]
    assert "| drop | " in fidelity and "| ensemble |" not in fidelity


def test_compare_pools_seeds_and_prefixes_runs(tmp_path: Path, evaluations: list[dict[str, Any]]) -> None:
    a, b = _write_run(tmp_path / "a", evaluations), _write_run(tmp_path / "b", evaluations[:1])
    assert list(find_evaluations([a / "seed-1", a / "seed-2"])) == ["a"]
    pooled = load_pooled([a])
    assert pooled.runs == {"a": 2} and all(len(rows) == 2 for rows in pooled.models.values())
    text = compare_markdown(pooled, ["x.png"])
    assert "| NLL | hydra+-2 |" in text and "![x](x.png)" in text
    assert "| ensemble | 2 | " in text
    both = load_pooled([a, b])
    assert set(both.models) == {f"{r}/{m}" for r in "ab"
                                for m in ("ensemble", "member", "member-best", "hydra+-2", "drop")}


def _toy_seed(folder: Path, error: float, epistemic: float, task: str = "classification") -> None:
    folder.mkdir(parents=True)
    row = {"clean": {"error": error, "ece": 0.01}, "probe": {"offdata_epistemic": epistemic},
           "profile": {"params": 1234}}
    name = "spiral" if task == "classification" else "regression"
    evaluation = toy_evaluation({"ensemble": row, "hydra+-2": row}, task, name)
    (folder / "evaluation.json").write_text(json.dumps(evaluation))


def test_compare_pools_toy_runs_over_seeds(tmp_path: Path) -> None:
    _toy_seed(tmp_path / "spiral" / "seed-0", 0.0, 0.1)
    _toy_seed(tmp_path / "spiral" / "seed-1", 0.1, 0.3)
    pooled = load_pooled([tmp_path / "spiral"])
    assert (pooled.kind, pooled.task, pooled.problem) == ("toy", "classification", {"name": "spiral"})
    text = compare_markdown(pooled)
    assert "toy spiral problem" in text and "SPEC" not in text
    # mean ± sample std of 0 and 10 %: 5.00 ± 7.07; parameters without a spread; columns
    # without values (NLL, ...) left out
    assert "| hydra+-2 | 2 | 5.00 ± 7.07 | 1.00 ± 0.00 | 0.200 ± 0.141 | 1,234 |" in text
    assert main(["compare", str(tmp_path / "spiral"), "--quiet"]) == 0
    assert (tmp_path / "spiral" / "compare.md").read_text() == text
    assert not list((tmp_path / "spiral").glob("*.png"))  # the image figures are for image runs


def test_compare_rejects_mixed_foreign_and_missing_evaluations(
        tmp_path: Path, evaluations: list[dict[str, Any]]) -> None:
    _toy_seed(tmp_path / "toy" / "seed-0", 0.0, 0.1)
    image = _write_run(tmp_path / "image", evaluations[:1])
    with pytest.raises(ValueError, match="run image mixes toy and image evaluations"):
        load_pooled([tmp_path / "toy", image])
    _toy_seed(tmp_path / "regression" / "seed-0", 0.0, 0.1, task="regression")
    with pytest.raises(ValueError, match="run regression is regression, others classification"):
        load_pooled([tmp_path / "toy", tmp_path / "regression"])
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "evaluation.json").write_text(json.dumps({"accuracy": 0.9}))
    with pytest.raises(ValueError, match="is not a hydraplus evaluation"):
        load_pooled([tmp_path / "foreign"])
    with pytest.raises(FileNotFoundError, match=r"no evaluation\.json"):
        load_pooled([tmp_path])
    with pytest.raises(FileNotFoundError, match="run folder not found"):
        load_pooled([tmp_path / "missing"])


def test_evaluation_files_of_both_kinds_round_trip(tmp_path: Path,
                                                   evaluations: list[dict[str, Any]]) -> None:
    rows = {"ensemble": {"rmse": 1.0, "params": 1234}, "drop": {"rmse": 2.0, "params": 99}}
    toy = toy_evaluation(rows, "regression", "regression")
    assert write_evaluation(tmp_path / "toy", toy) == tmp_path / "toy" / "evaluation.md"
    assert read_evaluation(tmp_path / "toy" / "evaluation.json") == toy
    assert (tmp_path / "toy" / "evaluation.md").read_text() == toy_table(rows, "regression") + "\n"
    write_evaluation(tmp_path / "image", evaluations[0])
    assert read_evaluation(tmp_path / "image" / "evaluation.json")["kind"] == "image"
    assert (tmp_path / "image" / "evaluation.md").read_text() == evaluation_markdown(evaluations[0])
    assert not list(tmp_path.glob("*/.*.tmp"))  # atomic writes leave no temporary files


def test_evaluation_without_kind_asks_for_a_new_evaluate(tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    old = tmp_path / "old" / "seed-0" / "evaluation.json"
    old.parent.mkdir(parents=True)
    old.write_text(json.dumps({"ensemble": {"error": 0.1}, "drop": {"error": 0.2}}))  # before kinds
    with pytest.raises(ValueError, match=r"seed-0/evaluation\.json .*re-run `hydraplus evaluate RUN`"):
        load_pooled([tmp_path / "old"])
    assert main(["compare", str(tmp_path / "old")]) == 1
    assert "re-run `hydraplus evaluate RUN`" in capsys.readouterr().err


def test_figures_are_written(tmp_path: Path, evaluations: list[dict[str, Any]]) -> None:
    names = write_figures(pool({"run": evaluations}), tmp_path)
    assert names == ["error-flops.png", "shift-error.png", "shift-ece.png", "shift-nll.png",
                     "shift-predictive-entropy.png",
                     "shift-epistemic-entropy.png", "fidelity-agreement.png", "fidelity-kl.png",
                     "fidelity-epistemic-spearman.png", "reliability.png", "risk-coverage.png",
                     "histograms-vertical-30.png"]
    assert all((tmp_path / n).stat().st_size > 1000 for n in names)


NEW = Metric("classification", "confidence", "conf. %", 100.0, ".2f", HIGHER,  # every table of its group
             tables=(CLEAN, CALIBRATION, UNCERTAINTY, SHIFT, SHIFT_ONE_RUN, TOY, DISTIL_TEST,
                     DISTIL_UNCERTAINTY))


def _headers_with(text: str, title: str) -> list[str]:
    """The sections (``## heading``) whose table header has a ``title`` column."""
    sections = [part.split("\n", 1) for part in ("\n" + text).split("\n## ")[1:]]
    return [heading for heading, body in sections
            if any(line.startswith(("| method |", "| model |")) and f"| {title} |" in line
                   for line in body.splitlines())]


def test_a_new_definition_reaches_the_evaluation_keys_and_each_table_it_names(
        monkeypatch: pytest.MonkeyPatch, evaluations: list[dict[str, Any]]) -> None:
    monkeypatch.setattr(metrics, "METRICS", (*metrics.METRICS, NEW))
    assert "confidence" in metrics.keys("classification")
    image = copy.deepcopy(evaluations[0])
    for row in [*image["models"].values(), *image["members"]["rows"]]:
        for values in [row["clean"], *(level for levels in row["shifts"].values() for level in levels)]:
            values["confidence"] = 0.5
    one_run = evaluation_markdown(image)
    assert _headers_with(one_run, "conf. %") == ["Clean test set", "Calibration and selective prediction",
                                                 "Uncertainty"]
    shift_rows = [line for line in one_run.splitlines() if line.startswith("| conf. % |")]
    assert len(shift_rows) == len(DISTORTIONS) * len(image["models"])
    assert "| conf. % | hydra+-2 | 50.00 | 50.00 | 50.00 | 50.00 | 50.00 | 50.00 |" in shift_rows
    assert "| conf. % | drop | 50.00 ± 0.00 |" in compare_markdown(pool({"run": [image, image]}))
    toy = {"ensemble": {"clean": {"error": 0.1, "augrc": 0.01, "confidence": 0.5}},
           "drop": {"clean": {"error": 0.2, "confidence": 0.25}}}
    spiral = evaluation_markdown(toy_evaluation(toy, "classification", "spiral"))
    assert "| model | test error % | conf. % |" in spiral and "| drop | 20.00 | 25.00 |" in spiral
    assert _headers_with(spiral, "conf. %") == ["Calibration and selective prediction"]  # beside the demo's
    assert "conf. %" not in evaluation_markdown(toy_evaluation(toy, "regression", "regression"))
    test = {"error": 0.03, "ece": 0.01, "augrc": 0.01, "confidence": 0.5}
    distil = {"task": "classification", "test_size": 9, "ood_size": None,
              "settings": {"tv_bins": 50, "device": "cpu", "latency_batch_sizes": [1]},
              "models": {"student": {"name": "hydra+-2", "clean": test,
                                     "spec": {"method": "hydra+", "heads": 2, "epochs": 1, "lam": None}}}}
    assert _headers_with(distil_markdown(distil), "conf. %") == [
        "Test set", "Calibration and selective prediction", "Uncertainty"]
