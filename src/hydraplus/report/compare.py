"""Reading, pooling and Markdown of evaluations: one run's ``evaluation.md`` and, over seeds and
runs, ``compare.md`` of image, toy or distil runs (mean ± sample std over seeds; ± is left out with
one seed).

Every ``evaluation.json`` is ``{"kind": "toy" | "image" | "distil", "task": "classification" | "regression",
"schema": 2, "models": {name: row}, "problem": {...}, "settings": {...}}``; see `hydraplus.evaluation`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from hydraplus.metrics import (
    CALIBRATION,
    CLEAN,
    COST,
    FIDELITY,
    OOD_QUANTITIES,
    SHIFT,
    SHIFT_ONE_RUN,
    UNCERTAINTY,
    ood_table,
    shown,
    upgrade,
)
from hydraplus.report.choice import against_members_section
from hydraplus.report.distil import distil_tables
from hydraplus.report.markdown import toy_columns, toy_extra, toy_table
from hydraplus.report.members import POOLED_NOTE, member_note, single_run
from hydraplus.report.metric_columns import CALIBRATION_INTRO, column, columns
from hydraplus.report.tables import Column, Getter, Row, at, cell, get, mean_std, table
from hydraplus.spec import MEMBER

KINDS = ("toy", "image", "distil")
TASKS = ("classification", "regression")


@dataclass
class Pooled:
    """Evaluations of one kind and task pooled by model: ``models[name]`` holds one row per seed."""

    kind: str = ""
    task: str = ""
    models: dict[str, list[Row]] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    problem: dict[str, Any] = field(default_factory=dict)
    runs: dict[str, int] = field(default_factory=dict)  # run label -> number of seeds

    def has(self, *path: str | int) -> bool:
        """Whether some seed of some model has a value at ``path`` (e.g. ``"shifts"``)."""
        return any(get(row, *path) for rows in self.models.values() for row in rows)


def check_evaluation(evaluation: Any, source: Path) -> dict[str, Any]:
    """``evaluation`` if it has a known kind and task, models, problem and settings, else a clear
    error naming ``source`` (an ``evaluation.json`` without a kind predates the kinds)."""
    if not isinstance(evaluation, dict):
        raise ValueError(f"{source} is not a hydraplus evaluation (the evaluation.json that "
                         "`hydraplus train` or `hydraplus evaluate` writes)")
    if "kind" not in evaluation:
        raise ValueError(f"{source} is not a hydraplus evaluation of this version (it has no run "
                         "kind); re-run `hydraplus evaluate RUN` on the run it belongs to")
    if (evaluation["kind"] not in KINDS or evaluation.get("task") not in TASKS
            or not all(isinstance(evaluation.get(k), dict) for k in ("models", "problem", "settings"))):
        raise ValueError(f"{source} is not a hydraplus evaluation: it needs a kind in {KINDS}, "
                         f"a task in {TASKS} and its models, problem and settings")
    return evaluation


def read_evaluation(path: Path) -> dict[str, Any]:
    """A checked ``evaluation.json`` (see `check_evaluation`) in the current schema (one written before
    is upgraded, `hydraplus.metrics.upgrade`); a clear error for unreadable files."""
    path = Path(path)
    try:
        evaluation = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"cannot read evaluation {path}: {err}") from err
    return upgrade(check_evaluation(evaluation, path))


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
    """Pool checked evaluations (per run label, one per seed; see `check_evaluation`); with several
    runs, model names get the run label as a prefix. Mixed kinds, tasks or class counts are an error."""
    pooled = Pooled()
    for label, evaluations in runs.items():
        pooled.runs[label] = len(evaluations)
        for evaluation in evaluations:
            problem = evaluation["problem"]
            if not pooled.kind:
                pooled.kind, pooled.task = evaluation["kind"], evaluation["task"]
                pooled.problem, pooled.settings = problem, evaluation["settings"]
            elif evaluation["kind"] != pooled.kind:
                raise ValueError(f"run {label} mixes {pooled.kind} and {evaluation['kind']} evaluations: "
                                 "they cannot be compared")
            elif evaluation["task"] != pooled.task:
                raise ValueError(f"run {label} is {evaluation['task']}, others {pooled.task}: "
                                 "they cannot be compared")
            elif problem.get("num_classes") != pooled.problem.get("num_classes"):
                raise ValueError(f"run {label} has {problem.get('num_classes')} classes, "
                                 f"others {pooled.problem.get('num_classes')}: they cannot be compared")
            for name, row in evaluation["models"].items():
                pooled.models.setdefault(f"{label}/{name}" if len(runs) > 1 else name, []).append(row)
    return pooled


def load_pooled(run_dirs: Sequence[Path]) -> Pooled:
    """Read and pool every evaluation found under ``run_dirs`` (see `find_evaluations`)."""
    return pool({label: [read_evaluation(f) for f in files]
                 for label, files in find_evaluations(run_dirs).items()})


def _unit(pooled: Pooled, getter: Getter, units: Sequence[tuple[float, str]]) -> tuple[float, str]:
    """The largest unit (scale, prefix) not above every model's mean value."""
    means = [s[0] for rows in pooled.models.values() if (s := mean_std([getter(r) for r in rows]))]
    top = max(means, default=0.0)
    for size, prefix in units:
        if top >= size:
            return 1.0 / size, prefix
    return 1.0, ""


def clean_columns(pooled: Pooled) -> list[Column]:
    """The paper's table: its metrics (`CLEAN`), then FLOPs per input and parameters in units."""
    flops_scale, flops_unit = _unit(pooled, at("profile", "flops"), ((1e9, "G"), (1e6, "M"), (1e3, "k")))
    params_scale, params_unit = _unit(pooled, at("profile", "params"), ((1e6, "M"), (1e3, "k")))
    return [
        *columns(CLEAN, pooled.task),
        Column(f"{flops_unit}FLOPs", at("profile", "flops"), flops_scale, ".2f", spread=False),
        Column(f"{params_unit} params".strip(), at("profile", "params"), params_scale, ".2f", spread=False),
    ]


def uncertainty_columns(pooled: Pooled) -> list[Column]:
    """Clean uncertainty (`UNCERTAINTY`); each histogram TV to the ensemble's titled with its shift."""
    hist = pooled.settings.get("histogram", {})
    shift = f"{hist.get('kind', '')} {shift_label(hist.get('kind', ''), hist.get('magnitude', 0.0))}"
    return [column(replace(m, title=f"{m.title} ({shift})") if m.group == "tv" else m)
            for m in shown(UNCERTAINTY, pooled.task)]


def ood_columns(quantity: str) -> list[Column]:
    """One detection quantity (``auroc``, ``aupr`` or ``fpr95``) of each OOD score (MSP, predictive
    entropy, epistemic, and energy and max logit where the model gives logits)."""
    return columns(ood_table(quantity))


def ood_tables(pooled: Pooled) -> list[str]:
    """One table per detection quantity (`OOD_QUANTITIES`), a column per score."""
    parts = []
    for quantity, title, *_ in OOD_QUANTITIES:
        parts += [f"### {title}", table(pooled.models, ood_columns(quantity))]
    return parts


def fidelity_columns() -> list[Column]:
    """Per-input fidelity to the ensemble on the clean test set."""
    return columns(FIDELITY)


def with_fidelity(pooled: Pooled) -> dict[str, list[Row]]:
    """The models that have fidelity measures (every one but the ensemble)."""
    return {name: rows for name, rows in pooled.models.items() if any(get(r, "fidelity") for r in rows)}


def cost_columns(pooled: Pooled) -> list[Column]:
    """Latency per batch size and training time."""
    return columns(COST, batch_sizes=pooled.settings.get("latency_batch_sizes", []))


def shift_label(kind: str, magnitude: float) -> str:
    """``30%`` for translations, ``45°`` for rotations, ``×1.3`` for brightness, ``std 0.08`` for
    Gaussian noise and ``σ 0.7px`` for Gaussian blur."""
    if kind == "rotation":
        return f"{magnitude:g}°"
    if kind == "brightness":
        return f"×{magnitude:g}"
    if kind == "gaussian_noise":
        return f"std {magnitude:g}"
    if kind == "gaussian_blur":
        return f"σ {magnitude:g}px"
    return f"{100 * magnitude:g}%"


def kind_title(kind: str, corruptions: Sequence[str] = ()) -> str:
    """``Vertical shift``, or ``Gaussian noise corruption`` for a kind among ``corruptions``."""
    return kind.replace("_", " ").capitalize() + (" corruption" if kind in corruptions else " shift")


def level_path(kind: str, level: int | None, key: str, section: str | None = None) -> tuple[str | int, ...]:
    """Where a metric sits in a model's row: clean (``level`` None) or at a shift level (0-based);
    ``section="fidelity"`` for the fidelity to the ensemble."""
    path: tuple[str | int, ...] = ("clean", key) if level is None else ("shifts", kind, level, key)
    return path if section is None else (section, *path)


def shift_table(pooled: Pooled, kind: str, rows_of: str = SHIFT) -> str:
    """Rows: metric (those of the table ``rows_of``: `SHIFT` or `SHIFT_ONE_RUN`) then model;
    columns: clean and each level of ``kind``; the fidelity measures for each model that has them."""
    labels = [shift_label(kind, m) for m in pooled.settings["shift_levels"][kind]]
    lines = ["| metric | method | clean | " + " | ".join(labels) + " |",
             "|---|---|" + "---:|" * (len(labels) + 1)]
    students = with_fidelity(pooled)
    for metric in shown(rows_of, pooled.task):
        section = "fidelity" if metric.group == "fidelity" else None
        for name, rows in (pooled.models if section is None else students).items():
            paths = [level_path(kind, level, metric.key, section) for level in [None, *range(len(labels))]]
            cells = [cell(rows, Column(metric.title, at(*path), metric.scale, metric.fmt)) for path in paths]
            lines.append(f"| {metric.title} | {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _ood_intro(pooled: Pooled) -> str:
    problem = pooled.problem
    return (f"The {problem['test_size']:,} test images mixed with the {problem.get('probe_size') or 0:,} "
            f"images of {problem.get('probe_name')}, OOD being the positive class; each score is "
            "1 - the maximum softmax probability (MSP), the predictive entropy, the epistemic "
            "uncertainty, or, for models that output logits, the energy (members' mean of "
            "-logsumexp of the logits) or the negated max logit (members' mean). AUPR: average "
            "precision. FPR95: the share of test images flagged when 95% of the OOD images are.")


FIDELITY_INTRO = ("Each model against the ensemble, input by input on the clean test set: the share of "
                  "inputs with the same predicted class, the mean KL divergence from the ensemble's mean "
                  "prediction to the model's (nats), and the Spearman rank correlation of the two "
                  "epistemic uncertainties.")


def results_markdown(pooled: Pooled, title: str, intro: str, shift_rows: str = SHIFT,
                     seeds: bool = False, against: Sequence[str] = ()) -> str:
    """Clean tables, the ``against`` section (`against_members_section`), uncertainty, OOD, fidelity and
    cost tables, then one dataset-shift table per kind (shift or corruption) with the metrics of
    ``shift_rows`` (`shift_table`)."""
    parts = [f"# {title}", intro,
             "## Clean test set", table(pooled.models, clean_columns(pooled), seeds=seeds), *against]
    if pooled.has("clean", "augrc"):  # evaluations before these metrics lack them
        parts += ["## Calibration and selective prediction", CALIBRATION_INTRO,
                  table(pooled.models, columns(CALIBRATION))]
    parts += ["## Uncertainty", table(pooled.models, uncertainty_columns(pooled))]
    if pooled.has("ood"):
        parts += ["## Out-of-distribution detection", _ood_intro(pooled), *ood_tables(pooled)]
    students = with_fidelity(pooled)
    if students:
        parts += ["## Fidelity to the ensemble", FIDELITY_INTRO, table(students, fidelity_columns())]
    parts += ["## Cost", table(pooled.models, cost_columns(pooled))]
    if pooled.has("shifts"):  # not with --no-shifts
        parts.append("## Dataset shift")
        for kind in pooled.settings["shift_levels"]:
            title = kind_title(kind, pooled.settings.get("corruptions", ()))
            parts += [f"### {title}", shift_table(pooled, kind, shift_rows)]
    return "\n\n".join(parts) + "\n"


def _test_set(pooled: Pooled) -> str:
    problem = pooled.problem
    unit = "examples" if pooled.kind == "distil" else "images"
    text = f"test set {problem['name']} ({problem['test_size']:,} {unit})"
    if problem.get("probe_name"):
        text += f", OOD set {problem['probe_name']} ({problem['probe_size']:,} {unit})"
    return text


def _distil_markdown(pooled: Pooled, title: str, intro: str, seeds: bool, against: Sequence[str]) -> str:
    """The teacher beside the students of distil runs: the ``against`` section
    (`against_members_section`), then the test, uncertainty and cost tables."""
    units = ("Error and ECE in %, entropies in nats" if pooled.task == "classification"
             else "Uncertainties as standard deviations")
    intro += (f" {units}; TV is the total variation between the student's and the teacher's histograms of "
              "each uncertainty on the test set (0 = the same, 1 = disjoint).")
    tables = distil_tables(pooled.models, pooled.task, pooled.settings.get("latency_batch_sizes", []),
                           seeds=seeds)
    return "\n\n".join([f"# {title}", intro, *against, *tables]) + "\n"


UNITS = ("Error, ECE (10 bins; ECE-15: 15 bins) and AURC (area under the risk-coverage curve) in %, "
         "entropies in nats.")


def evaluation_markdown(evaluation: dict[str, Any]) -> str:
    """``evaluation.md`` of one run: the demo's table (toy runs), or per model its clean metrics,
    uncertainty and cost, then error/ECE per shift level (image runs), or the teacher beside its
    student (distil runs)."""
    members = evaluation.get("members")
    if evaluation["kind"] == "toy":
        rows = single_run(evaluation["models"], members)
        note = [member_note(members)] if members else []
        return "\n\n".join([toy_table(evaluation["models"], evaluation["task"], members), *note,
                            *toy_extra(rows, evaluation["task"])]) + "\n"
    pooled = pool({"run": [evaluation]})
    against = against_members_section(pooled.models, pooled.task)
    pooled.models = single_run(evaluation["models"], members)
    note = f" {member_note(members)}" if members else ""
    if pooled.kind == "distil":
        return _distil_markdown(pooled, "Evaluation", f"One seed; {_test_set(pooled)}.{note}", False, against)
    intro = (f"One seed; {_test_set(pooled)}. {UNITS} TV is the total variation between a model's "
             f"uncertainty histogram under the shift and the ensemble's (0 = identical, 1 = disjoint).{note}")
    return results_markdown(pooled, "Evaluation", intro, SHIFT_ONE_RUN, against=against)


def compare_markdown(pooled: Pooled, figures: Sequence[str] = ()) -> str:
    """``compare.md``: the tables of `results_markdown` over seeds, then the figures (image runs),
    or one table of the demo report's columns over seeds (toy runs), or the teachers beside their
    students over seeds (distil runs)."""
    runs = ", ".join(f"{label} ({n} seed{'s' * (n != 1)})" for label, n in pooled.runs.items())
    note = f" {POOLED_NOTE}" if any(name.split("/")[-1] == MEMBER for name in pooled.models) else ""
    if pooled.kind == "toy":
        intro = (f"Runs: {runs}; toy {pooled.problem['name']} problem (settings: "
                 "docs/method.md#paper-settings). Mean ± sample standard deviation over seeds; "
                 f"the columns are those of the demo report.{note}")
        rows = table(pooled.models, toy_columns(pooled.task), seeds=True, label="model")
        return "\n\n".join(["# Comparison", intro, rows, *toy_extra(pooled.models, pooled.task)]) + "\n"
    against = against_members_section(pooled.models, pooled.task)
    if pooled.kind == "distil":
        intro = f"Runs: {runs}; {_test_set(pooled)}. Mean ± sample standard deviation over seeds.{note}"
        return _distil_markdown(pooled, "Comparison", intro, True, against)
    intro = (f"Runs: {runs}; {_test_set(pooled)}. Mean ± sample standard deviation over seeds. "
             f"{UNITS} TV is the total variation between a model's uncertainty histogram under the "
             f"shift and the ensemble's (0 = identical, 1 = disjoint).{note}")
    text = results_markdown(pooled, "Comparison", intro, seeds=True, against=against)
    if figures:
        text += "\n## Figures\n\n" + "\n\n".join(f"![{Path(f).stem}]({f})" for f in figures) + "\n"
    return text
