"""Teachers from files, for `hydraplus.distil` and ``hydraplus distil``.

A teacher file is a ``torch.export`` program (``.pt2``) or a TorchScript file. Each gives one
member's ``[B, D]`` or several members' ``[B, N, D]``; `TeacherFiles` joins them into
``[B, N, D]``. A program keeps its module structure (``torch.export.unflatten``) and gets its
linear and convolution layers back as ``nn.Linear``/``nn.Conv2d``, so a Hydra+ student can be
cut from the first one when it was exported with a dynamic batch size; a program exported for
one fixed batch size is run in chunks of that size (`FixedBatch`). A TorchScript file is a
teacher only: its modules do not copy into trainable layers.
`input_normalization` reads the inputs' normalisation from the files' cards.
"""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from hydraplus.inputs.contracts import Members, Selector, pick, reason
from hydraplus.models.zoo import layer_of_call

Shape = list[int | None]  # one input's expected shape with the batch; None: any size


def read_program(path: Path, what: str = "") -> torch.export.ExportedProgram:
    """A ``torch.export`` program from ``path``; a file that is not one is a ValueError naming
    it (``what`` says whose file, e.g. ``"teacher "``)."""
    log = logging.getLogger("torch.export")  # it logs a bad file's traceback before raising
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        return torch.export.load(path)
    except Exception as err:
        raise ValueError(f"cannot load {what}{path}: not a torch.export program ({reason(err)})") from err
    finally:
        log.setLevel(level)


def _shape_text(shape: Shape) -> str:
    return "[" + ", ".join("batch" if i == 0 and d is None else "any" if d is None else str(d)
                           for i, d in enumerate(shape)) + "]"


class FixedBatch(nn.Module):
    """A program exported for batches of exactly ``batch`` inputs, run on any number of them:
    in chunks of that size, the last one padded with copies of its last input."""

    def __init__(self, program: nn.Module, batch: int):
        super().__init__()
        self.program, self.batch = program, batch

    def forward(self, x: Tensor) -> Tensor:
        if len(x) == self.batch:
            return self.program(x)
        outs = []
        for chunk in torch.split(x, self.batch):
            n = len(chunk)
            padded = torch.cat([chunk, chunk[-1:].expand(self.batch - n, *chunk.shape[1:])])
            outs.append(self.program(padded)[:n])
        return torch.cat(outs)


def _input_shape(program: torch.export.ExportedProgram, path: Path) -> Shape | None:
    """The program's one input's shape from its input spec (None where it does not say)."""
    names = program.graph_signature.user_inputs
    if len(names) != 1:
        raise ValueError(f"teacher {path} takes {len(names)} inputs; a teacher takes one tensor")
    node = next(n for n in program.graph.nodes if n.op == "placeholder" and n.name == names[0])
    value = node.meta.get("val")
    if not isinstance(value, Tensor):
        return None
    return [d if isinstance(d, int) else None for d in value.shape]


def _as_layer(leaf: nn.Module) -> nn.Module | None:
    """An ``nn.Linear``/``nn.Conv2d`` with the weights of an unflattened program's leaf that runs
    exactly that layer on its input, or None."""
    graph = getattr(leaf, "graph", None)
    if graph is None:
        return None
    nodes = list(graph.nodes)
    calls = [n for n in nodes if n.op not in ("placeholder", "get_attr", "output")]
    if len(calls) != 1 or not calls[0].args or calls[0].args[0] is not nodes[0]:
        return None
    return layer_of_call(leaf, calls[0])


def _typed_layers(program: torch.export.ExportedProgram, shape: Shape | None) -> nn.Module:
    """The program unflattened, with its linear and convolution leaves as ``nn.Linear`` and
    ``nn.Conv2d``, so a student cut from it has layers to re-initialise and, for Hydra+, heads'
    weights to diversify. Kept as it was unless it still reproduces the program's outputs on
    random inputs of ``shape``."""
    module, converted = torch.export.unflatten(program), torch.export.unflatten(program)
    for parent in list(converted.modules()):
        for name, child in list(parent.named_children()):
            layer = _as_layer(child)
            if layer is not None:
                setattr(parent, name, layer)
    if shape is None or None in shape[1:]:
        return module
    example = torch.randn(shape[0] or 2, *shape[1:], generator=torch.Generator().manual_seed(0))
    try:
        with torch.no_grad():
            expected, got = module(example), converted(example)
    except Exception:  # e.g. a batch of 2 outside the program's range: keep it as it is
        return module
    same = isinstance(got, Tensor) and got.shape == expected.shape
    return converted if same and torch.allclose(got, expected, atol=1e-5) else module


def load_teacher_file(path: Path) -> tuple[nn.Module, Shape | None]:
    """One teacher file as a module, with the input shape it takes where the file says."""
    if not path.is_file():
        raise FileNotFoundError(f"teacher file not found: {path}" if not path.exists() else
                                f"teacher {path} is a folder: a hydraplus run folder is a whole teacher, "
                                "pass it alone")
    if path.suffix == ".pt2":
        program = read_program(path, "teacher ")
        shape = _input_shape(program, path)
        module = _typed_layers(program, shape)
        if shape is not None and shape[0] is not None:
            return FixedBatch(module, shape[0]), shape
        return module, shape
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # TorchScript's deprecation notice
            return torch.jit.load(str(path), map_location="cpu"), None
    except Exception as err:
        raise ValueError(f"cannot load teacher {path}: not a TorchScript file or a torch.export program "
                         f"(.pt2) ({reason(err)}); a state dict needs its architecture: load it into "
                         "your module and pass the modules to hydraplus.distil") from err


def _affine(x: Tensor, scale: Tensor, shift: Tensor) -> Tensor:
    """``x * scale + shift`` per channel (dimension 1)."""
    view = (1, -1) + (1,) * (x.dim() - 2)
    return x * scale.to(x).view(view) + shift.to(x).view(view)


def _device(module: nn.Module) -> torch.device | None:
    tensor = next(module.parameters(), None)
    if tensor is None:
        tensor = next(module.buffers(), None)
    return None if tensor is None else tensor.device


class TeacherFiles(Members):
    """Teacher files as one teacher: each of several gives ``[B, D]`` (one member) or ``[B, N, D]``;
    the outputs are joined to ``[B, N, D]``. One file's outputs are passed on as they are, to be
    read in any layout (`hydraplus.inputs.contracts.read_teacher`). Inputs are checked against
    each file's input shape and device first, so a mismatch names the file and what it takes."""

    def __init__(self, paths: Sequence[Path], output: Selector = None):
        loaded = [load_teacher_file(Path(p)) for p in paths]
        super().__init__([module for module, _ in loaded], output)
        self.names = [str(p) for p in paths]
        self.shapes = [shape for _, shape in loaded]
        self.stacks = len(paths) > 1  # one file's outputs are read as one module's, in any layout
        self.inputs: list[tuple[Tensor | None, Tensor | None]] = [(None, None)] * len(paths)

    def renormalize(self, given: dict[str, Any], files: Sequence[dict[str, Any]]) -> None:
        """Feed each file the inputs its own card expects: the inputs arrive normalised by
        ``given`` (mean/std per channel) and file k gets ``(x * std + mean - mean_k) / std_k``."""
        if len(files) != len(self.names):
            raise ValueError(f"{len(files)} normalisation cards for {len(self.names)} teacher files")
        mean, std = torch.tensor(given["mean"]), torch.tensor(given["std"])
        self.inputs = []
        for card in files:
            mean_k, std_k = torch.tensor(card["mean"]), torch.tensor(card["std"])
            same = torch.equal(mean_k, mean) and torch.equal(std_k, std)
            self.inputs.append((None, None) if same else (std / std_k, (mean - mean_k) / std_k))

    def forward(self, x: Tensor) -> Tensor:
        outs = []
        for name, shape, member, (scale, shift) in zip(self.names, self.shapes, self.members, self.inputs,
                                                       strict=True):
            device = _device(member)
            if device is not None and device != x.device:
                raise ValueError(f"teacher {name} is on {device} but the data is on {x.device}; "
                                 "put both on one device (device= / --device)")
            given = list(x.shape)
            if shape is not None and (len(given) != len(shape) or any(
                    d is not None and d != g for d, g in zip(shape[1:], given[1:], strict=False))):
                raise ValueError(f"teacher {name} takes inputs of shape {_shape_text(shape)}, "
                                 f"got {given}")
            try:
                out = member(x if scale is None else _affine(x, scale, shift))
            except RuntimeError as err:
                raise ValueError(f"teacher {name} failed on inputs of shape {given}: {reason(err)}") from err
            out = pick(out, self.output, f"teacher {name}", self.said)
            if not self.stacks:
                return out
            if out.dim() not in (2, 3):
                raise ValueError(f"teacher {name} gives outputs of shape {list(out.shape)}; a teacher file "
                                 "gives [B, D] (one member) or [B, N, D] (N members)")
            outs.append(out if out.dim() == 3 else out.unsqueeze(1))
        sizes = [out.shape[-1] for out in outs]
        if any(size != sizes[0] for size in sizes):
            raise ValueError("teacher files must give outputs of one size, got " + ", ".join(
                f"{name}: {size}" for name, size in zip(self.names, sizes, strict=True)))
        return torch.cat(outs, 1)


def uncuttable(teacher: nn.Module) -> str | None:
    """Why no student can be cut from the teacher's first file, or None (it can, or it is no file)."""
    if not isinstance(teacher, TeacherFiles):
        return None
    first, name = teacher.members[0], teacher.names[0]
    if isinstance(first, FixedBatch):
        return (f"cannot cut the student from {name}: it was exported for batches of exactly {first.batch} "
                "inputs; export it with a dynamic batch size "
                "(dynamic_shapes=({0: torch.export.Dim('batch')},)), as `hydraplus export` does, or "
                "pass --student")
    if isinstance(first, torch.jit.ScriptModule):
        return (f"cannot cut the student from {name}: a TorchScript module does not copy into trainable "
                "layers; save the members with torch.export (.pt2, dynamic batch size) instead, or pass "
                "--student")
    return None


def input_normalization(paths: Sequence[Path]) -> dict[str, Any] | None:
    """The normalisation the teacher files' inputs need: from the JSON card beside each ``.pt2``
    (``hydraplus export`` writes one) or a run folder's ``config.json``; None without any. A card
    is its own file's: files without one beside files with one are an error naming them. The
    inputs are normalised with the first file's card (the student is cut from it); where the cards
    differ, ``"files"`` holds each file's, for `TeacherFiles.renormalize`."""
    found: dict[str, dict[str, Any] | None] = {}
    for path in map(Path, paths):
        card = path / "config.json" if path.is_dir() else path.with_suffix(".json")
        saved = None
        if (path.suffix == ".pt2" or path.is_dir()) and card.is_file():
            try:
                saved = json.loads(card.read_text()).get("normalization")
            except (json.JSONDecodeError, AttributeError) as err:
                raise ValueError(f"cannot read the teacher's card {card}: not a JSON object") from err
        found[str(card) if saved is not None else str(path)] = None if saved is None else {
            "mean": [float(v) for v in saved["mean"]], "std": [float(v) for v in saved["std"]]}
    cards = {card: value for card, value in found.items() if value is not None}
    if not cards:
        return None
    without = [path for path, value in found.items() if value is None]
    if without:
        raise ValueError(f"teacher file(s) {', '.join(without)} have no input normalisation card while "
                         f"{', '.join(cards)} has one; a card applies to its own .pt2 only: put one beside "
                         "each (NAME.json), or pass --input-mean/--input-std for all")
    values = list(cards.values())
    if any(len(value["mean"]) != len(values[0]["mean"]) for value in values):
        raise ValueError("the teacher files' cards normalise different numbers of channels: "
                         + "; ".join(f"{card}: {len(value['mean'])}" for card, value in cards.items()))
    norm = {**values[0], "source": ", ".join(cards)}
    if any(value != values[0] for value in values):
        norm["files"] = values
    return norm
