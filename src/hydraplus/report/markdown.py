"""The toy runs in Markdown: the demo's tables (columns per task) and the plain-language reading."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from hydraplus.metrics import CALIBRATION, PREDICTIVE_INTERVALS, TOY, C, R, value
from hydraplus.report.members import single_run
from hydraplus.report.metric_columns import CALIBRATION_INTRO, INTERVALS_INTRO, columns
from hydraplus.report.tables import Column, Row, table
from hydraplus.spec import MEMBER, MEMBER_BEST


def toy_columns(task: str) -> list[Column]:
    """The columns of the demo's table for ``task`` (`TOY`)."""
    return columns(TOY, task)


def toy_extra(models: Mapping[str, Sequence[Row]], task: str) -> list[str]:
    """Beyond the demo's columns: calibration and selective prediction (spiral) or the central
    intervals (regression), a heading, its intro and the table; nothing for rows without them."""
    group, key = ("selective", "augrc") if task == C else (R, "coverage_90")
    if not any(value(row, group, key) is not None for rows in models.values() for row in rows):
        return []
    if task == C:
        return ["## Calibration and selective prediction", CALIBRATION_INTRO,
                table(models, columns(CALIBRATION), label="model")]
    return ["## Predictive intervals", INTERVALS_INTRO,
            table(models, columns(PREDICTIVE_INTERVALS), label="model")]


def toy_table(rows: dict[str, Row], task: str, members: dict[str, Any] | None = None) -> str:
    """The demo's table of one toy run (``rows``: the metrics row of each model; ``members``: the
    evaluation's member record, for the member rows' spread over the members)."""
    return table(single_run(rows, members), toy_columns(task), label="model")


def _best_student(rows: dict[str, Row], group: str, key: str, reverse: bool = True) -> str:
    students = {k: v for k, v in rows.items() if k not in ("ensemble", MEMBER, MEMBER_BEST)}
    return sorted(students, key=lambda k: value(students[k], group, key), reverse=reverse)[0]


def _off_data(row: Row) -> float:
    return value(row, "toy", "offdata_epistemic")


def spiral_summary(rows: dict[str, Row]) -> str:
    """Two sentences on what the spiral numbers show."""
    ens = rows["ensemble"]
    top = _best_student(rows, "toy", "offdata_epistemic")
    closest = _best_student(rows, "tv", "epistemic", reverse=False)
    hydra = rows.get("hydra-20")
    plus = rows.get("hydra+-20")
    first = (
        f"Off the data, the ensemble's mean epistemic entropy is {_off_data(ens):.3f} nats; "
        f"the student that keeps the most is {top} ({_off_data(rows[top]):.3f})"
    )
    if hydra and plus:
        first += (
            f", and the diversity term lifts Hydra-20's {_off_data(hydra):.3f} to "
            f"{_off_data(plus):.3f} for Hydra+-20"
        )
    baselines = [k for k in ("drop", "gauss", "endd") if k in rows]
    models = [row for name, row in rows.items() if name not in (MEMBER, MEMBER_BEST)]
    second = (
        f"Every model's test error is at most {100 * max(value(r, C, 'error') for r in models):.1f}%; "
        f"{closest} has the epistemic-entropy histogram closest to the ensemble's "
        f"(TV {value(rows[closest], 'tv', 'epistemic'):.3f})"
    )
    if baselines:
        worst = min(baselines, key=lambda k: _off_data(rows[k]))
        second += (
            f", and the weakest single-head baseline off the data is {worst} "
            f"({_off_data(rows[worst]):.3f})"
        )
    return f"{first}. {second}."


def regression_summary(rows: dict[str, Row]) -> str:
    """Two sentences on what the regression numbers show."""
    ens = rows["ensemble"]
    best_oor = _best_student(rows, "toy", "oor_nll", reverse=False)
    top = _best_student(rows, "toy", "offdata_epistemic")
    first = (
        f"On [-6, 6] the ensemble reaches RMSE {value(ens, R, 'rmse'):.3f}, and out of range its NLL is "
        f"{value(ens, 'toy', 'oor_nll'):.3f}; the student with the best out-of-range NLL is {best_oor} "
        f"({value(rows[best_oor], 'toy', 'oor_nll'):.3f})"
    )
    second = (
        f"Outside the training range the ensemble's mean epistemic std is "
        f"{_off_data(ens):.3f}, and {top} keeps the most among the students "
        f"({_off_data(rows[top]):.3f}); as the paper reports, the diversity term's "
        f"benefit on regression is small."
    )
    return f"{first}. {second}"
