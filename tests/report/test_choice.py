"""The "which to ship" lines of a distil report: the student beside the best member and the teacher."""

from __future__ import annotations

from typing import Any

from hydraplus.report.choice import ship_lines, ship_verdict
from hydraplus.report.distil import distil_markdown

MEMBERS = {"count": 5, "best": 3, "rows": [],
           "selected_by": "validation error (540 images; ties: validation NLL)"}


def _row(error: float, flops: float, epistemic: float = 0.0, **extra: Any) -> dict[str, Any]:
    return {"clean": {"error": error, "ece": 0.05, "nll": 0.2, "brier": 0.1, "epistemic_entropy": epistemic},
            "profile": {"flops": flops}, **extra}


def _metrics(student_error: float, best_error: float | None = 0.055, teacher: bool = True) -> dict[str, Any]:
    student = _row(student_error, 52_000, 0.031, name="hydra+-5-auto", tv={"epistemic": 0.21},
                   spec={"method": "hydra+", "heads": 5, "epochs": 20, "lam": {"auto": True}})
    models: dict[str, Any] = {"student": student}
    if teacher:
        models["teacher"] = _row(0.0426, 130_000, 0.05, name="teacher", members=5)
    metrics = {"task": "classification", "test_size": 540, "ood_size": None, "models": models,
               "settings": {"tv_bins": 50, "device": "cpu", "latency_batch_sizes": [1]}}
    if best_error is not None:
        models["member"] = _row(0.06, 26_000)
        models["member-best"] = _row(best_error, 26_000)
        metrics["members"] = MEMBERS
    return metrics


def test_a_student_between_the_teacher_and_the_best_member() -> None:
    lines = ship_lines(_metrics(0.05))
    assert lines == [
        "- **student hydra+-5-auto**: error 5%, NLL 0.2, ECE 5.00%, 52,000 FLOPs per input; keeps 62% of "
        "the teacher's mean epistemic entropy (TV 0.210 between their histograms)",
        "- **member (best: #3, by validation error)**: error 5.5%, NLL 0.2, ECE 5.00%, 26,000 FLOPs per "
        "input (0.50× the student's); no epistemic uncertainty of its own",
        "- **teacher (5 members)**: error 4.26%, NLL 0.2, ECE 5.00%, 130,000 FLOPs per input (2.50× the "
        "student's)",
        "",
        "The student's error is 0.74 points above the teacher's and 0.5 points below the best member's.",
    ]


def test_a_member_that_beats_the_student_is_said_plainly() -> None:
    verdict = ship_verdict(_metrics(0.06))
    assert verdict == ("The student's error is 1.74 points above the teacher's and 0.5 points above the best "
                       "member's. One member alone beats it: ship the member unless you need the student's "
                       "uncertainty, or train the student longer (more epochs, a smaller lambda).")
    assert ship_verdict(_metrics(0.055)).endswith("and equal to the best member's.")  # a tie: no advice


def test_without_member_rows_or_a_teacher() -> None:
    only_teacher = "The student's error is 0.74 points above the teacher's."
    assert ship_verdict(_metrics(0.05, best_error=None)) == only_teacher
    assert len(ship_lines(_metrics(0.05, best_error=None))) == 4  # student, teacher, blank, verdict
    assert ship_verdict(_metrics(0.05, teacher=False)) is None
    assert ship_lines(_metrics(0.05, teacher=False)) == []


def test_regression_reads_the_rmse_and_the_epistemic_std() -> None:
    def row(rmse: float, std: float, **extra: Any) -> dict[str, Any]:
        return {"clean": {"rmse": rmse, "nll": 0.9, "epistemic_std": std}, **extra}

    metrics = {"task": "regression", "members": MEMBERS,
               "models": {"teacher": row(0.226, 0.4, members=5), "member-best": row(0.25, 0.0),
                          "student": row(0.233, 0.3, name="hydra+-5")}}
    lines = ship_lines(metrics)
    assert lines[0] == ("- **student hydra+-5**: RMSE 0.233, NLL 0.9; keeps 75% of the teacher's mean "
                        "epistemic std")
    assert lines[-1] == "The student's RMSE is 0.007 above the teacher's and 0.017 below the best member's."


def test_the_report_opens_with_the_choice() -> None:
    report = distil_markdown(_metrics(0.05))
    assert report.index("## Which to ship") < report.index("## Test set")
    assert "- **teacher (5 members)**: error 4.26%" in report
    assert "## Which to ship" not in distil_markdown(_metrics(0.05, teacher=False))
