"""The `hydraplus` command line: demo, train, evaluate, compare, export, configs.

Errors print one line (``hydraplus: error: ...``) and exit with status 1; ``--debug``
shows the traceback instead.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

EXIT_ERROR = 1
LATENCY_BATCHES = [1, 256]


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda", "gpu", "auto"),
                        help="where to train (default: cpu)")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    parser.add_argument("--quiet", action="store_true", help="print only the result's path")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--resume", action="store_true",
                       help="continue an interrupted run in the output folder")
    group.add_argument("--overwrite", action="store_true",
                       help="delete the output folder's contents first")


def _latency(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--latency-batches", type=int, nargs="+", default=LATENCY_BATCHES, metavar="B",
                        help="batch sizes of the latency measurements of image runs (default: 1 256)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hydraplus",
        description="Distil a deep ensemble into one multi-headed network (Hydra+).",
    )
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = sub.add_parser("demo", help="reproduce the paper's toy results and write a report")
    demo.add_argument("--out", type=Path, default=None,
                      help="run folder (default: runs/demo-<timestamp>)")
    demo.add_argument("--quick", action="store_true", help="5 members, 100 epochs (< 30 s)")
    demo.add_argument("--seed", type=int, default=0)
    _common(demo)

    train = sub.add_parser("train", help="train the ensemble and all students of a config")
    train.add_argument("config", help="built-in config name (see `hydraplus configs`) or a JSON file")
    train.add_argument("--seeds", type=int, nargs="+", default=[0], help="one run per seed")
    train.add_argument("--out", type=Path, required=True, help="output folder (one sub-folder per seed)")
    train.add_argument("--epochs", type=int, default=None, help="override every epoch count")
    train.add_argument("--members", type=int, default=None, help="override the ensemble size N")
    train.add_argument("--checkpoint-every", type=int, default=1, metavar="EPOCHS",
                       help="save each model's resumable checkpoint every EPOCHS epochs (default: 1)")
    train.add_argument("--data", type=Path, default=None,
                       help="image configs: the .npz file or data set folder (replaces data.path)")
    _latency(train)
    _common(train)

    evaluate = sub.add_parser(
        "evaluate", help="evaluate every saved model of a run (a seed folder, or a train output folder)")
    evaluate.add_argument("run_dir", type=Path,
                          help="a seed folder (with config.json) or a train output folder (with seed-*/)")
    evaluate.add_argument("--data", type=Path, default=None,
                          help="image runs: test on this .npz (x_test/y_test, else all of x_train/y_train)")
    evaluate.add_argument("--ood", type=Path, default=None,
                          help="image runs: out-of-distribution images from this .npz")
    evaluate.add_argument("--no-shifts", action="store_true", help="image runs: skip the dataset shifts")
    evaluate.add_argument("--out", type=Path, default=None,
                          help="output folder (default: the run folder; with --data RUN_DIR/eval-<name>)")
    evaluate.add_argument("--device", default="cpu", choices=("cpu", "cuda", "gpu", "auto"),
                          help="where to evaluate (default: cpu)")
    _latency(evaluate)
    evaluate.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    evaluate.add_argument("--quiet", action="store_true", help="print only the result's path")

    compare = sub.add_parser("compare", help="tables over seeds of image or toy runs (figures for images)")
    compare.add_argument("run_dirs", type=Path, nargs="+", metavar="RUN_DIR",
                         help="train output folders (with seed-*/evaluation.json) or seed folders")
    compare.add_argument("--out", type=Path, default=None,
                         help="where compare.md and the figures go (default: the first RUN_DIR)")
    compare.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    compare.add_argument("--quiet", action="store_true", help="print only the result's path")

    export = sub.add_parser("export", help="export trained models as torch.export programs (.pt2)")
    export.add_argument("run_dir", type=Path,
                        help="a seed folder (with config.json) or a train output folder (with seed-*/)")
    export.add_argument("--models", nargs="+", default=None, metavar="NAME",
                        help="which models (default: all, e.g. ensemble hydra+-20 drop)")
    export.add_argument("--out", type=Path, default=None, help="output folder (default: RUN_DIR/export)")
    export.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    export.add_argument("--quiet", action="store_true", help="print only the result's path")

    configs = sub.add_parser("configs", help="list the built-in experiment configs")
    configs.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    return parser


def _version() -> str:
    from hydraplus import __version__

    return f"hydraplus {__version__}"


def _accelerator(device: str) -> str:
    return {"cuda": "gpu"}.get(device, device)


def _torch_device(device: str) -> str:
    """The torch device of an evaluation for the --device choice."""
    import torch

    if device in ("cuda", "gpu"):
        if not torch.cuda.is_available():
            raise ValueError(f"--device {device} asked for, but no CUDA GPU is available")
        return "cuda"
    return "cuda" if device == "auto" and torch.cuda.is_available() else "cpu"


def _check_batches(batches: Sequence[int]) -> None:
    if any(b < 1 for b in batches):
        raise ValueError(f"--latency-batches must be positive batch sizes, got {list(batches)}")


def prepare_out_dir(path: Path, resume: bool, overwrite: bool) -> Path:
    """Refuse to mix runs: an existing non-empty folder needs --resume or --overwrite."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"output path {path} exists and is not a folder")
    if path.is_dir() and any(path.iterdir()):
        if overwrite:
            shutil.rmtree(path)
        elif not resume:
            raise ValueError(
                f"output folder {path} already holds a run; pass --resume to continue it "
                "or --overwrite to replace it"
            )
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as err:
        raise ValueError(f"output folder {path} is not writable ({err.strerror or err})") from err
    return path


def _cmd_demo(args: argparse.Namespace) -> Path:
    from hydraplus.demo import run_demo

    out = args.out or Path("runs") / f"demo-{time.strftime('%Y%m%d-%H%M%S')}"
    out = prepare_out_dir(out, args.resume, args.overwrite)
    return run_demo(out, quick=args.quick, seed=args.seed, progress=not args.quiet,
                    accelerator=_accelerator(args.device), resume=args.resume)


def _cmd_train(args: argparse.Namespace) -> Path:
    from hydraplus.data.images import ImageProblem
    from hydraplus.experiments.image_eval import evaluate_images
    from hydraplus.experiments.presets import load_config, scale_epochs, validate_config
    from hydraplus.experiments.runner import run_experiment
    from hydraplus.experiments.toy_eval import evaluate_toy

    _check_batches(args.latency_batches)
    device = _torch_device(args.device)
    config = load_config(args.config)
    if args.epochs is not None:
        config = scale_epochs(config, args.epochs)
    if args.members is not None:
        config["ensemble"]["members"] = args.members
        validate_config(config)
    out = prepare_out_dir(args.out, args.resume, args.overwrite)
    for seed in args.seeds:
        run_dir = out / f"seed-{seed}"
        problem, models = run_experiment(
            config, run_dir, seed, progress=not args.quiet, accelerator=_accelerator(args.device),
            resume=args.resume, data_path=None if args.data is None else args.data.resolve(),
            checkpoint_every=args.checkpoint_every)
        if isinstance(problem, ImageProblem):
            evaluation = evaluate_images(problem, _to_device(models.all(), device),
                                         latency_batch_sizes=args.latency_batches,
                                         train_seconds=models.train_seconds, seed=seed)
            _write_image_evaluation(run_dir, evaluation)
        else:
            toy = evaluate_toy(problem, models.all(), models.train_seconds, seed=seed)
            _write_evaluation(run_dir, toy.metrics, problem.task)
    return out


def _to_device(models: dict[str, Any], device: str) -> dict[str, Any]:
    return {name: model.to(device) for name, model in models.items()}


def _write_evaluation(run_dir: Path, metrics: dict, task: str) -> Path:
    from hydraplus.engine.checkpoint import atomic_write_text
    from hydraplus.report.markdown import REGRESSION_COLUMNS, SPIRAL_COLUMNS, table

    columns = SPIRAL_COLUMNS if task == "classification" else REGRESSION_COLUMNS
    atomic_write_text(run_dir / "evaluation.json", json.dumps(metrics, indent=2))
    atomic_write_text(run_dir / "evaluation.md", table(metrics, columns) + "\n")
    return run_dir / "evaluation.md"


def _write_image_evaluation(run_dir: Path, evaluation: dict[str, Any]) -> Path:
    from hydraplus.engine.checkpoint import atomic_write_text
    from hydraplus.report.compare import evaluation_markdown

    atomic_write_text(run_dir / "evaluation.json", json.dumps(evaluation, indent=2))
    atomic_write_text(run_dir / "evaluation.md", evaluation_markdown(evaluation))
    return run_dir / "evaluation.md"


def _run_folders(run_dir: Path) -> list[Path]:
    """The run itself (it has config.json) or the seed-*/ runs of a train output folder."""
    if (run_dir / "config.json").is_file():
        return [run_dir]
    seeds = sorted((p.parent for p in run_dir.glob("seed-*/config.json")), key=lambda p: p.name)
    if not seeds:
        raise FileNotFoundError(f"not a hydraplus run folder (no config.json in it or in seed-*/): {run_dir}")
    return seeds


def _image_problem(meta: dict[str, Any], data: Path | None, ood: Path | None) -> Any:
    """The run's own test data, or ``data`` normalised like the run's training data; ``ood`` as probe."""
    from hydraplus.data.images import Normalization, attach_ood, load_test_problem
    from hydraplus.experiments.runner import load_problem

    if data is None:
        problem = load_problem(meta["config"], meta["seed"], meta.get("data_path"))
    else:
        saved = meta.get("normalization")
        if saved is None:  # a run from before the statistics were saved: recompute them
            norm = load_problem(meta["config"], meta["seed"], meta.get("data_path")).normalization
            shape = None
        else:
            norm, shape = Normalization(tuple(saved["mean"]), tuple(saved["std"])), saved["image_shape"]
        problem = load_test_problem(data, norm, image_shape=shape)
    if ood is not None:
        attach_ood(problem, {"name": "npz", "path": str(ood)}, meta["seed"])
    return problem


def _cmd_evaluate(args: argparse.Namespace) -> Path:
    from hydraplus.data.images import SOURCES
    from hydraplus.experiments.image_eval import evaluate_images
    from hydraplus.experiments.runner import load_problem, load_trained
    from hydraplus.experiments.toy_eval import evaluate_toy

    _check_batches(args.latency_batches)
    run_dir = Path(args.run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run folder not found: {run_dir}")
    runs = _run_folders(run_dir)
    out = args.out or (run_dir if args.data is None else run_dir / f"eval-{args.data.stem}")
    device = _torch_device(args.device)
    for run in runs:
        target = out if run == run_dir else out / run.name
        meta, models = load_trained(run)
        config = meta["config"]
        if config["data"].get("name") not in SOURCES:
            if args.data is not None or args.ood is not None:
                raise ValueError(f"--data and --ood apply to image runs only; {run} uses toy data "
                                 f"{config['data'].get('name')!r}")
            problem = load_problem(config, meta["seed"])
            toy = evaluate_toy(problem, models.all(), seed=meta["seed"])
            _write_evaluation(target, toy.metrics, problem.task)
            continue
        problem = _image_problem(meta, args.data, args.ood)
        evaluation = evaluate_images(problem, _to_device(models.all(), device), shifts=not args.no_shifts,
                                     latency_batch_sizes=args.latency_batches, seed=meta["seed"])
        _write_image_evaluation(target, evaluation)
    return out / "evaluation.md" if runs == [run_dir] else out


def _cmd_compare(args: argparse.Namespace) -> Path:
    from hydraplus.engine.checkpoint import atomic_write_text
    from hydraplus.report.compare import compare_markdown, load_pooled
    from hydraplus.report.image_figures import write_figures

    pooled = load_pooled(args.run_dirs)
    out = args.out or args.run_dirs[0]
    figures = [] if pooled.problem.get("toy") else write_figures(pooled, out)
    atomic_write_text(out / "compare.md", compare_markdown(pooled, figures))
    return out / "compare.md"


def _cmd_export(args: argparse.Namespace) -> Path:
    from hydraplus.experiments.export import export_run

    run_dir = Path(args.run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run folder not found: {run_dir}")
    out = args.out or run_dir / "export"
    for run in _run_folders(run_dir):
        target = out if run == run_dir else out / run.name
        for path in export_run(run, target, args.models):
            if not args.quiet:
                print(f"  {path}")
    return out


def _cmd_configs(args: argparse.Namespace) -> None:
    from hydraplus.experiments.presets import available_configs, load_config

    for name in available_configs():
        config = load_config(name)
        students = ", ".join(s["method"] + (f"-{s['heads']}" if "heads" in s else "")
                             for s in config["students"])
        print(f"{name:<16} N={config['ensemble']['members']:<3} students: {students}")


COMMANDS = {"demo": _cmd_demo, "train": _cmd_train, "evaluate": _cmd_evaluate,
            "compare": _cmd_compare, "export": _cmd_export, "configs": _cmd_configs}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result = COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print("hydraplus: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # one line for users; the traceback with --debug
        if args.debug:
            raise
        message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        print(f"hydraplus: error: {message}", file=sys.stderr)
        return EXIT_ERROR
    if result is not None:
        print(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
