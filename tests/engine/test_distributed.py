"""The pieces of multi-process training that need no second process: how global batches split
over ranks, the checks on batch and world sizes, rank detection, augmentation of a part of a
batch and the teacher outputs shared by the processes. (Runs on two processes:
tests/integration/test_ddp.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

from hydraplus.core.augment import Augmentation
from hydraplus.core.containers import Ensemble
from hydraplus.engine import cache
from hydraplus.engine.data import SeededAugment, SeededBatchSampler, SeededData, seeded_loader
from hydraplus.engine.distributed import (
    check_batches,
    is_rank_zero,
    lightning_strategy,
    process_rank,
    rank_rows,
)
from hydraplus.engine.modules import EnsembleModule
from hydraplus.engine.trainer import fit
from hydraplus.io import safe_load

LAUNCH_VARIABLES = ("RANK", "LOCAL_RANK", "NODE_RANK", "GROUP_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE",
                    "TORCHELASTIC_RUN_ID", "SLURM_NTASKS", "SLURM_NTASKS_PER_NODE", "SLURM_PROCID",
                    "SLURM_JOB_NAME", "LSB_JOBID")


@pytest.fixture
def no_launcher(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """An environment as a user's own shell has it: no launcher or cluster variables."""
    for name in LAUNCH_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.mark.parametrize(("total", "world", "parts"), [(64, 2, [(0, 32), (32, 32)]),
                                                       (10, 3, [(0, 4), (4, 3), (7, 3)]),
                                                       (5, 1, [(0, 5)])])
def test_rank_rows_are_contiguous_parts_in_rank_order(total: int, world: int,
                                                      parts: list[tuple[int, int]]) -> None:
    assert [rank_rows(total, rank, world) for rank in range(world)] == parts


@pytest.mark.parametrize(("size", "batch", "world", "streams"), [(240, 64, 2, 3), (250, 64, 2, None),
                                                                 (250, 63, 3, 2)])
def test_the_ranks_batches_together_are_the_one_process_batches(size: int, batch: int, world: int,
                                                                streams: int | None) -> None:
    """Every global batch is the one-process batch cut in rank order, in every epoch and member order."""
    one = SeededBatchSampler(size, batch, seed=5, streams=streams)
    ranks = [SeededBatchSampler(size, batch, seed=5, streams=streams, rank=r, world_size=world)
             for r in range(world)]
    for epoch in (0, 3):
        for sampler in (one, *ranks):
            sampler.set_epoch(epoch)
        parts = [list(sampler) for sampler in ranks]
        assert all(len(sampler) == len(one) for sampler in ranks)
        for step, expected in enumerate(one):
            torch.testing.assert_close(torch.cat([p[step] for p in parts]), expected, rtol=0, atol=0)


def test_a_batch_size_that_does_not_divide_is_refused() -> None:
    with pytest.raises(ValueError, match=r"ensemble: batch size 64 does not divide over world size 3 "
                                         r"\(devices × nodes\).*divisible by 3"):
        check_batches(240, 64, 3, "ensemble")
    with pytest.raises(ValueError, match="batch size 100 does not divide over world size 8"):
        SeededBatchSampler(240, 100, seed=0, rank=1, world_size=8)


def test_a_last_batch_smaller_than_the_world_is_refused() -> None:
    with pytest.raises(ValueError, match=r"last batch of each epoch holds 1 of the 129 examples \(batch size "
                                         r"64\), fewer than the world size 2"):
        check_batches(129, 64, 2, "student drop")
    check_batches(130, 64, 2, "student drop")  # 2 left: one each


def test_strategy_auto_is_ddp_on_several_processes_only() -> None:
    assert lightning_strategy("auto", 1) == "auto"
    assert lightning_strategy("auto", 4) == "ddp"
    assert lightning_strategy("ddp_find_unused_parameters_true", 2) == "ddp_find_unused_parameters_true"
    with pytest.raises(ValueError, match="strategy must be one of"):
        lightning_strategy("ddp_spawn", 2)


def test_process_rank_reads_the_launchers_variables(no_launcher: pytest.MonkeyPatch) -> None:
    assert process_rank(devices=4) == 0 and is_rank_zero(4, 2)
    no_launcher.setenv("NODE_RANK", "1")  # Lightning's launcher on the second node, third process
    no_launcher.setenv("LOCAL_RANK", "2")
    assert process_rank(devices=4) == 6 and not is_rank_zero(4, 2)
    assert is_rank_zero(1, 1), "one process always writes"
    no_launcher.delenv("NODE_RANK")
    no_launcher.delenv("LOCAL_RANK")
    no_launcher.setenv("SLURM_NTASKS", "8")  # srun's seventh task of 2 nodes × 4
    no_launcher.setenv("SLURM_NTASKS_PER_NODE", "4")
    no_launcher.setenv("SLURM_PROCID", "6")
    no_launcher.setenv("SLURM_JOB_NAME", "hydraplus")
    assert process_rank(devices=4) == 6


def test_a_part_of_a_batch_is_augmented_as_in_the_whole_batch() -> None:
    augment = SeededAugment(Augmentation(crop_padding=2, flip=True), seed=3, fill=(-1.0, 0.0))
    images = torch.randn(10, 2, 8, 8)
    whole = augment(images, epoch=2, batch_idx=5)
    for first, rows in (rank_rows(10, r, 3) for r in range(3)):
        part = augment(images[first : first + rows], 2, 5, part=(first, 10))
        torch.testing.assert_close(part, whole[first : first + rows], rtol=0, atol=0)


def test_seeded_data_on_one_process_gives_the_seeded_loaders_batches() -> None:
    x, y = torch.randn(50, 2), torch.randint(0, 3, (50,))
    data = SeededData((x, y), 16, seed=4, streams=2)
    data.setup("fit")
    for a, b in zip(data.train_dataloader(), seeded_loader((x, y), 16, seed=4, streams=2), strict=True):
        assert all(torch.equal(u, v) for u, v in zip(a, b, strict=True))


def test_teacher_outputs_are_computed_by_prepare_and_read_by_the_other_processes(tmp_path: Path) -> None:
    teacher = Ensemble.from_factory(lambda: nn.Linear(2, 3), 2).eval()
    x = torch.randn(20, 2)
    other_process = cache.TeacherOutputs(teacher, x, tmp_path)
    with pytest.raises(FileNotFoundError, match="global rank 0 writes it before the other processes read it"):
        other_process.load()
    rank_zero = cache.TeacherOutputs(teacher, x, tmp_path)
    rank_zero.prepare()
    assert len(list(tmp_path.glob("teacher-*.npy"))) == 1
    data = SeededData((x, torch.zeros(20, dtype=torch.long)), 8, seed=0, extra=other_process,
                      names=("x", "y"))
    data.setup("fit")
    torch.testing.assert_close(data.dataset.tensors[2], rank_zero.load(), rtol=0, atol=0)


def test_several_processes_need_seeded_data(tmp_path: Path) -> None:
    module = EnsembleModule(Ensemble.from_factory(lambda: nn.Linear(2, 3), 2), "classification", 0.01, 0.0, 1)
    loader = DataLoader([(torch.randn(4, 2, 2), torch.zeros(4, 2, dtype=torch.long))], batch_size=None)
    with pytest.raises(TypeError, match="training on 2 processes needs SeededData"):
        fit(module, loader, folder=tmp_path, label="t", epochs=1, progress=False, devices=2)


def test_a_checkpoint_resumes_only_with_its_world_size(tmp_path: Path) -> None:
    def module() -> EnsembleModule:
        torch.manual_seed(0)
        ensemble = Ensemble.from_factory(lambda: nn.Linear(2, 3), 2)
        return EnsembleModule(ensemble, "classification", 0.01, 0.0, 3)

    data = SeededData((torch.randn(32, 2), torch.randint(0, 3, (32,))), 8, seed=0, streams=2)
    fit(module(), data, folder=tmp_path, label="t", epochs=2, progress=False)
    state = safe_load(tmp_path / "last.ckpt")
    assert state["hydraplus"]["world_size"] == 1
    state["hydraplus"]["world_size"] = 2  # as a run on two processes saves it
    torch.save(state, tmp_path / "last.ckpt")
    with pytest.raises(ValueError, match=r"last.ckpt: it was trained on world size 2 \(devices × nodes\), "
                                         r"this run has 1.*same devices and nodes"):
        fit(module(), data, folder=tmp_path, label="t", epochs=3, progress=False, resume=True)
