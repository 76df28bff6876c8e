"""What every student method provides, and the registry of methods by name."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

from torch import Tensor, nn

from hydraplus.core.losses import combine, distillation_terms, l2_penalty
from hydraplus.core.precision import full_precision
from hydraplus.spec import StudentDefaults, StudentSpec, register_namer

HeadFactory = Callable[[], nn.Module]
M = TypeVar("M", bound="StudentMethod | type[StudentMethod]")


class StudentMethod(ABC):
    """A distillation method: defaults, student, loss and export view.

    Subclasses set ``name`` (and ``multi_head`` / ``uses_lambda`` where they apply) and
    implement `build`; the loss defaults to L1-L3 plus weight decay, combined by `combine`.
    """

    name: ClassVar[str]
    multi_head: ClassVar[bool] = False  # M heads (``heads`` setting) rather than one head
    uses_lambda: ClassVar[bool] = False  # has the diversity term L4 (a lambda per M)
    tasks: ClassVar[tuple[str, ...]] = ("classification", "regression")
    student_type: ClassVar[type[nn.Module]] = nn.Module  # what `build` returns
    listed: ClassVar[float] = math.inf  # place in listings: the paper's order, then registration order

    def defaults(self, shared: StudentDefaults, members: int) -> dict[str, Any]:
        """Settings this method fixes on top of the shared student settings (an entry may override)."""
        return {}

    def check_task(self, task: str) -> None:
        if task not in self.tasks:
            raise ValueError(f"{self.name} supports {' and '.join(self.tasks)} only, not {task}")

    def student_name(self, spec: StudentSpec) -> str:
        """The student's name in results and run folders."""
        return f"{self.name}-{spec.heads}" if self.multi_head else self.name

    @abstractmethod
    def build(self, core: nn.Module, head: HeadFactory, spec: StudentSpec,
              batched: bool | None = None) -> nn.Module:
        """The student, from a fresh core and a factory of fresh heads."""

    def check_student(self, student: nn.Module) -> None:
        """Refuse a student this method cannot train (a clear TypeError)."""
        if not isinstance(student, self.student_type):
            raise TypeError(f"method {self.name!r} needs a {self.student_type.__name__}, "
                            f"got {type(student).__name__}")

    def loss_terms(self, student: nn.Module, x: Tensor, y: Tensor, teacher: Tensor, task: str,
                   spec: StudentSpec, lam: float) -> dict[str, Tensor]:
        """Every unweighted loss term of one batch (``weight_decay`` included), in float32 whatever
        precision the forward pass ran in."""
        out = student(x)
        with full_precision():
            terms = distillation_terms(task, teacher.float(), out.float(), y, spec.weights)
            terms["weight_decay"] = l2_penalty(self.decay_params(student))
        return terms

    def total(self, terms: dict[str, Tensor], spec: StudentSpec, lam: float) -> Tensor:
        """The weighted sum of the terms that is minimised."""
        return combine(terms, spec.weights, lam, spec.weight_decay, spec.kl_coeff)

    def decay_params(self, student: nn.Module) -> list[Tensor]:
        """The parameters under the explicit L2 weight decay."""
        return list(student.parameters())

    def export_view(self, student: nn.Module, task: str) -> tuple[nn.Module, str]:
        """The module to export and what its output means."""
        if task == "classification":
            return student, ("[batch, K, classes] log-probabilities or logits of the K heads or samples; "
                             "predictive probabilities = softmax over classes, averaged over K")
        return student, "[batch, K, 2]: mean and log-variance of the K heads or samples"

    def from_export_view(self, view: nn.Module, spec: StudentSpec) -> nn.Module:
        """A student for prediction from its `export_view` loaded back (e.g. a torch.export program):
        the view itself, unless the method exports a part of the student."""
        return view


_REGISTRY: dict[str, StudentMethod] = {}


def register(method: M) -> M:
    """Make a method available by its name (configs, CLI, `hydraplus.distil`): a class decorator
    (``@register`` above a `StudentMethod` subclass registers one instance of it) or a call on an
    instance."""
    instance = method() if isinstance(method, type) else method
    if instance.name in _REGISTRY:
        raise ValueError(f"a method named {instance.name!r} is already registered")
    _REGISTRY[instance.name] = instance
    register_namer(instance.name, instance.student_name)
    return method


def method_names() -> tuple[str, ...]:
    """The registered methods, the paper's first (sorted by ``listed``; ties by registration)."""
    return tuple(sorted(_REGISTRY, key=lambda name: _REGISTRY[name].listed))


def get_method(name: Any) -> StudentMethod:
    """The registered method ``name``; a clear error naming the choices otherwise."""
    if isinstance(name, StudentMethod):
        return name
    if name not in _REGISTRY:
        raise ValueError(f"unknown method {name!r}; choose one of {method_names()}")
    return _REGISTRY[name]
