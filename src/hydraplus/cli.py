"""The `hydraplus` command line: demo, train, evaluate, configs.

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

EXIT_ERROR = 1


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
    _common(train)

    evaluate = sub.add_parser("evaluate", help="evaluate every saved model of a toy run folder")
    evaluate.add_argument("run_dir", type=Path)
    evaluate.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    evaluate.add_argument("--quiet", action="store_true", help="print only the result's path")

    configs = sub.add_parser("configs", help="list the built-in experiment configs")
    configs.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    return parser


def _version() -> str:
    from hydraplus import __version__

    return f"hydraplus {__version__}"


def _accelerator(device: str) -> str:
    return {"cuda": "gpu"}.get(device, device)


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
    from hydraplus.experiments.presets import load_config, scale_epochs, validate_config
    from hydraplus.experiments.runner import run_experiment
    from hydraplus.experiments.toy_eval import evaluate_toy

    config = load_config(args.config)
    if args.epochs is not None:
        config = scale_epochs(config, args.epochs)
    if args.members is not None:
        config["ensemble"]["members"] = args.members
        validate_config(config)
    out = prepare_out_dir(args.out, args.resume, args.overwrite)
    for seed in args.seeds:
        run_dir = out / f"seed-{seed}"
        problem, models = run_experiment(config, run_dir, seed, progress=not args.quiet,
                                         accelerator=_accelerator(args.device), resume=args.resume)
        evaluation = evaluate_toy(problem, models.all(), models.train_seconds)
        _write_evaluation(run_dir, evaluation.metrics, problem.task)
    return out


def _write_evaluation(run_dir: Path, metrics: dict, task: str) -> Path:
    from hydraplus.engine.checkpoint import atomic_write_text
    from hydraplus.report.markdown import REGRESSION_COLUMNS, SPIRAL_COLUMNS, table

    columns = SPIRAL_COLUMNS if task == "classification" else REGRESSION_COLUMNS
    atomic_write_text(run_dir / "evaluation.json", json.dumps(metrics, indent=2))
    atomic_write_text(run_dir / "evaluation.md", table(metrics, columns) + "\n")
    return run_dir / "evaluation.md"


def _cmd_evaluate(args: argparse.Namespace) -> Path:
    from hydraplus.experiments.runner import load_problem, load_trained
    from hydraplus.experiments.toy_eval import evaluate_toy

    meta, models = load_trained(args.run_dir)
    problem = load_problem(meta["config"], meta["seed"], meta.get("data_path"))
    evaluation = evaluate_toy(problem, models.all())
    return _write_evaluation(Path(args.run_dir), evaluation.metrics, problem.task)


def _cmd_configs(args: argparse.Namespace) -> None:
    from hydraplus.experiments.presets import available_configs, load_config

    for name in available_configs():
        config = load_config(name)
        students = ", ".join(s["method"] + (f"-{s['heads']}" if "heads" in s else "")
                             for s in config["students"])
        print(f"{name:<16} N={config['ensemble']['members']:<3} students: {students}")


COMMANDS = {"demo": _cmd_demo, "train": _cmd_train, "evaluate": _cmd_evaluate,
            "configs": _cmd_configs}


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
