"""The `hydraplus` command line: demo, train, evaluate, compare, export, configs.

Errors print one line (``hydraplus: error: ...``) and exit with status 1; ``--debug``
shows the traceback instead.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydraplus.choices import PRECISIONS, STRATEGIES

EXIT_ERROR = 1


def _precision(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--precision", default=None, choices=PRECISIONS,
                        help="numerical precision: 32, bf16-mixed (CPU or CUDA) or 16-mixed (CUDA); losses "
                        "and metrics stay float32 (default: the config's, else 32)")


def _processes(parser: argparse.ArgumentParser, default: str) -> None:
    parser.add_argument("--devices", type=int, default=None, metavar="N",
                        help=f"train on N devices per node, one process each (default: {default})")
    parser.add_argument("--num-nodes", type=int, default=None, metavar="K",
                        help=f"train on K nodes (default: {default}); N × K processes share every batch, "
                        "whose size stays the configured one and must divide by N × K")
    parser.add_argument("--strategy", default=None, choices=STRATEGIES,
                        help="Lightning strategy (default: auto, DDP on more than one process)")


def _common(parser: argparse.ArgumentParser, processes_default: str = "1") -> None:
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda", "gpu", "auto"),
                        help="where to train (default: cpu)")
    _processes(parser, processes_default)
    _precision(parser)
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    parser.add_argument("--quiet", action="store_true", help="print only the result's path")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--resume", action="store_true",
                       help="continue an interrupted run in the output folder")
    group.add_argument("--overwrite", action="store_true",
                       help="delete the output folder's contents first")


def _latency(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--latency-batches", type=int, nargs="+", default=None, metavar="B",
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
    train.add_argument("--epochs", type=int, default=None,
                       help="train the ensemble and every student for this many epochs (lambda ramps "
                       "and per-student epochs scale with it)")
    train.add_argument("--members", type=int, default=None, help="override the ensemble size N")
    train.add_argument("--checkpoint-every", type=int, default=1, metavar="EPOCHS",
                       help="save each model's resumable checkpoint every EPOCHS epochs (default: 1)")
    train.add_argument("--data", type=Path, default=None,
                       help="image configs: the .npz file or data set folder (replaces data.path)")
    train.add_argument("--ood-data", type=Path, default=None, metavar="PATH",
                       help="image configs: the out-of-distribution .npz file or folder (replaces "
                       "data.ood.path; an .npz when the config has no data.ood)")
    _latency(train)
    _common(train, "the config's trainer section, else 1")

    evaluate = sub.add_parser(
        "evaluate", help="evaluate every saved model of a run (a seed folder, or a train output folder)")
    evaluate.add_argument("run_dir", type=Path,
                          help="a seed folder (with config.json) or a train output folder (with seed-*/)")
    evaluate.add_argument("--data", type=Path, default=None,
                          help="image and distil runs: test on this data (.npz: x_test/y_test, else "
                               "x_train/y_train; distil runs also take an image folder and need it)")
    evaluate.add_argument("--ood", type=Path, default=None,
                          help="image and distil runs: out-of-distribution inputs from this file (image "
                          "runs: an .npz, subsampled, made grey and resized as the run's data.ood says)")
    evaluate.add_argument("--no-shifts", action="store_true", help="image runs: skip the dataset shifts")
    evaluate.add_argument("--out", type=Path, default=None,
                          help="output folder (default: the run folder; with --data RUN_DIR/eval-<name>)")
    evaluate.add_argument("--device", default="cpu", choices=("cpu", "cuda", "gpu", "auto"),
                          help="where to evaluate (default: cpu)")
    _precision(evaluate)
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

    export = sub.add_parser("export", help="export trained models as torch.export programs (.pt2) or ONNX")
    export.add_argument("run_dir", type=Path,
                        help="a seed folder (with config.json) or a train output folder (with seed-*/)")
    export.add_argument("--models", nargs="+", default=None, metavar="NAME",
                        help="which models (default: all, e.g. ensemble hydra+-20 drop)")
    export.add_argument("--out", type=Path, default=None, help="output folder (default: RUN_DIR/export)")
    export.add_argument("--format", choices=("pt2", "onnx"), default="pt2",
                        help="pt2: torch.export programs; onnx: ONNX graphs that also output the uncertainty "
                             "(needs pip install 'hydraplus[onnx]')")
    export.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    export.add_argument("--quiet", action="store_true", help="print only the result's path")

    distil = sub.add_parser("distil", help="distil your own trained ensemble (.pt2 or TorchScript files, or "
                            "a run folder) into a student, and evaluate both")
    distil.add_argument("--teacher", type=Path, nargs="+", required=True, metavar="PATH",
                        help="the members' files (.pt2 or TorchScript; each gives [B, D], or one gives "
                        "[B, N, D]) or a hydraplus run folder")
    distil.add_argument("--data", type=Path, required=True,
                        help="training data: an .npz (x_train/y_train) or an image folder (one sub-folder "
                        "per class)")
    distil.add_argument("--out", type=Path, required=True,
                        help="output folder (student checkpoint, evaluation.json, report.md)")
    distil.add_argument("--method", default="hydra+", help="the student's method (default: hydra+)")
    distil.add_argument("--heads", type=int, default=None, metavar="M",
                        help="the student's heads (default: one per member)")
    distil.add_argument("--epochs", type=int, default=20, metavar="E",
                        help="the most training epochs (default: 20; early stopping may end sooner)")
    distil.add_argument("--patience", default="5", metavar="P|none",
                        help="stop once P epochs in a row have not lowered the student's KL to the teacher "
                        "on the held-out validation part of --data, keeping the best epoch; none: train all "
                        "--epochs on all of --data (default: 5)")
    distil.add_argument("--val-fraction", type=float, default=0.1, metavar="F",
                        help="the share of --data held out for early stopping (default: 0.1)")
    distil.add_argument("--val", type=Path, default=None, metavar="FILE",
                        help="test data of the evaluation, .npz or image folder (default: x_test/y_test "
                        "of --data)")
    distil.add_argument("--ood", type=Path, default=None, metavar="FILE",
                        help="out-of-distribution inputs (.npz or image folder) for OOD detection")
    distil.add_argument("--spread-data", type=Path, default=None, metavar="FILE",
                        help="inputs neither the members nor the student trained on (e.g. a validation "
                        "split; labels ignored): fit the student's heads' spread on them so that its mean "
                        "epistemic uncertainty there equals the teacher's, before the evaluation; the run "
                        "keeps the scale for evaluate and export (multi-head students)")
    distil.add_argument("--split", default=None, metavar="NAME",
                        help="the first member's module where the heads start, as a path (fc, layer4, "
                        "classifier.3; default: the block holding its final layer)")
    distil.add_argument("--student", default=None, metavar="MODULE:FACTORY",
                        help="your student instead of one cut from the first member: a Python callable "
                        "(importable module or a .py file, then :name) called as FACTORY(heads=M, "
                        "outputs=D), returning an nn.Module that gives [B, M, D] or a (core, "
                        "head_factory) pair")
    distil.add_argument("--lam", default="auto", metavar="VALUE|auto",
                        help="Hydra+'s diversity weight lambda, or auto: chosen while training so the "
                        "student's off-data epistemic uncertainty matches the teacher's (default: auto)")
    distil.add_argument("--input-mean", type=float, nargs="+", default=None, metavar="M",
                        help="normalise the inputs as (x - mean) / std per channel (default: from the JSON "
                        "card beside a .pt2 or a run's config, else inputs stay in [0, 1])")
    distil.add_argument("--input-std", type=float, nargs="+", default=None, metavar="S",
                        help="the per-channel std of --input-mean")
    distil.add_argument("--output", default=None, metavar="INDEX|KEY",
                        help="which part of the members' tuple/dict outputs holds the predictions (default: "
                        "the output itself, or its logits where it names them)")
    distil.add_argument("--members", type=int, default=None, metavar="N",
                        help="one teacher file running N members: its [B, N, D], [N, B, D] or [N*B, D] "
                        "outputs (default: found from the outputs)")
    distil.add_argument("--regression-output", default=None,
                        choices=("log_variance", "variance", "std", "mean"),
                        help="regression members' second output (or mean: they give only a mean); "
                        "makes the task regression (default: mean and log-variance)")
    distil.add_argument("--seed", type=int, default=0)
    _latency(distil)
    _common(distil)

    configs = sub.add_parser("configs", help="list the built-in experiment configs, or print one")
    configs.add_argument("name", nargs="?", default=None,
                         help="print this config's JSON (save it to a file to make your own)")
    configs.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    return parser


def _version() -> str:
    from hydraplus import __version__

    return f"hydraplus {__version__}"


def _cmd_demo(args: argparse.Namespace) -> Path | None:
    from hydraplus import api

    args.out = api.demo_folder(args.out, args.devices, args.num_nodes)
    return api.demo(args.out, quick=args.quick, seed=args.seed, progress=not args.quiet, device=args.device,
                    resume=args.resume, overwrite=args.overwrite, precision=args.precision,
                    devices=args.devices, num_nodes=args.num_nodes, strategy=args.strategy)


def _cmd_train(args: argparse.Namespace) -> Path | None:
    from hydraplus import api

    return api.train(args.config, args.out, seeds=args.seeds, epochs=args.epochs, members=args.members,
                     precision=args.precision, devices=args.devices, num_nodes=args.num_nodes,
                     strategy=args.strategy, device=args.device, progress=not args.quiet, resume=args.resume,
                     overwrite=args.overwrite, data=args.data, ood_data=args.ood_data,
                     checkpoint_every=args.checkpoint_every, latency_batches=args.latency_batches)


def _cmd_evaluate(args: argparse.Namespace) -> Path:
    from hydraplus import api

    return api.evaluate_run(args.run_dir, data=args.data, ood=args.ood, out=args.out,
                            shifts=not args.no_shifts, device=args.device, precision=args.precision,
                            latency_batches=args.latency_batches)


def _cmd_compare(args: argparse.Namespace) -> Path:
    from hydraplus import api

    return api.compare_runs(args.run_dirs, args.out)


def _cmd_export(args: argparse.Namespace) -> Path:
    from hydraplus import api

    for path in api.export_run(args.run_dir, args.out, args.models, format=args.format):
        if not args.quiet:
            print(f"  {path}")
    return args.out or args.run_dir / "export"


def _lam(value: str) -> float | str:
    """--lam as distil takes it: a number or "auto"."""
    if value == "auto":
        return value
    try:
        return float(value)
    except ValueError:
        raise ValueError(f"--lam must be a number or auto, got {value!r}") from None


def _patience(value: str) -> int | None:
    """--patience as distil takes it: a positive integer or none."""
    if value.lower() == "none":
        return None
    try:
        patience = int(value)
    except ValueError:
        raise ValueError(f"--patience must be a positive integer or none, got {value!r}") from None
    if patience < 1:
        raise ValueError(f"--patience must be a positive integer or none, got {value!r}")
    return patience


def _cmd_distil(args: argparse.Namespace) -> Path | None:
    from hydraplus import api
    from hydraplus.report.choice import ship_verdict

    output = args.output if args.output is None or not args.output.lstrip("-").isdigit() else int(args.output)
    result = api.distil_files(
        args.teacher, args.data, args.out, val=args.val, ood=args.ood, spread_data=args.spread_data,
        input_mean=args.input_mean,
        input_std=args.input_std, output=output, student=args.student, device=args.device,
        latency_batches=args.latency_batches, method=args.method, heads=args.heads, epochs=args.epochs,
        split=args.split, lam=_lam(args.lam), patience=_patience(args.patience),
        val_fraction=args.val_fraction, seed=args.seed, resume=args.resume, overwrite=args.overwrite,
        members=args.members, regression_output=args.regression_output, progress=not args.quiet,
        precision=args.precision or "32",
        devices=args.devices or 1, num_nodes=args.num_nodes or 1, strategy=args.strategy or "auto")
    if result.metrics is None:  # another process than global rank 0
        return None
    if not args.quiet:
        print(f"  student: {args.out / result.spec.name / 'model.pt'}")
        print(f"  evaluation: {args.out / 'evaluation.json'}")
        if (verdict := ship_verdict(result.metrics)) is not None:
            print(f"  {verdict}")
    return args.out / "report.md"


def _cmd_configs(args: argparse.Namespace) -> None:
    from hydraplus import api

    if args.name is not None:
        print(api.config_text(args.name), end="")
        return
    rows = api.config_table()
    width = max(len(name) for name, *_ in rows)
    for name, kind, members, students in rows:
        print(f"{name:<{width}} {kind:<6} N={members:<3} students: {', '.join(students)}")
    print("Print one with `hydraplus configs NAME`; save it as a .json file to change it.")





COMMANDS = {"demo": _cmd_demo, "train": _cmd_train, "evaluate": _cmd_evaluate,
            "compare": _cmd_compare, "export": _cmd_export, "distil": _cmd_distil, "configs": _cmd_configs}


def _interrupted(args: argparse.Namespace, argv: Sequence[str] | None) -> str:
    """One line: where the finished epochs are, and the command that continues the run."""
    out = getattr(args, "out", None)
    if args.command not in ("train", "demo", "distil") or out is None:
        return "hydraplus: interrupted"
    words = [w for w in (sys.argv[1:] if argv is None else argv) if w != "--overwrite"]
    if "--out" not in words:
        words += ["--out", str(out)]
    if "--resume" not in words:
        words.append("--resume")
    return (f"hydraplus: interrupted; finished epochs are saved in {out}. "
            f"Continue with: {shlex.join(['hydraplus', *words])}")


def _show_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                  file: Any = None, line: str | None = None) -> None:
    """Config and student warnings as one ``hydraplus: warning:`` line, contract notes as
    ``hydraplus: note:``; others as Python prints them."""
    if category.__name__ in ("ConfigWarning", "StudentWarning"):
        print(f"hydraplus: warning: {message}", file=sys.stderr)
    elif category.__name__ == "ContractNote":
        print(f"hydraplus: note: {message}", file=sys.stderr)
    else:
        _PYTHON_SHOWWARNING(message, category, filename, lineno, file, line)


_PYTHON_SHOWWARNING = warnings.showwarning


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from hydraplus.runtime import flushing_denormals, keep_allocator_memory

    keep_allocator_memory()
    warnings.showwarning = _show_warning
    try:
        with flushing_denormals():  # before any parallel work, so that every thread flushes
            result = COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print(_interrupted(args, argv), file=sys.stderr)
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
