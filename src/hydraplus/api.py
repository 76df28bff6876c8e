"""The Python API behind every ``hydraplus`` command: each command is one call here, so what the CLI
can do a script can do too (`hydraplus.cli` only parses arguments and prints).

`distil` and `load_distilled` distil any trained ensemble and read its run back; `train` runs a
config (ensemble, students, evaluation per seed); `evaluate_run`, `compare_runs` and `export_run`
read any run folder (`hydraplus.pipeline.runs.open_run`: a config run or a distil run alike);
`distil_files` is ``hydraplus distil``: teacher files and data files in, an evaluated run out.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from hydraplus.config import available_configs, builtin_text, load_config
from hydraplus.demo import run_demo
from hydraplus.engine.distributed import is_rank_zero
from hydraplus.evaluation.images import LATENCY_BATCH_SIZES
from hydraplus.export.cards import FORMATS, export_with_card
from hydraplus.export.onnx import require_onnx
from hydraplus.inputs.arrays import as_tensors, normalize, npz_test_split, ood_inputs
from hydraplus.inputs.teachers import input_normalization, uncuttable
from hydraplus.io import atomic_write_text
from hydraplus.methods import get_method
from hydraplus.models.zoo import import_factory
from hydraplus.pipeline.config_run import evaluation_models, run_experiment, suite_for
from hydraplus.pipeline.distil import Distilled, as_teacher, check_test_data, distil, load_distilled
from hydraplus.pipeline.run_folder import (
    evaluate_into,
    prepare_out_dir,
    record_spread_scale,
    run_folders,
    versions,
)
from hydraplus.pipeline.runs import export_example, open_run
from hydraplus.report.compare import compare_markdown, load_pooled
from hydraplus.report.distil import StudentWarning
from hydraplus.report.image_figures import write_figures
from hydraplus.runtime import flushing_denormals

__all__ = ["Distilled", "compare_runs", "config_table", "config_text", "demo", "demo_folder", "distil",
           "distil_files",
           "evaluate_run", "export_run", "load_distilled", "torch_device", "train"]


def torch_device(device: str) -> str:
    """The torch device of an evaluation for a device choice (``cpu``, ``cuda``/``gpu``, ``auto``)."""
    if device in ("cuda", "gpu"):
        if not torch.cuda.is_available():
            raise ValueError(f"--device {device} asked for, but no CUDA GPU is available")
        return "cuda"
    return "cuda" if device == "auto" and torch.cuda.is_available() else "cpu"


def _accelerator(device: str) -> str:
    """Lightning's accelerator for a device choice."""
    return {"cuda": "gpu"}.get(device, device)


def _latency_batches(batches: Sequence[int] | None) -> tuple[int, ...]:
    """The latency batch sizes asked for (default: `LATENCY_BATCH_SIZES`), checked."""
    batches = LATENCY_BATCH_SIZES if batches is None else tuple(batches)
    if any(b < 1 for b in batches):
        raise ValueError(f"--latency-batches must be positive batch sizes, got {list(batches)}")
    return batches


def demo_folder(out: Path | None, devices: int | None = None, num_nodes: int | None = None) -> Path:
    """The demo's folder: ``out``, else ``runs/demo-<timestamp>`` (on one process only: several need
    one folder named for all of them)."""
    if out is None and (devices or 1) * (num_nodes or 1) > 1:
        raise ValueError("--devices/--num-nodes need --out: every process must use the same run folder")
    return Path(out) if out is not None else Path("runs") / f"demo-{time.strftime('%Y%m%d-%H%M%S')}"


@flushing_denormals()
def demo(out: Path | None = None, *, quick: bool = False, seed: int = 0, progress: bool = True,
         device: str = "cpu", resume: bool = False, overwrite: bool = False, precision: str | None = None,
         devices: int | None = None, num_nodes: int | None = None, strategy: str | None = None
         ) -> Path | None:
    """The paper's toy results (`hydraplus.demo.run_demo`) into ``out`` (`demo_folder`); returns the
    report on the process that wrote it (None on the others)."""
    out = demo_folder(out, devices, num_nodes)
    rank_zero = is_rank_zero(devices or 1, num_nodes or 1)
    out = prepare_out_dir(out, resume, overwrite) if rank_zero else out
    report = run_demo(out, quick=quick, seed=seed, progress=progress, accelerator=_accelerator(device),
                      resume=resume, precision=precision, devices=devices, num_nodes=num_nodes,
                      strategy=strategy)
    return report if rank_zero else None


@flushing_denormals()
def train(config: str | Path, out: Path, *, seeds: Sequence[int] = (0,), epochs: int | None = None,
          members: int | None = None, precision: str | None = None, devices: int | None = None,
          num_nodes: int | None = None, strategy: str | None = None, device: str = "cpu",
          progress: bool = True, resume: bool = False, overwrite: bool = False,
          data: Path | None = None, ood_data: Path | None = None, checkpoint_every: int = 1,
          latency_batches: Sequence[int] | None = None) -> Path | None:
    """A config run (a built-in name or a JSON file) for every seed into ``out/seed-N``: the ensemble
    and every student trained, then evaluated with the run's own suite; returns ``out`` on the
    process that wrote it (None on the others)."""
    latency_batches = _latency_batches(latency_batches)
    evaluation_device = torch_device(device)
    parsed = load_config(config, epochs=epochs, members=members, precision=precision, devices=devices,
                         num_nodes=num_nodes, strategy=strategy)
    rank_zero = is_rank_zero(parsed.trainer.devices, parsed.trainer.num_nodes)
    out = prepare_out_dir(out, resume, overwrite) if rank_zero else Path(out)
    for seed in seeds:
        run_dir = out / f"seed-{seed}"
        problem, trained = run_experiment(
            parsed, run_dir, seed, progress=progress, accelerator=_accelerator(device), resume=resume,
            data_path=None if data is None else Path(data).resolve(),
            ood_path=None if ood_data is None else Path(ood_data).resolve(),
            checkpoint_every=checkpoint_every)
        if rank_zero:  # on the full test data, while any other processes wait for the next seed
            evaluate_into(run_dir, evaluation_models(parsed, trained), suite_for(parsed, problem),
                          seed=seed, precision=parsed.precision, latency_batches=latency_batches,
                          device=evaluation_device)
    return out if rank_zero else None


@flushing_denormals()
def evaluate_run(run_dir: Path, *, data: Path | None = None, ood: Path | None = None, out: Path | None = None,
                 shifts: bool = True, device: str = "cpu", precision: str | None = None,
                 latency_batches: Sequence[int] | None = None) -> Path:
    """Evaluate every model of a run (a seed folder, a distil run, or a train output folder with
    ``seed-*/``) with its own suite, on ``data``/``ood`` where given (image runs: normalised as in
    training; distil runs need ``data``), into ``out`` (default: the run folder; with ``data``
    ``RUN/eval-<name>``); returns the Markdown file of one run, else the output folder."""
    latency_batches = _latency_batches(latency_batches)
    run_dir = Path(run_dir)
    runs = run_folders(run_dir)
    out = Path(out) if out is not None else (run_dir if data is None else run_dir / f"eval-{Path(data).stem}")
    evaluation_device = torch_device(device)
    written = out
    for folder in runs:
        run = open_run(folder)
        written = evaluate_into(out if folder == run_dir else out / folder.name, run.models,
                                run.suite(data, ood, shifts), seed=run.evaluation_seed,
                                precision=precision or run.precision, latency_batches=latency_batches,
                                device=evaluation_device)
    return written if runs == [run_dir] else out


def compare_runs(run_dirs: Sequence[Path], out: Path | None = None) -> Path:
    """``compare.md`` (and figures for image runs) over the seeds of ``run_dirs`` into ``out`` (default:
    the first run folder); returns its path."""
    pooled = load_pooled(run_dirs)
    out = Path(out) if out is not None else Path(run_dirs[0])
    figures = write_figures(pooled, out) if pooled.kind == "image" else []
    atomic_write_text(out / "compare.md", compare_markdown(pooled, figures))
    return out / "compare.md"


def export_run(run_dir: Path, out: Path | None = None, names: Sequence[str] | None = None,
               format: str = "pt2") -> list[Path]:
    """Export the models ``names`` (default: all) of a run (or of every ``seed-*/`` run) into ``out``
    (default: ``RUN/export``) as ``format``: ``"pt2"`` torch.export programs or ``"onnx"`` graphs that
    also output the uncertainty, each with its JSON card (`export_with_card`); the written paths."""
    if format not in FORMATS:
        raise ValueError(f"unknown export format {format!r}; choose one of {FORMATS}")
    if format == "onnx":
        require_onnx()  # before any work
    run_dir = Path(run_dir)
    out = Path(out) if out is not None else run_dir / "export"
    written = []
    for folder in run_folders(run_dir):
        run = open_run(folder)
        models = run.exportable(format)
        unknown = sorted(set(names or []) - set(models))
        if unknown:
            limited = f" to export as {format}" if set(run.models.models) - set(models) else ""
            raise ValueError(f"{folder} has no model(s) {unknown}{limited}; it has {sorted(models)}")
        example = export_example(run)
        target = out if folder == run_dir else out / folder.name
        for name in names or list(models):
            model, method = models[name]
            card = {"model": name, "method": method, "input": run.input_text,
                    "normalization": run.normalization, "run": str(folder), "seed": run.seed,
                    "versions": versions(),
                    **({"spread_scale": run.models.spread_scales[name]}
                       if name in run.models.spread_scales else {})}
            written.append(export_with_card(model, method, run.task, example, target / f"{name}.{format}",
                                            format, card))
    return written


def input_normalization_of(teacher: Sequence[Path], mean: Sequence[float] | None = None,
                           std: Sequence[float] | None = None) -> dict[str, Any] | None:
    """The inputs' normalisation: ``mean``/``std`` given, else the teacher files' card, else None."""
    if (mean is None) != (std is None):
        raise ValueError("--input-mean and --input-std go together")
    if mean is None or std is None:
        return input_normalization(teacher)
    if len(mean) != len(std):
        raise ValueError(f"--input-mean and --input-std need one value per channel each, got "
                         f"{len(mean)} and {len(std)}")
    return {"mean": list(mean), "std": list(std), "source": "--input-mean/--input-std"}


def distil_files(teacher: Sequence[Path], data: Path, out: Path, *, val: Path | None = None,
                 ood: Path | None = None, spread_data: Path | None = None,
                 input_mean: Sequence[float] | None = None,
                 input_std: Sequence[float] | None = None, output: str | int | None = None,
                 student: str | None = None, device: str = "cpu",
                 latency_batches: Sequence[int] | None = None, **settings: Any) -> Distilled:
    """``hydraplus distil``: the teacher's files (or a run folder) distilled on ``data`` (an ``.npz`` or an
    image folder) into ``out``, then evaluated on ``val`` (default: ``data``'s ``x_test``/``y_test``)
    with ``ood``. With ``spread_data`` (inputs neither the members nor the student trained on; labels
    ignored) the student's heads' spread is fitted on them (`Distilled.spread_scaled`) before the
    evaluation, and the run keeps the scale. Inputs are normalised with ``input_mean``/``input_std``,
    else the teacher's card (`input_normalization_of`); ``student`` is a ``MODULE:FACTORY`` to import;
    ``settings`` go to `distil` (``method``, ``heads``, ``epochs``, ``lam``, ``patience``, ``seed``,
    ``devices``, ...). Every input is checked before training."""
    latency_batches = _latency_batches(latency_batches)
    evaluation_device = torch_device(device)
    norm = input_normalization_of(teacher, input_mean, input_std)
    x, y = as_tensors(data, "train")
    if val is not None:
        test = as_tensors(val, "test")
    elif data.suffix == ".npz" and (found := npz_test_split(data)) is not None:
        test = found
    else:
        raise ValueError(f"no test data for the evaluation: {data} has no x_test/y_test; pass --val FILE")
    x_ood = None if ood is None else ood_inputs(ood)
    method = settings.get("method", "hydra+")
    x_spread = None if spread_data is None else spread_inputs(spread_data, x, method)
    module = as_teacher(teacher[0] if len(teacher) == 1 else list(teacher), output)
    factory = None if student is None else import_factory(student)
    problem = uncuttable(module) if factory is None else None
    if problem is not None:
        raise ValueError(problem)
    if norm is not None and "files" in norm:
        module.renormalize(norm, norm["files"])  # each file sees its own card's inputs
    if norm is not None:
        x = normalize(x, norm["mean"], norm["std"], "train")
        test = (normalize(test[0], norm["mean"], norm["std"], "test"), test[1])
        x_ood = None if x_ood is None else normalize(x_ood, norm["mean"], norm["std"], "ood")
        x_spread = None if x_spread is None else normalize(x_spread, norm["mean"], norm["std"], "spread data")
    record: dict[str, Any] = {
        "teacher": [str(p) for p in teacher], "data": str(data),
        "test data": str(val) if val is not None else f"{data} (x_test/y_test)",
        "ood data": None if ood is None else str(ood),
        "inputs": ("float in [0, 1]" if norm is None
                   else f"(x - mean) / std per channel of the [0, 1] inputs, from {norm['source']}"),
        "normalization": norm,
    }
    if student is not None:
        record["student factory"] = student
    check_test_data(module, (x, y), test, output=output, members=settings.get("members"),
                    regression_output=settings.get("regression_output"))
    with warnings.catch_warnings():  # the evaluation on the test data below checks the student instead
        warnings.simplefilter("ignore", StudentWarning)
        result = distil(module, (x, y), student=factory, ood=x_ood, out=out, device=evaluation_device,
                        output=output, record=record, **settings)
    if not is_rank_zero(settings.get("devices", 1), settings.get("num_nodes", 1)):
        return result  # global rank 0 evaluates on the full test data
    record["student"] = str(out / result.spec.name / "model.pt")
    if x_spread is not None:
        result = replace(result.spread_scaled(x_spread), folder=Path(out))
        record["spread scale"] = record_spread_scale(out, result.spread_scale,
                                                     f"{spread_data} ({len(x_spread):,} inputs)")
    result.metrics = result.evaluate(test, ood=x_ood, out=out, latency_batches=latency_batches,
                                     device=evaluation_device, record=record, test_name=(val or data).name,
                                     ood_name=None if ood is None else ood.name)
    return result


def spread_inputs(data: Path, x: torch.Tensor, method: str) -> torch.Tensor:
    """``--spread-data``'s inputs, checked against the training inputs and the method before training."""
    if not get_method(method).multi_head:
        raise ValueError(f"--spread-data: method {method!r} has no heads to spread; spread scaling applies "
                         "to multi-head students (hydra+, hydra)")
    x_spread = ood_inputs(data, "spread data")
    if x_spread.shape[1:] != x.shape[1:]:
        raise ValueError(f"spread data inputs ({data}) have shape {list(x_spread.shape[1:])} per example, "
                         f"the training inputs {list(x.shape[1:])}")
    return x_spread


def config_table() -> list[tuple[str, str, int, list[str]]]:
    """The built-in configs: name, kind, ensemble size and student names."""
    rows = []
    for name in available_configs():
        config = load_config(name)
        rows.append((name, config.kind, config.ensemble.members, [spec.name for spec in config.students]))
    return rows


def config_text(name: str) -> str:
    """A built-in config's JSON text."""
    return builtin_text(name)
