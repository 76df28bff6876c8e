"""Teachers from files and data from image folders, for `hydraplus.distil` and ``hydraplus distil``.

A teacher file is a ``torch.export`` program (``.pt2``) or a TorchScript file. Each gives one
member's ``[B, D]`` or several members' ``[B, N, D]``; `TeacherFiles` joins them into
``[B, N, D]``. A program keeps its module structure (``torch.export.unflatten``) and gets its
linear and convolution layers back as ``nn.Linear``/``nn.Conv2d``, so a Hydra+ student can be
cut from the first one when it was exported with a dynamic batch size; a program exported for
one fixed batch size is run in chunks of that size (`FixedBatch`). A TorchScript file is a
teacher only: its modules do not copy into trainable layers.
An image folder in torchvision's ``ImageFolder`` layout gives float NCHW images in [0, 1].
"""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from hydraplus.experiments.contracts import Selector, note, pick
from hydraplus.experiments.distil import Members, as_tensors
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
        raise ValueError(f"cannot load {what}{path}: not a torch.export program ({_reason(err)})") from err
    finally:
        log.setLevel(level)


def _reason(err: BaseException) -> str:
    """The informative line of an error (TorchScript puts the cause last)."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    if not lines:
        return type(err).__name__
    return lines[-1] if len(lines) > 1 and "TorchScript" in lines[0] else lines[0]


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
                         f"(.pt2) ({_reason(err)}); a state dict needs its architecture: load it into "
                         "your module and pass the modules to hydraplus.distil") from err


def _device(module: nn.Module) -> torch.device | None:
    tensor = next(module.parameters(), None)
    if tensor is None:
        tensor = next(module.buffers(), None)
    return None if tensor is None else tensor.device


class TeacherFiles(Members):
    """Teacher files as one teacher: each of several gives ``[B, D]`` (one member) or ``[B, N, D]``;
    the outputs are joined to ``[B, N, D]``. One file's outputs are passed on as they are, to be
    read in any layout (`hydraplus.experiments.contracts.read_teacher`). Inputs are checked against
    each file's input shape and device first, so a mismatch names the file and what it takes."""

    def __init__(self, paths: Sequence[Path], output: Selector = None):
        loaded = [load_teacher_file(Path(p)) for p in paths]
        super().__init__([module for module, _ in loaded], output)
        self.names = [str(p) for p in paths]
        self.shapes = [shape for _, shape in loaded]
        self.stacks = len(paths) > 1  # one file's outputs are read as one module's, in any layout

    def forward(self, x: Tensor) -> Tensor:
        outs = []
        for name, shape, member in zip(self.names, self.shapes, self.members, strict=True):
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
                out = member(x)
            except RuntimeError as err:
                raise ValueError(f"teacher {name} failed on inputs of shape {given}: {_reason(err)}") from err
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
    is its own file's: files without one beside files with one, or cards that differ, are errors
    naming them (one normalisation feeds every member)."""
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
    if any(value != values[0] for value in values):
        raise ValueError("the teacher files need different input normalisations: "
                         + "; ".join(f"{card}: {value}" for card, value in cards.items()))
    return {**values[0], "source": ", ".join(cards)}


def normalize(x: Tensor, mean: Sequence[float], std: Sequence[float], name: str) -> Tensor:
    """``(x - mean) / std`` per channel (dimension 1)."""
    if x.dim() < 2 or len(mean) != x.shape[1] or len(std) != x.shape[1]:
        raise ValueError(f"{name}: the input normalisation has {len(mean)} means and {len(std)} stds, "
                         f"but the inputs of shape {list(x.shape)} have {x.shape[1] if x.dim() > 1 else 0} "
                         "channels")
    if any(s <= 0 for s in std):
        raise ValueError(f"the input normalisation's std must be > 0, got {list(std)}")
    view = (1, -1) + (1,) * (x.dim() - 2)
    return (x - torch.tensor(mean).view(view)) / torch.tensor(std).view(view)


def checked_pair(x: Tensor, y: Tensor, name: str) -> tuple[Tensor, Tensor]:
    """``(x, y)`` with at least one example and as many targets as inputs; integer inputs as
    float32 (values unchanged, said once), float64 ones as float32."""
    if x.dim() == 0 or len(x) == 0:
        raise ValueError(f"{name}: the data is empty (inputs of shape {list(x.shape)})")
    if y.dim() == 0 or len(y) != len(x):
        raise ValueError(f"{name}: {len(x)} inputs but {len(y) if y.dim() else 0} targets; they must match")
    if not (x.is_floating_point() or x.is_complex()):
        note(f"{name} inputs: {str(x.dtype).removeprefix('torch.')} values read as float32 (unchanged; "
             "scale them yourself if they need it)")
    return (x.float() if x.dtype != torch.float32 and not x.is_complex() else x), y


def read_image_folder(path: Path, name: str) -> tuple[Tensor, Tensor]:
    """Float ``[N, C, H, W]`` images in [0, 1] and int64 class indices from an ``ImageFolder``
    folder (one sub-folder per class); every image must have the same size."""
    from torchvision.datasets import ImageFolder
    from torchvision.transforms import v2

    to_float = v2.Compose([v2.ToImage(), v2.ToDtype(torch.float32, scale=True)])
    try:
        dataset = ImageFolder(str(path), transform=to_float)
    except (FileNotFoundError, OSError) as err:
        raise ValueError(f"{name}: {path} is not an image folder (one sub-folder of images per class): "
                         f"{_reason(err)}") from err
    images: list[Tensor] = []
    for index, (file, _) in enumerate(dataset.samples):
        image = dataset[index][0]
        if images and image.shape != images[0].shape:
            first = Path(dataset.samples[0][0]).relative_to(path)
            raise ValueError(f"{name}: the images in {path} must all have one size, but {first} is "
                             f"{list(images[0].shape)} and {Path(file).relative_to(path)} is "
                             f"{list(image.shape)}")
        images.append(image)
    return torch.stack(images), torch.tensor(dataset.targets, dtype=torch.int64)


def _inputs(array: np.ndarray) -> Tensor:
    """uint8 ``[N, H, W, C]`` images as float ``[N, C, H, W]`` in [0, 1] (as `as_tensors` reads
    an ``.npz``); other arrays as float."""
    x = torch.from_numpy(np.ascontiguousarray(array))
    return x.permute(0, 3, 1, 2).float() / 255.0 if x.dtype == torch.uint8 and x.dim() == 4 else x.float()


def npz_test_split(path: Path) -> tuple[Tensor, Tensor] | None:
    """An ``.npz`` file's ``x_test``/``y_test``, or None when it has none."""
    with np.load(path) as arrays:
        if "x_test" not in arrays or "y_test" not in arrays:
            return None
        x, y = _inputs(arrays["x_test"]), torch.from_numpy(np.ascontiguousarray(arrays["y_test"]))
    return checked_pair(x, y, f"test ({path})")


def ood_inputs(data: Any) -> Tensor:
    """Out-of-distribution inputs: a tensor or array, an ``.npz`` file (``x_test``, else ``x``,
    else ``x_train``; labels not needed), or any data `as_tensors` reads (labels ignored)."""
    if isinstance(data, Tensor | np.ndarray):
        x = torch.as_tensor(data).float()
    elif isinstance(data, str | Path) and Path(data).suffix == ".npz" and Path(data).is_file():
        with np.load(data) as arrays:
            key = next((k for k in ("x_test", "x", "x_train") if k in arrays), None)
            if key is None:
                raise ValueError(f"ood: {data} has none of the arrays x_test, x, x_train "
                                 f"(it has {sorted(arrays)})")
            x = _inputs(arrays[key])
    else:
        x = as_tensors(data, "ood")[0].float()
    if x.dim() == 0 or len(x) == 0:
        raise ValueError("ood: the data is empty")
    return x
