"""The toy runs in Markdown: the demo's tables (columns per task) and the plain-language reading."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from hydraplus.metrics import CALIBRATION, PREDICTIVE_INTERVALS, TOY
from hydraplus.report.members import single_run
from hydraplus.report.metric_columns import CALIBRATION_INTRO, INTERVALS_INTRO, columns
from hydraplus.report.tables import Column, Row, table
from hydraplus.spec import MEMBER, MEMBER_BEST


def toy_columns(task: str) -> list[Column]:
    """The columns of the demo's table for ``task`` (`TOY`)."""
    return columns(TOY, "toy", task)


def toy_extra(models: Mapping[str, Sequence[Row]], task: str) -> list[str]:
    """Beyond the demo's columns: calibration and selective prediction (spiral) or the central
    intervals (regression), a heading, its intro and the table; nothing for rows without them."""
    key = "augrc" if task == "classification" else "coverage_90"
    if not any(key in row for rows in models.values() for row in rows):
        return []
    if task == "classification":
        return ["## Calibration and selective prediction", CALIBRATION_INTRO,
                table(models, columns(CALIBRATION, "toy"), label="model")]
    return ["## Predictive intervals", INTERVALS_INTRO,
            table(models, columns(PREDICTIVE_INTERVALS, "toy"), label="model")]


def toy_table(rows: dict[str, Row], task: str, members: dict[str, Any] | None = None) -> str:
    """The demo's table of one toy run (``rows``: the metrics row of each model; ``members``: the
    evaluation's member record, for the member rows' spread over the members)."""
    return table(single_run(rows, members), toy_columns(task), label="model")


def _best_student(rows: dict[str, Row], key: str, reverse: bool = True) -> str:
    students = {k: v for k, v in rows.items() if k not in ("ensemble", MEMBER, MEMBER_BEST)}
    return sorted(students, key=lambda k: students[k][key], reverse=reverse)[0]


def spiral_summary(rows: dict[str, Row]) -> str:
    """Two sentences on what the spiral numbers show."""
    ens = rows["ensemble"]
    top = _best_student(rows, "offdata_epistemic")
    closest = _best_student(rows, "tv_epistemic", reverse=False)
    hydra = rows.get("hydra-20")
    plus = rows.get("hydra+-20")
    first = (
        f"Off the data, the ensemble's mean epistemic entropy is {ens['offdata_epistemic']:.3f} nats; "
        f"the student that keeps the most is {top} ({rows[top]['offdata_epistemic']:.3f})"
    )
    if hydra and plus:
        first += (
            f", and the diversity term lifts Hydra-20's {hydra['offdata_epistemic']:.3f} to "
            f"{plus['offdata_epistemic']:.3f} for Hydra+-20"
        )
    baselines = [k for k in ("drop", "gauss", "endd") if k in rows]
    models = [row for name, row in rows.items() if name not in (MEMBER, MEMBER_BEST)]
    second = (
        f"Every model's test error is at most {100 * max(r['error'] for r in models):.1f}%; "
        f"{closest} has the epistemic-entropy histogram closest to the ensemble's "
        f"(TV {rows[closest]['tv_epistemic']:.3f})"
    )
    if baselines:
        worst = min(baselines, key=lambda k: rows[k]["offdata_epistemic"])
        second += (
            f", and the weakest single-head baseline off the data is {worst} "
            f"({rows[worst]['offdata_epistemic']:.3f})"
        )
    return f"{first}. {second}."


def regression_summary(rows: dict[str, Row]) -> str:
    """Two sentences on what the regression numbers show."""
    ens = rows["ensemble"]
    best_oor = _best_student(rows, "oor_nll", reverse=False)
    top = _best_student(rows, "offdata_epistemic")
    first = (
        f"On [-6, 6] the ensemble reaches RMSE {ens['rmse']:.3f}, and out of range its NLL is "
        f"{ens['oor_nll']:.3f}; the student with the best out-of-range NLL is {best_oor} "
        f"({rows[best_oor]['oor_nll']:.3f})"
    )
    second = (
        f"Outside the training range the ensemble's mean epistemic std is "
        f"{ens['offdata_epistemic']:.3f}, and {top} keeps the most among the students "
        f"({rows[top]['offdata_epistemic']:.3f}); as the paper reports, the diversity term's "
        f"benefit on regression is small."
    )
    return f"{first}. {second}"
