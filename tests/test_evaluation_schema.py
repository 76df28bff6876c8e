"""Evaluations written before schema 2 (each kind with its own row layout) are upgraded where they are
read (`hydraplus.metrics.upgrade`, through `hydraplus.report.compare.read_evaluation`): every metric
moved to its one place, every number kept."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from _dummies import numbers_in
from hydraplus.metrics import SCHEMA, upgrade
from hydraplus.report.compare import compare_markdown, load_pooled, read_evaluation

COMMITTED = Path(__file__).parents[1] / "docs/results/cpu-fashion-mnist-v1/seed-0/evaluation.json"


def test_a_committed_image_evaluation_is_upgraded_with_every_number_kept() -> None:
    old = json.loads(COMMITTED.read_text())
    assert "schema" not in old
    new = read_evaluation(COMMITTED)
    assert new["schema"] == SCHEMA == 2
    assert sorted(numbers_in(new)) == sorted([*numbers_in(old), SCHEMA])
    for name, row in old["models"].items():
        moved = new["models"][name]
        assert moved["tv"] == row["shift_histograms"]["tv"] and "tv" not in moved["shift_histograms"]
        assert {k: v for k, v in moved.items() if k != "tv"} == {
            **row, "shift_histograms": {k: v for k, v in row["shift_histograms"].items() if k != "tv"}}
    assert upgrade(new) is new  # already current


OLD_TOY_ROW = {"error": 0.1, "ece": 0.02, "aurc": 0.03, "temperature": 1.5, "offdata_epistemic": 0.4,
               "ondata_epistemic": 0.01, "params": 120, "flops": 240, "train_seconds": 3.0,
               "early_stopping": {"best_epoch": 2, "epochs_run": 4, "patience": 2},
               "tv_predictive": 0.05, "tv_aleatoric": 0.06, "tv_epistemic": 0.07}
NEW_TOY_ROW = {"clean": {"error": 0.1, "ece": 0.02, "aurc": 0.03, "temperature": 1.5},
               "probe": {"offdata_epistemic": 0.4, "ondata_epistemic": 0.01},
               "profile": {"params": 120, "flops": 240}, "train_seconds": 3.0,
               "early_stopping": {"best_epoch": 2, "epochs_run": 4, "patience": 2},
               "tv": {"predictive": 0.05, "aleatoric": 0.06, "epistemic": 0.07}}


def test_a_toy_and_a_distil_evaluation_of_schema_1_get_the_one_layout(tmp_path: Path) -> None:
    toy = {"kind": "toy", "task": "classification", "models": {"ensemble": OLD_TOY_ROW},
           "problem": {"name": "spiral"}, "settings": {}, "members": {"rows": [OLD_TOY_ROW]}}
    upgraded = upgrade(toy)
    assert upgraded["models"]["ensemble"] == NEW_TOY_ROW == upgraded["members"]["rows"][0]
    assert toy["models"]["ensemble"] == OLD_TOY_ROW and "schema" not in toy  # the caller's is left alone
    row = {"name": "hydra-2", "test": {"rmse": 0.5, "coverage_90": 0.9}, "ood": {"epistemic_auroc": 0.8},
           "tv": {"epistemic": 0.1}, "profile": {"params": 9, "latency_b4_s": 0.01}, "members": 3}
    distil = {"kind": "distil", "task": "regression", "models": {"hydra-2": row}, "problem": {},
              "settings": {"latency_batch_sizes": [4]}}
    assert upgrade(distil)["models"]["hydra-2"] == {
        "name": "hydra-2", "clean": {"rmse": 0.5, "coverage_90": 0.9}, "ood": {"epistemic_auroc": 0.8},
        "tv": {"epistemic": 0.1}, "profile": {"params": 9, "latency_b4_s": 0.01}, "members": 3}
    for seed, evaluation in enumerate((toy, {**upgraded, "members": None})):  # old and new files pool
        folder = tmp_path / "spiral" / f"seed-{seed}"
        folder.mkdir(parents=True)
        (folder / "evaluation.json").write_text(json.dumps(evaluation))
    text = compare_markdown(load_pooled([tmp_path / "spiral"]))
    assert "| ensemble | 2 | 10.00 ± 0.00 | 2.00 ± 0.00 | 0.400 ± 0.000 | 0.050 ± 0.000 |" in text


def test_an_unknown_schema_is_an_error() -> None:
    with pytest.raises(ValueError, match="evaluation schema 3 is not known to this hydraplus"):
        upgrade({"kind": "toy", "task": "classification", "schema": 3, "models": {}})
