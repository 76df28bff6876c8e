"""The denormals benchmark times the same member with subnormal weights kept and flushed."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import denormals


@pytest.mark.skipif(not torch.set_flush_denormal(False), reason="this CPU cannot flush subnormals")
def test_a_short_run_times_both_modes_and_only_the_kept_one_sees_subnormals(tmp_path: Path) -> None:
    result = denormals.main(["cpu-fashion-mnist", "--images", "16", "--batch", "8", "--repeats", "1",
                             "--warmup", "0", "--out", str(tmp_path)])
    chosen = round(0.031 * 1568 * 64)
    assert result["keep"]["subnormals_seen"] == chosen  # the bit patterns went in unchanged
    assert result["flush"]["subnormals_seen"] == 0  # read as zero by a flushing process
    for mode in denormals.MODES:
        assert result[mode]["inference_ms"] > 0 and result[mode]["train_step_ms"] > 0
    record = json.loads((tmp_path / "denormals-cpu-fashion-mnist.json").read_text())
    assert record["kept_over_flushed"] == result["kept_over_flushed"]
    assert set(record["kept_over_flushed"]) == {"inference_ms", "train_step_ms"}


def test_the_share_must_be_a_fraction() -> None:
    with pytest.raises(SystemExit):
        denormals.main(["--share", "1.5"])
