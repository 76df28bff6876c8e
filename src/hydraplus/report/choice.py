"""Which to ship: a distillation's student beside the best member and the teacher in a few lines,
the choice a distil report is read for (``report.md``'s first section and ``hydraplus distil``'s
last line). Every number is one of the report's tables'; these lines set them side by side."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from hydraplus.metrics import C, R, value
from hydraplus.report.members import member_label
from hydraplus.spec import MEMBER, MEMBER_BEST


class Accuracy(NamedTuple):
    """How one task's accuracy is read and written: its key, name, scale, format, unit and the unit of
    a difference of it (lower is more accurate)."""

    key: str
    name: str
    scale: float
    fmt: str
    unit: str
    difference: str

    def text(self, x: float, difference: bool = False) -> str:
        """``x`` scaled, formatted and with its unit (of a ``difference``)."""
        return f"{self.scale * x:{self.fmt}}{self.difference if difference else self.unit}"


ACCURACY = {C: Accuracy("error", "error", 100.0, ".2f", "%", " points"),
            R: Accuracy("rmse", "RMSE", 1.0, ".4g", "", "")}
EPISTEMIC = {C: ("epistemic_entropy", "mean epistemic entropy"), R: ("epistemic_std", "mean epistemic std")}

Row = Mapping[str, Any]


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b <= 0 else a / b


def _option(label: str, row: Row, task: str, student_flops: float | None) -> str:
    """One option's bullet: accuracy, NLL, ECE (classification) and FLOPs per input, with their ratio
    to the student's where ``student_flops`` is given."""
    acc = ACCURACY[task]
    parts = [f"{acc.name} {acc.text(value(row, task, acc.key))}",
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
    epistemic uncertainty the student has, which one member has none of), then `ship_verdict`.
    Empty without a teacher row (`metrics` as `teacher_student_view` gives it)."""
    verdict = ship_verdict(metrics)
    if verdict is None:
        return []
    models, task = metrics["models"], metrics["task"]
    teacher, student, best = models["teacher"], models["student"], _best_member(metrics)
    key, name = EPISTEMIC[task]
    kept = _ratio(value(student, task, key), value(teacher, task, key))
    tv = value(student, "tv", "epistemic")
    share = "" if kept is None else f"; its {name} is {100 * kept:.0f}% of the teacher's"
    share += "" if kept is None or tv is None else f" (TV {tv:.3f} between their histograms)"
    flops = value(student, "profile", "flops")
    lines = [_option(f"student {student['name']}", student, task, None) + share]
    if best is not None:
        label = member_label(metrics["members"])[1]
        lines.append(_option(label, best, task, flops) + "; no epistemic uncertainty of its own")
    lines.append(_option(f"teacher ({teacher['members']} members)", teacher, task, flops))
    return [*lines, "", verdict]


def _difference(diff: float, task: str, who: str) -> str:
    """"N points above (or below) WHO's", or "equal to WHO's", for a difference in accuracy units."""
    acc = ACCURACY[task]
    if diff == 0:
        return f"equal to {who}'s"
    return f"{acc.text(abs(diff), difference=True)} {'above' if diff > 0 else 'below'} {who}'s"


def _gap(student: Row, other: Row, task: str, who: str) -> str:
    """The student's accuracy against ``other``'s (`_difference`)."""
    key = ACCURACY[task].key
    return _difference(value(student, task, key) - value(other, task, key), task, who)


def ship_verdict(metrics: Mapping[str, Any]) -> str | None:
    """One or two sentences: the student against the teacher and the best member on accuracy, and what
    a member's lead means; None without a teacher row."""
    models, task = metrics["models"], metrics["task"]
    teacher, student, best = models.get("teacher"), models["student"], _best_member(metrics)
    if teacher is None:
        return None
    text = f"The student's {ACCURACY[task].name} is {_gap(student, teacher, task, 'the teacher')}"
    if best is None:
        return text + "."
    [standing] = standings({MEMBER_BEST: [best], "teacher": [teacher], "student": [student]}, task)
    text += f" and {_difference(standing.own - standing.best, task, 'the best member')}."
    if standing.loses:
        text += (" One member alone beats it: ship the member unless you need the student's uncertainty, "
                 "or train the student longer (more epochs, a smaller lambda).")
    return text


REFERENCES = ("ensemble", "teacher")  # what a run's students are distilled from, by evaluation kind
NOT_STUDENTS = (*REFERENCES, MEMBER, MEMBER_BEST)


def _mean(rows: Sequence[Row], task: str) -> float | None:
    """The mean accuracy (error or RMSE) over ``rows`` (one per seed), None where none has it."""
    known = [v for row in rows if (v := value(row, task, ACCURACY[task].key)) is not None]
    return sum(known) / len(known) if known else None


class Standing(NamedTuple):
    """One student against its run's best member and its ensemble (or teacher): mean accuracies over
    seeds, and the seeds in which it beats that member (None for one seed)."""

    name: str
    own: float
    best: float
    reference: str
    ref: float | None
    wins: int | None
    seeds: int

    @property
    def loses(self) -> bool:
        """Less accurate than the best member alone: a failure to report, not a result."""
        return self.own > self.best


def standings(models: Mapping[str, Sequence[Row]], task: str) -> list[Standing]:
    """Each student's `Standing`; ``models`` holds rows per seed under their evaluation names (``run/name``
    when runs are pooled). Empty without member rows."""
    key, out = ACCURACY[task].key, []
    for name, rows in models.items():
        run, _, model = name.rpartition("/")
        prefix = f"{run}/" if run else ""
        best = models.get(prefix + MEMBER_BEST) or []
        reference = next((r for r in REFERENCES if prefix + r in models), None)
        own, theirs = _mean(rows, task), _mean(best, task)
        if model in NOT_STUDENTS or reference is None or own is None or theirs is None:
            continue
        pairs = [(value(a, task, key), value(b, task, key)) for a, b in zip(rows, best, strict=False)]
        known = len(rows) > 1 and len(rows) == len(best) and all(None not in pair for pair in pairs)
        wins = sum(a < b for a, b in pairs) if known else None
        out.append(Standing(name, own, theirs, reference, _mean(models[prefix + reference], task), wins,
                            len(rows)))
    return out


def member_lines(models: Mapping[str, Sequence[Row]], task: str) -> list[str]:
    """Markdown bullets of the `standings`: each student's accuracy against its run's best member and
    its ensemble or teacher; a student less accurate than the best member is flagged."""
    acc, lines = ACCURACY[task], []
    for s in standings(models, task):
        text = f"{acc.name} {acc.text(s.own)}, {_difference(s.own - s.best, task, 'the best member')}"
        text += f" {acc.text(s.best)}"
        if s.wins is not None:
            text += f" (below it in {s.wins} of {s.seeds} seeds)"
        if s.ref is not None:
            text += f", and {_difference(s.own - s.ref, task, 'the ' + s.reference)} {acc.text(s.ref)}"
        lines.append(f"- {f'**{s.name} loses to one member**' if s.loses else s.name}: {text}")
    return lines


def losing_students(evaluation: Mapping[str, Any], run: Path | None = None) -> list[str]:
    """A sentence per student of one run's evaluation (of the run folder ``run``, where given) less
    accurate than its best member alone."""
    task, acc = evaluation["task"], ACCURACY[evaluation["task"]]
    models = {name: [row] for name, row in evaluation["models"].items()}
    where = "" if run is None else f" of {run}"
    return [f"student {s.name}{where} is less accurate than one member alone: {acc.name} {acc.text(s.own)} "
            f"against the best member's {acc.text(s.best)}; it may not be worth deploying (try more epochs, "
            "or ship one member)" for s in standings(models, task) if s.loses]


AGAINST_INTRO = ("Each student's test {name} beside its run's best member alone (chosen as the member "
                 "rows say) and what it was distilled from; over seeds, the means and the seeds in which it "
                 "beats that member. A student above the best member loses to what shipping one member "
                 "gives.")


def against_members_section(models: Mapping[str, Sequence[Row]], task: str) -> list[str]:
    """The Markdown parts of an evaluation's "Against one member" section (`member_lines`), or none."""
    lines = member_lines(models, task)
    if not lines:
        return []
    return ["## Against one member", AGAINST_INTRO.format(name=ACCURACY[task].name), "\n".join(lines)]
