"""The report of a distillation (`Distilled.evaluate`): Markdown tables of the teacher beside
its student: a distil run's ``report.md`` (`hydraplus.pipeline.run_folder.write_evaluation`)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from hydraplus.metrics import (
    CALIBRATION,
    DISTIL_COST,
    DISTIL_TEST,
    DISTIL_UNCERTAINTY,
    PREDICTIVE_INTERVALS,
    C,
    value,
)
from hydraplus.report.choice import ship_lines
from hydraplus.report.members import member_note, member_rows
from hydraplus.report.metric_columns import CALIBRATION_INTRO, INTERVALS_INTRO, columns
from hydraplus.report.tables import Column, Row, table

ECE_FACTOR, ECE_POINTS = 2.0, 0.03  # "far": ECE above both twice the teacher's and its + 3 points
MIN_DISAGREEMENT = 0.10  # or classes differing from the teacher's on more than max(10%, its error)


class StudentWarning(UserWarning):
    """A finished student far from its teacher on the evaluation data (`far_from_teacher`)."""


def far_from_teacher(metrics: dict[str, Any]) -> str | None:
    """A sentence when the student's ECE or class agreement is far from the teacher's, or when one
    member alone is more accurate than the student, else None.

    Far: ECE > max(2 x the teacher's, the teacher's + 3 points), or the student's class differs
    from the teacher's on more than max(10%, the teacher's error rate) of the inputs
    (classification; whatever lambda was). Worse than a member: the student's error (RMSE for
    regression) above the members' mean on the same data (``member`` row), since one member is
    cheaper than the ensemble and often than the student too. ``metrics["examples"]``, where
    given, says what the data was (default: the ``test_size`` evaluation examples)."""
    teacher, student = metrics["models"].get("teacher"), metrics["models"]["student"]
    if teacher is None:
        return None
    task, problems = metrics["task"], []
    if task == C:
        t_ece, s_ece = value(teacher, C, "ece"), value(student, C, "ece")
        if s_ece > max(ECE_FACTOR * t_ece, t_ece + ECE_POINTS):
            problems.append(f"ECE {100 * s_ece:.1f}% against the teacher's {100 * t_ece:.1f}%")
        agreement = value(student, "distil", "agreement")
        floor = 1 - max(MIN_DISAGREEMENT, value(teacher, C, "error"))
        if agreement is not None and agreement < floor:
            problems.append(f"its class agrees with the teacher's on {100 * agreement:.1f}% of the inputs "
                            f"(expected at least {100 * floor:.1f}%)")
    member = metrics["models"].get("member")
    key, scale, unit = ("error", 100.0, "%") if task == C else ("rmse", 1.0, "")
    if member is not None and value(student, task, key) > value(member, task, key):
        problems.append(f"its {key} {scale * value(student, task, key):.4g}{unit} is above one member's "
                        f"alone (mean of the {teacher['members']} members "
                        f"{scale * value(member, task, key):.4g}{unit})")
    if not problems:
        return None
    lam = student["spec"].get("lam") or {}
    lam_text = "auto" if lam.get("auto") else f"{lam.get('value', 0.0):g}"
    examples = metrics.get("examples") or f"{metrics['test_size']} evaluation examples"
    return (f"student {student['name']} falls short on the {examples}: {' and '.join(problems)}; "
            f"it may not be worth deploying (lambda {lam_text}; try more epochs, a smaller lambda or "
            "lambda 0, or ship one member)")


def test_columns(task: str) -> list[Column]:
    """Accuracy and calibration (classification) or fit (regression) on the test set."""
    return columns(DISTIL_TEST, task)


def uncertainty_columns(task: str) -> list[Column]:
    """Mean uncertainties, their histograms' TV to the teacher's, and OOD detection."""
    return columns(DISTIL_UNCERTAINTY, task)


def quality_section(task: str) -> tuple[str, str, list[Column]]:
    """Heading, intro and columns of the calibration and selective-prediction metrics
    (classification) or of the central intervals (regression)."""
    if task == "classification":
        return "## Calibration and selective prediction", CALIBRATION_INTRO, columns(CALIBRATION)
    return "## Predictive intervals", INTERVALS_INTRO, columns(PREDICTIVE_INTERVALS)


def cost_columns(latency_batch_sizes: list[int]) -> list[Column]:
    """Parameters, FLOPs per input, latency per batch size and training time."""
    return columns(DISTIL_COST, batch_sizes=latency_batch_sizes)


def distil_tables(models: Mapping[str, Sequence[Row]], task: str, latency_batch_sizes: list[int], *,
                  seeds: bool = False) -> list[str]:
    """The test, uncertainty and cost tables of distil runs' evaluations (``hydraplus evaluate`` and
    ``compare``): one line per model, over its rows (``seeds``: with their number)."""
    heading, intro, columns = quality_section(task)
    return ["## Test set", table(models, test_columns(task), seeds=seeds, label="model"),
            heading, intro, table(models, columns, label="model"),
            "## Uncertainty", table(models, uncertainty_columns(task), label="model"),
            "## Cost", table(models, cost_columns(latency_batch_sizes), label="model")]


def distil_markdown(metrics: dict[str, Any]) -> str:
    """``report.md``: what was distilled, then the test, uncertainty and cost tables."""
    task, settings = metrics["task"], metrics["settings"]
    teacher, student = metrics["models"].get("teacher"), metrics["models"]["student"]
    spec = student["spec"]
    quality = quality_section(task)
    rows: dict[str, list[Row]] = {}
    if teacher is not None:
        rows[f"teacher ({teacher['members']} members)"] = [teacher]
    rows.update(member_rows(metrics["models"], metrics.get("members")))
    rows[f"student {student['name']}"] = [student]
    ood = f"; out-of-distribution detection on {metrics['ood_size']} inputs" if metrics["ood_size"] else ""
    unit = "entropies (nats)" if task == "classification" else "standard deviations"
    origin = ("(its teacher is not evaluated here)" if teacher is None
              else f"from a teacher of {teacher['members']} members")
    stopped = student.get("early_stopping")
    epochs = (f"{spec['epochs']} epoch{'s' * (spec['epochs'] != 1)}" if stopped is None else
              f"the weights of epoch {stopped['best_epoch']} of {stopped['epochs_run']} run (early "
              f"stopping on the validation KL to the teacher, patience {stopped['patience']}, at most "
              f"{spec['epochs']})")
    lines = [
        "# Distillation report", "",
        f"Student {student['name']} ({spec['method']}, {spec['heads']} head{'s' * (spec['heads'] != 1)}, "
        f"{epochs}) distilled {origin}; {task} on {metrics['test_size']} test examples{ood}.", "",
        *([member_note(metrics["members"]), ""] if metrics.get("members") else []),
        *([f"**Warning:** {warning}.", ""] if (warning := far_from_teacher(metrics)) else []),
        *(["## Which to ship", "", *choice, ""] if (choice := ship_lines(metrics)) else []),
        "## Test set", "", table(rows, test_columns(task), label="model"), "",
        quality[0], "", quality[1], "", table(rows, quality[2], label="model"), "",
        "## Uncertainty", "",
        f"Mean {unit} on the test set; TV is the total variation between the student's and the "
        f"teacher's histograms of each uncertainty on the test set ({settings['tv_bins']} bins; "
        "0 = the same, 1 = disjoint).", "",
        table(rows, uncertainty_columns(task), label="model"), "",
        "## Cost", "",
        f"On {settings['device']}; latency is the median of an eval-mode forward pass.", "",
        table(rows, cost_columns(settings["latency_batch_sizes"]), label="model"), "",
    ]
    if metrics.get("record"):
        lines += ["## Inputs and settings", ""]
        lines += [f"- {key}: {value if isinstance(value, str) else json.dumps(value)}"
                  for key, value in metrics["record"].items()]
        lines.append("")
    return "\n".join(lines)
