"""A run distils its students from the teacher outputs it cached (the cache itself:
tests/engine/test_cache.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from _dummies import toy_config
from hydraplus.core.predict import predict
from hydraplus.pipeline.config_run import run_experiment


def test_run_experiment_distils_from_the_cached_teacher_outputs(tmp_path: Path) -> None:
    config = toy_config(epochs=1, members=2, students=[{"method": "hydra", "heads": 2}])
    problem, models = run_experiment(config, tmp_path, seed=0, progress=False)
    (npy,) = sorted((tmp_path / "cache").glob("teacher-*.npy"))
    cached = torch.from_numpy(np.load(npy))
    assert torch.equal(cached, predict(models.ensemble, problem.x_train))
