"""Choose a student recipe on a finished image run's validation split, one factor at a time.

The run's own students are scored first. Each variant is a list of ``key=value`` overrides of one
student (``baseline`` for none): any student
setting (``epochs``, ``patience``, ``t_ind``, ``beta``, ``alpha``, ``lambda`` as a number or
``auto``, ``core_init=member``, ``augment=1``), or the head's ``hidden`` width. The student is
distilled from the run's saved ensemble and teacher cache and scored on the run's validation split
only (the test split is never read here): error, ECE, NLL, and its uncertainty fidelity to the
ensemble: the ratio of mean epistemic entropies (mutual information), their Spearman rank
correlation, and the total variation between the epistemic histograms with the images moved down
by 30% (the paper's shift). Results go to a JSON file, one entry per variant, written as each
finishes, so an interrupted search keeps what it did.

    OMP_NUM_THREADS=1 python benchmarks/recipe_search.py runs/search/seed-0 --seed 0 --heads 10 \\
        --out docs/results/recipe/fashion-mnist.json baseline epochs=30 t_ind=2
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import tempfile
from pathlib import Path
from typing import Any

import torch

from hydraplus.config import parse_config
from hydraplus.core.metrics import ClassificationMetrics
from hydraplus.core.predict import predict
from hydraplus.core.ranks import spearman
from hydraplus.core.uncertainty import classification_uncertainty, total_variation
from hydraplus.data.shift import shift_images
from hydraplus.engine import cache
from hydraplus.pipeline.config_run import load_problem, load_trained, train_student
from hydraplus.pipeline.run_folder import read_early_stopping

SHIFT = ("vertical", 3)  # 30% down: the paper's histogram shift
BINS = 50


def variant(config: dict[str, Any], method: str, heads: int, overrides: str
            ) -> tuple[dict[str, Any], dict[str, Any]]:
    """The config and student entry of one ``key=value,key=value`` variant."""
    config = copy.deepcopy(config)
    entry: dict[str, Any] = {"method": method, "heads": heads}
    for part in [] if overrides == "baseline" else overrides.split(","):
        key, _, value = part.partition("=")
        if key == "hidden":
            config["arch"]["head"]["hidden"] = int(value)
        elif key == "augment":
            entry["augment"] = bool(int(value))
        elif key in ("epochs", "patience"):
            entry[key] = None if value == "none" else int(value)
        elif key == "lambda":
            entry["lambda"] = "auto" if value == "auto" else float(value)
        elif key == "core_init":
            entry["core_init"] = value
        else:
            entry[key] = float(value)
    return config, entry


def fidelity_row(student: torch.Tensor, ensemble: torch.Tensor, student_shift: torch.Tensor,
                 ensemble_shift: torch.Tensor, upper: float) -> dict[str, float]:
    """Epistemic fidelity on the clean and the shifted validation images."""
    s, e = classification_uncertainty(student)["epistemic"], classification_uncertainty(ensemble)["epistemic"]
    s_shift = classification_uncertainty(student_shift)["epistemic"]
    e_shift = classification_uncertainty(ensemble_shift)["epistemic"]
    return {"epistemic_ratio": round(s.mean().item() / e.mean().item(), 3),
            "epistemic_ratio_shift": round(s_shift.mean().item() / e_shift.mean().item(), 3),
            "spearman": round(spearman(s, e), 3),
            "tv_shift": round(total_variation(s_shift, e_shift, upper, BINS), 3)}


def pixels(x: torch.Tensor, normalization: Any) -> torch.Tensor:
    """Normalised images back on the [0, 1] scale (the validation split keeps no raw copy)."""
    mean = torch.tensor(normalization.mean).view(1, -1, 1, 1)
    std = torch.tensor(normalization.std).view(1, -1, 1, 1)
    return (x * std + mean).clamp(0.0, 1.0)


def student_outputs(student: torch.nn.Module, x: torch.Tensor, x_shift: torch.Tensor, seed: int,
                    precision: str) -> tuple[torch.Tensor, torch.Tensor]:
    """A student's outputs on the validation images and their shifted copies, the draws of a
    sampling student (EnDD, Drop, Gauss) seeded, so that a re-run scores it the same."""
    torch.manual_seed(seed)
    return predict(student, x, precision=precision), predict(student, x_shift, precision=precision)


def score(logits: torch.Tensor, labels: torch.Tensor, classes: int) -> dict[str, float]:
    metrics = ClassificationMetrics(classes)
    metrics.update(logits, labels)
    row = metrics.compute()
    return {"error_%": round(100 * row["error"], 2), "ece_%": round(100 * row["ece"], 2),
            "nll": round(row["nll"], 4)}


COLUMNS = (("error_%", "val error %"), ("ece_%", "ECE %"), ("nll", "NLL"),
           ("epistemic_ratio", "epistemic / ensemble's"), ("epistemic_ratio_shift", "same, shifted"),
           ("spearman", "Spearman"), ("tv_shift", "TV shifted"), ("best_epoch", "best epoch"),
           ("epochs_run", "epochs run"), ("train_s", "train s"))


def markdown(results: dict[str, dict[str, Any]]) -> str:
    """The results as a Markdown table: the ensemble, the members alone and the run's own students
    first, then one row per variant in the order they ran."""
    def rank(name: str) -> int:
        if name == "ensemble":
            return 0
        return 1 if name.startswith("member") else 2 if "(the run's)" in name else 3

    lines = ["| variant | " + " | ".join(title for _, title in COLUMNS) + " |",
             "|---|" + "---:|" * len(COLUMNS)]
    for name, row in sorted(results.items(), key=lambda item: rank(item[0])):
        cells = ["–" if row.get(key) is None else f"{row[key]:g}" for key, _ in COLUMNS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def member_rows(ensemble: torch.Tensor, labels: torch.Tensor, classes: int) -> dict[str, dict[str, float]]:
    """Each member alone (its slice of the ensemble's outputs): the mean over members and the member
    with the lowest validation error, the reference a student must beat."""
    rows = [score(ensemble[:, i : i + 1], labels, classes) for i in range(ensemble.shape[1])]
    mean = {key: round(sum(row[key] for row in rows) / len(rows), 2 if key.endswith("%") else 4)
            for key in rows[0]}
    best = min(range(len(rows)), key=lambda i: rows[i]["error_%"])
    return {f"member (mean of {len(rows)})": mean, f"member-best (member {best})": rows[best]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a seed folder of a finished image run")
    parser.add_argument("variants", nargs="*",
                        help="key=value[,key=value...] or baseline (none: score the run's models only); "
                             "'table' prints --out as Markdown")
    parser.add_argument("--seed", type=int, required=True, help="the run's seed")
    parser.add_argument("--method", default="hydra+")
    parser.add_argument("--heads", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True, help="JSON file (extended if it exists)")
    args = parser.parse_intermixed_args()  # variants may follow the options
    if args.variants == ["table"]:  # print the Markdown table of a finished search
        print(markdown(json.loads(args.out.read_text())), end="")
        return

    meta, config, models = load_trained(args.run)
    problem = load_problem(config, args.seed, meta["data_path"], meta.get("ood_path"))
    classes, upper = problem.num_outputs, math.log(problem.num_outputs)
    teacher_outputs = cache.teacher_outputs(models.ensemble, problem.x_train, args.run / "cache")
    x_shift = problem.normalize(shift_images(pixels(problem.x_val, problem.normalization), *SHIFT))
    ensemble = predict(models.ensemble, problem.x_val, precision=config.precision)
    ensemble_shift = predict(models.ensemble, x_shift, precision=config.precision)
    results = json.loads(args.out.read_text()) if args.out.is_file() else {}
    results["ensemble"] = {**score(ensemble, problem.y_val, classes),
                           "mean_epistemic": round(classification_uncertainty(ensemble)["epistemic"]
                                                   .mean().item(), 4)}
    results.update(member_rows(ensemble, problem.y_val, classes))
    for name, student in models.students.items():  # the run's own students: the preset's recipe
        logits, shifted = student_outputs(student, problem.x_val, x_shift, args.seed, config.precision)
        stopped = models.early_stopping.get(name, {})
        results[f"{name} (the run's)"] = {
            **score(logits, problem.y_val, classes),
            **fidelity_row(logits, ensemble, shifted, ensemble_shift, upper),
            "best_epoch": stopped.get("best_epoch"), "epochs_run": stopped.get("epochs_run")}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    with tempfile.TemporaryDirectory() as tmp:
        for overrides in args.variants:
            raw, entry = variant(meta["config"], args.method, args.heads, overrides)
            variant_config = parse_config({**raw, "students": [entry]})
            spec = variant_config.students[0]
            folder = Path(tmp) / overrides
            student, seconds, _ = train_student(variant_config, spec, problem, teacher_outputs, folder,
                                                args.seed, teacher=models.ensemble, progress=False)
            logits, shifted = student_outputs(student, problem.x_val, x_shift, args.seed, config.precision)
            stopped = read_early_stopping(folder) or {}
            results[overrides] = {**score(logits, problem.y_val, classes),
                                  **fidelity_row(logits, ensemble, shifted, ensemble_shift, upper),
                                  "train_s": round(seconds, 1), "best_epoch": stopped.get("best_epoch"),
                                  "epochs_run": stopped.get("epochs_run", spec.epochs)}
            print(json.dumps({overrides: results[overrides]}), flush=True)
            args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
