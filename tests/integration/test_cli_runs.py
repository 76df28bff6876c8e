"""Command-line errors about a trained run: one line naming the file, a traceback with --debug."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from _dummies import toy_config
from hydraplus.cli import main
from hydraplus.io import CheckpointError
from test_cli import one_line_error  # tests/test_cli.py (tests/ is on sys.path)


def test_corrupt_model_file_is_named(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps(toy_config(epochs=2, members=2)))
    out = tmp_path / "run"
    assert main(["train", str(config), "--out", str(out), "--seeds", "1", "--quiet"]) == 0
    capsys.readouterr()
    model = out / "seed-1" / "hydra+-2" / "model.pt"
    model.write_bytes(model.read_bytes()[:100])
    assert main(["evaluate", str(out / "seed-1")]) == 1
    message = one_line_error(capsys)
    assert str(model) in message and "truncated or corrupted" in message
    with pytest.raises(CheckpointError):
        main(["evaluate", str(out / "seed-1"), "--debug"])
