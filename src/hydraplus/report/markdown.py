"""Markdown tables and the plain-language reading of the toy results."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

Row = dict[str, Any]

SPIRAL_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("error", "test error %", "pct"),
    ("ece", "ECE %", "pct"),
    ("nll", "NLL", "f4"),
    ("predictive_entropy", "entropy", "f4"),
    ("offdata_epistemic", "off-data epistemic", "f3"),
    ("tv_predictive", "TV pred.", "f3"),
    ("tv_aleatoric", "TV alea.", "f3"),
    ("tv_epistemic", "TV epi.", "f3"),
    ("params", "params", "int"),
    ("flops", "FLOPs/input", "int"),
    ("train_seconds", "train s", "f1"),
)
REGRESSION_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("rmse", "test RMSE", "f3"),
    ("nll", "test NLL", "f3"),
    ("oor_rmse", "[-12,12] RMSE", "f3"),
    ("oor_nll", "[-12,12] NLL", "f3"),
    ("offdata_epistemic", "off-data epistemic std", "f3"),
    ("tv_predictive", "TV pred.", "f3"),
    ("tv_aleatoric", "TV alea.", "f3"),
    ("tv_epistemic", "TV epi.", "f3"),
    ("params", "params", "int"),
    ("flops", "FLOPs/input", "int"),
    ("train_seconds", "train s", "f1"),
)


def _fmt(value: Any, kind: str) -> str:
    if value is None:
        return "–"
    if kind == "pct":
        return f"{100 * value:.2f}"
    if kind == "int":
        return f"{int(value):,}"
    return f"{value:.{kind[1]}f}"


def table(rows: dict[str, Row], columns: Sequence[tuple[str, str, str]]) -> str:
    """A Markdown table with one row per model."""
    head = "| model | " + " | ".join(title for _, title, _ in columns) + " |"
    rule = "|---|" + "---:|" * len(columns)
    body = [
        f"| {name} | " + " | ".join(_fmt(row.get(key), kind) for key, _, kind in columns) + " |"
        for name, row in rows.items()
    ]
    return "\n".join([head, rule, *body])


def _best_student(rows: dict[str, Row], key: str, reverse: bool = True) -> str:
    students = {k: v for k, v in rows.items() if k != "ensemble"}
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
    second = (
        f"Every model's test error is at most {100 * max(r['error'] for r in rows.values()):.1f}%; "
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
        f"({rows[top]['offdata_epistemic']:.3f}); as in SPEC section 8, the diversity term's "
        f"benefit on regression is small."
    )
    return f"{first}. {second}"
