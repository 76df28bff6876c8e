"""The member rows in Markdown tables (`hydraplus.evaluation.members`): in one run's tables the
``member`` row is a cell's mean ± std over the members, and ``member-best`` names the member and
what chose it; over seeds both are rows like any model's."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hydraplus.report.tables import Row
from hydraplus.spec import MEMBER, MEMBER_BEST


def member_label(members: Mapping[str, Any]) -> tuple[str, str]:
    """The table labels of one evaluation's member rows: over the members, and the best one."""
    return (f"member (mean ± std of {members['count']})",
            f"member (best: #{members['best']}, by {members['selected_by'].split(' (')[0]})")


def member_rows(models: Mapping[str, Row], members: Mapping[str, Any] | None) -> dict[str, list[Row]]:
    """One evaluation's member rows for a table: every member's row (a cell shows the mean ± std over
    the members) and the best member's; none without ``members``."""
    if not members:
        return {}
    mean, best = member_label(members)
    return {mean: list(members["rows"]), best: [models[MEMBER_BEST]]}


def single_run(models: Mapping[str, Row], members: Mapping[str, Any] | None) -> dict[str, list[Row]]:
    """One evaluation's rows by table label, in order: the member rows as `member_rows` gives them."""
    expanded = member_rows(models, members)
    out: dict[str, list[Row]] = {}
    for name, row in models.items():
        if expanded and name == MEMBER:
            out.update(expanded)
        elif not (expanded and name == MEMBER_BEST):
            out[name] = [row]
    return out


def member_note(members: Mapping[str, Any]) -> str:
    """What one evaluation's member rows are."""
    return (f"Member rows: each of the {members['count']} members of the ensemble alone, as a model of its "
            f"own (mean ± std over the members), and the best member by {members['selected_by']}: what "
            "shipping one member gives.")


POOLED_NOTE = ("member: each member of the ensemble alone, as a model of its own (per seed the mean over "
               "the members); member-best: per seed the member with the lowest validation error (test "
               "error where a run has no validation split; each run's evaluation.json says which): what "
               "shipping one member gives.")
