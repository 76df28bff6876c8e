"""Augmented training: members see their own views, students a teacher run on the augmented batch."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import torch

from hydraplus.core.containers import Ensemble, MultiHeadStudent
from hydraplus.core.losses import LossWeights
from hydraplus.core.schedules import LambdaSchedule
from hydraplus.data.augment import Augmentation
from hydraplus.data.images import RawImages, make_image_problem
from hydraplus.data.toy import make_spiral
from hydraplus.engine.checkpoint import AtomicCheckpoint
from hydraplus.engine.data import SeededAugment
from hydraplus.engine.modules import EnsembleModule, StudentModule
from hydraplus.experiments.presets import resolve_student
from hydraplus.experiments.runner import run_experiment, seeded_augment
from hydraplus.models import (
    lenet_core,
    lenet_head,
    lenet_member,
    resnet_core,
    resnet_head,
    resnet_member,
)

AUG = SeededAugment(Augmentation(crop_padding=2, flip=True), seed=7, fill=(-1.0, -2.0, -3.0))


def members(n: int = 3) -> list[torch.nn.Module]:
    return [lenet_member(num_classes=3, widths=(4, 6), hidden=8) for _ in range(n)]


# name: (member, core, head) with tiny widths: the paper's SVHN LeNet and CIFAR-10 ResNet layouts
ARCHS = {
    "lenet": (lambda: lenet_member(num_classes=3, widths=(4, 6), hidden=8),
              lambda: lenet_core(widths=(4, 2)), lambda: lenet_head(32, 8, 3)),
    "resnet": (lambda: resnet_member(num_classes=3, widths=(4, 4, 6, 6), blocks=1),
               lambda: resnet_core(widths=(4, 6), strides=(1, 2), blocks=1),
               lambda: resnet_head(in_channels=6, width=5, num_classes=3, stride=2, blocks=2)),
}


@pytest.mark.parametrize("arch", list(ARCHS))
def test_student_learns_from_the_teacher_run_on_the_augmented_batch(arch: str) -> None:
    member, core, head = ARCHS[arch]
    x, y = torch.randn(6, 3, 16, 16), torch.randint(0, 3, (6,))
    teacher_members = [member() for _ in range(3)]
    teacher = Ensemble(teacher_members, batched=True)
    student = MultiHeadStudent(core(), [head() for _ in range(4)], batched=True)
    module = StudentModule(copy.deepcopy(student), "hydra", "classification",
                           LossWeights(0.9, 0.5, 1.0, 3.0), LambdaSchedule(0.5), 0.01, 1e-4, 1,
                           teacher=teacher, augment=AUG)
    module.on_fit_start()  # as Lightning does: the teacher to the device, in eval mode
    loss = module.training_step((x, y), batch_idx=4)
    # naive: augment by hand, run each member alone, the cached-outputs loss on those
    seen = AUG(x, 0, 4)
    assert not torch.equal(seen, x)
    naive_teacher = Ensemble(teacher_members, batched=False).eval()
    with torch.no_grad():
        outputs = naive_teacher(seen)
    reference = StudentModule(copy.deepcopy(student), "hydra", "classification",
                              LossWeights(0.9, 0.5, 1.0, 3.0), LambdaSchedule(0.5), 0.01, 1e-4, 1)
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
    with pytest.raises(ValueError, match="augmented distillation needs the teacher module"):
        StudentModule(student, "hydra", "classification", LossWeights(), LambdaSchedule(0.0),
                      0.01, 0.0, 1, augment=AUG)


def image_config() -> dict[str, Any]:
    return {
        "name": "tiny-augmented", "task": "classification",
        "data": {"name": "npz", "path": "unused.npz"},
        "arch": {"name": "lenet",
                 "member": {"num_classes": 10, "in_channels": 3, "widths": [4, 4], "hidden": 8},
                 "core": {"in_channels": 3, "widths": [4, 4]},
                 "head": {"in_features": 64, "hidden": 8, "num_classes": 10}},
        "ensemble": {"members": 2, "epochs": 2, "lr": 0.002, "weight_decay": 1e-4, "batch_size": 32,
                     "augment": True},
        "student": {"epochs": 2, "lr": 0.002, "weight_decay": 1e-7, "batch_size": 32,
                    "lambda": {"2": {"value": 0.1}}, "augment": {"crop_padding": 2}},
        "students": [{"method": "hydra+", "heads": 2}, {"method": "drop", "augment": False}],
    }


def tiny_problem() -> Any:
    g = torch.Generator().manual_seed(0)
    raw = RawImages(torch.randint(0, 256, (90, 3, 32, 32), generator=g, dtype=torch.uint8),
                    torch.randint(0, 10, (90,), generator=g))
    return make_image_problem("tiny", raw, seed=0)


def test_augmented_runs_are_repeatable_and_cache_only_for_unaugmented_students(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("hydraplus.experiments.runner.load_problem", lambda *a, **k: tiny_problem())
    weights = []
    for run in ("a", "b"):
        _, models = run_experiment(image_config(), tmp_path / run, seed=3, progress=False)
        weights.append({name: model.state_dict() for name, model in models.all().items()})
    for name, state in weights[0].items():
        for key, value in state.items():
            torch.testing.assert_close(weights[1][name][key], value, rtol=0, atol=0)
    assert list((tmp_path / "a" / "cache").glob("teacher-*.npy"))  # drop is not augmented
    config = image_config()
    config["students"] = [{"method": "hydra+", "heads": 2}]
    run_experiment(config, tmp_path / "c", seed=3, progress=False)
    assert not (tmp_path / "c" / "cache").exists()


def test_augmentation_changes_training() -> None:
    problem = tiny_problem()
    spec = resolve_student(image_config(), {"method": "hydra+", "heads": 2})
    assert spec.augment == Augmentation(2, True)
    assert resolve_student(image_config(), {"method": "drop", "augment": False}).augment is None
    aug = seeded_augment(spec.augment, problem, seed=0)
    assert aug is not None and aug.fill == problem.normalization.black()
    torch.testing.assert_close(problem.normalize(torch.zeros(1, 3, 1, 1, dtype=torch.uint8)).view(3),
                               torch.tensor(aug.fill, dtype=torch.float32))


def test_augmentation_on_toy_data_and_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="augment applies to image data only; spiral"):
        seeded_augment(Augmentation(), make_spiral(0), seed=0)
    config = image_config()
    with pytest.raises(ValueError, match="hydra\\+: setting 'augment': unknown keys \\['size'\\]"):
        resolve_student(config, {"method": "hydra+", "heads": 2, "augment": {"size": 3}})


def test_an_interrupted_augmented_run_resumes_exactly(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("hydraplus.experiments.runner.load_problem", lambda *a, **k: tiny_problem())
    config = image_config()
    config["ensemble"]["epochs"] = config["student"]["epochs"] = 3
    config["students"] = [{"method": "hydra+", "heads": 2}]
    _, reference = run_experiment(config, tmp_path / "reference", seed=3, progress=False)

    start = AtomicCheckpoint.on_train_epoch_start

    def interrupt(self: AtomicCheckpoint, trainer: Any, module: Any) -> None:
        start(self, trainer, module)  # publishes the checkpoint of epoch 2
        if self.path.parent.name == "hydra+-2" and trainer.current_epoch == 2:
            raise RuntimeError("interrupted")

    with monkeypatch.context() as patch:
        patch.setattr(AtomicCheckpoint, "on_train_epoch_start", interrupt)
        with pytest.raises(RuntimeError, match="interrupted"):
            run_experiment(config, tmp_path / "run", seed=3, progress=False)
    assert torch.load(tmp_path / "run" / "hydra+-2" / "last.ckpt", weights_only=True)["epoch"] == 1
    _, resumed = run_experiment(config, tmp_path / "run", seed=3, progress=False, resume=True)
    expected = reference.students["hydra+-2"].state_dict()
    for key, value in resumed.students["hydra+-2"].state_dict().items():
        torch.testing.assert_close(value, expected[key], rtol=0, atol=0)
