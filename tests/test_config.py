"""The typed config: the paper's presets per method, and every mistake refused or warned about."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from hydraplus import cli
from hydraplus.config import (
    ConfigError,
    StudentSpec,
    TrainerSettings,
    available_configs,
    load_config,
    parse_config,
    read_config,
    scale_epochs,
)
from hydraplus.core.losses import LossWeights
from hydraplus.core.schedules import LambdaSchedule


@pytest.fixture
def spiral() -> dict[str, Any]:
    return read_config("toy-spiral")


@pytest.fixture
def regression() -> dict[str, Any]:
    return read_config("toy-regression")


def student(raw: dict[str, Any], entry: dict[str, Any]) -> StudentSpec:
    """The resolved spec of one student entry in ``raw``."""
    return parse_config({**raw, "students": [entry]}).students[0]


def test_the_presets_are_the_files_of_the_presets_folder() -> None:
    folder = Path(__file__).resolve().parents[1] / "src" / "hydraplus" / "config" / "presets"
    assert available_configs() == sorted(p.stem for p in folder.glob("*.json"))
    with pytest.raises(ConfigError, match=r"unknown config 'toy-spiarl'; did you mean 'toy-spiral'\?"):
        load_config("toy-spiarl")


def test_every_builtin_config_parses_with_its_kind() -> None:
    kinds = {name: load_config(name).kind for name in available_configs()}
    assert kinds == {"toy-spiral": "toy", "toy-regression": "toy", "paper-svhn": "image",
                     "paper-cifar10": "image", "cpu-cifar10": "image", "cpu-fashion-mnist": "image",
                     "cpu-fashion-mnist-heldout": "image", "gpu-cifar10": "image",
                     "cpu-cifar10-full": "image", "cpu-fashion-mnist-full": "image"}
    assert all(load_config(name).warnings == () for name in available_configs())


def test_the_paper_settings(spiral: dict, regression: dict) -> None:
    config = parse_config(spiral)
    assert (config.ensemble.members, config.ensemble.epochs, config.ensemble.lr) == (20, 200, 0.01)
    s = config.student
    assert (s.t_mean, s.t_ind, s.alpha, s.beta, s.weight_decay) == (1.0, 3.0, 0.9, 0.5, 1e-8)
    assert s.kl_coeff == pytest.approx(1 / 240)
    assert config.arch.member == {"sizes": [2, 100, 100, 100, 100, 3]}
    assert [spec.name for spec in config.students] == [
        "hydra+-20", "hydra+-20-auto", "hydra+-10", "hydra+-5", "hydra-20", "drop", "gauss", "endd"]
    assert parse_config(regression).student.lam["5"] == {"value": 0.6, "start": 50, "end": 150}


def test_hydra_preset(spiral: dict) -> None:
    spec = student(spiral, {"method": "hydra", "heads": 20})
    assert (spec.alpha, spec.beta) == (1.0, 1.0)
    assert spec.lam == LambdaSchedule(0.0)
    assert (spec.heads, spec.samples, spec.kl_coeff) == (20, 1, 0.0)
    assert (spec.t_mean, spec.t_ind, spec.lr, spec.weight_decay, spec.epochs) == (1.0, 3.0, 0.01, 1e-8, 200)
    assert student(spiral, {"method": "hydra"}).heads == 20  # M defaults to N


@pytest.mark.parametrize(("heads", "value", "warned"), [
    (20, 4.0, False), (10, 7.0, False), (5, 9.0, False),
    (7, 9.0, True),     # nearest tabulated M is 5
    (8, 7.0, True),     # nearest is 10
    (15, 7.0, True),    # equidistant from 10 and 20: the smaller M wins
])
def test_hydra_plus_lambda_per_m(spiral: dict, heads: int, value: float, warned: bool) -> None:
    config = parse_config({**spiral, "students": [{"method": "hydra+", "heads": heads}]})
    spec = config.students[0]
    assert spec.lam == LambdaSchedule(value)
    assert spec.weights == LossWeights(0.9, 0.5, 1.0, 3.0)
    assert spec.name == f"hydra+-{heads}"
    if warned:
        assert len(config.warnings) == 1
        assert f"no lambda for M = {heads} in student.lambda" in config.warnings[0]
        assert "using M = " in config.warnings[0]
    else:
        assert config.warnings == ()


def test_baseline_presets(spiral: dict) -> None:
    drop = student(spiral, {"method": "drop"})
    assert (drop.beta, drop.samples, drop.heads, drop.alpha, drop.kl_coeff) == (1.0, 20, 1, 0.9, 0.0)
    gauss = student(spiral, {"method": "gauss"})
    assert (gauss.beta, gauss.samples, gauss.kl_coeff) == (1.0, 20, pytest.approx(1 / 240))
    endd = student(spiral, {"method": "endd"})
    assert (endd.alpha, endd.beta, endd.samples, endd.name) == (0.0, 0.0, 20, "endd")


def test_entry_overrides_beat_the_method_and_the_shared_settings(spiral: dict) -> None:
    spec = student(spiral, {"method": "hydra+", "heads": 5, "beta": 0.9, "lr": 0.001,
                            "lambda": {"value": 0.6, "start": 50, "end": 150}})
    assert (spec.beta, spec.lr, spec.lam) == (0.9, 0.001, LambdaSchedule(0.6, 50, 150))
    assert student(spiral, {"method": "hydra+", "lambda": 2.5}).lam == LambdaSchedule(2.5)
    assert student(spiral, {"method": "drop", "samples": 5}).samples == 5
    assert student(spiral, {"method": "hydra", "alpha": 0.5}).alpha == 0.5


def broken(raw: dict[str, Any], section: str, **changes: Any) -> dict[str, Any]:
    out = json.loads(json.dumps(raw))
    out[section].update(changes)
    return out


@pytest.mark.parametrize(("change", "message"), [
    (lambda r: broken(r, "ensemble", augmnet=True),
     "unknown key 'ensemble.augmnet'; did you mean 'augment'?"),
    (lambda r: broken(r, "student", alhpa=0.5), "unknown key 'student.alhpa'; did you mean 'alpha'?"),
    (lambda r: {**r, "studnets": []}, "unknown key 'studnets'; did you mean 'students'?"),
    (lambda r: broken(r, "ensemble", epochs="2"), "ensemble.epochs must be an integer, got '2'"),
    (lambda r: broken(r, "ensemble", epochs=1.5), "ensemble.epochs must be an integer, got 1.5"),
    (lambda r: broken(r, "ensemble", members=True), "ensemble.members must be an integer, got True"),
    (lambda r: broken(r, "ensemble", members=0), "ensemble.members must be >= 1, got 0"),
    (lambda r: broken(r, "ensemble", lr=0), "ensemble.lr must be > 0, got 0"),
    (lambda r: broken(r, "student", t_ind="3"), "student.t_ind must be a number, got '3'"),
    (lambda r: {**r, "task": "ranking"}, "task must be one of"),
    (lambda r: {k: v for k, v in r.items() if k != "arch"}, "config is missing the key 'arch'"),
    (lambda r: {**r, "ensemble": {k: v for k, v in r["ensemble"].items() if k != "epochs"}},
     "ensemble is missing the key 'epochs'"),
    (lambda r: broken(r, "data", name="moons"), "unknown data set 'moons'"),
    (lambda r: broken(r, "data", path="x.npz"), "unknown key 'data.path'"),
    (lambda r: broken(r, "arch", member={"size": [2, 3]}), "arch: bad settings for mlp member"),
    (lambda r: broken(r, "student", **{"lambda": {"M20": {"value": 1.0}}}), "student.lambda keys"),
    (lambda r: broken(r, "student", **{"lambda": {"20": {"valeu": 1.0}}}),
     "unknown key 'student.lambda.20.valeu'; did you mean 'value'?"),
    (lambda r: broken(r, "student", patince=5), "unknown key 'student.patince'; did you mean 'patience'?"),
    (lambda r: broken(r, "student", patience=0), "student.patience must be >= 1, got 0"),
    (lambda r: broken(r, "student", patience="5"), "student.patience must be an integer or null, got '5'"),
])
def test_config_mistakes_name_the_key(spiral: dict, change: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", "\\(").replace("?", "\\?")):
        parse_config(change(spiral))


@pytest.mark.parametrize(("entry", "message"), [
    ({"method": "hydra", "bogus": 1}, "unknown key 'students[0] (hydra).bogus'"),
    ({"method": "hydra+", "lamda": 1.0}, "did you mean 'lambda'?"),
    ({"method": "hydra+", "alpha": 1.5}, "alpha must be in [0, 1], got 1.5"),
    ({"method": "hydra+", "beta": -0.2}, "beta must be in [0, 1], got -0.2"),
    ({"method": "hydra+", "t_mean": 0.0}, "t_mean (temperature) must be > 0"),
    ({"method": "hydra+", "heads": 0}, "heads must be >= 1, got 0"),
    ({"method": "hydra+", "heads": 2.5}, "heads must be an integer, got 2.5"),
    ({"method": "hydra+", "lambda": -1.0}, "lambda must be >= 0, got -1.0"),
    ({"method": "hydra+", "lambda": {"value": 1.0, "start": 10}}, "lambda ramp needs both start and end"),
    ({"method": "drop", "heads": 3}, "'heads' applies to multi-head methods only"),
    ({"method": "hydra++"}, "unknown method 'hydra++'; choose one of"),
    ({}, "must be an object with a 'method'"),
    ({"method": "drop", "patiense": 3},
     "unknown key 'students[0] (drop).patiense'; did you mean 'patience'?"),
    ({"method": "drop", "nmae": "x"}, "did you mean 'name'?"),
    ({"method": "drop", "patience": 2.5}, "patience must be an integer or null, got 2.5"),
    ({"method": "drop", "patience": -1}, "patience must be >= 1, got -1"),
    ({"method": "drop", "name": "a/b"}, "must be usable as a folder name"),
    ({"method": "drop", "name": ""}, "name must be a non-empty string"),
    ({"method": "drop", "name": 3}, "name must be a non-empty string, got 3"),
    ({"method": "drop", "name": "ensemble"}, "name 'ensemble' is taken by hydraplus itself"),
    ({"method": "drop", "name": "member-best"}, "is taken by hydraplus itself"),
    ({"method": "hydra+", "core_init": "mmber"}, "core_init must be one of (None, 'member'), got 'mmber'"),
    ({"method": "hydra+", "mixpu": 0.2}, "did you mean 'mixup'?"),
    ({"method": "hydra+", "mixup": 0}, "mixup must be a number > 0 (Beta(a, a)) or null, got 0"),
    ({"method": "hydra+", "mixup": "yes"}, "mixup must be a number > 0"),
])
def test_bad_student_entries_name_the_problem(spiral: dict, entry: dict, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        student(spiral, entry)
    assert message in str(info.value)


def test_endd_refuses_regression(regression: dict) -> None:
    with pytest.raises(ConfigError, match="endd supports classification only, not regression"):
        student(regression, {"method": "endd"})


def test_mixup_refuses_regression(regression: dict) -> None:
    with pytest.raises(ConfigError, match="mixup applies to classification only"):
        student(regression, {"method": "hydra+", "mixup": 0.2})


def test_recipe_settings_are_shared_overridable_and_saved(spiral: dict) -> None:
    raw = broken(spiral, "student", core_init="member", mixup=0.2)
    raw["students"] = [{"method": "hydra+", "heads": 4}, {"method": "drop", "core_init": None, "mixup": None}]
    first, second = parse_config(raw).students
    assert (first.core_init, first.mixup, second.core_init, second.mixup) == ("member", 0.2, None, None)
    assert StudentSpec.from_dict(json.loads(json.dumps(first.to_dict()))) == first


def test_two_students_with_one_name_are_refused(spiral: dict) -> None:
    with pytest.raises(ConfigError, match=r"\['drop'\] appear more than once .* its own \"name\""):
        parse_config({**spiral, "students": [{"method": "drop"}, {"method": "drop"}]})
    with pytest.raises(ConfigError, match=r"\['b'\] appear more than once"):
        parse_config({**spiral, "students": [{"method": "drop", "name": "b"},
                                             {"method": "gauss", "name": "b"}]})


def test_students_of_one_method_and_heads_under_their_own_names(spiral: dict) -> None:
    config = parse_config({**spiral, "students": [{"method": "hydra+", "heads": 20},
                                                  {"method": "hydra+", "heads": 20, "name": "hydra+-20-slow",
                                                   "lr": 0.001, "patience": 4}]})
    first, second = config.students
    assert (first.name, second.name) == ("hydra+-20", "hydra+-20-slow")
    assert (first.patience, second.patience, second.lr) == (None, 4, 0.001)
    assert StudentSpec.from_dict(json.loads(json.dumps(second.to_dict()))) == second


def test_patience_is_shared_and_overridable(spiral: dict) -> None:
    raw = broken(spiral, "student", patience=5)
    raw["students"] = [{"method": "drop"}, {"method": "gauss", "patience": None},
                       {"method": "endd", "patience": 2}]
    assert [spec.patience for spec in parse_config(raw).students] == [5, None, 2]
    assert all(spec.patience is None for spec in parse_config(spiral).students)  # the toy presets: off


def test_hydra_plus_needs_a_lambda(spiral: dict) -> None:
    del spiral["student"]["lambda"]
    with pytest.raises(ConfigError, match="needs a diversity weight"):
        student(spiral, {"method": "hydra+"})
    assert student(spiral, {"method": "hydra"}).lam(0) == 0.0  # others do not


def test_a_lambda_ramp_that_never_rises_is_a_warning(spiral: dict) -> None:
    raw = {**scale_epochs(spiral, 2), "students": [{"method": "hydra+", "heads": 20,
                                                    "lambda": {"value": 4.0, "start": 1, "end": 2}}]}
    config = parse_config(raw)
    assert config.warnings == ("hydra+-20: lambda stays 0 in all 2 epochs (ramp 1-2), so this student "
                               "trains as plain Hydra",)
    raw["students"][0]["lambda"] = {"value": 4.0, "start": 0, "end": 4}
    assert parse_config(raw).warnings == (
        "hydra+-20: lambda reaches only 1 of its 4 within 2 epochs (ramp ends at epoch 4)",)


def test_scale_epochs_scales_every_count_and_ramp(regression: dict) -> None:
    regression["students"] = [{"method": "hydra+", "heads": 5},
                              {"method": "hydra+", "heads": 10, "epochs": 100,
                               "lambda": {"value": 0.1, "start": 20, "end": 80}}]
    scaled = scale_epochs(regression, 20)
    assert scaled["ensemble"]["epochs"] == 20 and scaled["student"]["epochs"] == 20
    assert scaled["student"]["lambda"]["5"] == {"value": 0.6, "start": 5, "end": 15}
    assert scaled["students"][1]["epochs"] == 10
    assert scaled["students"][1]["lambda"] == {"value": 0.1, "start": 2, "end": 8}
    assert regression["student"]["lambda"]["5"]["start"] == 50  # the original is untouched
    config = parse_config(scaled)
    assert config.students[0].lam(10) == pytest.approx(0.3)
    assert config.students[1].epochs == 10 and config.warnings == ()
    with pytest.raises(ConfigError, match="epochs must be an integer >= 1, got 0"):
        scale_epochs(regression, 0)


def test_config_files_and_names(spiral: dict, tmp_path: Path) -> None:
    path = tmp_path / "mine.json"
    path.write_text(json.dumps(spiral))
    assert load_config(path).raw == spiral
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match="is not valid JSON"):
        load_config(bad)
    with pytest.raises(FileNotFoundError):
        load_config(tmp_path / "missing.json")
    with pytest.raises(ConfigError, match="unknown config 'toy-spiralz'; did you mean 'toy-spiral'"):
        load_config("toy-spiralz")
    path.write_text(json.dumps({**spiral, "seeds": 3}))
    with pytest.raises(ConfigError, match=f"config {path}: unknown key 'seeds'"):
        load_config(path)


def test_cli_prints_a_builtin_config_to_copy(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert cli.main(["configs", "toy-regression"]) == 0
    text = capsys.readouterr().out
    assert json.loads(text) == read_config("toy-regression")
    assert cli.main(["configs"]) == 0
    listing = capsys.readouterr().out
    assert re.search(r"^toy-spiral +toy +N=20 ", listing, re.M)
    assert re.search(r"^cpu-cifar10 +image +N=8 ", listing, re.M)


def test_fashion_mnist_presets(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["configs", "cpu-fashion-mnist"]) == 0
    assert json.loads(capsys.readouterr().out) == read_config("cpu-fashion-mnist")
    config = load_config("cpu-fashion-mnist")
    assert "path" not in config.data.options  # Debian's folder, or --data
    assert config.data.options["ood"] == {"name": "npz", "path": "data/cifar10_train.npz", "limit": 2000,
                                          "grayscale": True, "size": 28}
    member = config.arch.member
    assert (config.ensemble.members, config.precision, member["in_channels"]) == (10, "bf16-mixed", 1)
    assert [s.name for s in config.students] == ["hydra+-10", "hydra+-10-auto", "hydra-10", "endd"]
    assert config.students[1].lam.auto and config.students[0].lam.value == 0.0005
    assert (config.student.epochs, config.student.patience, config.student.core_init) == (30, 10, "member")
    full = load_config("cpu-fashion-mnist-full")
    assert [s.name for s in full.students] == ["hydra+-10", "hydra+-10-auto", "hydra+-5", "hydra+-2",
                                               "hydra-10", "drop", "gauss", "endd"]
    assert full.arch == config.arch and full.students[0] == config.students[0]
    assert full.students[2].lam.value == 0.001
    heldout = load_config("cpu-fashion-mnist-heldout")
    assert heldout.data.options["holdout_classes"] == [5, 7, 9] and "ood" not in heldout.data.options
    assert heldout.arch.member["num_classes"] == heldout.arch.head["num_classes"] == 7


def test_gpu_cifar10_preset(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["configs", "gpu-cifar10"]) == 0
    assert json.loads(capsys.readouterr().out) == read_config("gpu-cifar10")
    config = load_config("gpu-cifar10")
    assert (config.data.name, config.data.options["val_fraction"]) == ("cifar10", 0.1)
    assert config.data.options["ood"]["name"] == "svhn"
    assert (config.arch.name, config.arch.member["widths"], config.precision) == (
        "fastconv", [64, 256, 256], "bf16-mixed")
    assert (config.arch.core["blocks"], config.arch.head["blocks"]) == (2, 1)
    ensemble = config.ensemble
    assert (ensemble.members, ensemble.batch_size, ensemble.label_smoothing) == (10, 1024, 0.2)
    assert ensemble.augment == config.student.augment == {"crop_padding": 2, "flip": True}
    assert [s.name for s in config.students] == ["hydra+-10", "hydra+-10-auto", "hydra+-5", "hydra+-2",
                                                 "hydra-10", "drop", "gauss", "endd"]
    assert all(s.batch_size == 1024 and s.augment is not None for s in config.students)
    assert [config.students[i].lam.value for i in (0, 2, 3)] == [0.002, 0.05, 0.1]


def test_label_smoothing_defaults_to_zero_and_is_kept_in_the_saved_config(spiral: dict) -> None:
    assert parse_config(spiral).ensemble.label_smoothing == 0.0
    raw = broken(spiral, "ensemble", label_smoothing=0.1)
    saved = json.loads(json.dumps(parse_config(raw).raw))  # as a run's config.json holds it
    assert parse_config(saved).ensemble.label_smoothing == 0.1


@pytest.mark.parametrize(("value", "message"), [
    (1.0, "ensemble.label_smoothing must be in [0, 1), got 1.0"),
    (-0.1, "ensemble.label_smoothing must be in [0, 1), got -0.1"),
    ("0.1", "ensemble.label_smoothing must be a number, got '0.1'"),
    (True, "ensemble.label_smoothing must be a number, got True"),
])
def test_a_bad_label_smoothing_names_the_key_and_the_value(spiral: dict, value: Any, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(broken(spiral, "ensemble", label_smoothing=value))
    assert str(info.value) == message


def test_label_smoothing_is_refused_for_regression_and_misspellings(spiral: dict, regression: dict) -> None:
    with pytest.raises(ConfigError, match=r"ensemble.label_smoothing applies to classification only"):
        parse_config(broken(regression, "ensemble", label_smoothing=0.1))
    with pytest.raises(ConfigError, match=r"did you mean 'label_smoothing'\?"):
        parse_config(broken(spiral, "ensemble", label_smoothnig=0.1))


def test_cli_reports_a_misspelt_key_in_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                spiral: dict) -> None:
    path = tmp_path / "typo.json"
    path.write_text(json.dumps(broken(spiral, "ensemble", augmnet=True)))
    assert cli.main(["train", str(path), "--out", str(tmp_path / "run")]) == 1
    err = capsys.readouterr().err.strip()
    assert err == (f"hydraplus: error: config {path}: unknown key 'ensemble.augmnet'; "
                   "did you mean 'augment'?")


def test_an_automatic_lambda_starts_from_the_table(spiral: dict) -> None:
    spec = student(spiral, {"method": "hydra+", "heads": 20, "lambda": "auto"})
    assert spec.lam == LambdaSchedule(4.0, auto=True) and spec.name == "hydra+-20-auto"
    assert student(spiral, {"method": "hydra+", "heads": 8, "lambda": "auto"}).lam.value == 7.0
    explicit = student(spiral, {"method": "hydra+", "lambda": {"auto": True, "value": 0.5}})
    assert explicit.lam == LambdaSchedule(0.5, auto=True)
    del spiral["student"]["lambda"]
    assert student(spiral, {"method": "hydra+", "lambda": "auto"}).lam.value == 1.0
    with pytest.raises(ConfigError, match="applies to methods with the diversity term only, not drop"):
        student(spiral, {"method": "drop", "lambda": "auto"})
    with pytest.raises(ConfigError, match="an automatic lambda has no ramp"):
        student(spiral, {"method": "hydra+", "lambda": {"auto": True, "value": 1.0, "start": 1, "end": 2}})
    with pytest.raises(ConfigError, match="must be a number, 'auto' or"):
        student(spiral, {"method": "hydra+", "lambda": "automatic"})


def test_precision_is_checked(spiral: dict) -> None:
    assert parse_config(spiral).precision == "32"
    assert parse_config({**spiral, "precision": "bf16-mixed"}).precision == "bf16-mixed"
    with pytest.raises(ConfigError, match="precision must be one of"):
        parse_config({**spiral, "precision": "bf17"})
    from hydraplus.core.precision import check_precision

    with pytest.raises(ValueError, match="'16-mixed' needs a CUDA device; on the CPU use 'bf16-mixed'"):
        check_precision("16-mixed", "cpu")


def test_the_trainer_section_sets_devices_nodes_and_strategy(spiral: dict[str, Any]) -> None:
    assert parse_config(spiral).trainer == TrainerSettings(1, 1, "auto")
    config = parse_config({**spiral, "trainer": {"devices": 4, "num_nodes": 2, "strategy": "ddp"}})
    assert (config.trainer.world_size, config.trainer.strategy) == (8, "ddp")
    assert load_config("toy-spiral", devices=2).trainer == TrainerSettings(2, 1, "auto")
    assert load_config("toy-spiral", num_nodes=4, strategy="ddp").trainer == TrainerSettings(1, 4, "ddp")


@pytest.mark.parametrize(("trainer", "message"), [
    ({"device": 2}, r"unknown key 'trainer.device'; did you mean 'devices'\?"),
    ({"devices": 0}, r"trainer.devices must be >= 1, got 0"),
    ({"num_nodes": 1.5}, r"trainer.num_nodes must be an integer, got 1.5"),
    ({"strategy": "ddp_spawn"}, r"trainer.strategy must be one of \('auto', 'ddp'"),
    ({"devices": 3}, r"ensemble.batch_size 256 does not divide over world size 3 \(devices 3 × nodes 1\)"),
])
def test_trainer_mistakes_are_refused(spiral: dict[str, Any], trainer: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config({**spiral, "trainer": trainer})


def test_every_students_batch_size_must_divide_by_the_world_size(spiral: dict[str, Any]) -> None:
    raw = {**spiral, "trainer": {"devices": 4}, "students": [{"method": "drop", "batch_size": 50}]}
    with pytest.raises(ConfigError, match=r"student drop: batch_size 50 does not divide over world size 4"):
        parse_config(raw)


def test_image_presets_stop_early_and_the_paper_settings_do_not() -> None:
    """Early stopping where the preset is this project's own (the recipe's 30-epoch cap and patience 10
    for the CPU presets; 10 and 5 for the GPU one); the toy and paper presets keep the paper's fixed
    schedule (their results keep their meaning)."""
    recipe = {"cpu-cifar10", "cpu-cifar10-full", "cpu-fashion-mnist", "cpu-fashion-mnist-full",
              "cpu-fashion-mnist-heldout"}
    for name in available_configs():
        patience = {spec.patience for spec in load_config(name).students}
        expected = {10} if name in recipe else {5} if name.startswith(("cpu-", "gpu-")) else {None}
        assert patience == expected, name
