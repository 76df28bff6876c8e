"""Markdown tables of evaluations: one image run's ``evaluation.md`` and, over seeds and runs,
``compare.md`` of image or toy runs (mean ± sample std over seeds; ± is left out with one seed)."""

from __future__ import annotations

import json
import re
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from hydraplus.report.markdown import REGRESSION_COLUMNS, SPIRAL_COLUMNS

Getter = Callable[[dict[str, Any]], float | None]


class Column(NamedTuple):
    """A table column: a quantity of a model's evaluation, scaled and rounded; ``spread=False``
    for quantities that do not vary over seeds (FLOPs, parameters)."""

    title: str
    getter: Getter
    scale: float = 1.0
    digits: int = 3
    spread: bool = True


SHIFT_METRICS: tuple[tuple[str, str, float, int], ...] = (
    ("error", "error %", 100.0, 2),
    ("ece", "ECE %", 100.0, 2),
    ("nll", "NLL", 1.0, 3),
    ("predictive_entropy", "entropy", 1.0, 3),
)


@dataclass
class Pooled:
    """Evaluations pooled by model: ``models[name]`` holds one entry per seed.

    For toy runs ``problem`` is ``{"toy": True, "task": ...}`` and each entry is the flat
    metrics row of the toy evaluation.
    """

    models: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    problem: dict[str, Any] = field(default_factory=dict)
    runs: dict[str, int] = field(default_factory=dict)  # run label -> number of seeds


def _is_toy(evaluation: dict[str, Any]) -> bool:
    """A toy evaluation maps each model to a flat row with an error (spiral) or RMSE (regression)."""
    return bool(evaluation) and all(isinstance(row, dict) and ("error" in row or "rmse" in row)
                                    for row in evaluation.values())


def read_evaluation(path: Path) -> dict[str, Any]:
    """An image or toy ``evaluation.json``; a clear error for unreadable or foreign files."""
    path = Path(path)
    try:
        evaluation = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"cannot read evaluation {path}: {err}") from err
    if not isinstance(evaluation, dict) or not (isinstance(evaluation.get("models"), dict)
                                                or _is_toy(evaluation)):
        raise ValueError(f"{path} is not a hydraplus evaluation (the evaluation.json that "
                         "`hydraplus train` or `hydraplus evaluate` writes)")
    return evaluation


def _parts(evaluation: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(rows by model, problem, settings) of an image or toy evaluation."""
    if _is_toy(evaluation):
        task = "classification" if "error" in next(iter(evaluation.values())) else "regression"
        return evaluation, {"toy": True, "task": task}, {}
    return evaluation["models"], evaluation["problem"], evaluation["settings"]


def _seed_key(path: Path) -> tuple[int, str]:
    match = re.fullmatch(r"seed-(-?\d+)", path.parent.name)
    return (int(match.group(1)) if match else 0, str(path))


def find_evaluations(run_dirs: Sequence[Path]) -> dict[str, list[Path]]:
    """``evaluation.json`` files by run: a seed folder's own (grouped under its parent folder),
    or those of a train output folder's ``seed-*/`` folders."""
    groups: dict[Path, list[Path]] = {}
    for given in map(Path, run_dirs):
        if not given.is_dir():
            raise FileNotFoundError(f"run folder not found: {given}")
        if (given / "evaluation.json").is_file():
            key, files = given.resolve().parent, [given / "evaluation.json"]
        else:
            key, files = given.resolve(), sorted(given.glob("seed-*/evaluation.json"), key=_seed_key)
        if not files:
            raise FileNotFoundError(f"no evaluation.json in {given} or its seed-*/ folders; "
                                    f"run `hydraplus evaluate {given}` first")
        group = groups.setdefault(key, [])
        group += [f for f in files if f.resolve() not in {g.resolve() for g in group}]
    names = [key.name for key in groups]
    unique = len(set(names)) == len(names)
    return {(key.name if unique else str(key)): files for key, files in groups.items()}


def pool(runs: dict[str, list[dict[str, Any]]]) -> Pooled:
    """Pool evaluations (per run label, one per seed); with several runs, model names get the
    run label as a prefix."""
    pooled = Pooled()
    for label, evaluations in runs.items():
        pooled.runs[label] = len(evaluations)
        for evaluation in evaluations:
            models, problem, settings = _parts(evaluation)
            if not pooled.problem:
                pooled.problem, pooled.settings = problem, settings
            elif problem.get("toy") != pooled.problem.get("toy"):
                raise ValueError(f"run {label} mixes toy and image evaluations: they cannot be compared")
            elif problem.get("task") != pooled.problem.get("task"):
                raise ValueError(f"run {label} is {problem.get('task')}, others "
                                 f"{pooled.problem.get('task')}: they cannot be compared")
            elif problem.get("num_classes") != pooled.problem.get("num_classes"):
                raise ValueError(f"run {label} has {problem['num_classes']} classes, "
                                 f"others {pooled.problem['num_classes']}: they cannot be compared")
            for name, row in models.items():
                pooled.models.setdefault(f"{label}/{name}" if len(runs) > 1 else name, []).append(row)
    return pooled


def load_pooled(run_dirs: Sequence[Path]) -> Pooled:
    """Read and pool every evaluation found under ``run_dirs`` (see `find_evaluations`)."""
    return pool({label: [read_evaluation(f) for f in files]
                 for label, files in find_evaluations(run_dirs).items()})


def get(row: dict[str, Any], *path: str | int) -> Any:
    """``row[p0][p1]...`` or None where any step is missing."""
    value: Any = row
    for step in path:
        try:
            value = value[step]
        except (KeyError, IndexError, TypeError):
            return None
    return value


def mean_std(values: Sequence[float | None]) -> tuple[float, float | None] | None:
    """Mean and sample std of the known values (std None with one value; None with none)."""
    known = [float(v) for v in values if v is not None]
    if not known:
        return None
    return statistics.fmean(known), statistics.stdev(known) if len(known) > 1 else None


def cell(rows: Sequence[dict[str, Any]], getter: Getter, scale: float = 1.0, digits: int = 3,
         spread: bool = True) -> str:
    """``mean ± std`` of a quantity over seeds, scaled (``mean`` only without ``spread``);
    ``–`` when unknown."""
    stats = mean_std([getter(r) for r in rows])
    if stats is None:
        return "–"
    mean, std = stats
    text = f"{scale * mean:.{digits}f}"
    return text if std is None or not spread else f"{text} ± {scale * std:.{digits}f}"


def _unit(pooled: Pooled, getter: Getter, units: Sequence[tuple[float, str]]) -> tuple[float, str]:
    """The largest unit (scale, prefix) not above every model's mean value."""
    means = [s[0] for rows in pooled.models.values() if (s := mean_std([getter(r) for r in rows]))]
    top = max(means, default=0.0)
    for size, prefix in units:
        if top >= size:
            return 1.0 / size, prefix
    return 1.0, ""


def table(pooled: Pooled, columns: Sequence[Column], seeds: bool = False) -> str:
    """One row per model (with its number of seeds); columns with no known value are left out."""
    body = {name: [cell(rows, *c[1:]) for c in columns] for name, rows in pooled.models.items()}
    keep = [i for i in range(len(columns)) if any(cells[i] != "–" for cells in body.values())]
    titles = ["method"] + (["seeds"] if seeds else []) + [columns[i].title for i in keep]
    lines = ["| " + " | ".join(titles) + " |", "|---|" + "---:|" * (len(titles) - 1)]
    for name, cells in body.items():
        extra = [str(len(pooled.models[name]))] if seeds else []
        lines.append("| " + " | ".join([name, *extra, *(cells[i] for i in keep)]) + " |")
    return "\n".join(lines)


def _path(*path: str | int) -> Getter:
    return lambda row: get(row, *path)


def clean_columns(pooled: Pooled) -> list[Column]:
    """The paper's table: error, ECE, NLL, Brier, entropy, FLOPs per input and parameters."""
    flops_scale, flops_unit = _unit(pooled, _path("profile", "flops"), ((1e9, "G"), (1e6, "M"), (1e3, "k")))
    params_scale, params_unit = _unit(pooled, _path("profile", "params"), ((1e6, "M"), (1e3, "k")))
    return [
        Column("error %", _path("clean", "error"), 100.0, 2),
        Column("ECE %", _path("clean", "ece"), 100.0, 2),
        Column("NLL", _path("clean", "nll")),
        Column("Brier", _path("clean", "brier")),
        Column("entropy", _path("clean", "predictive_entropy")),
        Column(f"{flops_unit}FLOPs", _path("profile", "flops"), flops_scale, 2, spread=False),
        Column(f"{params_unit} params".strip(), _path("profile", "params"), params_scale, 2, spread=False),
    ]


def uncertainty_columns(pooled: Pooled) -> list[Column]:
    """Clean epistemic entropy, OOD detection and the histogram TV to the ensemble."""
    hist = pooled.settings.get("histogram", {})
    shift = shift_label(hist.get("kind", ""), hist.get("magnitude", 0.0))
    probe = pooled.problem.get("probe_name") or "OOD"
    columns = [Column("epistemic entropy", _path("clean", "epistemic_entropy"), digits=4)]
    for measure, title in (("predictive", "entropy"), ("epistemic", "epistemic")):
        columns.append(Column(f"{probe} AUROC ({title})", _path("ood", f"{measure}_auroc")))
        columns.append(Column(f"{probe} AUPR ({title})", _path("ood", f"{measure}_aupr")))
    for kind, short in (("predictive", "pred."), ("aleatoric", "alea."), ("epistemic", "epi.")):
        columns.append(Column(f"TV {short} ({hist.get('kind', '')} {shift})",
                              _path("shift_histograms", "tv", kind)))
    return columns


def cost_columns(pooled: Pooled) -> list[Column]:
    """Latency per batch size and training time."""
    columns = [Column(f"latency b{b} ms", _path("profile", f"latency_b{b}_s"), 1e3, 2)
               for b in pooled.settings.get("latency_batch_sizes", [])]
    return [*columns, Column("train s", _path("train_seconds"), digits=1)]


def shift_label(kind: str, magnitude: float) -> str:
    """``30%`` for translations, ``45°`` for rotations, ``×1.3`` for brightness."""
    if kind == "rotation":
        return f"{magnitude:g}°"
    if kind == "brightness":
        return f"×{magnitude:g}"
    return f"{100 * magnitude:g}%"


def shift_table(pooled: Pooled, kind: str, metrics: Sequence[tuple[str, str, float, int]]) -> str:
    """Rows: metric then model; columns: clean and each level of ``kind``."""
    labels = [shift_label(kind, m) for m in pooled.settings["shift_levels"][kind]]
    lines = ["| metric | method | clean | " + " | ".join(labels) + " |",
             "|---|---|" + "---:|" * (len(labels) + 1)]
    for key, title, scale, digits in metrics:
        for name, rows in pooled.models.items():
            cells = [cell(rows, _path("clean", key), scale, digits)]
            cells += [cell(rows, _path("shifts", kind, i, key), scale, digits) for i in range(len(labels))]
            lines.append(f"| {title} | {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def results_markdown(pooled: Pooled, title: str, intro: str,
                     shift_metrics: Sequence[tuple[str, str, float, int]] = SHIFT_METRICS,
                     seeds: bool = False) -> str:
    """Clean, uncertainty and cost tables, then one dataset-shift table per shift kind."""
    parts = [f"# {title}", intro,
             "## Clean test set", table(pooled, clean_columns(pooled), seeds=seeds),
             "## Uncertainty", table(pooled, uncertainty_columns(pooled)),
             "## Cost", table(pooled, cost_columns(pooled))]
    has_shifts = any(get(r, "shifts") for rows in pooled.models.values() for r in rows)
    if has_shifts:
        parts.append("## Dataset shift")
        for kind in pooled.settings["shift_levels"]:
            parts += [f"### {kind.capitalize()} shift", shift_table(pooled, kind, shift_metrics)]
    return "\n\n".join(parts) + "\n"


def _test_set(pooled: Pooled) -> str:
    problem = pooled.problem
    text = f"test set {problem['name']} ({problem['test_size']:,} images)"
    if problem.get("probe_name"):
        text += f", OOD set {problem['probe_name']} ({problem['probe_size']:,} images)"
    return text


def evaluation_markdown(evaluation: dict[str, Any]) -> str:
    """``evaluation.md`` of one run: per model its clean metrics, then error/ECE per shift level."""
    pooled = pool({"run": [evaluation]})
    intro = (f"One seed; {_test_set(pooled)}. Error and ECE in %, entropies in nats; OOD detection "
             "scores inputs by predictive entropy or epistemic uncertainty (OOD = positive class); TV "
             "is the total variation between a model's uncertainty histogram under the shift and the "
             "ensemble's (0 = identical, 1 = disjoint).")
    return results_markdown(pooled, "Evaluation", intro, SHIFT_METRICS[:2])


def toy_columns(task: str) -> list[Column]:
    """The demo report's columns (`hydraplus.report.markdown`) as pooled-table columns."""
    columns = []
    for key, title, kind in SPIRAL_COLUMNS if task == "classification" else REGRESSION_COLUMNS:
        if kind == "pct":
            columns.append(Column(title, _path(key), 100.0, 2))
        elif kind == "int":
            columns.append(Column(title, _path(key), digits=0, spread=False))
        else:  # "fN": N decimals
            columns.append(Column(title, _path(key), digits=int(kind[1:])))
    return columns


def compare_markdown(pooled: Pooled, figures: Sequence[str] = ()) -> str:
    """``compare.md``: the tables of `results_markdown` over seeds, then the figures (image runs),
    or one table of the demo report's columns over seeds (toy runs)."""
    runs = ", ".join(f"{label} ({n} seed{'s' * (n != 1)})" for label, n in pooled.runs.items())
    if pooled.problem.get("toy"):
        task = pooled.problem["task"]
        intro = (f"Runs: {runs}; toy {'spiral' if task == 'classification' else 'regression'} "
                 "problem (SPEC section 6). Mean ± sample standard deviation over seeds; "
                 "the columns are those of the demo report.")
        return "\n\n".join(["# Comparison", intro,
                             table(pooled, toy_columns(task), seeds=True)]) + "\n"
    intro = (f"Runs: {runs}; {_test_set(pooled)}. Mean ± sample standard deviation over seeds. "
             "Error and ECE in %, entropies in nats; TV is the total variation between a model's "
             "uncertainty histogram under the shift and the ensemble's (0 = identical, 1 = disjoint).")
    text = results_markdown(pooled, "Comparison", intro, seeds=True)
    if figures:
        text += "\n## Figures\n\n" + "\n\n".join(f"![{Path(f).stem}]({f})" for f in figures) + "\n"
    return text
