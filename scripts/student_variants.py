"""Distil one more student from a finished image run's ensemble, with changed settings.

Used to choose the cpu-cifar10 preset: each variant is a list of ``key=value`` overrides
(``epochs``, ``augment`` 0/1, ``core`` widths like ``16/16``, or any student setting; ``baseline``
for none), trained
against the run's saved ensemble and scored on the run's validation split (never the test split:
settings chosen on it would flatter the reported results).

    python scripts/student_variants.py runs/cpu-cifar10/seed-1 --seed 1 epochs=24 core=16/16,epochs=24
"""

from __future__ import annotations

import argparse
import copy
import json
import tempfile
from pathlib import Path
from typing import Any

from torchmetrics.functional.classification import multiclass_calibration_error

from hydraplus.config import parse_config
from hydraplus.core.predict import predict
from hydraplus.engine import cache
from hydraplus.pipeline.config_run import load_problem, load_trained, train_student


def variant(config: dict[str, Any], method: str, heads: int, overrides: str
            ) -> tuple[dict[str, Any], dict[str, Any]]:
    """The config and student entry of one ``key=value,key=value`` variant."""
    config = copy.deepcopy(config)
    entry: dict[str, Any] = {"method": method, "heads": heads}
    for part in [] if overrides == "baseline" else overrides.split(","):
        key, value = part.split("=")
        if key == "core":
            widths = [int(w) for w in value.split("/")]
            config["arch"]["core"]["widths"] = widths
            pooled = config["arch"]["core"].get("pooled", 4)  # the core's map is pooled x pooled
            config["arch"]["head"]["in_features"] = widths[-1] * pooled * pooled
        elif key == "augment":
            entry["augment"] = bool(int(value))
        elif key == "epochs":
            entry["epochs"] = int(value)
            for schedule in config["student"].get("lambda", {}).values():
                schedule["end"] = int(value) * 3 // 4  # ramp over the first three quarters
        else:
            entry[key] = float(value)
    return config, entry


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a seed folder of a finished image run")
    parser.add_argument("variants", nargs="+", help="key=value[,key=value...]")
    parser.add_argument("--seed", type=int, required=True, help="the run's seed")
    parser.add_argument("--method", default="hydra+")
    parser.add_argument("--heads", type=int, default=8)
    args = parser.parse_args()

    meta, config, models = load_trained(args.run)
    problem = load_problem(config, args.seed, meta["data_path"])
    teacher_outputs = cache.teacher_outputs(models.ensemble, problem.x_train, args.run / "cache")

    def score(model: Any) -> dict[str, float]:
        probs = predict(model, problem.x_val).softmax(-1).mean(1)
        error = (probs.argmax(-1) != problem.y_val).float().mean().item()
        ece = multiclass_calibration_error(probs, problem.y_val, 10, n_bins=10).item()
        return {"error_%": round(100 * error, 2), "ece_%": round(100 * ece, 2)}

    results = {"ensemble": score(models.ensemble)}
    with tempfile.TemporaryDirectory() as tmp:
        for overrides in args.variants:
            raw, entry = variant(meta["config"], args.method, args.heads, overrides)
            variant_config = parse_config({**raw, "students": [entry]})
            spec = variant_config.students[0]
            student, seconds, _ = train_student(variant_config, spec, problem, teacher_outputs,
                                                Path(tmp) / overrides, args.seed,
                                                teacher=models.ensemble, progress=False)
            results[overrides] = {**score(student), "train_s": round(seconds, 1)}
            print(json.dumps({overrides: results[overrides]}), flush=True)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
