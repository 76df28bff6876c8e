"""`hydraplus demo`: the paper's two toy problems, every method, one report.

On several processes (``devices``, ``num_nodes``) every process trains; global rank 0 alone
evaluates and writes the report.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from hydraplus.config import (
    ExperimentConfig,
    parse_config,
    read_config,
    scale_epochs,
    with_members,
    with_trainer,
)
from hydraplus.engine.distributed import is_rank_zero
from hydraplus.evaluation.toy import evaluate_toy
from hydraplus.io import atomic_write_text
from hydraplus.pipeline.builders import build_members
from hydraplus.pipeline.config_run import run_experiment
from hydraplus.pipeline.run_folder import versions
from hydraplus.report.figures import regression_figure, save_figure, spiral_figure
from hydraplus.report.markdown import regression_summary, spiral_summary, toy_table

PROBLEMS = ("toy-spiral", "toy-regression")
QUICK_MEMBERS, QUICK_EPOCHS = 5, 100
CHECKPOINT_EVERY = 20  # toy epochs take milliseconds: a checkpoint each epoch would dominate


def demo_configs(quick: bool, precision: str | None = None, **trainer: Any) -> dict[str, ExperimentConfig]:
    """The paper's toy configs; ``quick`` uses 5 members and 100 epochs (same models, rows);
    ``trainer`` settings (devices, num_nodes, strategy) that are not None replace the defaults."""
    configs = {}
    for name in PROBLEMS:
        raw = with_trainer(read_config(name), **trainer)
        if precision is not None:
            raw["precision"] = precision
        if quick:
            raw = with_members(scale_epochs(raw, QUICK_EPOCHS), QUICK_MEMBERS)
        configs[name] = parse_config(raw)
    return configs


def run_demo(out: Path, *, quick: bool = False, seed: int = 0, progress: bool = True,
             accelerator: str = "cpu", resume: bool = False, precision: str | None = None,
             devices: int | None = None, num_nodes: int | None = None, strategy: str | None = None) -> Path:
    """Train and evaluate everything, write report.md, metrics.json and figures into ``out``
    (their path, which global rank 0 writes, is returned on every process)."""
    out = Path(out)
    start = time.perf_counter()
    configs = demo_configs(quick, precision, devices=devices, num_nodes=num_nodes, strategy=strategy)
    trainer = configs[PROBLEMS[0]].trainer
    rank_zero = is_rank_zero(trainer.devices, trainer.num_nodes)
    results: dict[str, Any] = {}
    members: dict[str, Any] = {}
    sections: list[str] = []
    for name, config in configs.items():
        problem, models = run_experiment(config, out / name, seed, progress=progress,
                                         accelerator=accelerator, resume=resume,
                                         checkpoint_every=CHECKPOINT_EVERY)
        if not rank_zero:
            continue
        evaluation = evaluate_toy(problem, models.all(), models.train_seconds, seed=seed,
                                  precision=config.precision, members=build_members(config, models.ensemble))
        results[name] = evaluation.metrics
        members[name] = evaluation.members
        if problem.task == "classification":
            figure, summary = spiral_figure, spiral_summary
            title = "Spiral (3-class classification)"
        else:
            figure, summary = regression_figure, regression_summary
            title = "Regression"
        png = f"{name}.png"
        save_figure(figure(problem, evaluation.probe), out / png)
        sections.append(
            f"## {title}\n\n{toy_table(evaluation.metrics, problem.task, evaluation.members)}\n\n"
            f"![{name}]({png})\n\n{summary(evaluation.metrics)}\n"
        )
    if not rank_zero:
        return out / "report.md"
    wall = time.perf_counter() - start
    header = (
        "# hydraplus demo\n\n"
        f"N = {configs['toy-spiral'].ensemble.members} members, "
        f"{configs['toy-spiral'].ensemble.epochs} epochs, seed {seed}"
        f"{' (quick mode)' if quick else ''}; wall time {wall:.1f} s. "
        "Off-data: spiral grid points farther than 5 from every training point; regression "
        "x outside [-6, 6]. TV: total variation between a model's uncertainty histogram on the "
        "probe set (spiral grid / x in [-12, 12]) and the ensemble's (0 = identical, 1 = disjoint). "
        "NLL includes the 0.5 log 2π constant for regression. Member rows: each member of the ensemble "
        "alone (mean ± std over the members) and the member with the lowest validation error (RMSE for "
        "regression): what shipping one member gives.\n"
    )
    atomic_write_text(out / "report.md", header + "\n" + "\n".join(sections))
    atomic_write_text(out / "metrics.json", json.dumps({
        "results": results,
        "members": members,
        "config": {name: config.raw for name, config in configs.items()},
        "seed": seed,
        "quick": quick,
        "wall_seconds": wall,
        "versions": versions(),
    }, indent=2))
    return out / "report.md"
