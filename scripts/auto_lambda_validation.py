"""How the automatic lambda's statistic was chosen: spiral seeds no reported result uses.

Trains toy-spiral (paper settings, N = M = 20, 200 epochs) on each seed with the automatic-
lambda Hydra+-20 student, and with ``--references`` also Hydra-20 and the paper's fixed-lambda
Hydra+-20, then prints each student's total variation between its epistemic histogram and
the ensemble's on the [-20, 20]^2 grid (the demo's TV epi.), per seed and as mean +- std.
``--statistic arithmetic`` replaces the controller's geometric mean by the arithmetic mean of
the probe set's epistemic uncertainty (the first controller); ``--floor`` sets the geometric
mean's floor as a fraction of the teacher's mean.

    OMP_NUM_THREADS=2 python scripts/auto_lambda_validation.py --seeds 10 11 12 13 14 --references
    OMP_NUM_THREADS=2 python scripts/auto_lambda_validation.py --seeds 10 11 12 13 14 --statistic arithmetic
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch
from torch import Tensor

from hydraplus.config import read_config
from hydraplus.engine import auto_lambda
from hydraplus.evaluation.toy import evaluate_toy
from hydraplus.pipeline.config_run import run_experiment
from hydraplus.runtime import keep_allocator_memory

AUTO = {"method": "hydra+", "heads": 20, "lambda": "auto"}
REFERENCES = [{"method": "hydra", "heads": 20}, {"method": "hydra+", "heads": 20}]


def arithmetic_mean(values: Tensor, floor: float) -> float:
    """The first controller's statistic (the floor does not enter it)."""
    return float(values.mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[10, 11, 12, 13, 14])
    parser.add_argument("--statistic", choices=("geometric", "arithmetic"), default="geometric")
    parser.add_argument("--floor", type=float, default=auto_lambda.FLOOR_FRACTION)
    parser.add_argument(
        "--references", action="store_true", help="also train Hydra-20 and Hydra+-20 at fixed lambda"
    )
    args = parser.parse_args()
    keep_allocator_memory()
    auto_lambda.FLOOR_FRACTION = args.floor
    if args.statistic == "arithmetic":
        auto_lambda.geometric_mean = arithmetic_mean  # type: ignore[assignment]
    config = read_config("toy-spiral")
    config["students"] = [AUTO, *(REFERENCES if args.references else [])]
    tv: dict[str, list[float]] = {}
    for seed in args.seeds:
        with tempfile.TemporaryDirectory() as folder:
            problem, models = run_experiment(config, Path(folder), seed, progress=False)
        metrics = evaluate_toy(problem, {"ensemble": models.ensemble, **models.students}).metrics
        row = {name: metrics[name]["tv"]["epistemic"] for name in models.students}
        for name, value in row.items():
            tv.setdefault(name, []).append(value)
        print(f"seed {seed}: " + ", ".join(f"{name} {value:.3f}" for name, value in row.items()), flush=True)
    print(f"statistic {args.statistic}, floor {args.floor:g}: TV epi. over seeds {args.seeds}")
    for name, values in tv.items():
        t = torch.tensor(values)
        print(f"  {name}: {t.mean():.3f} ± {t.std():.3f}")


if __name__ == "__main__":
    main()
