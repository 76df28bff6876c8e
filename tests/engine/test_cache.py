"""Teacher-output cache: equals predict(), is reused, and never serves stale outputs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor, nn

from hydraplus.core.containers import Ensemble
from hydraplus.core.predict import predict
from hydraplus.engine import cache
from hydraplus.models import lenet_member, mlp


class CountingEnsemble(Ensemble):
    """An ensemble that counts its forward calls."""

    calls = 0

    def forward(self, x: Tensor, per_member: bool = False) -> Tensor:
        self.calls += 1
        return super().forward(x, per_member)


def mlp_teacher(batch_norm: bool = False) -> CountingEnsemble:
    def member() -> nn.Module:
        if batch_norm:
            return nn.Sequential(nn.Linear(2, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))
        return mlp([2, 8, 3])

    return CountingEnsemble([member() for _ in range(4)])


def entries(folder: Path) -> list[Path]:
    return sorted(folder.glob("teacher-*.npy"))


def test_cache_returns_exactly_predicts_outputs_and_writes_a_sidecar(tmp_path: Path) -> None:
    teacher = CountingEnsemble([lenet_member(num_classes=3, widths=(4, 8), hidden=8) for _ in range(3)])
    x = torch.randn(10, 3, 16, 16)
    out = cache.teacher_outputs(teacher, x, tmp_path, batch_size=4)
    expected = predict(teacher, x, batch_size=4)
    assert out.shape == (10, 3, 3) and out.dtype == torch.float32 and out.device.type == "cpu"
    assert torch.equal(out, expected)
    (npy,) = entries(tmp_path)
    meta = json.loads(npy.with_suffix(".json").read_text())
    assert meta["key"] in npy.name and meta["shape"] == [10, 3, 3]
    assert meta["teacher_sha256"] == cache.state_digest(teacher)
    assert meta["data_sha256"] == cache.tensor_digest(x)
    assert teacher.training  # predict's mode switch is undone


def test_second_call_reads_the_cache_without_running_the_teacher(tmp_path: Path) -> None:
    teacher, x = mlp_teacher(), torch.randn(50, 2)
    first = cache.teacher_outputs(teacher, x, tmp_path, batch_size=16)
    calls = teacher.calls
    assert calls == 4  # four chunks of at most 16
    second = cache.teacher_outputs(teacher, x, tmp_path, batch_size=16)
    assert teacher.calls == calls
    assert torch.equal(first, second) and len(entries(tmp_path)) == 1


def test_a_new_teacher_state_or_new_data_gets_a_new_entry(tmp_path: Path) -> None:
    teacher, x = mlp_teacher(batch_norm=True), torch.randn(20, 2)
    cache.teacher_outputs(teacher, x, tmp_path)

    with torch.no_grad():
        next(teacher.parameters())[0, 0] += 0.5
    changed_weights = cache.teacher_outputs(teacher, x, tmp_path)
    assert torch.equal(changed_weights, predict(teacher, x))

    bn = next(m for m in teacher.modules() if isinstance(m, nn.BatchNorm1d))
    bn.running_mean += 1.0  # a buffer, not a parameter: still part of the key
    changed_buffer = cache.teacher_outputs(teacher, x, tmp_path)
    assert torch.equal(changed_buffer, predict(teacher, x))
    assert not torch.equal(changed_buffer, changed_weights)

    x2 = x.clone()
    x2[3, 1] += 1e-3
    changed_data = cache.teacher_outputs(teacher, x2, tmp_path)
    assert torch.equal(changed_data, predict(teacher, x2))

    assert len(entries(tmp_path)) == 4


def test_writes_to_the_returned_tensor_never_reach_the_file(tmp_path: Path) -> None:
    teacher, x = mlp_teacher(), torch.randn(8, 2)
    out = cache.teacher_outputs(teacher, x, tmp_path)
    out.zero_()
    assert torch.equal(cache.teacher_outputs(teacher, x, tmp_path), predict(teacher, x))


def test_an_unreadable_entry_is_recomputed(tmp_path: Path) -> None:
    teacher, x = mlp_teacher(), torch.randn(8, 2)
    cache.teacher_outputs(teacher, x, tmp_path)
    (npy,) = entries(tmp_path)
    npy.write_bytes(b"not a numpy file")
    out = cache.teacher_outputs(teacher, x, tmp_path)
    assert teacher.calls == 2
    assert torch.equal(out, predict(teacher, x))


def test_a_failed_write_leaves_nothing_behind(tmp_path: Path) -> None:
    teacher, x = mlp_teacher(), torch.randn(40, 2)

    def fail_on_second_chunk(module: nn.Module, args: Any, output: Tensor) -> None:
        if teacher.calls == 2:
            raise RuntimeError("teacher crashed")

    teacher.register_forward_hook(fail_on_second_chunk)
    with pytest.raises(RuntimeError, match="teacher crashed"):
        cache.teacher_outputs(teacher, x, tmp_path, batch_size=16)
    assert list(tmp_path.iterdir()) == []


def test_no_cache_dir_just_predicts() -> None:
    teacher, x = mlp_teacher(), torch.randn(8, 2)
    assert torch.equal(cache.teacher_outputs(teacher, x, None), predict(teacher, x))
    with pytest.raises(ValueError, match="empty"):
        cache.teacher_outputs(teacher, x[:0], Path("unused"))

