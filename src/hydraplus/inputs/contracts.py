"""Teachers' outputs and users' targets read in hydraplus' conventions, or refused: never misread.

hydraplus' teacher gives ``[B, N, D]``: per member logits (classification, D classes) or
(mean, log-variance) (regression, D = 2). What users' models give instead is read here:

- a tuple, list, dict, dataclass, namedtuple or model-output object: ``output=`` picks the
  predictions (an index, key or attribute); a ``.logits`` attribute or ``"logits"`` key
  (Hugging Face outputs, torchvision's GoogLeNet/Inception outputs) is found without it;
- probabilities (non-negative rows that sum to one) are read as their logs; a member ending in
  ``nn.Softmax``/``nn.LogSoftmax`` is read without it (`strip_output_activation`), and a student
  cut from any other member giving probabilities (``F.softmax`` in its forward, a Softmax inside
  a block, a ``.pt2`` program) has heads ending at their final Linear: the student outputs logits;
- one module running every member: ``[B, N, D]``, ``[N, B, D]`` or ``[N·B, D]`` (torch-uncertainty's
  deep ensembles), with ``members=N`` or found by running two batch sizes;
- regression, ``regression_output=``: ``"log_variance"`` (the default for D = 2), ``"variance"``,
  ``"std"`` or ``"mean"`` (D = 1: mean-only members). A mean-only member's variance is taken as
  ``MEAN_ONLY_LOG_VARIANCE``'s e^-30 (≈ 9e-14), the smallest hydraplus represents: the aleatoric
  part is zero, the members' spread is all the uncertainty, and a Gaussian NLL is meaningless.
  Values impossible for the declared kind (a negative variance) are refused.

Targets: class labels of any integer dtype, whole-number floats within the teacher's outputs,
``[N, 1]`` and one-hot ``[N, C]`` become int64 ``[N]``; strings are refused with how to encode
them. Each conversion is said once, as a `ContractNote` warning (the CLI prints it as
``hydraplus: note: ...``).
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from hydraplus.core.distributions import MAX_EXPONENT

Selector = int | str | None
REGRESSION_OUTPUTS = ("log_variance", "variance", "std", "mean")
MEAN_ONLY_LOG_VARIANCE = -MAX_EXPONENT
LAYOUTS = {"BND": "[B, N, D]", "NBD": "[N, B, D]", "flat": "[N·B, D]"}
PROBE_BATCHES = (2, 3)  # two batch sizes tell the batch dimension from the members'
TOLERANCE = 1e-4


class ContractNote(UserWarning):
    """A conversion hydraplus made to read a teacher's outputs or the data; said once."""


def note(message: str) -> None:
    warnings.warn(ContractNote(message), stacklevel=3)


def reason(err: BaseException) -> str:
    """The informative line of an error (TorchScript puts the cause last)."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    if not lines:
        return type(err).__name__
    return lines[-1] if len(lines) > 1 and "TorchScript" in lines[0] else lines[0]



# --- which part of an output holds the predictions ------------------------------------------


def _describe(out: Any) -> str:
    if isinstance(out, Mapping):
        return f"a {type(out).__name__} with keys {list(out)}"
    if isinstance(out, tuple | list):
        fields = getattr(out, "_fields", None)
        parts = ", ".join(f"{name}: {list(part.shape)}" if isinstance(part, Tensor) else
                          f"{name}: {type(part).__name__}"
                          for name, part in zip(fields or range(len(out)), out, strict=True))
        return f"a {type(out).__name__} of {len(out)} ({parts})"
    if dataclasses.is_dataclass(out):
        return f"a {type(out).__name__} with fields {[f.name for f in dataclasses.fields(out)]}"
    return f"a {type(out).__name__}"


def _logits(out: Any) -> tuple[Tensor, str] | None:
    """``out``'s logits where it names them: a ``"logits"`` key or a ``.logits`` attribute."""
    if isinstance(out, Mapping) and isinstance(out.get("logits"), Tensor):
        return out["logits"], "'logits'"
    value = getattr(out, "logits", None)
    return (value, ".logits") if isinstance(value, Tensor) else None


def _part(out: Any, output: int | str, who: str) -> Any:
    if isinstance(out, Mapping):
        if output in out:
            return out[output]
        if isinstance(output, int) and -len(out) <= output < len(out):
            return list(out.values())[output]
    elif isinstance(output, int) and isinstance(out, tuple | list):
        if -len(out) <= output < len(out):
            return out[output]
    elif isinstance(output, str) and hasattr(out, output):
        return getattr(out, output)
    raise ValueError(f"{who} returns {_describe(out)}, which has no part output={output!r}")


def pick(out: Any, output: Selector, who: str, said: set[str]) -> Tensor:
    """The tensor of predictions in a module's output: ``out`` itself, its part ``output`` (index,
    key or attribute), or its logits where it names them (said once per ``who``)."""
    if isinstance(out, Tensor):
        if output is not None:
            raise ValueError(f"{who} returns a tensor; output={output!r} is for tuple, dict or object "
                             "outputs: leave it out")
        return out
    if output is None:
        found = _logits(out)
        if found is None:
            raise ValueError(f"{who} returns {_describe(out)}, not a tensor: pass output= (an index, key or "
                             "attribute; --output on the command line) to say which part holds its "
                             "predictions")
        if who not in said:
            said.add(who)
            note(f"{who} returns {type(out).__name__}: its {found[1]} are read as the predictions "
                 "(output= chooses another part)")
        return found[0]
    got = _part(out, output, who)
    if not isinstance(got, Tensor):
        raise ValueError(f"{who}: output={output!r} gives a {type(got).__name__}, not a tensor")
    return got


# --- members ending in an output activation ---------------------------------------------------

ACTIVATIONS = {nn.Softmax: "probabilities", nn.LogSoftmax: "log_probabilities"}


def _activation(module: nn.Module) -> str | None:
    return next((kind for cls, kind in ACTIVATIONS.items() if type(module) is cls), None)


def strip_output_activation(member: nn.Module, example: Tensor | None = None) -> tuple[nn.Module, str]:
    """``(module, kind)``: a member ending in an ``nn.Softmax`` or ``nn.LogSoftmax`` without it, and
    ``"probabilities"`` or ``"log_probabilities"``; any other member as it is, and ``"logits"``.

    An ``nn.Sequential`` is stripped of its last layer (at any nesting depth). Another module whose
    last child is the activation is replaced by its children but the last in order, with ``example``
    inputs only, and only where the activation of those reproduces the member's output. The module
    returned shares the member's layers and gives its logits (the same predictive distribution), so
    a student cut from it has no activation copied into its heads."""
    if isinstance(member, nn.Sequential):
        if len(member) == 0:
            return member, "logits"
        kind = _activation(member[-1])
        if kind is not None:
            return (nn.Sequential(*list(member)[:-1]) if len(member) > 1 else nn.Identity()), kind
        inner, kind = strip_output_activation(member[-1], example)
        return (member, kind) if kind == "logits" else (nn.Sequential(*list(member)[:-1], inner), kind)
    children = list(member.children())
    kind = _activation(children[-1]) if len(children) > 1 and example is not None else None
    if kind is None:
        return member, "logits"
    stripped = nn.Sequential(*children[:-1])
    was_training = member.training
    try:
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            member.eval()
            expected, got = member(example), children[-1](stripped(example))
        same = isinstance(expected, Tensor) and expected.shape == got.shape and torch.allclose(
            got, expected, atol=1e-6, rtol=1e-5)
    except Exception:  # its forward is not its children in order
        same = False
    finally:
        member.train(was_training)
    return (stripped, kind) if same else (member, "logits")


def logit_members(members: list[nn.Module], example: Tensor | None = None) -> list[nn.Module]:
    """The members with a trailing Softmax/LogSoftmax stripped (`strip_output_activation`), said once."""
    out, stripped = [], []
    for i, member in enumerate(members):
        module, kind = strip_output_activation(member, example)
        out.append(module)
        if kind != "logits":
            stripped.append(str(i))
    if stripped:
        note(f"teacher member(s) {', '.join(stripped)} end in nn.Softmax/nn.LogSoftmax: read without it (as "
             "logits: the same predictions), so the student's heads output logits")
    return out


def deep_ensemble_members(module: nn.Module) -> list[nn.Module] | None:
    """A torch-uncertainty classification deep ensemble's members (it outputs ``[N·B, C]``), else None."""
    cls = type(module)
    if cls.__name__ == "_DeepEnsembles" and cls.__module__.startswith("torch_uncertainty"):
        return list(module.core_models)  # type: ignore[arg-type]
    return None


# --- one module's outputs as [B, N, D] ----------------------------------------------------------


class Members(nn.Module):
    """Trained modules of any architectures as one teacher: outputs stacked to ``[B, N, D]``.

    A member ending in ``nn.Softmax``/``nn.LogSoftmax`` is kept without it (its logits: the same
    predictions); ``output`` picks each member's predictions from a tuple, dict or object output
    (`pick`)."""

    def __init__(self, members: Sequence[nn.Module], output: Selector = None):
        super().__init__()
        if len(members) < 1:
            raise ValueError("the teacher needs at least one member, got an empty list")
        for i, member in enumerate(members):
            if not isinstance(member, nn.Module):
                raise TypeError(f"teacher member {i} must be an nn.Module, got {type(member).__name__}")
        self.members = nn.ModuleList(logit_members(list(members)))
        self.output, self.said = output, set[str]()
        self.stacks = True  # gives [B, N, D] with each member's predictions picked (`read_teacher`)

    def forward(self, x: Tensor) -> Tensor:
        outs = [pick(member(x), self.output, f"teacher member {i}", self.said)
                for i, member in enumerate(self.members)]
        sizes = [out.shape[1:] for out in outs]
        if any(size != sizes[0] for size in sizes):
            raise ValueError("teacher members must give outputs of one shape per example, got "
                             + ", ".join(f"member {i}: {list(s)}" for i, s in enumerate(sizes)))
        return torch.stack(outs, dim=1)


class CallableTeacher(nn.Module):
    """A callable as a module, read like one (`read_teacher`; not cached: it has no
    weights to key on)."""

    def __init__(self, function: Callable[[Tensor], Tensor]):
        super().__init__()
        self.function = function

    def forward(self, x: Tensor) -> Tensor:
        return self.function(x)


def _layouts(shape: tuple[int, ...], batch: int, members: int | None) -> dict[str, int]:
    """The layouts a probe's output shape fits, with the number of members each implies."""
    found: dict[str, int] = {}
    if len(shape) == 3:
        if shape[0] == batch:
            found["BND"] = shape[1]
        if shape[1] == batch:
            found["NBD"] = shape[0]
    elif len(shape) == 2 and shape[0] % batch == 0:
        found["flat"] = shape[0] // batch
    return {k: n for k, n in found.items() if members is None or n == members}


def arrange(out: Tensor, layout: str, members: int) -> Tensor:
    """``out`` in ``layout`` as ``[B, N, D]``."""
    if layout == "NBD":
        return out.transpose(0, 1)
    if layout == "flat":
        return out.reshape(members, -1, out.shape[-1]).transpose(0, 1)
    return out


def find_layout(shapes: dict[int, tuple[int, ...]], members: int | None) -> tuple[str, int]:
    """``(layout, N)`` of one module's outputs, from their shapes at a few batch sizes."""
    fits = [_layouts(shape, batch, members) for batch, shape in shapes.items()]
    common = [k for k in LAYOUTS if all(k in fit and fit[k] == fits[0][k] for fit in fits)]
    if not common:
        batch, shape = next(iter(shapes.items()))
        given = f" with members={members}" if members is not None else ""
        raise ValueError(f"the teacher gives outputs of shape {list(shape)} for a batch of {batch}; "
                         f"hydraplus reads [B, N, D], [N, B, D] or [N·B, D] (N members){given}: pass "
                         "members=N for a module that runs N members, or the members as a list")
    return common[0], fits[0][common[0]]  # [B, N, D] first: hydraplus' own convention


# --- the declared kind of output ------------------------------------------------------------------


def converted(out: Tensor, kind: str) -> Tensor:
    """``[B, N, D]`` of ``kind`` in hydraplus' convention (logits; mean and log-variance)."""
    if kind in ("logits", "log_variance"):
        return out
    if kind == "probabilities":
        return out.clamp_min(torch.finfo(torch.float32).tiny).log()
    if kind == "mean":
        return torch.cat([out, torch.full_like(out, MEAN_ONLY_LOG_VARIANCE)], -1)
    spread = out[..., 1:]
    if not torch.compiler.is_compiling() and bool((spread < 0).any()):
        member = int(spread.min(-1).values.min(0).values.argmin()) if out.dim() == 3 else 0
        low = spread.min().item()
        raise ValueError(f"the teacher's regression outputs hold a negative {kind} ({low:.4g}, "
                         f"member {member}); regression_output={kind!r} needs values >= 0: if they are "
                         "log-variances, pass regression_output='log_variance'")
    log = spread.clamp_min(torch.finfo(torch.float32).tiny).log()
    return torch.cat([out[..., :1], log if kind == "variance" else 2 * log], -1)


def _is_probabilities(out: Tensor) -> bool:
    return out.shape[-1] > 1 and bool((out >= 0).all()) and torch.allclose(
        out.sum(-1), torch.ones_like(out[..., 0]), atol=TOLERANCE)


class ReadTeacher(nn.Module):
    """A teacher's outputs in hydraplus' convention ``[B, N, D]`` (see the module doc). ``teacher``
    is the module as given (a `Members` picks its members' outputs itself); ``contract`` (a buffer)
    spells out how the outputs are read, so cached teacher outputs are keyed by it too."""

    def __init__(self, teacher: nn.Module, output: Selector, layout: str, members: int, outputs: int,
                 mean_only: bool):
        super().__init__()
        self.teacher, self.output, self.layout, self.members = teacher, output, layout, members
        self.outputs = outputs  # D as the teacher gives it (before a mean-only's log-variance)
        self.mean_only, self.said = mean_only, set[str]()
        self.register_buffer("contract", torch.zeros(0, dtype=torch.uint8))
        self.set_kind("logits")

    def set_kind(self, kind: str) -> None:
        """What the outputs are: ``"logits"``, ``"probabilities"`` or a `REGRESSION_OUTPUTS` kind."""
        self.kind = kind
        text = f"output={self.output!r} layout={self.layout} members={self.members} kind={kind}"
        self.contract = torch.tensor(list(text.encode()), dtype=torch.uint8, device=self.contract.device)

    def raw(self, x: Tensor) -> Tensor:
        """The teacher's outputs before conversion, ``[B, N, D]``."""
        out = self.teacher(x)
        if not _stacks(self.teacher):
            out = pick(out, self.output, "the teacher", self.said)
        return arrange(_with_value_dim(out) if self.mean_only else out, self.layout, self.members)

    def forward(self, x: Tensor) -> Tensor:
        return converted(self.raw(x), self.kind)


def _with_value_dim(out: Tensor) -> Tensor:
    """Mean-only outputs with a dimension of their one value: ``[X]`` and ``[B, N]`` end in ``1``."""
    return out.unsqueeze(-1) if out.dim() == 1 or (out.dim() == 2 and out.shape[-1] != 1) else out


def _stacks(teacher: nn.Module) -> bool:
    """Whether the teacher stacks its members' picked outputs itself (`Members`)."""
    return bool(getattr(teacher, "stacks", False))


def _probe(teacher: nn.Module, x: Tensor, output: Selector, batch: int, said: set[str]) -> Tensor:
    with torch.no_grad():
        out = teacher.eval()(x[:batch])
    return out if _stacks(teacher) else pick(out, output, "the teacher", said)


def read_teacher(teacher: nn.Module, x: Tensor, *, output: Selector = None, members: int | None = None,
                 regression_output: str | None = None) -> ReadTeacher:
    """``teacher`` (a module on ``x``'s device) read as ``[B, N, D]``: its layout found from its
    outputs on ``x``'s first inputs; what the outputs are is left to `read_kind` (logits until then)."""
    if members is not None and (isinstance(members, bool) or not isinstance(members, int) or members < 1):
        raise ValueError(f"members must be a positive whole number, got {members!r}")
    if regression_output is not None and regression_output not in REGRESSION_OUTPUTS:
        raise ValueError(f"regression_output must be one of {REGRESSION_OUTPUTS}, got {regression_output!r}")
    if type(teacher) is Members:  # modules whose forward ends in their last child's Softmax
        teacher.members = nn.ModuleList(logit_members(list(teacher.members), x[:2]))
    said: set[str] = set()
    outs = {b: _probe(teacher, x, output, b, said) for b in sorted({min(b, len(x)) for b in PROBE_BATCHES})}
    first = next(iter(outs.values()))
    stacked = _stacks(teacher)
    mean_only = regression_output == "mean" or (stacked and first.dim() == 2)
    if mean_only:
        outs = {b: _with_value_dim(out) for b, out in outs.items()}
        first = next(iter(outs.values()))
    if stacked:
        layout, n = "BND", first.shape[1]
        if members is not None and n != members:
            raise ValueError(f"members={members}, but the teacher is a list of {n} members")
    else:
        layout, n = find_layout({b: tuple(out.shape) for b, out in outs.items()}, members)
    if layout != "BND" and n > 1:
        note(f"the teacher's outputs are {LAYOUTS[layout]}: read as {n} members")
    read = ReadTeacher(teacher, output, layout, n, first.shape[-1], mean_only)
    read.said = said
    return read


def check_members(count: int) -> None:
    """Two or more members: what Hydra+ distils is where they disagree."""
    if count < 2:
        raise ValueError(f"the teacher has {count} member: a student here learns what two or more members "
                         "disagree on (their epistemic uncertainty), so one member has nothing to distil; "
                         "pass every member (a list of modules or files), or members=N for one module "
                         "running N")


def read_kind(read: ReadTeacher, x: Tensor, task: str, regression_output: str | None) -> None:
    """Set what ``read``'s outputs are, from the task and its outputs on ``x``'s first inputs; values
    impossible for a declared regression kind are refused here already."""
    with torch.no_grad():
        raw = read.eval().raw(x[:max(PROBE_BATCHES)])
    size = raw.shape[-1]
    if task == "classification":
        if _is_probabilities(raw):
            read.set_kind("probabilities")
            note("the teacher's outputs are probabilities (non-negative, each row sums to 1): their logs are "
                 "read as logits")
        return
    if regression_output is None:
        if size not in (1, 2):
            raise ValueError(f"a regression teacher gives per member (mean, log-variance) [B, N, 2] or a "
                             f"mean [B, N, 1], got D = {size}")
        regression_output = "log_variance" if size == 2 else "mean"
        note("the regression teacher's outputs are read as " + (
            "(mean, log-variance)" if size == 2 else "means only (aleatoric uncertainty zero)")
            + "; regression_output= ('log_variance', 'variance', 'std', 'mean') says what they are")
    want = 1 if regression_output == "mean" else 2
    if size != want:
        raise ValueError(f"regression_output={regression_output!r} needs {want} output(s) per member, the "
                         f"teacher gives {size}")
    read.set_kind(regression_output)
    converted(raw, regression_output)  # refuses impossible values now, before any file is written


# --- targets -------------------------------------------------------------------------------------


def check_not_strings(values: Any, name: str) -> None:
    """Refuse text labels with how to encode them."""
    array = np.asarray(values) if isinstance(values, list | tuple | np.ndarray) else None
    if array is None or array.size == 0:
        return
    first = array.flat[0]
    if array.dtype.kind in "USO" and isinstance(first, str | bytes | np.str_ | np.bytes_):
        raise ValueError(f"{name}: the targets are strings (e.g. {str(first)!r}); encode them as class "
                         "indices 0..C-1 first, e.g. classes, y = np.unique(y, return_inverse=True) (or "
                         "scikit-learn's LabelEncoder)")


def read_targets(y: Tensor, name: str, outputs: int, task: str | None = None) -> tuple[str, Tensor]:
    """``(task, targets)``: int64 class indices ``[N]`` or float32 values ``[N]``. Without ``task``,
    integers are class labels, and floats are too when all are whole numbers in ``[0, outputs)``
    (``outputs``: the teacher's, at least 2); other floats are regression targets."""
    said = []
    if y.dim() == 2 and y.shape[1] == 1:
        y = y[:, 0]
        said.append("[N, 1] flattened to [N]")
    elif y.dim() == 2 and task != "regression" and bool(((y == 0) | (y == 1)).all()) and bool(
            (y.sum(1) == 1).all()):
        said.append(f"one-hot [N, {y.shape[1]}] read as class indices")
        y = y.argmax(1)
    elif y.dim() != 1:
        raise ValueError(f"{name} targets have shape {list(y.shape)}: give one target per example, [N] class "
                         "indices (from one-hot or probabilities: y.argmax(1)) or [N] regression values")
    if y.dtype == torch.bool or not (y.is_floating_point() or y.is_complex()):
        if task == "regression":
            said.append(f"{y.dtype} values read as float32")
            y = y.float()
        else:
            task = "classification"
            if y.dtype != torch.int64:
                said.append(f"{str(y.dtype).removeprefix('torch.')} labels read as int64 class indices")
                y = y.long()
    else:
        whole = bool(torch.isfinite(y).all()) and bool((y == y.round()).all())
        if task is None:
            task = "classification" if whole and outputs >= 2 and y.min() >= 0 and y.max() < outputs else \
                "regression"
        if task == "classification":
            if not whole:
                raise ValueError(f"{name} targets must be whole-number class labels, found "
                                 f"{y[y != y.round()][0].item():g}")
            said.append(f"float labels {y.min().item():g}..{y.max().item():g} read as class indices (pass "
                        "regression_output= for a regression)")
            y = y.long()
        else:
            y = y.float()
    if said:
        note(f"{name} targets: {'; '.join(said)}")
    return task, y
