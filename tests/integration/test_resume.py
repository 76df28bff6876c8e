"""A run killed with SIGKILL mid-training and resumed ends exactly like an uninterrupted run.

The interrupted run is a subprocess (so SIGKILL hits a real training process at a random
point), killed once the chosen model has a ``last.ckpt`` and some epochs in its log; the rest
is resumed in-process with ``run_experiment(..., resume=True)``. Weights, test metrics and the
per-epoch CSV logs of every model must match the uninterrupted run with the same seed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch

from _dummies import toy_config
from hydraplus.config import scale_epochs
from hydraplus.evaluation.toy import evaluate_toy
from hydraplus.io import CheckpointError
from hydraplus.pipeline.config_run import TrainedModels, run_experiment

# M = 3 heads get the lambda tabulated for the nearest M (5), as the config warns.
pytestmark = pytest.mark.filterwarnings(
    "ignore:.*no lambda for M = 3 in student:hydraplus.config.ConfigWarning")

SEED = 3
MODELS = ("ensemble", "hydra+-3", "drop")

# The child slows the killed model's epochs (after each checkpoint capture) so the kill lands
# mid-training; the computation itself is unchanged.
CHILD = """
import json, sys, time
from hydraplus.engine.checkpoint import AtomicCheckpoint
from hydraplus.pipeline.config_run import run_experiment

config_path, run_dir, seed, target = sys.argv[1:]
capture = AtomicCheckpoint.on_train_epoch_end

def slow(self, trainer, module):
    capture(self, trainer, module)
    if self.path.parent.name == target:
        time.sleep(0.1)

AtomicCheckpoint.on_train_epoch_end = slow
run_experiment(json.loads(open(config_path).read()), run_dir, seed=int(seed), progress=False)
"""


def small_config() -> dict[str, Any]:
    """toy-spiral, 30 epochs of 4 batches, N = 3, a 3-head Hydra+ and a (stochastic) Drop student."""
    return toy_config(epochs=30, members=3, batch_size=64,
                      students=[{"method": "hydra+", "heads": 3}, {"method": "drop"}])


def logged_epochs(log: Path) -> int:
    return max(len(log.read_text().splitlines()) - 1, 0) if log.is_file() else 0


def outcome(run_dir: Path, problem: Any, models: TrainedModels) -> dict[str, Any]:
    """Every model's weights, test metrics (fixed sampling seed) and training log text."""
    torch.manual_seed(0)
    metrics = evaluate_toy(problem, models.all()).metrics
    return {
        name: {
            "state": model.state_dict(),
            "metrics": metrics[name],
            "log": (run_dir / name / "log" / "metrics.csv").read_text(),
        }
        for name, model in models.all().items()
    }


def assert_same(a: dict[str, Any], b: dict[str, Any]) -> None:
    assert a.keys() == b.keys() == set(MODELS)
    for name in a:
        state_a, state_b = a[name]["state"], b[name]["state"]
        assert state_a.keys() == state_b.keys()
        for key in state_a:
            torch.testing.assert_close(state_a[key], state_b[key], rtol=0, atol=1e-6,
                                       msg=lambda m, k=f"{name}.{key}": f"{k}: {m}")
        assert a[name]["metrics"].keys() == b[name]["metrics"].keys()
        for key, value in a[name]["metrics"].items():
            assert b[name]["metrics"][key] == pytest.approx(value, rel=0, abs=1e-6), f"{name} {key}"
        assert a[name]["log"] == b[name]["log"], f"{name}: training logs differ"


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    run_dir = tmp_path_factory.mktemp("resume") / "reference"
    problem, models = run_experiment(small_config(), run_dir, seed=SEED, progress=False)
    return outcome(run_dir, problem, models)


def kill_midway(config: dict[str, Any], run_dir: Path, target: str, tmp_path: Path) -> None:
    """Start the run in a subprocess; SIGKILL it once ``target`` has a checkpoint and 5+ logged epochs."""
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(config))
    env = dict(os.environ, OMP_NUM_THREADS="1")
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(config_path), str(run_dir), str(SEED), target],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    folder = run_dir / target
    deadline = time.monotonic() + 120
    try:
        while child.poll() is None and time.monotonic() < deadline:
            if (folder / "last.ckpt").is_file() and logged_epochs(folder / "log" / "metrics.csv") >= 5:
                child.send_signal(signal.SIGKILL)
                break
            time.sleep(0.005)
    finally:
        if child.poll() is None and time.monotonic() >= deadline:
            child.kill()
        _, err = child.communicate()
    assert child.returncode == -signal.SIGKILL, f"the run was not killed mid-training:\n{err.decode()}"
    assert not (folder / "model.pt").exists(), "the killed model had already finished"


@pytest.mark.parametrize("target", ["ensemble", "drop"])
def test_resume_after_sigkill_matches_uninterrupted_run(
    target: str, reference: dict[str, Any], tmp_path: Path
) -> None:
    config, run_dir = small_config(), tmp_path / "run"
    kill_midway(config, run_dir, target, tmp_path)
    log = run_dir / target / "log" / "metrics.csv"
    assert 5 <= logged_epochs(log) < 30
    problem, models = run_experiment(config, run_dir, seed=SEED, progress=False, resume=True)
    assert_same(reference, outcome(run_dir, problem, models))
    assert not list(run_dir.rglob("*.tmp")), "temporary checkpoint files were left behind"


def test_resume_after_sigkill_in_bf16_matches_an_uninterrupted_bf16_run(tmp_path: Path) -> None:
    config = {**small_config(), "precision": "bf16-mixed"}
    problem, models = run_experiment(config, tmp_path / "reference", seed=SEED, progress=False)
    reference = outcome(tmp_path / "reference", problem, models)
    run_dir = tmp_path / "run"
    kill_midway(config, run_dir, "hydra+-3", tmp_path)
    problem, models = run_experiment(config, run_dir, seed=SEED, progress=False, resume=True)
    assert_same(reference, outcome(run_dir, problem, models))
    assert all(p.dtype == torch.float32 for model in models.all().values() for p in model.parameters())


def early_stopping_config() -> dict[str, Any]:
    """`small_config` with early stopping (patience 3, at most 60 student epochs): Drop stops at its
    29th epoch and keeps its 26th (seed 3)."""
    config = small_config()
    config["student"].update(epochs=60, patience=3)
    return config


def test_early_stopping_resumes_exactly_after_sigkill(tmp_path: Path) -> None:
    """The patience count, the best value and the best weights survive the kill: the resumed run
    stops at the same epoch and keeps the same weights as an uninterrupted one."""
    config = early_stopping_config()
    problem, models = run_experiment(config, tmp_path / "reference", seed=SEED, progress=False)
    reference = outcome(tmp_path / "reference", problem, models)
    stopped = models.early_stopping["drop"]
    assert stopped["stopped_early"] and 5 < stopped["best_epoch"] < stopped["epochs_run"] < 60
    run_dir = tmp_path / "run"
    kill_midway(config, run_dir, "drop", tmp_path)
    assert logged_epochs(run_dir / "drop" / "log" / "metrics.csv") < stopped["epochs_run"]
    problem, models = run_experiment(config, run_dir, seed=SEED, progress=False, resume=True)
    assert_same(reference, outcome(run_dir, problem, models))
    assert models.early_stopping["drop"] == stopped
    # resuming a run that has stopped trains no further and keeps the best weights
    problem, again = run_experiment(config, tmp_path / "reference", seed=SEED, progress=False, resume=True)
    assert_same(reference, outcome(tmp_path / "reference", problem, again))


def test_checkpoint_every_sets_the_interval(tmp_path: Path) -> None:
    """With checkpoint_every=4 and 6 epochs, last.ckpt is written after epochs 4 and 6 (the last)."""
    config = scale_epochs(small_config(), 6)
    config["students"] = []
    saved: list[int] = []
    original = os.replace

    def spy(src: Any, dst: Any) -> None:
        if Path(dst).name == "last.ckpt":
            saved.append(int(torch.load(src, weights_only=True)["epoch"]))
        original(src, dst)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(os, "replace", spy)
        run_experiment(config, tmp_path / "run", seed=SEED, progress=False, checkpoint_every=4)
    assert saved == [3, 5]


def test_resume_from_a_corrupt_checkpoint_is_a_clear_error(tmp_path: Path) -> None:
    config = scale_epochs(small_config(), 2)
    config["students"] = []
    run_dir = tmp_path / "run"
    (run_dir / "ensemble").mkdir(parents=True)
    (run_dir / "ensemble" / "last.ckpt").write_bytes(b"PK\x03\x04 not really a zip file")
    with pytest.raises(CheckpointError, match=r"cannot read checkpoint .*last\.ckpt"):
        run_experiment(config, run_dir, seed=SEED, progress=False, resume=True)
