"""Is a student's missing epistemic uncertainty a matter of scale? A post-hoc spread scale, on
validation only.

The multi-head students keep about 60% of the ensemble's mean epistemic entropy (mutual
information). If that were a uniform shrinkage of the heads' disagreement, one factor would
restore it, as one temperature restores calibration. For each multi-head student of a finished
image run this moves every head's logits away from the heads' mean by one factor s,

    z_k' = m + s (z_k - m),  m = mean_k z_k  (the heads' logits z_k),  p_k' = softmax(z_k')

(s = 1 leaves the student as it is, s = 0 makes the heads agree; `hydraplus.core.spread`), fits
s on one half of the validation split (a seeded split) so that the student's mean epistemic
entropy equals the ensemble's there, and scores both s = 1 and the fitted s on the other half:
error, ECE, NLL, the epistemic ratio, the Spearman rank correlation with the ensemble's epistemic
entropy, and the total variation of the epistemic histograms with the images moved down by 30%
(the paper's shift). The test split is never read.

    OMP_NUM_THREADS=2 python benchmarks/spread_scale.py runs/fm-s0/seed-0 --seed 0 \\
        --out docs/results/recipe/spread-fashion-mnist.json
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

import torch
from recipe_search import SHIFT, fidelity_row, pixels, score
from torch import Tensor

from hydraplus.core.predict import predict
from hydraplus.core.spread import fit_spread_scale, spread
from hydraplus.data.shift import shift_images
from hydraplus.methods import get_method
from hydraplus.pipeline.config_run import load_problem, load_trained
from hydraplus.runtime import flushing_denormals


def halves(n: int, seed: int) -> tuple[Tensor, Tensor]:
    """A seeded split of ``n`` indices into the fitting half and the scoring half."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return order[: n // 2], order[n // 2 :]


def rows(logits: Tensor, shifted: Tensor, ensemble: Tensor, ensemble_shift: Tensor, labels: Tensor,
         fit: Tensor, held: Tensor, classes: int) -> dict[str, Any]:
    """One student's scale fitted on the ``fit`` rows, and its rows unscaled and scaled on ``held``."""
    scale = fit_spread_scale(logits[fit], ensemble[fit], "classification")
    upper = math.log(classes)
    out: dict[str, Any] = {"scale": round(scale, 3)}
    for name, s in (("unscaled", 1.0), ("scaled", scale)):
        student = spread(logits[held], s, "classification")
        student_shift = spread(shifted[held], s, "classification")
        out[name] = {**score(student, labels[held], classes),
                     **fidelity_row(student, ensemble[held], student_shift, ensemble_shift[held], upper)}
    return out


COLUMNS = (("error_%", "val error %"), ("ece_%", "ECE %"), ("nll", "NLL"),
           ("epistemic_ratio", "epistemic / ensemble's"), ("epistemic_ratio_shift", "same, shifted"),
           ("spearman", "Spearman"), ("tv_shift", "TV shifted"))


def markdown(results: dict[str, Any]) -> str:
    """Two rows per student: as trained (s = 1) and with the fitted spread scale."""
    lines = ["| student | s | " + " | ".join(title for _, title in COLUMNS) + " |",
             "|---|---:|" + "---:|" * len(COLUMNS)]
    for name, entry in results["students"].items():
        for label, s in (("unscaled", 1.0), ("scaled", entry["scale"])):
            cells = [f"{entry[label][key]:g}" for key, _ in COLUMNS]
            lines.append(f"| {name} | {s:g} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a seed folder of a finished image run")
    parser.add_argument("--seed", type=int, required=True, help="the run's seed (and the split's)")
    parser.add_argument("--out", type=Path, required=True, help="JSON file")
    args = parser.parse_args()
    with flushing_denormals(), torch.no_grad():
        meta, config, models = load_trained(args.run)
        problem = load_problem(config, args.seed, meta["data_path"], meta.get("ood_path"))
        x_shift = problem.normalize(shift_images(pixels(problem.x_val, problem.normalization), *SHIFT))
        ensemble = predict(models.ensemble, problem.x_val, precision=config.precision)
        ensemble_shift = predict(models.ensemble, x_shift, precision=config.precision)
        fit, held = halves(len(problem.x_val), args.seed)
        results: dict[str, Any] = {"run": str(args.run), "fit_inputs": len(fit), "scored_inputs": len(held),
                                   "students": {}}
        for name, student in models.students.items():
            if not get_method(models.specs[name].method).multi_head:
                continue
            logits = predict(student, problem.x_val, precision=config.precision)
            shifted = predict(student, x_shift, precision=config.precision)
            results["students"][name] = rows(logits, shifted, ensemble, ensemble_shift, problem.y_val,
                                             fit, held, problem.num_outputs)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(markdown(results), end="")


if __name__ == "__main__":
    main()
