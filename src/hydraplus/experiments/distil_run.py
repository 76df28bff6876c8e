"""A `hydraplus.distil` output folder as a run of kind ``"distil"``, which `load_distilled` and
``hydraplus evaluate``, ``compare`` and ``export`` read. A user's student cannot be rebuilt from a
config of registered architectures, so the folder keeps the student and the teacher as
``torch.export`` programs (dynamic batch size, checked against the modules when written)::

    OUT/config.json              kind "distil", task, student (its name), method, spec, seed,
                                 precision, input_shape, val_fraction (early stopping), versions
                                 and the caller's record (e.g. the inputs' normalisation); written
                                 when training starts and completed with train_seconds, programs,
                                 early_stopping and member_validation when it ends
    OUT/<student>/model.pt       the student's weights; last.ckpt: its training state (resume)
    OUT/<student>/student.pt2    its method's export view (EnDD: the Dirichlet concentrations)
    OUT/teacher.pt2              the teacher; absent when torch.export cannot trace it (e.g. a
                                 bare callable), with the reason in config.json
    OUT/cache/                   the teacher's outputs on the training set
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, fx, nn
from torch.export.passes import move_to_device_pass

from hydraplus.config import StudentSpec
from hydraplus.core.modes import evaluating
from hydraplus.engine.distributed import check_world_size
from hydraplus.experiments.distil import Distilled
from hydraplus.export.cards import FORMATS, export_with_card
from hydraplus.export.onnx import uniform_dropout
from hydraplus.export.pt2 import export_model
from hydraplus.inputs.arrays import as_tensors, normalize, npz_test_split, ood_inputs
from hydraplus.inputs.teachers import read_program
from hydraplus.io import atomic_write_text
from hydraplus.methods import get_method
from hydraplus.pipeline.run_folder import versions
from hydraplus.report.evaluation import distil_evaluation, write_evaluation

KIND = "distil"
CONFIG = "config.json"
STUDENT_PROGRAM = "student.pt2"
TEACHER_PROGRAM = "teacher.pt2"
SAME_ON_RESUME = ("kind", "task", "student", "spec", "seed", "input_shape", "val_fraction")


def _first_line(err: BaseException) -> str:
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return lines[0] if lines else type(err).__name__


def is_distil_run(run_dir: Path) -> bool:
    """Whether ``run_dir`` has the ``config.json`` of a distil run."""
    try:
        return json.loads((Path(run_dir) / CONFIG).read_text()).get("kind") == KIND
    except (OSError, ValueError, AttributeError):
        return False


def read_config(run_dir: Path) -> dict[str, Any]:
    """A distil run's ``config.json``; a clear one-line error for any other folder."""
    path = Path(run_dir) / CONFIG
    if not path.is_file():
        raise FileNotFoundError(f"not a hydraplus run folder (no config.json): {run_dir}")
    try:
        meta = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"cannot read {path}: {err}") from err
    kind = meta.get("kind") if isinstance(meta, dict) else None
    if kind != KIND:
        raise ValueError(f"{run_dir} is {f'a {kind} run' if kind else 'a run of another kind'}, not a "
                         "distil run (the folder hydraplus.distil(out=...) or `hydraplus distil` writes)")
    return meta


def start_run(folder: Path, spec: StudentSpec, task: str, input_shape: list[int], *, seed: int,
              precision: str, record: Mapping[str, Any] | None, resume: bool, world_size: int = 1,
              write: bool = True, val_fraction: float | None = None) -> None:
    """Write ``config.json`` as training starts (``record``'s keys first; the run's own win); with
    ``resume`` refuse a folder whose saved run differs in its student, data, seed or world size
    (processes). On several processes each checks and global rank 0 alone (``write``) writes."""
    meta = {**dict(record or {}), "kind": KIND, "task": task, "student": spec.name, "method": spec.method,
            "spec": spec.to_dict(), "seed": seed, "precision": precision, "input_shape": input_shape,
            "world_size": world_size, "versions": versions(), "val_fraction": val_fraction}
    meta = json.loads(json.dumps(meta))  # as it reads back
    path = Path(folder) / CONFIG
    if resume and path.is_file():
        saved = json.loads(path.read_text())
        # runs from before the world size was saved trained on one process
        check_world_size(saved.get("world_size", 1), world_size, str(folder))
        changed = [key for key in SAME_ON_RESUME if saved.get(key) != meta[key]]
        if changed:
            raise ValueError(f"cannot resume {folder}: its saved {', '.join(changed)} do not match this "
                             "run's; use a new output folder or --overwrite")
    if write:
        atomic_write_text(path, json.dumps(meta, indent=2))


def finish_run(result: Distilled, example: Tensor) -> None:
    """Export the student (its method's export view) and the teacher as programs, each checked
    against its module on ``example`` (a batch of two or more inputs), then complete ``config.json``
    with them and the training time. A teacher torch.export cannot trace is recorded, not fatal."""
    assert result.folder is not None
    folder, spec = result.folder, result.spec
    meta = json.loads((folder / CONFIG).read_text())
    student = f"{spec.name}/{STUDENT_PROGRAM}"
    with evaluating(result.model):
        export_model(get_method(spec.method).export_view(result.model, result.task)[0], example,
                     folder / student)
    teacher: str | None = TEACHER_PROGRAM
    meta.pop("teacher_not_exported", None)
    try:
        with evaluating(result.teacher):
            export_model(result.teacher, example, folder / TEACHER_PROGRAM)
    except Exception as err:  # whatever torch.export cannot trace: the student is still usable alone
        teacher, meta["teacher_not_exported"] = None, _first_line(err)
        (folder / TEACHER_PROGRAM).unlink(missing_ok=True)
    meta.update(train_seconds=result.train_seconds, programs={"student": student, "teacher": teacher},
                early_stopping=result.early_stopping, member_validation=result.member_validation)
    atomic_write_text(folder / CONFIG, json.dumps(meta, indent=2))


def _uniform_dropouts(module: fx.GraphModule) -> fx.GraphModule:
    """The graph's test-time dropouts with masks from uniform noise (`uniform_dropout`)."""
    for node in module.graph.nodes:
        if node.target is torch.ops.aten.dropout.default and node.args[2:] == (True,):
            node.target, node.args = uniform_dropout, node.args[:2]
    module.recompile()
    return module


class LoadedProgram(nn.Module):
    """A saved torch.export program as a module. It runs as exported in train and eval mode alike;
    ``.to(device)`` moves the whole program (devices its graph names too; dtypes stay); test-time
    dropout draws its masks from uniform noise (the same distribution), as ONNX keeps that sampling."""

    def __init__(self, program: torch.export.ExportedProgram, device: torch.device):
        super().__init__()
        self.program, self.device = program, device
        self.body = _uniform_dropouts(program.module())

    def train(self, mode: bool = True) -> LoadedProgram:
        self.training = mode  # the program's graph has no modes
        return self

    def _apply(self, fn: Callable[[Tensor], Tensor], recurse: bool = True) -> LoadedProgram:
        device = fn(torch.empty(0, device=self.device)).device
        if device != self.device:
            moved = move_to_device_pass(self.program, device)
            self.program, self.device, self.body = moved, device, _uniform_dropouts(moved.module())
        return self

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x)


def load_program(path: Path) -> LoadedProgram:
    """A program written by `finish_run`, on the CPU."""
    if not path.is_file():
        raise FileNotFoundError(f"program not found: {path}")
    return LoadedProgram(read_program(path), torch.device("cpu"))


def _load(run_dir: Path) -> tuple[dict[str, Any], Distilled]:
    meta = read_config(run_dir)
    programs = meta.get("programs")
    if programs is None:
        raise ValueError(f"the distillation in {run_dir} has not finished (no programs yet); continue it "
                         "with resume=True (hydraplus distil ... --resume)")
    spec = StudentSpec.from_dict(meta["spec"])
    model = get_method(spec.method).from_export_view(load_program(run_dir / programs["student"]), spec)
    teacher = None if programs["teacher"] is None else load_program(run_dir / programs["teacher"])
    return meta, Distilled(model, spec, meta["task"], teacher, meta["train_seconds"], run_dir,
                           meta["precision"], early_stopping=meta.get("early_stopping"),
                           member_validation=meta.get("member_validation"))


def load_distilled(run_dir: str | Path) -> Distilled:
    """The result of a finished distillation from its folder: the student and the teacher as loaded
    programs (the teacher None where it could not be exported), with their settings."""
    return _load(Path(run_dir))[1]


def _inputs_text(meta: dict[str, Any]) -> str:
    return meta.get("inputs") or "as the inputs hydraplus.distil was trained on"


def evaluate_run(run_dir: Path, data: Path | None, ood: Path | None, out: Path, *,
                 latency_batches: Sequence[int], device: str, precision: str | None = None) -> Path:
    """Evaluate a distil run on ``data`` (``x_test``/``y_test`` of an ``.npz``, else all it holds),
    normalised as in training, with `Distilled.evaluate`: ``metrics.json``, ``report.md`` and the
    ``evaluation.json``/``.md`` that ``hydraplus compare`` reads go to ``out``."""
    if data is None:
        raise ValueError(f"{run_dir} is a distil run: pass --data FILE, its test data (.npz or image folder)")
    meta, result = _load(Path(run_dir))
    found = npz_test_split(data) if data.suffix == ".npz" and data.is_file() else None
    x, y = found if found is not None else as_tensors(data, "test")
    if list(x.shape[1:]) != meta["input_shape"]:
        raise ValueError(f"--data: {data} holds inputs of shape {list(x.shape[1:])}, but the run's student "
                         f"takes {meta['input_shape']}")
    x_ood = None if ood is None else ood_inputs(ood)
    norm = meta.get("normalization")
    if norm is not None:
        x = normalize(x, norm["mean"], norm["std"], "test")
        x_ood = None if x_ood is None else normalize(x_ood, norm["mean"], norm["std"], "ood")
    record: dict[str, Any] = {"run": str(run_dir),
                              "test data": f"{data} (x_test/y_test)" if found is not None else str(data),
                              "ood data": None if ood is None else str(ood), "inputs": _inputs_text(meta),
                              "normalization": norm}
    if result.teacher is None:
        record["teacher"] = ("not evaluated: torch.export could not export it when distilled "
                             f"({meta.get('teacher_not_exported')}); the student is evaluated alone")
    result.precision = precision or result.precision
    metrics = result.evaluate((x, y), ood=x_ood, out=out, latency_batches=latency_batches, device=device,
                              record=record)
    evaluation = distil_evaluation(metrics, data.name, None if ood is None else ood.name)
    return write_evaluation(Path(out), evaluation)


def export_run(run_dir: Path, out_dir: Path, names: list[str] | None = None, format: str = "pt2"
               ) -> list[Path]:
    """Export a distil run's student (and, as ``pt2``, its teacher), or the models ``names``, into
    ``out_dir`` with their JSON cards (see `export_with_card`)."""
    if format not in FORMATS:
        raise ValueError(f"unknown export format {format!r}; choose one of {FORMATS}")
    if format == "onnx":
        from hydraplus.export.onnx import require_onnx

        require_onnx()  # before any work
    meta, result = _load(Path(run_dir))
    models: dict[str, tuple[nn.Module, str | None]] = {result.spec.name: (result.model, result.spec.method)}
    if format == "pt2" and result.teacher is not None:
        models["teacher"] = (result.teacher, None)
    unknown = sorted(set(names or []) - set(models))
    if unknown:
        raise ValueError(f"{run_dir} has no model(s) {unknown} to export as {format}; "
                         f"it has {sorted(models)}")
    example = torch.randn(2, *meta["input_shape"], generator=torch.Generator().manual_seed(0))
    written = []
    for name in names or list(models):
        model, method = models[name]
        card = {"model": name, "method": method, "input": _inputs_text(meta),
                "normalization": meta.get("normalization"), "run": str(run_dir), "seed": meta["seed"],
                "versions": versions()}
        written.append(export_with_card(model, method, result.task, example,
                                        Path(out_dir) / f"{name}.{format}", format, card))
    return written
