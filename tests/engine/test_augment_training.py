"""Augmented training: members see their own views, students a teacher run on the augmented batch.

(Augmented runs of the runner: tests/integration/test_augmented_runs.py.)
"""

from __future__ import annotations

import copy

import pytest
import torch

from _dummies import ARCHS
from hydraplus.config import StudentSpec
from hydraplus.core.augment import Augmentation
from hydraplus.core.containers import Ensemble, MultiHeadStudent
from hydraplus.core.schedules import LambdaSchedule
from hydraplus.engine.data import SeededAugment, SeededMixup
from hydraplus.engine.modules import DistillModule, EnsembleModule
from hydraplus.models import lenet_core, lenet_head, lenet_member

AUG = SeededAugment(Augmentation(crop_padding=2, flip=True), seed=7, fill=(-1.0, -2.0, -3.0))
# Hydra+ with every term on: alpha, beta in (0, 1), lambda > 0, weight decay
HYDRA_PLUS = StudentSpec("hydra+", heads=4, alpha=0.9, beta=0.5, t_mean=1.0, t_ind=3.0,
                         lam=LambdaSchedule(0.5), lr=0.01, weight_decay=1e-4, epochs=1)


def members(n: int = 3) -> list[torch.nn.Module]:
    return [lenet_member(num_classes=3, widths=(4, 6), hidden=8) for _ in range(n)]


@pytest.mark.parametrize("arch", ["lenet", "resnet"])
def test_student_learns_from_the_teacher_run_on_the_augmented_batch(arch: str) -> None:
    member, core, head, *_ = ARCHS[arch]
    x, y = torch.randn(6, 3, 16, 16), torch.randint(0, 3, (6,))
    teacher_members = [member() for _ in range(3)]
    teacher = Ensemble(teacher_members, batched=True)
    student = MultiHeadStudent(core(), [head() for _ in range(4)], batched=True)
    module = DistillModule(copy.deepcopy(student), "hydra+", "classification", HYDRA_PLUS,
                           teacher=teacher, augment=AUG)
    module.on_fit_start()  # as Lightning does: the teacher to the device, in eval mode
    loss = module.training_step((x, y), batch_idx=4)
    # naive: augment by hand, run each member alone, the cached-outputs loss on those
    seen = AUG(x, 0, 4)
    assert not torch.equal(seen, x)
    naive_teacher = Ensemble(teacher_members, batched=False).eval()
    with torch.no_grad():
        outputs = naive_teacher(seen)
    reference = DistillModule(copy.deepcopy(student), "hydra+", "classification", HYDRA_PLUS)
    expected, _ = reference.loss_terms(seen, y, outputs)
    torch.testing.assert_close(loss, expected, rtol=0, atol=1e-5)
    assert "teacher" not in dict(module.named_children())  # not trained, not checkpointed
    assert all(not name.startswith("teacher") for name in module.state_dict())


def test_each_member_gets_its_own_view_of_its_own_images() -> None:
    module = EnsembleModule(Ensemble(members(), batched=False), "classification", 0.01, 1e-4, 1,
                            augment=AUG)
    x = torch.randn(4, 1, 3, 16, 16).expand(4, 3, 3, 16, 16)  # all members given the same images
    seen = module._augmented(x, batch_idx=0)
    assert seen.shape == x.shape
    assert not torch.equal(seen[:, 0], seen[:, 1]) and not torch.equal(seen[:, 1], seen[:, 2])
    torch.testing.assert_close(seen, AUG(x.reshape(12, 3, 16, 16), 0, 0).view_as(x))


def test_augmented_distillation_needs_the_teacher() -> None:
    student = MultiHeadStudent(lenet_core(widths=(4, 2)), [lenet_head(32, 8, 3)])
    spec = StudentSpec("hydra", heads=1, alpha=0.9, beta=1.0, lr=0.01, weight_decay=0.0, epochs=1)
    with pytest.raises(ValueError, match="augmented distillation needs the teacher module"):
        DistillModule(student, "hydra", "classification", spec, augment=AUG)
    with pytest.raises(ValueError, match="augmented distillation needs the teacher module"):
        DistillModule(student, "hydra", "classification", spec, mixup=SeededMixup(0.2, 0, 3))
