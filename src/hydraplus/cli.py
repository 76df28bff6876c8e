"""The `hydraplus` command line: demo, train, evaluate, compare, export, configs.

Errors print one line (``hydraplus: error: ...``) and exit with status 1; ``--debug``
shows the traceback instead.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

EXIT_ERROR = 1
LATENCY_BATCHES = [1, 256]


PRECISIONS = ("32", "bf16-mixed", "16-mixed")  # as hydraplus.core.precision (not imported: fast --help)
STRATEGIES = ("auto", "ddp", "ddp_find_unused_parameters_true")  # as hydraplus.config


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
                        help="output folder (student checkpoint, metrics.json, report.md)")
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
    """Refuse to mix runs (`hydraplus.pipeline.run_folder.prepare_out_dir`)."""
    from hydraplus.pipeline.run_folder import prepare_out_dir as prepare

    return prepare(path, resume, overwrite)


def _rank_zero(devices: int | None, num_nodes: int | None) -> bool:
    """Whether this process writes (the others of a multi-process run leave the folder alone)."""
    from hydraplus.engine.distributed import is_rank_zero

    return is_rank_zero(devices or 1, num_nodes or 1)


def _cmd_demo(args: argparse.Namespace) -> Path | None:
    from hydraplus.demo import run_demo

    if args.out is None and (args.devices or 1) * (args.num_nodes or 1) > 1:
        raise ValueError("--devices/--num-nodes need --out: every process must use the same run folder")
    out = args.out or Path("runs") / f"demo-{time.strftime('%Y%m%d-%H%M%S')}"
    rank_zero = _rank_zero(args.devices, args.num_nodes)
    args.out = out = prepare_out_dir(out, args.resume, args.overwrite) if rank_zero else out
    report = run_demo(out, quick=args.quick, seed=args.seed, progress=not args.quiet,
                      accelerator=_accelerator(args.device), resume=args.resume, precision=args.precision,
                      devices=args.devices, num_nodes=args.num_nodes, strategy=args.strategy)
    return report if rank_zero else None


def _cmd_train(args: argparse.Namespace) -> Path | None:
    from hydraplus.config import load_config
    from hydraplus.pipeline.builders import build_members
    from hydraplus.pipeline.config_run import run_experiment

    _check_batches(args.latency_batches)
    device = _torch_device(args.device)
    config = load_config(args.config, epochs=args.epochs, members=args.members, precision=args.precision,
                         devices=args.devices, num_nodes=args.num_nodes, strategy=args.strategy)
    rank_zero = _rank_zero(config.trainer.devices, config.trainer.num_nodes)
    args.out = out = prepare_out_dir(args.out, args.resume, args.overwrite) if rank_zero else args.out
    for seed in args.seeds:
        run_dir = out / f"seed-{seed}"
        problem, models = run_experiment(
            config, run_dir, seed, progress=not args.quiet, accelerator=_accelerator(args.device),
            resume=args.resume, data_path=None if args.data is None else args.data.resolve(),
            ood_path=None if args.ood_data is None else args.ood_data.resolve(),
            checkpoint_every=args.checkpoint_every)
        if rank_zero:  # on the full test data, while any other processes wait for the next seed
            _evaluate(run_dir, config.kind, problem, models.all(), seed, device, args.latency_batches,
                      train_seconds=models.train_seconds, precision=config.precision,
                      members=build_members(config, models.ensemble), early_stopping=models.early_stopping)
    return out if rank_zero else None


def _evaluate(run_dir: Path, kind: str, problem: Any, models: dict[str, Any], seed: int, device: str,
              latency_batches: Sequence[int], *, shifts: bool = True,
              train_seconds: dict[str, float] | None = None, precision: str = "32",
              members: Sequence[Any] | None = None,
              early_stopping: dict[str, dict[str, Any]] | None = None) -> Path:
    """Evaluate every model of a run the way its kind asks and write evaluation.json/.md; ``members``
    are the ensemble's members alone (`build_members`), for their cost."""
    from hydraplus.report.evaluation import toy_evaluation, write_evaluation

    if kind == "toy":
        from hydraplus.experiments.toy_eval import evaluate_toy

        toy = evaluate_toy(problem, models, train_seconds, seed=seed, precision=precision, members=members,
                           early_stopping=early_stopping)
        return write_evaluation(run_dir, toy_evaluation(toy.metrics, problem.task, problem.name, toy.members))
    from hydraplus.experiments.image_eval import evaluate_images

    models = {name: model.to(device) for name, model in models.items()}
    members = None if members is None else [member.to(device) for member in members]
    evaluation = evaluate_images(problem, models, shifts=shifts, latency_batch_sizes=latency_batches,
                                 train_seconds=train_seconds, seed=seed, precision=precision,
                                 members=members, early_stopping=early_stopping)
    return write_evaluation(run_dir, {"kind": "image", "task": "classification", **evaluation})


def _run_folders(run_dir: Path) -> list[Path]:
    """The run itself (it has config.json) or the seed-*/ runs of a train output folder."""
    if (run_dir / "config.json").is_file():
        return [run_dir]
    seeds = sorted((p.parent for p in run_dir.glob("seed-*/config.json")), key=lambda p: p.name)
    if not seeds:
        raise FileNotFoundError(f"not a hydraplus run folder (no config.json in it or in seed-*/): {run_dir}")
    return seeds


def _image_problem(meta: dict[str, Any], config: Any, data: Path | None, ood: Path | None) -> Any:
    """The run's own test data, or ``data`` normalised like the run's training data; ``ood`` (an .npz)
    as probe, made grey and resized as the run's ``data.ood`` asks."""
    from hydraplus.data.images import Normalization, attach_ood, load_test_problem
    from hydraplus.data.sources import HOLDOUT_KEY
    from hydraplus.pipeline.config_run import load_problem

    if data is None:
        problem = load_problem(config, meta["seed"], meta.get("data_path"), meta.get("ood_path"))
    elif HOLDOUT_KEY in config.data.options:
        held_out = config.data.options[HOLDOUT_KEY]
        raise ValueError(f"--data: the run leaves classes {held_out} out of training; "
                         "evaluate it on its own test data (leave out --data)")
    else:
        saved = meta.get("normalization")
        if saved is None:  # a run from before the statistics were saved: recompute them
            norm = load_problem(config, meta["seed"], meta.get("data_path")).normalization
            shape = None
        else:
            norm, shape = Normalization(tuple(saved["mean"]), tuple(saved["std"])), saved["image_shape"]
        problem = load_test_problem(data, norm, image_shape=shape)
    if ood is not None:  # the run's own subset size, seed and conversion to its image shape
        run_ood = config.data.options.get("ood", {})
        convert = {k: run_ood[k] for k in ("grayscale", "size", "limit", "seed") if k in run_ood}
        attach_ood(problem, {"name": "npz", "path": str(ood), **convert}, meta["seed"])
    return problem


def _cmd_evaluate(args: argparse.Namespace) -> Path:
    from hydraplus.experiments.distil_run import evaluate_run, is_distil_run
    from hydraplus.pipeline.builders import build_members
    from hydraplus.pipeline.config_run import load_problem, load_trained

    _check_batches(args.latency_batches)
    run_dir = Path(args.run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run folder not found: {run_dir}")
    runs = _run_folders(run_dir)
    out = args.out or (run_dir if args.data is None else run_dir / f"eval-{args.data.stem}")
    device = _torch_device(args.device)
    for run in runs:
        target = out if run == run_dir else out / run.name
        if is_distil_run(run):  # no config to rebuild from: its saved programs, on --data
            evaluate_run(run, args.data, args.ood, target, latency_batches=args.latency_batches,
                         device=device, precision=args.precision)
            continue
        meta, config, models = load_trained(run)
        if meta["kind"] == "toy":
            if args.data is not None or args.ood is not None:
                raise ValueError(f"--data and --ood apply to image runs only; {run} uses toy data "
                                 f"{config.data.name!r}")
            problem = load_problem(config, meta["seed"])
        else:
            problem = _image_problem(meta, config, args.data, args.ood)
        _evaluate(target, meta["kind"], problem, models.all(), meta["seed"], device, args.latency_batches,
                  shifts=not args.no_shifts, precision=args.precision or config.precision,
                  members=build_members(config, models.ensemble), early_stopping=models.early_stopping)
    return out / "evaluation.md" if runs == [run_dir] else out


def _cmd_compare(args: argparse.Namespace) -> Path:
    from hydraplus.io import atomic_write_text
    from hydraplus.report.compare import compare_markdown, load_pooled
    from hydraplus.report.image_figures import write_figures

    pooled = load_pooled(args.run_dirs)
    out = args.out or args.run_dirs[0]
    figures = write_figures(pooled, out) if pooled.kind == "image" else []
    atomic_write_text(out / "compare.md", compare_markdown(pooled, figures))
    return out / "compare.md"


def _cmd_export(args: argparse.Namespace) -> Path:
    from hydraplus.experiments import distil_run
    from hydraplus.experiments.export import export_run

    run_dir = Path(args.run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run folder not found: {run_dir}")
    out = args.out or run_dir / "export"
    for run in _run_folders(run_dir):
        target = out if run == run_dir else out / run.name
        export = distil_run.export_run if distil_run.is_distil_run(run) else export_run
        for path in export(run, target, args.models, format=args.format):
            if not args.quiet:
                print(f"  {path}")
    return out


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


def _input_normalization(args: argparse.Namespace) -> dict[str, Any] | None:
    """The inputs' normalisation: --input-mean/--input-std, else the teacher's card, else None."""
    from hydraplus.inputs.teachers import input_normalization

    if (args.input_mean is None) != (args.input_std is None):
        raise ValueError("--input-mean and --input-std go together")
    if args.input_mean is None:
        return input_normalization(args.teacher)
    if len(args.input_mean) != len(args.input_std):
        raise ValueError(f"--input-mean and --input-std need one value per channel each, got "
                         f"{len(args.input_mean)} and {len(args.input_std)}")
    return {"mean": args.input_mean, "std": args.input_std, "source": "--input-mean/--input-std"}


def _cmd_distil(args: argparse.Namespace) -> Path | None:
    from hydraplus.experiments.distil import as_teacher, distil
    from hydraplus.inputs.arrays import as_tensors, normalize, npz_test_split, ood_inputs
    from hydraplus.inputs.teachers import uncuttable
    from hydraplus.models.zoo import import_factory
    from hydraplus.report.evaluation import distil_evaluation, write_evaluation

    _check_batches(args.latency_batches)
    device = _torch_device(args.device)
    lam = _lam(args.lam)
    patience = _patience(args.patience)
    norm = _input_normalization(args)
    x, y = as_tensors(args.data, "train")
    if args.val is not None:
        test = as_tensors(args.val, "test")
    elif args.data.suffix == ".npz" and (found := npz_test_split(args.data)) is not None:
        test = found
    else:
        raise ValueError(f"no test data for the evaluation: {args.data} has no x_test/y_test; "
                         "pass --val FILE")
    x_ood = None if args.ood is None else ood_inputs(args.ood)
    output = args.output if args.output is None or not args.output.lstrip("-").isdigit() else int(args.output)
    teacher = as_teacher(args.teacher[0] if len(args.teacher) == 1 else args.teacher, output)
    student = None if args.student is None else import_factory(args.student)
    problem = uncuttable(teacher) if student is None else None
    if problem is not None:
        raise ValueError(problem)
    if norm is not None:
        x = normalize(x, norm["mean"], norm["std"], "train")
        test = (normalize(test[0], norm["mean"], norm["std"], "test"), test[1])
        x_ood = None if x_ood is None else normalize(x_ood, norm["mean"], norm["std"], "ood")
    rank_zero = _rank_zero(args.devices, args.num_nodes)
    out = args.out  # distil prepares it once every input checks out
    record: dict[str, Any] = {
        "teacher": [str(p) for p in args.teacher], "data": str(args.data),
        "test data": str(args.val) if args.val is not None else f"{args.data} (x_test/y_test)",
        "ood data": None if args.ood is None else str(args.ood),
        "inputs": ("float in [0, 1]" if norm is None
                   else f"(x - mean) / std per channel of the [0, 1] inputs, from {norm['source']}"),
        "normalization": norm,
    }
    if args.student is not None:
        record["student factory"] = args.student
    result = distil(teacher, (x, y), method=args.method, heads=args.heads, epochs=args.epochs,
                    split=args.split, student=student, lam=lam, ood=x_ood, patience=patience,
                    val_fraction=args.val_fraction,
                    out=out, device=device, seed=args.seed, resume=args.resume, overwrite=args.overwrite,
                    output=output, members=args.members, regression_output=args.regression_output,
                    progress=not args.quiet,
                    precision=args.precision or "32", record=record, devices=args.devices or 1,
                    num_nodes=args.num_nodes or 1, strategy=args.strategy or "auto")
    if not rank_zero:  # global rank 0 evaluates on the full test data
        return None
    record["student"] = str(out / result.spec.name / "model.pt")
    metrics = result.evaluate(test, ood=x_ood, out=out, latency_batches=args.latency_batches, device=device,
                              record=record)
    write_evaluation(out, distil_evaluation(metrics, (args.val or args.data).name,
                                            None if args.ood is None else args.ood.name))
    if not args.quiet:
        print(f"  student: {out / result.spec.name / 'model.pt'}")
        print(f"  metrics: {out / 'metrics.json'}")
    return out / "report.md"


def _cmd_configs(args: argparse.Namespace) -> None:
    from hydraplus.config import available_configs, builtin_text, load_config

    if args.name is not None:
        print(builtin_text(args.name), end="")
        return
    width = max(map(len, available_configs()))
    for name in available_configs():
        config = load_config(name)
        students = ", ".join(spec.name for spec in config.students)
        print(f"{name:<{width}} {config.kind:<6} N={config.ensemble.members:<3} students: {students}")
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
    from hydraplus.runtime import keep_allocator_memory

    keep_allocator_memory()
    warnings.showwarning = _show_warning
    try:
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
