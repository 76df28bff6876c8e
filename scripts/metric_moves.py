"""How far the metric fixes move one image run's numbers: the same outputs, two metric codes.

Where the old code cannot read a run folder any more, its metric functions still can score the
run's outputs. This script runs every model of RUN on its test and OOD images once (the current
code), then scores those outputs with ``hydraplus.core.metrics.ClassificationMetrics`` and
``hydraplus.core.ood.ood_detection`` of the current checkout and of another one (``--old-src``,
e.g. ``git worktree add /tmp/old e60dae3^`` for the code before the float64 / log-space metrics),
and prints the largest change of each metric over the models::

    python scripts/metric_moves.py runs/fmh-s0/seed-0 --old-src /tmp/old/src
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from hydraplus.core.predict import predict
from hydraplus.pipeline.config_run import evaluation_models, load_problem, load_trained

# scores a dump of outputs with whichever hydraplus is first on the path; prints JSON
SCORE = """
import json, sys, torch
from hydraplus.core.metrics import ClassificationMetrics
from hydraplus.core.ood import ood_detection
dump = torch.load(sys.argv[1], weights_only=True)
scores = {}
for name, (test, ood) in dump["outputs"].items():
    metrics = ClassificationMetrics(test.shape[-1])
    metrics.update(test, dump["y"])
    clean = {k: v for k, v in metrics.compute().items() if k in ("error", "ece", "nll", "brier")}
    scores[name] = clean | ood_detection(test, ood)
print(json.dumps(scores))
"""


def dump_outputs(run_folder: Path, path: Path) -> None:
    """Every model's outputs on the run's own test and OOD images, saved to ``path``."""
    meta, config, trained = load_trained(run_folder)
    problem = load_problem(config, meta["seed"], meta.get("data_path"), meta.get("ood_path"))
    if problem.x_probe is None:
        raise ValueError(f"{run_folder}: the run has no OOD images to score detection on")
    outputs = {}
    for name, model in evaluation_models(config, trained).models.items():
        torch.manual_seed(meta["seed"])  # a sampling student's draws, as its evaluation seeds them
        outputs[name] = (predict(model, problem.x_test), predict(model, problem.x_probe))
    torch.save({"outputs": outputs, "y": problem.y_test}, path)


def score(src: Path, dump: Path) -> dict[str, dict[str, float]]:
    """The scores of ``dump`` by the metric code under ``src``."""
    env = {**os.environ, "PYTHONPATH": str(src)}
    done = subprocess.run([sys.executable, "-c", SCORE, str(dump)], env=env, capture_output=True,
                          text=True, check=True)
    return json.loads(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="an image run's seed folder (holds config.json)")
    parser.add_argument("--old-src", type=Path, required=True, help="the other checkout's src/")
    args = parser.parse_args()
    if not (args.old_src / "hydraplus").is_dir():
        parser.error(f"--old-src {args.old_src}: no hydraplus package there")
    new_src = Path(__file__).resolve().parents[1] / "src"
    with tempfile.TemporaryDirectory() as tmp:
        dump = Path(tmp) / "outputs.pt"
        dump_outputs(args.run, dump)
        old, new = score(args.old_src, dump), score(new_src, dump)
    print("| metric | largest change over the models | model |\n|---|---:|---|")
    for key in sorted(set.intersection(*(set(s) for s in old.values()))):
        change, name = max((abs(new[n][key] - old[n][key]), n) for n in old)
        print(f"| {key} | {change:.2g} | {name} |")


if __name__ == "__main__":
    main()
