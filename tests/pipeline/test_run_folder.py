"""Output folders: a run is continued or replaced only when asked; only runs are deleted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hydraplus.pipeline.run_folder import is_run_folder, prepare_out_dir


def test_runs_are_told_from_other_folders(tmp_path: Path) -> None:
    (tmp_path / "distil").mkdir()
    (tmp_path / "distil" / "config.json").write_text(json.dumps({"kind": "distil"}))
    (tmp_path / "train" / "seed-0").mkdir(parents=True)
    (tmp_path / "train" / "seed-0" / "config.json").write_text(json.dumps({"config": {}, "kind": "toy"}))
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "config.json").write_text(json.dumps({"learning_rate": 0.1}))
    assert is_run_folder(tmp_path / "distil") and is_run_folder(tmp_path / "train")
    assert not is_run_folder(tmp_path / "other")


def test_only_runs_are_replaced(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"kind": "distil"}))
    with pytest.raises(ValueError, match=r"already holds a run; pass --resume \(resume=True\)"):
        prepare_out_dir(run, resume=False, overwrite=False)
    assert prepare_out_dir(run, resume=True, overwrite=False) == run and (run / "config.json").is_file()
    assert prepare_out_dir(run, resume=False, overwrite=True) == run and not any(run.iterdir())
    other = tmp_path / "other"
    other.mkdir()
    (other / "thesis.tex").write_text("")
    with pytest.raises(ValueError, match=r"is not empty and holds no hydraplus run .*: choose a new"):
        prepare_out_dir(other, resume=False, overwrite=False)
    with pytest.raises(ValueError, match="--overwrite deletes runs only"):
        prepare_out_dir(other, resume=False, overwrite=True)
    assert (other / "thesis.tex").is_file()
