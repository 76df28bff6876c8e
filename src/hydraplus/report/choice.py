"""Which to ship: a distillation's student beside the best member and the teacher in a few lines,
the choice a distil report is read for (``report.md``'s first section and ``hydraplus distil``'s
last line). Every number is one of the report's tables'; these lines set them side by side."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from hydraplus.metrics import C, R, value
from hydraplus.report.members import member_label
from hydraplus.spec import MEMBER_BEST


class Accuracy(NamedTuple):
    """How one task's accuracy is read and written: its key, name, scale, unit and the unit of a
    difference of it (lower is more accurate)."""

    key: str
    name: str
    scale: float
    unit: str
    difference: str


ACCURACY = {C: Accuracy("error", "error", 100.0, "%", " points"), R: Accuracy("rmse", "RMSE", 1.0, "", "")}
EPISTEMIC = {C: ("epistemic_entropy", "mean epistemic entropy"), R: ("epistemic_std", "mean epistemic std")}

Row = Mapping[str, Any]


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b <= 0 else a / b


def _option(label: str, row: Row, task: str, student_flops: float | None) -> str:
    """One option's bullet: accuracy, NLL, ECE (classification) and FLOPs per input, with their ratio
    to the student's where ``student_flops`` is given."""
    acc = ACCURACY[task]
    parts = [f"{acc.name} {acc.scale * value(row, task, acc.key):.4g}{acc.unit}",
             f"NLL {value(row, task, 'nll'):.4g}"]
    if task == C:
        parts.append(f"ECE {100 * value(row, C, 'ece'):.2f}%")
    flops = value(row, "profile", "flops")
    if flops is not None:
        ratio = _ratio(flops, student_flops)
        of_student = "" if ratio is None else f" ({ratio:.2f}× the student's)"
        parts.append(f"{flops:,.0f} FLOPs per input{of_student}")
    return f"- **{label}**: {', '.join(parts)}"


def _best_member(metrics: Mapping[str, Any]) -> Row | None:
    """The best member's row, where the evaluation has member rows."""
    return metrics["models"].get(MEMBER_BEST) if metrics.get("members") else None


def ship_lines(metrics: Mapping[str, Any]) -> list[str]:
    """Markdown: a bullet each for the student, the best member (where the evaluation has member rows)
    and the teacher (accuracy, NLL, ECE, FLOPs against the student's; the share of the teacher's
    epistemic uncertainty the student keeps, which one member has none of), then `ship_verdict`.
    Empty without a teacher row (`metrics` as `teacher_student_view` gives it)."""
    verdict = ship_verdict(metrics)
    if verdict is None:
        return []
    models, task = metrics["models"], metrics["task"]
    teacher, student, best = models["teacher"], models["student"], _best_member(metrics)
    key, name = EPISTEMIC[task]
    kept = _ratio(value(student, task, key), value(teacher, task, key))
    tv = value(student, "tv", "epistemic")
    keeps = "" if kept is None else f"; keeps {100 * kept:.0f}% of the teacher's {name}"
    keeps += "" if kept is None or tv is None else f" (TV {tv:.3f} between their histograms)"
    flops = value(student, "profile", "flops")
    lines = [_option(f"student {student['name']}", student, task, None) + keeps]
    if best is not None:
        label = member_label(metrics["members"])[1]
        lines.append(_option(label, best, task, flops) + "; no epistemic uncertainty of its own")
    lines.append(_option(f"teacher ({teacher['members']} members)", teacher, task, flops))
    return [*lines, "", verdict]


def _gap(student: Row, other: Row, task: str, whose: str) -> str:
    """'N points above (or below) WHOSE', or 'equal to WHOSE'."""
    acc = ACCURACY[task]
    diff = acc.scale * (value(student, task, acc.key) - value(other, task, acc.key))
    if diff == 0:
        return f"equal to {whose}"
    return f"{abs(diff):.4g}{acc.difference} {'above' if diff > 0 else 'below'} {whose}"


def ship_verdict(metrics: Mapping[str, Any]) -> str | None:
    """One or two sentences: the student against the teacher and the best member on accuracy, and what
    a member's lead means; None without a teacher row."""
    models, task = metrics["models"], metrics["task"]
    teacher, student, best = models.get("teacher"), models["student"], _best_member(metrics)
    if teacher is None:
        return None
    to_teacher = _gap(student, teacher, task, "the teacher's")
    text = f"The student's {ACCURACY[task].name} is {to_teacher}"
    if best is None:
        return text + "."
    to_member = _gap(student, best, task, "the best member's")
    text += f" and {to_member}."
    key = ACCURACY[task].key
    if value(best, task, key) < value(student, task, key):
        text += (" One member alone beats it: ship the member unless you need the student's uncertainty, "
                 "or train the student longer (more epochs, a smaller lambda).")
    return text
