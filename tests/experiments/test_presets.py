"""Method presets (SPEC section 3) and the built-in configs (SPEC section 6)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from hydraplus.core.losses import LossWeights
from hydraplus.core.schedules import LambdaSchedule
from hydraplus.experiments.presets import (
    available_configs,
    load_config,
    resolve_student,
    scale_epochs,
    validate_config,
)


@pytest.fixture
def spiral() -> dict[str, Any]:
    return load_config("toy-spiral")


@pytest.fixture
def regression() -> dict[str, Any]:
    return load_config("toy-regression")


def test_builtin_configs_load_with_the_paper_settings(spiral: dict, regression: dict) -> None:
    assert {"toy-spiral", "toy-regression"} <= set(available_configs())
    assert spiral["ensemble"]["members"] == 20 and spiral["ensemble"]["epochs"] == 200
    assert spiral["ensemble"]["lr"] == 0.01 and spiral["ensemble"]["weight_decay"] == 1e-4
    s = spiral["student"]
    assert (s["t_mean"], s["t_ind"], s["alpha"], s["beta"], s["weight_decay"]) == (1.0, 3.0, 0.9, 0.5, 1e-8)
    assert s["kl_coeff"] == pytest.approx(1 / 240)
    assert spiral["arch"]["member"]["sizes"] == [2, 100, 100, 100, 100, 3]
    r = regression["student"]
    assert regression["ensemble"]["lr"] == 0.05 and (r["t_mean"], r["t_ind"]) == (1.0, 1.0)
    assert r["lambda"]["5"] == {"value": 0.6, "start": 50, "end": 150}


def test_hydra_preset(spiral: dict) -> None:
    spec = resolve_student(spiral, {"method": "hydra", "heads": 20})
    assert (spec.alpha, spec.beta) == (1.0, 1.0)
    assert spec.lam == LambdaSchedule(0.0) and spec.lam(100) == 0.0
    assert (spec.heads, spec.samples, spec.kl_coeff) == (20, 1, 0.0)
    assert spec.name == "hydra-20"
    assert (spec.t_mean, spec.t_ind, spec.lr, spec.weight_decay, spec.epochs) == (1.0, 3.0, 0.01, 1e-8, 200)
    # M defaults to N.
    assert resolve_student(spiral, {"method": "hydra"}).heads == 20


@pytest.mark.parametrize(("heads", "value"), [
    (20, 4.0), (10, 7.0), (5, 9.0),
    (7, 9.0),     # nearest tabulated M is 5
    (8, 7.0),     # nearest is 10
    (15, 7.0),    # equidistant from 10 and 20: the smaller M wins
    (100, 4.0), (1, 9.0),
])
def test_hydra_plus_preset_lambda_per_m(spiral: dict, heads: int, value: float) -> None:
    spec = resolve_student(spiral, {"method": "hydra+", "heads": heads})
    assert spec.lam == LambdaSchedule(value)
    assert (spec.alpha, spec.beta) == (0.9, 0.5)  # beta from the config
    assert spec.heads == heads and spec.name == f"hydra+-{heads}"
    assert spec.weights == LossWeights(0.9, 0.5, 1.0, 3.0)


def test_hydra_plus_lambda_ramp(regression: dict) -> None:
    spec = resolve_student(regression, {"method": "hydra+", "heads": 5})
    assert spec.lam == LambdaSchedule(0.6, 50, 150)
    assert spec.lam(0) == 0.0 and spec.lam(100) == pytest.approx(0.3) and spec.lam(199) == 0.6
    assert resolve_student(regression, {"method": "hydra+", "heads": 20}).lam.value == 0.002


def test_drop_and_gauss_presets(spiral: dict) -> None:
    drop = resolve_student(spiral, {"method": "drop"})
    assert (drop.beta, drop.samples, drop.heads, drop.alpha, drop.kl_coeff) == (1.0, 20, 1, 0.9, 0.0)
    assert drop.lam(0) == 0.0 and drop.name == "drop"
    gauss = resolve_student(spiral, {"method": "gauss"})
    assert (gauss.beta, gauss.samples, gauss.alpha) == (1.0, 20, 0.9)
    assert gauss.kl_coeff == pytest.approx(1 / 240)
    assert gauss.name == "gauss"


def test_endd_preset(spiral: dict) -> None:
    spec = resolve_student(spiral, {"method": "endd"})
    assert (spec.alpha, spec.beta, spec.samples, spec.heads) == (0.0, 0.0, 20, 1)
    assert spec.lam(0) == 0.0 and spec.name == "endd"


def test_samples_follow_the_ensemble_size(spiral: dict) -> None:
    spiral["ensemble"]["members"] = 7
    assert resolve_student(spiral, {"method": "drop"}).samples == 7
    assert resolve_student(spiral, {"method": "hydra"}).heads == 7


def test_overrides(spiral: dict) -> None:
    spec = resolve_student(spiral, {"method": "hydra+", "heads": 5, "beta": 0.9, "lr": 0.001,
                                    "lambda": {"value": 0.6, "start": 50, "end": 150}})
    assert (spec.beta, spec.lr) == (0.9, 0.001)
    assert spec.lam == LambdaSchedule(0.6, 50, 150)
    assert resolve_student(spiral, {"method": "hydra+", "lambda": 2.5}).lam == LambdaSchedule(2.5)
    assert resolve_student(spiral, {"method": "drop", "samples": 5}).samples == 5
    assert resolve_student(spiral, {"method": "gauss", "kl_coeff": 0.1}).kl_coeff == 0.1
    # An override beats the preset too.
    assert resolve_student(spiral, {"method": "hydra", "alpha": 0.5}).alpha == 0.5
    assert resolve_student(spiral, {"method": "hydra", "epochs": 3}).epochs == 3


@pytest.mark.parametrize(("entry", "word"), [
    ({"method": "hydra", "bogus": 1}, "bogus"),
    ({"method": "hydra+", "lamda": 1.0}, "lamda"),
    ({"method": "hydra+", "alpha": 1.5}, "alpha"),
    ({"method": "hydra+", "alpha": -0.5}, "alpha"),
    ({"method": "hydra+", "beta": 1.2}, "beta"),
    ({"method": "hydra+", "t_mean": 0.0}, "t_mean"),
    ({"method": "hydra+", "t_ind": -3.0}, "t_ind"),
    ({"method": "hydra+", "heads": 0}, "heads"),
    ({"method": "hydra+", "lambda": -1.0}, "lambda"),
    ({"method": "hydra+", "lambda": {"value": 1.0, "start": 10}}, "lambda ramp"),
    ({"method": "distill"}, "method"),
    ({}, "method"),
])
def test_bad_entries_raise_naming_the_key(spiral: dict, entry: dict, word: str) -> None:
    with pytest.raises(ValueError, match=word):
        resolve_student(spiral, entry)


def test_hydra_plus_needs_a_lambda_table(spiral: dict) -> None:
    del spiral["student"]["lambda"]
    with pytest.raises(ValueError, match="lambda"):
        resolve_student(spiral, {"method": "hydra+"})
    # Other methods do not need it.
    assert resolve_student(spiral, {"method": "hydra"}).lam(0) == 0.0


def test_validate_config(spiral: dict) -> None:
    validate_config(spiral)
    for key in ("task", "students", "arch"):
        broken = dict(spiral)
        del broken[key]
        with pytest.raises(ValueError, match=key):
            validate_config(broken)
    with pytest.raises(ValueError, match="members"):
        validate_config({**spiral, "ensemble": {**spiral["ensemble"], "members": 0}})
    with pytest.raises(ValueError, match="task"):
        validate_config({**spiral, "task": "ranking"})
    with pytest.raises(ValueError, match="bogus"):
        validate_config({**spiral, "students": [{"method": "hydra", "bogus": 1}]})


def test_load_config_from_a_path(spiral: dict, tmp_path: Path) -> None:
    path = tmp_path / "mine.json"
    path.write_text(json.dumps(spiral))
    assert load_config(path) == spiral
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="JSON"):
        load_config(bad)
    with pytest.raises(FileNotFoundError):
        load_config(tmp_path / "missing.json")
    with pytest.raises(ValueError, match="unknown config"):
        load_config("toy-moons")


def test_scale_epochs(regression: dict) -> None:
    scaled = scale_epochs(regression, 20)
    assert scaled["ensemble"]["epochs"] == 20 and scaled["student"]["epochs"] == 20
    assert scaled["student"]["lambda"]["5"] == {"value": 0.6, "start": 5, "end": 15}
    assert regression["student"]["lambda"]["5"]["start"] == 50  # the original is untouched
    assert resolve_student(scaled, {"method": "hydra+", "heads": 5}).lam(10) == pytest.approx(0.3)
    with pytest.raises(ValueError, match="epochs"):
        scale_epochs(regression, 0)
