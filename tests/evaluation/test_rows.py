"""`hydraplus.evaluation.rows`: the groups every suite shares, computed once and laid out by place."""

from __future__ import annotations

import math

import pytest
import torch

from hydraplus import metrics
from hydraplus.core.uncertainty import total_variation
from hydraplus.evaluation.rows import Histograms, laid_out, row_groups, uncertainty

G = torch.Generator().manual_seed(0)


def test_a_classifiers_groups_are_its_definitions_in_order() -> None:
    logits, y = torch.randn(30, 2, 3, generator=G), torch.randint(0, 3, (30,), generator=G)
    unc = uncertainty("classification", logits)
    reference = uncertainty("classification", logits[:, :1])
    upper = dict.fromkeys(unc, math.log(3))
    groups = row_groups("classification", logits, y, ood_outputs=logits[:10] * 4,
                        validation=(logits[:12], y[:12]), histograms=Histograms(unc, reference, upper),
                        profile={"params": 7, "flops": 9, "latency_b2_s": 0.1}, batch_sizes=(2,))
    assert list(groups) == ["classification", "selective", "temperature", "ood", "tv", "profile"]
    for group, values in groups.items():
        task = "classification" if group == "ood" else None
        assert list(values) == list(metrics.section(group, values, task, (2,)))
    assert groups["classification"]["error"] == pytest.approx(
        float((logits.softmax(-1).mean(1).argmax(-1) != y).float().mean()))
    assert groups["tv"]["epistemic"] == total_variation(unc["epistemic"], reference["epistemic"], math.log(3))
    with pytest.raises(KeyError, match=r"'profile' metrics .*defined but not computed \['latency_b2_s'\]"):
        row_groups("classification", logits, y, profile={"params": 7, "flops": 9}, batch_sizes=(2,))


def test_a_regression_models_groups_and_an_empty_histogram_range() -> None:
    outputs, y = torch.randn(20, 2, 2, generator=G), torch.randn(20, generator=G)
    unc = uncertainty("regression", outputs)
    groups = row_groups("regression", outputs, y, ood_outputs=outputs * 5, validation=(outputs, y),
                        histograms=Histograms(unc, unc, dict.fromkeys(unc, 0.0)))
    assert list(groups) == ["regression", "ood", "tv"]  # no temperature scaling for regression
    assert set(groups["ood"]) == {f"{s}_{q}" for s in ("predictive", "epistemic")
                                  for q in ("auroc", "aupr", "fpr95")}
    assert groups["tv"] == {"predictive": 0.0, "aleatoric": 0.0, "epistemic": 0.0}


def test_laid_out_puts_each_group_at_its_one_place() -> None:
    groups = {"classification": {"error": 0.1}, "selective": {"aurc": 0.2}, "tv": {"predictive": 0.3},
              "profile": {"params": 4}, "train": {"train_seconds": 5.0}, "toy": {"offdata_epistemic": 0.6},
              "fidelity": {"kl": 0.7}}
    assert laid_out(groups) == {"clean": {"error": 0.1, "aurc": 0.2}, "tv": {"predictive": 0.3},
                                "profile": {"params": 4}, "train_seconds": 5.0,
                                "probe": {"offdata_epistemic": 0.6}, "fidelity": {"clean": {"kl": 0.7}}}
    row = {"name": "mine", "clean": {"error": 0.1}}
    assert laid_out({"regression": {"rmse": 0.5}}, row) is row and row["clean"] == {"error": 0.1, "rmse": 0.5}
