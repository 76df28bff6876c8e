"""The "which to ship" lines of a distil report: the student beside the best member and the teacher."""

from __future__ import annotations

from typing import Any

from hydraplus.report.choice import member_lines, ship_lines, ship_verdict
from hydraplus.report.compare import compare_markdown, evaluation_markdown, pool
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
        "- **student hydra+-5-auto**: error 5.00%, NLL 0.2, ECE 5.00%, 52,000 FLOPs per input; its mean "
        "epistemic entropy is 62% of the teacher's (TV 0.210 between their histograms)",
        "- **member (best: #3, by validation error)**: error 5.50%, NLL 0.2, ECE 5.00%, 26,000 FLOPs per "
        "input (0.50× the student's); no epistemic uncertainty of its own",
        "- **teacher (5 members)**: error 4.26%, NLL 0.2, ECE 5.00%, 130,000 FLOPs per input (2.50× the "
        "student's)",
        "",
        "The student's error is 0.74 points above the teacher's and 0.50 points below the best member's.",
    ]


def test_a_member_that_beats_the_student_is_said_plainly() -> None:
    verdict = ship_verdict(_metrics(0.06))
    assert verdict == ("The student's error is 1.74 points above the teacher's and 0.50 points above the "
                       "best member's. One member alone beats it: ship the member unless you need the "
                       "student's uncertainty, or train the student longer (more epochs, a smaller lambda).")
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
    assert lines[0] == ("- **student hydra+-5**: RMSE 0.233, NLL 0.9; its mean epistemic std is 75% of the "
                        "teacher's")
    assert lines[-1] == "The student's RMSE is 0.007 above the teacher's and 0.017 below the best member's."


def test_the_report_opens_with_the_choice() -> None:
    report = distil_markdown(_metrics(0.05))
    assert report.index("## Which to ship") < report.index("## Test set")
    assert "- **teacher (5 members)**: error 4.26%" in report
    assert "## Which to ship" not in distil_markdown(_metrics(0.05, teacher=False))


def _image(errors: dict[str, float]) -> dict[str, Any]:
    """A one-seed image evaluation with these clean test errors (and member rows)."""
    return {"kind": "image", "task": "classification", "schema": 2,
            "problem": {"name": "toy", "num_classes": 10, "test_size": 100},
            "settings": {"latency_batch_sizes": [1]},
            "members": {**MEMBERS, "rows": [{"clean": {"error": 0.3}}]},
            "models": {name: {"clean": {"error": error}} for name, error in errors.items()}}


def test_each_student_against_its_runs_best_member_and_ensemble_over_seeds() -> None:
    seeds = [_image({"ensemble": 0.27, "member-best": 0.31, "hydra+-8": 0.295, "endd": 0.33}),
             _image({"ensemble": 0.28, "member-best": 0.30, "hydra+-8": 0.305, "endd": 0.29})]
    assert member_lines(pool({"run": seeds}).models, "classification") == [
        "- hydra+-8: error 30.00%, 0.50 points below the best member's 30.50% (below it in 1 of 2 seeds), "
        "and 2.50 points above the ensemble's 27.50%",
        "- **endd loses to one member**: error 31.00%, 0.50 points above the best member's 30.50% (below it "
        "in 1 of 2 seeds), and 3.50 points above the ensemble's 27.50%",
    ]
    lines = member_lines(pool({"a": seeds[:1], "b": seeds[1:]}).models, "classification")  # two runs
    assert lines[1] == ("- **a/endd loses to one member**: error 33.00%, 2.00 points above the best member's "
                        "31.00%, and 6.00 points above the ensemble's 27.00%")
    assert lines[3] == ("- b/endd: error 29.00%, 1.00 points below the best member's 30.00%, and 1.00 points "
                        "above the ensemble's 28.00%")


def test_image_evaluations_and_comparisons_say_it_after_the_clean_table() -> None:
    one = _image({"ensemble": 0.27, "member": 0.3, "member-best": 0.31, "hydra+-8": 0.295})
    for text in (evaluation_markdown(one), compare_markdown(pool({"run": [one, one]}))):
        assert text.index("## Clean test set") < text.index("## Against one member") < text.index(
            "## Uncertainty")
        assert "- hydra+-8: error 29.50%, 1.50 points below the best member's 31.00%" in text
    del one["members"], one["models"]["member-best"]  # evaluations before member rows: no section
    assert "## Against one member" not in evaluation_markdown(one)


def test_a_distil_runs_students_are_judged_against_its_teacher() -> None:
    errors = {"teacher": 0.27, "member": 0.3, "member-best": 0.31, "hydra+-8": 0.295}
    one = {**_image(errors), "kind": "distil"}
    text = evaluation_markdown(one)
    assert ("- hydra+-8: error 29.50%, 1.50 points below the best member's 31.00%, and 2.50 points above the "
            "teacher's 27.00%") in text
    assert text.index("## Against one member") < text.index("## Test set")
