"""One run's ``evaluation.json`` and ``evaluation.md``, for toy, image and distil runs alike.

The JSON names its run kind and task, so that `hydraplus compare` never has to guess them::

    {"kind": "toy" | "image" | "distil", "task": "classification" | "regression",
     "models": {name: row}, "problem": {...}, "settings": {...}}

A distil run's rows are those of `hydraplus.experiments.distil_eval` (``teacher``, the member rows
and the student). Where the members were evaluated, ``members`` holds every member's row and how the
best was chosen (`hydraplus.experiments.members`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hydraplus.io import atomic_write_text
from hydraplus.report.compare import check_evaluation, evaluation_markdown
from hydraplus.report.tables import Row


def toy_evaluation(rows: dict[str, Row], task: str, name: str,
                   members: dict[str, Any] | None = None) -> dict[str, Any]:
    """The evaluation of a toy run from its metrics ``rows`` (one per model); ``name`` is the toy
    problem's (``"spiral"`` or ``"regression"``, `ToyProblem.name`); ``members`` the member record
    (`ToyEvaluation.members`)."""
    evaluation = {"kind": "toy", "task": task, "models": rows, "problem": {"name": name}, "settings": {}}
    if members is not None:
        evaluation["members"] = members
    return evaluation


def distil_evaluation(metrics: dict[str, Any], name: str, ood: str | None = None) -> dict[str, Any]:
    """The evaluation of a distil run from `Distilled.evaluate`'s ``metrics`` on the test data ``name``
    (and the OOD data ``ood``): rows ``teacher`` (if evaluated) and the student's name."""
    models = {row["name"] if key == "student" else key: row for key, row in metrics["models"].items()}
    teacher = metrics["models"].get("teacher")
    problem = {"name": name, "test_size": metrics["test_size"], "num_classes": metrics["num_classes"],
               "members": None if teacher is None else teacher["members"],
               "probe_name": (ood or "OOD") if metrics["ood_size"] else None,
               "probe_size": metrics["ood_size"]}
    evaluation = {"kind": "distil", "task": metrics["task"], "models": models, "problem": problem,
                  "settings": metrics["settings"], "record": metrics["record"]}
    if metrics.get("members") is not None:
        evaluation["members"] = metrics["members"]
    return evaluation


def write_evaluation(run_dir: Path, evaluation: dict[str, Any]) -> Path:
    """Write ``evaluation.json`` and ``evaluation.md`` into ``run_dir`` atomically; returns the
    Markdown file's path."""
    run_dir = Path(run_dir)
    check_evaluation(evaluation, run_dir / "evaluation.json")
    atomic_write_text(run_dir / "evaluation.json", json.dumps(evaluation, indent=2))
    atomic_write_text(run_dir / "evaluation.md", evaluation_markdown(evaluation))
    return run_dir / "evaluation.md"
