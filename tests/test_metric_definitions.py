"""The metric definitions (`hydraplus.metrics`): the rows are filled from them (`metrics.section`, which
fails where a computation and its definitions disagree), each computation returns exactly the keys
defined for its group, every number an evaluation writes where metrics sit is defined, and the
definitions themselves name known tables and places."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn

import hydraplus
from _dummies import TinyCNN, blob_images, toy_config, train_members
from hydraplus import metrics
from hydraplus.config import parse_config
from hydraplus.core.calibration import temperature_metrics
from hydraplus.core.containers import MultiHeadStudent
from hydraplus.core.fidelity import fidelity
from hydraplus.core.metrics import ClassificationMetrics, RegressionMetrics
from hydraplus.core.ood import ood_detection
from hydraplus.core.profile import profile_model
from hydraplus.core.selective import selective_metrics
from hydraplus.core.uncertainty import log_predictive
from hydraplus.data.toy import make_toy
from hydraplus.evaluation.toy import evaluate_toy
from hydraplus.metrics import HIGHER, LOWER, METRICS, PLACES, TABLES, Metric, Show
from hydraplus.pipeline.builders import build_ensemble, build_members, build_student

G = torch.Generator().manual_seed(0)
LOGITS, TARGETS = torch.randn(40, 3, 4, generator=G), torch.randint(0, 4, (40,), generator=G)


def _classification() -> dict[str, float]:
    computed = ClassificationMetrics(4)
    computed.update(LOGITS, TARGETS)
    return computed.compute()


def _regression() -> dict[str, float]:
    computed = RegressionMetrics()
    computed.update(torch.randn(40, 3, 2, generator=G), torch.randn(40, generator=G))
    return computed.compute()


def _profile() -> dict[str, float]:
    student = MultiHeadStudent(nn.Linear(2, 4), [nn.Linear(4, 3) for _ in range(2)])
    return profile_model(student, torch.randn(1, 2), batch_sizes=(1, 3), warmup=0, repeats=1)


COMPUTATIONS: dict[str, Callable[[], dict[str, float]]] = {
    "classification": _classification,
    "selective": lambda: selective_metrics(LOGITS, TARGETS),
    "temperature": lambda: temperature_metrics(log_predictive(LOGITS[:20]), TARGETS[:20],
                                               log_predictive(LOGITS[20:]), TARGETS[20:]),
    "regression": _regression,
    "ood": lambda: ood_detection(LOGITS, LOGITS[:10] * 3),
    "fidelity": lambda: fidelity(LOGITS[:, :2], LOGITS),
    "profile": _profile,
}


@pytest.mark.parametrize("group", sorted(COMPUTATIONS))
def test_each_computation_returns_exactly_the_keys_defined_for_its_group(group: str) -> None:
    computed = COMPUTATIONS[group]()
    section = metrics.section(group, computed, batch_sizes=(1, 3))  # raises where they disagree
    assert section == computed and set(section) == metrics.keys(group, (1, 3))
    defined_order = [m.key for m in METRICS if m.group == group and "{batch}" not in m.key]
    assert [key for key in section if key in defined_order] == [k for k in defined_order if k in section]


def test_a_key_computed_but_not_defined_or_defined_but_not_computed_is_an_error(
        monkeypatch: pytest.MonkeyPatch) -> None:
    computed = _classification()
    with pytest.raises(KeyError, match=r"'classification' metrics .*computed but not defined "
                                       r"\['top2_error'\], defined but not computed \[\]"):
        metrics.section("classification", {**computed, "top2_error": 0.1})
    with pytest.raises(KeyError, match=r"defined but not computed \['ece', 'nll'\]"):
        metrics.section("classification", {k: v for k, v in computed.items() if k not in ("ece", "nll")})
    with pytest.raises(KeyError, match="no metric is defined for the group 'accuracy'"):
        metrics.section("accuracy", computed)
    ood = ood_detection(LOGITS.log_softmax(-1), LOGITS.log_softmax(-1)[:10] * 3)  # log-probabilities:
    assert "energy_auroc" not in metrics.section("ood", ood, "classification")  # no energy (optional)
    with pytest.raises(KeyError, match=r"computed but not defined \['msp_auroc'"):  # a classifier's score
        metrics.section("ood", {**ood, "predictive_auroc": 0.5}, "regression")
    monkeypatch.setattr(metrics, "METRICS", (*METRICS, Metric("classification", "confidence", "conf. %")))
    with pytest.raises(KeyError, match=r"defined but not computed \['confidence'\]"):
        metrics.section("classification", computed)
    row = {"clean": {**computed, "top2_error": 0.1}, "profile": {"params": 3, "flops": 5}}
    assert metrics.undefined_numbers(row, "classification") == ["clean.top2_error"]
    assert metrics.undefined_numbers({"clean": computed}, "classification") == []


@pytest.mark.parametrize("name", ["toy-spiral", "toy-regression"])
def test_every_number_of_a_toy_evaluation_is_defined(name: str) -> None:
    config = parse_config(toy_config(name, members=2, students=[{"method": "hydra+", "heads": 2},
                                                                {"method": "gauss"}]))
    torch.manual_seed(0)
    ensemble = build_ensemble(config)
    models = {"ensemble": ensemble, **{s.name: build_student(config, s) for s in config.students}}
    problem = make_toy(config.data.name, seed=0)
    result = evaluate_toy(problem, models, {"hydra+-2": 1.0}, members=build_members(config, ensemble),
                          early_stopping={"hydra+-2": {"best_epoch": 1, "epochs_run": 2, "patience": 1}})
    assert result.members is not None
    for row in [*result.metrics.values(), *result.members["rows"]]:
        assert metrics.undefined_numbers(row, problem.task) == []
    toy_keys = {m.key for m in METRICS if m.group == "toy" and m.for_task in (None, problem.task)}
    assert toy_keys == set(result.metrics["ensemble"]["probe"])  # defined and computed
    assert set(result.metrics["hydra+-2"]["tv"]) == metrics.keys("tv")
    assert metrics.value(result.metrics["hydra+-2"], "train", "train_seconds") == 1.0


def test_every_number_of_a_distil_evaluation_is_defined() -> None:
    x, y = blob_images(120)
    members = train_members([TinyCNN() for _ in range(2)], x, y, steps=5)
    result = hydraplus.distil(members, (x, y), heads=2, epochs=1, batch_size=60, lam=0.0)
    far = 3 * torch.randn(20, 1, 8, 8)
    evaluation = result.evaluate(blob_images(30, seed=1), ood=far, latency_batches=(2,))
    rows = [*evaluation["models"].values(), *evaluation["members"]["rows"]]
    assert all(metrics.undefined_numbers(row, "classification", (2,)) == [] for row in rows)
    student = evaluation["models"]["student"]
    assert set(student["tv"]) == metrics.keys("tv") and "agreement" in student


def test_definitions_name_known_tables_places_and_directions() -> None:
    for metric in METRICS:
        assert metric.better in (LOWER, HIGHER, None), metric
        assert metric.group in PLACES, metric
        for shown in metric.tables:
            assert (shown.table if isinstance(shown, Show) else shown) in TABLES, metric
    identities = [(m.group, m.key, m.for_task) for m in METRICS]
    assert len(identities) == len(set(identities))
    for table in TABLES:
        assert metrics.shown(table), f"no metric is shown in {table}"
