"""Command-line errors: one line and exit status 1, a traceback only with --debug.

(Errors about trained runs: tests/integration/test_cli_runs.py.)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from _dummies import toy_config
from hydraplus.cli import main

SRC = str(Path(__file__).resolve().parents[1] / "src")


def one_line_error(capsys: pytest.CaptureFixture) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("hydraplus: error: ")
    return err[0]


@pytest.fixture
def tiny_config(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(toy_config(epochs=2, members=2)))
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


def test_members_override_and_bad_value(capsys: pytest.CaptureFixture, tmp_path: Path,
                                        tiny_config: Path) -> None:
    assert main(["train", str(tiny_config), "--out", str(tmp_path / "a"), "--members", "0"]) == 1
    assert f"config {tiny_config}: ensemble.members must be >= 1, got 0" in one_line_error(capsys)


def test_contract_notes_print_as_one_note_line(capsys: pytest.CaptureFixture[str]) -> None:
    from hydraplus.cli import _show_warning
    from hydraplus.inputs.contracts import ContractNote

    _show_warning(ContractNote("train targets: int32 labels read as int64"), ContractNote, "x.py", 1)
    assert capsys.readouterr().err == "hydraplus: note: train targets: int32 labels read as int64\n"


def test_overwrite_deletes_runs_only(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "thesis.tex").write_text("not a run")
    assert main(["train", "toy-spiral", "--out", str(folder), "--overwrite"]) == 1
    assert "holds no hydraplus run" in capsys.readouterr().err and (folder / "thesis.tex").is_file()


def test_help_answers_without_loading_torch() -> None:
    """`hydraplus --help` and every subcommand's parser are built from torch-free modules (a CLI
    that takes seconds to print its help is not one people keep using)."""
    code = ("import sys; from hydraplus.cli import build_parser; build_parser().format_help(); "
            "assert 'torch' not in sys.modules, sorted(m for m in sys.modules if m.startswith('torch'))[:3]")
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, "PYTHONPATH": SRC})
