"""Markdown tables of evaluations: one `Column` type and one renderer over rows per model.

A single run gives one row per model, pooled runs one row per seed; a cell shows the mean and,
with more than one known value, ``± sample std``.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

Row = dict[str, Any]
Getter = Callable[[Row], Any]


class Column(NamedTuple):
    """A table column: a quantity of a model's row, scaled and formatted with ``fmt`` (a format
    spec: ``".2f"``, ``",.0f"`` for thousands separators); ``spread=False`` for quantities that
    do not vary over seeds (FLOPs, parameters)."""

    title: str
    getter: Getter
    scale: float = 1.0
    fmt: str = ".3f"
    spread: bool = True


def get(row: Row, *path: str | int) -> Any:
    """``row[p0][p1]...`` or None where any step is missing."""
    value: Any = row
    for step in path:
        try:
            value = value[step]
        except (KeyError, IndexError, TypeError):
            return None
    return value


def at(*path: str | int) -> Getter:
    """A getter of ``row[p0][p1]...`` (None where missing)."""
    return lambda row: get(row, *path)


def mean_std(values: Sequence[float | None]) -> tuple[float, float | None] | None:
    """Mean and sample std of the known values (std None with one value; None with none)."""
    known = [float(v) for v in values if v is not None]
    if not known:
        return None
    return statistics.fmean(known), statistics.stdev(known) if len(known) > 1 else None


def cell(rows: Sequence[Row], column: Column) -> str:
    """``mean ± std`` of the column's quantity over ``rows`` (``mean`` alone with one value or
    without ``spread``); ``–`` when unknown."""
    stats = mean_std([column.getter(r) for r in rows])
    if stats is None:
        return "–"
    mean, std = stats
    text = format(column.scale * mean, column.fmt)
    return text if std is None or not column.spread else f"{text} ± {format(column.scale * std, column.fmt)}"


def table(models: Mapping[str, Sequence[Row]], columns: Sequence[Column], *, seeds: bool = False,
          label: str = "method") -> str:
    """One line per model (``label`` heads its column; with ``seeds``, its number of rows);
    columns without a known value for any model are left out."""
    body = {name: [cell(rows, c) for c in columns] for name, rows in models.items()}
    keep = [i for i in range(len(columns)) if any(cells[i] != "–" for cells in body.values())]
    titles = [label] + (["seeds"] if seeds else []) + [columns[i].title for i in keep]
    lines = ["| " + " | ".join(titles) + " |", "|---|" + "---:|" * (len(titles) - 1)]
    for name, cells in body.items():
        extra = [str(len(models[name]))] if seeds else []
        lines.append("| " + " | ".join([name, *extra, *(cells[i] for i in keep)]) + " |")
    return "\n".join(lines)
