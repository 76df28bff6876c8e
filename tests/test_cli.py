"""Command-line errors: one line and exit status 1, a traceback only with --debug."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hydraplus.cli import main
from hydraplus.io import CheckpointError


def one_line_error(capsys: pytest.CaptureFixture) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("hydraplus: error: ")
    return err[0]


@pytest.fixture
def tiny_config(tmp_path: Path) -> Path:
    from hydraplus.experiments.presets import load_config, scale_epochs

    config = scale_epochs(load_config("toy-spiral"), 2)
    config["ensemble"]["members"] = 2
    config["students"] = [{"method": "hydra+", "heads": 2}]
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(config))
    return path


def test_missing_run_folder_is_one_line(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    assert main(["evaluate", str(tmp_path / "nope")]) == 1
    assert "nope" in one_line_error(capsys)


def test_debug_shows_the_exception(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        main(["evaluate", str(tmp_path / "nope"), "--debug"])


def test_unknown_config_is_named(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    assert main(["train", "toy-spiralz", "--out", str(tmp_path / "run"), "--quiet"]) == 1
    assert "unknown config 'toy-spiralz'" in one_line_error(capsys)


def test_corrupt_model_file_is_named(capsys: pytest.CaptureFixture, tmp_path: Path,
                                     tiny_config: Path) -> None:
    out = tmp_path / "run"
    assert main(["train", str(tiny_config), "--out", str(out), "--seeds", "1", "--quiet"]) == 0
    capsys.readouterr()
    model = out / "seed-1" / "hydra+-2" / "model.pt"
    model.write_bytes(model.read_bytes()[:100])
    assert main(["evaluate", str(out / "seed-1")]) == 1
    message = one_line_error(capsys)
    assert str(model) in message and "truncated or corrupted" in message
    with pytest.raises(CheckpointError):
        main(["evaluate", str(out / "seed-1"), "--debug"])


def test_members_override_and_bad_value(capsys: pytest.CaptureFixture, tmp_path: Path,
                                        tiny_config: Path) -> None:
    assert main(["train", str(tiny_config), "--out", str(tmp_path / "a"), "--members", "0"]) == 1
    assert "ensemble.members (N) must be an integer >= 1, got 0" in one_line_error(capsys)
