"""``hydraplus distil``: a user's own CNN ensemble, saved as .pt2 programs, distilled and evaluated."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

import hydraplus
from _dummies import TinyCNN, blob_images, train_members
from hydraplus.cli import main
from hydraplus.core.predict import predict
from hydraplus.core.spread import SPREAD_RANGE, SpreadScaled, fit_spread_scale
from hydraplus.evaluation.held_out import teacher_student_view


def uint8_images(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Blob images as a user's .npz holds them: uint8 ``[N, H, W, C]`` and int64 labels."""
    x, y = blob_images(n, seed)
    pixels = ((x + 1.0) / 3.0 * 255).clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1)
    return pixels.numpy(), y.numpy()


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """data.npz (train and test splits), ood.npz, three trained members as a.pt2, b.pt2, c.pt2
    (dynamic batch size), the first also as static.pt2 (exported for batches of 2) and a.ts."""
    folder = tmp_path_factory.mktemp("distil-cli")
    x_train, y_train = uint8_images(180, 0)
    x_test, y_test = uint8_images(60, 1)
    np.savez(folder / "data.npz", x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    np.savez(folder / "ood.npz", x_test=np.random.default_rng(0).integers(0, 256, (30, 8, 8, 1), np.uint8))
    x = torch.from_numpy(x_train).permute(0, 3, 1, 2).float() / 255
    torch.manual_seed(0)
    members = train_members([TinyCNN() for _ in range(3)], x, torch.from_numpy(y_train), steps=40)
    batch = torch.export.Dim("batch", min=1, max=4096)
    for name, member in zip("abc", members, strict=True):
        program = torch.export.export(member, (x[:2],), dynamic_shapes=({0: batch},))
        torch.export.save(program, folder / f"{name}.pt2")
    torch.export.save(torch.export.export(members[0], (x[:2],)), folder / "static.pt2")
    with pytest.warns(FutureWarning):  # torch.jit.script is deprecated, still supported
        torch.jit.script(members[0]).save(str(folder / "a.ts"))
    (folder / "bad.pt2").write_bytes(b"truncated")
    return folder


def test_distil_writes_the_student_and_a_report(files: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    teachers = [str(files / f"{name}.pt2") for name in "abc"]
    code = main(["distil", "--teacher", *teachers, "--data", str(files / "data.npz"), "--method", "hydra",
                 "--epochs", "2", "--ood", str(files / "ood.npz"), "--latency-batches", "1",
                 "--out", str(out), "--quiet"])
    assert code == 0
    assert capsys.readouterr().out.strip() == str(out / "report.md")
    assert (out / "hydra-3" / "model.pt").is_file() and (out / "hydra-3" / "last.ckpt").is_file()
    metrics = teacher_student_view(json.loads((out / "evaluation.json").read_text()))
    teacher, student = metrics["models"]["teacher"], metrics["models"]["student"]
    assert teacher["members"] == 3 and student["name"] == "hydra-3" and metrics["test_size"] == 60
    assert teacher["clean"]["error"] < 0.2 and set(student["ood"]) >= {"epistemic_auroc"}
    assert metrics["record"]["teacher"] == teachers and metrics["record"]["normalization"] is None
    report = (out / "report.md").read_text()
    assert "| teacher (3 members) |" in report and "| student hydra-3 |" in report
    assert "| member (mean ± std of 3) |" in report and "by validation error" in report
    stopped = student["early_stopping"]  # on by default: 10% of data.npz held out
    assert (stopped["patience"], stopped["max_epochs"]) == (5, 2)
    assert "on the 18 validation inputs" in stopped["monitor"]
    assert metrics["members"]["selected_by"] == "validation error (the early-stopping split; ties: NLL)"

    assert main(["distil", "--teacher", *teachers, "--data", str(files / "data.npz"), "--out", str(out),
                 "--method", "hydra"]) == 1
    assert "already holds a run; pass --resume" in capsys.readouterr().err


def test_hydra_plus_and_a_card_beside_a_program_that_normalises_the_inputs(files: Path,
                                                                           tmp_path: Path) -> None:
    card = {"model": "a", "normalization": {"mean": [0.5], "std": [0.25], "image_shape": [1, 8, 8]}}
    folder = tmp_path / "teacher"
    folder.mkdir()
    own = {"mean": [0.4], "std": [0.3]}  # b's card differs: b sees its own card's inputs
    for name, norm in (("a", card["normalization"]), ("b", own)):
        (folder / f"{name}.pt2").write_bytes((files / f"{name}.pt2").read_bytes())
        (folder / f"{name}.json").write_text(json.dumps({**card, "model": name, "normalization": norm}))
    out = tmp_path / "out"
    assert main(["distil", "--teacher", str(folder / "a.pt2"), str(folder / "b.pt2"), "--data",
                 str(files / "data.npz"), "--lam", "0.05", "--epochs", "1", "--latency-batches", "1",
                 "--out", str(out), "--quiet", "--patience", "none"]) == 0
    metrics = teacher_student_view(json.loads((out / "evaluation.json").read_text()))
    assert metrics["models"]["student"]["spec"]["lam"]["value"] == 0.05
    assert "early_stopping" not in metrics["models"]["student"]
    assert metrics["members"]["selected_by"] == "test error (no validation split; ties: NLL)"
    record = metrics["record"]
    assert record["normalization"] == {"mean": [0.5], "std": [0.25],
                                       "source": f"{folder / 'a.json'}, {folder / 'b.json'}",
                                       "files": [{"mean": [0.5], "std": [0.25]}, own]}
    assert "(x - mean) / std" in record["inputs"]


@pytest.mark.parametrize(("teacher", "extra", "message"), [
    (["bad.pt2"], [], r"cannot load teacher .*bad\.pt2: not a torch\.export program"),
    (["static.pt2", "b.pt2"], [], r"cannot cut the student from .*static\.pt2: it was exported for batches "
                                  r"of exactly 2 inputs"),
    (["a.ts"], [], r"cannot cut the student from .*a\.ts: a TorchScript module does not copy"),
    (["a.pt2"], ["--input-mean", "0.5"], "--input-mean and --input-std go together"),
    (["a.pt2"], ["--lam", "lots"], "--lam must be a number or auto, got 'lots'"),
    (["a.pt2"], ["--patience", "0"], "--patience must be a positive integer or none, got '0'"),
    (["a.pt2"], ["--patience", "never"], "--patience must be a positive integer or none, got 'never'"),
    (["a.pt2", "b.pt2"], ["--method", "endd", "--spread-data", "ood.npz"],
     "--spread-data: method 'endd' has no heads to spread"),
    (["a.pt2", "b.pt2"], ["--spread-data", "data.npz.missing"], "data.npz.missing"),
])
def test_errors_are_one_line(files: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                             teacher: list[str], extra: list[str], message: str) -> None:
    code = main(["distil", "--teacher", *(str(files / t) for t in teacher), "--data", str(files / "data.npz"),
                 "--out", str(tmp_path / "out"), "--method", "hydra", *extra])
    err = capsys.readouterr().err
    assert code == 1 and len(err.strip().splitlines()) == 1, err
    assert err.startswith("hydraplus: error: ")
    assert re.search(message, err), err
    assert not (tmp_path / "out").exists()  # nothing is written before the inputs check out


def test_spread_data_scales_the_student_and_the_run_keeps_it(files: Path, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    pixels = uint8_images(50, 7)[0]
    np.savez(tmp_path / "spread.npz", x_test=pixels)
    np.savez(tmp_path / "small.npz", x_test=pixels[:, :6, :6])
    out = tmp_path / "out"
    base = ["distil", "--teacher", *(str(files / f"{name}.pt2") for name in "abc"), "--data",
            str(files / "data.npz"), "--lam", "0", "--epochs", "2", "--latency-batches", "1",
            "--out", str(out)]
    assert main([*base, "--spread-data", str(tmp_path / "small.npz")]) == 1
    assert "spread data inputs" in capsys.readouterr().err and not out.exists()
    assert main([*base, "--spread-data", str(tmp_path / "spread.npz"), "--quiet"]) == 0
    meta = json.loads((out / "config.json").read_text())
    scale = meta["spread_scale"]
    assert SPREAD_RANGE[0] < scale < SPREAD_RANGE[1]
    assert meta["spread_data"].endswith("spread.npz (50 inputs)")
    line = f"{scale:.4g}: the heads' spread fitted on {tmp_path / 'spread.npz'} (50 inputs)"
    assert json.loads((out / "evaluation.json").read_text())["record"]["spread scale"] == line
    assert line in (out / "report.md").read_text()
    result = hydraplus.load_distilled(out)  # the run's student is the spread-scaled one
    assert isinstance(result.model, SpreadScaled) and result.spread_scale == scale
    x = torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 255
    refit = fit_spread_scale(predict(result.model.student, x), predict(result.teacher, x), "classification")
    assert refit == pytest.approx(scale, rel=1e-4)
    assert main(["evaluate", str(out), "--data", str(files / "data.npz"), "--latency-batches", "1",
                 "--quiet"]) == 0
    assert json.loads((out / "evaluation.json").read_text())["record"]["spread scale"] == line
    assert main(["export", str(out), "--out", str(tmp_path / "export"), "--quiet"]) == 0
    card = json.loads((tmp_path / "export" / f"{result.spec.name}.json").read_text())
    assert card["spread_scale"] == scale


def test_data_without_a_test_split_needs_val(files: Path, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    x, y = uint8_images(20, 2)
    np.savez(tmp_path / "train.npz", x_train=x, y_train=y)
    code = main(["distil", "--teacher", str(files / "a.pt2"), "--data", str(tmp_path / "train.npz"),
                 "--out", str(tmp_path / "out"), "--method", "hydra"])
    assert code == 1
    assert "has no x_test/y_test; pass --val FILE" in capsys.readouterr().err


def test_inputs_are_checked_before_anything_is_written(files: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    x, y = uint8_images(20, 2)
    np.savez(tmp_path / "test-only.npz", x_test=x, y_test=y)
    out = tmp_path / "out"
    base = ["distil", "--method", "hydra", "--epochs", "1", "--latency-batches", "1", "--out", str(out)]
    assert main([*base, "--teacher", str(files / "a.pt2"), "--data", str(files / "data.npz")]) == 1
    assert "the teacher has 1 member" in capsys.readouterr().err and not out.exists()
    assert main([*base, "--teacher", str(files / "a.pt2"), str(files / "b.pt2"), "--data",
                 str(tmp_path / "test-only.npz"), "--val", str(files / "data.npz")]) == 1
    assert "a test split is never trained on" in capsys.readouterr().err and not out.exists()
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("not a run")
    assert main([*base[:-1], str(mine), "--overwrite", "--teacher", str(files / "a.pt2"),
                 str(files / "b.pt2"), "--data", str(files / "data.npz")]) == 1
    assert "--overwrite deletes runs only" in capsys.readouterr().err and (mine / "notes.txt").is_file()
    xt, yt = uint8_images(20, 3)
    np.savez(tmp_path / "small.npz", x_test=xt[:, :6, :6], y_test=yt)  # 6 x 6 images, the teacher's are 8 x 8
    np.savez(tmp_path / "labels.npz", x_test=xt, y_test=yt + 50)  # classes the teacher does not have
    for test, message in (("small.npz", "test inputs have shape [1, 6, 6] per example, the training inputs "
                                        "[1, 8, 8]"),
                          ("labels.npz", "test targets")):
        assert main([*base, "--teacher", str(files / "a.pt2"), str(files / "b.pt2"), "--data",
                     str(files / "data.npz"), "--val", str(tmp_path / test)]) == 1
        assert message in capsys.readouterr().err and not out.exists()
    members = [files / "a.pt2", files / "b.pt2"]
    train = (torch.from_numpy(x).permute(0, 3, 1, 2).float() / 255, torch.from_numpy(y))
    wrong = torch.rand(5, 1, 6, 6)
    with pytest.raises(ValueError, match=r"val inputs have shape \[1, 6, 6\] per example"):
        hydraplus.distil(members, train, val=(wrong, torch.zeros(5, dtype=torch.long)), out=out, epochs=1)
    with pytest.raises(ValueError, match=r"ood inputs have shape \[1, 6, 6\] per example"):
        hydraplus.distil(members, train, ood=wrong, out=out, epochs=1)
    assert not out.exists()
    assert main([*base, "--teacher", str(files / "a.pt2"), str(files / "b.pt2"), "--data",
                 str(files / "data.npz"), "--quiet"]) == 0  # the refused runs blocked nothing


def test_one_file_running_every_member_with_members(files: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    from hydraplus.inputs.contracts import ContractNote
    from hydraplus.pipeline.distil import read_teacher_and_targets

    class Flat(torch.nn.Module):  # torch-uncertainty's layout: [N·B, C], member-major
        def __init__(self, members: list[torch.nn.Module]):
            super().__init__()
            self.members = torch.nn.ModuleList(members)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.cat([m(x) for m in self.members])

    x, y = uint8_images(12, 3)
    inputs = torch.from_numpy(x).permute(0, 3, 1, 2).float() / 255
    members = [torch.export.load(files / f"{name}.pt2").module() for name in "ab"]
    batch = torch.export.Dim("batch", min=1, max=4096)
    torch.export.save(torch.export.export(Flat(members), (inputs[:2],), dynamic_shapes=({0: batch},)),
                      tmp_path / "flat.pt2")
    with pytest.warns(ContractNote, match=r"\[N·B, D\]: read as 2 members"):
        read, _, _ = read_teacher_and_targets(tmp_path / "flat.pt2", inputs, torch.from_numpy(y), members=2)
    with torch.no_grad():
        expected = torch.stack([m(inputs) for m in members], 1)
        torch.testing.assert_close(read(inputs), expected)


def test_regression_members_giving_a_variance(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    class Variance(torch.nn.Module):  # (mean, variance): the second output through a softplus
        def forward(self, out: torch.Tensor) -> torch.Tensor:
            return torch.stack([out[:, 0], torch.nn.functional.softplus(out[:, 1])], -1)

    g = torch.Generator().manual_seed(0)
    x = torch.randn(80, 3, generator=g)
    y = x.sum(1) + 0.1 * torch.randn(80, generator=g)
    np.savez(tmp_path / "data.npz", x_train=x[:60].numpy(), y_train=y[:60].numpy(), x_test=x[60:].numpy(),
             y_test=y[60:].numpy())
    batch = torch.export.Dim("batch", min=1, max=4096)
    teachers = []
    for i in range(2):
        torch.manual_seed(i)
        member = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2),
                                     Variance())
        torch.export.save(torch.export.export(member.eval(), (x[:2],), dynamic_shapes=({0: batch},)),
                          tmp_path / f"{i}.pt2")
        teachers.append(str(tmp_path / f"{i}.pt2"))
    out = tmp_path / "out"
    assert main(["distil", "--teacher", *teachers, "--data", str(tmp_path / "data.npz"), "--method", "hydra",
                 "--epochs", "1", "--regression-output", "variance", "--out", str(out)]) == 0
    printed = capsys.readouterr().out.splitlines()  # the verdict of report.md's "Which to ship"
    assert printed[-2].startswith("  The student's RMSE is ") and "the best member's" in printed[-2]
    assert printed[-2].strip() in (out / "report.md").read_text()
    state = torch.load(out / "hydra-2" / "model.pt", weights_only=True)  # heads: the last Linear, no softplus
    assert {k: tuple(v.shape) for k, v in state.items() if k.startswith("heads")} == {
        "heads.stacked.0.weight": (2, 2, 8), "heads.stacked.0.bias": (2, 2)}
    assert bool(torch.isfinite(hydraplus.load_distilled(out).predict(x[60:])["variance"]).all())


def test_a_torchscript_member_teaches_a_student_from_a_factory(files: Path, tmp_path: Path) -> None:
    (tmp_path / "mlp.py").write_text(
        "from torch import nn\n\n\n"
        "def student(heads, outputs):\n"
        "    core = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU())\n"
        "    return core, lambda: nn.Linear(16, outputs)\n")
    out = tmp_path / "out"
    assert main(["distil", "--teacher", str(files / "a.ts"), str(files / "b.pt2"), "--data",
                 str(files / "data.npz"), "--method", "hydra", "--epochs", "1", "--latency-batches", "1",
                 "--student", f"{tmp_path / 'mlp.py'}:student", "--out", str(out), "--quiet"]) == 0
    metrics = teacher_student_view(json.loads((out / "evaluation.json").read_text()))
    assert metrics["models"]["student"]["name"] == "hydra-2"
    assert metrics["record"]["student factory"] == f"{tmp_path / 'mlp.py'}:student"
