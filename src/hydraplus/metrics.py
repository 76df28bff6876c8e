"""Every metric of an evaluation, defined once (docs/method.md#metrics): its key in a model's row,
column title, scale, format, better direction and the report tables that show it.

The computations stay where they are (`hydraplus.core.metrics`, `.selective`, `.calibration`,
`.ood`, `.fidelity` and the evaluators); each definition names the ``group`` of keys one of them
returns, and every suite fills a model's row with `section`, which keeps exactly the defined keys in
definition order and fails on a key computed but not defined or defined but not computed.
`PLACES` says where every evaluation keeps each group in a model's row (`upgrade` moves the metrics
of evaluations written before), and `hydraplus.report.metric_columns` makes every table's columns
from `shown`. A new metric is one `Metric` here and its computation.

The order of `METRICS` is the column order of every table (and the row order of the shift tables).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from hydraplus.core.metrics import INTERVALS
from hydraplus.core.ood import LOGIT_MEASURES, OOD_MEASURES
from hydraplus.core.selective import RISK_COVERAGES

LOWER, HIGHER = "lower", "higher"  # better values; None: neither (a temperature, a mean uncertainty)
UNCERTAINTIES = (("predictive", "pred."), ("aleatoric", "alea."), ("epistemic", "epi."))  # name, short

# The report tables (`hydraplus.report`): image runs (compare.md, evaluation.md), the demo's toy
# tables, distil runs (report.md, evaluation.md); calibration and intervals are shared by all three.
CLEAN = "clean"  # image: the paper's table
CALIBRATION = "calibration"  # calibration and selective prediction (classification)
PREDICTIVE_INTERVALS = "intervals"  # central intervals (regression)
UNCERTAINTY = "uncertainty"  # image
FIDELITY = "fidelity"  # image: each student against the ensemble
COST = "cost"  # image (parameters and FLOPs are in the clean table, with units)
SHIFT = "shift"  # image: rows of the dataset-shift tables over seeds, and the figures against shift level
SHIFT_ONE_RUN = "shift-one-run"  # image: rows of the dataset-shift tables of one run's evaluation.md
TOY = "toy"  # the demo's table (its spiral and regression columns, by task)
DISTIL_TEST = "distil-test"
DISTIL_UNCERTAINTY = "distil-uncertainty"
DISTIL_COST = "distil-cost"
OOD_QUANTITIES = (("auroc", "AUROC", 1.0, ".3f", HIGHER), ("aupr", "AUPR", 1.0, ".3f", HIGHER),
                  ("fpr95", "FPR95 %", 100.0, ".1f", LOWER))  # key, title, scale, format, better
OOD_SCORE_TITLES = {"msp": ("MSP", "MSP"), "predictive": ("entropy", "pred."),  # image, distil
                    "epistemic": ("epistemic", "epi."), "energy": ("energy", "energy"),
                    "maxlogit": ("max logit", "max logit")}


def ood_table(quantity: str) -> str:
    """The image table of one detection quantity (``auroc``, ``aupr``, ``fpr95``): a column per score."""
    return f"ood-{quantity}"


TABLES = (CLEAN, CALIBRATION, PREDICTIVE_INTERVALS, UNCERTAINTY, *(ood_table(q[0]) for q in OOD_QUANTITIES),
          FIDELITY, COST, SHIFT, SHIFT_ONE_RUN, TOY, DISTIL_TEST, DISTIL_UNCERTAINTY, DISTIL_COST)


@dataclass(frozen=True)
class Show:
    """A table that shows a metric, with the title or format it takes there where not its own."""

    table: str
    title: str | None = None
    fmt: str | None = None


@dataclass(frozen=True)
class Metric:
    """One metric: ``key`` in the rows of its ``group`` (the keys one computation returns; a
    ``{batch}`` in it stands for each latency batch size), the column ``title``, the ``scale`` and
    ``fmt`` (a format spec) of its cells, which values are ``better``, the ``tables`` that show it,
    and the ``task`` it belongs to (None: its group's, or either). ``spread=False`` for quantities
    that do not vary over seeds (parameters, FLOPs); ``optional`` for those its computation gives
    only for some models or data (energy for logits, a multi-head student's core and head cost)."""

    group: str
    key: str
    title: str
    scale: float = 1.0
    fmt: str = ".3f"
    better: str | None = LOWER
    tables: tuple[str | Show, ...] = ()
    task: str | None = None
    spread: bool = True
    optional: bool = False

    def shown_in(self, table: str) -> Metric | None:
        """This metric as ``table`` shows it (its title and format there), or None if it does not."""
        for shown in self.tables:
            if shown == table:
                return self
            if isinstance(shown, Show) and shown.table == table:
                return replace(self, title=shown.title or self.title, fmt=shown.fmt or self.fmt)
        return None

    def expanded(self, batch_sizes: Sequence[int]) -> list[Metric]:
        """This metric at each of ``batch_sizes`` (a latency: ``{batch}`` in its key), else itself."""
        if "{batch}" not in self.key:
            return [self]
        return [replace(self, key=self.key.format(batch=b), title=self.title.format(batch=b))
                for b in batch_sizes]

    @property
    def for_task(self) -> str | None:
        """The task whose evaluations have this metric (None: both)."""
        return self.task or _GROUP_TASKS.get(self.group)


C, R = "classification", "regression"
_GROUP_TASKS = {C: C, "selective": C, "temperature": C, "fidelity": C, R: R}  # groups of one task
_DISTIL_OOD = {"predictive": ("auroc", "aupr"), "epistemic": ("auroc", "aupr"), "energy": ("auroc",),
               "maxlogit": ("auroc",)}  # the detection quantities of each score in the distil table
_REGRESSION_OOD = ("predictive", "epistemic")  # the scores of a regression model (its variances)
_OOD = tuple(
    Metric("ood", f"{score}_{key}", f"{title} ({OOD_SCORE_TITLES[score][0]})", scale, fmt, better,
           (Show(ood_table(key), OOD_SCORE_TITLES[score][0]),
            *((Show(DISTIL_UNCERTAINTY, f"OOD {title} ({OOD_SCORE_TITLES[score][1]})"),)
              if key in _DISTIL_OOD.get(score, ()) else ())),
           task=None if score in _REGRESSION_OOD else C, optional=score in LOGIT_MEASURES)
    for score in (*OOD_MEASURES, *LOGIT_MEASURES) for key, title, scale, fmt, better in OOD_QUANTITIES)

METRICS: tuple[Metric, ...] = (
    # ClassificationMetrics, selective_metrics and temperature_metrics (groups classification,
    # selective, temperature), interleaved in column order
    Metric(C, "error", "error %", 100.0, ".2f",
           tables=(CLEAN, SHIFT, SHIFT_ONE_RUN, Show(TOY, "test error %"), DISTIL_TEST)),
    Metric(C, "ece", "ECE %", 100.0, ".2f", tables=(CLEAN, SHIFT, SHIFT_ONE_RUN, TOY, DISTIL_TEST)),
    Metric(C, "ece_15", "ECE-15 %", 100.0, ".2f", tables=(CLEAN,)),
    Metric("selective", "aurc", "AURC %", 100.0, ".2f", tables=(CLEAN,)),
    Metric(C, "nll", "NLL", tables=(CLEAN, SHIFT, Show(TOY, fmt=".4f"), Show(DISTIL_TEST, fmt=".4f"))),
    Metric(C, "brier", "Brier", tables=(CLEAN, Show(DISTIL_TEST, fmt=".4f"))),
    Metric(C, "predictive_entropy", "entropy", better=None,
           tables=(CLEAN, SHIFT, Show(TOY, fmt=".4f"), Show(DISTIL_UNCERTAINTY, "pred. entropy", ".4f"))),
    Metric(C, "aleatoric_entropy", "alea. entropy", fmt=".4f", better=None, tables=(DISTIL_UNCERTAINTY,)),
    Metric(C, "epistemic_entropy", "epistemic entropy", fmt=".4f", better=None,
           tables=(UNCERTAINTY, Show(SHIFT, "epistemic"), Show(DISTIL_UNCERTAINTY, "epi. entropy"))),
    Metric(C, "ece_adaptive", "adaptive ECE %", 100.0, ".2f", tables=(CALIBRATION,)),
    Metric("temperature", "ece_ts", "ECE % (T-scaled)", 100.0, ".2f", tables=(CALIBRATION,)),
    Metric("temperature", "nll_ts", "NLL (T-scaled)", tables=(CALIBRATION,)),
    Metric("temperature", "temperature", "T", better=None, tables=(CALIBRATION,)),
    Metric("selective", "augrc", "AUGRC %", 100.0, ".2f", tables=(CALIBRATION,)),
    *(Metric("selective", f"risk_{c}", f"risk@{c}% %", 100.0, ".2f", tables=(CALIBRATION,))
      for c in RISK_COVERAGES),
    # RegressionMetrics (group regression)
    Metric(R, "rmse", "RMSE", tables=(Show(TOY, "test RMSE"), Show(DISTIL_TEST, fmt=".4f"))),
    Metric(R, "mae", "MAE", fmt=".4f", tables=(DISTIL_TEST,)),
    Metric(R, "nll", "Gaussian NLL", tables=(Show(TOY, "test NLL"), Show(DISTIL_TEST, fmt=".4f"))),
    *(Metric(R, f"{kind}_std", f"{short} std", fmt=".4f", better=None, tables=(DISTIL_UNCERTAINTY,))
      for kind, short in UNCERTAINTIES),
    *(Metric(R, f"coverage_{q}", f"coverage {q}% %", 100.0, ".1f", better=None,
             tables=(PREDICTIVE_INTERVALS,)) for q in INTERVALS),
    *(Metric(R, f"width_{q}", f"width {q}%", better=None, tables=(PREDICTIVE_INTERVALS,)) for q in INTERVALS),
    # the toy evaluation's off-data and out-of-range measures (group toy)
    Metric("toy", "oor_rmse", "[-12,12] RMSE", tables=(TOY,), task=R, optional=True),  # probe targets known
    Metric("toy", "oor_nll", "[-12,12] NLL", tables=(TOY,), task=R, optional=True),
    Metric("toy", "offdata_epistemic", "off-data epistemic", better=HIGHER, tables=(TOY,), task=C),
    Metric("toy", "offdata_epistemic", "off-data epistemic std", better=HIGHER, tables=(TOY,), task=R),
    Metric("toy", "ondata_epistemic", "on-data epistemic", better=None),
    # the total variation between a model's uncertainty histogram and the ensemble's (teacher's)
    *(Metric("tv", kind, f"TV {short}", tables=(UNCERTAINTY, TOY, DISTIL_UNCERTAINTY))
      for kind, short in UNCERTAINTIES),
    # out-of-distribution detection (group ood): every score, then every quantity
    *_OOD,
    # fidelity to the ensemble (group fidelity); the distil student's class agreement with its teacher
    Metric("fidelity", "agreement", "agreement %", 100.0, ".2f", HIGHER, (FIDELITY, SHIFT, SHIFT_ONE_RUN)),
    Metric("fidelity", "kl", "KL to ensemble", fmt=".4f", tables=(FIDELITY, SHIFT, SHIFT_ONE_RUN)),
    Metric("fidelity", "epistemic_spearman", "epistemic Spearman", better=HIGHER, tables=(FIDELITY, SHIFT)),
    Metric("distil", "agreement", "agreement with the teacher %", 100.0, ".2f", HIGHER),
    # a spread-scaled student's factor, fitted on the validation split (hydraplus.evaluation.spread)
    Metric("spread", "spread_scale", "spread s", better=None, tables=(UNCERTAINTY,), optional=True),
    # cost (groups profile, train, early_stopping)
    Metric("profile", "params", "params", fmt=",.0f", tables=(TOY, DISTIL_COST), spread=False),
    Metric("profile", "flops", "FLOPs/input", fmt=",.0f", tables=(TOY, DISTIL_COST), spread=False),
    Metric("profile", "latency_b{batch}_s", "latency b{batch} ms", 1e3, ".2f", tables=(COST, DISTIL_COST)),
    *(Metric("profile", f"{part}_{key}", f"{part} {title}", fmt=",.0f", spread=False,  # multi-head
             optional=True) for part in ("core", "head")  # students alone
      for key, title in (("params", "params"), ("flops", "FLOPs/input"))),
    Metric("train", "train_seconds", "train s", fmt=".1f", better=None, tables=(COST, TOY, DISTIL_COST)),
    Metric("early_stopping", "best_epoch", "best epoch", fmt=".1f", better=None,
           tables=(COST, TOY, DISTIL_COST)),
)

# Where every evaluation (image, toy, distil) keeps each group in a model's row: the path to the
# group's keys. A row is {"clean": test-set metrics, "ood", "tv", "profile", "fidelity": {"clean"},
# "probe": the toy's off-data measures, "early_stopping", "train_seconds", "agreement"} plus what is
# a suite's alone (the image suite's shifts, histograms, reliability and risk-coverage curve).
PLACES: dict[str, tuple[str, ...]] = {
    C: ("clean",), R: ("clean",), "selective": ("clean",), "temperature": ("clean",), "ood": ("ood",),
    "tv": ("tv",), "fidelity": ("fidelity", "clean"), "toy": ("probe",), "profile": ("profile",),
    "train": (), "early_stopping": ("early_stopping",), "distil": (), "spread": (),
}
SCHEMA = 2  # the envelope's ``schema``: 2 since every kind lays its rows out at `PLACES`


def where(group: str, key: str) -> tuple[str, ...]:
    """The path to ``key`` of ``group`` in a model's row."""
    return (*PLACES[group], key)


def path(metric: Metric) -> tuple[str, ...]:
    """Where ``metric`` sits in a model's row."""
    return where(metric.group, metric.key)


def value(row: Mapping[str, Any], group: str, key: str) -> Any:
    """The value of ``key`` of ``group`` in ``row`` (None where the row lacks it)."""
    node: Any = row
    for step in where(group, key):
        node = node.get(step) if isinstance(node, Mapping) else None
    return node


# Where each kind of evaluation kept each group before schema 2 (``{key}`` in a step: the key went
# there instead of after the path): what `upgrade` moves from.
_AT_TOP = {group: () for group in (C, R, "selective", "temperature", "toy", "profile", "train", "distil")}
_SCHEMA_1_PLACES: dict[str, dict[str, tuple[str, ...]]] = {
    "image": {C: ("clean",), "selective": ("clean",), "temperature": ("clean",), "ood": ("ood",),
              "fidelity": ("fidelity", "clean"), "tv": ("shift_histograms", "tv"), "profile": ("profile",),
              "train": (), "early_stopping": ("early_stopping",)},
    "toy": {**_AT_TOP, "tv": ("tv_{key}",), "early_stopping": ("early_stopping",)},
    "distil": {**_AT_TOP, C: ("test",), R: ("test",), "selective": ("test",), "temperature": ("test",),
               "ood": ("ood",), "tv": ("tv",), "profile": ("profile",),
               "early_stopping": ("early_stopping",)},
}


def _schema_1_path(metric: Metric, kind: str) -> tuple[str, ...] | None:
    steps = _SCHEMA_1_PLACES[kind].get(metric.group)
    if steps is None:
        return None
    if any("{key}" in step for step in steps):
        return tuple(step.format(key=metric.key) for step in steps)
    return (*steps, metric.key)


def _move(row: dict[str, Any], old: tuple[str, ...], new: tuple[str, ...]) -> None:
    """Move the value at path ``old`` of ``row`` (if any) to ``new``, dropping containers it empties."""
    parents = [row]
    for step in old[:-1]:
        node = parents[-1].get(step)
        if not isinstance(node, dict):
            return
        parents.append(node)
    if old[-1] not in parents[-1]:
        return
    moved = parents[-1].pop(old[-1])
    for parent, step in zip(reversed(parents[:-1]), reversed(old[:-1]), strict=True):
        if parent[step] == {}:
            del parent[step]
    node = row
    for step in new[:-1]:
        node = node.setdefault(step, {})
    node[new[-1]] = moved


def upgrade(evaluation: dict[str, Any]) -> dict[str, Any]:
    """``evaluation`` (a checked envelope, as an ``evaluation.json`` holds it) in the current schema:
    one written before schema 2 kept each group where its kind did (image: TV under
    ``shift_histograms``; toy: every metric at the top, TV as ``tv_{kind}``; distil: test metrics under
    ``test``), and gets each metric moved to `PLACES`, values untouched. The same dict for one already
    current; an unknown (newer) schema is an error."""
    schema = evaluation.get("schema", 1)
    if schema == SCHEMA:
        return evaluation
    if schema != 1:
        raise ValueError(f"evaluation schema {schema!r} is not known to this hydraplus (it reads 1 to "
                         f"{SCHEMA}); upgrade hydraplus or re-run `hydraplus evaluate` on the run")
    kind = evaluation["kind"]
    batch_sizes = evaluation.get("settings", {}).get("latency_batch_sizes") or ()
    moves = [(old, path(one)) for metric in METRICS for one in metric.expanded(batch_sizes)
             if (old := _schema_1_path(one, kind)) is not None and old != path(one)]
    upgraded = json.loads(json.dumps({**evaluation, "schema": SCHEMA}))  # a copy: the caller's stays
    rows = [*upgraded["models"].values(), *(upgraded.get("members") or {}).get("rows", [])]
    for row in rows:
        for old, new in moves:
            _move(row, old, new)
    return upgraded


def shown(table: str, task: str | None = None) -> list[Metric]:
    """The metrics ``table`` shows, in column order, as it shows them (their titles and formats
    there); with ``task``, those of that task alone."""
    out = [m.shown_in(table) for m in METRICS if task is None or m.for_task in (None, task)]
    return [m for m in out if m is not None]


def keys(group: str, batch_sizes: Sequence[int] = ()) -> set[str]:
    """The keys of ``group`` (a computation's output; each latency at each of ``batch_sizes``)."""
    return {one.key for m in METRICS if m.group == group for one in m.expanded(batch_sizes)}


def section(group: str, computed: Mapping[str, Any], task: str | None = None,
            batch_sizes: Sequence[int] = ()) -> dict[str, Any]:
    """The row section of ``group`` from what its computation returned: exactly the keys defined for
    the group (and ``task``; each latency at each of ``batch_sizes``), in definition order. A key
    computed but not defined, or defined (not `Metric.optional`) but not computed, is an error."""
    defined: dict[str, Metric] = {}
    for metric in METRICS:
        if metric.group == group and (task is None or metric.for_task in (None, task)):
            defined.update((one.key, one) for one in metric.expanded(batch_sizes) if one.key not in defined)
    if not defined:
        raise KeyError(f"no metric is defined for the group {group!r}" + (f" ({task})" if task else ""))
    extra = [key for key in computed if key not in defined]
    missing = [key for key, metric in defined.items() if key not in computed and not metric.optional]
    if extra or missing:
        raise KeyError(f"the {group!r} metrics" + (f" ({task})" if task else "") + " disagree with their "
                       f"definitions (hydraplus.metrics): computed but not defined {extra}, defined but "
                       f"not computed {missing}")
    return {key: computed[key] for key in defined if key in computed}


def defined_paths(task: str, batch_sizes: Sequence[int] = ()) -> set[tuple[str, ...]]:
    """Where the definitions put every metric of ``task`` in a model's row (each latency at each of
    ``batch_sizes``)."""
    return {path(one) for metric in METRICS if metric.for_task in (None, task)
            for one in metric.expanded(batch_sizes)}


_RECORDS = {("early_stopping",): "a record: its best_epoch is a metric, the rest settings",
            ("members",): "the teacher's member count in a distil row"}


def undefined_numbers(row: Mapping[str, Any], task: str, batch_sizes: Sequence[int] = ()) -> list[str]:
    """The dotted paths of numbers in ``row`` (one model's) that sit where metrics sit but that no
    definition names: computed but not defined."""
    defined = defined_paths(task, batch_sizes)
    found = []
    for prefix in {p[:-1] for p in defined} - set(_RECORDS):
        node: Any = row
        for step in prefix:
            node = node.get(step) if isinstance(node, Mapping) else None
        for key, value in (node or {}).items():
            number = isinstance(value, int | float) and not isinstance(value, bool)
            if number and (*prefix, key) not in defined and (*prefix, key) not in _RECORDS:
                found.append(".".join((*prefix, key)))
    return sorted(found)
