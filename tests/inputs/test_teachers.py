"""`hydraplus.distil`'s inputs: teachers from .pt2 and TorchScript files, image-folder data, their
errors, and `Distilled.evaluate`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import Tensor, nn

import hydraplus
from _dummies import TinyCNN, blob_images
from hydraplus.inputs.arrays import as_tensors
from hydraplus.models.zoo import fresh_copy
from hydraplus.pipeline.distil import as_teacher, split_member


def save_program(module: nn.Module, example: Tensor, path: Path) -> Path:
    torch.export.save(torch.export.export(module.eval(), (example,)), path)
    return path


def save_script(module: nn.Module, path: Path) -> Path:
    with pytest.warns(FutureWarning):  # torch.jit.script is deprecated, still supported
        torch.jit.script(module.eval()).save(str(path))
    return path


def outputs(teacher: nn.Module, x: Tensor) -> Tensor:
    with torch.no_grad():
        return teacher.eval()(x)


def test_program_members_of_a_fixed_batch_size_run_on_any_batch(tmp_path: Path) -> None:
    x, _ = blob_images(7)
    members = [TinyCNN().eval() for _ in range(3)]
    paths = [save_program(m, x[:4], tmp_path / f"{i}.pt2") for i, m in enumerate(members)]
    got = outputs(as_teacher(paths), x)  # 7 inputs: a chunk of 4 and a padded one
    torch.testing.assert_close(got, torch.stack([outputs(m, x) for m in members], 1))


class Stacked(nn.Module):
    def __init__(self, members: list[nn.Module]):
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, x: Tensor) -> Tensor:
        return torch.stack([m(x) for m in self.members], 1)


def test_one_file_may_hold_every_member(tmp_path: Path) -> None:
    x, _ = blob_images(6)
    members = [TinyCNN().eval() for _ in range(3)]
    batch = torch.export.Dim("batch", min=1, max=1024)
    program = torch.export.export(Stacked(members).eval(), (x[:2],), dynamic_shapes=({0: batch},))
    torch.export.save(program, tmp_path / "ensemble.pt2")
    got = outputs(as_teacher(str(tmp_path / "ensemble.pt2")), x)
    assert got.shape == (6, 3, 3)
    torch.testing.assert_close(got, torch.stack([outputs(m, x) for m in members], 1))


def test_torchscript_members_teach_a_given_student(tmp_path: Path) -> None:
    x, y = blob_images(64)
    members = [TinyCNN().eval() for _ in range(2)]
    paths = [save_script(m, tmp_path / f"{i}.ts") for i, m in enumerate(members)]
    expected = torch.stack([outputs(m, x) for m in members], 1)
    torch.testing.assert_close(outputs(as_teacher(paths), x), expected)
    student = (TinyCNN().features, lambda: nn.Sequential(nn.Linear(24, 16), nn.GELU(), nn.Linear(16, 3)))
    result = hydraplus.distil(paths, (x, y), method="hydra", epochs=1, batch_size=32, student=student)
    assert result.model.num_heads == 2 and result.predict(x)["probs"].shape == (64, 3)


def test_program_members_give_a_hydra_plus_student_cut_from_the_first(tmp_path: Path) -> None:
    x, y = blob_images(64)
    batch = torch.export.Dim("batch", min=1, max=1024)
    paths = []
    for i in range(2):
        program = torch.export.export(TinyCNN().eval(), (x[:2],), dynamic_shapes=({0: batch},))
        torch.export.save(program, tmp_path / f"{i}.pt2")
        paths.append(tmp_path / f"{i}.pt2")
    teacher = as_teacher(paths)
    assert isinstance(teacher.members[0].classifier, nn.Linear)  # typed layers, taken from the program
    assert isinstance(getattr(teacher.members[0].features, "0"), nn.Conv2d)
    result = hydraplus.distil(paths, (x, y), lam=0.05, epochs=1, batch_size=32)
    assert result.spec.name == "hydra+-2" and result.predict(x)["probs"].shape == (64, 3)
    assert result.model.head_weight_rows()[-1].shape == (2, 3, 17)  # the rows Hydra+ diversifies
    _, head = split_member(teacher.members[0], None, x)
    assert not torch.equal(fresh_copy(head)[0].weight, teacher.members[0].classifier.weight)  # new heads


def test_teacher_file_errors_are_one_clear_line(tmp_path: Path) -> None:
    x, _ = blob_images(4)
    (tmp_path / "bad.pt2").write_bytes(b"not a program")
    with pytest.raises(ValueError, match=r"^cannot load teacher .*bad\.pt2: not a torch\.export program"):
        as_teacher([tmp_path / "bad.pt2"])
    torch.save(TinyCNN().state_dict(), tmp_path / "weights.pt")
    with pytest.raises(ValueError, match=r"cannot load teacher .*weights\.pt: not a TorchScript file "
                                         r".*a state dict needs its architecture"):
        as_teacher([tmp_path / "weights.pt"])
    with pytest.raises(FileNotFoundError, match=r"teacher file not found: .*missing\.pt2"):
        as_teacher(tmp_path / "missing.pt2")

    dynamic = torch.export.Dim("batch", min=1, max=1024)
    program = torch.export.export(TinyCNN().eval(), (x[:2],), dynamic_shapes=({0: dynamic},))
    torch.export.save(program, tmp_path / "gray.pt2")
    with pytest.raises(ValueError, match=r"teacher .*gray\.pt2 takes inputs of shape \[batch, 1, 8, 8\], "
                                         r"got \[4, 3, 8, 8\]"):
        outputs(as_teacher([tmp_path / "gray.pt2"]), x.expand(4, 3, 8, 8))
    save_program(TinyCNN(classes=4), x[:2], tmp_path / "four.pt2")
    with pytest.raises(ValueError, match=r"teacher files must give outputs of one size, got .*gray\.pt2: 3, "
                                         r".*four\.pt2: 4"):
        outputs(as_teacher([tmp_path / "gray.pt2", tmp_path / "four.pt2"]), x)

    teacher = as_teacher([tmp_path / "gray.pt2"]).to("meta")  # a device other than the data's
    with pytest.raises(ValueError, match=r"teacher .*gray\.pt2 is on meta but the data is on cpu"):
        outputs(teacher, x)
    save_script(TinyCNN(), tmp_path / "a.ts")
    with pytest.raises(ValueError, match=r"teacher .*a\.ts failed on inputs of shape \[4, 3, 8, 8\]: "
                                         r".*expected input\[4, 3, 8, 8\] to have 1 channels"):
        outputs(as_teacher([tmp_path / "a.ts"]), x.expand(4, 3, 8, 8))


def write_pngs(folder: Path, sizes: dict[str, list[tuple[int, int]]], seed: int = 0) -> np.ndarray:
    """One sub-folder per class with RGB PNGs of the given (height, width); the pixels, in file order."""
    rng = np.random.default_rng(seed)
    pixels = []
    for label, shapes in sizes.items():
        (folder / label).mkdir(parents=True)
        for i, (h, w) in enumerate(shapes):
            image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
            Image.fromarray(image).save(folder / label / f"{i}.png")
            pixels.append(image)
    return np.stack(pixels) if len({p.shape for p in pixels}) == 1 else np.empty(0)


def test_an_image_folder_is_float_nchw_in_0_1(tmp_path: Path) -> None:
    pixels = write_pngs(tmp_path / "train", {"cat": [(8, 6)] * 2, "dog": [(8, 6)] * 3})
    x, y = as_tensors(tmp_path / "train", "train")
    assert x.shape == (5, 3, 8, 6) and x.dtype == torch.float32 and y.tolist() == [0, 0, 1, 1, 1]
    torch.testing.assert_close(x, torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 255)


def test_data_errors_are_one_clear_line(tmp_path: Path) -> None:
    write_pngs(tmp_path / "mixed", {"cat": [(8, 8)], "dog": [(10, 8)]})
    with pytest.raises(ValueError, match=r"train: the images in .*mixed must all have one size, but "
                                         r"cat/0\.png is \[3, 8, 8\] and dog/0\.png is \[3, 10, 8\]"):
        as_tensors(tmp_path / "mixed", "train")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"train: .*empty is not an image folder \(one sub-folder of images "
                                         r"per class\)"):
        as_tensors(tmp_path / "empty", "train")
    with pytest.raises(ValueError, match=r"^train: 4 inputs but 3 targets; they must match$"):
        as_tensors((torch.zeros(4, 2), torch.zeros(3)), "train")
    with pytest.raises(ValueError, match=r"^test: the data is empty \(inputs of shape \[0, 2\]\)$"):
        as_tensors((np.zeros((0, 2)), np.zeros(0)), "test")
    np.savez(tmp_path / "uneven.npz", x_train=np.zeros((5, 2), np.float32), y_train=np.zeros(4, np.int64))
    with pytest.raises(ValueError, match="train: 5 inputs but 4 targets"):
        as_tensors(tmp_path / "uneven.npz", "train")


def test_evaluate_puts_the_teacher_beside_the_student(tmp_path: Path) -> None:
    write_pngs(tmp_path / "train", {"a": [(8, 8)] * 8, "b": [(8, 8)] * 8, "c": [(8, 8)] * 8})
    members = [TinyCNN(channels=3) for _ in range(2)]
    result = hydraplus.distil(members, tmp_path / "train", method="hydra", epochs=1, batch_size=8)
    metrics = result.evaluate(tmp_path / "train", ood=torch.rand(10, 3, 8, 8), out=tmp_path / "eval",
                              latency_batches=(2,), record={"note": "test"})
    teacher, student = metrics["models"]["teacher"], metrics["models"]["student"]
    keys = {"error", "ece", "ece_15", "ece_adaptive", "nll", "brier", "predictive_entropy",
            "aleatoric_entropy", "epistemic_entropy", "aurc", "augrc", "risk_80", "risk_95"}
    assert set(teacher["clean"]) == keys == set(student["clean"])
    measures = ("msp", "predictive", "epistemic", "energy", "maxlogit")  # the student gives logits
    assert set(student["ood"]) == {f"{m}_{s}" for m in measures for s in ("auroc", "aupr", "fpr95")}
    assert all(0.0 <= v <= 1.0 for v in student["tv"].values()) and "tv" not in teacher
    assert teacher["members"] == 2 and set(student["profile"]) >= {"params", "flops", "latency_b2_s"}
    assert metrics["test_size"] == 24 and metrics["ood_size"] == 10 and metrics["record"] == {"note": "test"}
    report = (tmp_path / "eval" / "report.md").read_text()
    assert "| teacher (2 members) |" in report and "| student hydra-2 |" in report
    assert (tmp_path / "eval" / "evaluation.json").is_file()


def test_evaluate_a_regression_student() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(96, 1, generator=g) * 4 - 2
    y = torch.sin(x[:, 0])
    members = [nn.Sequential(nn.Linear(1, 8), nn.ReLU(), nn.Linear(8, 2)) for _ in range(3)]
    result = hydraplus.distil(members, (x, y), method="hydra", epochs=1, split=2)
    metrics = result.evaluate((x, y), ood=x + 10, latency_batches=(1,))
    student = metrics["models"]["student"]
    assert {"rmse", "nll"} <= set(student["clean"]) and "epistemic_auroc" in student["ood"]
    assert set(student["tv"]) == {"predictive", "aleatoric", "epistemic"}
