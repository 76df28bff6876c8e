"""Training on two CPU processes (Lightning DDP over gloo, one thread each) against one process.

Lightning's launcher starts the second process by running the script again, so each
multi-process run is a script in a subprocess (never this pytest process). To keep the time down,
one launch does three things: an uninterrupted two-process run of a small spiral config (the
reference), a fit whose loss is NaN on rank 1 only during one epoch, and the same run again, which
the test kills with SIGKILL (both processes) mid-way through the last student; a second launch
resumes it. The one-process run happens in this process.
"""

from __future__ import annotations

import csv
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

import hydraplus
from _dummies import TinyCNN, blob_images, toy_config
from hydraplus import cli
from hydraplus.evaluation.toy import evaluate_toy
from hydraplus.pipeline.config_run import load_problem, load_trained, run_experiment

pytestmark = pytest.mark.filterwarnings(
    "ignore:.*no lambda for M = 3 in student:hydraplus.config.ConfigWarning")

SEED = 3
TARGET = "drop"  # killed mid-way: a sampling student, whose per-process random state must resume
TOLERANCE = 0.02  # on test error (a fraction) and NLL, two processes against one

SCRIPT = """
import json, sys, time
from pathlib import Path

import torch

from hydraplus.core.containers import Ensemble
from hydraplus.data.toy import make_toy
from hydraplus.engine.checkpoint import AtomicCheckpoint
from hydraplus.engine.data import SeededData
from hydraplus.engine.modules import EnsembleModule
from hydraplus.engine.trainer import fit
from hydraplus.pipeline.config_run import run_experiment

mode, config_path, out, seed, target = sys.argv[1:]
config, out, seed = json.loads(Path(config_path).read_text()), Path(out), int(seed)


class NaNOnRankOne(EnsembleModule):
    # Rank 1's inputs are NaN in epoch 1, so its loss is: every step of that epoch is skipped on both.
    def training_step(self, batch, batch_idx):
        x, y = batch
        if self.global_rank == 1 and self.current_epoch == 1:
            x = torch.full_like(x, float("nan"))
        return super().training_step((x, y), batch_idx)

    def on_train_epoch_end(self):
        super().on_train_epoch_end()
        self.weights.append({k: v.clone() for k, v in self.state_dict().items()})


def nan_fit(folder):
    problem = make_toy("spiral", seed=0)
    torch.manual_seed(0)
    module = NaNOnRankOne(Ensemble.from_factory(lambda: torch.nn.Linear(2, 3), 2), "classification",
                          0.01, 1e-4, epochs=3, max_nan_steps=10)
    module.weights = []
    data = SeededData((problem.x_train, problem.y_train), 64, seed=0, streams=2)
    fit(module, data, folder=folder, label="nan", epochs=3, progress=False, devices=2)
    torch.save({"skipped": module.skipped_steps, "weights": module.weights},
               folder / f"rank-{module.global_rank}.pt")


def slowed(folder_name):
    # Slow the target's epochs (after each checkpoint capture) so the kill lands mid-training.
    capture = AtomicCheckpoint.on_train_epoch_end

    def slow(self, trainer, module):
        capture(self, trainer, module)
        if self.path.parent.name == folder_name:
            time.sleep(0.1)

    AtomicCheckpoint.on_train_epoch_end = slow


if mode == "launch":
    run_experiment(config, out / "reference", seed=seed, progress=False)
    nan_fit(out / "nan")
    slowed(target)
    run_experiment(config, out / "killed", seed=seed, progress=False)
else:
    run_experiment(config, out / "killed", seed=seed, progress=False, resume=True)
"""


def small_config(devices: int) -> dict[str, Any]:
    """The spiral as in test_resume: 30 epochs of 4 batches of 64 (32 per process), N = 3, a Hydra+
    and a (sampling) Drop student."""
    config = toy_config(epochs=30, members=3, batch_size=64,
                        students=[{"method": "hydra+", "heads": 3}, {"method": "drop"}])
    return {**config, "trainer": {"devices": devices}}


def logged_epochs(log: Path) -> int:
    return max(len(log.read_text().splitlines()) - 1, 0) if log.is_file() else 0


def start(mode: str, folder: Path) -> subprocess.Popen:
    """The script on two processes: Lightning's launcher starts the second from the same command."""
    script, config = folder / "ddp_run.py", folder / "config.json"
    script.write_text(SCRIPT)
    config.write_text(json.dumps(small_config(devices=2)))
    tests = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([tests, os.environ.get("PYTHONPATH", "")])}
    command = [sys.executable, str(script), mode, str(config), str(folder), str(SEED), TARGET]
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)


def finish(process: subprocess.Popen, timeout: float) -> str:
    try:
        _, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        _, err = process.communicate()
        pytest.fail(f"the two-process run hung (killed after {timeout} s):\n{err.decode()[-3000:]}")
    return err.decode()


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The launch (reference, NaN fit, killed run) and the resume; returns their folder."""
    folder = tmp_path_factory.mktemp("ddp")
    launch = start("launch", folder)
    killed = folder / "killed" / TARGET
    deadline = time.monotonic() + 180
    while launch.poll() is None and time.monotonic() < deadline:
        if (killed / "last.ckpt").is_file() and logged_epochs(killed / "log" / "metrics.csv") >= 5:
            os.killpg(launch.pid, signal.SIGKILL)  # both processes, as a lost node or a cancelled job
            break
        time.sleep(0.005)
    err = finish(launch, timeout=10)
    assert launch.returncode == -signal.SIGKILL, f"the run was not killed mid-training:\n{err[-3000:]}"
    assert 5 <= logged_epochs(killed / "log" / "metrics.csv") < 30
    assert not (killed / "model.pt").exists(), "the killed model had already finished"
    resume = start("resume", folder)
    err = finish(resume, timeout=120)
    assert resume.returncode == 0, err[-3000:]
    return folder


def outcome(run_dir: Path) -> dict[str, Any]:
    """Every model's weights, test metrics (fixed sampling seed) and training log."""
    meta, config, models = load_trained(run_dir)
    torch.manual_seed(0)
    metrics = evaluate_toy(load_problem(config, meta["seed"]), models.all()).metrics
    return {name: {"state": model.state_dict(), "metrics": metrics[name],
                   "log": (run_dir / name / "log" / "metrics.csv").read_text()}
            for name, model in models.all().items()}


def test_two_processes_end_within_tolerance_of_one(runs: Path, tmp_path: Path) -> None:
    """Not equal: each process averages its half of a batch before DDP averages the two halves and
    the gradients are summed in another order, so results differ by float rounding, which the
    epochs amplify; Drop also draws its masks from a random stream per process."""
    one_dir = tmp_path / "one"
    run_experiment(small_config(devices=1), one_dir, seed=SEED, progress=False)
    one, two = outcome(one_dir), outcome(runs / "reference")
    differences = {name: {key: abs(one[name]["metrics"]["clean"][key] - two[name]["metrics"]["clean"][key])
                          for key in ("error", "nll")} for name in one}
    print("two processes - one process, |difference|:", json.dumps(differences))
    assert all(d <= TOLERANCE for model in differences.values() for d in model.values()), differences
    saved = json.loads((runs / "reference" / "config.json").read_text())
    assert saved["world_size"] == 2 and saved["config"]["trainer"] == {"devices": 2}
    assert len(list((runs / "reference" / "cache").glob("teacher-*.npy"))) == 1


def test_sigkill_and_resume_on_two_processes_match_an_uninterrupted_run(runs: Path) -> None:
    reference, resumed = outcome(runs / "reference"), outcome(runs / "killed")
    assert reference.keys() == resumed.keys() == {"ensemble", "hydra+-3", TARGET}
    for name, expected in reference.items():
        for key, value in expected["state"].items():
            torch.testing.assert_close(resumed[name]["state"][key], value, rtol=0, atol=1e-6,
                                       msg=lambda m, k=f"{name}.{key}": f"{k}: {m}")
        for key, value in expected["metrics"].items():
            assert resumed[name]["metrics"][key] == pytest.approx(value, rel=0, abs=1e-6), f"{name} {key}"
        assert resumed[name]["log"] == expected["log"], f"{name}: training logs differ"
    assert not list((runs / "killed").rglob("*.tmp")), "temporary checkpoint files were left behind"


def test_resuming_on_another_world_size_is_refused(runs: Path) -> None:
    with pytest.raises(ValueError, match=r"cannot resume .*reference: it was trained on world size 2 "
                                         r"\(devices × nodes\), this run has 1"):
        run_experiment(small_config(devices=1), runs / "reference", seed=SEED, progress=False, resume=True)


def test_a_nan_loss_on_one_process_skips_the_step_on_both(runs: Path) -> None:
    """Epoch 1's 4 steps are skipped on both processes (no hang), nothing is applied in them, and
    both end with the same weights."""
    ranks = [torch.load(runs / "nan" / f"rank-{rank}.pt", weights_only=True) for rank in (0, 1)]
    assert [r["skipped"] for r in ranks] == [4, 4]
    for rank in ranks:
        after_0, after_1, _ = rank["weights"]
        assert all(torch.equal(after_0[k], after_1[k]) for k in after_0), "a skipped step changed weights"
    final = [r["weights"][-1] for r in ranks]
    assert all(torch.equal(final[0][k], final[1][k]) for k in final[0])
    with (runs / "nan" / "log" / "metrics.csv").open(newline="") as f:
        assert [float(row["train/skipped_steps"]) for row in csv.DictReader(f)] == [0.0, 4.0, 4.0]


def test_the_command_line_refuses_what_cannot_split(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["train", "toy-spiral", "--devices", "3", "--out", str(tmp_path / "run")]) == 1
    assert ("ensemble.batch_size 256 does not divide over world size 3 (devices 3 × nodes 1)"
            in capsys.readouterr().err)
    assert cli.main(["demo", "--quick", "--devices", "2"]) == 1
    assert "--devices/--num-nodes need --out" in capsys.readouterr().err


def test_distil_on_several_processes_needs_a_shared_out_folder() -> None:
    x, y = blob_images(48)
    with pytest.raises(ValueError, match="distil on 4 processes needs out="):
        hydraplus.distil([TinyCNN(), TinyCNN()], (x, y), epochs=1, num_nodes=2, devices=2)
