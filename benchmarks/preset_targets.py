"""The targets a CPU preset's students are held to, checked on a run's seeds (mean ± std over them).

    python benchmarks/preset_targets.py docs/results/cpu-fashion-mnist --heads 10 \
        --max-gap 0.3 --min-spearman 0.98 --best-ece 0.50 --best-nll 0.244

reads ``seed-*/evaluation.json`` under the folder and prints a Markdown table: each target, the
value of Hydra+-M (and of its automatic-lambda twin, and of both with their spread scaled where the
evaluation has those rows), whether it is met and by how much. Targets:
Hydra+-M's test error below the best member's and within ``--max-gap`` points of the ensemble's;
its mean epistemic entropy at least ``--min-ratio`` of the ensemble's; the Spearman correlation of
its epistemic uncertainty with the ensemble's at least ``--min-spearman``; the total variation of
its epistemic histogram under the evaluation's histogram shift at most ``--max-tv`` and the smallest
of the multi-head students (a spread-scaled row against the spread-scaled ones); its ECE and NLL
no worse than ``--best-ece`` (%) and ``--best-nll``.
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hydraplus.evaluation.spread import SUFFIX
from hydraplus.metrics import value
from hydraplus.report.compare import read_evaluation

Row = dict[str, Any]


def load(folder: Path) -> list[dict[str, Any]]:
    """The evaluations of every ``seed-*`` folder under ``folder``, in seed order (in the current
    schema, as `hydraplus compare` reads them)."""
    paths = sorted(folder.glob("seed-*/evaluation.json"), key=lambda p: int(p.parent.name.split("-")[1]))
    if not paths:
        raise SystemExit(f"no seed-*/evaluation.json under {folder}")
    return [read_evaluation(p) for p in paths]


def error(row: Row) -> float:
    return 100 * value(row, "classification", "error")


def ratio(row: Row, ensemble: Row) -> float:
    return value(row, "classification", "epistemic_entropy") / value(ensemble, "classification",
                                                                     "epistemic_entropy")


def spearman(row: Row) -> float:
    return value(row, "fidelity", "epistemic_spearman")


def tv(row: Row) -> float:
    return value(row, "tv", "epistemic")


def _spread(values: list[float], digits: int) -> str:
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):.{digits}f} ± {std:.{digits}f}"


def check(evaluations: list[dict[str, Any]], heads: int, max_gap: float, min_ratio: float,
          min_spearman: float, max_tv: float, best_ece: float, best_nll: float) -> list[dict[str, Any]]:
    """One entry per target: its name, the student's values over the seeds, the bound and whether
    the mean meets it (``margin`` > 0: met by that much; < 0: missed by that much)."""
    student, twin = f"hydra+-{heads}", f"hydra+-{heads}-auto"
    multi = [name for name in evaluations[0]["models"] if name.startswith(("hydra+-", "hydra-"))]

    def over(name: str, value: Callable[[Row], float]) -> list[float]:
        return [value(e["models"][name]) for e in evaluations]

    ens = over("ensemble", error)
    best = over("member-best", error)
    targets: list[dict[str, Any]] = []

    def add(target: str, name: str, values: list[float], bound: float, higher: bool, digits: int) -> None:
        mean = statistics.fmean(values)
        margin = mean - bound if higher else bound - mean
        targets.append({"target": target, "model": name, "value": _spread(values, digits),
                        "bound": f"{bound:.{digits}f}", "met": margin >= 0, "margin": round(margin, digits)})

    for name in (student, twin, student + SUFFIX, twin + SUFFIX):  # and each with its spread scaled
        if name not in evaluations[0]["models"]:
            continue
        err = over(name, error)
        add("error below the best member's (%)", name, err, statistics.fmean(best), False, 2)
        add(f"error within {max_gap:g} points of the ensemble's (%)", name, err,
            statistics.fmean(ens) + max_gap, False, 2)
        add(f"epistemic entropy ≥ {min_ratio:g} × the ensemble's", name,
            [ratio(e["models"][name], e["models"]["ensemble"]) for e in evaluations], min_ratio, True, 3)
        add(f"epistemic Spearman ≥ {min_spearman:g}", name, over(name, spearman), min_spearman, True, 3)
        add(f"epistemic TV under the histogram shift ≤ {max_tv:g}", name, over(name, tv), max_tv, False, 3)
        others = [statistics.fmean(over(m, tv)) for m in multi  # like with like: as trained, or spread
                  if m != name and m.endswith(SUFFIX) == name.endswith(SUFFIX)]
        if others:
            add("epistemic TV the smallest of the multi-head students", name, over(name, tv), min(others),
                False, 3)
        add("ECE no worse than the best earlier row (%)", name,
            over(name, lambda r: 100 * value(r, "classification", "ece")), best_ece, False, 2)
        add("NLL no worse than the best earlier row", name,
            over(name, lambda r: value(r, "classification", "nll")), best_nll, False, 3)
    return targets


def markdown(targets: list[dict[str, Any]], references: dict[str, str]) -> str:
    """The targets as a Markdown table, after the references' values."""
    lines = [f"{name}: {value}" for name, value in references.items()]
    lines += ["", "| target | model | value (mean ± std) | bound | met | margin |",
              "|---|---|---:|---:|---|---:|"]
    lines += [f"| {t['target']} | {t['model']} | {t['value']} | {t['bound']} | "
              f"{'yes' if t['met'] else '**no**'} | {t['margin']:+g} |" for t in targets]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, help="a folder of seed-*/evaluation.json")
    parser.add_argument("--heads", type=int, required=True, help="M of Hydra+-M")
    parser.add_argument("--max-gap", type=float, required=True, help="points of error over the ensemble's")
    parser.add_argument("--min-ratio", type=float, default=0.75)
    parser.add_argument("--min-spearman", type=float, required=True)
    parser.add_argument("--max-tv", type=float, default=0.15)
    parser.add_argument("--best-ece", type=float, required=True, help="%%")
    parser.add_argument("--best-nll", type=float, required=True)
    args = parser.parse_args(argv)
    evaluations = load(args.folder)
    targets = check(evaluations, args.heads, args.max_gap, args.min_ratio, args.min_spearman, args.max_tv,
                    args.best_ece, args.best_nll)
    references = {f"{name} error %": _spread([error(e["models"][name]) for e in evaluations], 2)
                  for name in ("ensemble", "member", "member-best")}
    print(markdown(targets, references), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
