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


def _run(folder: Path, *models: str) -> Path:
    """A run folder as a run leaves it: config.json, the teacher cache, model folders, evaluation."""
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"kind": "toy", "config": {}}))
    (folder / "cache").mkdir()
    (folder / "evaluation.json").write_text("{}")
    for model in models:
        (folder / model / "log").mkdir(parents=True)
        (folder / model / "model.pt").write_bytes(b"")
    return folder


def test_overwrite_never_deletes_a_users_files_beside_runs(tmp_path: Path) -> None:
    """The audit's case: a folder with a thesis, code and one old run in it was wiped by overwrite."""
    mixed = tmp_path / "mixed"
    _run(mixed / "old-run", "ensemble")
    (mixed / "thesis.tex").write_text("chapter 1")
    (mixed / "src").mkdir()
    (mixed / "src" / "code.py").write_text("")
    with pytest.raises(ValueError, match=r"holds files that are not a hydraplus run's \(src, thesis.tex\); "
                                         r"--overwrite deletes runs only"):
        prepare_out_dir(mixed, resume=False, overwrite=True)
    assert (mixed / "thesis.tex").is_file() and (mixed / "old-run" / "config.json").is_file()
    noted = _run(tmp_path / "noted", "hydra+-5")
    (noted / "notes.txt").write_text("why this run")
    (noted / "hydra+-5" / "mine").mkdir()
    (noted / "data").mkdir()
    (noted / "data" / "x.npy").write_bytes(b"")
    with pytest.raises(ValueError, match=r"\(data, notes.txt\)"):
        prepare_out_dir(noted, resume=False, overwrite=True)
    assert (noted / "notes.txt").is_file()


def test_overwrite_replaces_runs_seeds_and_their_reports(tmp_path: Path) -> None:
    train = tmp_path / "train"
    for seed in (0, 1):
        _run(train / f"seed-{seed}", "ensemble", "hydra+-5")
    (train / "compare.md").write_text("")
    (train / "shift-error.png").write_bytes(b"")
    (train / "seed-0" / "export").mkdir()
    (train / "seed-0" / "half-made").mkdir()  # a model folder killed before it wrote anything
    assert prepare_out_dir(train, resume=False, overwrite=True) == train and not any(train.iterdir())


def test_resume_needs_a_run(tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("")
    with pytest.raises(ValueError, match=r"holds no hydraplus run .*; there is nothing to resume"):
        prepare_out_dir(other, resume=True, overwrite=False)
    assert prepare_out_dir(tmp_path / "new", resume=True, overwrite=False).is_dir()


def test_an_image_run_warns_for_each_student_that_loses_to_its_best_member(tmp_path: Path) -> None:
    import warnings

    from hydraplus.pipeline.run_folder import warn_far_students
    from hydraplus.report.distil import StudentWarning

    errors = {"ensemble": 0.27, "member": 0.3, "member-best": 0.29, "hydra+-8": 0.28, "endd": 0.2912}
    evaluation = {"kind": "image", "task": "classification", "members": {"count": 8, "best": 2},
                  "models": {name: {"clean": {"error": error}} for name, error in errors.items()}}
    with pytest.warns(StudentWarning) as caught:
        warn_far_students(evaluation, tmp_path / "seed-0")
    assert [str(w.message) for w in caught] == [
        f"student endd of {tmp_path / 'seed-0'} is less accurate than one member alone: error 29.12% against "
        "the best member's 29.00%; it may not be worth deploying (try more epochs, or ship one member)"]
    del evaluation["members"], evaluation["models"]["member-best"]  # no member rows: nothing to judge by
    with warnings.catch_warnings():
        warnings.simplefilter("error", StudentWarning)
        warn_far_students(evaluation, tmp_path / "seed-0")
