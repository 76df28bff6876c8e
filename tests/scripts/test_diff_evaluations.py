"""scripts/diff_evaluations.py: numbers found at any depth, timings left out, largest change first."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))

import diff_evaluations as diff

SCRIPT = Path(diff.__file__)


def test_numbers_walk_dicts_and_lists_but_not_flags() -> None:
    found = diff.numbers({"clean": {"ece": 0.1, "ok": True}, "shifts": [{"error": 0.5}], "name": "x"})
    assert found == {"clean.ece": 0.1, "shifts.0.error": 0.5}


def test_compared_skips_timings_and_sorts_by_change() -> None:
    old = {"a": 1.0, "b": 2.0, "profile.latency_b1_s": 0.1, "train_seconds": 3.0, "gone": 1.0}
    new = {"a": 1.5, "b": 2.0, "profile.latency_b1_s": 0.9, "train_seconds": 9.0, "new": 1.0}
    assert diff.compared(old, new) == [(0.5, "a", 1.0, 1.5), (0.0, "b", 2.0, 2.0)]


def test_command_line_prints_one_line_per_model(tmp_path: Path) -> None:
    for name, ece in (("old", 0.25), ("new", 0.125)):
        (tmp_path / f"{name}.json").write_text(json.dumps({"models": {"ensemble": {"clean": {"ece": ece}}}}))
    files = [str(tmp_path / "old.json"), str(tmp_path / "new.json")]
    run = subprocess.run([sys.executable, str(SCRIPT), *files], capture_output=True, text=True, check=True)
    out = run.stdout
    assert out == "ensemble: 1 numbers compared, 0 new; largest changes: clean.ece 0.25 -> 0.125\n"


def test_a_file_of_the_old_layout_is_read_in_the_new(tmp_path: Path) -> None:
    old = {"kind": "toy", "task": "classification", "problem": {}, "settings": {},
           "models": {"ensemble": {"ece": 0.25, "tv_epistemic": 0.5}}}
    (tmp_path / "old.json").write_text(json.dumps(old))
    assert diff.models(tmp_path / "old.json") == {"ensemble": {"clean": {"ece": 0.25},
                                                               "tv": {"epistemic": 0.5}}}
