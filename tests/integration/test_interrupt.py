"""Ctrl-C during `hydraplus train`: one line naming the run folder and the command that resumes it."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

from _dummies import toy_config


def _ctrl_c_heard() -> None:
    """Ctrl-C back to its default in the child: a shell ignores it in commands it starts in the
    background (``cmd &``), and the child would inherit that and run to the end."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_says_how_to_resume_and_the_command_works(tmp_path: Path) -> None:
    config = toy_config(epochs=400, members=2, students=[{"method": "drop"}])
    path = tmp_path / "long.json"
    path.write_text(json.dumps(config))
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "hydraplus.cli", "train", str(path), "--out", str(out), "--quiet"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            preexec_fn=_ctrl_c_heard)
    checkpoint = out / "seed-0" / "ensemble" / "last.ckpt"
    deadline = time.monotonic() + 60
    while not checkpoint.is_file() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert checkpoint.is_file(), proc.communicate()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    lines = [line for line in err.splitlines() if line.startswith("hydraplus:")]
    assert lines == [f"hydraplus: interrupted; finished epochs are saved in {out}. Continue with: "
                     f"hydraplus {shlex.join(command[3:])} --resume"]
    assert not list(out.rglob("*.tmp"))
    resumed = subprocess.run([sys.executable, "-m", "hydraplus.cli", *shlex.split(lines[0].split(
        "Continue with: hydraplus ")[1])], capture_output=True, text=True, env=env, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert (out / "seed-0" / "drop" / "model.pt").is_file()
    assert (out / "seed-0" / "evaluation.json").is_file()
